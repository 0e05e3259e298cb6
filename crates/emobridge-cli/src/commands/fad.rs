//! `emobridge fad`: the Fréchet audio distance between two embedding sets
//! (`emobridge_fad::compare_sets`), or the per-emotion study over a manifest and an embedding
//! cache (`emobridge_studies::fad::run`).
//!
//! ```text
//! emobridge fad A B [--json] [--inf] [--bootstrap N]          # one distance
//! emobridge fad --manifest M --cache DIR --model TAG --out DIR   # the study
//! ```
//!
//! A and B may each be a `.npy` [N, D] (f16/f32/f64), a `.safetensors` embedding file
//! ([D], [frames, D] or [layers+1, frames, D] with `--layer`), a folder of such files (one clip
//! per file), a folder with `mu.npy` + `cov.npy`, or an `.npz` of statistics (`mu`/`cov`, or
//! fadtk's `<name>.mu`/`<name>.cov`: pick with `FILE.npz:NAME` or `--stats-name`).

use std::path::PathBuf;

use anyhow::{bail, Context};
use emobridge_fad::frechet::{FrechetOptions, TraceRoute};
use emobridge_fad::PairConfig;

pub use super::fad_study::StudyArgs;

#[derive(clap::Args)]
pub struct FadArgs {
    /// Two embedding sets or statistics, A (baseline) then B (evaluation). Omit with --manifest.
    #[arg(num_args = 0..=2)]
    pub inputs: Vec<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also compute FAD-∞ of B against A (fadtk's estimator, seeded); B must hold embeddings.
    #[arg(long)]
    pub inf: bool,
    /// Sample sizes of FAD-∞.
    #[arg(long, default_value_t = PairConfig::default().inf_steps)]
    pub inf_steps: usize,
    /// Smallest sample size of FAD-∞.
    #[arg(long, default_value_t = PairConfig::default().inf_min_n)]
    pub inf_min_n: usize,
    /// Bootstrap replicates for a confidence interval (0 = none). Files (clips) are resampled
    /// whole when a folder holds several, else rows. In the study: speech-vs-music intervals.
    #[arg(long, default_value_t = PairConfig::default().bootstrap)]
    pub bootstrap: usize,
    /// Coverage of the bootstrap interval.
    #[arg(long, default_value_t = PairConfig::default().confidence)]
    pub confidence: f64,
    /// Seed of FAD-∞ draws, bootstrap draws and the study's subsampling.
    #[arg(long, default_value_t = PairConfig::default().seed)]
    pub seed: u64,
    /// Layer of [layers+1, frames, D] safetensors inputs (0 = input to the first layer).
    #[arg(long)]
    pub layer: Option<usize>,
    /// Tensor to read from safetensors inputs (default: the only one, else `hidden_states`).
    #[arg(long)]
    pub tensor: Option<String>,
    /// Embedding name inside `.npz` statistics (`<name>.mu` / `<name>.cov`), for both inputs.
    #[arg(long)]
    pub stats_name: Option<String>,
    /// Pool every file to its mean row (clip-level statistics) instead of using frames.
    #[arg(long)]
    pub pool: bool,
    /// Factorisation of Σ₁: `auto` (Cholesky when positive definite, else eigh) or `eigh`.
    #[arg(long, default_value_t = TraceRoute::default())]
    pub route: TraceRoute,
    #[command(flatten)]
    pub study: StudyArgs,
}

/// The Fréchet options of the command line.
fn options(args: &FadArgs) -> FrechetOptions {
    FrechetOptions {
        route: args.route,
        ..Default::default()
    }
}

/// The study's settings from the command line (shared with `emobridge slurm fad`).
pub fn study_config(args: &FadArgs) -> anyhow::Result<emobridge_studies::fad::FadStudyConfig> {
    Ok(args.study.config(args, options(args)))
}

pub fn run(args: FadArgs) -> anyhow::Result<crate::status::Status> {
    let options = options(&args);
    match (&args.study.manifest, args.inputs.as_slice()) {
        (Some(_), []) => super::fad_study::run(&args, options),
        (Some(_), _) => bail!("give either two inputs A B or --manifest, not both"),
        (None, [a, b]) => {
            let config = PairConfig {
                layer: args.layer,
                tensor: args.tensor.clone(),
                stats_name: args.stats_name.clone(),
                pool: args.pool,
                options,
                inf: args.inf,
                inf_steps: args.inf_steps,
                inf_min_n: args.inf_min_n,
                bootstrap: args.bootstrap,
                confidence: args.confidence,
                seed: args.seed,
            };
            let report = emobridge_fad::compare_sets(a, b, &config)
                .with_context(|| format!("{} vs {}", a.display(), b.display()))?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{}", report.summary());
            }
            Ok(crate::status::Status::Done)
        }
        (None, inputs) => bail!(
            "expected two inputs A B (got {}), or --manifest M --cache DIR --model TAG --out DIR",
            inputs.len()
        ),
    }
}
