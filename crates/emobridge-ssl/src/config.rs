//! The encoder architecture as read from a HuggingFace `config.json` and `preprocessor_config.json`.
//!
//! Every key the forward pass depends on is read explicitly with transformers' default when absent;
//! values the encoder does not implement are refused with an error naming the key.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Result, SslError};

/// Which published family the checkpoint belongs to (`model_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFamily {
    Wav2Vec2,
    Hubert,
    WavLm,
    Data2VecAudio,
    /// MERT-v1 (m-a-p remote code): HuBERT-style, usually at 24 kHz.
    Mert,
}

impl ModelFamily {
    /// The `model_type` spelling transformers uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelFamily::Wav2Vec2 => "wav2vec2",
            ModelFamily::Hubert => "hubert",
            ModelFamily::WavLm => "wavlm",
            ModelFamily::Data2VecAudio => "data2vec-audio",
            ModelFamily::Mert => "mert_model",
        }
    }
}

/// Normalisation inside the convolutional feature encoder (`feat_extract_norm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvNorm {
    /// GroupNorm with one group per channel on the first conv only (base models).
    Group,
    /// LayerNorm over channels after every conv (large models, data2vec-audio).
    Layer,
}

/// Elementwise activations the checkpoints use (`hidden_act`, `feat_extract_activation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact erf GELU (transformers' "gelu").
    Gelu,
    /// tanh-approximated GELU ("gelu_new", "gelu_pytorch_tanh", "gelu_fast").
    GeluTanh,
    Relu,
    /// x·sigmoid(x) ("silu", "swish").
    Silu,
}

/// How relative positions enter the encoder.
#[derive(Debug, Clone, PartialEq)]
pub enum PositionalEmbedding {
    /// One grouped conv (weight-norm in checkpoints), optional BatchNorm before it (HuBERT
    /// `conv_pos_batch_norm`), same-padding trim for even kernels, activation.
    Conv {
        kernel: usize,
        groups: usize,
        batch_norm: bool,
    },
    /// data2vec-audio: `layers` convs, each followed by a non-affine LayerNorm and activation.
    ConvStack {
        layers: usize,
        kernel: usize,
        groups: usize,
    },
}

/// WavLM's bucketed relative position bias (layer 0 owns the table, every layer gates it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelativeBias {
    pub num_buckets: usize,
    pub max_distance: usize,
}

/// Everything the forward pass needs to know about an encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderConfig {
    pub family: ModelFamily,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
    pub conv_dim: Vec<usize>,
    pub conv_kernel: Vec<usize>,
    pub conv_stride: Vec<usize>,
    pub conv_bias: bool,
    pub conv_norm: ConvNorm,
    pub conv_act: Activation,
    /// LayerNorm before the feature projection (always for wav2vec2/WavLM/data2vec; HuBERT/MERT
    /// `feat_proj_layer_norm`, default true).
    pub feat_proj_layer_norm: bool,
    pub positional: PositionalEmbedding,
    /// `do_stable_layer_norm`: pre-LN layers plus a final LayerNorm.
    pub pre_ln: bool,
    pub relative_bias: Option<RelativeBias>,
}

impl EncoderConfig {
    /// Samples between consecutive output frames (product of the conv strides).
    pub fn hop(&self) -> usize {
        self.conv_stride.iter().product()
    }

    /// Samples seen by one output frame of the conv stack.
    pub fn receptive_field(&self) -> usize {
        let mut field = 1;
        let mut jump = 1;
        for (k, s) in self.conv_kernel.iter().zip(&self.conv_stride) {
            field += (k - 1) * jump;
            jump *= s;
        }
        field
    }

    /// Output frames for `samples` input samples (0 when shorter than one receptive field).
    pub fn frames_for(&self, samples: usize) -> usize {
        let mut len = samples;
        for (k, s) in self.conv_kernel.iter().zip(&self.conv_stride) {
            if len < *k {
                return 0;
            }
            len = (len - k) / s + 1;
        }
        len
    }

    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let obj = read_json_object(path)?;
        Self::from_json(&obj, path)
    }

    /// Builds the config from a parsed JSON object; `path` only labels errors.
    pub fn from_json(obj: &Map<String, Value>, path: &Path) -> Result<Self> {
        let keys = Keys { obj, path };
        let family = match keys.str_or("model_type", "")?.as_str() {
            "wav2vec2" => ModelFamily::Wav2Vec2,
            "hubert" => ModelFamily::Hubert,
            "wavlm" => ModelFamily::WavLm,
            "data2vec-audio" => ModelFamily::Data2VecAudio,
            "mert_model" | "mert" | "MERT" => ModelFamily::Mert,
            other => {
                return Err(keys.bad(
                    "model_type",
                    format!("`{other}` is not supported (wav2vec2, hubert, wavlm, data2vec-audio, mert_model)"),
                ))
            }
        };
        if family == ModelFamily::Mert {
            keys.refuse_true(
                "feature_extractor_cqt",
                "the CQT branch is not implemented (MERT-v1 checkpoints ship with it off)",
            )?;
            keys.refuse_true(
                "deepnorm",
                "the DeepNorm encoder variant is not implemented",
            )?;
        }
        let hidden_size = keys.usize_or("hidden_size", 768)?;
        let num_heads = keys.usize_or("num_attention_heads", 12)?;
        if num_heads == 0 || hidden_size % num_heads != 0 {
            return Err(keys.bad(
                "num_attention_heads",
                format!("{num_heads} does not divide hidden_size {hidden_size}"),
            ));
        }
        let conv_dim = keys.usize_list_or("conv_dim", &[512; 7])?;
        let conv_kernel = keys.usize_list_or("conv_kernel", &[10, 3, 3, 3, 3, 2, 2])?;
        let conv_stride = keys.usize_list_or("conv_stride", &[5, 2, 2, 2, 2, 2, 2])?;
        if conv_dim.is_empty()
            || conv_kernel.len() != conv_dim.len()
            || conv_stride.len() != conv_dim.len()
        {
            return Err(keys.bad(
                "conv_dim",
                "conv_dim, conv_kernel and conv_stride must be non-empty and equally long".into(),
            ));
        }
        if conv_kernel.contains(&0) || conv_stride.contains(&0) {
            return Err(keys.bad("conv_kernel", "kernels and strides must be positive".into()));
        }
        let is_d2v = family == ModelFamily::Data2VecAudio;
        let conv_norm = if is_d2v {
            ConvNorm::Layer
        } else {
            match keys.str_or("feat_extract_norm", "group")?.as_str() {
                "group" => ConvNorm::Group,
                "layer" => ConvNorm::Layer,
                other => {
                    return Err(keys.bad(
                        "feat_extract_norm",
                        format!("`{other}` is neither `group` nor `layer`"),
                    ))
                }
            }
        };
        let groups = keys.usize_or("num_conv_pos_embedding_groups", 16)?;
        if groups == 0 || hidden_size % groups != 0 {
            return Err(keys.bad(
                "num_conv_pos_embedding_groups",
                format!("{groups} does not divide hidden_size {hidden_size}"),
            ));
        }
        let positional = if is_d2v {
            PositionalEmbedding::ConvStack {
                layers: keys.usize_or("num_conv_pos_embeddings", 5)?,
                kernel: keys.usize_or("conv_pos_kernel_size", 19)?,
                groups,
            }
        } else {
            let hubert_like = matches!(family, ModelFamily::Hubert | ModelFamily::Mert);
            PositionalEmbedding::Conv {
                kernel: keys.usize_or("num_conv_pos_embeddings", 128)?,
                groups,
                batch_norm: hubert_like && keys.bool_or("conv_pos_batch_norm", false)?,
            }
        };
        let relative_bias = if family == ModelFamily::WavLm {
            Some(RelativeBias {
                num_buckets: keys.usize_or("num_buckets", 320)?,
                max_distance: keys.usize_or("max_bucket_distance", 800)?,
            })
        } else {
            None
        };
        let feat_proj_layer_norm = match family {
            ModelFamily::Hubert | ModelFamily::Mert => {
                keys.bool_or("feat_proj_layer_norm", true)?
            }
            _ => true,
        };
        Ok(EncoderConfig {
            family,
            hidden_size,
            num_layers: keys.usize_or("num_hidden_layers", 12)?,
            num_heads,
            intermediate_size: keys.usize_or("intermediate_size", 3072)?,
            hidden_act: keys.activation_or("hidden_act", Activation::Gelu)?,
            layer_norm_eps: keys.f64_or("layer_norm_eps", 1e-5)?,
            conv_bias: keys.bool_or("conv_bias", false)?,
            conv_act: keys.activation_or("feat_extract_activation", Activation::Gelu)?,
            conv_dim,
            conv_kernel,
            conv_stride,
            conv_norm,
            feat_proj_layer_norm,
            positional,
            pre_ln: !is_d2v && keys.bool_or("do_stable_layer_norm", false)?,
            relative_bias,
        })
    }
}

/// What the checkpoint's feature extractor does to raw audio (`preprocessor_config.json`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreprocessConfig {
    /// Rate the model expects; input is resampled to it.
    pub sampling_rate: u32,
    /// Per-utterance zero mean / unit variance (x − μ)/√(σ² + 1e-7).
    pub do_normalize: bool,
}

impl PreprocessConfig {
    /// `Wav2Vec2FeatureExtractor`'s defaults (`do_normalize=true`) at the family's usual rate
    /// (16 kHz; 24 kHz for MERT), used when the checkpoint has no preprocessor file.
    pub fn default_for(family: ModelFamily) -> Self {
        let sampling_rate = if family == ModelFamily::Mert {
            24_000
        } else {
            16_000
        };
        PreprocessConfig {
            sampling_rate,
            do_normalize: true,
        }
    }

    /// Reads `preprocessor_config.json`, falling back to the family defaults for absent keys.
    pub fn from_file(path: &Path, family: ModelFamily) -> Result<Self> {
        let obj = read_json_object(path)?;
        let keys = Keys { obj: &obj, path };
        let fallback = Self::default_for(family);
        let rate = keys.usize_or("sampling_rate", fallback.sampling_rate as usize)?;
        if !(emobridge_audio::MIN_RATE as usize..=emobridge_audio::MAX_RATE as usize)
            .contains(&rate)
        {
            return Err(keys.bad(
                "sampling_rate",
                format!("{rate} Hz is outside the supported range"),
            ));
        }
        Ok(PreprocessConfig {
            sampling_rate: rate as u32,
            do_normalize: keys.bool_or("do_normalize", fallback.do_normalize)?,
        })
    }
}

/// Reads a JSON file that must hold an object.
pub(crate) fn read_json_object(path: &Path) -> Result<Map<String, Value>> {
    let text = std::fs::read_to_string(path).map_err(|source| SslError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|source| SslError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    match value {
        Value::Object(obj) => Ok(obj),
        _ => Err(SslError::Config {
            path: path.to_path_buf(),
            key: "(root)".into(),
            reason: "not a JSON object".into(),
        }),
    }
}

/// Typed access to config keys with transformers' defaults.
struct Keys<'a> {
    obj: &'a Map<String, Value>,
    path: &'a Path,
}

impl Keys<'_> {
    fn bad(&self, key: &str, reason: String) -> SslError {
        SslError::Config {
            path: PathBuf::from(self.path),
            key: key.to_string(),
            reason,
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn usize_or(&self, key: &str, default: usize) -> Result<usize> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_u64().map(|n| n as usize).ok_or_else(|| {
                self.bad(key, format!("expected a non-negative integer, found {v}"))
            }),
        }
    }

    fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| self.bad(key, format!("expected a number, found {v}"))),
        }
    }

    fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.bad(key, format!("expected true or false, found {v}"))),
        }
    }

    fn str_or(&self, key: &str, default: &str) -> Result<String> {
        match self.get(key) {
            None => Ok(default.to_string()),
            Some(v) => v
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| self.bad(key, format!("expected a string, found {v}"))),
        }
    }

    fn usize_list_or(&self, key: &str, default: &[usize]) -> Result<Vec<usize>> {
        match self.get(key) {
            None => Ok(default.to_vec()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_u64()
                        .map(|n| n as usize)
                        .ok_or_else(|| self.bad(key, format!("expected integers, found {v}")))
                })
                .collect(),
            Some(v) => Err(self.bad(key, format!("expected a list of integers, found {v}"))),
        }
    }

    fn activation_or(&self, key: &str, default: Activation) -> Result<Activation> {
        let Some(v) = self.get(key) else {
            return Ok(default);
        };
        match v.as_str() {
            Some("gelu") => Ok(Activation::Gelu),
            Some("gelu_new" | "gelu_pytorch_tanh" | "gelu_fast") => Ok(Activation::GeluTanh),
            Some("relu") => Ok(Activation::Relu),
            Some("silu" | "swish") => Ok(Activation::Silu),
            _ => Err(self.bad(
                key,
                format!("activation {v} is not supported (gelu, gelu_new, relu, silu)"),
            )),
        }
    }

    fn refuse_true(&self, key: &str, why: &str) -> Result<()> {
        if self.bool_or(key, false)? {
            return Err(self.bad(key, format!("true is not supported: {why}")));
        }
        Ok(())
    }
}
