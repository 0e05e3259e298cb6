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
///
/// Loading an encoder does not need this: [`WeightSource::open`] reads each tensor when the
/// model asks for it, so that a packed layer's checkpoint copy is gone before the next is read.
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

/// Scalars in a checkpoint's weight files ([`weight_files`]): safetensors from their headers
/// alone (checked as [`WeightSource::open`] checks them), PyTorch pickles read whole.
pub fn parameter_count(files: &[PathBuf]) -> Result<usize> {
    let mut total = 0usize;
    for (i, path) in files.iter().enumerate() {
        if is_pickle(path) {
            total += read_tensors(std::slice::from_ref(path))?
                .values()
                .map(|t| t.elem_count())
                .sum::<usize>();
            continue;
        }
        let file = std::fs::File::open(path).map_err(|e| SslError::Weights {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        total += read_header(path, &file, i)?
            .iter()
            .map(|(_, entry)| entry.shape.iter().product::<usize>())
            .sum::<usize>();
    }
    Ok(total)
}

fn is_pickle(file: &Path) -> bool {
    file.extension()
        .is_some_and(|e| e == "bin" || e == "pt" || e == "pth")
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
    if is_pickle(file) {
        candle_core::pickle::read_all(file).map_err(bad)
    } else {
        let map = candle_core::safetensors::load(file, &Device::Cpu).map_err(bad)?;
        Ok(map.into_iter().collect())
    }
}

/// Element types a safetensors weight may have (the floating-point ones candle loads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoredDtype {
    F32,
    F16,
    Bf16,
    F64,
}

impl StoredDtype {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "F32" => StoredDtype::F32,
            "F16" => StoredDtype::F16,
            "BF16" => StoredDtype::Bf16,
            "F64" => StoredDtype::F64,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            StoredDtype::F16 | StoredDtype::Bf16 => 2,
            StoredDtype::F32 => 4,
            StoredDtype::F64 => 8,
        }
    }
}

/// Where one tensor's bytes lie in a safetensors file.
#[derive(Debug, Clone)]
struct Entry {
    file: usize,
    /// An element type the encoder cannot use (an integer buffer) is an error only if the model
    /// asks for that tensor.
    dtype: Result<StoredDtype, String>,
    shape: Vec<usize>,
    /// Absolute byte offset of the data in the file.
    start: u64,
}

/// The headers of a checkpoint's safetensors files: every tensor's name, type, shape and place,
/// read without reading the data.
struct TensorIndex {
    files: Vec<(PathBuf, Mutex<std::fs::File>)>,
    entries: HashMap<String, Entry>,
}

/// Largest safetensors header accepted (the format's own limit is 100 MB).
const MAX_HEADER: u64 = 100_000_000;

impl TensorIndex {
    fn open(files: &[PathBuf]) -> Result<Self> {
        let mut index = TensorIndex {
            files: Vec::new(),
            entries: HashMap::new(),
        };
        for (i, path) in files.iter().enumerate() {
            let file = std::fs::File::open(path).map_err(|e| SslError::Weights {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            for (name, entry) in read_header(path, &file, i)? {
                index.entries.insert(strip_prefix(&name).to_string(), entry);
            }
            index.files.push((path.clone(), Mutex::new(file)));
        }
        Ok(index)
    }

    /// The tensor's values as f32, read straight into the buffer the tensor then owns (one copy
    /// for f32 checkpoints; f16/bf16/f64 are converted on the way).
    fn read(&self, entry: &Entry) -> std::result::Result<Tensor, String> {
        let dtype = entry.dtype.clone()?;
        let (path, file) = &self.files[entry.file];
        let count: usize = entry.shape.iter().product();
        // A poisoned lock only means another read panicked; the file handle is still usable.
        let file = file.lock().unwrap_or_else(|e| e.into_inner());
        let bad = |e: std::io::Error| format!("{}: cannot read the data: {e}", path.display());
        let values: Vec<f32> = match dtype {
            StoredDtype::F32 => {
                let mut v: Vec<f32> = read_values(&file, entry.start, count).map_err(bad)?;
                if cfg!(target_endian = "big") {
                    v.iter_mut()
                        .for_each(|x| *x = f32::from_bits(x.to_bits().swap_bytes()));
                }
                v
            }
            StoredDtype::F16 | StoredDtype::Bf16 => {
                let v: Vec<u16> = read_values(&file, entry.start, count).map_err(bad)?;
                v.iter()
                    .map(|&b| {
                        let b = u16::from_le(b);
                        if dtype == StoredDtype::F16 {
                            half::f16::from_bits(b).to_f32()
                        } else {
                            half::bf16::from_bits(b).to_f32()
                        }
                    })
                    .collect()
            }
            StoredDtype::F64 => {
                let v: Vec<u64> = read_values(&file, entry.start, count).map_err(bad)?;
                v.iter()
                    .map(|&b| f64::from_bits(u64::from_le(b)) as f32)
                    .collect()
            }
        };
        Tensor::from_vec(values, entry.shape.clone(), &Device::Cpu).map_err(|e| e.to_string())
    }
}

/// `count` values of `T` from byte `offset` of `file`, read straight into the vector's memory
/// (no zero-fill first; pages mapped in one call, see [`crate::gemm::populate`]).
#[cfg(unix)]
fn read_values<T: PlainNumber>(
    file: &std::fs::File,
    offset: u64,
    count: usize,
) -> std::io::Result<Vec<T>> {
    use std::os::unix::io::AsRawFd;
    let bytes = count * std::mem::size_of::<T>();
    let mut v: Vec<T> = Vec::with_capacity(count);
    let base = v.as_mut_ptr().cast::<u8>();
    crate::gemm::populate(base, bytes);
    let mut done = 0usize;
    while done < bytes {
        let at = libc::off_t::try_from(offset + done as u64)
            .map_err(|_| std::io::Error::other("offset beyond the platform's file offsets"))?;
        // SAFETY: the destination range lies inside the vector's capacity (`bytes` in all), and
        // pread writes at most the requested length there.
        let got = unsafe {
            libc::pread(
                file.as_raw_fd(),
                base.add(done).cast::<libc::c_void>(),
                bytes - done,
                at,
            )
        };
        match got {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n if n > 0 => done += n as usize,
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    // SAFETY: all `count` values were written by the reads above, and every bit pattern is a
    // valid `T` (`PlainNumber`).
    unsafe { v.set_len(count) };
    Ok(v)
}

#[cfg(not(unix))]
fn read_values<T: PlainNumber + Default>(
    file: &std::fs::File,
    offset: u64,
    count: usize,
) -> std::io::Result<Vec<T>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut v = vec![T::default(); count];
    let mut file = file;
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(as_bytes_mut(&mut v))?;
    Ok(v)
}

/// Plain numbers whose every bit pattern is a valid value.
trait PlainNumber: Copy + Default {}
impl PlainNumber for f32 {}
impl PlainNumber for u16 {}
impl PlainNumber for u64 {}

/// The bytes of a slice of plain numbers, to read file data into it without a second buffer.
#[cfg(not(unix))]
fn as_bytes_mut<T: PlainNumber>(v: &mut [T]) -> &mut [u8] {
    // SAFETY: T is f32, u16 or u64 (sealed by `PlainNumber`): no padding, any byte pattern is a
    // valid value, and u8 has alignment 1; the length covers exactly the slice's memory.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// Parses one safetensors header (8-byte little-endian length, then JSON) and checks that every
/// tensor's byte range has the size its type and shape need and lies inside the file.
fn read_header(path: &Path, file: &std::fs::File, file_no: usize) -> Result<Vec<(String, Entry)>> {
    use std::io::Read;
    let bad = |reason: String| SslError::Weights {
        path: path.to_path_buf(),
        reason,
    };
    let file_len = file.metadata().map_err(|e| bad(e.to_string()))?.len();
    let mut reader = file;
    let mut len_bytes = [0u8; 8];
    reader
        .read_exact(&mut len_bytes)
        .map_err(|_| bad("too short for a safetensors header".into()))?;
    let header_len = u64::from_le_bytes(len_bytes);
    if header_len > MAX_HEADER || 8 + header_len > file_len {
        return Err(bad(format!(
            "safetensors header length {header_len} does not fit a file of {file_len} bytes"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    reader
        .read_exact(&mut header)
        .map_err(|e| bad(format!("cannot read the header: {e}")))?;
    let json: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| bad(format!("safetensors header is not a JSON object: {e}")))?;
    let data_start = 8 + header_len;
    let mut out = Vec::with_capacity(json.len());
    for (name, info) in json {
        if name == "__metadata__" {
            continue;
        }
        let field = |key: &str| {
            info.get(key)
                .ok_or_else(|| bad(format!("tensor `{name}`: header lacks `{key}`")))
        };
        let dtype_name = field("dtype")?
            .as_str()
            .ok_or_else(|| bad(format!("tensor `{name}`: dtype is not a string")))?;
        let shape = field("shape")?
            .as_array()
            .and_then(|dims| {
                dims.iter()
                    .map(|d| d.as_u64().map(|d| d as usize))
                    .collect()
            })
            .ok_or_else(|| bad(format!("tensor `{name}`: shape is not a list of sizes")))?;
        let offsets: Vec<u64> = field("data_offsets")?
            .as_array()
            .and_then(|o| o.iter().map(|v| v.as_u64()).collect())
            .filter(|o: &Vec<u64>| o.len() == 2 && o[0] <= o[1])
            .ok_or_else(|| bad(format!("tensor `{name}`: data_offsets is not [begin, end]")))?;
        let (begin, end) = (offsets[0], offsets[1]);
        if data_start + end > file_len {
            return Err(bad(format!(
                "tensor `{name}`: data ends at byte {} of a {file_len}-byte file",
                data_start + end
            )));
        }
        let dtype = StoredDtype::parse(dtype_name).ok_or_else(|| {
            format!("tensor `{name}` has element type {dtype_name}, not a float type")
        });
        let elements = (&shape as &Vec<usize>)
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
        let elem_size = dtype.as_ref().map_or(0, |d| d.size() as u64);
        if let (Ok(_), Some(elements)) = (&dtype, elements) {
            if elements.checked_mul(elem_size) != Some(end - begin) {
                return Err(bad(format!(
                    "tensor `{name}`: {} bytes for shape {shape:?} of {dtype_name}",
                    end - begin
                )));
            }
        } else if elements.is_none() {
            return Err(bad(format!("tensor `{name}`: shape {shape:?} overflows")));
        }
        out.push((
            name,
            Entry {
                file: file_no,
                dtype,
                shape,
                start: data_start + begin,
            },
        ));
    }
    Ok(out)
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
    store: Store,
    record: Mutex<Record>,
}

/// Tensors held in memory, or read from the files when asked for.
enum Store {
    Eager(HashMap<String, Tensor>),
    Lazy(TensorIndex),
}

impl Store {
    fn contains(&self, name: &str) -> bool {
        match self {
            Store::Eager(t) => t.contains_key(name),
            Store::Lazy(index) => index.entries.contains_key(name),
        }
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        match self {
            Store::Eager(t) => t.get(name).map(|t| t.dims().to_vec()),
            Store::Lazy(index) => index.entries.get(name).map(|e| e.shape.clone()),
        }
    }

    fn names(&self) -> Vec<String> {
        match self {
            Store::Eager(t) => t.keys().cloned().collect(),
            Store::Lazy(index) => index.entries.keys().cloned().collect(),
        }
    }

    /// The tensor itself (shared for the eager store, read now for the lazy one).
    fn load(&self, name: &str) -> std::result::Result<Tensor, String> {
        match self {
            Store::Eager(t) => t
                .get(name)
                .cloned()
                .ok_or_else(|| format!("missing tensor `{name}`")),
            Store::Lazy(index) => match index.entries.get(name) {
                Some(entry) => index.read(entry),
                None => Err(format!("missing tensor `{name}`")),
            },
        }
    }
}

#[derive(Default)]
struct Record {
    problems: Vec<String>,
    used: BTreeSet<String>,
}

impl WeightSource {
    /// A source over tensors already in memory.
    pub fn new(tensors: HashMap<String, Tensor>) -> Self {
        Self::with_store(Store::Eager(tensors))
    }

    /// A source over checkpoint files that reads each tensor only when the model builder asks
    /// for it, and keeps nothing: the builder owns the one copy (packed layers drop it once
    /// packed). Safetensors headers are read and checked here; PyTorch pickles have no index
    /// and are read whole ([`read_tensors`]).
    pub fn open(files: &[PathBuf]) -> Result<Self> {
        if files.iter().any(|f| is_pickle(f)) {
            return Ok(Self::new(read_tensors(files)?));
        }
        Ok(Self::with_store(Store::Lazy(TensorIndex::open(files)?)))
    }

    fn with_store(store: Store) -> Self {
        WeightSource {
            inner: Arc::new(SourceInner {
                store,
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
        let Some(dims) = self.inner.store.shape(name) else {
            self.record().problems.push(format!(
                "missing tensor `{name}` (expected shape {:?})",
                shape.dims()
            ));
            return None;
        };
        self.record().used.insert(name.to_string());
        if dims != shape.dims() {
            self.record().problems.push(format!(
                "tensor `{name}` has shape {dims:?}, expected {:?}",
                shape.dims()
            ));
            return None;
        }
        let t = match self.inner.store.load(name) {
            Ok(t) => t,
            Err(e) => {
                self.record().problems.push(format!("tensor `{name}`: {e}"));
                return None;
            }
        };
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
            // Sorted: packed layers are built in parallel, so the order of discovery varies.
            let mut problems = record.problems.clone();
            problems.sort();
            problems.dedup();
            return Err(SslError::Checkpoint {
                dir: dir.to_path_buf(),
                problems,
            });
        }
        let mut unused: Vec<String> = self
            .inner
            .store
            .names()
            .into_iter()
            .filter(|k| !record.used.contains(k))
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
        let t = match self.inner.store.load(name) {
            Ok(t) => t,
            Err(e) => {
                self.record().problems.push(e.clone());
                candle_core::bail!("{e}");
            }
        };
        self.record().used.insert(name.to_string());
        t.to_dtype(dtype)?.to_device(dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.store.contains(name)
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

    fn save(dir: &Path, tensors: &[(&str, Tensor)]) -> PathBuf {
        let path = dir.join("model.safetensors");
        let map: HashMap<String, Tensor> = tensors
            .iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect();
        candle_core::safetensors::save(&map, &path).unwrap();
        path
    }

    #[test]
    fn tensors_read_on_demand_equal_the_whole_file_reader() {
        let dir = tempfile::tempdir().unwrap();
        let cpu = Device::Cpu;
        let a = Tensor::new(&[[1f32, -2.5, 3.0], [4.0, 5.0, 6.5]], &cpu).unwrap();
        let path = save(
            dir.path(),
            &[
                ("wav2vec2.a", a.clone()),
                ("h", a.to_dtype(DType::F16).unwrap()),
                ("b", a.to_dtype(DType::BF16).unwrap()),
                ("d", a.to_dtype(DType::F64).unwrap()),
                ("ids", Tensor::new(&[1i64, 2, 3], &cpu).unwrap()),
            ],
        );
        let eager = read_tensors(std::slice::from_ref(&path)).unwrap();
        let lazy = WeightSource::open(std::slice::from_ref(&path)).unwrap();
        assert!(lazy.contains_tensor("a") && lazy.contains_tensor("ids"));
        for name in ["a", "h", "b", "d"] {
            let got = lazy
                .get(
                    (2, 3).into(),
                    name,
                    candle_nn::Init::Const(0.0),
                    DType::F32,
                    &cpu,
                )
                .unwrap();
            let want = eager[name].to_dtype(DType::F32).unwrap();
            let diff = got.sub(&want).unwrap().abs().unwrap().sum_all().unwrap();
            assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "{name}");
        }
        // Unused and unusable tensors are only reported when asked for.
        assert_eq!(lazy.finish(dir.path()).unwrap(), vec!["ids".to_string()]);
        let _ = lazy.get(
            (3,).into(),
            "ids",
            candle_nn::Init::Const(0.0),
            DType::F32,
            &cpu,
        );
        let _ = lazy.get(
            (3, 2).into(),
            "a",
            candle_nn::Init::Const(0.0),
            DType::F32,
            &cpu,
        );
        let err = lazy.finish(dir.path()).unwrap_err().to_string();
        assert!(err.contains("`ids` has element type I64"), "{err}");
        assert!(
            err.contains("`a` has shape [2, 3], expected [3, 2]"),
            "{err}"
        );
    }

    #[test]
    fn damaged_safetensors_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = Tensor::new(&[1f32, 2.0, 3.0, 4.0], &Device::Cpu).unwrap();
        let path = save(dir.path(), &[("a", a)]);
        assert_eq!(parameter_count(std::slice::from_ref(&path)).unwrap(), 4);
        let good = std::fs::read(&path).unwrap();
        let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
        let mut huge = good.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        let mut not_json = good.clone();
        not_json[8] = b'#';
        let mut wrong_size = good.clone();
        let text = String::from_utf8(good[8..8 + header_len].to_vec()).unwrap();
        let shrunk = text.replace("[4]", "[3]");
        assert_ne!(shrunk, text);
        wrong_size.splice(8..8 + header_len, shrunk.bytes());
        for (bytes, reason) in [
            (good[..5].to_vec(), "too short"),
            (huge, "does not fit"),
            (not_json, "not a JSON object"),
            (good[..good.len() - 4].to_vec(), "data ends at byte"),
            (wrong_size, "bytes for shape [3]"),
        ] {
            std::fs::write(&path, &bytes).unwrap();
            let err = WeightSource::open(std::slice::from_ref(&path))
                .err()
                .expect(reason)
                .to_string();
            assert!(
                err.contains(reason) && err.contains("model.safetensors"),
                "{reason}: {err}"
            );
            // The parameter count reads the same header and refuses it alike.
            let err = parameter_count(std::slice::from_ref(&path))
                .expect_err(reason)
                .to_string();
            assert!(err.contains(reason), "{reason}: {err}");
        }
    }

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
