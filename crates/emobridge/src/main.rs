//! # emobridge
//!
//! The command-line tool: each subcommand is a thin clap layer over a study or a lower crate.
//! Logs go to stderr through tracing (`-v` for debug); a failure ends with one line naming the
//! bad input and a non-zero exit status.

mod commands;
mod progress;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "emobridge",
    version,
    about = "Emotion in speech and music, side by side: descriptors, SSL layers, probes, transfer, FAD, continuous A/V"
)]
struct Cli {
    /// More logging (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole study on a freshly synthesised corpus (the main job).
    Demo(commands::demo::DemoArgs),
    /// Write the synthetic shared-code corpus and its manifest.
    Synth(commands::synth::SynthArgs),
    /// Turn a published corpus layout into a manifest.
    Import(commands::import::ImportArgs),
    /// Compute eGeMAPS / ComParE descriptors.
    Features(commands::features::FeaturesArgs),
    /// Write every hidden state of an SSL encoder for one file.
    Embed(commands::embed::EmbedArgs),
    /// Fill the embedding cache for a manifest.
    Extract(commands::extract::ExtractArgs),
    /// Fréchet audio distance: between two embedding sets, or the per-emotion study.
    Fad(commands::fad::FadArgs),
    /// Linear emotion probe on every cached hidden state, within and across domains.
    Probe(commands::probe::ProbeArgs),
    /// Two-stage cross-domain fine-tuning (frozen, weighted-sum, full, LoRA, adapter, BitFit).
    Finetune(commands::finetune::FinetuneArgs),
}

fn main() {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Demo(a) => commands::demo::run(a),
        Command::Synth(a) => commands::synth::run(a),
        Command::Import(a) => commands::import::run(a),
        Command::Features(a) => commands::features::run(a),
        Command::Embed(a) => commands::embed::run(a),
        Command::Extract(a) => commands::extract::run(a),
        Command::Fad(a) => commands::fad::run(a),
        Command::Probe(a) => commands::probe::run(a),
        Command::Finetune(a) => commands::finetune::run(a),
    };
    if let Err(e) = result {
        // One line: the context chain joined, so the bad input and the reason read together.
        let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        eprintln!("error: {}", chain.join(": "));
        std::process::exit(1);
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("EMOBRIDGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
