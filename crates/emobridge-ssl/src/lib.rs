//! # emobridge-ssl
//!
//! Owns the self-supervised encoders: one configurable wav2vec2-family implementation on candle
//! (wav2vec 2.0, HuBERT, WavLM, data2vec-audio, MERT-v1) built from a HuggingFace `config.json`,
//! checkpoint loading from a model folder or the HuggingFace hub cache (downloading into it with
//! the default `hub` feature), every hidden state with
//! transformers' `output_hidden_states=True` semantics, per-layer pooling, input preparation
//! (resampling, per-utterance normalisation), chunked inference for long audio and batching.
//!
//! ```no_run
//! use emobridge_ssl::{EmbedOptions, LoadOptions, PretrainedEncoder};
//! let model = PretrainedEncoder::load("facebook/wav2vec2-base", LoadOptions::default())?;
//! let samples = vec![0.0f32; 16_000];
//! let emb = model.embed(&samples, 16_000, &EmbedOptions::default())?;
//! let (mean, std) = emb.mean_std()?; // [13, 768] each
//! # Ok::<(), emobridge_ssl::SslError>(())
//! ```

mod attention;
pub mod config;
pub mod dense;
pub mod embedding;
pub mod error;
pub mod extract;
mod features;
mod fused;
mod gemm;
pub mod hub;
pub mod model;
pub mod peft;
pub mod pretrained;
pub mod spec;
pub mod train;
pub mod weights;

/// The tensor crate of this API (`LoadOptions::device`), re-exported.
pub use candle_core;
pub use config::{
    Activation, ConvNorm, EncoderConfig, ModelFamily, PositionalEmbedding, PreprocessConfig,
    RelativeBias,
};
pub use dense::{Kernels, Linear, PackedLinear};
pub use embedding::ClipEmbedding;
pub use error::{InputError, Result, SslError};
pub use extract::{extract_manifest, ExtractConfig, ExtractReport};
pub use model::{Encoder, HiddenStateConvention};
pub use peft::{AdapterConfig, AdapterKind, LoraConfig, Method, PeftConfig, TrainableEncoder};
pub use pretrained::{
    normalize_utterance, EmbedOptions, LoadOptions, Precision, PretrainedEncoder, UtteranceNorm,
    UtteranceSums, Window, WindowStream,
};
pub use spec::{cuda_compiled, device_name, DeviceChoice, EncoderSpec, UnknownName};
pub use weights::WeightSource;
