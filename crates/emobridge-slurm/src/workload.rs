//! What each command's shards leave behind, how to tell a complete shard from an incomplete one,
//! and how the shards are merged.
//!
//! | command | a shard `I/N` writes | complete when | merge |
//! |---|---|---|---|
//! | `extract` | `CACHE/<tag>/<clip>.safetensors`, `failures.shard-I-of-N.json` | every clip of the shard is cached or listed as a failure | per-shard failure lists → `failures.json` |
//! | `features` (`--out f.csv`) | `f.shard-I-of-N.csv`, `f.shard-I-of-N.csv.failures.json` (written last) | the failure list exists and every clip of the shard is a row or a failure | tables concatenated in manifest order → `f.csv`, failures → `f.csv.failures.json` |
//! | `fad` | `OUT/shards/shard-I-of-N/` (per-layer statistics, `done.json` last) | `done.json` exists | the study from the merged statistics → `OUT/` |
//! | `probe` | `OUT/` | `OUT/run.json` exists | none: one task |
//!
//! Shard membership depends on the clip id only (`emobridge_store::Shard`), so every task and the
//! check agree on who owns which clip.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use emobridge_corpus::Manifest;
use emobridge_store::{sharded_path, EmbeddingCache, Failure, FailureLog, Shard};
use emobridge_studies::fad::FadStudyConfig;
use serde::Serialize;

use crate::{Result, SlurmError};

/// Why `probe` is not split: stated once, shown by the CLI.
pub const PROBE_ONE_TASK: &str = "the probe reads one pooled vector per clip and hidden state from the cache and fits a small logistic regression per fold; the whole study takes a fraction of the extraction that fills the cache, so it runs as one array task (shard the extraction instead)";

/// The command an array runs, with what its check and merge need to know.
#[derive(Debug, Clone)]
pub enum Workload {
    /// `emobridge extract --manifest M --cache ROOT --tag TAG`.
    Extract {
        manifest: PathBuf,
        cache_root: PathBuf,
        tag: String,
    },
    /// `emobridge features --manifest M --out OUT.csv`.
    Features { manifest: PathBuf, out: PathBuf },
    /// `emobridge fad --manifest M --cache ROOT --model TAG --out OUT` (the study).
    Fad {
        manifest: PathBuf,
        cache_root: PathBuf,
        tag: String,
        out: PathBuf,
        config: Box<FadStudyConfig>,
    },
    /// `emobridge probe … --out OUT` (one task).
    Probe { out: PathBuf },
}

/// One shard's state after the array ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShardStatus {
    pub shard: usize,
    pub complete: bool,
    /// Clips the shard owns (features, extract).
    pub clips: usize,
    /// Clips written (cached entries, table rows).
    pub done: usize,
    /// Clips listed as failures, with their reasons.
    pub failed: usize,
    /// Clips neither written nor listed (the first few ids).
    pub missing: Vec<String>,
    pub missing_count: usize,
    /// What is missing, in words, when incomplete.
    pub note: Option<String>,
}

/// The check over every shard, and the merge when all are complete.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    pub command: String,
    pub shards: Vec<ShardStatus>,
    /// Failures of every shard (merged), each with its reason.
    pub failures: Vec<Failure>,
    /// What the merge wrote (`None` while shards are incomplete).
    pub merged: Option<PathBuf>,
}

impl Verification {
    pub fn complete(&self) -> bool {
        self.shards.iter().all(|s| s.complete)
    }

    /// The shards to resubmit.
    pub fn incomplete(&self) -> Vec<usize> {
        self.shards
            .iter()
            .filter(|s| !s.complete)
            .map(|s| s.shard)
            .collect()
    }
}

/// Ids listed in a status (the rest are counted).
const SHOWN_MISSING: usize = 20;

impl Workload {
    pub fn command(&self) -> &'static str {
        match self {
            Workload::Extract { .. } => "extract",
            Workload::Features { .. } => "features",
            Workload::Fad { .. } => "fad",
            Workload::Probe { .. } => "probe",
        }
    }

    /// Whether the command takes `--shard I/N`.
    pub fn shardable(&self) -> bool {
        !matches!(self, Workload::Probe { .. })
    }

    /// Where the script, the logs and the records of the array go.
    pub fn slurm_dir(&self) -> PathBuf {
        match self {
            Workload::Extract {
                cache_root, tag, ..
            } => cache_root.join(tag).join("slurm"),
            Workload::Features { out, .. } => {
                let name = out
                    .file_name()
                    .map_or_else(|| "features".into(), |n| n.to_string_lossy().into_owned());
                out.with_file_name(format!("{name}.slurm"))
            }
            Workload::Fad { out, .. } | Workload::Probe { out } => out.join("slurm"),
        }
    }

    /// Checks what every task would otherwise fail on, before anything is submitted: the
    /// manifest reads, and the settings can be sharded.
    pub fn preflight(&self) -> Result<()> {
        match self {
            Workload::Extract { manifest, .. } | Workload::Features { manifest, .. } => {
                read_manifest(manifest).map(|_| ())
            }
            Workload::Fad {
                manifest, config, ..
            } => {
                if config.bootstrap >= 2 {
                    return Err(SlurmError::Invalid(
                        "--bootstrap resamples whole clips from every row and needs one process: run `emobridge fad` itself for intervals".into(),
                    ));
                }
                read_manifest(manifest).map(|_| ())
            }
            Workload::Probe { .. } => Ok(()),
        }
    }

    /// The shards (of `count`) that must run again.
    pub fn incomplete(&self, count: usize) -> Result<Vec<usize>> {
        Ok(self.check(count)?.incomplete())
    }

    /// Checks every shard; when all are complete, merges them.
    pub fn verify(&self, count: usize) -> Result<Verification> {
        let mut report = self.check(count)?;
        if report.complete() {
            report.merged = Some(self.merge(count, &report)?);
        }
        Ok(report)
    }

    fn check(&self, count: usize) -> Result<Verification> {
        if count == 0 {
            return Err(SlurmError::Invalid("at least one shard is needed".into()));
        }
        let (shards, failures) = match self {
            Workload::Extract {
                manifest,
                cache_root,
                tag,
            } => check_extract(&read_manifest(manifest)?, cache_root, tag, count)?,
            Workload::Features { manifest, out } => {
                check_features(&read_manifest(manifest)?, out, count)?
            }
            Workload::Fad { out, .. } => check_fad(out, count),
            Workload::Probe { out } => {
                // A run.json older than the last submission is an earlier run's.
                let run_json = out.join("run.json");
                let last = crate::read_jobs(&self.slurm_dir())?
                    .last()
                    .map_or(0, |j| j.submitted_unix_s);
                let written = std::fs::metadata(&run_json)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs());
                let done = written.is_some_and(|t| t >= last);
                let status = ShardStatus {
                    shard: 0,
                    complete: done,
                    clips: 0,
                    done: 0,
                    failed: 0,
                    missing: Vec::new(),
                    missing_count: 0,
                    note: (!done).then(|| format!("no {}", out.join("run.json").display())),
                };
                (vec![status], Vec::new())
            }
        };
        Ok(Verification {
            command: self.command().to_string(),
            shards,
            failures,
            merged: None,
        })
    }

    fn merge(&self, count: usize, report: &Verification) -> Result<PathBuf> {
        match self {
            Workload::Extract {
                cache_root, tag, ..
            } => {
                let cache = EmbeddingCache::open(cache_root, tag)?;
                let path = cache.failures_path(None);
                FailureLog {
                    failures: report.failures.clone(),
                    ..FailureLog::default()
                }
                .save(&path)?;
                Ok(path)
            }
            Workload::Features { manifest, out } => {
                merge_features(&read_manifest(manifest)?, out, count, &report.failures)
            }
            Workload::Fad {
                manifest,
                cache_root,
                tag,
                out,
                config,
            } => {
                let manifest = read_manifest(manifest)?;
                let cache = EmbeddingCache::open_existing(cache_root, tag)?;
                let outcome =
                    emobridge_studies::fad::merge_shards(config, &manifest, &cache, out, count)?;
                Ok(outcome.run_dir.join("run.json"))
            }
            Workload::Probe { out } => Ok(out.join("run.json")),
        }
    }
}

fn read_manifest(path: &Path) -> Result<Manifest> {
    // The manifest error names the file and its cause in its own message already.
    Manifest::read(path).map_err(|e| SlurmError::Invalid(format!("cannot read the manifest: {e}")))
}

/// A shard's failure list, when its task got that far.
fn read_failures(path: &Path) -> Result<Option<FailureLog>> {
    if !path.is_file() {
        return Ok(None);
    }
    Ok(Some(FailureLog::load(path)?))
}

fn status(
    shard: usize,
    owned: &[&str],
    done: impl Fn(&str) -> bool,
    failed: &HashMap<String, Failure>,
    note_when_missing: Option<String>,
) -> (ShardStatus, Vec<Failure>) {
    let mut missing = Vec::new();
    let mut n_done = 0;
    let mut failures = Vec::new();
    for id in owned {
        if done(id) {
            n_done += 1;
        } else if let Some(f) = failed.get(*id) {
            failures.push(f.clone());
        } else {
            missing.push(id.to_string());
        }
    }
    let complete = missing.is_empty() && note_when_missing.is_none();
    let missing_count = missing.len();
    missing.truncate(SHOWN_MISSING);
    let note = if complete {
        None
    } else {
        note_when_missing.or_else(|| {
            Some(format!(
                "{missing_count} clip(s) neither written nor listed as failures"
            ))
        })
    };
    (
        ShardStatus {
            shard,
            complete,
            clips: owned.len(),
            done: n_done,
            failed: failures.len(),
            missing,
            missing_count,
            note,
        },
        failures,
    )
}

fn check_extract(
    manifest: &Manifest,
    cache_root: &Path,
    tag: &str,
    count: usize,
) -> Result<(Vec<ShardStatus>, Vec<Failure>)> {
    let cache = EmbeddingCache::open(cache_root, tag)?;
    let cached: BTreeSet<String> = cache.ids()?.into_iter().collect();
    let mut shards = Vec::new();
    let mut all_failures = Vec::new();
    for index in 0..count {
        let shard = Shard { index, count };
        let owned: Vec<&str> = manifest
            .records
            .iter()
            .filter(|r| shard.owns(&r.id))
            .map(|r| r.id.as_str())
            .collect();
        let failed: HashMap<String, Failure> =
            match read_failures(&cache.failures_path(Some(shard)))? {
                Some(log) => log
                    .failures
                    .into_iter()
                    .map(|f| (f.id.clone(), f))
                    .collect(),
                None => HashMap::new(),
            };
        let (status, failures) = status(index, &owned, |id| cached.contains(id), &failed, None);
        shards.push(status);
        all_failures.extend(failures);
    }
    Ok((shards, all_failures))
}

fn check_fad(out: &Path, count: usize) -> (Vec<ShardStatus>, Vec<Failure>) {
    let mut shards = Vec::new();
    let mut failures = Vec::new();
    for index in 0..count {
        let shard = Shard { index, count };
        let status = match emobridge_studies::fad::shard_record(out, shard) {
            Ok(record) => {
                // A clip whose data did not read is listed once per layer.
                let failed: BTreeSet<&str> =
                    record.failures.iter().map(|f| f.item.as_str()).collect();
                failures.extend(record.failures.iter().map(|f| Failure {
                    id: f.item.clone(),
                    path: f.path.clone(),
                    error: f.reason.clone(),
                }));
                ShardStatus {
                    shard: index,
                    complete: true,
                    clips: record.clips,
                    done: record.clips - failed.len().min(record.clips),
                    failed: failed.len(),
                    missing: Vec::new(),
                    missing_count: 0,
                    note: None,
                }
            }
            Err(e) => ShardStatus {
                shard: index,
                complete: false,
                clips: 0,
                done: 0,
                failed: 0,
                missing: Vec::new(),
                missing_count: 0,
                note: Some(e.to_string()),
            },
        };
        shards.push(status);
    }
    (shards, failures)
}

pub use emobridge_studies::features_job::features_failures_path;

/// The `file` labels a sharded table holds (first column).
fn table_files(path: &Path) -> Result<(Vec<String>, Vec<csv::StringRecord>)> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| SlurmError::Format {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| SlurmError::Format {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?
        .iter()
        .map(str::to_string)
        .collect();
    let rows = reader
        .records()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SlurmError::Format {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    Ok((header, rows))
}

fn check_features(
    manifest: &Manifest,
    out: &Path,
    count: usize,
) -> Result<(Vec<ShardStatus>, Vec<Failure>)> {
    let mut shards = Vec::new();
    let mut all_failures = Vec::new();
    for index in 0..count {
        let shard = Shard { index, count };
        let records: Vec<_> = manifest
            .records
            .iter()
            .filter(|r| shard.owns(&r.id))
            .collect();
        let owned: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        let failures_path = features_failures_path(out, shard);
        let log = read_failures(&failures_path)?;
        let failed: HashMap<String, Failure> = log
            .iter()
            .flat_map(|l| l.failures.iter())
            .map(|f| (f.id.clone(), f.clone()))
            .collect();
        let table = sharded_path(out, shard);
        let files: BTreeSet<String> = if table.is_file() {
            table_files(&table)?
                .1
                .iter()
                .filter_map(|r| r.get(0).map(str::to_string))
                .collect()
        } else {
            BTreeSet::new()
        };
        let path_of: HashMap<&str, &str> = records
            .iter()
            .map(|r| (r.id.as_str(), r.path.as_str()))
            .collect();
        let note = log
            .is_none()
            .then(|| format!("no {} (the task did not finish)", failures_path.display()));
        let (status, failures) = status(
            index,
            &owned,
            |id| path_of.get(id).is_some_and(|p| files.contains(*p)),
            &failed,
            note,
        );
        shards.push(status);
        all_failures.extend(failures);
    }
    Ok((shards, all_failures))
}

/// Concatenates the shard tables in manifest order (the order one process writes) into `out`.
fn merge_features(
    manifest: &Manifest,
    out: &Path,
    count: usize,
    failures: &[Failure],
) -> Result<PathBuf> {
    let order: HashMap<&str, usize> = manifest
        .records
        .iter()
        .enumerate()
        .rev()
        .map(|(i, r)| (r.path.as_str(), i))
        .collect();
    let mut header: Option<(PathBuf, Vec<String>)> = None;
    let mut rows: Vec<(usize, usize, csv::StringRecord)> = Vec::new();
    for index in 0..count {
        let table = sharded_path(out, Shard { index, count });
        if !table.is_file() {
            continue; // every clip of this shard failed or it owned none (checked above)
        }
        let (h, records) = table_files(&table)?;
        match &header {
            None => header = Some((table.clone(), h)),
            Some((first, h0)) if *h0 != h => {
                return Err(SlurmError::Format {
                    path: table,
                    reason: format!("its columns differ from those of {}", first.display()),
                })
            }
            Some(_) => {}
        }
        for r in records {
            let at = r
                .get(0)
                .and_then(|f| order.get(f))
                .copied()
                .unwrap_or(usize::MAX);
            rows.push((at, rows.len(), r));
        }
    }
    let Some((_, header)) = header else {
        return Err(SlurmError::Invalid(format!(
            "no shard wrote a table (every clip failed): nothing to merge into {}",
            out.display()
        )));
    };
    rows.sort_by_key(|(at, seq, _)| (*at, *seq));
    let mut writer = csv::Writer::from_writer(Vec::new());
    let csv_err = |e: csv::Error| SlurmError::Format {
        path: out.to_path_buf(),
        reason: e.to_string(),
    };
    writer.write_record(&header).map_err(csv_err)?;
    for (_, _, r) in &rows {
        writer.write_record(r).map_err(csv_err)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| SlurmError::Invalid(format!("{}: {e}", out.display())))?;
    emobridge_store::write_atomic(out, &bytes)?;
    let name = out
        .file_name()
        .map_or_else(|| "features".into(), |n| n.to_string_lossy().into_owned());
    FailureLog {
        failures: failures.to_vec(),
        ..FailureLog::default()
    }
    .save(&out.with_file_name(format!("{name}.failures.json")))?;
    Ok(out.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use emobridge_corpus::{Domain, Record};

    fn manifest(dir: &Path, n: usize) -> PathBuf {
        let records = (0..n)
            .map(|i| {
                Record::new(
                    format!("clip{i:02}"),
                    format!("a/clip{i:02}.wav"),
                    Domain::Speech,
                    "t",
                    "s",
                )
            })
            .collect();
        let path = dir.join("m.csv");
        Manifest::new(dir, records).write(&path).unwrap();
        path
    }

    #[test]
    fn extract_shards_are_complete_when_every_clip_is_cached_or_failed() {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest(dir.path(), 12);
        let w = Workload::Extract {
            manifest: m.clone(),
            cache_root: dir.path().join("cache"),
            tag: "tiny".into(),
        };
        assert_eq!(w.incomplete(3).unwrap(), vec![0, 1, 2]);
        let cache = EmbeddingCache::open(&dir.path().join("cache"), "tiny").unwrap();
        let manifest = Manifest::read(&m).unwrap();
        // Shards 0 and 2 finish; one clip of shard 2 fails with a reason.
        for index in [0, 2] {
            let shard = Shard { index, count: 3 };
            let mut log = FailureLog::default();
            for (k, r) in manifest
                .records
                .iter()
                .filter(|r| shard.owns(&r.id))
                .enumerate()
            {
                if index == 2 && k == 0 {
                    log.push(&r.id, &r.path, "cannot decode");
                } else {
                    std::fs::write(cache.path_for(&r.id).unwrap(), b"x").unwrap();
                }
            }
            log.save(&cache.failures_path(Some(shard))).unwrap();
        }
        let report = w.verify(3).unwrap();
        assert_eq!(report.incomplete(), vec![1]);
        assert!(report.merged.is_none());
        assert_eq!(report.failures.len(), 1);
        assert_eq!(report.failures[0].error, "cannot decode");
        let s1 = &report.shards[1];
        assert_eq!(s1.missing_count, s1.clips);
        // Shard 1 finishes: complete, and the failure lists merge into failures.json.
        let shard = Shard { index: 1, count: 3 };
        for r in manifest.records.iter().filter(|r| shard.owns(&r.id)) {
            std::fs::write(cache.path_for(&r.id).unwrap(), b"x").unwrap();
        }
        let report = w.verify(3).unwrap();
        assert!(report.complete());
        let merged = FailureLog::load(report.merged.as_ref().unwrap()).unwrap();
        assert_eq!(merged.failures.len(), 1);
    }

    #[test]
    fn feature_tables_merge_in_manifest_order() {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest(dir.path(), 9);
        let out = dir.path().join("feats.csv");
        let w = Workload::Features {
            manifest: m.clone(),
            out: out.clone(),
        };
        let manifest = Manifest::read(&m).unwrap();
        for index in 0..2 {
            let shard = Shard { index, count: 2 };
            let mut text = String::from("file,frameTime,x\n");
            let mut log = FailureLog::default();
            for r in manifest.records.iter().filter(|r| shard.owns(&r.id)) {
                if r.id == "clip03" {
                    log.push(&r.id, &r.path, "too short");
                    continue;
                }
                text.push_str(&format!(
                    "{},0,{}\n{},0.01,{}\n",
                    r.path, r.id, r.path, r.id
                ));
            }
            std::fs::write(sharded_path(&out, shard), text).unwrap();
            if index == 0 {
                assert_eq!(w.incomplete(2).unwrap(), vec![0, 1], "no failure list yet");
            }
            log.save(&features_failures_path(&out, shard)).unwrap();
        }
        let report = w.verify(2).unwrap();
        assert!(report.complete(), "{report:?}");
        let merged = std::fs::read_to_string(&out).unwrap();
        let mut expected = String::from("file,frameTime,x\n");
        for r in &manifest.records {
            if r.id != "clip03" {
                expected.push_str(&format!(
                    "{},0,{}\n{},0.01,{}\n",
                    r.path, r.id, r.path, r.id
                ));
            }
        }
        assert_eq!(merged, expected);
        let failures = FailureLog::load(&dir.path().join("feats.csv.failures.json")).unwrap();
        assert_eq!(failures.failures[0].id, "clip03");
    }

    #[test]
    fn slurm_folders() {
        let w = Workload::Features {
            manifest: "m.csv".into(),
            out: "out/feats.csv".into(),
        };
        assert_eq!(w.slurm_dir(), Path::new("out/feats.csv.slurm"));
        let p = Workload::Probe { out: "run".into() };
        assert!(!p.shardable());
        assert_eq!(p.slurm_dir(), Path::new("run/slurm"));
    }
}
