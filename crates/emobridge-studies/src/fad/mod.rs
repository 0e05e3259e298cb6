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
//! Embeddings come from the cache `CACHE/<model-tag>/<clip-id>.safetensors` (read through
//! `emobridge_store::EmbeddingCache`), clips from the manifest. A clip whose cache file is missing or
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
//! **Cost**: every cache entry is read once per block of layers (one block, i.e. one pass over
//! the cache, whenever the statistics of all layers fit a 3 GiB budget). Each clip's selected
//! samples are reduced to their statistics (count, mean, co-moment matrix) once per group it
//! belongs to; group Gaussians are merges of those, and a bootstrap replicate is assembled from
//! the drawn clips' statistics (`RunningStats::weighted_union`) instead of from their frames.
//! Replicates and matrix cells are computed in parallel; each distance takes the Cholesky route
//! (eigenvalues only of `Lᵀ Σ₂ L`).
//!
//! **Memory**: peak memory is one block's statistics (within the budget above) plus a fixed set
//! of per-thread buffers, whatever the number of layers: every order-D statistic (per clip, per
//! group, bootstrap unit) comes from one pool per study and goes back to it when its layer is
//! done, so the next layer reuses the matrices instead of allocating new ones.
//!
//! Outputs in the run folder: `speech_vs_music.{csv,json,md}`, `pairs.{csv,json}` (every matrix
//! cell, long format), `heatmaps/layerNN_<family>_<comparison>.{png,svg}`,
//! `fad_by_layer.{png,svg}`, `summary.md`, `run.json`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use emobridge_corpus::{Domain, Emotion, Manifest, Quadrant, Record};
use emobridge_fad::bootstrap::{bootstrap_frechet_units_around, BootstrapConfig};
use emobridge_fad::frechet::{FrechetOptions, PreparedGaussian};
use emobridge_fad::Par;
use emobridge_fad::{FadError, Gaussian, RunningStats};
use emobridge_report::{
    write_heatmap, write_line_chart_with, Band, ChartExtras, Heatmap, LineChart, ReportError,
    Series, Table,
};
use emobridge_store::{read_clip_shape, CachedClip, ClipShape, EmbeddingCache, StoreError};
use ndarray::Array2;
use rand::seq::index::sample as sample_indices;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::{RunFolder, RunFolderError};

mod config;
mod groups;
mod job;
mod outputs;
mod shards;
mod statistics;

pub use shards::{
    incomplete_shards, merge_shards, run_shard, shard_dir, shard_record, ShardRecord,
};

use config::validate;
pub use config::{FadStudyConfig, SampleMatching, StatisticsLevel};
use groups::*;
pub use job::{run_job, FadJob, FadJobOutcome};
use outputs::*;
use statistics::*;

/// Why the study stopped (per-clip problems do not stop it; they are listed in `run.json`).
#[derive(Debug, thiserror::Error)]
pub enum FadStudyError {
    #[error(transparent)]
    Run(#[from] RunFolderError),
    #[error(transparent)]
    Fad(#[from] FadError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{}: cannot read manifest: {source}", path.display())]
    Manifest {
        path: PathBuf,
        source: emobridge_corpus::ManifestError,
    },
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

/// Which pair of domains a matrix compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Comparison {
    /// Within speech (rows and columns speech groups): symmetric, zero diagonal.
    Speech,
    /// Within music: symmetric, zero diagonal.
    Music,
    /// Across domains: rows speech, columns music.
    Cross,
}

impl Comparison {
    pub const ALL: [Comparison; 3] = [Comparison::Speech, Comparison::Music, Comparison::Cross];

    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Speech => "speech",
            Comparison::Music => "music",
            Comparison::Cross => "cross",
        }
    }

    /// Within one domain (a symmetric matrix with a zero diagonal).
    pub fn is_within(self) -> bool {
        self != Comparison::Cross
    }

    /// (row axis, column axis, phrase) for plot labels.
    fn axes(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Comparison::Speech => ("speech", "speech", "within speech"),
            Comparison::Music => ("music", "music", "within music"),
            Comparison::Cross => ("speech", "music", "speech × music"),
        }
    }
}

impl std::fmt::Display for Comparison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Comparison {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
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
    /// Within speech, within music, or across (rows speech, columns music).
    pub comparison: Comparison,
    pub row: String,
    pub col: String,
    pub fad: f64,
    pub n_row: u64,
    pub n_col: u64,
    pub rank_deficient: bool,
}

/// What [`run`] produced.
#[derive(Debug, Clone, Serialize)]
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

/// Runs the study on the cached embeddings of one model (`cache`) for the clips of `manifest`,
/// writing everything into `out_dir`.
pub fn run(
    config: &FadStudyConfig,
    manifest: &Manifest,
    cache: &EmbeddingCache,
    out_dir: &Path,
) -> Result<FadStudyOutcome, FadStudyError> {
    study(config, manifest, cache, out_dir, LayerSource::InProcess)
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
    cache: &EmbeddingCache,
    out_dir: &Path,
    source: LayerSource<'_>,
) -> Result<FadStudyOutcome, FadStudyError> {
    study_within(
        config,
        manifest,
        cache,
        out_dir,
        source,
        STATISTICS_BUDGET_BYTES,
    )
    .map(|(o, _)| o)
}

/// [`study`] with layer blocks of at most `budget` bytes of statistics; also returns how many
/// order-D statistics it allocated.
fn study_within(
    config: &FadStudyConfig,
    manifest: &Manifest,
    cache: &EmbeddingCache,
    out_dir: &Path,
    source: LayerSource<'_>,
    budget: usize,
) -> Result<(FadStudyOutcome, usize), FadStudyError> {
    validate(config)?;
    let model_tag = cache.tag();
    let mut run = RunFolder::create(out_dir, "fad")?;
    run.set_strict(config.strict);
    run.set_config(config, config.seed);
    run.note("model_tag", model_tag);
    run.hash_bytes("manifest", &manifest.to_csv());

    let mut header_failures = Vec::new();
    let planned = plan(config, manifest, cache, &mut header_failures);
    // Recorded first: under strict the first one stops the study here.
    for f in &header_failures {
        run.fail(&f.item, &f.path, &f.reason)?;
    }
    let plan = planned?;
    record_inputs(&plan.clips, cache, &mut run);
    run.note("group_sizes", &plan.group_sizes);
    run.note("dim", plan.shape.dim);
    run.note("states_in_cache", plan.shape.states);
    run.note("statistics_level", config.level);

    if let LayerSource::Shards { dir, count } = &source {
        run.note("shards", count);
        // Every shard must have planned what this merge plans; their read failures are listed.
        for record in shards::load_shard_records(dir, *count, &plan.fingerprint)? {
            for f in record.failures {
                run.fail(f.item, f.path, f.reason)?;
            }
        }
    }
    let mut speech_vs_music = Vec::new();
    let mut pairs = Vec::new();
    let pool = StatsPool::new(plan.shape.dim);
    for block in layer_blocks_within(config, &plan, budget) {
        let accumulated = match &source {
            LayerSource::Shards { dir, count } => block
                .iter()
                .map(|&layer| shards::merge_layer(&plan, dir, *count, layer))
                .collect::<Result<Vec<_>, _>>()?,
            LayerSource::InProcess => {
                tracing::info!("FAD study: reading layers {block:?}");
                let mut failures = Vec::new();
                let acc =
                    accumulate_layers(config, &plan, &block, &|_| true, &mut failures, &pool)?;
                for f in failures {
                    run.fail(f.item, f.path, f.reason)?;
                }
                acc
            }
        };
        for (&layer, accumulated) in block.iter().zip(accumulated) {
            tracing::info!(layer, "FAD study: layer {layer}");
            let data = finish_layer(config, layer, accumulated, &pool);
            speech_vs_music.extend(speech_music_rows(config, layer, &data, &plan.selections)?);
            pairs.extend(matrix_rows(config, layer, &data)?);
            let LayerData { stats, units } = data;
            pool.give(units.into_values().flatten());
            drop(stats);
            release_free_memory();
            tracing::debug!(
                layer,
                resident_mb = resident_mb(),
                statistics_allocated = pool.made(),
                "FAD study: layer {layer} done"
            );
        }
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
    let outcome = FadStudyOutcome {
        run_dir,
        layers: plan.layers,
        speech_vs_music,
        pairs,
        group_sizes: plan.group_sizes,
        failures,
    };
    Ok((outcome, pool.made()))
}

/// Hands the memory the allocator holds free back to the system, once per layer. What a layer
/// frees besides its pooled statistics (its groups' Gaussians and factors, the cache entries'
/// bytes, of many sizes) otherwise stays with glibc's arenas in pieces the next layer's
/// allocations do not all fit, and the resident memory crept up by ~45 MB per layer of a
/// base-size study (the pooled statistics alone: 2.52 → 2.99 GB over 13 layers).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of the allocator's own arenas to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The process's resident memory in MB (Linux; `None` elsewhere), for the debug log.
fn resident_mb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

/// Everything decided before a single frame is read, identical in every shard of a sharded run:
/// the usable clips, the layers, and each group's sample selection.
struct Plan<'m> {
    clips: Vec<UsableClip<'m>>,
    shape: ClipShape,
    layers: Vec<usize>,
    selections: BTreeMap<GroupKey, Selection>,
    group_sizes: BTreeMap<String, u64>,
    /// SHA-256 of the settings and the clip list: shards computed from different caches or
    /// settings refuse to merge.
    fingerprint: String,
}

/// `header_failures` receives the clips left out because their cache header did not read or did
/// not fit (under `config.strict`, the first one ends the search: the caller stops).
fn plan<'m>(
    config: &FadStudyConfig,
    manifest: &'m Manifest,
    cache: &EmbeddingCache,
    header_failures: &mut Vec<crate::RunFailure>,
) -> Result<Plan<'m>, FadStudyError> {
    let (clips, shape) = usable_clips(config, manifest, cache, header_failures)?;
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
        strict: false,
        ..config.clone()
    };
    let clip_list: Vec<(&str, usize)> = clips
        .iter()
        .map(|c| (c.record.id.as_str(), c.frames))
        .collect();
    let fingerprint = emobridge_store::sha256_hex(
        serde_json::json!({
            "config": settings,
            "model_tag": cache.tag(),
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
        fingerprint,
    })
}

fn failure(item: &str, path: &Path, reason: impl Into<String>) -> crate::RunFailure {
    crate::RunFailure {
        item: item.to_string(),
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// One layer's statistics per group, and (when bootstrapping) the per-clip statistics of the
/// emotion groups.
struct LayerData {
    stats: BTreeMap<GroupKey, Gaussian>,
    units: BTreeMap<GroupKey, Vec<RunningStats>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use emobridge_store::Shard;
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;

    /// Where the cache puts a clip (the layout other tools read).
    fn clip_path(root: &Path, tag: &str, id: &str) -> PathBuf {
        root.join(tag).join(format!("{id}.safetensors"))
    }

    fn cache(root: &Path, tag: &str) -> EmbeddingCache {
        EmbeddingCache::open(root, tag).unwrap()
    }

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
                        &clip_path(dir, "tiny", &id),
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
    fn a_clip_with_non_finite_frames_is_a_failure_not_a_missing_row() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = corpus(dir.path());
        // One music clip's frames all NaN (as a damaged extraction could leave them).
        write_clip(
            &clip_path(dir.path(), "tiny", "music-angry-2"),
            3,
            14,
            4,
            f64::NAN,
            1,
        );
        let config = FadStudyConfig {
            bootstrap: 10,
            plots: false,
            ..Default::default()
        };
        let out = dir.path().join("run");
        let outcome = run(&config, &manifest, &cache(dir.path(), "tiny"), &out).unwrap();
        let bad = outcome
            .failures
            .iter()
            .find(|f| f.item == "music-angry-2")
            .expect("the NaN clip is listed");
        assert!(bad.reason.contains("non-finite"), "{}", bad.reason);
        // Every emotion keeps its row in every layer, from the other clips.
        assert_eq!(outcome.speech_vs_music.len(), 12);
        assert!(outcome.speech_vs_music.iter().all(|r| r.fad.is_finite()));
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
        let outcome = run(&config, &manifest, &cache(dir.path(), "tiny"), &out).unwrap();
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
        // (Symmetry and the zero diagonal are checked against directly computed distances in
        // `matrix_cells_equal_distances_computed_from_the_cache_directly`.)
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
        assert!(record["hashes"]["manifest"].as_str().unwrap().len() == 64);
        assert!(record["hashes"]["audio_list"].is_string());
        assert_eq!(record["failures"][0]["item"], "speech-happy-missing");
        // Same seed, same numbers.
        let again = run(
            &config,
            &manifest,
            &cache(dir.path(), "tiny"),
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
                &cache(dir.path(), "tiny"),
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
                    &cache(dir.path(), "tiny"),
                    &out,
                    Shard { index, count: 3 },
                )
                .unwrap()
                .clips;
            }
            assert_eq!(incomplete_shards(&out, 3), vec![1]);
            let err =
                merge_shards(&config, &manifest, &cache(dir.path(), "tiny"), &out, 3).unwrap_err();
            assert!(err.to_string().contains("[1]"), "{err}");
            owned += run_shard(
                &config,
                &manifest,
                &cache(dir.path(), "tiny"),
                &out,
                Shard { index: 1, count: 3 },
            )
            .unwrap()
            .clips;
            assert_eq!(owned, 40, "every usable clip in exactly one shard");
            let merged =
                merge_shards(&config, &manifest, &cache(dir.path(), "tiny"), &out, 3).unwrap();
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
            &cache(dir.path(), "tiny"),
            &out,
            Shard { index: 0, count: 2 },
        )
        .unwrap();
        run_shard(
            &b,
            &manifest,
            &cache(dir.path(), "tiny"),
            &out,
            Shard { index: 1, count: 2 },
        )
        .unwrap();
        let err = merge_shards(&a, &manifest, &cache(dir.path(), "tiny"), &out, 2).unwrap_err();
        assert!(err.to_string().contains("shard 1/2"), "{err}");
        let boot = FadStudyConfig {
            bootstrap: 10,
            ..Default::default()
        };
        assert!(matches!(
            run_shard(
                &boot,
                &manifest,
                &cache(dir.path(), "tiny"),
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
            &cache(dir.path(), "tiny"),
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
            run(
                &bad,
                &manifest,
                &cache(dir.path(), "tiny"),
                &dir.path().join("bad")
            ),
            Err(FadStudyError::Invalid(_))
        ));
        assert!(matches!(
            run(
                &FadStudyConfig::default(),
                &manifest,
                &cache(dir.path(), "nope"),
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
            let path = clip_path(b.path(), "tiny", &r.id);
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
        let za = run(
            &z,
            &manifest_a,
            &cache(a.path(), "tiny"),
            &a.path().join("z"),
        )
        .unwrap();
        let zb = run(
            &z,
            &manifest_b,
            &cache(b.path(), "tiny"),
            &b.path().join("z"),
        )
        .unwrap();
        let ra = run(
            &raw,
            &manifest_a,
            &cache(a.path(), "tiny"),
            &a.path().join("raw"),
        )
        .unwrap();
        let rb = run(
            &raw,
            &manifest_b,
            &cache(b.path(), "tiny"),
            &b.path().join("raw"),
        )
        .unwrap();
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

    #[test]
    fn matrix_cells_equal_distances_computed_from_the_cache_directly() {
        // Clip means, every clip (no matching): each group's Gaussian is the mean and covariance
        // of its clips' cached `mean` rows, computed here without the study's code.
        let dir = tempfile::tempdir().unwrap();
        let manifest = corpus(dir.path());
        let config = FadStudyConfig {
            level: StatisticsLevel::ClipMeans,
            matching: SampleMatching::Off,
            layers: Some(vec![1]),
            plots: false,
            ..Default::default()
        };
        let store = cache(dir.path(), "tiny");
        let outcome = run(&config, &manifest, &store, &dir.path().join("run")).unwrap();
        let gaussian = |domain: &str, emotion: &str| {
            let rows: Vec<f64> = (0..5)
                .flat_map(|k| {
                    let id = format!("{domain}-{emotion}-{k}");
                    store.read_means(&id).unwrap().row(1).to_vec()
                })
                .collect();
            let rows = Array2::from_shape_vec((5, 4), rows).unwrap();
            Gaussian::from_rows(rows.view()).unwrap()
        };
        let cell = |c: Comparison, r: &str, col: &str| {
            outcome
                .pairs
                .iter()
                .find(|p| {
                    p.family == Family::Emotion && p.comparison == c && p.row == r && p.col == col
                })
                .unwrap()
                .fad
        };
        let direct =
            |a: &Gaussian, b: &Gaussian| emobridge_fad::frechet_distance(a, b).unwrap().distance;
        let close = |got: f64, want: f64| (got - want).abs() <= 1e-8 * want.abs().max(1.0);
        let (happy, angry) = (gaussian("speech", "happy"), gaussian("speech", "angry"));
        // Both triangles of a within-domain matrix, each against its own direct distance.
        for (r, c, want) in [
            ("happy", "angry", direct(&happy, &angry)),
            ("angry", "happy", direct(&angry, &happy)),
        ] {
            let got = cell(Comparison::Speech, r, c);
            assert!(want > 0.1 && close(got, want), "{r}/{c}: {got} vs {want}");
        }
        // The diagonal: the distance of a group to itself, computed directly, is 0 up to rounding.
        let sad_music = gaussian("music", "sad");
        let self_distance = direct(&sad_music, &sad_music);
        assert!(self_distance.abs() < 1e-9, "{self_distance}");
        assert!(close(cell(Comparison::Music, "sad", "sad"), self_distance));
        // Across domains: rows speech, columns music.
        let want = direct(&gaussian("speech", "angry"), &gaussian("music", "angry"));
        assert!(close(cell(Comparison::Cross, "angry", "angry"), want));
        // The speech-vs-music table holds the same cross distance per emotion.
        let row = outcome
            .speech_vs_music
            .iter()
            .find(|r| r.emotion == "angry")
            .unwrap();
        assert!(close(row.fad, want));
    }

    #[test]
    fn clip_statistics_give_the_frame_based_distances_and_intervals() {
        // The reference is the frame-based computation the study used before it assembled
        // groups and bootstrap replicates from per-clip statistics: every selected frame of a
        // group read per layer, the Gaussian from those rows, the interval from
        // `bootstrap_frechet` over the rows with clips as units.
        use emobridge_fad::bootstrap::{bootstrap_frechet, BootstrapSet};
        let dir = tempfile::tempdir().unwrap();
        let manifest = corpus(dir.path());
        let store = cache(dir.path(), "tiny");
        for standardize in [false, true] {
            let config = FadStudyConfig {
                bootstrap: 30,
                plots: false,
                standardize,
                ..Default::default()
            };
            let outcome = run(&config, &manifest, &store, &dir.path().join("run")).unwrap();
            let plan = plan(&config, &manifest, &store, &mut Vec::new()).unwrap();
            let dim = plan.shape.dim;
            for &layer in &plan.layers {
                let group = |domain: Domain, label: &str| {
                    let key = plan
                        .selections
                        .keys()
                        .find(|k| {
                            k.family == Family::Emotion && k.domain == domain && k.label == label
                        })
                        .unwrap();
                    let (mut buf, mut units) = (Vec::new(), Vec::new());
                    for (clip, frames) in &plan.selections[key] {
                        let cached = CachedClip::open(&plan.clips[*clip].path).unwrap();
                        let f = cached.layer_frames(layer).unwrap();
                        let start = buf.len() / dim;
                        for &r in frames {
                            buf.extend_from_slice(f.row(r));
                        }
                        units.push(start..start + frames.len());
                    }
                    let n = buf.len() / dim;
                    (Array2::from_shape_vec((n, dim), buf).unwrap(), units)
                };
                let (mut all, mut sets) = (RunningStats::new(dim), Vec::new());
                for row in outcome.speech_vs_music.iter().filter(|r| r.layer == layer) {
                    let (rs, us) = group(Domain::Speech, &row.emotion);
                    let (rm, um) = group(Domain::Music, &row.emotion);
                    all.push_rows(rs.view());
                    all.push_rows(rm.view());
                    sets.push((row, rs, us, rm, um));
                }
                // Standardising: the pooled moments of the emotion groups (both domains).
                let (centre, scale) = crate::fad::statistics::pooled_moments(
                    &[(
                        GroupKey {
                            family: Family::Emotion,
                            domain: Domain::Speech,
                            order: 0,
                            label: String::new(),
                        },
                        all,
                    )]
                    .into_iter()
                    .collect(),
                    dim,
                );
                let z = |x: &Array2<f64>| {
                    if standardize {
                        Array2::from_shape_fn(x.dim(), |(r, j)| (x[(r, j)] - centre[j]) / scale[j])
                    } else {
                        x.clone()
                    }
                };
                assert_eq!(sets.len(), 4);
                for (row, rs, us, rm, um) in sets {
                    let (rs, rm) = (z(&rs), z(&rm));
                    let cfg = BootstrapConfig {
                        replicates: 30,
                        confidence: config.confidence,
                        seed: config.seed ^ fnv1a(row.emotion.as_bytes()) ^ layer as u64,
                        options: config.options,
                    };
                    let ci = bootstrap_frechet(
                        &BootstrapSet {
                            rows: rs.view(),
                            units: Some(us),
                        },
                        &BootstrapSet {
                            rows: rm.view(),
                            units: Some(um),
                        },
                        &cfg,
                    )
                    .unwrap();
                    let fad = emobridge_fad::frechet_distance(
                        &Gaussian::from_rows(rs.view()).unwrap(),
                        &Gaussian::from_rows(rm.view()).unwrap(),
                    )
                    .unwrap()
                    .distance;
                    let close = |got: f64, want: f64| (got - want).abs() <= 1e-9 * want.abs();
                    assert!(fad > 1e-3 && close(row.fad, fad), "{row:?} vs {fad}");
                    assert!(close(row.ci_lower.unwrap(), ci.lower), "{row:?} vs {ci:?}");
                    assert!(close(row.ci_upper.unwrap(), ci.upper), "{row:?} vs {ci:?}");
                }
            }
        }
    }

    #[test]
    fn statistics_allocated_do_not_grow_with_the_number_of_layers() {
        // The rule: the study allocates the order-D statistics of one block of layers (plus the
        // few a clip's other frame selections take in passing), whatever the number of layers.
        // Blocks of one layer here (a budget of one byte); the same clips and settings for one
        // layer and for all three.
        let dir = tempfile::tempdir().unwrap();
        let manifest = corpus(dir.path());
        let store = cache(dir.path(), "tiny");
        let config = |layers: Option<Vec<usize>>| FadStudyConfig {
            bootstrap: 10,
            plots: false,
            layers,
            ..Default::default()
        };
        let made = |config: &FadStudyConfig, budget: usize, name: &str| {
            study_within(
                config,
                &manifest,
                &store,
                &dir.path().join(name),
                LayerSource::InProcess,
                budget,
            )
            .unwrap()
        };
        let (one, one_made) = made(&config(Some(vec![1])), 1, "one");
        let (all, all_made) = made(&config(None), 1, "all");
        let (whole, whole_made) = made(&config(None), STATISTICS_BUDGET_BYTES, "whole");
        assert_eq!(all.layers, vec![0, 1, 2]);
        // 8 emotion and 8 quadrant groups, 39 clips kept as bootstrap units, and one for the
        // clips' statistics of the quadrant groups' frame selection, taken and given back one
        // clip at a time.
        assert_eq!(one_made, 16 + 39 + 1);
        assert_eq!(all_made, one_made);
        // One block of all three layers holds three layers' statistics at once.
        assert!(
            whole_made > 2 * one_made && whole_made <= 3 * one_made,
            "{whole_made}"
        );
        // Blocks and recycled statistics change no value.
        let layer1: Vec<_> = all
            .speech_vs_music
            .iter()
            .filter(|r| r.layer == 1)
            .collect();
        assert_eq!(layer1, one.speech_vs_music.iter().collect::<Vec<_>>());
        assert_eq!(all.speech_vs_music, whole.speech_vs_music);
        assert_eq!(all.pairs, whole.pairs);
    }

    #[test]
    fn replicate_counts_outside_the_bootstrap_s_range_are_refused_up_front() {
        for bootstrap in [1, emobridge_fad::bootstrap::MAX_REPLICATES + 1] {
            let config = FadStudyConfig {
                bootstrap,
                ..Default::default()
            };
            assert!(
                matches!(validate(&config), Err(FadStudyError::Invalid(_))),
                "{bootstrap}"
            );
        }
        for bootstrap in [0, 2, emobridge_fad::bootstrap::MAX_REPLICATES] {
            let config = FadStudyConfig {
                bootstrap,
                ..Default::default()
            };
            assert!(validate(&config).is_ok(), "{bootstrap}");
        }
    }

    #[test]
    fn sample_matching_parses_and_prints() {
        assert_eq!("equal".parse(), Ok(SampleMatching::Equal));
        assert_eq!("500".parse(), Ok(SampleMatching::Fixed(500)));
        assert_eq!("off".parse(), Ok(SampleMatching::Off));
        assert!("most".parse::<SampleMatching>().is_err());
        assert_eq!(SampleMatching::Fixed(12).to_string(), "12");
    }
}
