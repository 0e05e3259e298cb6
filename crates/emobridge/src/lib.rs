//! # emobridge
//!
//! Emotion in speech and music, side by side: the library behind the `emobridge` command
//! (package `emobridge-cli`). Every pipeline the command runs is a function here with a typed
//! configuration (`Default` = the documented defaults), a typed result and a progress callback,
//! so the command line, scripts and the report call the same code.
//!
//! Each crate of the workspace is re-exported under a short name, as `symphonia` does:
//!
//! | module | crate | owns |
//! |---|---|---|
//! | [`audio`] | `emobridge-audio` | decoding, down-mix, resampling, framing and spectra |
//! | [`acoustic`] | `emobridge-acoustic` | eGeMAPS v02 and ComParE-2016 descriptors |
//! | [`ssl`] | `emobridge-ssl` | wav2vec2-family encoders on candle, extraction into the cache |
//! | [`corpus`] | `emobridge-corpus` | manifests, taxonomy, folds, importers, the synthetic corpus |
//! | [`store`] | `emobridge-store` | the embedding cache ([`store::EmbeddingCache`]) |
//! | [`learn`] | `emobridge-learn` | standardisation, probes, metrics |
//! | [`fad`] | `emobridge-fad` | Fréchet distances, FAD-∞, bootstrap intervals |
//! | [`studies`] | `emobridge-studies` | the experiments, each writing a run folder |
//! | [`report`] | `emobridge-report` | tables, plots, the HTML report |
//! | [`slurm`] | `emobridge-slurm` | Slurm job arrays: the sbatch script, submission, shard checks and merges |
//!
//! The pipelines: [`ssl::extract_manifest`] (a manifest through an encoder into the cache),
//! [`studies::descriptor_table::extract_table`] (descriptor tables),
//! [`fad::compare_sets`] (one distance between two sets), [`studies::fad::run`] (the
//! per-emotion FAD study), [`studies::separability::run_by_layer`] (the layer-wise probe) and
//! [`studies::demo::run`] (everything on the synthetic corpus, ending with `report.html`); with
//! [`studies::continuous::run`] (time-continuous arousal/valence) and
//! [`studies::fad::run_shard`] / [`studies::fad::merge_shards`] (the FAD study as shards).

pub use emobridge_acoustic as acoustic;
pub use emobridge_audio as audio;
pub use emobridge_corpus as corpus;
pub use emobridge_fad as fad;
pub use emobridge_learn as learn;
pub use emobridge_report as report;
pub use emobridge_slurm as slurm;
pub use emobridge_ssl as ssl;
pub use emobridge_store as store;
pub use emobridge_studies as studies;

pub use emobridge_corpus::{Domain, Emotion, Manifest, Record};
pub use emobridge_ssl::{ExtractConfig, PretrainedEncoder};
pub use emobridge_store::{EmbeddingCache, LayerSelection};
pub use emobridge_studies::RunFolder;

/// The README's code, compiled (and its Rust examples run as written) by `cargo test`.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
