//! Which clips take part and which samples each emotion or quadrant group uses (matching).

use super::*;

/// Clips with a label, in the chosen corpora, whose cache file reads and matches the others' shape.
pub(super) fn usable_clips<'m>(
    config: &FadStudyConfig,
    manifest: &'m Manifest,
    cache: &EmbeddingCache,
    failures: &mut Vec<crate::RunFailure>,
) -> Result<(Vec<UsableClip<'m>>, ClipShape), FadStudyError> {
    let mut clips = Vec::new();
    let mut shape: Option<ClipShape> = None;
    for record in &manifest.records {
        if !config.corpora.is_empty() && !config.corpora.contains(&record.corpus) {
            continue;
        }
        if record.emotion.is_none() && quadrant_of(record).is_none() {
            continue;
        }
        let path = match cache.path_for(&record.id) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("skipping {}: {e}", record.id);
                failures.push(crate::RunFailure {
                    item: record.id.clone(),
                    path: record.path.clone(),
                    reason: e.to_string(),
                });
                if config.strict {
                    break;
                }
                continue;
            }
        };
        let clip_shape = match read_clip_shape(&path) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("skipping {}: {e}", record.id);
                failures.push(failure(&record.id, &path, e.to_string()));
                if config.strict {
                    break;
                }
                continue;
            }
        };
        let reference = *shape.get_or_insert(clip_shape);
        if (clip_shape.states, clip_shape.dim) != (reference.states, reference.dim)
            || clip_shape.frames == 0
        {
            let reason = format!(
                "shape [{}, {}, {}] differs from the first clip's [{}, _, {}] or has no frames",
                clip_shape.states,
                clip_shape.frames,
                clip_shape.dim,
                reference.states,
                reference.dim
            );
            failures.push(failure(&record.id, &path, reason));
            if config.strict {
                break;
            }
            continue;
        }
        clips.push(UsableClip {
            record,
            path,
            frames: clip_shape.frames,
        });
    }
    match shape {
        Some(s) if !clips.is_empty() => Ok((clips, s)),
        _ => Err(FadStudyError::NoData(format!(
            "no labelled clip of the manifest has a readable cache file under {}",
            cache.dir().display()
        ))),
    }
}

/// Hashes of the audio list and of the cache (fingerprint, entry index, model weights), and the
/// cache's extraction metadata.
pub(super) fn record_inputs(clips: &[UsableClip<'_>], cache: &EmbeddingCache, run: &mut RunFolder) {
    let list: String = clips
        .iter()
        .map(|c| format!("{}\t{}\n", c.record.id, c.record.path))
        .collect();
    run.hash_bytes("audio_list", list.as_bytes());
    let ids: Vec<&str> = clips.iter().map(|c| c.record.id.as_str()).collect();
    run.hash_cache(cache, &ids);
    match CachedClip::open(&clips[0].path).and_then(|c| c.metadata()) {
        Ok(meta) => {
            let pairs: BTreeMap<String, String> = meta
                .to_pairs()
                .into_iter()
                .filter(|(k, _)| k != "source_file" && k != "audio_sha256")
                .collect();
            run.note("cache_metadata", pairs);
        }
        Err(e) => run.note("cache_metadata", format!("unreadable: {e}")),
    }
}

pub(super) fn chosen_layers(
    config: &FadStudyConfig,
    shape: ClipShape,
) -> Result<Vec<usize>, FadStudyError> {
    match &config.layers {
        None => Ok((0..shape.states).collect()),
        Some(layers) if layers.is_empty() => {
            Err(FadStudyError::Invalid("the layer list is empty".into()))
        }
        Some(layers) => {
            if let Some(bad) = layers.iter().find(|l| **l >= shape.states) {
                return Err(FadStudyError::Invalid(format!(
                    "layer {bad} out of range: the cache holds {} hidden states (0..{})",
                    shape.states,
                    shape.states - 1
                )));
            }
            let mut l = layers.clone();
            l.sort_unstable();
            l.dedup();
            Ok(l)
        }
    }
}

/// The quadrant of a record: from its clip-level arousal/valence, else from its emotion.
pub(super) fn quadrant_of(record: &Record) -> Option<Quadrant> {
    match (record.arousal, record.valence) {
        (Some(a), Some(v)) => Quadrant::of(a, v),
        _ => record.emotion.and_then(Emotion::quadrant),
    }
}

pub(super) fn group_members(clips: &[UsableClip<'_>]) -> BTreeMap<GroupKey, Vec<usize>> {
    let mut groups: BTreeMap<GroupKey, Vec<usize>> = BTreeMap::new();
    for (i, clip) in clips.iter().enumerate() {
        let domain = clip.record.domain;
        if let Some(e) = clip.record.emotion {
            let order = Emotion::ALL
                .iter()
                .position(|x| *x == e)
                .unwrap_or(usize::MAX);
            groups
                .entry(GroupKey {
                    family: Family::Emotion,
                    domain,
                    order,
                    label: e.as_str().to_string(),
                })
                .or_default()
                .push(i);
        }
        if let Some(q) = quadrant_of(clip.record) {
            let order = Quadrant::ALL
                .iter()
                .position(|x| *x == q)
                .unwrap_or(usize::MAX);
            groups
                .entry(GroupKey {
                    family: Family::Quadrant,
                    domain,
                    order,
                    label: q.as_str().to_string(),
                })
                .or_default()
                .push(i);
        }
    }
    groups
}

pub(super) fn group_name(key: &GroupKey) -> String {
    format!("{}/{}/{}", key.family.as_str(), key.domain, key.label)
}

pub(super) fn sample_count(config: &FadStudyConfig, selection: &Selection) -> u64 {
    match config.level {
        StatisticsLevel::Frames => selection.iter().map(|(_, f)| f.len() as u64).sum(),
        StatisticsLevel::ClipMeans => selection.len() as u64,
    }
}

/// Available samples of a group before matching.
pub(super) fn available(
    config: &FadStudyConfig,
    clips: &[UsableClip<'_>],
    members: &[usize],
) -> usize {
    match config.level {
        StatisticsLevel::Frames => members.iter().map(|&i| clips[i].frames).sum(),
        StatisticsLevel::ClipMeans => members.len(),
    }
}

/// Draws each group's samples (see the module documentation on matching).
pub(super) fn select_samples(
    config: &FadStudyConfig,
    clips: &[UsableClip<'_>],
    groups: &BTreeMap<GroupKey, Vec<usize>>,
) -> BTreeMap<GroupKey, Selection> {
    let mut target: HashMap<Family, usize> = HashMap::new();
    for (key, members) in groups {
        let n = available(config, clips, members);
        if n >= config.min_samples {
            let slot = target.entry(key.family).or_insert(usize::MAX);
            *slot = (*slot).min(n);
        }
    }
    let mut out = BTreeMap::new();
    for (key, members) in groups {
        let n = available(config, clips, members);
        if n < config.min_samples {
            tracing::warn!(
                "group {} has {n} samples (< {}): left out",
                group_name(key),
                config.min_samples
            );
            continue;
        }
        let keep = match config.matching {
            SampleMatching::Equal => target.get(&key.family).copied().unwrap_or(n),
            SampleMatching::Fixed(k) => k.min(n),
            SampleMatching::Off => n,
        };
        out.insert(key.clone(), draw_group(config, clips, members, key, keep));
    }
    out
}

/// `keep` samples of a group without replacement, seeded by the study seed and the group's name.
pub(super) fn draw_group(
    config: &FadStudyConfig,
    clips: &[UsableClip<'_>],
    members: &[usize],
    key: &GroupKey,
    keep: usize,
) -> Selection {
    let mut rng =
        rand_chacha::ChaCha8Rng::seed_from_u64(config.seed ^ fnv1a(group_name(key).as_bytes()));
    match config.level {
        StatisticsLevel::ClipMeans => {
            let mut chosen: Vec<usize> = if keep < members.len() {
                sample_indices(&mut rng, members.len(), keep).into_vec()
            } else {
                (0..members.len()).collect()
            };
            chosen.sort_unstable();
            chosen
                .into_iter()
                .map(|i| (members[i], Vec::new()))
                .collect()
        }
        StatisticsLevel::Frames => {
            let total: usize = members.iter().map(|&i| clips[i].frames).sum();
            let mut flat: Vec<usize> = if keep < total {
                sample_indices(&mut rng, total, keep).into_vec()
            } else {
                (0..total).collect()
            };
            flat.sort_unstable();
            let mut selection = Vec::new();
            let (mut start, mut at) = (0usize, 0usize);
            for &m in members {
                let end = start + clips[m].frames;
                let mut frames = Vec::new();
                while at < flat.len() && flat[at] < end {
                    frames.push(flat[at] - start);
                    at += 1;
                }
                if !frames.is_empty() {
                    selection.push((m, frames));
                }
                start = end;
            }
            selection
        }
    }
}

/// FNV-1a: a stable hash of group names for seeding (std's hasher is not stable across releases).
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
