//! `emobridge features`: eGeMAPS v02 / ComParE-2016 descriptors for files or a manifest, written as
//! one CSV (or Parquet) table with openSMILE's column names
//! (`emobridge_studies::descriptor_table::extract_table`).
//!
//! A file that cannot be read or analysed gets one error line and is left out; the others go
//! on, and the failures are listed at the end (the command fails only when every file failed).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use emobridge_acoustic::compare::WindowConfig;
use emobridge_slurm::workload::features_failures_path;
use emobridge_store::{sharded_path, FailureLog, Shard};
use emobridge_studies::descriptor_table::{self, FeatureSet, Input, Level, TableConfig};

use crate::status::Status;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FeatureSetArg {
    /// eGeMAPS v02: 25 LLDs, 88 functionals.
    Egemaps,
    /// ComParE-2016: 65 LLDs + 65 deltas (functionals are not provided).
    Compare,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LevelArg {
    /// Frame-wise descriptors every 10 ms (ComParE: 65 LLDs followed by their 65 deltas).
    Lld,
    /// One row of summary statistics per file (eGeMAPS only).
    Functionals,
    /// Mean and standard deviation of the LLDs (and ComParE deltas) over sliding windows.
    Windows,
}

#[derive(clap::Args)]
#[command(
    after_help = "Output: first column `file`; LLD and window levels add `frameTime` (seconds, window start for \
windows); then openSMILE's columns in openSMILE's order. OUT ending in .parquet writes Parquet, anything else CSV."
)]
pub struct FeaturesArgs {
    /// Descriptor set.
    #[arg(long, value_enum)]
    pub set: FeatureSetArg,
    /// Frame-wise LLDs, per-file functionals, or windowed mean/std.
    #[arg(long, value_enum)]
    pub level: LevelArg,
    /// Audio files (any format and rate the audio crate decodes).
    pub files: Vec<PathBuf>,
    /// A manifest whose `path` column lists the audio files (relative to the manifest's folder).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Output table (.csv or .parquet).
    #[arg(long)]
    pub out: PathBuf,
    /// Window length in seconds for `--level windows`.
    #[arg(long, default_value_t = WindowConfig::default().window_s)]
    pub window_s: f64,
    /// Hop between windows in seconds for `--level windows`.
    #[arg(long, default_value_t = WindowConfig::default().hop_s)]
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

pub fn run(args: FeaturesArgs, strict: bool) -> anyhow::Result<crate::status::Status> {
    let config = TableConfig {
        set: match args.set {
            FeatureSetArg::Egemaps => FeatureSet::Egemaps,
            FeatureSetArg::Compare => FeatureSet::Compare,
        },
        level: match args.level {
            LevelArg::Lld => Level::Lld,
            LevelArg::Functionals => Level::Functionals,
            LevelArg::Windows => Level::Windows,
        },
        window: WindowConfig {
            window_s: args.window_s,
            hop_s: args.hop_s,
            drop_partial: args.drop_partial,
        },
        threads: args.threads,
        strict,
    };
    let manifest = match &args.manifest {
        Some(m) => Some(
            emobridge_corpus::Manifest::read(m)
                .with_context(|| format!("cannot read manifest {}", m.display()))?,
        ),
        None => None,
    };
    if config.level == Level::Windows {
        config
            .window
            .validate()
            .map_err(|e| anyhow::anyhow!("--window-s/--hop-s: {e}"))?;
    }
    let (inputs, shard) = shard_inputs(
        &args,
        descriptor_table::inputs(&args.files, manifest.as_ref()),
    )?;
    let out = shard.map_or_else(|| args.out.clone(), |s| sharded_path(&args.out, s));
    if inputs.is_empty() && shard.is_some() {
        tracing::info!("shard owns no clip of the manifest: nothing to do");
        return save_failures(&args.out, shard, &[]);
    }
    let bar = crate::progress::bar(inputs.len() as u64, "features");
    let outcome =
        descriptor_table::extract_table(&config, &inputs, &|done, _| bar.set_position(done as u64));
    bar.finish_and_clear();
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            if matches!(
                e,
                emobridge_studies::descriptors::DescriptorError::AllFailed { .. }
            ) {
                let all: Vec<(&Input, String)> = inputs
                    .iter()
                    .map(|i| (i, format!("{}: {e}", i.label)))
                    .collect();
                save_failures(&args.out, shard, &all)?;
            }
            return Err(e.into());
        }
    };
    outcome.table.write(&out)?;
    let failed: Vec<(&Input, String)> = outcome
        .failed_inputs
        .iter()
        .zip(&outcome.failures)
        .map(|(&i, line)| (&inputs[i], line.clone()))
        .collect();
    let status = save_failures(&args.out, shard, &failed)?;
    tracing::info!(
        "wrote {} rows × {} columns for {} file(s) to {}",
        outcome.table.rows.len(),
        outcome.table.columns.len(),
        outcome.files,
        out.display()
    );
    if !outcome.failures.is_empty() {
        eprintln!(
            "{} of {} file(s) failed:",
            outcome.failures.len(),
            inputs.len()
        );
        for f in &outcome.failures {
            eprintln!("  {f}");
        }
    }
    Ok(status)
}

/// With `--shard I/N`: the manifest clips of the shard (CSV output only: the merge joins CSV).
fn shard_inputs(
    args: &FeaturesArgs,
    inputs: Vec<Input>,
) -> anyhow::Result<(Vec<Input>, Option<Shard>)> {
    let Some(spec) = &args.shard else {
        return Ok((inputs, None));
    };
    let shard = Shard::parse(spec)?;
    if args.manifest.is_none() || !args.files.is_empty() {
        bail!("--shard splits a manifest by clip id: give --manifest and no FILE arguments");
    }
    if args
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
    {
        bail!("--shard writes CSV tables (the merge joins CSV): give an OUT ending in .csv");
    }
    // An earlier run's failure list must not mark this run finished if it stops early.
    let marker = features_failures_path(&args.out, shard);
    if marker.exists() {
        std::fs::remove_file(&marker)
            .with_context(|| format!("cannot remove {}", marker.display()))?;
    }
    let mine = inputs
        .into_iter()
        .filter(|i| i.id.as_deref().is_some_and(|id| shard.owns(id)))
        .collect();
    Ok((mine, Some(shard)))
}

/// The failure list, written after the table: `OUT.failures.json` when a file failed (a stale
/// one removed when none did); a shard's list always, its presence marking the shard finished.
fn save_failures(
    out: &Path,
    shard: Option<Shard>,
    failures: &[(&Input, String)],
) -> anyhow::Result<Status> {
    let path = match shard {
        Some(shard) => features_failures_path(out, shard),
        None => {
            let name = out.file_name().unwrap_or_default().to_string_lossy();
            out.with_file_name(format!("{name}.failures.json"))
        }
    };
    if shard.is_none() && failures.is_empty() {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove {}", path.display()))
            }
            _ => return Ok(Status::Done),
        }
    }
    let mut log = FailureLog::default();
    for (input, line) in failures {
        log.push(
            input.id.as_deref().unwrap_or(&input.label),
            &input.label,
            line,
        );
    }
    log.save(&path)?;
    Ok(Status::from_count(failures.len(), &path))
}
