//! `emobridge finetune`: two-stage cross-domain fine-tuning of an SSL encoder (frozen,
//! weighted-sum, full, LoRA, adapters, BitFit) against target-only training.
//!
//! ```text
//! emobridge finetune --manifest M --model DIR_OR_ID --method lora|all|frozen,full
//!     --direction music-to-speech|speech-to-music|both [--target emotion|arousal|valence]
//!     [--device cpu|cuda|cuda:N|auto] [--config C.toml] --out DIR
//! ```
//!
//! See `emobridge_studies::finetune` for the protocol and the outputs; `--config` holds a
//! `FinetuneConfig` in TOML (LoRA rank, adapter kind, epochs, learning rates, folds, …).
//! Run again with the same arguments and `--out` after an interruption, it resumes.

use std::path::PathBuf;

use anyhow::{bail, Context};
use emobridge_corpus::Manifest;
use emobridge_ssl::{DeviceChoice, Method};
use emobridge_studies::finetune::{run as finetune, Direction, FinetuneConfig, Target};

#[derive(clap::Args)]
pub struct FinetuneArgs {
    /// Corpus manifest with speech and music clips that carry an emotion.
    #[arg(long)]
    pub manifest: PathBuf,
    /// Model folder or HuggingFace id (ORG/NAME).
    #[arg(long)]
    pub model: String,
    /// Comma-separated methods, or `all`: frozen, weighted-sum, full, lora, adapter, bitfit.
    #[arg(long, default_value = "lora")]
    pub method: String,
    /// Comma-separated directions, or `both`: music-to-speech, speech-to-music.
    #[arg(long, default_value = "both")]
    pub direction: String,
    /// What the head learns: emotion (classes), arousal or valence (the manifest's columns,
    /// regression); default: the config's `target`, else emotion.
    #[arg(long)]
    pub target: Option<String>,
    /// TOML file with a FinetuneConfig; --method/--direction/--target/--device override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where the encoder and head train: cpu, cuda, cuda:N (a build with `--features cuda`, see
    /// docs/cuda.md) or auto; default: the config's `device`, else cpu.
    #[arg(long)]
    pub device: Option<DeviceChoice>,
    /// Run folder to write.
    #[arg(long)]
    pub out: PathBuf,
}

fn parse_list<T>(s: &str, all: &[T], parse: impl Fn(&str) -> Option<T>) -> anyhow::Result<Vec<T>>
where
    T: Copy,
{
    if s == "all" || s == "both" {
        return Ok(all.to_vec());
    }
    s.split(',')
        .map(|p| parse(p.trim()).with_context(|| format!("unknown value `{p}`")))
        .collect()
}

pub fn run(args: FinetuneArgs, strict: bool) -> anyhow::Result<crate::status::Status> {
    emobridge_ssl::train::prepare_process_for_training();
    let mut config = match &args.config {
        Some(p) => FinetuneConfig::from_toml_file(p)?,
        None => FinetuneConfig::default(),
    };
    config.methods = parse_list(&args.method, &Method::ALL, Method::parse)
        .context("--method takes frozen, weighted-sum, full, lora, adapter, bitfit or all")?;
    config.directions = parse_list(&args.direction, &Direction::ALL, Direction::parse)
        .context("--direction takes music-to-speech, speech-to-music or both")?;
    if let Some(t) = &args.target {
        config.target = Target::parse(t)
            .with_context(|| format!("--target takes emotion, arousal or valence, not `{t}`"))?;
    }
    if let Some(d) = args.device {
        config.device = d;
    }
    config.strict |= strict;
    if config.methods.is_empty() || config.directions.is_empty() {
        bail!("--method and --direction need at least one value");
    }
    let manifest = Manifest::read(&args.manifest)
        .with_context(|| format!("reading {}", args.manifest.display()))?;
    let model_dir = emobridge_ssl::hub::resolve_model_dir(
        &args.model,
        &emobridge_ssl::hub::HubOptions::from_env(),
    )?;
    let bar = crate::progress::bar(0, "finetune");
    let outcome = finetune(&config, &manifest, &model_dir, &args.out, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .with_context(|| format!("fine-tuning {}", args.model))?;
    bar.finish_and_clear();
    if !outcome.resumed.is_empty() {
        tracing::info!(
            "resumed {} training run(s) left by an earlier process in {}",
            outcome.resumed.len(),
            args.out.display()
        );
    }
    for r in &outcome.rows {
        let scores = if r.target.is_regression() {
            format!("r {:.3}, CCC {:.3}, RMSE {:.3}", r.pearson, r.ccc, r.rmse)
        } else {
            let (ua, wa, f1) = (r.unweighted_accuracy, r.weighted_accuracy, r.macro_f1);
            format!("UA {ua:.3}, WA {wa:.3}, macro-F1 {f1:.3}")
        };
        tracing::info!(
            "{} {} {} {}: {scores} ({} trainable encoder parameters)",
            r.target.as_str(),
            r.method.as_str(),
            r.direction.as_str(),
            r.setting,
            r.trainable_encoder
        );
    }
    println!("{}", outcome.run_dir.join("run.json").display());
    crate::status::Status::of_run(&outcome.run_dir)
}
