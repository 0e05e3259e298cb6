//! Reading cache entries back: a clip's shape from its header alone, one hidden state's frames,
//! the pooled means, and the typed metadata. Frame-level `hidden_states` may be stored as F16
//! (the default), BF16, F32 or F64; values come back as f64.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors};

use crate::entry::EntryMetadata;
use crate::{Result, StoreError};

/// The shape of a cached clip's `hidden_states`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipShape {
    /// layers + 1 (1 for descriptor frames).
    pub states: usize,
    pub frames: usize,
    pub dim: usize,
}

/// A row-major matrix of f64 values: one hidden state's frames [rows = frames, dim], or the
/// pooled means of every state [rows = states, dim].
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    pub rows: usize,
    pub dim: usize,
    pub values: Vec<f64>,
}

impl Rows {
    /// Row `i` as a slice.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }
}

fn format_err(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::Format {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Float tensor bytes (little-endian F16, BF16, F32 or F64) as f64; `path` names the file in
/// the error for any other dtype.
pub fn float_values(path: &Path, dtype: Dtype, data: &[u8]) -> Result<Vec<f64>> {
    Ok(match dtype {
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f64())
            .collect(),
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect(),
        other => return Err(format_err(path, format!("dtype {other:?} is not a float"))),
    })
}

fn shape_of(path: &Path, shape: &[usize]) -> Result<ClipShape> {
    match shape {
        [s, f, d] => Ok(ClipShape {
            states: *s,
            frames: *f,
            dim: *d,
        }),
        _ => Err(format_err(
            path,
            format!("`hidden_states` has shape {shape:?}, expected [layers+1, frames, hidden]"),
        )),
    }
}

/// Reads only the safetensors header of a cache entry: the shape of its `hidden_states`.
pub fn read_clip_shape(path: &Path) -> Result<ClipShape> {
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|_| format_err(path, "too short for a safetensors file"))?;
    let len = u64::from_le_bytes(len) as usize;
    if len > 100_000_000 {
        return Err(format_err(path, "safetensors header length is implausible"));
    }
    let mut header = vec![0u8; len];
    f.read_exact(&mut header)
        .map_err(|_| format_err(path, "truncated safetensors header"))?;
    let json: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| format_err(path, format!("bad safetensors header: {e}")))?;
    let dims = |name: &str| -> Option<Vec<usize>> {
        json.get(name)?
            .get("shape")?
            .as_array()?
            .iter()
            .map(|v| v.as_u64().map(|v| v as usize))
            .collect()
    };
    if json.get("hidden_states").is_none() {
        return pooled_only_shape(path, dims("mean"), json.get("__metadata__"));
    }
    let shape =
        dims("hidden_states").ok_or_else(|| format_err(path, "bad `hidden_states` shape"))?;
    shape_of(path, &shape)
}

/// The shape of an entry written with `--frames none`: states and dim from `mean`, frames from
/// the metadata's `frame_count`.
fn pooled_only_shape(
    path: &Path,
    mean: Option<Vec<usize>>,
    metadata: Option<&serde_json::Value>,
) -> Result<ClipShape> {
    let Some(mean) = mean else {
        return Err(format_err(path, "no `hidden_states` tensor"));
    };
    let frames = metadata
        .and_then(|m| m.get(crate::format::FRAMES_KEY))
        .and_then(|v| v.as_str())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format_err(path, "no `hidden_states` and no `frame_count`"))?;
    match mean.as_slice() {
        [s, d] => Ok(ClipShape {
            states: *s,
            frames,
            dim: *d,
        }),
        _ => Err(format_err(path, format!("`mean` has shape {mean:?}"))),
    }
}

/// One cache entry, read whole and validated once.
pub struct CachedClip {
    path: PathBuf,
    bytes: Vec<u8>,
    shape: ClipShape,
}

impl CachedClip {
    pub fn open(path: &Path) -> Result<CachedClip> {
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        let shape = {
            let st = SafeTensors::deserialize(&bytes)
                .map_err(|e| format_err(path, format!("not a safetensors file: {e}")))?;
            match st.tensor("hidden_states") {
                Ok(hs) => shape_of(path, hs.shape())?,
                Err(_) => {
                    let (_, header) = SafeTensors::read_metadata(&bytes)
                        .map_err(|e| format_err(path, e.to_string()))?;
                    let meta = header.metadata().as_ref().map(|m| {
                        serde_json::Value::Object(
                            m.iter()
                                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                                .collect(),
                        )
                    });
                    let mean = st.tensor("mean").ok().map(|t| t.shape().to_vec());
                    pooled_only_shape(path, mean, meta.as_ref())?
                }
            }
        };
        Ok(CachedClip {
            path: path.to_path_buf(),
            bytes,
            shape,
        })
    }

    pub fn shape(&self) -> ClipShape {
        self.shape
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn tensors(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.bytes)
            .map_err(|e| format_err(&self.path, format!("not a safetensors file: {e}")))
    }

    /// Frames [frames, hidden] of one hidden state (0 = input to the first transformer layer).
    pub fn layer_frames(&self, layer: usize) -> Result<Rows> {
        let ClipShape {
            states,
            frames,
            dim,
        } = self.shape;
        if layer >= states {
            return Err(format_err(
                &self.path,
                format!("layer {layer} out of range: the clip has {states} hidden states"),
            ));
        }
        let st = self.tensors()?;
        let hs = st.tensor("hidden_states").map_err(|_| {
            format_err(
                &self.path,
                "no frames: the entry keeps pooled statistics only (extracted with \
                 `--frames none`); re-extract with `--frames f16` for frame-level use",
            )
        })?;
        let width = hs.dtype().bitsize() / 8;
        let per = frames * dim * width;
        let values = float_values(
            &self.path,
            hs.dtype(),
            &hs.data()[layer * per..(layer + 1) * per],
        )?;
        Ok(Rows {
            rows: frames,
            dim,
            values,
        })
    }

    /// The clip-level mean of every hidden state [states, hidden]: the stored `mean` tensor when
    /// present (computed by the writer in f64 from the unrounded states), else the mean of the
    /// cached frames.
    pub fn means(&self) -> Result<Rows> {
        let ClipShape { states, dim, .. } = self.shape;
        let st = self.tensors()?;
        if let Ok(mean) = st.tensor("mean") {
            if mean.shape() != [states, dim] {
                return Err(format_err(
                    &self.path,
                    format!(
                        "`mean` has shape {:?}, expected [{states}, {dim}]",
                        mean.shape()
                    ),
                ));
            }
            return Ok(Rows {
                rows: states,
                dim,
                values: float_values(&self.path, mean.dtype(), mean.data())?,
            });
        }
        if self.shape.frames == 0 {
            return Err(format_err(&self.path, "clip has no frames"));
        }
        let mut values = Vec::with_capacity(states * dim);
        for layer in 0..states {
            let frames = self.layer_frames(layer)?;
            let mut sum = vec![0f64; dim];
            for r in 0..frames.rows {
                for (s, v) in sum.iter_mut().zip(frames.row(r)) {
                    *s += v;
                }
            }
            values.extend(sum.iter().map(|s| s / frames.rows as f64));
        }
        Ok(Rows {
            rows: states,
            dim,
            values,
        })
    }

    /// The clip-level mean of one hidden state (see [`CachedClip::means`]).
    pub fn layer_mean(&self, layer: usize) -> Result<Vec<f64>> {
        let states = self.shape.states;
        if layer >= states {
            return Err(format_err(
                &self.path,
                format!("layer {layer} out of range: the clip has {states} hidden states"),
            ));
        }
        Ok(self.means()?.row(layer).to_vec())
    }

    /// The typed provenance of the entry (an error names the missing or bad key).
    pub fn metadata(&self) -> Result<EntryMetadata> {
        let (_, header) = SafeTensors::read_metadata(&self.bytes)
            .map_err(|e| format_err(&self.path, e.to_string()))?;
        EntryMetadata::from_map(
            header.metadata().as_ref().unwrap_or(&HashMap::new()),
            &self.path,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;

    /// Writes a clip in the cache layout with no metadata; `hidden_states` value =
    /// layer*100 + frame*10 + k, stored as F16; `mean` only when `with_mean`.
    fn write_clip(path: &Path, states: usize, frames: usize, dim: usize, with_mean: bool) {
        let hs: Vec<u8> = (0..states * frames * dim)
            .flat_map(|i| {
                let (l, f, k) = (i / (frames * dim), (i / dim) % frames, i % dim);
                half::f16::from_f64((l * 100 + f * 10 + k) as f64).to_le_bytes()
            })
            .collect();
        let mean: Vec<u8> = (0..states * dim)
            .flat_map(|i| {
                let (l, k) = (i / dim, i % dim);
                ((l * 100) as f32 + 10.0 * (frames as f32 - 1.0) / 2.0 + k as f32).to_le_bytes()
            })
            .collect();
        let mut tensors = vec![(
            "hidden_states",
            TensorView::new(Dtype::F16, vec![states, frames, dim], &hs).unwrap(),
        )];
        if with_mean {
            tensors.push((
                "mean",
                TensorView::new(Dtype::F32, vec![states, dim], &mean).unwrap(),
            ));
        }
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        safetensors::serialize_to_file(tensors, None, path).unwrap();
    }

    #[test]
    fn reads_shape_frames_and_means_of_a_cached_clip() {
        let dir = tempfile::tempdir().unwrap();
        let cache = crate::EmbeddingCache::open(dir.path(), "tiny").unwrap();
        write_clip(&cache.path_for("clip-1").unwrap(), 3, 4, 2, true);
        write_clip(&cache.path_for("clip-2").unwrap(), 3, 4, 2, false);
        assert_eq!(
            cache.shape("clip-1").unwrap(),
            ClipShape {
                states: 3,
                frames: 4,
                dim: 2
            }
        );
        let f = cache.read_layer("clip-1", 2).unwrap();
        assert_eq!((f.rows, f.dim), (4, 2));
        assert_eq!(f.row(3)[1], 231.0);
        // Stored means, and the same numbers averaged from the frames when none is stored.
        for id in ["clip-1", "clip-2"] {
            let means = cache.read_means(id).unwrap();
            assert_eq!((means.rows, means.dim), (3, 2));
            assert_eq!(means.row(1), &[115.0, 116.0]);
        }
        assert!(matches!(
            cache.read_layer("clip-1", 3),
            Err(StoreError::Format { .. })
        ));
        // No metadata: the typed read names the first missing key.
        let err = cache.metadata("clip-1").unwrap_err().to_string();
        assert!(err.contains("metadata lacks `model`"), "{err}");
    }

    #[test]
    fn missing_and_corrupt_files_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            CachedClip::open(&dir.path().join("nope.safetensors")),
            Err(StoreError::Io { .. })
        ));
        let bad = dir.path().join("bad.safetensors");
        std::fs::write(&bad, b"garbage!garbage").unwrap();
        assert!(matches!(
            read_clip_shape(&bad),
            Err(StoreError::Format { .. })
        ));
        assert!(matches!(
            CachedClip::open(&bad),
            Err(StoreError::Format { .. })
        ));
        assert!(matches!(
            crate::EmbeddingCache::open_existing(dir.path(), "absent"),
            Err(StoreError::NoCache { .. })
        ));
    }
}
