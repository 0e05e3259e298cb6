//! The extraction pipeline: every clip of a manifest through one encoder into the embedding
//! cache (`CACHE/<tag>/<clip-id>.safetensors`), one atomic file per clip, resumable (clips whose
//! entry exists are skipped) and shardable; plus the one-file path behind `emobridge embed`.
//!
//! A clip that cannot be decoded or embedded is recorded in the cache folder's failure log and
//! the others go on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use emobridge_corpus::Manifest;
use emobridge_store::{
    ClipEntry, EmbeddingCache, EntryMetadata, FailureLog, LayerSelection, Shard, StoredDtype,
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
    /// Precision of the cached frame-level `hidden_states` (default f16).
    pub dtype: StoredDtype,
    /// The part of the manifest this run covers (default: all of it).
    pub shard: Shard,
}

impl Default for ExtractConfig {
    fn default() -> Self {
        ExtractConfig {
            precision: Precision::F32,
            window_s: 30.0,
            convention: HiddenStateConvention::Transformers4,
            layers: LayerSelection::All,
            dtype: StoredDtype::F16,
            shard: Shard::ALL,
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
    /// Of those, clips whose entry already existed (skipped).
    pub already_cached: usize,
    /// Entries written in this run.
    pub extracted: usize,
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
        !self.failures.is_empty() && self.failures.len() + self.already_cached == self.in_shard
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

/// The provenance written into every entry: model spec, rates, convention, the audio file and
/// its SHA-256, the model weights' SHA-256 and the extraction settings.
pub fn entry_metadata(
    model: &PretrainedEncoder,
    spec: &str,
    config: &ExtractConfig,
    file: &Path,
    weights_sha256: &str,
) -> Result<EntryMetadata> {
    let mut extra = BTreeMap::new();
    extra.insert("layers".to_string(), config.layers.to_string());
    extra.insert(
        "model_type".to_string(),
        model.config().family.as_str().to_string(),
    );
    extra.insert(
        "precision".to_string(),
        match config.precision {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
        .to_string(),
    );
    extra.insert("window_s".to_string(), config.window_s.to_string());
    extra.insert(
        "emobridge_version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    let mut meta = EntryMetadata {
        model: spec.to_string(),
        sample_rate: model.preprocess().sampling_rate,
        frame_rate_hz: model.frame_rate_hz(),
        hidden_state_convention: config.convention.as_str().to_string(),
        source_file: file.display().to_string(),
        audio_sha256: emobridge_store::sha256_file(file)?,
        extra,
    };
    meta.set_model_weights_sha256(weights_sha256);
    Ok(meta)
}

/// Embeds one file and returns the entry to store (states chosen by `config.layers`).
pub fn embed_entry(
    model: &PretrainedEncoder,
    spec: &str,
    config: &ExtractConfig,
    file: &Path,
    weights_sha256: &str,
) -> Result<(ClipEntry, f64)> {
    let (mut emb, seconds) = embed_file(model, file, &config.embed_options())?;
    if let LayerSelection::List(layers) = &config.layers {
        emb = emb.select(layers)?;
    }
    let (values, shape) = emb.to_vec()?;
    let meta = entry_metadata(model, spec, config, file, weights_sha256)?;
    Ok((
        ClipEntry::from_frames(values, shape, config.dtype, meta)?,
        seconds,
    ))
}

/// Fills `cache` with the entries of every clip of `manifest` in `config.shard` that is not
/// there yet. `spec` names the model in the metadata (folder or hub id). `progress(done, total)`
/// is called after each clip. Per-clip failures are logged (tracing), collected in the report
/// and written to the cache folder's failure log; only problems of the run itself are errors.
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
    let mine: Vec<_> = manifest
        .records
        .iter()
        .filter(|r| config.shard.owns(&r.id))
        .collect();
    let todo: Vec<_> = mine.iter().filter(|r| !cache.contains(&r.id)).collect();
    tracing::info!(
        "{} clips in shard {}, {} already cached, {} to extract into {}",
        mine.len(),
        config.shard,
        mine.len() - todo.len(),
        todo.len(),
        cache.dir().display()
    );
    let mut report = ExtractReport {
        in_shard: mine.len(),
        already_cached: mine.len() - todo.len(),
        extracted: 0,
        audio_seconds: 0.0,
        wall_s: 0.0,
        failures: FailureLog::default(),
        failures_path: cache.failures_path(Some(config.shard)),
    };
    for (done, record) in todo.iter().enumerate() {
        let path = manifest.audio_path(record);
        let written = embed_entry(model, spec, config, &path, &weights)
            .and_then(|(entry, secs)| Ok((cache.write(&record.id, &entry)?, secs)));
        match written {
            Ok((_, seconds)) => {
                report.audio_seconds += seconds;
                report.extracted += 1;
            }
            Err(e) => {
                tracing::error!("{}: {}: {e}", record.id, path.display());
                report
                    .failures
                    .push(&record.id, &record.path, format!("{}: {e}", path.display()));
            }
        }
        progress(done + 1, todo.len());
    }
    report.wall_s = started.elapsed().as_secs_f64();
    report.failures.save(&report.failures_path)?;
    Ok(report)
}
