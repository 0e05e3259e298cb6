//! Per-layer statistics of every group and the distances between them.

use super::*;

/// One layer's running statistics per selected group (before standardising), and, when
/// bootstrapping, the statistics of every clip of each emotion group (the units a replicate
/// draws), in clip order.
pub(super) struct Accumulated {
    pub(super) dim: usize,
    pub(super) running: BTreeMap<GroupKey, RunningStats>,
    pub(super) units: BTreeMap<GroupKey, Vec<RunningStats>>,
}

/// The order-D statistics of one study (per-clip, per-group and bootstrap units alike), reused
/// from layer to layer: a layer's statistics go back here when it is done and the next layer
/// takes them instead of allocating. The study then allocates as many order-D matrices as one
/// block of layers holds at once, whatever the number of layers (the allocator never sees the
/// hundreds of 768² matrices per layer come and go, which it kept and fragmented: a 3-state
/// base-size study peaked at 5.5–6.9 GB for 2.9 GB in use).
pub(super) struct StatsPool {
    dim: usize,
    free: std::sync::Mutex<Vec<RunningStats>>,
    made: std::sync::atomic::AtomicUsize,
}

impl StatsPool {
    pub(super) fn new(dim: usize) -> StatsPool {
        StatsPool {
            dim,
            free: std::sync::Mutex::new(Vec::new()),
            made: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Statistics to overwrite ([`RunningStats::assign_rows_in`]): what they hold is left over.
    pub(super) fn take(&self) -> RunningStats {
        let reused = self.free.lock().expect("no panic holds the pool").pop();
        reused.unwrap_or_else(|| {
            self.made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            RunningStats::new(self.dim)
        })
    }

    /// Empty statistics.
    pub(super) fn take_empty(&self) -> RunningStats {
        let mut s = self.take();
        s.reset();
        s
    }

    pub(super) fn give(&self, stats: impl IntoIterator<Item = RunningStats>) {
        let mut free = self.free.lock().expect("no panic holds the pool");
        free.extend(stats.into_iter().filter(|s| s.dim() == self.dim));
    }

    /// Order-D statistics allocated so far.
    pub(super) fn made(&self) -> usize {
        self.made.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Memory the per-group and per-clip statistics of the layers read together may take. Every
/// cache entry is read once per block of layers; with the statistics of all layers within this
/// budget (a base-size model, a few hundred clips, no bootstrap, or a bootstrap over a small
/// corpus) that is one pass over the cache.
pub(super) const STATISTICS_BUDGET_BYTES: usize = 3 << 30;

/// The chosen layers in blocks whose statistics fit [`STATISTICS_BUDGET_BYTES`].
pub(super) fn layer_blocks(config: &FadStudyConfig, plan: &Plan<'_>) -> Vec<Vec<usize>> {
    layer_blocks_within(config, plan, STATISTICS_BUDGET_BYTES)
}

/// [`layer_blocks`] for a budget of `budget` bytes.
pub(super) fn layer_blocks_within(
    config: &FadStudyConfig,
    plan: &Plan<'_>,
    budget: usize,
) -> Vec<Vec<usize>> {
    let dim = plan.shape.dim;
    let units: usize = if config.bootstrap >= 2 {
        plan.selections
            .iter()
            .filter(|(k, _)| k.family == Family::Emotion)
            .map(|(_, s)| s.len())
            .sum()
    } else {
        0
    };
    let per_layer = (plan.selections.len() + units).max(1) * dim * dim * 8;
    let per_block = (budget / per_layer.max(1)).max(1);
    plan.layers
        .chunks(per_block)
        .map(<[usize]>::to_vec)
        .collect()
}

/// Reads the selected samples of `layers` from every clip `owns` accepts, each cache entry once
/// for all of them, and folds them into each group's running statistics (one entry per layer,
/// in the order given). The statistics of a clip's samples are computed once per group it
/// belongs to (one symmetric product) and merged; when bootstrapping they are also kept as
/// units. A clip whose data does not read is pushed onto `failures` (once). Every order-D
/// statistic comes from `pool` (and what is not kept goes back to it).
pub(super) fn accumulate_layers(
    config: &FadStudyConfig,
    plan: &Plan<'_>,
    layers: &[usize],
    owns: &dyn Fn(&str) -> bool,
    failures: &mut Vec<crate::RunFailure>,
    pool: &StatsPool,
) -> Result<Vec<Accumulated>, FadStudyError> {
    // Which groups use each clip, and which frames.
    let mut uses: BTreeMap<usize, Vec<(&GroupKey, &Vec<usize>)>> = BTreeMap::new();
    for (key, selection) in &plan.selections {
        for (clip, frames) in selection {
            uses.entry(*clip).or_default().push((key, frames));
        }
    }
    let dim = plan.shape.dim;
    let keep_units = config.bootstrap >= 2;
    let mut out: Vec<Accumulated> = layers
        .iter()
        .map(|_| Accumulated {
            dim,
            running: plan
                .selections
                .keys()
                .map(|k| (k.clone(), pool.take_empty()))
                .collect(),
            units: BTreeMap::new(),
        })
        .collect();
    for (clip_index, users) in uses {
        let clip = &plan.clips[clip_index];
        if !owns(&clip.record.id) {
            continue;
        }
        // Every layer of the block is read before any is folded in, so a clip whose data do
        // not read is left out of all of them alike.
        let samples = match read_layer_samples(config, clip, layers) {
            Ok(s) => s,
            Err((layer, e)) => {
                // The header read earlier; the data did not (truncated or corrupt file).
                failures.push(failure(
                    &clip.record.id,
                    &clip.path,
                    format!("layer {layer}: {e}"),
                ));
                if config.strict {
                    // The caller records it and stops.
                    break;
                }
                continue;
            }
        };
        // The layers side by side, one thread per product. A clip's statistics are computed
        // once per distinct frame selection: groups of both families usually take the same
        // frames of a clip. `slot[u]` is the distinct statistics user `u` takes.
        use rayon::prelude::*;
        let mut slot: Vec<usize> = Vec::with_capacity(users.len());
        let mut distinct: Vec<&Vec<usize>> = Vec::new();
        for (_, frames) in &users {
            let same = distinct
                .iter()
                .position(|f| config.level == StatisticsLevel::ClipMeans || *f == *frames);
            slot.push(same.unwrap_or_else(|| {
                distinct.push(frames);
                distinct.len() - 1
            }));
        }
        let computed: Vec<Vec<RunningStats>> = samples
            .par_iter()
            .map(|samples| {
                distinct
                    .iter()
                    .map(|frames| {
                        let select = match config.level {
                            StatisticsLevel::ClipMeans => None,
                            StatisticsLevel::Frames => Some(frames.as_slice()),
                        };
                        let mut stats = pool.take();
                        stats.assign_rows_in(samples.view(), select, Par::Seq);
                        stats
                    })
                    .collect()
            })
            .collect();
        // A non-finite value among the frames read makes that statistic's mean non-finite: the
        // clip is left out of every layer of the block, as one whose data do not read.
        let bad_layer = computed.iter().position(|stats| {
            stats
                .iter()
                .any(|s| s.mean().iter().any(|v| !v.is_finite()))
        });
        if let Some(at) = bad_layer {
            pool.give(computed.into_iter().flatten());
            failures.push(failure(
                &clip.record.id,
                &clip.path,
                format!(
                    "layer {}: non-finite value (NaN or infinity) in the frames read",
                    layers[at]
                ),
            ));
            if config.strict {
                break;
            }
            continue;
        }
        for (acc, stats) in out.iter_mut().zip(computed) {
            // Every user's group merges its statistics; the emotion groups then keep them as
            // bootstrap units (moved, not copied, into the last group that keeps each).
            for (u, (key, _)) in users.iter().enumerate() {
                acc.running
                    .get_mut(*key)
                    .expect("every selected group has statistics")
                    .merge(&stats[slot[u]]);
            }
            if !keep_units {
                pool.give(stats);
                continue;
            }
            let mut stats: Vec<Option<RunningStats>> = stats.into_iter().map(Some).collect();
            let keeps = |key: &GroupKey| key.family == Family::Emotion;
            for (u, (key, _)) in users.iter().enumerate() {
                if !keeps(key) {
                    continue;
                }
                let at = slot[u];
                let last = !users
                    .iter()
                    .enumerate()
                    .skip(u + 1)
                    .any(|(v, (k, _))| slot[v] == at && keeps(k));
                let unit = if last {
                    stats[at].take().expect("taken only by its last keeper")
                } else {
                    let mut copy = pool.take_empty();
                    copy.merge(stats[at].as_ref().expect("taken only by its last keeper"));
                    copy
                };
                acc.units.entry((*key).clone()).or_default().push(unit);
            }
            // The statistics no emotion group keeps (another family's frame selection).
            pool.give(stats.into_iter().flatten());
        }
    }
    Ok(out)
}

/// Gaussians (standardised on request) and bootstrap units of one layer; the groups' running
/// statistics go back to `pool`.
pub(super) fn finish_layer(
    config: &FadStudyConfig,
    layer: usize,
    acc: Accumulated,
    pool: &StatsPool,
) -> LayerData {
    let Accumulated {
        dim,
        running,
        units,
    } = acc;
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
        pool.give([s]);
    }
    let units = units
        .into_iter()
        .map(|(k, mut units)| {
            if let Some((centre, scale)) = &scaling {
                for u in &mut units {
                    u.standardize(centre, scale);
                }
            }
            (k, units)
        })
        .collect();
    LayerData { stats, units }
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

/// The clip's samples for each of `layers`: its frames, or its mean as one row. The entry is
/// read once; an error names the layer that failed.
pub(super) fn read_layer_samples(
    config: &FadStudyConfig,
    clip: &UsableClip<'_>,
    layers: &[usize],
) -> Result<Vec<Array2<f64>>, (usize, StoreError)> {
    let first = layers.first().copied().unwrap_or(0);
    let cached = CachedClip::open(&clip.path).map_err(|e| (first, e))?;
    let means = match config.level {
        StatisticsLevel::ClipMeans => Some(cached.means().map_err(|e| (first, e))?),
        StatisticsLevel::Frames => None,
    };
    layers
        .iter()
        .map(|&layer| match &means {
            None => {
                let f = cached.layer_frames(layer).map_err(|e| (layer, e))?;
                Ok(Array2::from_shape_vec((f.rows, f.dim), f.values).expect("rows × dim values"))
            }
            Some(m) => {
                if layer >= m.rows {
                    return Err((layer, cached.layer_mean(layer).unwrap_err()));
                }
                let row = m.row(layer).to_vec();
                Ok(Array2::from_shape_vec((1, row.len()), row).expect("one row"))
            }
        })
        .collect()
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
        // The bootstrap interval around the distance just computed (not computed again).
        let (ci_lower, ci_upper) = match (data.units.get(speech), data.units.get(music)) {
            (Some(us), Some(um)) => {
                let cfg = BootstrapConfig {
                    replicates: config.bootstrap,
                    confidence: config.confidence,
                    seed: config.seed ^ fnv1a(speech.label.as_bytes()) ^ layer as u64,
                    options: config.options,
                };
                let ci = bootstrap_frechet_units_around(us, um, fd.distance, &cfg)?;
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
/// Within a domain the matrix is symmetric with a zero diagonal, so only the cells above the
/// diagonal are computed; the distinct cells are computed in parallel (each row group's
/// factorisation once), then laid out in row order.
pub(super) fn matrix_rows(
    config: &FadStudyConfig,
    layer: usize,
    data: &LayerData,
) -> Result<Vec<PairRow>, FadStudyError> {
    use rayon::prelude::*;
    type Matrix<'a> = (Family, Comparison, Vec<&'a GroupKey>, Vec<&'a GroupKey>);
    let mut matrices: Vec<Matrix<'_>> = Vec::new();
    for family in [Family::Emotion, Family::Quadrant] {
        let speech = labels_of(data, family, Domain::Speech);
        let music = labels_of(data, family, Domain::Music);
        matrices.push((family, Comparison::Speech, speech.clone(), speech.clone()));
        matrices.push((family, Comparison::Music, music.clone(), music.clone()));
        matrices.push((family, Comparison::Cross, speech, music));
    }
    // The distinct cells: (matrix, row, column).
    let cells: Vec<(usize, usize, usize)> = matrices
        .iter()
        .enumerate()
        .flat_map(|(m, (_, comparison, rows, cols))| {
            let within = comparison.is_within();
            (0..rows.len()).flat_map(move |i| {
                (0..cols.len())
                    .filter(move |&j| !within || j > i)
                    .map(move |j| (m, i, j))
            })
        })
        .collect();
    // Each row group's factorisation once (the same group may head rows of several matrices).
    let heads: std::collections::BTreeSet<&GroupKey> =
        cells.iter().map(|&(m, i, _)| matrices[m].2[i]).collect();
    let prepared: BTreeMap<&GroupKey, PreparedGaussian> = heads
        .into_par_iter()
        .map(|k| {
            let g = &data.stats[k];
            Ok((k, PreparedGaussian::new_in(g, config.options, Par::Seq)?))
        })
        .collect::<Result<_, FadError>>()?;
    let values: Vec<f64> = cells
        .par_iter()
        .map(|&(m, i, j)| {
            let (_, _, rows, cols) = &matrices[m];
            // One thread per cell: the cells run side by side.
            Ok(prepared[rows[i]]
                .distance_to_in(&data.stats[cols[j]], Par::Seq)?
                .distance)
        })
        .collect::<Result<_, FadError>>()?;
    let computed: HashMap<(usize, usize, usize), f64> = cells.into_iter().zip(values).collect();
    let dim = dim_of(data);
    let mut out = Vec::new();
    for (m, (family, comparison, rows, cols)) in matrices.iter().enumerate() {
        for (i, r) in rows.iter().enumerate() {
            for (j, c) in cols.iter().enumerate() {
                let fad = match (comparison.is_within(), i.cmp(&j)) {
                    (true, std::cmp::Ordering::Equal) => 0.0,
                    // Symmetric: the cell computed from the other side.
                    (true, std::cmp::Ordering::Greater) => computed[&(m, j, i)],
                    _ => computed[&(m, i, j)],
                };
                let (nr, nc) = (data.stats[*r].n.unwrap_or(0), data.stats[*c].n.unwrap_or(0));
                out.push(PairRow {
                    layer,
                    family: *family,
                    comparison: *comparison,
                    row: r.label.clone(),
                    col: c.label.clone(),
                    fad,
                    n_row: nr,
                    n_col: nc,
                    rank_deficient: nr <= dim as u64 || nc <= dim as u64,
                });
            }
        }
    }
    Ok(out)
}

pub(super) fn dim_of(data: &LayerData) -> usize {
    data.stats.values().next().map_or(0, Gaussian::dim)
}
