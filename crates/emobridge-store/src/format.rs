//! The bytes of a cache entry: a safetensors file whose header is written by this crate with a
//! fixed key order (tensors in data order, `__metadata__` keys sorted), so that the same input
//! gives byte-identical files; a streaming writer that puts the header first and the frames window
//! by window; and a cheap check of an entry from its header and its size alone.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use half::f16;

use crate::entry::EntryMetadata;
use crate::{Result, StoreError};

/// What an entry keeps of the frames: nothing (pooled statistics only), or every frame of every
/// kept hidden state in half or single precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Frames {
    /// Only `mean` and `std` [states, dim] (and the frame count in the metadata).
    None,
    #[default]
    F16,
    F32,
}

impl Frames {
    pub fn as_str(&self) -> &'static str {
        match self {
            Frames::None => "none",
            Frames::F16 => "f16",
            Frames::F32 => "f32",
        }
    }

    fn width(&self) -> usize {
        match self {
            Frames::None => 0,
            Frames::F16 => 2,
            Frames::F32 => 4,
        }
    }

    fn dtype(&self) -> &'static str {
        match self {
            Frames::F32 => "F32",
            _ => "F16",
        }
    }
}

impl std::fmt::Display for Frames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Frames {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "none" => Ok(Frames::None),
            "f16" => Ok(Frames::F16),
            "f32" => Ok(Frames::F32),
            _ => Err(format!("`{s}` is not one of none, f16, f32")),
        }
    }
}

/// The metadata key holding the number of frames pooled into `mean`/`std` (every entry has it;
/// entries without `hidden_states` need it).
pub const FRAMES_KEY: &str = "frame_count";

/// One tensor of a header: name, safetensors dtype, shape, byte length.
pub(crate) struct TensorSpec {
    pub name: &'static str,
    pub dtype: &'static str,
    pub shape: Vec<usize>,
    pub bytes: usize,
}

/// The safetensors prefix (8-byte little-endian header length + JSON header padded with spaces
/// to a multiple of 8) for tensors laid out back to back in the given order. Tensors come in the
/// order given and metadata keys sorted: the same entry always gives the same bytes.
pub(crate) fn header_bytes(tensors: &[TensorSpec], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let q = |s: &str| serde_json::to_string(s).expect("a string serialises");
    let mut json = String::from("{\"__metadata__\":{");
    for (i, (k, v)) in metadata.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!("{}:{}", q(k), q(v)));
    }
    json.push('}');
    let mut offset = 0usize;
    for t in tensors {
        let shape: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
        json.push_str(&format!(
            ",{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
            q(t.name),
            t.dtype,
            shape.join(","),
            offset,
            offset + t.bytes
        ));
        offset += t.bytes;
    }
    json.push('}');
    while json.len() % 8 != 0 {
        json.push(' ');
    }
    let mut out = Vec::with_capacity(8 + json.len());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(json.as_bytes());
    out
}

/// The tensors of an entry of `states × frames × dim` kept as `frames_mode`, in data order.
pub(crate) fn entry_tensors(
    states: usize,
    frames: usize,
    dim: usize,
    mode: Frames,
) -> Vec<TensorSpec> {
    let mut v = Vec::with_capacity(3);
    if mode != Frames::None {
        v.push(TensorSpec {
            name: "hidden_states",
            dtype: mode.dtype(),
            shape: vec![states, frames, dim],
            bytes: states * frames * dim * mode.width(),
        });
    }
    for name in ["mean", "std"] {
        v.push(TensorSpec {
            name,
            dtype: "F32",
            shape: vec![states, dim],
            bytes: states * dim * 4,
        });
    }
    v
}

/// The metadata map of an entry: its provenance plus the frame count.
pub(crate) fn entry_metadata_map(meta: &EntryMetadata, frames: usize) -> BTreeMap<String, String> {
    let mut m = meta.to_pairs();
    m.insert(FRAMES_KEY.to_string(), frames.to_string());
    m
}

/// The temporary name an entry is written under before its rename: hidden, beside it, with the
/// writer's pid (`.<name>.tmp-<pid>`), so that a later run can tell a killed writer's leftovers.
pub fn temp_path(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("entry");
    dir.join(format!(".{name}.tmp-{}", std::process::id()))
}

/// Writes one entry while the encoder runs: the header first (the entry's size is known from the
/// clip's length), then each window's frames straight to their place in the file, the pooled
/// statistics last; the file appears under its name only by [`EntryWriter::finish`]'s rename.
/// Memory held: one window's conversion buffer and two `states × dim` f64 accumulators.
pub struct EntryWriter {
    file: std::fs::File,
    tmp: PathBuf,
    dest: PathBuf,
    mode: Frames,
    states: usize,
    frames: usize,
    dim: usize,
    data_start: u64,
    written: usize,
    sum: Vec<f64>,
    sq: Vec<f64>,
    buf: Vec<u8>,
    peak_buffer: usize,
    done: bool,
}

impl EntryWriter {
    /// Starts the entry of `dest` for `states × frames × dim` frames.
    pub fn create(
        dest: &Path,
        [states, frames, dim]: [usize; 3],
        mode: Frames,
        metadata: &EntryMetadata,
    ) -> Result<Self> {
        if states == 0 || frames == 0 || dim == 0 {
            return Err(StoreError::BadEntry(format!(
                "empty shape {:?}",
                [states, frames, dim]
            )));
        }
        let tmp = temp_path(dest);
        let io = |source| StoreError::Io {
            path: tmp.clone(),
            source,
        };
        let head = header_bytes(
            &entry_tensors(states, frames, dim, mode),
            &entry_metadata_map(metadata, frames),
        );
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(&head).map_err(io)?;
        Ok(EntryWriter {
            file,
            tmp: tmp.clone(),
            dest: dest.to_path_buf(),
            mode,
            states,
            frames,
            dim,
            data_start: head.len() as u64,
            written: 0,
            sum: vec![0.0; states * dim],
            sq: vec![0.0; states * dim],
            buf: Vec::new(),
            peak_buffer: 0,
            done: false,
        })
    }

    /// Appends the next `n` frames of every state: `window` is [states, n, dim] row-major.
    pub fn push(&mut self, window: &[f32], n: usize) -> Result<()> {
        let (s, d) = (self.states, self.dim);
        if window.len() != s * n * d || self.written + n > self.frames {
            return Err(StoreError::BadEntry(format!(
                "window of {} values for {n} frames after {} of {} (states {s}, dim {d})",
                window.len(),
                self.written,
                self.frames
            )));
        }
        for state in 0..s {
            let block = &window[state * n * d..(state + 1) * n * d];
            let (sum, sq) = (
                &mut self.sum[state * d..(state + 1) * d],
                &mut self.sq[state * d..(state + 1) * d],
            );
            for frame in block.chunks_exact(d) {
                for ((acc, acc2), &v) in sum.iter_mut().zip(sq.iter_mut()).zip(frame) {
                    *acc += v as f64;
                    *acc2 += (v as f64) * (v as f64);
                }
            }
            if self.mode == Frames::None {
                continue;
            }
            self.buf.clear();
            match self.mode {
                Frames::F16 => self
                    .buf
                    .extend(block.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes())),
                _ => self.buf.extend(block.iter().flat_map(|v| v.to_le_bytes())),
            }
            self.peak_buffer = self.peak_buffer.max(self.buf.capacity());
            let w = self.mode.width() as u64;
            let at = self.data_start + ((state * self.frames + self.written) * d) as u64 * w;
            let tmp = &self.tmp;
            let io = |source| StoreError::Io {
                path: tmp.clone(),
                source,
            };
            self.file.seek(SeekFrom::Start(at)).map_err(io)?;
            self.file.write_all(&self.buf).map_err(io)?;
        }
        self.written += n;
        Ok(())
    }

    /// Frames written so far.
    pub fn written(&self) -> usize {
        self.written
    }

    /// The largest conversion buffer this writer held, bytes (one state of one window).
    pub fn peak_buffer_bytes(&self) -> usize {
        self.peak_buffer
    }

    /// Writes the pooled statistics (per-state mean and population std over frames, computed in
    /// f64 from the unrounded values), syncs, and renames the file into place.
    pub fn finish(mut self) -> Result<PathBuf> {
        if self.written != self.frames {
            return Err(StoreError::BadEntry(format!(
                "{} of {} frames written",
                self.written, self.frames
            )));
        }
        let t = self.frames as f64;
        let mut mean = Vec::with_capacity(self.sum.len() * 4);
        let mut std = Vec::with_capacity(self.sum.len() * 4);
        for (s, q) in self.sum.iter().zip(&self.sq) {
            let m = s / t;
            let var = (q / t - m * m).max(0.0);
            mean.extend_from_slice(&(m as f32).to_le_bytes());
            std.extend_from_slice(&(var.sqrt() as f32).to_le_bytes());
        }
        let w = self.mode.width() as u64;
        let at = self.data_start + (self.states * self.frames * self.dim) as u64 * w;
        let tmp = self.tmp.clone();
        let io = |source| StoreError::Io {
            path: tmp.clone(),
            source,
        };
        self.file.seek(SeekFrom::Start(at)).map_err(io)?;
        self.file.write_all(&mean).map_err(io)?;
        self.file.write_all(&std).map_err(io)?;
        self.file.sync_all().map_err(io)?;
        std::fs::rename(&self.tmp, &self.dest).map_err(|source| StoreError::Io {
            path: self.dest.clone(),
            source,
        })?;
        self.done = true;
        Ok(self.dest.clone())
    }
}

impl Drop for EntryWriter {
    /// An unfinished entry (an error mid-way) leaves no temporary file behind.
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// What the header of a valid entry says.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryHeader {
    pub states: usize,
    /// Frames pooled into `mean`/`std` (the `hidden_states` frames when present).
    pub frames: usize,
    pub dim: usize,
    /// `None` when the entry keeps pooled statistics only.
    pub frames_mode: Frames,
    /// The `__metadata__` pairs.
    pub metadata: BTreeMap<String, String>,
}

fn bad(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::Format {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Checks an entry without reading its data: the safetensors header parses; `mean` and `std`
/// are F32 [states, dim]; `hidden_states`, when present, is F16/F32 [states, frames, dim]; the
/// tensors tile the data section exactly and the file is as long as the header says (a
/// truncated, 0-byte or padded file fails).
pub fn inspect_entry(path: &Path) -> Result<EntryHeader> {
    let mut f = std::fs::File::open(path).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let size = f
        .metadata()
        .map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    if size == 0 {
        return Err(bad(path, "empty file (0 bytes)"));
    }
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|_| {
        bad(
            path,
            format!("{size} bytes: too short for a safetensors file"),
        )
    })?;
    let n = u64::from_le_bytes(len);
    if n == 0 || n > 1 << 24 || 8 + n > size {
        return Err(bad(
            path,
            format!(
                "header length {n} does not fit a {size}-byte file (truncated or not safetensors)"
            ),
        ));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header)
        .map_err(|_| bad(path, "truncated safetensors header"))?;
    let json: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| bad(path, format!("bad safetensors header: {e}")))?;
    let mut metadata = BTreeMap::new();
    if let Some(m) = json.get("__metadata__") {
        for (k, v) in m
            .as_object()
            .ok_or_else(|| bad(path, "`__metadata__` is not a map"))?
        {
            let v = v
                .as_str()
                .ok_or_else(|| bad(path, format!("metadata `{k}` is not a string")))?;
            metadata.insert(k.clone(), v.to_string());
        }
    }
    let mut spans = Vec::new();
    let mut tensor = |name: &str| -> Result<Option<(String, Vec<usize>)>> {
        let Some(t) = json.get(name) else {
            return Ok(None);
        };
        let dtype = t
            .get("dtype")
            .and_then(|d| d.as_str())
            .ok_or_else(|| bad(path, format!("`{name}` has no dtype")))?;
        let dims = |key: &str| -> Option<Vec<usize>> {
            t.get(key)?
                .as_array()?
                .iter()
                .map(|v| v.as_u64().map(|v| v as usize))
                .collect()
        };
        let shape = dims("shape").ok_or_else(|| bad(path, format!("`{name}` has no shape")))?;
        let offs = dims("data_offsets")
            .filter(|o| o.len() == 2 && o[0] <= o[1])
            .ok_or_else(|| bad(path, format!("`{name}` has bad data_offsets")))?;
        let width = match dtype {
            "F16" | "BF16" => 2,
            "F32" => 4,
            "F64" => 8,
            other => {
                return Err(bad(
                    path,
                    format!("`{name}` has dtype {other}, not a float"),
                ))
            }
        };
        let count = shape
            .iter()
            .try_fold(width, |acc: usize, &d| acc.checked_mul(d))
            .ok_or_else(|| bad(path, format!("`{name}` shape {shape:?} overflows")))?;
        if offs[1] - offs[0] != count {
            return Err(bad(
                path,
                format!(
                    "`{name}` {dtype} {shape:?} needs {count} bytes, has {}",
                    offs[1] - offs[0]
                ),
            ));
        }
        spans.push((offs[0], offs[1]));
        Ok(Some((dtype.to_string(), shape)))
    };
    let hidden = tensor("hidden_states")?;
    let mean = tensor("mean")?.ok_or_else(|| bad(path, "no `mean` tensor"))?;
    let std = tensor("std")?.ok_or_else(|| bad(path, "no `std` tensor"))?;
    let others = json
        .keys()
        .filter(|k| !["__metadata__", "hidden_states", "mean", "std"].contains(&k.as_str()))
        .count();
    if others > 0 {
        return Err(bad(path, format!("{others} unexpected tensors")));
    }
    spans.sort_unstable();
    let mut end = 0;
    for (a, b) in &spans {
        if *a != end {
            return Err(bad(path, "tensor data has holes or overlaps"));
        }
        end = *b;
    }
    let expected = 8 + n + end as u64;
    if size != expected {
        return Err(bad(
            path,
            format!("{size} bytes, the header describes {expected} (truncated or padded)"),
        ));
    }
    let [states, dim]: [usize; 2] = mean
        .1
        .as_slice()
        .try_into()
        .map_err(|_| bad(path, format!("`mean` has shape {:?}", mean.1)))?;
    if mean.0 != "F32" || std.0 != "F32" || std.1 != mean.1 {
        return Err(bad(path, "`mean`/`std` are not both F32 [states, dim]"));
    }
    let (frames_mode, frames) = match hidden {
        Some((dtype, shape)) => {
            let mode = match dtype.as_str() {
                "F16" => Frames::F16,
                "F32" => Frames::F32,
                other => return Err(bad(path, format!("`hidden_states` is {other}"))),
            };
            match shape.as_slice() {
                [s, f, d] if *s == states && *d == dim => (mode, *f),
                _ => {
                    return Err(bad(
                        path,
                        format!(
                            "`hidden_states` {shape:?} does not match `mean` [{states}, {dim}]"
                        ),
                    ))
                }
            }
        }
        None => {
            let f = metadata
                .get(FRAMES_KEY)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad(path, "no `hidden_states` and no `frame_count`"))?;
            (Frames::None, f)
        }
    };
    Ok(EntryHeader {
        states,
        frames,
        dim,
        frames_mode,
        metadata,
    })
}
