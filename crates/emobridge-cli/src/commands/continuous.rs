//! `emobridge continuous`: time-continuous arousal/valence with LSTMs within and across domains,
//! directly and through a denoising autoencoder (Coutinho & Schuller 2017).
//!
//! ```text
//! emobridge continuous --manifest M [--features compare|egemaps | --cache DIR --model TAG [--layer N]]
//!                      [--config C.toml] [--lag S] [--seed N] --out DIR
//! ```
//!
//! Every knob is in `emobridge_studies::continuous::ContinuousConfig` (the TOML file's keys);
//! flags given on the command line override the file.

use std::path::PathBuf;

use anyhow::{bail, Context};
use emobridge_corpus::Manifest;
use emobridge_studies::continuous::{self, ContinuousConfig, FeatureKind};

#[derive(clap::Args)]
pub struct ContinuousArgs {
    /// Corpus manifest; rows with an `annotation` CSV are the sequences.
    #[arg(long)]
    pub manifest: PathBuf,
    /// Run folder to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Windowed descriptors: compare (260 dims, the paper's) or egemaps (50 dims).
    #[arg(long, value_parser = ["compare", "egemaps"], conflicts_with = "cache")]
    pub features: Option<String>,
    /// Embedding cache root: use a cached SSL hidden state pooled to the windows instead.
    #[arg(long, requires = "model")]
    pub cache: Option<PathBuf>,
    /// Cache tag of the model (with --cache).
    #[arg(long, requires = "cache")]
    pub model: Option<String>,
    /// Hidden state to use (with --cache; default the last).
    #[arg(long, requires = "cache")]
    pub layer: Option<usize>,
    /// TOML file with any of the study's settings (see `ContinuousConfig`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Annotation lag compensation in seconds.
    #[arg(long)]
    pub lag: Option<f64>,
    /// Seed of every random choice.
    #[arg(long)]
    pub seed: Option<u64>,
}

pub fn run(args: ContinuousArgs, strict: bool) -> anyhow::Result<crate::status::Status> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str::<ContinuousConfig>(&text)
                .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))?
        }
        None => ContinuousConfig::default(),
    };
    match args.features.as_deref() {
        Some("compare") => config.features = FeatureKind::Compare,
        Some("egemaps") => config.features = FeatureKind::Egemaps,
        Some(other) => bail!("--features {other}: use compare or egemaps"),
        None => {}
    }
    if let Some(cache) = args.cache {
        config.features = FeatureKind::Ssl;
        config.cache = Some(cache);
        config.model = args.model;
        config.layer = args.layer.or(config.layer);
    }
    config.strict |= strict;
    if let Some(lag) = args.lag {
        config.lag_s = lag;
    }
    if let Some(seed) = args.seed {
        config.seed = seed;
        config.lstm.seed = seed;
        config.dae.seed = seed;
    }
    let manifest = Manifest::read(&args.manifest)
        .with_context(|| format!("reading {}", args.manifest.display()))?;
    let outcome = run_study(&config, &manifest, &args.out)?;
    println!("{}", outcome.run_dir.join("run.json").display());
    crate::status::Status::of_run(&outcome.run_dir)
}

/// Runs the study with a progress bar and logs the results table (also used by the demo).
pub fn run_study(
    config: &ContinuousConfig,
    manifest: &Manifest,
    out: &std::path::Path,
) -> anyhow::Result<continuous::ContinuousOutcome> {
    let bar = crate::progress::bar(0, "continuous");
    let outcome = continuous::run(config, manifest, out, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .with_context(|| format!("continuous study into {}", out.display()))?;
    bar.finish_and_clear();
    for s in &outcome.settings {
        tracing::info!("{}", s.summary_line());
    }
    Ok(outcome)
}
