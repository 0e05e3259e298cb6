//! Typed errors of the SSL crate; every variant names the file or config key at fault.

use std::path::PathBuf;

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum SslError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: config key `{key}`: {reason}")]
    Config {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error("{dir}: no weights found (looked for model.safetensors, model.safetensors.index.json, pytorch_model.bin)")]
    NoWeights { dir: PathBuf },
    #[error("{path}: cannot read weights: {reason}")]
    Weights { path: PathBuf, reason: String },
    #[error("{dir}: checkpoint does not fit the config:\n  {}", problems.join("\n  "))]
    Checkpoint { dir: PathBuf, problems: Vec<String> },
    #[error("{0}")]
    ModelNotFound(String),
    #[error(
        "device {device}: {source} (build with the `cuda` feature, and run where a GPU is visible)"
    )]
    Device {
        device: crate::spec::DeviceChoice,
        source: candle_core::Error,
    },
    #[error("with the fine-tuned checkpoint {}: {source}", adapter.display())]
    WithAdapter {
        adapter: PathBuf,
        source: Box<SslError>,
    },
    #[error("input: {0}")]
    Input(String),
    /// Strict mode: the batch stopped at this item's failure.
    #[error("{id}: {reason} (strict: stopped at the first failure)")]
    Strict { id: String, reason: String },
    #[error("audio: {0}")]
    Audio(#[from] emobridge_audio::AudioError),
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Store(#[from] emobridge_store::StoreError),
    #[error("layers: {0}")]
    Layers(#[from] emobridge_store::LayerSelectionError),
}

pub type Result<T, E = SslError> = std::result::Result<T, E>;
