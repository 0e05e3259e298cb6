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
    #[error("device `{device}`: no usable CUDA GPU ({reason}); check `nvidia-smi` and CUDA_VISIBLE_DEVICES")]
    Device {
        device: crate::spec::DeviceChoice,
        reason: String,
    },
    #[error("device `{device}`: this build has no CUDA support (rebuild with `cargo build --release --features cuda`, see docs/cuda.md)")]
    NoCudaSupport { device: crate::spec::DeviceChoice },
    #[error("with the fine-tuned checkpoint {}: {source}", adapter.display())]
    WithAdapter {
        adapter: PathBuf,
        source: Box<SslError>,
    },
    #[error("input: {0}")]
    Input(#[from] InputError),
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

/// Input or settings the encoder, its training or its embeddings cannot use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    /// A setting outside its range; the text names the setting and its rule.
    #[error("{0}")]
    Setting(String),
    #[error("signal contains a non-finite sample at index {index}")]
    NonFiniteSample { index: usize },
    #[error("clip of {samples} samples is shorter than the encoder's receptive field ({receptive_field} samples)")]
    ClipTooShort {
        samples: usize,
        receptive_field: usize,
    },
    #[error("clip of {samples} samples is shorter than the receptive field ({receptive_field})")]
    BatchClipTooShort {
        samples: usize,
        receptive_field: usize,
    },
    #[error("hidden states must be [states, frames, hidden], got {dims:?}")]
    HiddenStatesShape { dims: Vec<usize> },
    #[error("layer index {index} out of range 0..={last}")]
    StateOutOfRange { index: usize, last: usize },
    #[error("layer {layer} does not exist (the encoder has hidden states 0..={last})")]
    NoSuchLayer { layer: usize, last: usize },
    #[error("LoRA target `{target}` matches no linear layer; available: {}", available.join(", "))]
    UnknownLoraTarget {
        target: String,
        available: Vec<String>,
    },
    #[error("adapter checkpoint does not fit this encoder/method: {}", problems.join("; "))]
    AdapterMismatch { problems: Vec<String> },
    #[error("PEFT wraps candle linear layers only (build with Kernels::Autograd)")]
    NeedsCandleLinear,
    #[error("a whole-file entry keeps its frames: frames must be f16 or f32")]
    WholeFileNeedsFrames,
    #[error("class_weights needs {classes} finite values ≥ 0, got {given:?}")]
    ClassWeights { classes: usize, given: Vec<f32> },
    #[error("the task has no outputs")]
    NoOutputs,
    #[error("no training examples")]
    NoTrainingExamples,
    #[error("the stream holds more than the {announced} samples announced")]
    StreamOverrun { announced: usize },
    #[error("the stream ended after {received} of the {announced} samples announced")]
    StreamEndedEarly { received: usize, announced: usize },
}

pub type Result<T, E = SslError> = std::result::Result<T, E>;
