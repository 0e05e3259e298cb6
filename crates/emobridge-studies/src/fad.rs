//! The per-emotion Fréchet audio distance study (Sun et al., ICASSP 2025, §FAD; emotion-bias
//! quadrant matrices after arXiv 2409.15545).
//!
//! For every hidden state (layer) of one cached model:
//!
//! 1. **speech vs music per shared emotion** — FAD between the speech clips and the music clips of
//!    each emotion present in both domains (with bootstrap intervals on request);
//! 2. **emotion × emotion matrices** within speech, within music and across domains (rows speech,
//!    columns music);
//! 3. the same three **quadrant × quadrant** matrices, quadrants taken from the clip's
//!    arousal/valence when both are given, else from the emotion's nominal circumplex point
//!    (neutral has no quadrant).
//!
//! Embeddings come from the cache `CACHE/<model-tag>/<clip-id>.safetensors` (see
//! `emobridge_fad::cache`), clips from the manifest. A clip whose cache file is missing or
//! unreadable is listed in `run.json` and left out; the study goes on.
//!
//! **Statistics level**: `frames` (default) treats every frame as a sample, as fadtk does;
//! `clip-means` uses one mean vector per clip (the cache's `mean` tensor).
//!
//! **Matched sample sizes**: FAD grows as the sample shrinks (its bias is ~1/n), so groups of
//! different sizes are not comparable. With `matching = equal` (default) every group of a family
//! (emotion groups; quadrant groups) is subsampled without replacement to the size of the
//! smallest group of that family, so every cell of every matrix and every layer uses the same n;
//! `fixed(n)` uses n for all groups (smaller groups keep all their samples, flagged); `off` keeps
//! everything. The subsets are drawn once per group from the seed (the same frames for every
//! layer), and n is recorded in every table row and in `run.json`.
//!
//! Outputs in the run folder: `speech_vs_music.{csv,json,md}`, `pairs.{csv,json}` (every matrix
//! cell, long format), `heatmaps/layerNN_<family>_<comparison>.{png,svg}`,
//! `fad_by_layer.{png,svg}`, `summary.md`, `run.json`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use emobridge_corpus::{Domain, Emotion, Manifest, Quadrant, Record};
use emobridge_fad::bootstrap::{bootstrap_frechet, BootstrapConfig, BootstrapSet};
use emobridge_fad::cache::{clip_path, read_clip_shape, CachedClip, ClipShape};
use emobridge_fad::frechet::{FrechetOptions, PreparedGaussian};
use emobridge_fad::{FadError, Gaussian, RunningStats};
use emobridge_report::{
    write_heatmap, write_line_chart_with, Band, ChartExtras, Heatmap, LineChart, ReportError,
    Series, Table,
};
use ndarray::Array2;
use rand::seq::index::sample as sample_indices;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::{RunFolder, RunFolderError};

mod shards;
pub use shards::{
    incomplete_shards, merge_shards, run_shard, shard_dir, shard_record, ShardRecord,
};

/// What one sample is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum StatisticsLevel {
    /// Every frame of every clip is a sample (fadtk's convention).
    #[default]
    Frames,
    /// One sample per clip: the mean over its frames.
    ClipMeans,
}

/// How group sizes are matched before computing distances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SampleMatching {
    /// Subsample every group of a family to its smallest group's size.
    #[default]
    Equal,
    /// Subsample every group to this many samples (smaller groups keep all theirs).
    Fixed(usize),
    /// Use every sample.
    Off,
}

/// Settings of the FAD study; `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FadStudyConfig {
    /// Frames (default) or clip means.
    pub level: StatisticsLevel,
    /// Hidden-state indices to analyse (0 = input to the first transformer layer); `None` (default)
    /// means all states in the cache.
    pub layers: Option<Vec<usize>>,
    /// Sample-size matching. Default `Equal`.
    pub matching: SampleMatching,
    /// Groups with fewer samples than this (after reading) are left out. Default 2.
    pub min_samples: usize,
    /// Only clips of these corpora (empty = all, the default).
    pub corpora: Vec<String>,
    /// Bootstrap replicates for the speech-vs-music intervals, resampling whole clips; 0 (default)
    /// turns intervals off.
    pub bootstrap: usize,
    /// Coverage of the bootstrap intervals. Default 0.95.
    pub confidence: f64,
    /// Seed of the subsampling and the bootstrap. Default 0.
    pub seed: u64,
    /// Numerical options of the distance.
    pub options: FrechetOptions,
    /// Draw heatmaps and the per-layer chart. Default true.
    pub plots: bool,
    /// Z-score every dimension by the pooled mean and standard deviation of all selected
    /// emotion-labelled samples of the layer (both domains) before measuring distances.
    /// Needed for hand-crafted descriptors, whose units differ by orders of magnitude (formant
    /// bandwidths in Hz next to log energies) so raw FAD measures mostly the widest column.
    /// The transform is the same diagonal map for every group, applied to each Gaussian
    /// (μ → D⁻¹(μ − m), Σ → D⁻¹ΣD⁻¹), so it is exact. Default false (SSL embeddings are
    /// compared as they are, as fadtk does).
    pub standardize: bool,
}

impl Default for FadStudyConfig {
    fn default() -> Self {
        FadStudyConfig {
            level: StatisticsLevel::Frames,
            layers: None,
            matching: SampleMatching::Equal,
            min_samples: 2,
            corpora: Vec::new(),
            bootstrap: 0,
            confidence: 0.95,
            seed: 0,
            options: FrechetOptions::default(),
            plots: true,
            standardize: false,
        }
    }
}

/// Why the study stopped (per-clip problems do not stop it; they are listed in `run.json`).
#[derive(Debug, thiserror::Error)]
pub enum FadStudyError {
    #[error(transparent)]
    Run(#[from] RunFolderError),
    #[error(transparent)]
    Fad(#[from] FadError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("{0}")]
    Invalid(String),
    #[error("no usable clips: {0}")]
    NoData(String),
}

/// A group family: emotions or quadrants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Emotion,
    Quadrant,
}

impl Family {
    fn as_str(self) -> &'static str {
        match self {
            Family::Emotion => "emotion",
            Family::Quadrant => "quadrant",
        }
    }
}

/// A set of samples: one domain, one label of one family.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct GroupKey {
    family: Family,
    domain: Domain,
    /// Canonical order index of the label (emotion or quadrant), then its name.
    order: usize,
    label: String,
}

/// One speech-vs-music distance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpeechMusicRow {
    pub layer: usize,
    pub emotion: String,
    pub fad: f64,
    pub ci_lower: Option<f64>,
    pub ci_upper: Option<f64>,
    pub n_speech: u64,
    pub n_music: u64,
    pub clips_speech: usize,
    pub clips_music: usize,
    pub rank_deficient: bool,
}

/// One matrix cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairRow {
    pub layer: usize,
    pub family: Family,
    /// `speech`, `music` (within a domain) or `cross` (rows speech, columns music).
    pub comparison: String,
    pub row: String,
    pub col: String,
    pub fad: f64,
    pub n_row: u64,
    pub n_col: u64,
    pub rank_deficient: bool,
}

/// What [`run`] produced.
#[derive(Debug, Clone)]
pub struct FadStudyOutcome {
    pub run_dir: PathBuf,
    pub layers: Vec<usize>,
    pub speech_vs_music: Vec<SpeechMusicRow>,
    pub pairs: Vec<PairRow>,
    /// Samples per group after matching, e.g. `emotion/speech/happy` → n.
    pub group_sizes: BTreeMap<String, u64>,
    pub failures: Vec<crate::RunFailure>,
}

/// A clip that made it through reading.
struct UsableClip<'m> {
    record: &'m Record,
    path: PathBuf,
    frames: usize,
}

/// The samples a group uses: per clip (index into the usable clips), the chosen frame indices
/// (all frames for clip means, where the clip is one sample).
type Selection = Vec<(usize, Vec<usize>)>;

/// Runs the study on the cached embeddings of `model_tag` under `cache_dir` for the clips of
/// `manifest`, writing everything into `out_dir`.
pub fn run(
    config: &FadStudyConfig,
    manifest: &Manifest,
    cache_dir: &Path,
    model_tag: &str,
    out_dir: &Path,
) -> Result<FadStudyOutcome, FadStudyError> {
    study(
        config,
        manifest,
        cache_dir,
        model_tag,
        out_dir,
        LayerSource::InProcess,
    )
}

/// Where each layer's per-group statistics come from.
enum LayerSource<'a> {
    /// Read every selected clip here.
    InProcess,
    /// Merge the statistics the shards of a sharded run saved (see [`run_shard`]).
    Shards { dir: &'a Path, count: usize },
}

fn study(
    config: &FadStudyConfig,
    manifest: &Manifest,
    cache_dir: &Path,
    model_tag: &str,
    out_dir: &Path,
    source: LayerSource<'_>,
) -> Result<FadStudyOutcome, FadStudyError> {
    validate(config)?;
    let mut run = RunFolder::create(out_dir, "fad")?;
    run.set_config(config, config.seed);
    run.note("model_tag", model_tag);
    run.hash_bytes("manifest", &manifest.to_csv());

    let plan = plan(config, manifest, cache_dir, model_tag)?;
    for f in &plan.header_failures {
        run.fail(&f.item, &f.path, &f.reason);
    }
    record_inputs(&plan.clips, &mut run);
    run.note("group_sizes", &plan.group_sizes);
    run.note("dim", plan.shape.dim);
    run.note("states_in_cache", plan.shape.states);
    run.note("statistics_level", config.level);

    if let LayerSource::Shards { dir, count } = &source {
        run.note("shards", count);
        // Every shard must have planned what this merge plans; their read failures are listed.
        for record in shards::load_shard_records(dir, *count, &plan.fingerprint)? {
            for f in record.failures {
                run.fail(f.item, f.path, f.reason);
            }
        }
    }
    let mut speech_vs_music = Vec::new();
    let mut pairs = Vec::new();
    for &layer in &plan.layers {
        tracing::info!(layer, "FAD study: layer {layer}");
        let accumulated = match &source {
            LayerSource::Shards { dir, count } => shards::merge_layer(&plan, dir, *count, layer)?,
            LayerSource::InProcess => {
                let mut failures = Vec::new();
                let acc = accumulate(config, &plan, layer, &|_| true, &mut failures)?;
                for f in failures {
                    run.fail(f.item, f.path, f.reason);
                }
                acc
            }
        };
        let data = finish_layer(config, layer, accumulated);
        speech_vs_music.extend(speech_music_rows(config, layer, &data, &plan.selections)?);
        pairs.extend(matrix_rows(config, layer, &data)?);
    }
    write_outputs(
        config,
        &mut run,
        &plan.layers,
        &speech_vs_music,
        &pairs,
        model_tag,
    )?;
    let failures = run.failures().to_vec();
    let run_dir = run.dir().to_path_buf();
    run.finish()?;
    Ok(FadStudyOutcome {
        run_dir,
        layers: plan.layers,
        speech_vs_music,
        pairs,
        group_sizes: plan.group_sizes,
        failures,
    })
}

/// Everything decided before a single frame is read, identical in every shard of a sharded run:
/// the usable clips, the layers, and each group's sample selection.
struct Plan<'m> {
    clips: Vec<UsableClip<'m>>,
    shape: ClipShape,
    layers: Vec<usize>,
    selections: BTreeMap<GroupKey, Selection>,
    group_sizes: BTreeMap<String, u64>,
    /// Clips left out because their cache header did not read or did not fit.
    header_failures: Vec<crate::RunFailure>,
    /// SHA-256 of the settings and the clip list: shards computed from different caches or
    /// settings refuse to merge.
    fingerprint: String,
}

fn plan<'m>(
    config: &FadStudyConfig,
    manifest: &'m Manifest,
    cache_dir: &Path,
    model_tag: &str,
) -> Result<Plan<'m>, FadStudyError> {
    let mut header_failures = Vec::new();
    let (clips, shape) =
        usable_clips(config, manifest, cache_dir, model_tag, &mut header_failures)?;
    let layers = chosen_layers(config, shape)?;
    let groups = group_members(&clips);
    let selections = select_samples(config, &clips, &groups);
    let group_sizes: BTreeMap<String, u64> = selections
        .iter()
        .map(|(k, s)| (group_name(k), sample_count(config, s)))
        .collect();
    // Plots are drawn by the merging step only; every other setting changes the statistics.
    let settings = FadStudyConfig {
        plots: true,
        ..config.clone()
    };
    let clip_list: Vec<(&str, usize)> = clips
        .iter()
        .map(|c| (c.record.id.as_str(), c.frames))
        .collect();
    let fingerprint = crate::sha256_hex(
        serde_json::json!({
            "config": settings,
            "model_tag": model_tag,
            "states": shape.states,
            "dim": shape.dim,
            "layers": layers,
            "clips": clip_list,
            "group_sizes": group_sizes,
        })
        .to_string()
        .as_bytes(),
    );
    Ok(Plan {
        clips,
        shape,
        layers,
        selections,
        group_sizes,
        header_failures,
        fingerprint,
    })
}

fn validate(config: &FadStudyConfig) -> Result<(), FadStudyError> {
    if config.min_samples < 2 {
        return Err(FadStudyError::Invalid(
            "min_samples must be at least 2 (a covariance needs two samples)".into(),
        ));
    }
    if let SampleMatching::Fixed(n) = config.matching {
        if n < 2 {
            return Err(FadStudyError::Invalid(format!(
                "matching fixed({n}): n must be at least 2"
            )));
        }
    }
    if config.bootstrap == 1 || !(config.confidence > 0.0 && config.confidence < 1.0) {
        return Err(FadStudyError::Invalid(format!(
            "bootstrap needs 0 or ≥ 2 replicates and 0 < confidence < 1 (got {} and {})",
            config.bootstrap, config.confidence
        )));
    }
    Ok(())
}

/// Clips with a label, in the chosen corpora, whose cache file reads and matches the others' shape.
fn usable_clips<'m>(
    config: &FadStudyConfig,
    manifest: &'m Manifest,
    cache_dir: &Path,
    model_tag: &str,
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
        let path = match clip_path(cache_dir, model_tag, &record.id) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("skipping {}: {e}", record.id);
                failures.push(crate::RunFailure {
                    item: record.id.clone(),
                    path: record.path.clone(),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let clip_shape = match read_clip_shape(&path) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("skipping {}: {e}", record.id);
                failures.push(failure(&record.id, &path, e.to_string()));
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
            cache_dir.join(model_tag).display()
        ))),
    }
}

/// Hashes of the audio list and, when the cache records it, the model weights.
fn record_inputs(clips: &[UsableClip<'_>], run: &mut RunFolder) {
    let list: String = clips
        .iter()
        .map(|c| format!("{}\t{}\n", c.record.id, c.record.path))
        .collect();
    run.hash_bytes("audio_list", list.as_bytes());
    let cache_index: String = clips
        .iter()
        .map(|c| {
            format!(
                "{}\t{}\n",
                c.path.file_name().unwrap_or_default().to_string_lossy(),
                std::fs::metadata(&c.path).map(|m| m.len()).unwrap_or(0)
            )
        })
        .collect();
    run.hash_bytes("cache_index", cache_index.as_bytes());
    if let Ok(first) = CachedClip::open(&clips[0].path) {
        let meta: BTreeMap<String, String> = first
            .metadata()
            .into_iter()
            .filter(|(k, _)| k != "source_file" && k != "audio_sha256")
            .collect();
        if let Some(w) = meta
            .iter()
            .find(|(k, _)| k.contains("weights") && k.contains("sha256"))
            .map(|(_, v)| v.clone())
        {
            run.set_hash("model_weights", w);
        } else {
            run.note("model_weights", "not recorded in the cache metadata");
        }
        run.note("cache_metadata", meta);
    }
}

fn chosen_layers(config: &FadStudyConfig, shape: ClipShape) -> Result<Vec<usize>, FadStudyError> {
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
fn quadrant_of(record: &Record) -> Option<Quadrant> {
    match (record.arousal, record.valence) {
        (Some(a), Some(v)) => Quadrant::of(a, v),
        _ => record.emotion.and_then(Emotion::quadrant),
    }
}

fn group_members(clips: &[UsableClip<'_>]) -> BTreeMap<GroupKey, Vec<usize>> {
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

fn group_name(key: &GroupKey) -> String {
    format!("{}/{}/{}", key.family.as_str(), key.domain, key.label)
}

fn sample_count(config: &FadStudyConfig, selection: &Selection) -> u64 {
    match config.level {
        StatisticsLevel::Frames => selection.iter().map(|(_, f)| f.len() as u64).sum(),
        StatisticsLevel::ClipMeans => selection.len() as u64,
    }
}

/// Available samples of a group before matching.
fn available(config: &FadStudyConfig, clips: &[UsableClip<'_>], members: &[usize]) -> usize {
    match config.level {
        StatisticsLevel::Frames => members.iter().map(|&i| clips[i].frames).sum(),
        StatisticsLevel::ClipMeans => members.len(),
    }
}

/// Draws each group's samples (see the module documentation on matching).
fn select_samples(
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
fn draw_group(
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
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// One layer's statistics per group, and (when bootstrapping) the rows and clip ranges of the
/// emotion groups.
struct LayerData {
    stats: BTreeMap<GroupKey, Gaussian>,
    rows: BTreeMap<GroupKey, (Array2<f64>, Vec<std::ops::Range<usize>>)>,
}

/// One layer's running statistics per selected group (before standardising), and the kept rows
/// of the emotion groups when bootstrapping.
struct Accumulated {
    dim: usize,
    running: BTreeMap<GroupKey, RunningStats>,
    kept: BTreeMap<GroupKey, (Vec<f64>, Vec<std::ops::Range<usize>>)>,
}

/// Reads the selected samples of `layer` from every clip `owns` accepts and folds them into each
/// group's running statistics. A clip whose data does not read is pushed onto `failures`.
fn accumulate(
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
fn finish_layer(config: &FadStudyConfig, layer: usize, acc: Accumulated) -> LayerData {
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

fn failure(item: &str, path: &Path, reason: impl Into<String>) -> crate::RunFailure {
    crate::RunFailure {
        item: item.to_string(),
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Pooled per-dimension mean and standard deviation of the emotion-family groups (which
/// partition the selected clips within each domain). A constant column keeps scale 1.
fn pooled_moments(running: &BTreeMap<GroupKey, RunningStats>, dim: usize) -> (Vec<f64>, Vec<f64>) {
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
fn standardize_gaussian(g: &mut Gaussian, centre: &[f64], scale: &[f64]) {
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
fn read_samples(
    config: &FadStudyConfig,
    clip: &UsableClip<'_>,
    layer: usize,
) -> Result<Array2<f64>, FadError> {
    let cached = CachedClip::open(&clip.path)?;
    match config.level {
        StatisticsLevel::Frames => cached.layer_frames(layer),
        StatisticsLevel::ClipMeans => {
            let mean = cached.layer_mean(layer)?;
            let d = mean.len();
            Ok(Array2::from_shape_vec((1, d), mean).expect("one row"))
        }
    }
}

fn labels_of(data: &LayerData, family: Family, domain: Domain) -> Vec<&GroupKey> {
    data.stats
        .keys()
        .filter(|k| k.family == family && k.domain == domain)
        .collect()
}

fn speech_music_rows(
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
fn matrix_rows(
    config: &FadStudyConfig,
    layer: usize,
    data: &LayerData,
) -> Result<Vec<PairRow>, FadStudyError> {
    let mut out = Vec::new();
    for family in [Family::Emotion, Family::Quadrant] {
        let speech = labels_of(data, family, Domain::Speech);
        let music = labels_of(data, family, Domain::Music);
        for (comparison, rows, cols) in [
            ("speech", &speech, &speech),
            ("music", &music, &music),
            ("cross", &speech, &music),
        ] {
            for (i, r) in rows.iter().enumerate() {
                let prepared = PreparedGaussian::new(&data.stats[*r], config.options)?;
                for (j, c) in cols.iter().enumerate() {
                    let fad = if comparison != "cross" && j < i {
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
                    } else if comparison != "cross" && i == j {
                        0.0
                    } else {
                        prepared.distance_to(&data.stats[*c])?.distance
                    };
                    let (nr, nc) = (data.stats[*r].n.unwrap_or(0), data.stats[*c].n.unwrap_or(0));
                    out.push(PairRow {
                        layer,
                        family,
                        comparison: comparison.to_string(),
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

fn dim_of(data: &LayerData) -> usize {
    data.stats.values().next().map_or(0, Gaussian::dim)
}

fn write_outputs(
    config: &FadStudyConfig,
    run: &mut RunFolder,
    layers: &[usize],
    svm: &[SpeechMusicRow],
    pairs: &[PairRow],
    model_tag: &str,
) -> Result<(), FadStudyError> {
    let mut t = Table::new([
        "layer",
        "emotion",
        "fad",
        "ci_lower",
        "ci_upper",
        "n_speech",
        "n_music",
        "clips_speech",
        "clips_music",
        "rank_deficient",
    ]);
    for r in svm {
        t.push(vec![
            r.layer.into(),
            r.emotion.clone().into(),
            r.fad.into(),
            r.ci_lower.into(),
            r.ci_upper.into(),
            r.n_speech.into(),
            r.n_music.into(),
            r.clips_speech.into(),
            r.clips_music.into(),
            r.rank_deficient.into(),
        ])?;
    }
    for (name, write) in [
        ("speech_vs_music.csv", 0),
        ("speech_vs_music.json", 1),
        ("speech_vs_music.md", 2),
    ] {
        let path = run.path(name);
        match write {
            0 => t.write_csv(&path)?,
            1 => t.write_json(&path)?,
            _ => t.write_markdown(&path, 4)?,
        }
        run.output(name);
    }
    let mut p = Table::new([
        "layer",
        "family",
        "comparison",
        "row",
        "col",
        "fad",
        "n_row",
        "n_col",
        "rank_deficient",
    ]);
    for r in pairs {
        p.push(vec![
            r.layer.into(),
            r.family.as_str().into(),
            r.comparison.clone().into(),
            r.row.clone().into(),
            r.col.clone().into(),
            r.fad.into(),
            r.n_row.into(),
            r.n_col.into(),
            r.rank_deficient.into(),
        ])?;
    }
    p.write_csv(&run.path("pairs.csv"))?;
    p.write_json(&run.path("pairs.json"))?;
    run.output("pairs.csv");
    run.output("pairs.json");
    let closest = report_headlines(run, layers, svm, model_tag)?;
    if config.plots {
        write_plots(run, layers, svm, pairs, model_tag, closest)?;
    }
    let summary = summary_markdown(config, layers, &t);
    emobridge_report::write_atomic(&run.path("summary.md"), summary.as_bytes())?;
    run.output("summary.md");
    Ok(())
}

fn write_plots(
    run: &mut RunFolder,
    layers: &[usize],
    svm: &[SpeechMusicRow],
    pairs: &[PairRow],
    model_tag: &str,
    shown_layer: Option<usize>,
) -> Result<(), FadStudyError> {
    for &layer in layers {
        for family in [Family::Emotion, Family::Quadrant] {
            for comparison in ["speech", "music", "cross"] {
                let cells: Vec<&PairRow> = pairs
                    .iter()
                    .filter(|p| {
                        p.layer == layer && p.family == family && p.comparison == comparison
                    })
                    .collect();
                if cells.is_empty() {
                    continue;
                }
                let mut row_labels: Vec<String> = Vec::new();
                let mut col_labels: Vec<String> = Vec::new();
                for c in &cells {
                    if !row_labels.contains(&c.row) {
                        row_labels.push(c.row.clone());
                    }
                    if !col_labels.contains(&c.col) {
                        col_labels.push(c.col.clone());
                    }
                }
                let values = row_labels
                    .iter()
                    .map(|r| {
                        col_labels
                            .iter()
                            .map(|c| {
                                cells
                                    .iter()
                                    .find(|p| &p.row == r && &p.col == c)
                                    .map_or(f64::NAN, |p| p.fad)
                            })
                            .collect()
                    })
                    .collect();
                let (row_axis, col_axis, what) = match comparison {
                    "speech" => ("speech", "speech", "within speech"),
                    "music" => ("music", "music", "within music"),
                    _ => ("speech", "music", "speech × music"),
                };
                let name = state_name(model_tag, layer);
                let title = format!(
                    "FAD by {}, {}: {what}",
                    family.as_str(),
                    name.trim_start_matches("the ")
                );
                let readable = |labels: Vec<String>| -> Vec<String> {
                    labels.iter().map(|l| quadrant_label(l)).collect()
                };
                let (row_labels, col_labels) = match family {
                    Family::Quadrant => (readable(row_labels), readable(col_labels)),
                    Family::Emotion => (row_labels, col_labels),
                };
                let h = Heatmap {
                    title: title.clone(),
                    row_labels,
                    col_labels,
                    values,
                    row_axis: format!("{row_axis} {}", family.as_str()),
                    col_axis: format!("{col_axis} {}", family.as_str()),
                    value_label: "FAD".into(),
                };
                let stem = format!("heatmaps/layer{layer:02}_{}_{comparison}", family.as_str());
                write_heatmap(
                    &h,
                    &run.path(&format!("{stem}.png")),
                    &run.path(&format!("{stem}.svg")),
                )?;
                run.output(format!("{stem}.png"));
                if shown_layer == Some(layer) && comparison == "cross" {
                    let caption = match family {
                        Family::Emotion => format!(
                            "FAD between the speech clips of each row's emotion and the music clips \
                             of each column's, in {name}; darker is closer.\nThe diagonal pairs the \
                             same emotion across domains: a diagonal darker than the rest of its row \
                             means that emotion sounds alike in speech and music."
                        ),
                        Family::Quadrant => format!(
                            "The same for the arousal/valence quadrants (A+/A−: high or low \
                             arousal, V+/V−: positive or negative valence), in {name}; darker is \
                             closer.\nA dark diagonal means speech and music of the same quadrant \
                             sit together."
                        ),
                    };
                    run.figure(format!("{stem}.svg"), title, caption);
                } else {
                    run.output(format!("{stem}.svg"));
                }
            }
        }
    }
    let mut emotions: Vec<String> = Vec::new();
    for r in svm {
        if !emotions.contains(&r.emotion) {
            emotions.push(r.emotion.clone());
        }
    }
    let series = emotions
        .iter()
        .map(|e| Series {
            label: e.clone(),
            points: svm
                .iter()
                .filter(|r| &r.emotion == e)
                .map(|r| (r.layer as f64, r.fad))
                .collect(),
        })
        .collect();
    let bands: Vec<Band> = emotions
        .iter()
        .map(|e| Band {
            label: e.clone(),
            points: svm
                .iter()
                .filter(|r| &r.emotion == e)
                .filter_map(|r| Some((r.layer as f64, r.ci_lower?, r.ci_upper?)))
                .collect(),
        })
        .filter(|b| !b.points.is_empty())
        .collect();
    let chart = LineChart {
        title: format!("FAD between speech and music per emotion ({model_tag})"),
        x_label: emobridge_report::plot::LAYER_AXIS.into(),
        y_label: "FAD (lower = closer)".into(),
        series,
    };
    // One layer (a descriptor set) has no curve: its numbers are in the table.
    if layers.len() > 1 && !svm.is_empty() {
        let with_bands = !bands.is_empty();
        write_line_chart_with(
            &chart,
            &ChartExtras {
                bands,
                reference: None,
                band_label: "95% bootstrap interval".into(),
            },
            &run.path("fad_by_layer.png"),
            &run.path("fad_by_layer.svg"),
        )?;
        run.figure(
            "fad_by_layer.svg",
            "FAD between speech and music, layer by layer",
            format!(
                "FAD between the speech and the music of each emotion at every layer{}.\nLower \
                 is closer: the dips show the layers at which the encoder represents an emotion \
                 alike in both domains.",
                match (with_bands, emotions.len() > 4) {
                    (true, true) => "; whiskers are 95% bootstrap intervals over clips",
                    (true, false) => "; shaded bands are 95% bootstrap intervals over clips",
                    _ => "",
                }
            ),
        );
        run.output("fad_by_layer.png");
    }
    Ok(())
}

/// "Q2 (A+ V−)": a quadrant with the signs of its arousal (A) and valence (V).
fn quadrant_label(label: &str) -> String {
    match Quadrant::parse(label) {
        Some(q) => {
            let sign = |v: f32| if v > 0.0 { '+' } else { '−' };
            let (a, v) = q.signs();
            format!("{} (A{} V{})", q.as_str(), sign(a), sign(v))
        }
        None => label.to_string(),
    }
}

/// A hidden state in the field's terms: the descriptor set for descriptor caches, else the layer.
fn state_name(model_tag: &str, layer: usize) -> String {
    let tag = model_tag.to_ascii_lowercase();
    if tag.starts_with("egemaps") {
        "the eGeMAPS descriptors".into()
    } else if tag.starts_with("compare") {
        "the ComParE descriptors".into()
    } else {
        emobridge_report::plot::layer_name(layer)
    }
}

/// The layer × emotion table of speech-vs-music FAD, the closest and farthest emotions as
/// headlines (at the layer where speech and music are closest on average), and that layer.
fn report_headlines(
    run: &mut RunFolder,
    layers: &[usize],
    svm: &[SpeechMusicRow],
    model_tag: &str,
) -> Result<Option<usize>, FadStudyError> {
    let mut emotions: Vec<&str> = Vec::new();
    for r in svm {
        if !emotions.contains(&r.emotion.as_str()) {
            emotions.push(&r.emotion);
        }
    }
    let mut t = Table::new(std::iter::once("layer").chain(emotions.iter().copied()));
    let mut best: Option<(usize, f64)> = None;
    for &layer in layers {
        let row: Vec<Option<f64>> = emotions
            .iter()
            .map(|e| {
                svm.iter()
                    .find(|r| r.layer == layer && r.emotion == *e)
                    .map(|r| r.fad)
            })
            .collect();
        let present: Vec<f64> = row.iter().flatten().copied().collect();
        if !present.is_empty() {
            let mean = present.iter().sum::<f64>() / present.len() as f64;
            if best.is_none_or(|(_, m)| mean < m) {
                best = Some((layer, mean));
            }
        }
        t.push(
            std::iter::once(layer.into())
                .chain(row.into_iter().map(Into::into))
                .collect(),
        )?;
    }
    t.write_csv(&run.path("fad_by_layer.csv"))?;
    run.table(
        "fad_by_layer.csv",
        "FAD between speech and music per emotion",
        "One row per layer, one column per emotion: the Fréchet distance between that emotion's \
         speech and its music.\nSmaller is closer; values compare across the table because every \
         group is subsampled to the same size.",
    );
    let Some((layer, mean)) = best else {
        return Ok(None);
    };
    let name = state_name(model_tag, layer);
    let place = if name.starts_with("the ") {
        format!("In {name} ({model_tag})")
    } else {
        format!("At {name} of {model_tag}")
    };
    let at: Vec<&SpeechMusicRow> = svm.iter().filter(|r| r.layer == layer).collect();
    let closest = at.iter().min_by(|a, b| a.fad.total_cmp(&b.fad));
    let farthest = at.iter().max_by(|a, b| a.fad.total_cmp(&b.fad));
    if let (Some(c), Some(f)) = (closest, farthest) {
        let ci = |r: &SpeechMusicRow| match (r.ci_lower, r.ci_upper) {
            (Some(lo), Some(hi)) => format!(", 95% interval {}–{}", fmt3(lo), fmt3(hi)),
            _ => String::new(),
        };
        run.headline(
            "closest_emotion",
            serde_json::json!({ "emotion": c.emotion, "fad": c.fad, "layer": layer }),
            format!(
                "{place}, speech and music are closest for {} (FAD {}{}).",
                c.emotion,
                fmt3(c.fad),
                ci(c)
            ),
        );
        run.headline(
            "farthest_emotion",
            serde_json::json!({ "emotion": f.emotion, "fad": f.fad, "layer": layer }),
            format!(
                "{place}, speech and music are farthest apart for {} (FAD {}{}).",
                f.emotion,
                fmt3(f.fad),
                ci(f)
            ),
        );
    }
    if layers.len() > 1 {
        run.headline(
            "closest_layer",
            serde_json::json!({ "layer": layer, "mean_fad": mean }),
            format!(
                "Averaged over emotions, speech and music of {model_tag} are closest at {name}: \
                 mean FAD {}.",
                fmt3(mean)
            ),
        );
    }
    Ok(Some(layer))
}

fn fmt3(v: f64) -> String {
    emobridge_report::table::format_significant(v, 3)
}

fn summary_markdown(config: &FadStudyConfig, layers: &[usize], table: &Table) -> String {
    let level = match config.level {
        StatisticsLevel::Frames => "frame-level statistics (every frame a sample, as fadtk)",
        StatisticsLevel::ClipMeans => "clip-level statistics (one mean vector per clip)",
    };
    let matching = match config.matching {
        SampleMatching::Equal => {
            "every group subsampled to its family's smallest group".to_string()
        }
        SampleMatching::Fixed(n) => format!("every group subsampled to {n} samples"),
        SampleMatching::Off => {
            "no matching (FAD is biased by sample size: compare with care)".to_string()
        }
    };
    format!(
        "# FAD between emotional speech and music\n\nProtocol: {level}; {matching}; seed {}; hidden states {:?}; symmetric trace route \
         (never negative, never complex). Bootstrap: {}.\n\n## Speech vs music per emotion\n\n{}",
        config.seed,
        layers,
        if config.bootstrap >= 2 { format!("{} replicates over clips, {:.0}% percentile intervals", config.bootstrap, config.confidence * 100.0) } else { "off".to_string() },
        table.to_markdown(4)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use emobridge_store::Shard;
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;

    /// Writes one cached clip whose frames are N(centre, 1) in every dimension, per state.
    fn write_clip(path: &Path, states: usize, frames: usize, dim: usize, centre: f64, seed: u64) {
        use rand::Rng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let values: Vec<f32> = (0..states * frames * dim)
            .map(|i| {
                (centre * (1 + i / (frames * dim)) as f64 + rng.random_range(-1.7..1.7)) as f32
            })
            .collect();
        // Through the store's own writer, so the study reads exactly what `extract` writes.
        let meta = emobridge_store::EntryMetadata {
            model: "test".into(),
            hidden_state_convention: "transformers4".into(),
            ..Default::default()
        };
        let entry = emobridge_store::ClipEntry::from_frames(
            values,
            [states, frames, dim],
            emobridge_store::StoredDtype::F16,
            meta,
        )
        .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        entry.save(path).unwrap();
    }

    /// Speech and music clips of four emotions; music sits further from speech for high-arousal
    /// emotions, and one manifest clip has no cache file.
    fn corpus(dir: &Path) -> Manifest {
        let mut records = Vec::new();
        let centres = [
            ("happy", 0.0, 0.6),
            ("sad", 0.0, 0.1),
            ("angry", 0.5, 1.5),
            ("calm", 0.5, 0.2),
        ];
        for (e, (label, speech_c, music_shift)) in centres.iter().enumerate() {
            for (domain, centre) in [
                (Domain::Speech, *speech_c),
                (Domain::Music, speech_c + music_shift),
            ] {
                for k in 0..5 {
                    let id = format!("{domain}-{label}-{k}");
                    let mut r = Record::new(
                        &id,
                        format!("{id}.wav"),
                        domain,
                        "synthetic",
                        format!("actor{k}"),
                    );
                    r.emotion = Emotion::parse(label);
                    write_clip(
                        &clip_path(dir, "tiny", &id).unwrap(),
                        3,
                        12 + k,
                        4,
                        centre,
                        (e * 100 + k) as u64 + domain as u64 * 1000,
                    );
                    records.push(r);
                }
            }
        }
        let mut missing = Record::new(
            "speech-happy-missing",
            "x.wav",
            Domain::Speech,
            "synthetic",
            "actor9",
        );
        missing.emotion = Some(Emotion::Happy);
        records.push(missing);
        Manifest::new(dir, records)
    }

    #[test]
    fn runs_end_to_end_and_writes_its_run_folder() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = corpus(dir.path());
        let out = dir.path().join("run");
        let config = FadStudyConfig {
            bootstrap: 20,
            ..Default::default()
        };
        let outcome = run(&config, &manifest, dir.path(), "tiny", &out).unwrap();
        assert_eq!(outcome.layers, vec![0, 1, 2]);
        assert_eq!(outcome.failures.len(), 1);
        assert_eq!(outcome.failures[0].item, "speech-happy-missing");
        // 4 shared emotions × 3 layers.
        assert_eq!(outcome.speech_vs_music.len(), 12);
        // Equal matching: every emotion group has the same n (the smallest group: 12+13+14+15+16 frames).
        let ns: Vec<u64> = outcome
            .group_sizes
            .iter()
            .filter(|(k, _)| k.starts_with("emotion/"))
            .map(|(_, n)| *n)
            .collect();
        assert!(ns.iter().all(|n| *n == 70), "{ns:?}");
        for r in &outcome.speech_vs_music {
            assert!(r.fad >= 0.0);
            let (lo, hi) = (r.ci_lower.unwrap(), r.ci_upper.unwrap());
            assert!(lo <= hi, "{r:?}");
        }
        let at = |layer: usize, e: &str| {
            outcome
                .speech_vs_music
                .iter()
                .find(|r| r.layer == layer && r.emotion == e)
                .unwrap()
                .fad
        };
        // The design puts angry music much further from speech than sad music.
        assert!(
            at(1, "angry") > 4.0 * at(1, "sad"),
            "{} vs {}",
            at(1, "angry"),
            at(1, "sad")
        );
        // Within-domain matrices are symmetric with a zero diagonal.
        let cell = |c: &str, r: &str, col: &str| {
            outcome
                .pairs
                .iter()
                .find(|p| {
                    p.layer == 0
                        && p.family == Family::Emotion
                        && p.comparison == c
                        && p.row == r
                        && p.col == col
                })
                .unwrap()
                .fad
        };
        assert_eq!(
            cell("speech", "happy", "angry"),
            cell("speech", "angry", "happy")
        );
        assert_eq!(cell("music", "sad", "sad"), 0.0);
        assert!(cell("cross", "angry", "angry") > 0.0);
        // Quadrant matrices exist (happy Q1, angry Q2, sad Q3, calm Q4).
        assert_eq!(
            outcome
                .pairs
                .iter()
                .filter(|p| p.layer == 0 && p.family == Family::Quadrant && p.comparison == "cross")
                .count(),
            16
        );
        for f in [
            "run.json",
            "speech_vs_music.csv",
            "speech_vs_music.json",
            "pairs.csv",
            "summary.md",
            "fad_by_layer.png",
            "heatmaps/layer02_emotion_cross.svg",
            "heatmaps/layer00_quadrant_speech.png",
        ] {
            assert!(out.join(f).is_file(), "{f} missing");
        }
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
        assert_eq!(record["study"], "fad");
        let keys: Vec<&str> = record["headlines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["key"].as_str().unwrap())
            .collect();
        assert_eq!(
            keys,
            ["closest_emotion", "farthest_emotion", "closest_layer"]
        );
        let figures: Vec<&str> = record["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["kind"] == "figure")
            .map(|a| a["path"].as_str().unwrap())
            .collect();
        assert_eq!(figures.len(), 3, "{figures:?}");
        assert!(figures.contains(&"fad_by_layer.svg"));
        assert!(record["hashes"]["manifest"].as_str().unwrap().len() == 64);
        assert!(record["hashes"]["audio_list"].is_string());
        assert_eq!(record["failures"][0]["item"], "speech-happy-missing");
        // Same seed, same numbers.
        let again = run(
            &config,
            &manifest,
            dir.path(),
            "tiny",
            &dir.path().join("run2"),
        )
        .unwrap();
        assert_eq!(again.speech_vs_music, outcome.speech_vs_music);
    }

    #[test]
    fn shards_merge_to_the_single_process_study() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = corpus(dir.path());
        for config in [
            FadStudyConfig {
                plots: false,
                ..Default::default()
            },
            FadStudyConfig {
                plots: false,
                standardize: true,
                level: StatisticsLevel::ClipMeans,
                ..Default::default()
            },
        ] {
            let single = run(
                &config,
                &manifest,
                dir.path(),
                "tiny",
                &dir.path().join("one"),
            )
            .unwrap();
            let out = dir.path().join("sharded");
            let _ = std::fs::remove_dir_all(&out);
            assert_eq!(incomplete_shards(&out, 3), vec![0, 1, 2]);
            let mut owned = 0;
            for index in [2, 0] {
                owned += run_shard(
                    &config,
                    &manifest,
                    dir.path(),
                    "tiny",
                    &out,
                    Shard { index, count: 3 },
                )
                .unwrap()
                .clips;
            }
            assert_eq!(incomplete_shards(&out, 3), vec![1]);
            let err = merge_shards(&config, &manifest, dir.path(), "tiny", &out, 3).unwrap_err();
            assert!(err.to_string().contains("[1]"), "{err}");
            owned += run_shard(
                &config,
                &manifest,
                dir.path(),
                "tiny",
                &out,
                Shard { index: 1, count: 3 },
            )
            .unwrap()
            .clips;
            assert_eq!(owned, 40, "every usable clip in exactly one shard");
            let merged = merge_shards(&config, &manifest, dir.path(), "tiny", &out, 3).unwrap();
            assert_eq!(merged.group_sizes, single.group_sizes);
            assert_eq!(merged.speech_vs_music.len(), single.speech_vs_music.len());
            for (m, s) in merged.speech_vs_music.iter().zip(&single.speech_vs_music) {
                assert_eq!(
                    (m.layer, &m.emotion, m.n_speech),
                    (s.layer, &s.emotion, s.n_speech)
                );
                assert!(
                    (m.fad - s.fad).abs() <= 1e-12 * s.fad.max(1.0),
                    "{} vs {}",
                    m.fad,
                    s.fad
                );
            }
            for (m, s) in merged.pairs.iter().zip(&single.pairs) {
                assert!(
                    (m.fad - s.fad).abs() <= 1e-12 * s.fad.max(1.0),
                    "{m:?} vs {s:?}"
                );
            }
            assert_eq!(merged.failures.len(), 1);
            assert!(out.join("run.json").is_file());
        }
        // A shard computed with other settings refuses to merge; bootstrap needs one process.
        let out = dir.path().join("mixed");
        let a = FadStudyConfig::default();
        let b = FadStudyConfig {
            seed: 9,
            ..Default::default()
        };
        run_shard(
            &a,
            &manifest,
            dir.path(),
            "tiny",
            &out,
            Shard { index: 0, count: 2 },
        )
        .unwrap();
        run_shard(
            &b,
            &manifest,
            dir.path(),
            "tiny",
            &out,
            Shard { index: 1, count: 2 },
        )
        .unwrap();
        let err = merge_shards(&a, &manifest, dir.path(), "tiny", &out, 2).unwrap_err();
        assert!(err.to_string().contains("shard 1/2"), "{err}");
        let boot = FadStudyConfig {
            bootstrap: 10,
            ..Default::default()
        };
        assert!(matches!(
            run_shard(
                &boot,
                &manifest,
                dir.path(),
                "tiny",
                &out,
                Shard { index: 0, count: 2 }
            ),
            Err(FadStudyError::Invalid(_))
        ));
    }

    #[test]
    fn clip_means_and_layer_choice() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = corpus(dir.path());
        let config = FadStudyConfig {
            level: StatisticsLevel::ClipMeans,
            layers: Some(vec![2]),
            plots: false,
            ..Default::default()
        };
        let outcome = run(
            &config,
            &manifest,
            dir.path(),
            "tiny",
            &dir.path().join("run"),
        )
        .unwrap();
        assert_eq!(outcome.layers, vec![2]);
        assert!(outcome
            .speech_vs_music
            .iter()
            .all(|r| r.n_speech == 5 && r.n_music == 5 && !r.rank_deficient));
        let bad = FadStudyConfig {
            layers: Some(vec![3]),
            ..Default::default()
        };
        assert!(matches!(
            run(&bad, &manifest, dir.path(), "tiny", &dir.path().join("bad")),
            Err(FadStudyError::Invalid(_))
        ));
        assert!(matches!(
            run(
                &FadStudyConfig::default(),
                &manifest,
                dir.path(),
                "nope",
                &dir.path().join("none")
            ),
            Err(FadStudyError::NoData(_))
        ));
    }

    #[test]
    fn standardized_distances_ignore_the_units_of_each_dimension() {
        // The same corpus twice, the second with dimension 0 in units 1024× smaller and
        // dimension 2 in units 64× larger (powers of two: exact in f16).
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let manifest_a = corpus(a.path());
        let manifest_b = corpus(b.path());
        for r in &manifest_b.records {
            let path = clip_path(b.path(), "tiny", &r.id).unwrap();
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            let hs = st.tensor("hidden_states").unwrap();
            let shape = hs.shape().to_vec();
            let dim = shape[2];
            let scaled: Vec<u8> = hs
                .data()
                .chunks_exact(2)
                .enumerate()
                .flat_map(|(i, c)| {
                    let factor = [1024.0, 1.0, 1.0 / 64.0, 1.0][i % dim];
                    half::f16::from_f32(half::f16::from_le_bytes([c[0], c[1]]).to_f32() * factor)
                        .to_le_bytes()
                })
                .collect();
            let mean = st.tensor("mean").unwrap();
            let std = st.tensor("std").unwrap();
            let tensors = [
                (
                    "hidden_states",
                    TensorView::new(Dtype::F16, shape, &scaled).unwrap(),
                ),
                (
                    "mean",
                    TensorView::new(Dtype::F32, mean.shape().to_vec(), mean.data()).unwrap(),
                ),
                (
                    "std",
                    TensorView::new(Dtype::F32, std.shape().to_vec(), std.data()).unwrap(),
                ),
            ];
            safetensors::serialize_to_file(tensors, None, &path).unwrap();
        }
        let z = FadStudyConfig {
            standardize: true,
            plots: false,
            ..Default::default()
        };
        let raw = FadStudyConfig {
            plots: false,
            ..Default::default()
        };
        let za = run(&z, &manifest_a, a.path(), "tiny", &a.path().join("z")).unwrap();
        let zb = run(&z, &manifest_b, b.path(), "tiny", &b.path().join("z")).unwrap();
        let ra = run(&raw, &manifest_a, a.path(), "tiny", &a.path().join("raw")).unwrap();
        let rb = run(&raw, &manifest_b, b.path(), "tiny", &b.path().join("raw")).unwrap();
        for (x, y) in za.speech_vs_music.iter().zip(&zb.speech_vs_music) {
            assert!(
                (x.fad - y.fad).abs() <= 1e-7 * x.fad.max(1.0),
                "{} vs {}",
                x.fad,
                y.fad
            );
        }
        let differs = ra
            .speech_vs_music
            .iter()
            .zip(&rb.speech_vs_music)
            .any(|(x, y)| (x.fad - y.fad).abs() > 0.5 * x.fad.max(1e-3));
        assert!(differs, "raw distances should change with the units");
    }
}
