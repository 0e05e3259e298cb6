//! # emobridge-store
//!
//! Owns the on-disk cache of features and embeddings: one file per clip, written atomically,
//! resumable after a kill, shardable across machines.
//!
//! Layout (other tools read it; keep it stable; described for users in `docs/cache.md`):
//!
//! ```text
//! CACHE/<model-tag>/<key(clip-id)>.safetensors         key: see [`key`] (ids with `/`, `:`,
//!                                                        … are percent-encoded, reversibly)
//!     hidden_states  F16 (or F32) [states, frames, dim]   states = layers+1 for encoders, 1 for
//!                                                        descriptors; absent with `--frames none`
//!     mean           F32 [states, dim]                    per-state mean over frames
//!     std            F32 [states, dim]                    per-state population std over frames
//!     __metadata__   model, sample_rate, frame_rate_hz, hidden_state_convention, source_file,
//!                    audio_sha256, frame_count (+ extra keys: the extraction fingerprint's
//!                    fields and its digest `fingerprint`, see [`Fingerprint`])
//! CACHE/<model-tag>/cache.json                            the tag's extraction fingerprint
//! CACHE/<model-tag>/failures.json                         clips that failed in the last run,
//!                                                        damaged entries it repaired
//! CACHE/<model-tag>/.<key>.claim                          a process is extracting the clip
//!                                                        (`flock`, see [`claim`])
//! ```
//!
//! Headers are written with a fixed key order ([`format`]), so the same entry gives the same
//! bytes. A file appears only complete (written to a temporary name `.<name>.tmp-<pid>` in the
//! same folder, synced, then renamed); [`EmbeddingCache::check`] still checks each one cheaply
//! (header, sizes, fingerprint) before a resumed run counts it as done.
//!
//! [`EmbeddingCache`] is the one API over this layout: extractors write through it, studies read
//! through it ([`EmbeddingCache::shape`], [`EmbeddingCache::read_layer`],
//! [`EmbeddingCache::read_means`], [`EmbeddingCache::metadata`]).

pub mod claim;
mod entry;
mod failures;
mod fingerprint;
pub mod format;
pub mod key;
mod layers;
mod read;
mod shard;

use std::path::{Path, PathBuf};

pub use entry::{ClipEntry, EntryMetadata, StoredDtype, MODEL_WEIGHTS_SHA256};
pub use failures::{Failure, FailureLog};
pub use fingerprint::{describe, CacheRecord, FieldDiff, Fingerprint, CACHE_JSON, FINGERPRINT_KEY};
pub use format::{inspect_entry, EntryHeader, EntryWriter, Frames};
pub use key::{id_from_key, key_for_id};
pub use layers::{LayerSelection, LayerSelectionError};
pub use read::{float_values, read_clip_shape, CachedClip, ClipShape, Rows};
pub use shard::{sharded_path, Shard};

/// Why a cache operation failed; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid cache entry: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("invalid clip id `{id}`: {reason}")]
    BadId { id: String, reason: String },
    #[error("invalid cache tag `{tag}`: {reason}")]
    BadTag { tag: String, reason: String },
    #[error("invalid shard `{spec}`: {reason}")]
    BadShard { spec: String, reason: String },
    #[error("invalid entry: {0}")]
    BadEntry(String),
    #[error("{path}: no such cache folder")]
    NoCache { path: PathBuf },
    #[error(
        "{path}: extracted with another setup: {}; re-run with --refresh to re-extract, or use another --tag",
        describe(.diffs)
    )]
    FingerprintMismatch {
        path: PathBuf,
        diffs: Vec<FieldDiff>,
    },
}

/// What a clip's entry is worth to a run with a given fingerprint (see [`EmbeddingCache::check`]).
#[derive(Debug, Clone, PartialEq)]
pub enum EntryState {
    /// No entry.
    Missing,
    /// Complete, consistent, and (when a fingerprint was given) made by that extraction.
    Valid(EntryHeader),
    /// Present but unusable (0 bytes, truncated, garbage, inconsistent header): the reason.
    Corrupt(String),
    /// A valid entry of another extraction: the fields that differ.
    Foreign(Vec<FieldDiff>),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One model's (or one descriptor set's) folder inside a cache root.
#[derive(Debug, Clone)]
pub struct EmbeddingCache {
    dir: PathBuf,
}

impl EmbeddingCache {
    /// Opens (creating it when absent) `root/<tag>`. The tag names the model and must be a plain
    /// file name, e.g. `wav2vec2-base` or `compare-lld`.
    pub fn open(root: &Path, tag: &str) -> Result<Self> {
        check_tag(tag).map_err(|reason| StoreError::BadTag {
            tag: tag.to_string(),
            reason,
        })?;
        let dir = root.join(tag);
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(EmbeddingCache { dir })
    }

    /// Opens `root/<tag>` for reading: an error naming the folder when it does not exist.
    pub fn open_existing(root: &Path, tag: &str) -> Result<Self> {
        check_tag(tag).map_err(|reason| StoreError::BadId {
            id: tag.to_string(),
            reason,
        })?;
        let dir = root.join(tag);
        if !dir.is_dir() {
            return Err(StoreError::NoCache { path: dir });
        }
        Ok(EmbeddingCache { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The model tag (the folder's name).
    pub fn tag(&self) -> &str {
        self.dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    }

    /// The shape of a clip's `hidden_states`, from the file header alone.
    pub fn shape(&self, clip_id: &str) -> Result<ClipShape> {
        read_clip_shape(&self.path_for(clip_id)?)
    }

    /// A clip's entry read whole, for several reads (layers, means, metadata) of one file.
    pub fn clip(&self, clip_id: &str) -> Result<CachedClip> {
        CachedClip::open(&self.path_for(clip_id)?)
    }

    /// Frames [frames, hidden] of one hidden state of a clip (0 = input to the first layer).
    pub fn read_layer(&self, clip_id: &str, layer: usize) -> Result<Rows> {
        self.clip(clip_id)?.layer_frames(layer)
    }

    /// The pooled means [states, hidden] of a clip (the writer's `mean` tensor).
    pub fn read_means(&self, clip_id: &str) -> Result<Rows> {
        self.clip(clip_id)?.means()
    }

    /// The typed provenance of a clip's entry.
    pub fn metadata(&self, clip_id: &str) -> Result<EntryMetadata> {
        self.clip(clip_id)?.metadata()
    }

    /// Where a clip's entry lives.
    pub fn path_for(&self, clip_id: &str) -> Result<PathBuf> {
        let key = key_for_id(clip_id).map_err(|reason| StoreError::BadId {
            id: clip_id.to_string(),
            reason,
        })?;
        Ok(self.dir.join(format!("{key}.safetensors")))
    }

    /// True when the clip's entry file exists (see [`EmbeddingCache::check`] for whether it is
    /// usable).
    pub fn contains(&self, clip_id: &str) -> bool {
        self.path_for(clip_id).is_ok_and(|p| p.is_file())
    }

    /// Checks a clip's entry cheaply, from its header and size (see [`inspect_entry`]) and, with
    /// `fingerprint`, the extraction fingerprint in its metadata.
    pub fn check(&self, clip_id: &str, fingerprint: Option<&Fingerprint>) -> Result<EntryState> {
        let path = self.path_for(clip_id)?;
        if !path.exists() {
            return Ok(EntryState::Missing);
        }
        let header = match inspect_entry(&path) {
            Ok(h) => h,
            Err(StoreError::Format { reason, .. }) => return Ok(EntryState::Corrupt(reason)),
            Err(e) => return Err(e),
        };
        match fingerprint {
            Some(fp) if !fp.matches(&header.metadata) => {
                let mut diffs = fp.diff_against(&header.metadata);
                if diffs.is_empty() {
                    diffs.push(FieldDiff {
                        field: FINGERPRINT_KEY.to_string(),
                        cache: header.metadata.get(FINGERPRINT_KEY).cloned(),
                        run: fp.digest(),
                    });
                }
                Ok(EntryState::Foreign(diffs))
            }
            _ => Ok(EntryState::Valid(header)),
        }
    }

    /// Starts writing a clip's entry window by window (see [`EntryWriter`]).
    pub fn writer(
        &self,
        clip_id: &str,
        shape: [usize; 3],
        frames: Frames,
        metadata: &EntryMetadata,
    ) -> Result<EntryWriter> {
        EntryWriter::create(&self.path_for(clip_id)?, shape, frames, metadata)
    }

    /// The claim file of a clip: `.<key>.claim` (see [`claim`]).
    pub fn claim_path(&self, clip_id: &str) -> Result<PathBuf> {
        let key = key_for_id(clip_id).map_err(|reason| StoreError::BadId {
            id: clip_id.to_string(),
            reason,
        })?;
        Ok(self.dir.join(format!(".{key}.claim")))
    }

    /// Claims a clip for this process: `Ok(Ok(_))` when this process may extract it (held until
    /// the claim is dropped), `Ok(Err(holder))` when a live process holds it.
    pub fn claim(&self, clip_id: &str) -> Result<std::result::Result<claim::Claim, claim::Holder>> {
        claim::try_claim(&self.claim_path(clip_id)?)
    }

    /// Removes the temporary files of writers that were killed before their rename
    /// (see [`claim::clean_stale_temps`]).
    pub fn clean_stale_temps(&self) -> Result<Vec<PathBuf>> {
        claim::clean_stale_temps(&self.dir)
    }

    /// The folder's `cache.json`, if any.
    pub fn record(&self) -> Result<Option<CacheRecord>> {
        CacheRecord::load(&self.dir)
    }

    /// Compares the folder's `cache.json` with `fingerprint`: the differing fields (empty when
    /// equal or when there is no record yet).
    pub fn record_diff(&self, fingerprint: &Fingerprint) -> Result<Vec<FieldDiff>> {
        Ok(match self.record()? {
            Some(r) => fingerprint.diff_against(&r.fields.0),
            None => Vec::new(),
        })
    }

    /// Writes `cache.json` for `fingerprint`.
    pub fn save_record(&self, fingerprint: &Fingerprint) -> Result<PathBuf> {
        CacheRecord::new(fingerprint).save(&self.dir)
    }

    /// Writes a clip's entry atomically (temporary file in the same folder, fsync, rename).
    pub fn write(&self, clip_id: &str, entry: &ClipEntry) -> Result<PathBuf> {
        let path = self.path_for(clip_id)?;
        let bytes = entry.to_bytes()?;
        write_atomic(&path, &bytes)?;
        Ok(path)
    }

    /// Reads a clip's entry back.
    pub fn read(&self, clip_id: &str) -> Result<ClipEntry> {
        ClipEntry::read(&self.path_for(clip_id)?)
    }

    /// Ids of every complete entry (file names decoded back to ids, see [`key`]), sorted;
    /// files whose name is not a key are passed over.
    pub fn ids(&self) -> Result<Vec<String>> {
        let read = std::fs::read_dir(&self.dir).map_err(|source| StoreError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let mut ids: Vec<String> = read
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".safetensors"))
                    .and_then(id_from_key)
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The failure log of a run over `shard` (`failures.json`, or `failures.shard-I-of-N.json`
    /// when sharded so that concurrent shards do not overwrite each other).
    pub fn failures_path(&self, shard: Option<Shard>) -> PathBuf {
        match shard {
            Some(s) if s.count > 1 => self
                .dir
                .join(format!("failures.shard-{}-of-{}.json", s.index, s.count)),
            _ => self.dir.join("failures.json"),
        }
    }
}

/// A cache tag must be one plain file name on every platform (it is not encoded: users type it).
fn check_tag(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("empty".into());
    }
    if name.starts_with('.') {
        return Err("must not start with '.'".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '/' | '\\' | ':' | '\0') || c.is_control())
    {
        return Err(format!("contains {c:?}"));
    }
    if name.len() > 200 {
        return Err("longer than 200 bytes".into());
    }
    Ok(())
}

/// Writes `bytes` to a hidden temporary file beside `path`, syncs it, and renames it into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = format::temp_path(path);
    let io = |source| StoreError::Io {
        path: tmp.clone(),
        source,
    };
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// Hex SHA-256 of a file's bytes (recorded so that a changed audio file is noticed).
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
