//! Reading a HuggingFace checkpoint folder as it is: single or sharded safetensors, or a PyTorch
//! pickle, with the hub's key prefixes stripped and problems collected for one complete report.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

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

/// Hex SHA-256 of a model folder's weights: the weight file's digest, or for a sharded
/// checkpoint the digest of the lines `<file name>\t<file digest>` in file order.
pub fn weights_sha256(dir: &Path) -> Result<String> {
    let files = weight_files(dir)?;
    if let [one] = files.as_slice() {
        return Ok(emobridge_store::sha256_file(one)?);
    }
    let mut lines = String::new();
    for f in &files {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        lines.push_str(&format!(
            "{}\t{}\n",
            name.unwrap_or_default(),
            emobridge_store::sha256_file(f)?
        ));
    }
    Ok(emobridge_store::sha256_hex(lines.as_bytes()))
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

/// The tensors of one checkpoint as a candle [`SimpleBackend`]: hands tensors to the model
/// builder by name (converted to the requested dtype and device) and records every missing or
/// mis-shaped tensor instead of stopping at the first, returning a zero placeholder so that the
/// build goes on; [`WeightSource::finish`] then reports them all at once, or lists the tensors
/// present but never asked for.
///
/// Cloning shares the tensors and the record (the [`VarBuilder`] holds one clone).
#[derive(Clone)]
pub struct WeightSource {
    inner: Arc<SourceInner>,
}

struct SourceInner {
    tensors: HashMap<String, Tensor>,
    record: Mutex<Record>,
}

#[derive(Default)]
struct Record {
    problems: Vec<String>,
    used: BTreeSet<String>,
}

impl WeightSource {
    pub fn new(tensors: HashMap<String, Tensor>) -> Self {
        WeightSource {
            inner: Arc::new(SourceInner {
                tensors,
                record: Mutex::new(Record::default()),
            }),
        }
    }

    /// A [`VarBuilder`] over these tensors, handing them out in `dtype` on `device`.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), dtype, device.clone())
    }

    fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        // A panic while the lock was held leaves a record that is still a valid list.
        self.inner.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fetch(&self, name: &str, shape: &Shape, dtype: DType, device: &Device) -> Option<Tensor> {
        let Some(t) = self.inner.tensors.get(name) else {
            self.record().problems.push(format!(
                "missing tensor `{name}` (expected shape {:?})",
                shape.dims()
            ));
            return None;
        };
        self.record().used.insert(name.to_string());
        if t.shape() != shape {
            self.record().problems.push(format!(
                "tensor `{name}` has shape {:?}, expected {:?}",
                t.dims(),
                shape.dims()
            ));
            return None;
        }
        match t.to_dtype(dtype).and_then(|t| t.to_device(device)) {
            Ok(t) => Some(t),
            Err(e) => {
                self.record()
                    .problems
                    .push(format!("tensor `{name}`: cannot convert to {dtype:?}: {e}"));
                None
            }
        }
    }

    /// Ends loading: an error listing every problem, or the names present but never used
    /// (task heads, quantizers, `masked_spec_embed`), which the caller may log.
    pub fn finish(&self, dir: &Path) -> Result<Vec<String>> {
        let record = self.record();
        if !record.problems.is_empty() {
            return Err(SslError::Checkpoint {
                dir: dir.to_path_buf(),
                problems: record.problems.clone(),
            });
        }
        let mut unused: Vec<String> = self
            .inner
            .tensors
            .keys()
            .filter(|k| !record.used.contains(*k))
            .cloned()
            .collect();
        unused.sort();
        Ok(unused)
    }
}

impl SimpleBackend for WeightSource {
    /// The tensor `name` with shape `s`; on a problem a zero placeholder (recorded, see
    /// [`WeightSource::finish`]).
    fn get(
        &self,
        s: Shape,
        name: &str,
        _init: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        match self.fetch(name, &s, dtype, dev) {
            Some(t) => Ok(t),
            None => Tensor::zeros(s, dtype, dev),
        }
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let Some(t) = self.inner.tensors.get(name) else {
            self.record()
                .problems
                .push(format!("missing tensor `{name}`"));
            candle_core::bail!("missing tensor `{name}`");
        };
        self.record().used.insert(name.to_string());
        t.to_dtype(dtype)?.to_device(dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.tensors.contains_key(name)
    }
}

/// A conv weight stored plainly or as weight norm's two parameters.
#[derive(Clone)]
pub enum ConvKernel {
    Plain(Tensor),
    /// g [1, 1, k] and v [out, in, k]: the weight is g·v/‖v‖ (norm over dims 0 and 1 per tap).
    WeightNorm {
        g: Tensor,
        v: Tensor,
    },
}

impl ConvKernel {
    /// The weight itself (computed from g and v each call for the weight-norm form, so that a
    /// trainable g and v get gradients and updates to them are seen).
    pub fn weight(&self) -> candle_core::Result<Tensor> {
        match self {
            ConvKernel::Plain(w) => Ok(w.clone()),
            ConvKernel::WeightNorm { g, v } => materialise_weight_norm(g, v),
        }
    }
}

/// A conv weight under `vb` stored plainly (`weight`) or with weight norm over `dim = 2`: legacy
/// `weight_g`/`weight_v` or `parametrizations.weight.original0`/`original1`. A fresh `VarMap`
/// holds no names yet and gets the `parametrizations` pair (as recent transformers save it).
pub fn weight_normed_conv(vb: &VarBuilder, shape: [usize; 3]) -> candle_core::Result<ConvKernel> {
    if vb.contains_tensor("weight") {
        return Ok(ConvKernel::Plain(vb.get(shape.to_vec(), "weight")?));
    }
    let (g_name, v_name) = if vb.contains_tensor("weight_g") || vb.contains_tensor("weight_v") {
        ("weight_g", "weight_v")
    } else {
        (
            "parametrizations.weight.original0",
            "parametrizations.weight.original1",
        )
    };
    let g = vb.get_with_hints((1, 1, shape[2]), g_name, candle_nn::Init::Const(1.0))?;
    let v = vb.get_with_hints(
        shape.to_vec(),
        v_name,
        candle_nn::init::DEFAULT_KAIMING_NORMAL,
    )?;
    Ok(ConvKernel::WeightNorm { g, v })
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
