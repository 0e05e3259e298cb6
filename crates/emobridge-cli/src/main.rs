//! # emobridge (package `emobridge-cli`)
//!
//! The command-line tool: each subcommand parses its arguments, calls one library function of
//! the `emobridge` crates and prints the result.
//! Logs go to stderr through tracing (`-v` for debug); a failure ends with one line naming the
//! bad input and a non-zero exit status.

mod commands;
mod progress;
mod status;

use status::Status;

const EXIT_STATUS: &str = "\
Exit status of batch commands (extract, features, fad --manifest, probe, continuous, finetune,
import, demo):
  0  everything done
  3  partial success: some items failed, listed in failures.json (the run folder's; for extract
     the cache tag folder's; for features OUT.failures.json; for import the *_issues.csv)
  1  nothing usable, or --strict and an item failed
  2  usage error (bad or missing arguments)
--strict stops at the first failed item: one line names it, what was already written stays
(each file written atomically), that item is listed (studies: run.json + failures.json, and no
result tables; extract: the tag folder's failures.json; features: no table; import: no
manifest, the issue in *_issues.csv), and nothing after it is computed.";

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "emobridge",
    version,
    about = "Emotion in speech and music, side by side: descriptors, SSL layers, emotion probes, Fréchet audio distance, continuous arousal/valence, cross-domain fine-tuning, HTML report",
    after_help = EXIT_STATUS
)]
struct Cli {
    /// More logging (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Stop a batch command at its first failed item (exit 1), keeping what was written and
    /// listing the item in failures.json (import: *_issues.csv, no manifest).
    #[arg(long, global = true)]
    strict: bool,
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
    /// Layer-wise probing and speech ↔ music transfer (emotion, arousal or valence).
    Probe(commands::probe::ProbeArgs),
    /// Time-continuous arousal/valence with LSTMs: intra-domain, cross-domain, via a DAE.
    Continuous(commands::continuous::ContinuousArgs),
    /// One self-contained HTML page (and summary.json/.md) from run folders.
    Report(commands::report::ReportArgs),
    /// Run extract, features, fad or probe on a Slurm cluster as a job array, one task per shard.
    Slurm(commands::slurm::SlurmArgs),
    /// Two-stage cross-domain fine-tuning (frozen, weighted-sum, full, LoRA, adapter, BitFit).
    Finetune(commands::finetune::FinetuneArgs),
}

fn main() {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let strict = cli.strict;
    let done = |r: anyhow::Result<()>| r.map(|()| Status::Done);
    let result = match cli.command {
        Command::Demo(a) => commands::demo::run(a, strict),
        Command::Synth(a) => done(commands::synth::run(a)),
        Command::Import(a) => commands::import::run(a, strict),
        Command::Features(a) => commands::features::run(a, strict),
        Command::Embed(a) => done(commands::embed::run(a)),
        Command::Extract(a) => commands::extract::run(a, strict),
        Command::Fad(a) => commands::fad::run(a, strict),
        Command::Probe(a) => commands::probe::run(a, strict),
        Command::Continuous(a) => commands::continuous::run(a, strict),
        Command::Report(a) => done(commands::report::run(a)),
        Command::Slurm(a) => done(commands::slurm::run(a)),
        Command::Finetune(a) => commands::finetune::run(a, strict),
    };
    match result {
        Ok(status) => std::process::exit(status.exit_code(strict)),
        Err(e) => {
            // One line: the context chain joined, so the bad input and the reason read together.
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", one_line(&chain));
            std::process::exit(1);
        }
    }
}

/// The context chain as one line, each message once: a typed error whose text already ends
/// with its source's text (`x.wav: No such file (os error 2)` over `No such file (os error 2)`)
/// does not repeat it, nor does a context already at the start of the next message.
fn one_line(chain: &[String]) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for msg in chain {
        let msg = msg.as_str();
        if msg.is_empty() {
            continue;
        }
        if let Some(prev) = parts.last_mut() {
            if prev.ends_with(msg) {
                continue;
            }
            if msg.starts_with(*prev) {
                *prev = msg;
                continue;
            }
        }
        parts.push(msg);
    }
    parts.join(": ")
}

fn init_logging(verbose: u8) {
    // The decoders' own log lines (symphonia's `probe reached EOF`, `skipping junk`) are noise
    // at default verbosity: every failure that matters comes back as a typed error naming the file.
    let default = match verbose {
        0 => "info,symphonia=off,symphonia_core=off,symphonia_bundle_mp3=off,symphonia_format_ogg=off,symphonia_format_riff=off,symphonia_bundle_flac=off,symphonia_codec_vorbis=off,symphonia_codec_pcm=off",
        1 => "debug,symphonia=warn,symphonia_core=warn,symphonia_bundle_mp3=warn,symphonia_format_ogg=warn,symphonia_format_riff=warn",
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

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn repeated_text_in_a_chain_is_printed_once() {
        let chain = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            one_line(&chain(&[
                "importing ravdess from /x",
                "/x: No such file or directory (os error 2)",
                "No such file or directory (os error 2)",
            ])),
            "importing ravdess from /x: /x: No such file or directory (os error 2)"
        );
        assert_eq!(
            one_line(&chain(&["FAD-∞", "FAD-∞: too few samples"])),
            "FAD-∞: too few samples"
        );
        assert_eq!(one_line(&chain(&["a", "b", "c"])), "a: b: c");
    }
}
