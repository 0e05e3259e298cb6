//! The list of clips a run could not process, kept beside the cache entries.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{write_atomic, Result, StoreError};

/// One clip that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub id: String,
    pub path: String,
    pub error: String,
}

/// Failures of one run, written as JSON (atomically, replacing the previous run's list).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureLog {
    pub failures: Vec<Failure>,
    /// Damaged cache entries the run found and extracted again (`error` says what was wrong);
    /// written only when there are some.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repaired: Vec<Failure>,
}

impl FailureLog {
    pub fn push(&mut self, id: &str, path: &str, error: impl std::fmt::Display) {
        self.failures.push(Failure {
            id: id.to_string(),
            path: path.to_string(),
            error: error.to_string(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.failures.is_empty()
    }

    pub fn len(&self) -> usize {
        self.failures.len()
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let text =
            serde_json::to_string_pretty(self).map_err(|e| StoreError::BadEntry(e.to_string()))?;
        write_atomic(path, text.as_bytes())
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| StoreError::Format {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }
}
