//! Which encoder to load, where it runs and under which cache tag its embeddings go: the encoder
//! options shared by `extract`, `embed` and `demo` (the CLI's flags map onto [`EncoderSpec`]).

use std::path::PathBuf;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SslError};
use crate::extract::cache_tag;
use crate::model::HiddenStateConvention;
use crate::pretrained::{LoadOptions, Precision, PretrainedEncoder};

/// Where the encoder runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// GPU 0 of those visible (e.g. the one Slurm's `--gres gpu:1` allocates) when the crate was
    /// built with the `cuda` feature, else the CPU (the default).
    #[default]
    Auto,
    Cpu,
    /// GPU 0; an error when there is none or the `cuda` feature is off.
    Cuda,
}

impl DeviceChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Cuda => "cuda",
        }
    }

    /// The candle device; `Auto` falls back to the CPU (with a warning) when CUDA is absent.
    pub fn resolve(self) -> Result<Device> {
        Ok(match self {
            DeviceChoice::Cpu => Device::Cpu,
            DeviceChoice::Cuda => Device::new_cuda(0).map_err(|source| SslError::Device {
                device: self,
                source,
            })?,
            DeviceChoice::Auto => match Device::cuda_if_available(0) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!("no usable CUDA device ({e}); running on the CPU");
                    Device::Cpu
                }
            },
        })
    }
}

/// Which model to load, with which fine-tuned checkpoint, on which device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderSpec {
    /// Model folder (config.json + weights) or HuggingFace id `ORG/NAME[@REVISION]` (see
    /// [`crate::hub`]).
    pub model: String,
    /// A checkpoint folder written by `emobridge finetune` (`checkpoints/<direction>/<method>`):
    /// its LoRA updates are merged and its trained tensors replace the pretrained ones
    /// ([`PretrainedEncoder::from_dir_with_adapter`]).
    #[serde(default)]
    pub adapter: Option<PathBuf>,
    /// Where the encoder runs (default auto).
    #[serde(default)]
    pub device: DeviceChoice,
}

impl EncoderSpec {
    /// Loads the encoder (folding in the adapter, if any) and logs what was loaded.
    pub fn load(&self, precision: Precision) -> Result<PretrainedEncoder> {
        let options = LoadOptions {
            precision,
            device: self.device.resolve()?,
            ..LoadOptions::default()
        };
        let model = match &self.adapter {
            None => PretrainedEncoder::load(&self.model, options),
            Some(adapter) => {
                crate::hub::resolve_model_dir(&self.model, &crate::hub::HubOptions::from_env())
                    .and_then(|dir| {
                        PretrainedEncoder::from_dir_with_adapter(&dir, Some(adapter), options)
                    })
                    .map_err(|source| SslError::WithAdapter {
                        adapter: adapter.clone(),
                        source: Box::new(source),
                    })
            }
        }?;
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

    /// The cache folder name of this encoder's embeddings: [`cache_tag`] of the model, followed
    /// with an adapter by `+` and the checkpoint's last two folder names
    /// (`checkpoints/<direction>/<method>` → `<model tag>+<direction>-<method>`).
    pub fn cache_tag(&self) -> String {
        let base = cache_tag(&self.model);
        let Some(adapter) = &self.adapter else {
            return base;
        };
        let mut parts: Vec<String> = adapter
            .components()
            .rev()
            .take(2)
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        parts.reverse();
        format!("{base}+{}", parts.join("-"))
    }
}

/// `FromStr` (the names `as_str` gives) and `Display` for a settings enum, so front ends parse
/// and print it by the names its serde form uses.
macro_rules! named_enum {
    ($t:ty, $what:literal, $($variant:ident = $name:literal),+) => {
        impl std::str::FromStr for $t {
            type Err = UnknownName;
            fn from_str(s: &str) -> std::result::Result<Self, UnknownName> {
                match s {
                    $($name => Ok(<$t>::$variant),)+
                    _ => Err(UnknownName { what: $what, given: s.to_string(), expected: &[$($name),+] }),
                }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(match self { $(<$t>::$variant => $name),+ })
            }
        }
    };
}

/// A name that is not one of a setting's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{given}` is not one of {}", expected.join(", "))]
pub struct UnknownName {
    pub what: &'static str,
    pub given: String,
    pub expected: &'static [&'static str],
}

named_enum!(
    DeviceChoice,
    "device",
    Auto = "auto",
    Cpu = "cpu",
    Cuda = "cuda"
);
named_enum!(Precision, "precision", F32 = "f32", Bf16 = "bf16");
named_enum!(
    HiddenStateConvention,
    "convention",
    Transformers4 = "transformers4",
    Transformers5 = "transformers5"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_choices() {
        for p in [Precision::F32, Precision::Bf16] {
            assert_eq!(p.to_string().parse::<Precision>(), Ok(p));
        }
        for c in [
            HiddenStateConvention::Transformers4,
            HiddenStateConvention::Transformers5,
        ] {
            assert_eq!(c.to_string(), c.as_str());
            assert_eq!(c.as_str().parse::<HiddenStateConvention>(), Ok(c));
        }
        let e = "gpu".parse::<DeviceChoice>().unwrap_err();
        assert_eq!(e.to_string(), "device `gpu` is not one of auto, cpu, cuda");
        assert_eq!(DeviceChoice::Cpu.resolve().unwrap().is_cpu(), true);
    }

    #[test]
    fn adapter_checkpoints_add_their_last_two_folders_to_the_tag() {
        let spec = EncoderSpec {
            model: "org/name".into(),
            adapter: Some(PathBuf::from("runs/ft/checkpoints/speech2music/lora")),
            device: DeviceChoice::Cpu,
        };
        assert_eq!(spec.cache_tag(), "org--name+speech2music-lora");
        let plain = EncoderSpec {
            adapter: None,
            ..spec
        };
        assert_eq!(plain.cache_tag(), "org--name");
    }
}
