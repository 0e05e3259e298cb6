//! The encoder options shared by `extract`, `embed` and `demo`: an
//! [`emobridge_ssl::EncoderSpec`] plus the encoder settings of `emobridge_ssl::ExtractConfig`,
//! whose `Default` gives the flags' defaults.

use anyhow::Context;
use emobridge_ssl::{
    DeviceChoice, EncoderSpec, ExtractConfig, HiddenStateConvention, Precision, PretrainedEncoder,
};

/// Which model to load and how to run it.
#[derive(clap::Args, Clone)]
pub struct EncoderArgs {
    /// Model folder (config.json + weights) or HuggingFace id ORG/NAME found in the local HF cache.
    #[arg(long)]
    pub model: String,
    /// Compute precision: f32 (parity with transformers) or bf16 (faster matmuls, small deviation).
    #[arg(long, default_value_t = ExtractConfig::default().precision)]
    pub precision: Precision,
    /// Longest stretch of audio run through the encoder at once, seconds; longer clips are cut
    /// into windows on the frame grid.
    #[arg(long, default_value_t = ExtractConfig::default().window_s)]
    pub window_s: f64,
    /// Index L of pre-LN models: after the final LayerNorm (transformers4) or before it
    /// (transformers5).
    #[arg(long, default_value_t = ExtractConfig::default().convention)]
    pub convention: HiddenStateConvention,
    /// Where the encoder runs: `auto` (GPU 0 of those visible, e.g. the one Slurm's `--gres gpu:1`
    /// allocates, when the binary was built with the `cuda` feature; else the CPU), `cpu`, `cuda`.
    #[arg(long, default_value_t = DeviceChoice::default())]
    pub device: DeviceChoice,
    /// A checkpoint folder written by `emobridge finetune` (`checkpoints/<direction>/<method>`)
    /// for this model: its LoRA updates are merged and its trained biases/weights replace the
    /// pretrained ones (bottleneck adapters cannot be merged and are refused).
    #[arg(long)]
    pub adapter: Option<std::path::PathBuf>,
}

impl EncoderArgs {
    /// The encoder settings as an extraction config (other fields at their defaults).
    pub fn config(&self) -> ExtractConfig {
        if !(self.window_s > 0.0) {
            tracing::warn!(
                "--window-s {} is not positive; using one frame per window",
                self.window_s
            );
        }
        ExtractConfig {
            precision: self.precision,
            window_s: self.window_s,
            convention: self.convention,
            ..ExtractConfig::default()
        }
    }

    /// Which model, adapter and device.
    pub fn spec(&self) -> EncoderSpec {
        EncoderSpec {
            model: self.model.clone(),
            adapter: self.adapter.clone(),
            device: self.device,
        }
    }

    pub fn load(&self) -> anyhow::Result<PretrainedEncoder> {
        self.spec()
            .load(self.precision)
            .with_context(|| format!("cannot load model `{}`", self.model))
    }
}
