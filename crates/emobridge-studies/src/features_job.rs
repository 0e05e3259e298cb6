//! The `features` pipeline: descriptor tables for files or a manifest (optionally one shard of
//! it), written as CSV or Parquet, with the failed files listed in `OUT.failures.json`.
//!
//! A file that cannot be read or analysed is left out and listed; the others go on, and the job
//! fails only when every file failed (or, under `strict`, at the first failure).

use std::path::{Path, PathBuf};

use emobridge_acoustic::AcousticError;
use emobridge_corpus::{Manifest, ManifestError};
use emobridge_store::{sharded_path, FailureLog, Shard, StoreError};
use serde::{Deserialize, Serialize};

use crate::descriptor_table::{self, Input, Level, TableConfig};
use crate::descriptors::DescriptorError;

/// Settings of [`run`]; `Default` is the documented default of every option (the CLI's clap
/// defaults come from it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct FeaturesConfig {
    /// Descriptor set, level, window geometry, threads and strictness.
    pub table: TableConfig,
    /// Audio files, in the order given.
    pub files: Vec<PathBuf>,
    /// A manifest whose `path` column lists more audio files.
    pub manifest: Option<PathBuf>,
    /// Output table (.parquet writes Parquet, anything else CSV).
    pub out: PathBuf,
    /// Only the manifest clips of shard `I/N` (0-based, membership by clip id).
    pub shard: Option<String>,
}

/// What [`run`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct FeaturesReport {
    /// The table written (the shard's own file with `shard`); None when the shard owned no clip.
    pub table: Option<PathBuf>,
    pub rows: usize,
    pub columns: usize,
    /// Files that produced rows.
    pub files: usize,
    /// Files attempted.
    pub inputs: usize,
    /// One line per failed file.
    pub failures: Vec<String>,
    /// The failure list written (always for a shard; otherwise only when a file failed).
    pub failures_path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum FeaturesError {
    #[error("cannot read manifest {path}: {source}")]
    Manifest {
        path: PathBuf,
        source: ManifestError,
    },
    #[error("--window-s/--hop-s: {0}")]
    Window(AcousticError),
    #[error("--shard splits a manifest by clip id: give --manifest and no FILE arguments")]
    ShardNeedsManifest,
    #[error("--shard writes CSV tables (the merge joins CSV): give an OUT ending in .csv")]
    ShardNeedsCsv,
    #[error("cannot remove {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Descriptor(#[from] DescriptorError),
}

/// The failure list of shard `shard` of the table `out`: `OUT.shard-I-of-N.csv.failures.json`.
pub fn features_failures_path(out: &Path, shard: Shard) -> PathBuf {
    let table = sharded_path(out, shard);
    let name = table
        .file_name()
        .map_or_else(|| "features".into(), |n| n.to_string_lossy().into_owned());
    table.with_file_name(format!("{name}.failures.json"))
}

/// Computes the table of `config`; `progress(done, total)` is called as files finish.
pub fn run(
    config: &FeaturesConfig,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<FeaturesReport, FeaturesError> {
    let manifest = match &config.manifest {
        Some(m) => Some(Manifest::read(m).map_err(|source| FeaturesError::Manifest {
            path: m.clone(),
            source,
        })?),
        None => None,
    };
    if config.table.level == Level::Windows {
        config
            .table
            .window
            .validate()
            .map_err(FeaturesError::Window)?;
    }
    let (inputs, shard) = shard_inputs(
        config,
        descriptor_table::inputs(&config.files, manifest.as_ref()),
    )?;
    let out = shard.map_or_else(|| config.out.clone(), |s| sharded_path(&config.out, s));
    let mut report = FeaturesReport {
        table: None,
        rows: 0,
        columns: 0,
        files: 0,
        inputs: inputs.len(),
        failures: Vec::new(),
        failures_path: failures_path(&config.out, shard),
    };
    if inputs.is_empty() && shard.is_some() {
        tracing::info!("shard owns no clip of the manifest: nothing to do");
        save_failures(&report.failures_path, shard, &[])?;
        return Ok(report);
    }
    let outcome = match descriptor_table::write_table(&config.table, &inputs, &out, progress) {
        Ok(o) => o,
        Err(e) => {
            if matches!(e, DescriptorError::AllFailed { .. }) {
                let all: Vec<(&Input, String)> = inputs
                    .iter()
                    .map(|i| (i, format!("{}: {e}", i.label)))
                    .collect();
                save_failures(&report.failures_path, shard, &all)?;
            }
            return Err(e.into());
        }
    };
    let failed: Vec<(&Input, String)> = outcome
        .failed_inputs
        .iter()
        .zip(&outcome.failures)
        .map(|(&i, line)| (&inputs[i], line.clone()))
        .collect();
    save_failures(&report.failures_path, shard, &failed)?;
    report.table = Some(out);
    report.rows = outcome.rows;
    report.columns = outcome.columns;
    report.files = outcome.files;
    report.failures = outcome.failures;
    Ok(report)
}

/// With a shard: the manifest clips it owns (CSV output only: the merge joins CSV).
fn shard_inputs(
    config: &FeaturesConfig,
    inputs: Vec<Input>,
) -> Result<(Vec<Input>, Option<Shard>), FeaturesError> {
    let Some(spec) = &config.shard else {
        return Ok((inputs, None));
    };
    let shard = Shard::parse(spec)?;
    if config.manifest.is_none() || !config.files.is_empty() {
        return Err(FeaturesError::ShardNeedsManifest);
    }
    if config
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
    {
        return Err(FeaturesError::ShardNeedsCsv);
    }
    // An earlier run's failure list must not mark this run finished if it stops early.
    let marker = features_failures_path(&config.out, shard);
    if marker.exists() {
        std::fs::remove_file(&marker).map_err(|source| FeaturesError::Remove {
            path: marker.clone(),
            source,
        })?;
    }
    let mine = inputs
        .into_iter()
        .filter(|i| i.id.as_deref().is_some_and(|id| shard.owns(id)))
        .collect();
    Ok((mine, Some(shard)))
}

fn failures_path(out: &Path, shard: Option<Shard>) -> PathBuf {
    match shard {
        Some(shard) => features_failures_path(out, shard),
        None => {
            let name = out.file_name().unwrap_or_default().to_string_lossy();
            out.with_file_name(format!("{name}.failures.json"))
        }
    }
}

/// The failure list, written after the table: when a file failed (a stale one removed when none
/// did); a shard's list always, its presence marking the shard finished.
fn save_failures(
    path: &Path,
    shard: Option<Shard>,
    failures: &[(&Input, String)],
) -> Result<(), FeaturesError> {
    if shard.is_none() && failures.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(FeaturesError::Remove {
                path: path.to_path_buf(),
                source: e,
            }),
            _ => Ok(()),
        };
    }
    let mut log = FailureLog::default();
    for (input, line) in failures {
        log.push(
            input.id.as_deref().unwrap_or(&input.label),
            &input.label,
            line,
        );
    }
    log.save(path)?;
    Ok(())
}
