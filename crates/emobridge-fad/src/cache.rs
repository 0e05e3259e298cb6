//! The per-clip embedding cache written by the SSL and descriptor extractors.
//!
//! Layout (fixed by the extractor): `CACHE/<model-tag>/<clip-id>.safetensors` holding
//!
//! | tensor | dtype | shape |
//! |---|---|---|
//! | `hidden_states` | F16 | [layers+1, frames, hidden] |
//! | `mean` | F32 | [layers+1, hidden] (mean over frames) |
//! | `std` | F32 | [layers+1, hidden] |
//!
//! Descriptor frames use the same layout with layers+1 = 1. F32/BF16/F64 `hidden_states` are
//! read too. Only the header is read to learn a clip's shape.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use safetensors::SafeTensors;

use crate::io::tensor_values;
use crate::{FadError, Result};

/// `CACHE/<model-tag>/<key(clip-id)>.safetensors`, the file name the store writes for the id
/// (ids with `/`, `:`, … are percent-encoded; see `emobridge_store::key`). An id that cannot be a
/// cache key (empty, a `..` segment) is an error naming it.
pub fn clip_path(cache_dir: &Path, model_tag: &str, clip_id: &str) -> Result<PathBuf> {
    let key = emobridge_store::key_for_id(clip_id).map_err(|message| FadError::Invalid {
        what: format!("clip id `{clip_id}`"),
        message,
    })?;
    Ok(cache_dir.join(model_tag).join(format!("{key}.safetensors")))
}

/// The shape of a cached clip's `hidden_states`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipShape {
    /// layers + 1 (1 for descriptor frames).
    pub states: usize,
    pub frames: usize,
    pub dim: usize,
}

fn format_err(path: &Path, message: impl Into<String>) -> FadError {
    FadError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Reads only the safetensors header of a cached clip.
pub fn read_clip_shape(path: &Path) -> Result<ClipShape> {
    let io = |source| FadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = fs::File::open(path).map_err(io)?;
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
    let shape: Vec<usize> = json
        .get("hidden_states")
        .and_then(|t| t.get("shape"))
        .and_then(|s| s.as_array())
        .ok_or_else(|| format_err(path, "no `hidden_states` tensor"))?
        .iter()
        .map(|v| v.as_u64().map(|v| v as usize))
        .collect::<Option<_>>()
        .ok_or_else(|| format_err(path, "bad `hidden_states` shape"))?;
    match shape.as_slice() {
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

/// One cached clip, read whole.
pub struct CachedClip {
    path: PathBuf,
    bytes: Vec<u8>,
    shape: ClipShape,
}

impl CachedClip {
    pub fn open(path: &Path) -> Result<CachedClip> {
        let bytes = crate::io::read_all(path)?;
        let shape = {
            let st = SafeTensors::deserialize(&bytes)
                .map_err(|e| format_err(path, format!("not a safetensors file: {e}")))?;
            let hs = st
                .tensor("hidden_states")
                .map_err(|_| format_err(path, "no `hidden_states` tensor"))?;
            match hs.shape() {
                [s, f, d] => ClipShape {
                    states: *s,
                    frames: *f,
                    dim: *d,
                },
                other => {
                    return Err(format_err(
                        path,
                        format!(
                        "`hidden_states` has shape {other:?}, expected [layers+1, frames, hidden]"
                    ),
                    ))
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

    fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("validated in open")
    }

    /// Frames [frames, hidden] of one hidden state (0 = input to the first transformer layer).
    pub fn layer_frames(&self, layer: usize) -> Result<Array2<f64>> {
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
        let st = self.tensors();
        let hs = st.tensor("hidden_states").expect("validated in open");
        let width = hs.dtype().bitsize() / 8;
        let per = frames * dim * width;
        let values = tensor_values(
            &self.path,
            hs.dtype(),
            &hs.data()[layer * per..(layer + 1) * per],
        )?;
        Ok(Array2::from_shape_vec((frames, dim), values).expect("slice of checked shape"))
    }

    /// The clip-level mean of one hidden state: the stored `mean` tensor when present (computed
    /// by the extractor in f32 from the unrounded states), else the mean of the cached frames.
    pub fn layer_mean(&self, layer: usize) -> Result<Vec<f64>> {
        let ClipShape { states, dim, .. } = self.shape;
        let st = self.tensors();
        if let Ok(mean) = st.tensor("mean") {
            if mean.shape() == [states, dim] && layer < states {
                let width = mean.dtype().bitsize() / 8;
                let row = &mean.data()[layer * dim * width..(layer + 1) * dim * width];
                return tensor_values(&self.path, mean.dtype(), row);
            }
            return Err(format_err(
                &self.path,
                format!(
                    "`mean` has shape {:?}, expected [{states}, {dim}]",
                    mean.shape()
                ),
            ));
        }
        let frames = self.layer_frames(layer)?;
        frames
            .mean_axis(ndarray::Axis(0))
            .map(|m| m.to_vec())
            .ok_or_else(|| format_err(&self.path, "clip has no frames"))
    }

    /// Every hidden state's clip-level mean ([`CachedClip::layer_mean`] for each state), parsing
    /// the file's header once: the probe's read path.
    pub fn layer_means(&self) -> Result<Vec<Vec<f64>>> {
        let ClipShape { states, dim, .. } = self.shape;
        let st = self.tensors();
        match st.tensor("mean") {
            Ok(mean) if mean.shape() == [states, dim] => {
                let all = tensor_values(&self.path, mean.dtype(), mean.data())?;
                Ok(all.chunks_exact(dim.max(1)).map(<[f64]>::to_vec).collect())
            }
            _ => (0..states).map(|l| self.layer_mean(l)).collect(),
        }
    }

    /// The `__metadata__` map of the file (extractor, model, weights hash, …), if any.
    pub fn metadata(&self) -> Vec<(String, String)> {
        let Ok((_, meta)) = SafeTensors::read_metadata(&self.bytes) else {
            return Vec::new();
        };
        let mut v: Vec<(String, String)> = meta
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;

    /// Writes a clip in the cache layout; `hidden_states` value = layer*100 + frame*10 + k.
    pub(crate) fn write_clip(path: &Path, states: usize, frames: usize, dim: usize) {
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
        let std = vec![0u8; states * dim * 4];
        let tensors = [
            (
                "hidden_states",
                TensorView::new(Dtype::F16, vec![states, frames, dim], &hs).unwrap(),
            ),
            (
                "mean",
                TensorView::new(Dtype::F32, vec![states, dim], &mean).unwrap(),
            ),
            (
                "std",
                TensorView::new(Dtype::F32, vec![states, dim], &std).unwrap(),
            ),
        ];
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        safetensors::serialize_to_file(tensors, None, path).unwrap();
    }

    #[test]
    fn reads_shape_frames_and_means_of_a_cached_clip() {
        let dir = tempfile::tempdir().unwrap();
        let path = clip_path(dir.path(), "tiny", "clip-1").unwrap();
        write_clip(&path, 3, 4, 2);
        assert_eq!(
            read_clip_shape(&path).unwrap(),
            ClipShape {
                states: 3,
                frames: 4,
                dim: 2
            }
        );
        let clip = CachedClip::open(&path).unwrap();
        let f = clip.layer_frames(2).unwrap();
        assert_eq!(f.dim(), (4, 2));
        assert_eq!(f[[3, 1]], 231.0);
        assert_eq!(clip.layer_mean(1).unwrap(), vec![115.0, 116.0]);
        assert!(matches!(clip.layer_frames(3), Err(FadError::Format { .. })));
    }

    #[test]
    fn missing_and_corrupt_files_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            CachedClip::open(&dir.path().join("nope.safetensors")),
            Err(FadError::Io { .. })
        ));
        let bad = dir.path().join("bad.safetensors");
        std::fs::write(&bad, b"garbage!garbage").unwrap();
        assert!(matches!(
            read_clip_shape(&bad),
            Err(FadError::Format { .. })
        ));
        assert!(matches!(
            CachedClip::open(&bad),
            Err(FadError::Format { .. })
        ));
    }
}
