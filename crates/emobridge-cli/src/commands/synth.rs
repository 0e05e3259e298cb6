//! `emobridge synth`: write the synthetic shared-code corpus and its manifest.

use std::path::PathBuf;

use anyhow::Context;
use emobridge_corpus::synth::{generate, SynthConfig, SynthSummary};

#[derive(clap::Args)]
pub struct SynthArgs {
    /// Output folder (created; existing files of the same names are replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// Random seed: the same seed gives byte-identical files.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Clips per (domain, emotion, speaker-or-performer) cell.
    #[arg(long, default_value_t = 3)]
    pub clips_per_cell: usize,
    /// Virtual speakers and performers (each).
    #[arg(long, default_value_t = 6)]
    pub people: usize,
    /// Long drifting clips per domain in the continuous subset.
    #[arg(long, default_value_t = SynthConfig::default().continuous_per_domain)]
    pub continuous: usize,
    /// How much of the acoustic code music shares with speech, in [0, 1]: 1 (the default, the
    /// corpus as it always was) = both domains use the same cue direction per emotion; 0 = music's
    /// cue direction per emotion is drawn independently of speech, so nothing transfers.
    #[arg(long, default_value_t = SynthConfig::default().shared_code)]
    pub shared_code: f32,
}

pub fn run(args: SynthArgs) -> anyhow::Result<()> {
    let cfg = SynthConfig {
        seed: args.seed,
        clips_per_cell: args.clips_per_cell,
        speakers: args.people,
        performers: args.people,
        continuous_per_domain: args.continuous,
        shared_code: args.shared_code,
        ..SynthConfig::default()
    };
    let summary = synthesise(&args.out, &cfg)?;
    println!("{}", summary.manifest_path.display());
    Ok(())
}

/// Writes the corpus with a progress bar and logs a one-line summary.
pub fn synthesise(out: &std::path::Path, cfg: &SynthConfig) -> anyhow::Result<SynthSummary> {
    let bar = crate::progress::bar(0, "synth");
    let summary = generate(out, cfg, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .with_context(|| format!("synthesising the corpus into {}", out.display()))?;
    bar.finish_and_clear();
    let m = &summary.manifest;
    tracing::info!(
        "synthetic corpus: {} clips ({} speech, {} music, {} continuous), {:.0} s of audio, seed {} → {}",
        m.records.len(),
        m.of_domain(emobridge_corpus::Domain::Speech).count(),
        m.of_domain(emobridge_corpus::Domain::Music).count(),
        m.records.iter().filter(|r| !r.annotation.is_empty()).count(),
        summary.audio_seconds,
        cfg.seed,
        summary.manifest_path.display()
    );
    Ok(summary)
}
