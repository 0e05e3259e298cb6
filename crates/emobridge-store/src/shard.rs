//! Deterministic partition of a corpus across independent runs (`--shard I/N`).

use sha2::{Digest, Sha256};

use crate::{Result, StoreError};

/// Shard `index` of `count` (0-based: `0/4` … `3/4`); serialised as its text form `I/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The whole corpus as one shard.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Parses `I/N` with 0 ≤ I < N.
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |reason: &str| StoreError::BadShard {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (i, n) = spec
            .split_once('/')
            .ok_or_else(|| bad("expected I/N, e.g. 0/4"))?;
        let index: usize = i
            .trim()
            .parse()
            .map_err(|_| bad("I is not a non-negative integer"))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| bad("N is not a positive integer"))?;
        if count == 0 {
            return Err(bad("N must be at least 1"));
        }
        if index >= count {
            return Err(bad("I must be smaller than N (shards are numbered from 0)"));
        }
        Ok(Shard { index, count })
    }

    /// Whether a clip belongs to this shard. Membership depends only on the clip id (first 8
    /// bytes of its SHA-256), so it survives reordering or extending the manifest and every
    /// machine computes the same partition.
    pub fn owns(&self, clip_id: &str) -> bool {
        if self.count == 1 {
            return true;
        }
        let digest = Sha256::digest(clip_id.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        (u64::from_be_bytes(first) % self.count as u64) as usize == self.index
    }
}

/// The file one shard writes in place of `path`: `feats.csv` → `feats.shard-1-of-4.csv` (the
/// shard tag goes before the last extension; a name without one gets it appended). One shard
/// (`0/1`) writes `path` itself.
pub fn sharded_path(path: &std::path::Path, shard: Shard) -> std::path::PathBuf {
    if shard.count == 1 {
        return path.to_path_buf();
    }
    let tag = format!("shard-{}-of-{}", shard.index, shard.count);
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    let name = match (stem, path.extension()) {
        (Some(stem), Some(ext)) => format!("{stem}.{tag}.{}", ext.to_string_lossy()),
        (Some(stem), None) => format!("{stem}.{tag}"),
        (None, _) => tag,
    };
    path.with_file_name(name)
}

impl serde::Serialize for Shard {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Shard {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Shard::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn sharded_paths_keep_the_extension() {
        let s = Shard { index: 1, count: 4 };
        assert_eq!(
            sharded_path(Path::new("out/feats.csv"), s),
            Path::new("out/feats.shard-1-of-4.csv")
        );
        assert_eq!(
            sharded_path(Path::new("feats"), s),
            Path::new("feats.shard-1-of-4")
        );
        assert_eq!(
            sharded_path(Path::new("a/f.csv"), Shard::ALL),
            Path::new("a/f.csv")
        );
    }
}
