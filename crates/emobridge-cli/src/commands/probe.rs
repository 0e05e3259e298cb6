//! `emobridge probe`: layer-wise probing and speech ↔ music transfer.
//!
//! ```text
//! emobridge probe --manifest M (--cache DIR --model TAG | --features egemaps|compare) --out DIR
//!     [--config C.toml] [--normalize train|per-domain|per-speaker|per-corpus]
//!     [--head logreg|ridge|mlp|weighted-sum] [--target emotion|arousal|valence]
//!     [--folds N] [--seeds N] [--seed N] [--c C] [--class-weight none|balanced]
//! ```
//!
//! Flags override the config file, which overrides the defaults of
//! `emobridge_studies::separability::SeparabilityConfig` (see there for the protocol).

use std::path::PathBuf;

use anyhow::Context;
use emobridge_corpus::Manifest;
use emobridge_studies::descriptors::ClipDescriptors;
use emobridge_studies::separability::{
    probe, ClassWeight, Head, Normalize, ProbeInput, SeparabilityConfig, Target,
};

#[derive(clap::Args)]
pub struct ProbeArgs {
    /// Corpus manifest (CSV or JSON Lines).
    #[arg(long)]
    pub manifest: PathBuf,
    /// Embedding cache root (CACHE/<model>/<clip-id>.safetensors), as `extract` fills it.
    #[arg(long, requires = "model", conflicts_with = "features")]
    pub cache: Option<PathBuf>,
    /// Cache tag of the model (the folder name under the cache root).
    #[arg(long, requires = "cache")]
    pub model: Option<String>,
    /// Compute a clip-level descriptor set instead: eGeMAPS functionals (88) or ComParE-2016 LLD
    /// and delta means and stds (260).
    #[arg(long, required_unless_present = "cache")]
    pub features: Option<ClipDescriptors>,
    /// Run folder to write.
    #[arg(long)]
    pub out: PathBuf,
    /// TOML file with any of the probe's settings (the run folder gets the effective one).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Normalisation [config default: per-domain].
    #[arg(long)]
    pub normalize: Option<Normalize>,
    /// Head [config default: logreg for emotion, ridge for arousal/valence].
    #[arg(long)]
    pub head: Option<Head>,
    /// What to predict [config default: emotion].
    #[arg(long)]
    pub target: Option<Target>,
    /// Speaker-independent folds within a domain [config default: 4].
    #[arg(long)]
    pub folds: Option<usize>,
    /// Repetitions with different seeds [config default: 3].
    #[arg(long)]
    pub seeds: Option<usize>,
    /// Base seed of folds and MLP [config default: 7].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Inverse L2 strength of the logistic regression [config default: 1].
    #[arg(long)]
    pub c: Option<f64>,
    /// Class weighting [config default: none].
    #[arg(long)]
    pub class_weight: Option<ClassWeight>,
}

pub fn run(args: ProbeArgs, strict: bool) -> anyhow::Result<crate::status::Status> {
    let mut config = match &args.config {
        Some(path) => SeparabilityConfig::from_toml(path)?,
        None => SeparabilityConfig::default(),
    };
    macro_rules! set {
        ($($f:ident),+) => { $(if let Some(v) = args.$f { config.$f = v; })+ };
    }
    set!(normalize, target, folds, seeds, seed, c, class_weight);
    config.strict |= strict;
    if args.head.is_some() {
        config.head = args.head;
    }
    let manifest = Manifest::read(&args.manifest)
        .with_context(|| format!("reading {}", args.manifest.display()))?;
    let bar = crate::progress::bar(0, "probe");
    let tick = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let outcome = match (&args.cache, &args.model, args.features) {
        (Some(root), Some(tag), _) => {
            let cache = emobridge_store::EmbeddingCache::open_existing(root, tag)?;
            probe(
                &config,
                &manifest,
                ProbeInput::Cache { cache: &cache },
                &args.out,
                &tick,
            )
            .with_context(|| format!("probing {tag} in {}", root.display()))?
        }
        (_, _, Some(set)) => probe(
            &config,
            &manifest,
            ProbeInput::Descriptors { set },
            &args.out,
            &tick,
        )
        .context("probing the descriptors")?,
        _ => anyhow::bail!("give --cache DIR --model TAG, or --features egemaps|compare"),
    };
    bar.finish_and_clear();
    for line in outcome.summary_lines() {
        tracing::info!("{line}");
    }
    println!("{}", outcome.run_dir.join("run.json").display());
    crate::status::Status::of_run(&outcome.run_dir)
}
