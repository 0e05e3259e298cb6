//! The extraction fingerprint: everything that decides the numbers of a cache entry (model
//! weights, model config, kept layers, stored frames, hidden-state convention, precision,
//! window, emobridge version). It is kept per tag in `CACHE/<tag>/cache.json` and in every
//! entry's metadata (its fields, plus their digest under `fingerprint`), so that a run can refuse
//! to mix entries of another extraction and say which fields differ.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{Result, StoreError};

/// The metadata key of an entry holding [`Fingerprint::digest`].
pub const FINGERPRINT_KEY: &str = "fingerprint";

/// The file of a tag folder that records its fingerprint.
pub const CACHE_JSON: &str = "cache.json";

/// Field → value, compared field by field (sorted by field name).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(pub BTreeMap<String, String>);

/// One field whose value differs between a cache and the current run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDiff {
    pub field: String,
    /// The cache's value (`None`: the cache does not record the field).
    pub cache: Option<String>,
    /// The run's value.
    pub run: String,
}

impl std::fmt::Display for FieldDiff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = |v: &str| {
            if v.len() > 16 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
                format!("{}…", &v[..12])
            } else {
                v.to_string()
            }
        };
        match &self.cache {
            Some(c) => write!(
                f,
                "{} (cache {}, this run {})",
                self.field,
                short(c),
                short(&self.run)
            ),
            None => write!(
                f,
                "{} (not recorded in the cache, this run {})",
                self.field,
                short(&self.run)
            ),
        }
    }
}

/// The differing fields, joined for a message.
pub fn describe(diffs: &[FieldDiff]) -> String {
    diffs
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Fingerprint {
    pub fn insert(&mut self, field: &str, value: impl Into<String>) {
        self.0.insert(field.to_string(), value.into());
    }

    /// Hex SHA-256 of the lines `field=value\n` in field order.
    pub fn digest(&self) -> String {
        let text: String = self.0.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        crate::sha256_hex(text.as_bytes())
    }

    /// Fields of `self` (the run) whose value in `other` (a cache's record, e.g. an entry's
    /// metadata) is absent or different.
    pub fn diff_against(&self, other: &BTreeMap<String, String>) -> Vec<FieldDiff> {
        self.0
            .iter()
            .filter(|(k, v)| other.get(*k) != Some(v))
            .map(|(k, v)| FieldDiff {
                field: k.clone(),
                cache: other.get(k).cloned(),
                run: v.clone(),
            })
            .collect()
    }

    /// Whether an entry's metadata carries this fingerprint (its digest and every field).
    pub fn matches(&self, metadata: &BTreeMap<String, String>) -> bool {
        metadata.get(FINGERPRINT_KEY) == Some(&self.digest())
            && self.diff_against(metadata).is_empty()
    }
}

/// The contents of `cache.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheRecord {
    /// Layout version of the tag folder (1).
    pub format: u32,
    /// [`Fingerprint::digest`] of `fields`.
    pub fingerprint: String,
    pub fields: Fingerprint,
}

impl CacheRecord {
    pub const FORMAT: u32 = 1;

    pub fn new(fp: &Fingerprint) -> Self {
        CacheRecord {
            format: Self::FORMAT,
            fingerprint: fp.digest(),
            fields: fp.clone(),
        }
    }

    /// Reads `dir/cache.json`; `Ok(None)` when there is none.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(CACHE_JSON);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StoreError::Format {
                path,
                reason: format!("not a cache record: {e}"),
            })
    }

    /// Writes `dir/cache.json` atomically (keys sorted, so the bytes depend on the values only).
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join(CACHE_JSON);
        let mut text =
            serde_json::to_string_pretty(self).map_err(|e| StoreError::BadEntry(e.to_string()))?;
        text.push('\n');
        crate::write_atomic(&path, text.as_bytes())?;
        Ok(path)
    }
}
