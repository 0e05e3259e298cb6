//! Reading run folders back: a tolerant mirror of the `run.json` record that studies write
//! (`emobridge_studies::RunFolder`), so the report renders any run, including runs written by
//! older or newer versions (unknown fields are ignored, missing ones take their defaults).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::{InputError, Result};

/// One typed output of a run, as `run.json` lists it.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default)]
pub struct ArtifactView {
    /// `table`, `figure` or `data` (other kinds are shown as data).
    pub kind: String,
    /// Relative to the run folder.
    pub path: String,
    pub title: String,
    pub caption: String,
}

/// One headline number and its sentence.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default)]
pub struct HeadlineView {
    pub key: String,
    pub value: Value,
    pub text: String,
}

/// One item a run skipped.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default)]
pub struct FailureView {
    pub item: String,
    pub path: String,
    pub reason: String,
}

/// The content of `run.json`, every field optional.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default)]
pub struct RunRecordView {
    pub study: String,
    pub command: String,
    pub config: Value,
    pub seed: Value,
    pub crate_version: String,
    pub git_commit: Option<String>,
    pub hashes: BTreeMap<String, Value>,
    pub notes: BTreeMap<String, Value>,
    pub failures: Vec<FailureView>,
    pub outputs: Vec<String>,
    pub artifacts: Vec<ArtifactView>,
    pub headlines: Vec<HeadlineView>,
    pub started_unix_s: Option<u64>,
    pub elapsed_s: Option<f64>,
}

/// A run folder read from disk, with the sub-runs its `run.json` lists (`X/run.json` outputs).
#[derive(Debug, Clone)]
pub struct LoadedRun {
    pub dir: PathBuf,
    pub record: RunRecordView,
    pub children: Vec<LoadedRun>,
    /// Sub-runs listed in `outputs` whose `run.json` could not be read, with the reason.
    pub missing_children: Vec<String>,
}

impl LoadedRun {
    /// The folder's own name (e.g. `fad-ssl`).
    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty() && n != ".")
            .unwrap_or_else(|| self.dir.display().to_string())
    }

    /// A file inside the run folder.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    /// What the run was computed on: the features or model tag in its config or notes.
    pub fn input_label(&self) -> Option<String> {
        let r = &self.record;
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        text(r.config.get("features"))
            .or_else(|| text(r.config.get("cache_tag")))
            .or_else(|| text(r.notes.get("model_tag")))
            .or_else(|| text(r.config.get("model")))
            .or_else(|| text(r.config.get("model_tag")))
    }

    /// Every run in this tree, depth first, this one first.
    pub fn flatten(&self) -> Vec<&LoadedRun> {
        let mut out = vec![self];
        for c in &self.children {
            out.extend(c.flatten());
        }
        out
    }
}

/// Deepest nesting of sub-runs followed (a guard against a cycle of links).
const MAX_DEPTH: usize = 4;

/// Reads `dir/run.json` and the sub-runs it lists.
pub fn load_run(dir: &Path) -> Result<LoadedRun> {
    load_at(dir, 0)
}

fn load_at(dir: &Path, depth: usize) -> Result<LoadedRun> {
    let path = dir.join("run.json");
    if !dir.is_dir() {
        return Err(InputError::NotAFolder {
            dir: dir.to_path_buf(),
        }
        .into());
    }
    let text = std::fs::read_to_string(&path).map_err(|error| InputError::NoRunRecord {
        dir: dir.to_path_buf(),
        error,
    })?;
    let record: RunRecordView =
        serde_json::from_str(&text).map_err(|source| InputError::NotARunRecord {
            path: path.clone(),
            source,
        })?;
    let mut run = LoadedRun {
        dir: dir.to_path_buf(),
        record,
        children: Vec::new(),
        missing_children: Vec::new(),
    };
    if depth < MAX_DEPTH {
        let subs: Vec<String> = run
            .record
            .outputs
            .iter()
            .filter(|o| o.ends_with("/run.json") && !o.starts_with('/') && !o.contains(".."))
            .cloned()
            .collect();
        for sub in subs {
            let sub_dir = dir.join(sub.trim_end_matches("/run.json"));
            match load_at(&sub_dir, depth + 1) {
                Ok(child) => run.children.push(child),
                Err(e) => run.missing_children.push(e.to_string()),
            }
        }
    }
    Ok(run)
}

/// Reads every folder; refuses an empty list and names the first folder that is not a run.
pub fn load_runs(dirs: &[PathBuf]) -> Result<Vec<LoadedRun>> {
    if dirs.is_empty() {
        return Err(InputError::NoRuns.into());
    }
    dirs.iter().map(|d| load_run(d)).collect()
}
