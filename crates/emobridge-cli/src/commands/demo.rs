//! `emobridge demo`: every study on a freshly synthesised corpus (`emobridge_studies::demo::run`;
//! see there for the steps).

use std::path::PathBuf;

use anyhow::Context;
use emobridge_studies::demo::DemoConfig;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Run folder (created).
    #[arg(long, default_value_os_t = DemoConfig::default().out)]
    pub out: PathBuf,
    /// The small corpus (finishes in about two minutes on 2 cores).
    #[arg(long)]
    pub quick: bool,
    /// Seed for the corpus and every random choice downstream.
    #[arg(long, default_value_t = DemoConfig::default().seed)]
    pub seed: u64,
    /// Also run the study on every layer of this SSL encoder (a HuggingFace model folder such
    /// as wav2vec2-base or MERT-v1-95M, or ORG/NAME in the local HF cache).
    #[arg(long)]
    pub model: Option<String>,
}

pub fn run(args: DemoArgs, strict: bool) -> anyhow::Result<crate::status::Status> {
    let config = DemoConfig {
        out: args.out,
        quick: args.quick,
        seed: args.seed,
        model: args.model,
        strict,
    };
    let bar = crate::progress::bar(0, "demo");
    let outcome = emobridge_studies::demo::run(&config, &|stage, done, total| {
        bar.set_message(stage.to_string());
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .with_context(|| format!("demo in {}", config.out.display()))?;
    bar.finish_and_clear();
    tracing::info!(
        "demo finished in {:.0} s → {}",
        outcome.seconds,
        config.out.display()
    );
    println!("{}", outcome.report.display());
    crate::status::Status::of_run(&config.out)
}
