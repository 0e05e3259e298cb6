//! `emobridge probe`: how separable the emotions are, hidden state by hidden state, with a linear
//! probe on mean-pooled cached embeddings (or on any cached descriptor set).
//!
//! ```text
//! emobridge probe --manifest M --cache DIR --model TAG --out DIR [--folds 4] [--c 1] [--seed 7]
//! ```
//!
//! Within each domain over speaker-independent group folds, and across domains; see
//! `emobridge_studies::separability` for the protocol and the outputs.

use std::path::PathBuf;

use anyhow::Context;
use emobridge_corpus::Manifest;
use emobridge_studies::separability::{run_by_layer, SeparabilityConfig};

#[derive(clap::Args)]
pub struct ProbeArgs {
    /// Corpus manifest (CSV or JSON Lines); clips need an emotion.
    #[arg(long)]
    pub manifest: PathBuf,
    /// Embedding cache root (CACHE/<model>/<clip-id>.safetensors), as `extract` fills it.
    #[arg(long)]
    pub cache: PathBuf,
    /// Cache tag of the model (the folder name under the cache root).
    #[arg(long)]
    pub model: String,
    /// Run folder to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Speaker-independent folds within a domain.
    #[arg(long, default_value_t = 4)]
    pub folds: usize,
    /// Inverse L2 strength of the logistic regression.
    #[arg(long, default_value_t = 1.0)]
    pub c: f64,
    /// Seed of the fold assignment.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

pub fn run(args: ProbeArgs) -> anyhow::Result<()> {
    let manifest = Manifest::read(&args.manifest)
        .with_context(|| format!("reading {}", args.manifest.display()))?;
    let config = SeparabilityConfig {
        folds: args.folds,
        c: args.c,
        seed: args.seed,
    };
    let cache = emobridge_store::EmbeddingCache::open_existing(&args.cache, &args.model)?;
    let outcome = run_by_layer(&config, &manifest, &cache, &args.out)
        .with_context(|| format!("probing {} in {}", args.model, args.cache.display()))?;
    log_best(&outcome.layers);
    println!("{}", outcome.run_dir.join("run.json").display());
    Ok(())
}

/// Logs, per setting, the hidden state with the highest UA.
pub fn log_best(layers: &[(usize, emobridge_studies::separability::SeparabilityOutcome)]) {
    for (key, layer, ua) in emobridge_studies::separability::best_layers(layers) {
        tracing::info!("probe {key}: best UA {ua:.3} at hidden state {layer}");
    }
}
