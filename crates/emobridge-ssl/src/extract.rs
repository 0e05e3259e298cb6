//! The extraction pipeline: every clip of a manifest through one encoder into the embedding
//! cache (`CACHE/<tag>/<clip-id>.safetensors`), one atomic file per clip, shardable, and
//! resumable without trusting what it has not checked: every existing entry is checked from its
//! header and size and its extraction fingerprint (see [`fingerprint`]) before it counts as
//! done; damaged entries are re-extracted and reported; entries or a `cache.json` of another
//! extraction stop the run with the differing fields named (or, with `refresh`, are
//! re-extracted). Processes sharing a cache split the work by per-clip claims. Each clip's
//! windows stream from the encoder into its entry, and a long clip is decoded, resampled and
//! normalised in blocks (see [`stream_clip`]), so memory does not grow with the clip's length. Plus the one-file path behind `emobridge embed`.
//!
//! A clip that cannot be decoded or embedded is recorded in the cache folder's failure log and
//! the others go on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use emobridge_corpus::Manifest;
use emobridge_store::{
    ClipEntry, EmbeddingCache, EntryMetadata, EntryState, FailureLog, Fingerprint, Frames,
    LayerSelection, Shard, StoreError, StoredDtype, FINGERPRINT_KEY,
};
use serde::{Deserialize, Serialize};

use crate::embedding::ClipEmbedding;
use crate::error::Result;
use crate::model::HiddenStateConvention;
use crate::pretrained::{EmbedOptions, LoadOptions, Precision, PretrainedEncoder};

/// Settings of an extraction run; `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtractConfig {
    /// Precision of the encoder's products (default f32, the parity path).
    pub precision: Precision,
    /// Longest stretch of audio run through the encoder at once, seconds (default 30); longer
    /// clips are cut into windows on the frame grid.
    pub window_s: f64,
    /// Index L of pre-LN models (default transformers4: after the final LayerNorm).
    pub convention: HiddenStateConvention,
    /// Hidden states to keep (default all).
    pub layers: LayerSelection,
    /// What entries keep of the frames (default f16): `none` (pooled `mean`/`std` only), or
    /// every frame as `f16` or `f32`. (`dtype` is accepted as its former name.)
    #[serde(alias = "dtype")]
    pub frames: Frames,
    /// The part of the manifest this run covers (default: all of it).
    pub shard: Shard,
    /// Re-extract entries made by another extraction (fingerprint) instead of stopping
    /// (default false).
    pub refresh: bool,
    /// Stop at the first clip that fails (default false: log it and go on). What was already
    /// written stays (each entry is written atomically) and the failure log is saved first.
    pub strict: bool,
    /// Clips up to this many seconds are decoded once and held in memory (default 60); longer
    /// ones are decoded in blocks, in up to three passes, so memory does not grow with their
    /// length. The entries are the same either way.
    pub hold_s: f64,
}

impl Default for ExtractConfig {
    fn default() -> Self {
        ExtractConfig {
            precision: Precision::F32,
            window_s: 30.0,
            convention: HiddenStateConvention::Transformers4,
            layers: LayerSelection::All,
            frames: Frames::F16,
            shard: Shard::ALL,
            refresh: false,
            strict: false,
            hold_s: 60.0,
        }
    }
}

impl ExtractConfig {
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            precision: self.precision,
            ..LoadOptions::default()
        }
    }

    pub fn embed_options(&self) -> EmbedOptions {
        EmbedOptions {
            window_s: self.window_s,
            convention: self.convention,
        }
    }
}

/// What [`extract_manifest`] did.
#[derive(Debug, Clone)]
pub struct ExtractReport {
    /// Clips of the manifest in this shard.
    pub in_shard: usize,
    /// Of those, clips whose entry already existed and passed the checks (skipped).
    pub already_cached: usize,
    /// Entries written in this run (by this process).
    pub extracted: usize,
    /// Clips another process sharing the cache extracted while this run went on.
    pub done_by_others: usize,
    /// Damaged entries found (0 bytes, truncated, garbage, inconsistent header), re-extracted;
    /// also written to the failure log's `repaired` list.
    pub repaired: Vec<emobridge_store::Failure>,
    /// Entries of another extraction re-extracted because of `refresh`.
    pub refreshed: usize,
    /// Temporary files of killed writers removed at the start.
    pub stale_temps_removed: usize,
    /// The largest block of hidden states held at once, bytes (one window's f32 states and its
    /// conversion buffer): bounded by the window length, whatever the clip's length.
    pub peak_window_bytes: usize,
    /// Audio embedded in this run, seconds.
    pub audio_seconds: f64,
    /// Wall-clock time of the run, seconds.
    pub wall_s: f64,
    pub failures: FailureLog,
    /// Where the failure log was written.
    pub failures_path: PathBuf,
}

impl ExtractReport {
    /// True when the shard had clips to do and every one of them failed.
    pub fn all_failed(&self) -> bool {
        !self.failures.is_empty()
            && self.failures.len() + self.already_cached + self.done_by_others == self.in_shard
    }
}

/// A cache folder name for a model spec: the folder's name, or `org--name` for hub ids.
pub fn cache_tag(spec: &str) -> String {
    let p = Path::new(spec);
    if p.is_dir() {
        if let Some(name) = p
            .canonicalize()
            .ok()
            .and_then(|c| c.file_name().map(|n| n.to_string_lossy().into_owned()))
        {
            return name;
        }
    }
    spec.trim_matches('/').replace(['/', '@', '\\', ':'], "--")
}

/// Decodes `path` as mono at the model's rate and embeds it; returns the embedding and the
/// clip's duration in seconds.
pub fn embed_file(
    model: &PretrainedEncoder,
    path: &Path,
    opts: &EmbedOptions,
) -> Result<(ClipEmbedding, f64)> {
    let rate = model.preprocess().sampling_rate;
    let audio = emobridge_audio::load(path, &emobridge_audio::DecodeOptions::mono_at(rate))?;
    let seconds = audio.duration_s();
    let prepared = model.prepare(&audio.into_mono(), rate)?;
    Ok((model.embed_prepared(&prepared, opts)?, seconds))
}

/// Hex SHA-256 of the model's configuration: the lines `<file>\t<digest>` of `config.json`
/// and `preprocessor_config.json` (`-` when absent).
pub fn config_sha256(model: &PretrainedEncoder) -> Result<String> {
    let mut lines = String::new();
    for name in ["config.json", "preprocessor_config.json"] {
        let p = model.dir().join(name);
        let digest = if p.is_file() {
            emobridge_store::sha256_file(&p)?
        } else {
            "-".to_string()
        };
        lines.push_str(&format!("{name}\t{digest}\n"));
    }
    Ok(emobridge_store::sha256_hex(lines.as_bytes()))
}

/// The extraction fingerprint of `model` run with `config`: model weights and config digests,
/// model type, kept layers (resolved to indices), stored frames, hidden-state convention,
/// precision, window and emobridge version. Every field is also a key of each entry's metadata.
pub fn fingerprint(
    model: &PretrainedEncoder,
    config: &ExtractConfig,
    weights_sha256: &str,
) -> Result<Fingerprint> {
    let layers = config.layers.resolve(model.num_states())?;
    let mut fp = Fingerprint::default();
    fp.insert(emobridge_store::MODEL_WEIGHTS_SHA256, weights_sha256);
    fp.insert("config_sha256", config_sha256(model)?);
    fp.insert("model_type", model.config().family.as_str());
    fp.insert(
        "layers",
        layers
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(","),
    );
    fp.insert("frames", config.frames.as_str());
    fp.insert("hidden_state_convention", config.convention.as_str());
    fp.insert(
        "precision",
        match config.precision {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        },
    );
    fp.insert("window_s", config.window_s.to_string());
    fp.insert("emobridge_version", env!("CARGO_PKG_VERSION"));
    Ok(fp)
}

/// The provenance written into every entry: model spec, rates, the audio file and its SHA-256,
/// and the extraction fingerprint (its fields and their digest).
pub fn entry_metadata(
    model: &PretrainedEncoder,
    spec: &str,
    fingerprint: &Fingerprint,
    file: &Path,
) -> Result<EntryMetadata> {
    let mut extra: BTreeMap<String, String> = fingerprint.0.clone();
    extra.remove("hidden_state_convention");
    extra.insert(FINGERPRINT_KEY.to_string(), fingerprint.digest());
    Ok(EntryMetadata {
        model: spec.to_string(),
        sample_rate: model.preprocess().sampling_rate,
        frame_rate_hz: model.frame_rate_hz(),
        hidden_state_convention: fingerprint.0["hidden_state_convention"].clone(),
        source_file: file.display().to_string(),
        audio_sha256: emobridge_store::sha256_file(file)?,
        extra,
    })
}

/// Embeds one file whole and returns the entry to store (states chosen by `config.layers`):
/// the path behind `emobridge embed`. `config.frames` must keep frames.
pub fn embed_entry(
    model: &PretrainedEncoder,
    spec: &str,
    config: &ExtractConfig,
    file: &Path,
    weights_sha256: &str,
) -> Result<(ClipEntry, f64)> {
    let dtype = match config.frames {
        Frames::F16 => StoredDtype::F16,
        Frames::F32 => StoredDtype::F32,
        Frames::None => return Err(crate::error::InputError::WholeFileNeedsFrames.into()),
    };
    let fp = fingerprint(model, config, weights_sha256)?;
    let (mut emb, seconds) = embed_file(model, file, &config.embed_options())?;
    if let LayerSelection::List(layers) = &config.layers {
        emb = emb.select(layers)?;
    }
    let (values, shape) = emb.to_vec()?;
    let meta = entry_metadata(model, spec, &fp, file)?;
    Ok((ClipEntry::from_frames(values, shape, dtype, meta)?, seconds))
}

/// What streaming one clip into the cache took.
#[derive(Debug, Clone, Copy)]
pub struct StreamedClip {
    /// Audio length, seconds.
    pub seconds: f64,
    pub frames: usize,
    /// The largest block of hidden states held at once, bytes.
    pub peak_window_bytes: usize,
}

/// Decodes `file`, runs it through the encoder window by window and writes each window's kept
/// states straight into the clip's entry (header first, renamed into place at the end). The
/// entry equals [`embed_entry`]'s for the same clip byte for byte (with frames kept).
///
/// Memory does not grow with the clip's length: a clip longer than `config.hold_s` is decoded
/// and resampled block by block ([`emobridge_audio::stream_mono_at`]) in up to three passes — its length and sample sum, then (models that normalise each utterance)
/// the squared deviations, then the samples themselves, normalised and fed window by window
/// to the encoder through a buffer of one window ([`crate::WindowStream`]). Results do not depend on `hold_s`: the sums are taken
/// in sample order as [`crate::normalize_utterance`] takes them, so the numbers are the
/// whole-clip path's exactly. Shorter clips are decoded once and held.
pub fn stream_clip(
    model: &PretrainedEncoder,
    spec: &str,
    config: &ExtractConfig,
    fingerprint: &Fingerprint,
    file: &Path,
    cache: &EmbeddingCache,
    clip_id: &str,
) -> Result<StreamedClip> {
    let rate = model.preprocess().sampling_rate;
    let opts = config.embed_options();
    // Pass 1: length, sum, and every check of the decode; short clips are kept.
    let limit = (config.hold_s.max(0.0) * rate as f64) as usize;
    let mut kept = Some(Vec::new());
    let mut sums = crate::UtteranceSums::default();
    emobridge_audio::stream_mono_at(file, rate, |block| {
        sums.add(block);
        if let Some(k) = &mut kept {
            if k.len() + block.len() <= limit {
                k.extend_from_slice(block);
            } else {
                kept = None;
            }
        }
    })?;
    let len = sums.len();
    let seconds = len as f64 / rate as f64;
    let plan = model.windows_for(len, &opts)?;
    let total = plan.last().map_or(0, |w| w.start + w.frames);
    let layers = config.layers.resolve(model.num_states())?;
    let meta = entry_metadata(model, spec, fingerprint, file)?;
    let selected = match &config.layers {
        LayerSelection::List(_) => Some(candle_core::Tensor::from_vec(
            layers.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            layers.len(),
            &candle_core::Device::Cpu,
        )?),
        LayerSelection::All => None,
    };
    let dim = model.config().hidden_size;
    // An empty clip errors in the encoder below with its reason; the writer needs a real shape.
    let mut writer = if total > 0 {
        Some(cache.writer(clip_id, [layers.len(), total, dim], config.frames, &meta)?)
    } else {
        None
    };
    let mut peak = 0usize;
    let mut sink = |_: usize, states: candle_core::Tensor| -> Result<()> {
        let states = states
            .to_dtype(candle_core::DType::F32)?
            .to_device(&candle_core::Device::Cpu)?;
        let states = match &selected {
            Some(idx) => states.index_select(idx, 0)?,
            None => states,
        };
        let n = states.dims()[1];
        let values = states.flatten_all()?.to_vec1::<f32>()?;
        let w = writer.as_mut().expect("a clip with frames has a writer");
        w.push(&values, n)?;
        peak = peak.max(values.len() * 4 + w.peak_buffer_bytes());
        Ok(())
    };
    match kept {
        Some(samples) => {
            let samples = model.prepare_owned(samples, rate)?;
            model.embed_prepared_windows(&samples, &opts, &mut sink)?;
        }
        None => {
            let norm = if model.preprocess().do_normalize {
                let mut dev = sums.deviations();
                emobridge_audio::stream_mono_at(file, rate, |block| dev.add(block))?;
                Some(dev.norm())
            } else {
                None
            };
            let mut windows = model.window_stream(len, &opts)?;
            let mut failed = None;
            let mut scratch = Vec::new();
            emobridge_audio::stream_mono_at(file, rate, |block| {
                if failed.is_some() {
                    return;
                }
                let block = match &norm {
                    Some(n) => {
                        scratch.clear();
                        scratch.extend(block.iter().map(|&v| n.apply(v)));
                        &scratch[..]
                    }
                    None => block,
                };
                if let Err(e) = windows.push(block, &mut sink) {
                    failed = Some(e);
                }
            })?;
            if let Some(e) = failed {
                return Err(e);
            }
            windows.finish()?;
        }
    }
    writer.expect("a clip with frames has a writer").finish()?;
    Ok(StreamedClip {
        seconds,
        frames: total,
        peak_window_bytes: peak,
    })
}

/// Fills `cache` with the entries of every clip of `manifest` in `config.shard` that it does not
/// hold yet in a checked state. `spec` names the model in the metadata (folder or hub id).
/// `progress(done, total)` is called after each clip.
///
/// Before any work: temporary files of killed writers are removed; the folder's `cache.json`
/// and every existing entry of the shard are checked against this run's [`fingerprint`] (a
/// difference is a [`StoreError::FingerprintMismatch`] naming the fields, unless
/// `config.refresh`); damaged entries are queued again and reported. Each clip is claimed
/// before it is extracted, so processes sharing the cache split the work; clips held by another
/// live process are waited for at the end, so every process ends with a complete shard.
/// Per-clip failures are logged (tracing), collected in the report and written to the cache
/// folder's failure log; only problems of the run itself are errors, and, with
/// `config.strict`, the first failed clip ([`crate::SslError::Strict`], after the failure log
/// is saved).
pub fn extract_manifest(
    model: &PretrainedEncoder,
    spec: &str,
    manifest: &Manifest,
    cache: &EmbeddingCache,
    config: &ExtractConfig,
    progress: &dyn Fn(usize, usize),
) -> Result<ExtractReport> {
    config.layers.resolve(model.num_states())?;
    let started = Instant::now();
    let weights = model.weights_sha256()?;
    let fp = fingerprint(model, config, &weights)?;
    let removed = cache.clean_stale_temps()?;
    for p in &removed {
        tracing::warn!("removed {} (left by a killed run)", p.display());
    }
    let record_diffs = cache.record_diff(&fp)?;
    if !record_diffs.is_empty() && !config.refresh {
        return Err(StoreError::FingerprintMismatch {
            path: cache.dir().join(emobridge_store::CACHE_JSON),
            diffs: record_diffs,
        }
        .into());
    }
    let mine: Vec<_> = manifest
        .records
        .iter()
        .filter(|r| config.shard.owns(&r.id))
        .collect();
    let mut report = ExtractReport {
        in_shard: mine.len(),
        already_cached: 0,
        extracted: 0,
        done_by_others: 0,
        repaired: Vec::new(),
        refreshed: 0,
        stale_temps_removed: removed.len(),
        peak_window_bytes: 0,
        audio_seconds: 0.0,
        wall_s: 0.0,
        failures: FailureLog::default(),
        failures_path: cache.failures_path(Some(config.shard)),
    };
    let mut todo = Vec::new();
    for record in &mine {
        match cache.check(&record.id, Some(&fp))? {
            EntryState::Valid(_) => report.already_cached += 1,
            EntryState::Missing => todo.push(*record),
            EntryState::Corrupt(reason) => {
                let path = cache.path_for(&record.id)?;
                tracing::warn!(
                    "{}: damaged cache entry {}: {reason}; extracting it again",
                    record.id,
                    path.display()
                );
                report.repaired.push(emobridge_store::Failure {
                    id: record.id.clone(),
                    path: path.display().to_string(),
                    error: reason,
                });
                todo.push(*record);
            }
            EntryState::Foreign(diffs) if config.refresh => {
                tracing::debug!("{}: {}", record.id, emobridge_store::describe(&diffs));
                report.refreshed += 1;
                todo.push(*record);
            }
            EntryState::Foreign(diffs) => {
                return Err(StoreError::FingerprintMismatch {
                    path: cache.path_for(&record.id)?,
                    diffs,
                }
                .into())
            }
        }
    }
    cache.save_record(&fp)?;
    tracing::info!(
        "{} clips in shard {}, {} already cached, {} to extract into {}",
        mine.len(),
        config.shard,
        report.already_cached,
        todo.len(),
        cache.dir().display()
    );
    let total = todo.len();
    let mut done = 0;
    let mut waiting = Vec::new();
    for record in todo {
        match process_clip(
            model,
            spec,
            manifest,
            cache,
            config,
            &fp,
            record,
            &mut report,
        )? {
            Some(holder) => {
                tracing::debug!("{}: being extracted by {holder}; later", record.id);
                waiting.push(record);
            }
            None => {
                done += 1;
                progress(done, total);
            }
        }
    }
    // Clips other live processes held: wait until each is written, or claim it when its holder
    // let go without writing it (the holder failed or was killed).
    while !waiting.is_empty() {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut still = Vec::new();
        for record in waiting {
            match process_clip(
                model,
                spec,
                manifest,
                cache,
                config,
                &fp,
                record,
                &mut report,
            )? {
                Some(_) => still.push(record),
                None => {
                    done += 1;
                    progress(done, total);
                }
            }
        }
        waiting = still;
    }
    report.wall_s = started.elapsed().as_secs_f64();
    report.failures.repaired = report.repaired.clone();
    report.failures.save(&report.failures_path)?;
    Ok(report)
}

/// Claims and extracts one clip. `Some(holder)` when another live process holds its claim;
/// `None` when the clip is settled (written here, found written by another process, or failed
/// and logged).
#[allow(clippy::too_many_arguments)]
fn process_clip(
    model: &PretrainedEncoder,
    spec: &str,
    manifest: &Manifest,
    cache: &EmbeddingCache,
    config: &ExtractConfig,
    fp: &Fingerprint,
    record: &emobridge_corpus::manifest::Record,
    report: &mut ExtractReport,
) -> Result<Option<String>> {
    let claim = match cache.claim(&record.id)? {
        Ok(c) => c,
        Err(holder) => return Ok(Some(holder.text)),
    };
    // Checked again under the claim: another process may have written it meanwhile.
    if let EntryState::Valid(_) = cache.check(&record.id, Some(fp))? {
        report.done_by_others += 1;
        return Ok(None);
    }
    let path = manifest.audio_path(record);
    match stream_clip(model, spec, config, fp, &path, cache, &record.id) {
        Ok(clip) => {
            report.audio_seconds += clip.seconds;
            report.extracted += 1;
            report.peak_window_bytes = report.peak_window_bytes.max(clip.peak_window_bytes);
        }
        Err(e) => {
            tracing::error!("{}: {}: {e}", record.id, path.display());
            report
                .failures
                .push(&record.id, &record.path, format!("{}: {e}", path.display()));
            if config.strict {
                drop(claim);
                report.failures.save(&report.failures_path)?;
                return Err(crate::SslError::Strict {
                    id: record.id.clone(),
                    reason: format!("{}: {e}", path.display()),
                });
            }
        }
    }
    drop(claim);
    Ok(None)
}
