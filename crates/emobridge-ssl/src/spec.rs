//! Which encoder to load, where it runs and under which cache tag its embeddings go: the encoder
//! options shared by `extract`, `embed` and `demo` (the CLI's flags map onto [`EncoderSpec`]).

use std::path::PathBuf;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SslError};
use crate::extract::cache_tag;
use crate::model::HiddenStateConvention;
use crate::pretrained::{LoadOptions, Precision, PretrainedEncoder};

/// Where the encoder runs: `auto`, `cpu`, `cuda` or `cuda:N` (serde, `FromStr` and `Display`
/// use these spellings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// GPU 0 of those visible (e.g. the one Slurm's `--gres gpu:1` allocates) when the crate was
    /// built with the `cuda` feature and a GPU answers, else the CPU (the default).
    #[default]
    Auto,
    Cpu,
    /// CUDA GPU number N among the visible ones (`CUDA_VISIBLE_DEVICES`; `cuda` is GPU 0); an
    /// error when there is none or the `cuda` feature is off.
    Cuda(usize),
}

/// Whether this build can run on a CUDA GPU (the crate feature `cuda`).
pub fn cuda_compiled() -> bool {
    candle_core::utils::cuda_is_available()
}

/// A short name of an opened device (`cpu`, `cuda:0`), for logs and run records.
pub fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// The first line of a candle error (candle appends a backtrace when `RUST_BACKTRACE` is set).
fn first_line(e: &candle_core::Error) -> String {
    e.to_string().lines().next().unwrap_or("").to_string()
}

impl DeviceChoice {
    pub fn is_cpu(self) -> bool {
        self == DeviceChoice::Cpu
    }

    /// [`Self::is_cpu`] by reference (for serde's `skip_serializing_if`).
    pub fn is_cpu_ref(&self) -> bool {
        self.is_cpu()
    }

    /// The candle device. `cuda` asked of a build without the `cuda` feature, or where no GPU
    /// answers, is a one-line error saying which; `auto` falls back to the CPU (with a warning
    /// when the build has CUDA support but no GPU answers).
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda(n) => {
                if !cuda_compiled() {
                    return Err(SslError::NoCudaSupport { device: self });
                }
                Device::new_cuda(n).map_err(|e| SslError::Device {
                    device: self,
                    reason: first_line(&e),
                })
            }
            DeviceChoice::Auto => {
                if !cuda_compiled() {
                    return Ok(Device::Cpu);
                }
                match Device::new_cuda(0) {
                    Ok(d) => Ok(d),
                    Err(e) => {
                        tracing::warn!(
                            "no usable CUDA device ({}); running on the CPU",
                            first_line(&e)
                        );
                        Ok(Device::Cpu)
                    }
                }
            }
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(0) => f.write_str("cuda"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl std::str::FromStr for DeviceChoice {
    type Err = UnknownName;

    fn from_str(s: &str) -> std::result::Result<Self, UnknownName> {
        let unknown = || UnknownName {
            what: "device",
            given: s.to_string(),
            expected: &["auto", "cpu", "cuda", "cuda:N"],
        };
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            _ => match s.strip_prefix("cuda:") {
                Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                    n.parse().map(DeviceChoice::Cuda).map_err(|_| unknown())
                }
                _ => Err(unknown()),
            },
        }
    }
}

impl Serialize for DeviceChoice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
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
        let device = self.device.resolve()?;
        tracing::info!("device: {}", device_name(&device));
        let options = LoadOptions {
            precision,
            device,
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
        assert_eq!(DeviceChoice::Cpu.resolve().unwrap().is_cpu(), true);
    }

    #[test]
    fn device_spellings_round_trip_and_unknown_ones_list_the_choices() {
        for (s, d) in [
            ("auto", DeviceChoice::Auto),
            ("cpu", DeviceChoice::Cpu),
            ("cuda", DeviceChoice::Cuda(0)),
            ("cuda:3", DeviceChoice::Cuda(3)),
        ] {
            assert_eq!(s.parse::<DeviceChoice>(), Ok(d));
            assert_eq!(d.to_string(), s);
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<DeviceChoice>(&json).unwrap(), d);
        }
        assert_eq!("cuda:0".parse::<DeviceChoice>(), Ok(DeviceChoice::Cuda(0)));
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:+1", "CPU", ""] {
            let e = bad.parse::<DeviceChoice>().unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("device `{bad}` is not one of auto, cpu, cuda, cuda:N")
            );
        }
        assert!(serde_json::from_str::<DeviceChoice>("\"gpu\"").is_err());
    }

    /// A GPU asked of a build without the `cuda` feature: one line that says how to get one;
    /// `auto` quietly runs on the CPU.
    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_one_line_error() {
        for d in [DeviceChoice::Cuda(0), DeviceChoice::Cuda(2)] {
            let e = d.resolve().unwrap_err().to_string();
            assert!(
                e.contains(&format!("device `{d}`")) && e.contains("no CUDA support"),
                "{e}"
            );
            assert!(e.contains("--features cuda"), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
        assert!(DeviceChoice::Auto.resolve().unwrap().is_cpu());
        assert_eq!(device_name(&Device::Cpu), "cpu");
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
