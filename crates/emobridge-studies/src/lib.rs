//! # emobridge-studies
//!
//! Owns the experiments of the two papers, each a readable pipeline over the lower crates that
//! writes a run folder (`run.json`, tables, plots). [`RunFolder`] is the shared run record.

/// `as_str`, `Display` and `FromStr` of a settings enum by the names its serde form uses, so
/// front ends (clap flags, TOML) parse and print it the same way.
macro_rules! spelled {
    ($t:ty, $what:literal, $($v:ident = $s:literal),+) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok(Self::$v),)+
                    other => Err(format!(
                        concat!("unknown ", $what, " `{}` (one of: {})"),
                        other,
                        [$($s),+].join(", ")
                    )),
                }
            }
        }
    };
}
pub mod continuous;
pub mod demo;
pub mod descriptor_table;
pub mod descriptors;
pub mod fad;
pub mod features_job;
pub mod finetune;
pub mod number_text;
pub mod protocol;
pub mod separability;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use emobridge_store::EmbeddingCache;
use serde::Serialize;

/// Why a run folder could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RunFolderError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Another process holds this run folder (rule: one writer per run folder at a time).
    #[error("{}: this run folder is being written by another run (its pid is in {}); wait for it to finish or choose another output folder", dir.display(), dir.join(RUN_LOCK).display())]
    Busy { dir: PathBuf },
    /// `--strict`: the batch stopped at this item's failure. What the run had written stays;
    /// `run.json` and `failures.json` (listing the item) were written before this returned.
    #[error("{item}: {reason} (--strict: stopped at the first failure; listed in {})", listed_in.display())]
    Strict {
        item: String,
        reason: String,
        listed_in: PathBuf,
    },
}

/// Maps `f` over `items` in parallel, results in input order. Under `strict` the first failure
/// stops the items not yet started (they come back `None`); otherwise every item runs. The
/// item that failed is always among the results, so a caller that records the failures in
/// input order through a strict [`RunFolder`] stops at one.
pub(crate) fn par_until_failure<T, R, E>(
    items: &[T],
    strict: bool,
    f: impl Fn(&T) -> Result<R, E> + Sync + Send,
) -> Vec<Option<Result<R, E>>>
where
    T: Sync,
    R: Send,
    E: Send,
{
    use rayon::prelude::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = AtomicBool::new(false);
    items
        .par_iter()
        .map(|item| {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let out = f(item);
            if out.is_err() && strict {
                stop.store(true, Ordering::Relaxed);
            }
            Some(out)
        })
        .collect()
}

/// One item a batch study skipped, and why.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct RunFailure {
    /// The clip id (or other unit) that failed.
    pub item: String,
    /// The file involved, when there is one.
    pub path: String,
    pub reason: String,
}

/// What a written file is, so a report can render any run without knowing the study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactKind {
    /// A CSV (or Markdown/Parquet) table a reader should see.
    Table,
    /// A plot; `path` names the SVG (or PNG) file, the twin format sits beside it.
    Figure,
    /// Any other output (JSON detail, per-fold files, weights).
    Data,
}

/// One typed output of a run: where it is, what it is, and how to read it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Artifact {
    pub kind: ArtifactKind,
    /// Relative to the run folder.
    pub path: String,
    /// A short title ("UA by layer, within and across domains").
    pub title: String,
    /// Two plain-language lines: what the artifact shows and how to read it.
    pub caption: String,
}

/// One number that matters, with the sentence that states it (for the report and `summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Headline {
    /// A stable machine key, e.g. `best_layer_speech` or `closest_emotion`.
    pub key: String,
    /// The value (number, string or small object).
    pub value: serde_json::Value,
    /// The sentence a reader sees, e.g. "Speech emotion peaks at layer 7 (UA 0.62, chance 0.17)."
    pub text: String,
}

/// The content of `run.json`.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub study: String,
    /// The command line that started the run (or the calling function when run as a library).
    pub command: String,
    pub config: serde_json::Value,
    pub seed: u64,
    /// Version of the emobridge crates.
    pub crate_version: String,
    /// The commit emobridge was built from (embedded at build time), when known.
    pub git_commit: Option<String>,
    /// SHA-256 (hex) of the inputs: `manifest`, `audio_list`, `model_weights`, …
    pub hashes: BTreeMap<String, String>,
    /// Study-specific facts worth keeping (sample sizes, conventions, warnings).
    pub notes: BTreeMap<String, serde_json::Value>,
    pub failures: Vec<RunFailure>,
    /// Files the run wrote, relative to the run folder.
    pub outputs: Vec<String>,
    /// The outputs a reader should see, typed, titled and captioned (a subset of `outputs`).
    pub artifacts: Vec<Artifact>,
    /// The run's headline numbers, each with its sentence.
    pub headlines: Vec<Headline>,
    pub started_unix_s: u64,
    pub elapsed_s: f64,
}

/// The lock file of a run folder (an advisory exclusive lock; its content is the holder's pid,
/// for a reader who finds the folder busy).
pub const RUN_LOCK: &str = ".emobridge.lock";

/// A held run-folder lock (see [`lock_run_folder`]); the folder is free again when the last
/// holder in this process drops it.
#[derive(Debug, Clone)]
pub struct RunFolderLock {
    _file: std::sync::Arc<std::fs::File>,
}

/// Takes the run folder's exclusive lock without waiting: two processes writing one folder would
/// interleave their tables, so the second is refused with [`RunFolderError::Busy`]. Within one
/// process the lock is shared: a pipeline that holds its folder from the start (the demo) can
/// still open its [`RunFolder`] at the end. `dir` must exist.
pub fn lock_run_folder(dir: &Path) -> Result<RunFolderLock, RunFolderError> {
    use std::collections::HashMap;
    use std::io::Write;
    use std::sync::{Arc, Mutex, Weak};
    static HELD: Mutex<Option<HashMap<PathBuf, Weak<std::fs::File>>>> = Mutex::new(None);
    let path = dir.join(RUN_LOCK);
    let io = |source| RunFolderError::Io {
        path: path.clone(),
        source,
    };
    let key = dir.canonicalize().map_err(io)?;
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    let held = held.get_or_insert_with(HashMap::new);
    if let Some(file) = held.get(&key).and_then(Weak::upgrade) {
        return Ok(RunFolderLock { _file: file });
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(RunFolderError::Busy {
                dir: dir.to_path_buf(),
            })
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    write!(file, "{}", std::process::id()).map_err(io)?;
    let file = Arc::new(file);
    held.retain(|_, w| w.strong_count() > 0);
    held.insert(key, Arc::downgrade(&file));
    Ok(RunFolderLock { _file: file })
}

/// A study's output folder and its `run.json`, written by [`RunFolder::finish`].
#[derive(Debug)]
pub struct RunFolder {
    dir: PathBuf,
    /// Held while the folder is written; the OS releases it when the process ends, kill -9
    /// included, so a later run never finds a stale lock.
    _lock: RunFolderLock,
    started: Instant,
    record: RunRecord,
    strict: bool,
}

impl RunFolder {
    /// Creates `dir` (and parents). The command defaults to this process's command line.
    pub fn create(dir: &Path, study: &str) -> Result<RunFolder, RunFolderError> {
        Self::create_started(dir, study, Instant::now())
    }

    /// As [`RunFolder::create`] for a run that began at `started` (a pipeline that opens its run
    /// folder last still records its true elapsed time).
    pub fn create_started(
        dir: &Path,
        study: &str,
        started: Instant,
    ) -> Result<RunFolder, RunFolderError> {
        std::fs::create_dir_all(dir).map_err(|source| RunFolderError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let lock = lock_run_folder(dir)?;
        // An earlier run's failure list must not describe this one.
        let stale = dir.join(FAILURES_JSON);
        match std::fs::remove_file(&stale) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(RunFolderError::Io {
                    path: stale,
                    source: e,
                })
            }
            _ => {}
        }
        let record = RunRecord {
            study: study.to_string(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            config: serde_json::Value::Null,
            seed: 0,
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: git_commit(),
            hashes: BTreeMap::new(),
            notes: BTreeMap::new(),
            failures: Vec::new(),
            outputs: Vec::new(),
            artifacts: Vec::new(),
            headlines: Vec::new(),
            started_unix_s: SystemTime::now()
                .checked_sub(started.elapsed())
                .unwrap_or_else(SystemTime::now)
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            elapsed_s: 0.0,
        };
        Ok(RunFolder {
            dir: dir.to_path_buf(),
            _lock: lock,
            started,
            record,
            strict: false,
        })
    }

    /// Under `strict` ( `--strict`), [`RunFolder::fail`] stops the batch at the first failure.
    pub fn set_strict(&mut self, strict: bool) {
        self.strict = strict;
    }

    /// Whether the first failure stops the batch.
    pub fn strict(&self) -> bool {
        self.strict
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A path inside the run folder.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    pub fn set_command(&mut self, command: impl Into<String>) {
        self.record.command = command.into();
    }

    pub fn set_config<T: Serialize>(&mut self, config: &T, seed: u64) {
        self.record.config = serde_json::to_value(config).unwrap_or(serde_json::Value::Null);
        self.record.seed = seed;
    }

    /// Records the SHA-256 of `bytes` under `label`.
    pub fn hash_bytes(&mut self, label: &str, bytes: &[u8]) {
        self.record
            .hashes
            .insert(label.to_string(), sha256_hex(bytes));
    }

    /// Records the SHA-256 of a file's content under `label`.
    pub fn hash_file(&mut self, label: &str, path: &Path) -> Result<(), RunFolderError> {
        let digest = sha256_file(path).map_err(|source| RunFolderError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.record.hashes.insert(label.to_string(), digest);
        Ok(())
    }

    /// Records the SHA-256 of the manifest (as CSV) under `manifest` and of its audio list (one
    /// `id<TAB>path` line per record) under `audio_list`.
    pub fn hash_manifest(&mut self, manifest: &emobridge_corpus::Manifest) {
        self.hash_bytes("manifest", &manifest.to_csv());
        let list: String = manifest
            .records
            .iter()
            .map(|r| format!("{}\t{}\n", r.id, r.path))
            .collect();
        self.hash_bytes("audio_list", list.as_bytes());
    }

    /// Records what identifies an embedding cache a run read: `cache_fingerprint`, the SHA-256
    /// of the tag folder's `cache.json` (the extraction fingerprint the store writes) when there
    /// is one; `cache_index`, the SHA-256 of the name and size of every entry of `clip_ids`; and
    /// `model_weights`, from the first entry's metadata when the extractor recorded it.
    pub fn hash_cache(&mut self, cache: &EmbeddingCache, clip_ids: &[&str]) {
        let record = cache.dir().join("cache.json");
        if record.is_file() {
            if let Ok(digest) = sha256_file(&record) {
                self.set_hash("cache_fingerprint", digest);
            }
        }
        let mut index = String::new();
        let mut weights = None;
        for id in clip_ids {
            let Ok(path) = cache.path_for(id) else {
                continue;
            };
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            index.push_str(&format!(
                "{}\t{}\n",
                path.file_name().unwrap_or_default().to_string_lossy(),
                meta.len()
            ));
            if weights.is_none() {
                weights = cache
                    .metadata(id)
                    .ok()
                    .and_then(|m| m.model_weights_sha256().map(str::to_string));
            }
        }
        self.hash_bytes("cache_index", index.as_bytes());
        match weights {
            Some(w) => self.set_hash("model_weights", w),
            None => self.note("model_weights", "not recorded in the cache metadata"),
        }
    }

    /// Records a precomputed hash (e.g. a weights hash found in cache metadata).
    pub fn set_hash(&mut self, label: &str, hex_digest: impl Into<String>) {
        self.record
            .hashes
            .insert(label.to_string(), hex_digest.into());
    }

    pub fn note<T: Serialize>(&mut self, key: &str, value: T) {
        self.record.notes.insert(
            key.to_string(),
            serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
        );
    }

    /// Records a failed item. Under [`RunFolder::set_strict`] the batch stops here: `run.json`
    /// (noting `stopped_by_strict`) and `failures.json` are written atomically, and the error
    /// [`RunFolderError::Strict`] names the item for the pipeline to return; what the run wrote
    /// before stays.
    pub fn fail(
        &mut self,
        item: impl Into<String>,
        path: impl Into<String>,
        reason: impl Into<String>,
    ) -> Result<(), RunFolderError> {
        let failure = RunFailure {
            item: item.into(),
            path: path.into(),
            reason: reason.into(),
        };
        self.record.failures.push(failure.clone());
        if !self.strict {
            return Ok(());
        }
        self.note(
            "stopped_by_strict",
            format!("stopped at the first failed item, {}", failure.item),
        );
        self.write_record()?;
        Err(RunFolderError::Strict {
            item: failure.item,
            reason: failure.reason,
            listed_in: self.dir.join(FAILURES_JSON),
        })
    }

    pub fn failures(&self) -> &[RunFailure] {
        &self.record.failures
    }

    /// Lists a written file (relative to the run folder) in `run.json`.
    pub fn output(&mut self, relative: impl Into<String>) {
        self.record.outputs.push(relative.into());
    }

    /// Lists a written file as a typed artifact (and in `outputs`).
    pub fn artifact(
        &mut self,
        kind: ArtifactKind,
        relative: impl Into<String>,
        title: impl Into<String>,
        caption: impl Into<String>,
    ) {
        let path = relative.into();
        if !self.record.outputs.contains(&path) {
            self.record.outputs.push(path.clone());
        }
        self.record.artifacts.push(Artifact {
            kind,
            path,
            title: title.into(),
            caption: caption.into(),
        });
    }

    /// A table a reader should see (see [`RunFolder::artifact`]).
    pub fn table(
        &mut self,
        relative: impl Into<String>,
        title: impl Into<String>,
        caption: impl Into<String>,
    ) {
        self.artifact(ArtifactKind::Table, relative, title, caption);
    }

    /// A figure a reader should see; `relative` names the SVG (see [`RunFolder::artifact`]).
    pub fn figure(
        &mut self,
        relative: impl Into<String>,
        title: impl Into<String>,
        caption: impl Into<String>,
    ) {
        self.artifact(ArtifactKind::Figure, relative, title, caption);
    }

    /// Records a headline number with the sentence that states it.
    pub fn headline<T: Serialize>(&mut self, key: &str, value: T, text: impl Into<String>) {
        self.record.headlines.push(Headline {
            key: key.to_string(),
            value: serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
            text: text.into(),
        });
    }

    /// Writes `run.json` (and, when an item failed, `failures.json`) atomically and returns the
    /// record.
    pub fn finish(mut self) -> Result<RunRecord, RunFolderError> {
        self.write_record()?;
        Ok(self.record)
    }

    fn write_record(&mut self) -> Result<(), RunFolderError> {
        if !self.record.failures.is_empty() {
            let path = self.dir.join(FAILURES_JSON);
            let text =
                serde_json::to_string_pretty(&self.record.failures).expect("failures serialise");
            write_file_atomic(&path, format!("{text}\n").as_bytes())?;
            if !self.record.outputs.iter().any(|o| o == FAILURES_JSON) {
                self.output(FAILURES_JSON);
            }
        }
        self.record.elapsed_s = self.started.elapsed().as_secs_f64();
        let path = self.dir.join("run.json");
        let text = serde_json::to_string_pretty(&self.record).expect("run record serialises");
        write_file_atomic(&path, format!("{text}\n").as_bytes())
    }
}

/// The file a run folder lists its failed items in (absent when none failed).
pub const FAILURES_JSON: &str = "failures.json";

/// The items a finished run in `dir` could not process (empty when it lists none).
pub fn read_failures(dir: &Path) -> Result<Vec<RunFailure>, RunFolderError> {
    let path = dir.join(FAILURES_JSON);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(RunFolderError::Io { path, source }),
    };
    serde_json::from_str(&text).map_err(|e| RunFolderError::Io {
        path,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}

/// The workspace's one atomic write (the store's), with this crate's error.
fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunFolderError> {
    emobridge_store::write_atomic(path, bytes).map_err(|e| match e {
        emobridge_store::StoreError::Io { path, source } => RunFolderError::Io { path, source },
        other => RunFolderError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(other.to_string()),
        },
    })
}

/// Hex SHA-256 of bytes (the store's helper: one SHA-256 implementation in the workspace).
pub use emobridge_store::sha256_hex;

/// Hex SHA-256 of a file, streamed (the store's helper).
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    emobridge_store::sha256_file(path).map_err(|e| match e {
        emobridge_store::StoreError::Io { source, .. } => source,
        other => std::io::Error::other(other.to_string()),
    })
}

/// The commit this build of emobridge was made from, embedded at build time (see the crate's
/// `build.rs`): `None` when it was built outside a git checkout. Never read from the folder a run
/// happens to start in.
pub fn git_commit() -> Option<String> {
    let c = env!("EMOBRIDGE_BUILD_COMMIT");
    (!c.is_empty()).then(|| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_json_holds_config_hashes_and_failures() {
        let dir = tempfile::tempdir().unwrap();
        let mut run = RunFolder::create(&dir.path().join("run"), "unit").unwrap();
        run.set_config(&serde_json::json!({"k": 1}), 7);
        run.hash_bytes("manifest", b"abc");
        run.fail("clip-1", "a.wav", "unreadable").unwrap();
        run.output("table.csv");
        run.figure("plot.svg", "A plot", "What it shows.\nHow to read it.");
        run.headline("best_layer", 3, "The best layer is 3.");
        let record = run.finish().unwrap();
        assert_eq!(
            record.hashes["manifest"],
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("run/run.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(json["seed"], 7);
        assert_eq!(json["config"]["k"], 1);
        assert_eq!(json["failures"][0]["item"], "clip-1");
        assert_eq!(json["crate_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(json["artifacts"][0]["kind"], "figure");
        assert_eq!(json["artifacts"][0]["path"], "plot.svg");
        assert_eq!(json["outputs"][1], "plot.svg");
        assert_eq!(json["headlines"][0]["value"], 3);
        let failures = read_failures(&dir.path().join("run")).unwrap();
        assert_eq!(failures, record.failures);
        assert_eq!(failures[0].reason, "unreadable");
        // A clean rerun in the same folder drops the old list.
        RunFolder::create(&dir.path().join("run"), "unit")
            .unwrap()
            .finish()
            .unwrap();
        assert!(read_failures(&dir.path().join("run")).unwrap().is_empty());
    }

    #[test]
    fn a_run_folder_has_one_writer_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run");
        let first = RunFolder::create(&path, "unit").unwrap();
        // Another process's writer (another open file description of the lock) is refused.
        let other = std::fs::File::open(path.join(RUN_LOCK)).unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        let pid = std::fs::read_to_string(path.join(RUN_LOCK)).unwrap();
        assert_eq!(pid, std::process::id().to_string());
        // Within this process the lock is shared (a pipeline holding its folder from the start).
        let again = lock_run_folder(&path).unwrap();
        drop(again);
        // Once the first is done the folder is free again, also for another process.
        first.finish().unwrap();
        other.try_lock().unwrap();
        other.unlock().unwrap();
        RunFolder::create(&path, "unit").unwrap().finish().unwrap();
    }

    #[test]
    fn a_strict_run_stops_at_the_first_failure_keeping_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run");
        let mut run = RunFolder::create(&path, "unit").unwrap();
        run.set_config(&serde_json::json!({"k": 1}), 7);
        assert!(!run.strict());
        run.set_strict(true);
        let e = run.fail("clip-1", "a.wav", "unreadable").unwrap_err();
        match &e {
            RunFolderError::Strict {
                item,
                reason,
                listed_in,
            } => {
                assert_eq!((item.as_str(), reason.as_str()), ("clip-1", "unreadable"));
                assert_eq!(listed_in, &path.join(FAILURES_JSON));
            }
            other => panic!("{other}"),
        }
        assert!(e.to_string().contains("--strict"), "{e}");
        // failures.json and run.json are on disk although the run never finished.
        assert_eq!(read_failures(&path).unwrap().len(), 1);
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path.join("run.json")).unwrap()).unwrap();
        assert_eq!(json["config"]["k"], 1);
        assert!(json["notes"]["stopped_by_strict"]
            .as_str()
            .unwrap()
            .contains("clip-1"));
    }

    #[test]
    fn par_until_failure_runs_everything_unless_strict() {
        let items: Vec<usize> = (0..200).collect();
        let f = |&i: &usize| if i == 3 { Err(i) } else { Ok(i) };
        let all = par_until_failure(&items, false, f);
        assert!(all.iter().all(Option::is_some));
        let strict = par_until_failure(&items, true, f);
        assert!(matches!(strict[3], Some(Err(3))), "the failure is kept");
        assert_eq!(strict.len(), items.len());
    }

    #[test]
    fn the_commit_is_the_one_this_crate_was_built_from() {
        // Built in a checkout: the commit of the repository holding this crate.
        let head = std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        assert_eq!(git_commit(), head);
    }

    #[test]
    fn a_run_opened_late_records_its_true_elapsed_time() {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now() - std::time::Duration::from_secs(3);
        let run = RunFolder::create_started(&dir.path().join("run"), "unit", started).unwrap();
        let record = run.finish().unwrap();
        assert!(
            record.elapsed_s >= 3.0 && record.elapsed_s < 60.0,
            "{}",
            record.elapsed_s
        );
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            now - record.started_unix_s >= 3,
            "{}",
            record.started_unix_s
        );
    }
}
