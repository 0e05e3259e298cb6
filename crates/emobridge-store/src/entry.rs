//! One cached clip: frame-level tensor, per-state pooled statistics, and provenance metadata.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use half::f16;
use safetensors::tensor::{Dtype, SafeTensors};

use crate::format::{entry_metadata_map, entry_tensors, header_bytes, Frames, FRAMES_KEY};

use crate::{Result, StoreError};

/// Storage precision of `hidden_states` (pooled statistics are always F32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoredDtype {
    /// Half precision: half the size; ~3 significant digits, enough for probing and FAD.
    #[default]
    F16,
    F32,
}

impl StoredDtype {
    pub fn as_str(self) -> &'static str {
        match self {
            StoredDtype::F16 => "f16",
            StoredDtype::F32 => "f32",
        }
    }
}

impl std::fmt::Display for StoredDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for StoredDtype {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f16" => Ok(StoredDtype::F16),
            "f32" => Ok(StoredDtype::F32),
            _ => Err(format!("`{s}` is not one of f16, f32")),
        }
    }
}

/// Every frame kept at this precision.
impl From<StoredDtype> for Frames {
    fn from(d: StoredDtype) -> Frames {
        match d {
            StoredDtype::F16 => Frames::F16,
            StoredDtype::F32 => Frames::F32,
        }
    }
}

/// Provenance written into the safetensors `__metadata__`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EntryMetadata {
    /// Model folder or hub id (or descriptor set name).
    pub model: String,
    /// Rate the model saw, in Hz.
    pub sample_rate: u32,
    /// Frames per second of `hidden_states`.
    pub frame_rate_hz: f64,
    /// `transformers4` or `transformers5` (index L of pre-LN models); `n/a` for descriptors.
    pub hidden_state_convention: String,
    /// The audio file as named in the manifest.
    pub source_file: String,
    /// Hex SHA-256 of the audio file's bytes.
    pub audio_sha256: String,
    /// Further keys (e.g. `layers`, `emobridge_version`).
    pub extra: BTreeMap<String, String>,
}

/// The `extra` key under which writers record the hex SHA-256 of the model weights.
pub const MODEL_WEIGHTS_SHA256: &str = "model_weights_sha256";

const REQUIRED: [&str; 6] = [
    "model",
    "sample_rate",
    "frame_rate_hz",
    "hidden_state_convention",
    "source_file",
    "audio_sha256",
];

impl EntryMetadata {
    /// The hex SHA-256 of the model weights, when the writer recorded it.
    pub fn model_weights_sha256(&self) -> Option<&str> {
        self.extra.get(MODEL_WEIGHTS_SHA256).map(String::as_str)
    }

    /// Records the hex SHA-256 of the model weights.
    pub fn set_model_weights_sha256(&mut self, hex_digest: impl Into<String>) {
        self.extra
            .insert(MODEL_WEIGHTS_SHA256.to_string(), hex_digest.into());
    }

    /// Every key and value, as written into the file's `__metadata__`, sorted by key.
    pub fn to_pairs(&self) -> BTreeMap<String, String> {
        self.to_map().into_iter().collect()
    }

    fn to_map(&self) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = self
            .extra
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        m.insert("model".into(), self.model.clone());
        m.insert("sample_rate".into(), self.sample_rate.to_string());
        m.insert("frame_rate_hz".into(), self.frame_rate_hz.to_string());
        m.insert(
            "hidden_state_convention".into(),
            self.hidden_state_convention.clone(),
        );
        m.insert("source_file".into(), self.source_file.clone());
        m.insert("audio_sha256".into(), self.audio_sha256.clone());
        m
    }

    pub(crate) fn from_map(map: &HashMap<String, String>, path: &Path) -> Result<Self> {
        let bad = |reason: String| StoreError::Format {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(missing) = REQUIRED.iter().find(|k| !map.contains_key(**k)) {
            return Err(bad(format!("metadata lacks `{missing}`")));
        }
        let sample_rate = map["sample_rate"]
            .parse()
            .map_err(|_| bad(format!("bad sample_rate `{}`", map["sample_rate"])))?;
        let frame_rate_hz = map["frame_rate_hz"]
            .parse()
            .map_err(|_| bad(format!("bad frame_rate_hz `{}`", map["frame_rate_hz"])))?;
        let extra = map
            .iter()
            .filter(|(k, _)| !REQUIRED.contains(&k.as_str()) && k.as_str() != FRAMES_KEY)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(EntryMetadata {
            model: map["model"].clone(),
            sample_rate,
            frame_rate_hz,
            hidden_state_convention: map["hidden_state_convention"].clone(),
            source_file: map["source_file"].clone(),
            audio_sha256: map["audio_sha256"].clone(),
            extra,
        })
    }
}

/// A clip's frames [states, frames, dim] with their per-state mean and std [states, dim].
#[derive(Debug, Clone, PartialEq)]
pub struct ClipEntry {
    /// Row-major values of `hidden_states` (f32 in memory whatever the stored precision).
    pub hidden_states: Vec<f32>,
    /// [states, frames, dim].
    pub shape: [usize; 3],
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub stored_dtype: StoredDtype,
    pub metadata: EntryMetadata,
}

impl ClipEntry {
    /// Builds an entry from frames, computing the pooled statistics (population std) in f64 from
    /// the full-precision values.
    pub fn from_frames(
        hidden_states: Vec<f32>,
        shape: [usize; 3],
        stored_dtype: StoredDtype,
        metadata: EntryMetadata,
    ) -> Result<Self> {
        let [s, t, d] = shape;
        if hidden_states.len() != s * t * d {
            return Err(StoreError::BadEntry(format!(
                "{} values for shape {shape:?}",
                hidden_states.len()
            )));
        }
        if t == 0 || s == 0 || d == 0 {
            return Err(StoreError::BadEntry(format!("empty shape {shape:?}")));
        }
        let (mean, std) = pooled_stats(&hidden_states, shape);
        Ok(ClipEntry {
            hidden_states,
            shape,
            mean,
            std,
            stored_dtype,
            metadata,
        })
    }

    /// The safetensors bytes of the entry: header with a fixed key order (see [`crate::format`]),
    /// then `hidden_states`, `mean`, `std`.
    pub(crate) fn to_bytes(&self) -> Result<Vec<u8>> {
        let [s, t, d] = self.shape;
        let mode = match self.stored_dtype {
            StoredDtype::F16 => Frames::F16,
            StoredDtype::F32 => Frames::F32,
        };
        let mut out = header_bytes(
            &entry_tensors(s, t, d, mode),
            &entry_metadata_map(&self.metadata, t),
        );
        match self.stored_dtype {
            StoredDtype::F16 => out.extend(
                self.hidden_states
                    .iter()
                    .flat_map(|&v| f16::from_f32(v).to_le_bytes()),
            ),
            StoredDtype::F32 => out.extend(le_bytes(&self.hidden_states)),
        }
        out.extend(le_bytes(&self.mean));
        out.extend(le_bytes(&self.std));
        Ok(out)
    }

    /// Writes the entry to any path atomically (the layout of a cache entry).
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::write_atomic(path, &self.to_bytes()?)
    }

    /// Reads an entry written by [`crate::EmbeddingCache::write`] (or any file with that layout).
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |reason: String| StoreError::Format {
            path: path.to_path_buf(),
            reason,
        };
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let metadata =
            EntryMetadata::from_map(header.metadata().as_ref().unwrap_or(&HashMap::new()), path)?;
        let hidden = st.tensor("hidden_states").map_err(|_| {
            bad(
                "no `hidden_states`: the entry keeps pooled statistics only (extracted with \
                 `--frames none`); re-extract with `--frames f16` for frame-level use"
                    .to_string(),
            )
        })?;
        let shape: [usize; 3] = hidden
            .shape()
            .try_into()
            .map_err(|_| bad(format!("hidden_states has rank {}", hidden.shape().len())))?;
        let (values, stored_dtype) = match hidden.dtype() {
            Dtype::F16 => (
                hidden
                    .data()
                    .chunks_exact(2)
                    .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                StoredDtype::F16,
            ),
            Dtype::F32 => (from_le_bytes(hidden.data()), StoredDtype::F32),
            other => return Err(bad(format!("hidden_states has dtype {other:?}"))),
        };
        let pooled = |name: &str| -> Result<Vec<f32>> {
            let t = st.tensor(name).map_err(|e| bad(format!("{name}: {e}")))?;
            if t.dtype() != Dtype::F32 || t.shape() != [shape[0], shape[2]] {
                return Err(bad(format!(
                    "{name} is {:?} {:?}, expected F32 [{}, {}]",
                    t.dtype(),
                    t.shape(),
                    shape[0],
                    shape[2]
                )));
            }
            Ok(from_le_bytes(t.data()))
        };
        Ok(ClipEntry {
            hidden_states: values,
            shape,
            mean: pooled("mean")?,
            std: pooled("std")?,
            stored_dtype,
            metadata,
        })
    }
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_le_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Per-state mean and population std over frames.
fn pooled_stats(values: &[f32], [s, t, d]: [usize; 3]) -> (Vec<f32>, Vec<f32>) {
    let mut mean = vec![0f32; s * d];
    let mut std = vec![0f32; s * d];
    for state in 0..s {
        let block = &values[state * t * d..(state + 1) * t * d];
        let mut sum = vec![0f64; d];
        let mut sq = vec![0f64; d];
        for frame in block.chunks_exact(d) {
            for ((acc, acc2), &v) in sum.iter_mut().zip(sq.iter_mut()).zip(frame) {
                *acc += v as f64;
                *acc2 += (v as f64) * (v as f64);
            }
        }
        for j in 0..d {
            let m = sum[j] / t as f64;
            let var = (sq[j] / t as f64 - m * m).max(0.0);
            mean[state * d + j] = m as f32;
            std[state * d + j] = var.sqrt() as f32;
        }
    }
    (mean, std)
}
