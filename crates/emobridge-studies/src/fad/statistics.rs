//! Per-layer statistics of every group and the distances between them.

use super::*;

/// One layer's running statistics per selected group (before standardising), and the kept rows
/// of the emotion groups when bootstrapping.
pub(super) struct Accumulated {
    pub(super) dim: usize,
    pub(super) running: BTreeMap<GroupKey, RunningStats>,
    pub(super) kept: BTreeMap<GroupKey, (Vec<f64>, Vec<std::ops::Range<usize>>)>,
}

/// Reads the selected samples of `layer` from every clip `owns` accepts and folds them into each
/// group's running statistics. A clip whose data does not read is pushed onto `failures`.
pub(super) fn accumulate(
    config: &FadStudyConfig,
    plan: &Plan<'_>,
    layer: usize,
    owns: &dyn Fn(&str) -> bool,
    failures: &mut Vec<crate::RunFailure>,
) -> Result<Accumulated, FadStudyError> {
    // Which groups use each clip, and which frames.
    let mut uses: BTreeMap<usize, Vec<(&GroupKey, &Vec<usize>)>> = BTreeMap::new();
    for (key, selection) in &plan.selections {
        for (clip, frames) in selection {
            uses.entry(*clip).or_default().push((key, frames));
        }
    }
    let dim = plan.shape.dim;
    let mut running: BTreeMap<GroupKey, RunningStats> = plan
        .selections
        .keys()
        .map(|k| (k.clone(), RunningStats::new(dim)))
        .collect();
    let keep_rows = config.bootstrap >= 2;
    let mut kept: BTreeMap<GroupKey, (Vec<f64>, Vec<std::ops::Range<usize>>)> = BTreeMap::new();
    for (clip_index, users) in uses {
        let clip = &plan.clips[clip_index];
        if !owns(&clip.record.id) {
            continue;
        }
        let samples = match read_samples(config, clip, layer) {
            Ok(s) => s,
            Err(e) => {
                // The header read earlier; the data did not (truncated or corrupt file).
                failures.push(failure(
                    &clip.record.id,
                    &clip.path,
                    format!("layer {layer}: {e}"),
                ));
                continue;
            }
        };
        for (key, frames) in users {
            let rows = match config.level {
                StatisticsLevel::ClipMeans => samples.clone(),
                StatisticsLevel::Frames => samples.select(ndarray::Axis(0), frames),
            };
            running
                .get_mut(key)
                .expect("every selected group has statistics")
                .push_rows(rows.view());
            if keep_rows && key.family == Family::Emotion {
                let (buf, units) = kept.entry(key.clone()).or_default();
                let start = buf.len() / dim;
                buf.extend(rows.iter());
                units.push(start..start + rows.nrows());
            }
        }
    }
    Ok(Accumulated { dim, running, kept })
}

/// Gaussians (standardised on request) and bootstrap rows of one layer.
pub(super) fn finish_layer(config: &FadStudyConfig, layer: usize, acc: Accumulated) -> LayerData {
    let Accumulated { dim, running, kept } = acc;
    let scaling = if config.standardize {
        Some(pooled_moments(&running, dim))
    } else {
        None
    };
    let mut stats = BTreeMap::new();
    for (key, s) in running {
        match s.gaussian() {
            Ok(mut g) => {
                if let Some((centre, scale)) = &scaling {
                    standardize_gaussian(&mut g, centre, scale);
                }
                stats.insert(key, g);
            }
            Err(e) => tracing::warn!("layer {layer}, group {}: {e}", group_name(&key)),
        }
    }
    let rows = kept
        .into_iter()
        .map(|(k, (buf, units))| {
            let n = buf.len() / dim;
            let mut rows = Array2::from_shape_vec((n, dim), buf).expect("whole rows");
            if let Some((centre, scale)) = &scaling {
                for mut row in rows.rows_mut() {
                    for ((x, m), s) in row.iter_mut().zip(centre).zip(scale) {
                        *x = (*x - m) / s;
                    }
                }
            }
            (k, (rows, units))
        })
        .collect();
    LayerData { stats, rows }
}

/// Pooled per-dimension mean and standard deviation of the emotion-family groups (which
/// partition the selected clips within each domain). A constant column keeps scale 1.
pub(super) fn pooled_moments(
    running: &BTreeMap<GroupKey, RunningStats>,
    dim: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut pooled = RunningStats::new(dim);
    for (key, s) in running {
        if key.family == Family::Emotion {
            pooled.merge(s);
        }
    }
    let n = pooled.count().max(2) as f64;
    let scatter = pooled.scatter();
    let scale = (0..dim)
        .map(|i| {
            let sd = (scatter[(i, i)] / (n - 1.0)).sqrt();
            if sd > 0.0 && sd.is_finite() {
                sd
            } else {
                1.0
            }
        })
        .collect();
    (pooled.mean().to_vec(), scale)
}

/// Applies the diagonal z-score map to a Gaussian: μ → (μ − m)/s, Σᵢⱼ → Σᵢⱼ/(sᵢ sⱼ).
pub(super) fn standardize_gaussian(g: &mut Gaussian, centre: &[f64], scale: &[f64]) {
    for ((m, c), s) in g.mean.iter_mut().zip(centre).zip(scale) {
        *m = (*m - c) / s;
    }
    let d = scale.len();
    for j in 0..d {
        for i in 0..d {
            g.cov[(i, j)] /= scale[i] * scale[j];
        }
    }
}

/// The clip's samples for one layer: its frames, or its mean as one row.
pub(super) fn read_samples(
    config: &FadStudyConfig,
    clip: &UsableClip<'_>,
    layer: usize,
) -> Result<Array2<f64>, StoreError> {
    let cached = CachedClip::open(&clip.path)?;
    match config.level {
        StatisticsLevel::Frames => {
            let f = cached.layer_frames(layer)?;
            Ok(Array2::from_shape_vec((f.rows, f.dim), f.values).expect("rows × dim values"))
        }
        StatisticsLevel::ClipMeans => {
            let mean = cached.layer_mean(layer)?;
            let d = mean.len();
            Ok(Array2::from_shape_vec((1, d), mean).expect("one row"))
        }
    }
}

pub(super) fn labels_of(data: &LayerData, family: Family, domain: Domain) -> Vec<&GroupKey> {
    data.stats
        .keys()
        .filter(|k| k.family == family && k.domain == domain)
        .collect()
}

pub(super) fn speech_music_rows(
    config: &FadStudyConfig,
    layer: usize,
    data: &LayerData,
    selections: &BTreeMap<GroupKey, Selection>,
) -> Result<Vec<SpeechMusicRow>, FadStudyError> {
    let mut rows = Vec::new();
    for speech in labels_of(data, Family::Emotion, Domain::Speech) {
        let Some(music) = data.stats.keys().find(|k| {
            k.family == Family::Emotion && k.domain == Domain::Music && k.label == speech.label
        }) else {
            continue;
        };
        let (gs, gm) = (&data.stats[speech], &data.stats[music]);
        let fd = PreparedGaussian::new(gs, config.options)?.distance_to(gm)?;
        let (ci_lower, ci_upper) = match (data.rows.get(speech), data.rows.get(music)) {
            (Some((rs, us)), Some((rm, um))) => {
                let cfg = BootstrapConfig {
                    replicates: config.bootstrap,
                    confidence: config.confidence,
                    seed: config.seed ^ fnv1a(speech.label.as_bytes()) ^ layer as u64,
                    options: config.options,
                };
                let set_s = BootstrapSet {
                    rows: rs.view(),
                    units: Some(us.clone()),
                };
                let set_m = BootstrapSet {
                    rows: rm.view(),
                    units: Some(um.clone()),
                };
                let ci = bootstrap_frechet(&set_s, &set_m, &cfg)?;
                (Some(ci.lower), Some(ci.upper))
            }
            _ => (None, None),
        };
        rows.push(SpeechMusicRow {
            layer,
            emotion: speech.label.clone(),
            fad: fd.distance,
            ci_lower,
            ci_upper,
            n_speech: gs.n.unwrap_or(0),
            n_music: gm.n.unwrap_or(0),
            clips_speech: selections.get(speech).map_or(0, Vec::len),
            clips_music: selections.get(music).map_or(0, Vec::len),
            rank_deficient: fd.rank_deficient,
        });
    }
    Ok(rows)
}

/// Every cell of the within-speech, within-music and cross-domain matrices of both families.
pub(super) fn matrix_rows(
    config: &FadStudyConfig,
    layer: usize,
    data: &LayerData,
) -> Result<Vec<PairRow>, FadStudyError> {
    let mut out = Vec::new();
    for family in [Family::Emotion, Family::Quadrant] {
        let speech = labels_of(data, family, Domain::Speech);
        let music = labels_of(data, family, Domain::Music);
        for (comparison, rows, cols) in [
            (Comparison::Speech, &speech, &speech),
            (Comparison::Music, &music, &music),
            (Comparison::Cross, &speech, &music),
        ] {
            for (i, r) in rows.iter().enumerate() {
                let prepared = PreparedGaussian::new(&data.stats[*r], config.options)?;
                for (j, c) in cols.iter().enumerate() {
                    let fad = if comparison.is_within() && j < i {
                        // Symmetric: reuse the cell computed from the other side.
                        out.iter()
                            .find(|p: &&PairRow| {
                                p.layer == layer
                                    && p.family == family
                                    && p.comparison == comparison
                                    && p.row == c.label
                                    && p.col == r.label
                            })
                            .map(|p| p.fad)
                            .expect("upper triangle first")
                    } else if comparison.is_within() && i == j {
                        0.0
                    } else {
                        prepared.distance_to(&data.stats[*c])?.distance
                    };
                    let (nr, nc) = (data.stats[*r].n.unwrap_or(0), data.stats[*c].n.unwrap_or(0));
                    out.push(PairRow {
                        layer,
                        family,
                        comparison,
                        row: r.label.clone(),
                        col: c.label.clone(),
                        fad,
                        n_row: nr,
                        n_col: nc,
                        rank_deficient: nr <= dim_of(data) as u64 || nc <= dim_of(data) as u64,
                    });
                }
            }
        }
    }
    Ok(out)
}

pub(super) fn dim_of(data: &LayerData) -> usize {
    data.stats.values().next().map_or(0, Gaussian::dim)
}
