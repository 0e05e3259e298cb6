//! Reading a HuggingFace checkpoint folder as it is: single or sharded safetensors, or a PyTorch
//! pickle, with the hub's key prefixes stripped and problems collected for one complete report.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::error::{Result, SslError};

/// Prefixes that task-head wrappers (`*ForCTC`, `*ForSequenceClassification`, …) put before the
/// base model's keys (`base_model_prefix` of each family).
const BASE_PREFIXES: [&str; 5] = ["wav2vec2.", "hubert.", "wavlm.", "data2vec_audio.", "mert."];

/// Where the weights of a model folder live, in the order transformers prefers them.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        return shard_files(dir, &index);
    }
    let pickle = dir.join("pytorch_model.bin");
    if pickle.is_file() {
        return Ok(vec![pickle]);
    }
    Err(SslError::NoWeights {
        dir: dir.to_path_buf(),
    })
}

/// The distinct shard files named by a sharded checkpoint's `weight_map`.
fn shard_files(dir: &Path, index: &Path) -> Result<Vec<PathBuf>> {
    let obj = crate::config::read_json_object(index)?;
    let map = obj
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| SslError::Config {
            path: index.to_path_buf(),
            key: "weight_map".into(),
            reason: "missing or not an object".into(),
        })?;
    let names: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
    if names.is_empty() {
        return Err(SslError::Weights {
            path: index.to_path_buf(),
            reason: "weight_map names no shard".into(),
        });
    }
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

/// Reads every tensor of the given files into memory, keyed with base-model prefixes stripped.
pub fn read_tensors(files: &[PathBuf]) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for file in files {
        let tensors = read_one(file)?;
        for (name, tensor) in tensors {
            out.insert(strip_prefix(&name).to_string(), tensor);
        }
    }
    Ok(out)
}

fn read_one(file: &Path) -> Result<Vec<(String, Tensor)>> {
    let bad = |e: candle_core::Error| SslError::Weights {
        path: file.to_path_buf(),
        reason: e.to_string(),
    };
    if !file.is_file() {
        return Err(SslError::Weights {
            path: file.to_path_buf(),
            reason: "file not found".into(),
        });
    }
    let is_pickle = file
        .extension()
        .is_some_and(|e| e == "bin" || e == "pt" || e == "pth");
    if is_pickle {
        candle_core::pickle::read_all(file).map_err(bad)
    } else {
        let map = candle_core::safetensors::load(file, &Device::Cpu).map_err(bad)?;
        Ok(map.into_iter().collect())
    }
}

fn strip_prefix(name: &str) -> &str {
    BASE_PREFIXES
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name)
}

/// Hands tensors to the model builder by name, converting them to the compute dtype, and
/// records every missing or mis-shaped tensor instead of stopping at the first.
pub struct WeightSource {
    tensors: HashMap<String, Tensor>,
    dtype: DType,
    device: Device,
    problems: Vec<String>,
    used: BTreeSet<String>,
}

impl WeightSource {
    /// Tensors are handed out in `dtype` on `device`.
    pub fn new(tensors: HashMap<String, Tensor>, dtype: DType, device: Device) -> Self {
        WeightSource {
            tensors,
            dtype,
            device,
            problems: Vec::new(),
            used: BTreeSet::new(),
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The tensor `name` with the expected `shape`; on a problem a zero placeholder is returned
    /// and the problem recorded, so that [`WeightSource::finish`] can list them all.
    pub fn get(&mut self, name: &str, shape: &[usize]) -> Tensor {
        match self.fetch(name, shape) {
            Some(t) => t,
            None => Tensor::zeros(shape, self.dtype, &self.device).expect("zeros"),
        }
    }

    fn fetch(&mut self, name: &str, shape: &[usize]) -> Option<Tensor> {
        let Some(t) = self.tensors.get(name) else {
            self.problems.push(format!(
                "missing tensor `{name}` (expected shape {shape:?})"
            ));
            return None;
        };
        self.used.insert(name.to_string());
        if t.dims() != shape {
            self.problems.push(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                t.dims()
            ));
            return None;
        }
        match t
            .to_dtype(self.dtype)
            .and_then(|t| t.to_device(&self.device))
        {
            Ok(t) => Some(t),
            Err(e) => {
                self.problems.push(format!(
                    "tensor `{name}`: cannot convert to {:?}: {e}",
                    self.dtype
                ));
                None
            }
        }
    }

    /// A conv weight stored plainly (`.weight`) or with weight norm over `dim = 2`: legacy
    /// `.weight_g`/`.weight_v` or `.parametrizations.weight.original0`/`original1`.
    /// The normalised weight g·v/‖v‖ (norm over output and input channels per tap) is built once.
    pub fn weight_normed_conv(&mut self, prefix: &str, shape: &[usize; 3]) -> Tensor {
        let plain = format!("{prefix}.weight");
        if self.contains(&plain) {
            return self.get(&plain, shape);
        }
        let legacy = (format!("{prefix}.weight_g"), format!("{prefix}.weight_v"));
        let param = (
            format!("{prefix}.parametrizations.weight.original0"),
            format!("{prefix}.parametrizations.weight.original1"),
        );
        let (g_name, v_name) = if self.contains(&legacy.0) || self.contains(&legacy.1) {
            legacy
        } else {
            param
        };
        let g = self.get(&g_name, &[1, 1, shape[2]]);
        let v = self.get(&v_name, shape);
        materialise_weight_norm(&g, &v).unwrap_or_else(|e| {
            self.problems
                .push(format!("`{prefix}`: weight norm failed: {e}"));
            v
        })
    }

    /// Ends loading: an error listing every problem, or the names present but never used
    /// (task heads, quantizers, `masked_spec_embed`), which the caller may log.
    pub fn finish(self, dir: &Path) -> Result<Vec<String>> {
        if !self.problems.is_empty() {
            return Err(SslError::Checkpoint {
                dir: dir.to_path_buf(),
                problems: self.problems,
            });
        }
        let mut unused: Vec<String> = self
            .tensors
            .into_keys()
            .filter(|k| !self.used.contains(k))
            .collect();
        unused.sort();
        Ok(unused)
    }
}

/// w = g · v / ‖v‖ with the norm over dims 0 and 1 for each kernel tap (weight norm, dim = 2),
/// computed in f32 whatever the storage dtype.
fn materialise_weight_norm(g: &Tensor, v: &Tensor) -> candle_core::Result<Tensor> {
    let dtype = v.dtype();
    let v32 = v.to_dtype(DType::F32)?;
    let g32 = g.to_dtype(DType::F32)?;
    let norm = v32.sqr()?.sum_keepdim(0)?.sum_keepdim(1)?.sqrt()?;
    v32.broadcast_mul(&g32.broadcast_div(&norm)?)?
        .to_dtype(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_known_prefixes_only() {
        assert_eq!(
            strip_prefix("wav2vec2.encoder.layer_norm.weight"),
            "encoder.layer_norm.weight"
        );
        assert_eq!(
            strip_prefix("data2vec_audio.feature_projection.projection.bias"),
            "feature_projection.projection.bias"
        );
        assert_eq!(strip_prefix("lm_head.weight"), "lm_head.weight");
    }

    #[test]
    fn weight_norm_has_unit_tap_norm_times_g() {
        let v = Tensor::new(&[[[3f32, 1.0], [4.0, 0.0]]], &Device::Cpu).unwrap(); // [1, 2, 2]
        let g = Tensor::new(&[[[10f32, 2.0]]], &Device::Cpu).unwrap();
        let w = materialise_weight_norm(&g, &v)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(w, vec![6.0, 2.0, 8.0, 0.0]);
    }
}
