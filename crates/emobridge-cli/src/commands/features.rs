//! `emobridge features`: eGeMAPS v02 / ComParE-2016 descriptors for files or a manifest, written as
//! one CSV (or Parquet) table with openSMILE's column names
//! (`emobridge_studies::features_job::run`).
//!
//! A file that cannot be read or analysed gets one error line and is left out; the others go
//! on, and the failures are listed at the end (the command fails only when every file failed).

use std::path::PathBuf;

use emobridge_acoustic::compare::WindowConfig;
use emobridge_studies::descriptor_table::{FeatureSet, Level, TableConfig};
use emobridge_studies::features_job::{self, FeaturesConfig};

use crate::status::Status;

#[derive(clap::Args)]
#[command(
    after_help = "Output: first column `file`; LLD and window levels add `frameTime` (seconds, window start for \
windows); then openSMILE's columns in openSMILE's order. OUT ending in .parquet writes Parquet, anything else CSV."
)]
pub struct FeaturesArgs {
    /// Descriptor set: `egemaps` (eGeMAPS v02: 25 LLDs, 88 functionals) or `compare`
    /// (ComParE-2016: 65 LLDs + 65 deltas, 6,373 functionals).
    #[arg(long)]
    pub set: FeatureSet,
    /// `lld` (frame-wise descriptors every 10 ms; ComParE: 65 LLDs followed by their 65 deltas),
    /// `functionals` (one row of summary statistics per file) or `windows` (mean
    /// and standard deviation of the LLDs, and ComParE deltas, over sliding windows).
    #[arg(long)]
    pub level: Level,
    /// Audio files (any format and rate the audio crate decodes).
    pub files: Vec<PathBuf>,
    /// A manifest whose `path` column lists the audio files (relative to the manifest's folder).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Output table (.csv or .parquet).
    #[arg(long)]
    pub out: PathBuf,
    /// Window length in seconds for `--level windows`.
    #[arg(long, allow_negative_numbers = true, default_value_t = FeaturesConfig::default().table.window.window_s)]
    pub window_s: f64,
    /// Hop between windows in seconds for `--level windows`.
    #[arg(long, allow_negative_numbers = true, default_value_t = FeaturesConfig::default().table.window.hop_s)]
    pub hop_s: f64,
    /// With `--level windows`, keep only complete windows (drop the partial ones at the end).
    #[arg(long)]
    pub drop_partial: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Only the manifest clips of shard I of N (0-based, membership by clip id, as `extract`):
    /// `--out f.csv` writes f.shard-I-of-N.csv, then f.shard-I-of-N.csv.failures.json;
    /// `emobridge slurm features … --merge` joins the shards.
    #[arg(long)]
    pub shard: Option<String>,
}

pub fn run(args: FeaturesArgs, strict: bool) -> anyhow::Result<Status> {
    let config = FeaturesConfig {
        table: TableConfig {
            set: args.set,
            level: args.level,
            window: WindowConfig {
                window_s: args.window_s,
                hop_s: args.hop_s,
                drop_partial: args.drop_partial,
            },
            threads: args.threads,
            strict,
        },
        files: args.files,
        manifest: args.manifest,
        out: args.out,
        shard: args.shard,
    };
    let bar = crate::progress::bar(0, "features");
    let report = features_job::run(&config, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64)
    });
    bar.finish_and_clear();
    let report = report?;
    if let Some(table) = &report.table {
        tracing::info!(
            "wrote {} rows × {} columns for {} file(s) to {}",
            report.rows,
            report.columns,
            report.files,
            table.display()
        );
    }
    if !report.failures.is_empty() {
        eprintln!(
            "{} of {} file(s) failed:",
            report.failures.len(),
            report.inputs
        );
        for f in &report.failures {
            eprintln!("  {f}");
        }
    }
    Ok(Status::from_count(
        report.failures.len(),
        &report.failures_path,
    ))
}
