//! The encoder options shared by `extract`, `embed` and `demo`; their defaults come from
//! `emobridge_ssl::ExtractConfig::default()`.

use anyhow::Context;
use emobridge_ssl::candle_core::Device;
use emobridge_ssl::{
    ExtractConfig, HiddenStateConvention, LoadOptions, Precision, PretrainedEncoder,
};
use emobridge_store::StoredDtype;

/// Which model to load and how to run it.
#[derive(clap::Args, Clone)]
pub struct EncoderArgs {
    /// Model folder (config.json + weights) or HuggingFace id ORG/NAME found in the local HF cache.
    #[arg(long)]
    pub model: String,
    /// Compute precision: f32 (parity with transformers) or bf16 (faster matmuls, small deviation).
    #[arg(long, value_enum, default_value_t = ExtractConfig::default().precision.into())]
    pub precision: PrecisionArg,
    /// Longest stretch of audio run through the encoder at once, seconds; longer clips are cut
    /// into windows on the frame grid.
    #[arg(long, default_value_t = ExtractConfig::default().window_s)]
    pub window_s: f64,
    /// Index L of pre-LN models: after the final LayerNorm (transformers4) or before it (transformers5).
    #[arg(long, value_enum, default_value_t = ExtractConfig::default().convention.into())]
    pub convention: ConventionArg,
    /// Where the encoder runs: `auto` (GPU 0 of those visible, e.g. the one Slurm's `--gres gpu:1`
    /// allocates, when the binary was built with the `cuda` feature; else the CPU), `cpu`, `cuda`.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceArg,
    /// A checkpoint folder written by `emobridge finetune` (`checkpoints/<direction>/<method>`)
    /// for this model: its LoRA updates are merged and its trained biases/weights replace the
    /// pretrained ones (bottleneck adapters cannot be merged and are refused).
    #[arg(long)]
    pub adapter: Option<std::path::PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum DeviceArg {
    Auto,
    Cpu,
    Cuda,
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
            precision: self.precision.into(),
            window_s: self.window_s,
            convention: self.convention.into(),
            ..ExtractConfig::default()
        }
    }

    /// The compute device; `auto` falls back to the CPU (with a warning) when CUDA is absent.
    pub fn device(&self) -> anyhow::Result<Device> {
        Ok(match self.device {
            DeviceArg::Cpu => Device::Cpu,
            DeviceArg::Cuda => Device::new_cuda(0).context(
                "--device cuda (build with `--features cuda`, and run where a GPU is visible)",
            )?,
            DeviceArg::Auto => match Device::cuda_if_available(0) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!("no usable CUDA device ({e}); running on the CPU");
                    Device::Cpu
                }
            },
        })
    }

    pub fn load(&self) -> anyhow::Result<PretrainedEncoder> {
        let options = LoadOptions {
            device: self.device()?,
            ..self.config().load_options()
        };
        let model = match &self.adapter {
            None => PretrainedEncoder::load(&self.model, options).map_err(anyhow::Error::from),
            Some(adapter) => emobridge_ssl::hub::resolve_model_dir(
                &self.model,
                &emobridge_ssl::hub::HubOptions::from_env(),
            )
            .and_then(|dir| PretrainedEncoder::from_dir_with_adapter(&dir, Some(adapter), options))
            .with_context(|| format!("with the fine-tuned checkpoint {}", adapter.display())),
        }
        .with_context(|| format!("cannot load model `{}`", self.model))?;
        let cfg = model.config();
        tracing::info!(
            "{} ({}, {} layers × {}, {} Hz, {:.1} frames/s)",
            self.model,
            cfg.family.as_str(),
            cfg.num_layers,
            cfg.hidden_size,
            model.preprocess().sampling_rate,
            model.frame_rate_hz()
        );
        Ok(model)
    }
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum PrecisionArg {
    F32,
    Bf16,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum ConventionArg {
    Transformers4,
    Transformers5,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum StoredDtypeArg {
    F16,
    F32,
}

macro_rules! both_ways {
    ($arg:ident, $lib:ty, $($variant:ident),+) => {
        impl From<$arg> for $lib {
            fn from(a: $arg) -> Self {
                match a { $($arg::$variant => <$lib>::$variant),+ }
            }
        }
        impl From<$lib> for $arg {
            fn from(a: $lib) -> Self {
                match a { $(<$lib>::$variant => $arg::$variant),+ }
            }
        }
    };
}

both_ways!(PrecisionArg, Precision, F32, Bf16);
both_ways!(
    ConventionArg,
    HiddenStateConvention,
    Transformers4,
    Transformers5
);
both_ways!(StoredDtypeArg, StoredDtype, F16, F32);
