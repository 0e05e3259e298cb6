//! Reading embeddings and statistics from disk.
//!
//! * `.npy`: little- or big-endian `f2`/`f4`/`f8`, C or Fortran order (fadtk caches frame
//!   embeddings as f16 `.npy`); a matrix [N, D] is N rows, a vector [D] is one row.
//! * `.safetensors`: one tensor (named, or the only one, or `hidden_states`) of F16/BF16/F32/F64;
//!   [D] is one pooled row, [frames, D] frame rows, [layers+1, frames, D] needs a layer.
//! * statistics: a folder holding `mu.npy` and `cov.npy` (fadtk's `stats/<model>/` layout), or a
//!   `.npz` with `mu`/`cov` or `<name>.mu`/`<name>.cov` entries (fadtk's packaged reference
//!   statistics, e.g. `fma_pop.npz`).
//! * a folder of `.npy`/`.safetensors` files: their rows concatenated (one clip per file, as fadtk
//!   reads an embedding folder), or one mean row per file when pooling.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use faer::Mat;
use ndarray::{Array2, ArrayD, IxDyn};
use safetensors::{Dtype, SafeTensors};

use crate::stats::Gaussian;
use crate::{FadError, Result};

fn format_err(path: &Path, message: impl Into<String>) -> FadError {
    FadError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FadError + '_ {
    move |source| FadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a `.npy` array of floating-point numbers as `f64`.
pub fn read_npy(path: &Path) -> Result<ArrayD<f64>> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    parse_npy(&bytes).map_err(|m| format_err(path, m))
}

/// A parsed `.npy` header: where the data start and how to read them.
struct NpyLayout {
    data_start: usize,
    shape: Vec<usize>,
    fortran: bool,
    big_endian: bool,
    width: usize,
    count: usize,
}

fn parse_npy_header(bytes: &[u8]) -> std::result::Result<NpyLayout, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (bad magic)".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| "the .npy header is not text")?;
    let descr = header_value(header, "descr").ok_or("no 'descr' in the .npy header")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let fortran = header_value(header, "fortran_order")
        .ok_or("no 'fortran_order' in the .npy header")?
        == "True";
    let shape = parse_shape(header)?;
    let (big_endian, width) = match descr {
        "<f2" => (false, 2),
        "<f4" => (false, 4),
        "<f8" => (false, 8),
        ">f2" => (true, 2),
        ">f4" => (true, 4),
        ">f8" => (true, 8),
        other => return Err(format!("dtype {other} is not a float (f2/f4/f8 expected)")),
    };
    // Checked: a mutated header can claim a shape whose size overflows `usize` (see docs/fuzzing.md).
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|c| c.checked_mul(width).map(|_| c))
        .ok_or_else(|| format!("shape {shape:?} is too large"))?;
    let data = &bytes[start + header_len..];
    if data.len() < count * width {
        return Err(format!(
            "data too short: {} bytes for shape {shape:?} of {descr}",
            data.len()
        ));
    }
    Ok(NpyLayout {
        data_start: start + header_len,
        shape,
        fortran,
        big_endian,
        width,
        count,
    })
}

fn parse_npy(bytes: &[u8]) -> std::result::Result<ArrayD<f64>, String> {
    let NpyLayout {
        data_start,
        shape,
        fortran,
        big_endian,
        width,
        count,
    } = parse_npy_header(bytes)?;
    let mut values = vec![0.0f64; count];
    decode_into(
        &bytes[data_start..data_start + count * width],
        width,
        big_endian,
        &mut values,
        None,
    );
    if fortran {
        let reversed: Vec<usize> = shape.iter().rev().copied().collect();
        let array = ArrayD::from_shape_vec(IxDyn(&reversed), values)
            .map_err(|e| e.to_string())?
            .reversed_axes();
        Ok(array.as_standard_layout().into_owned())
    } else {
        ArrayD::from_shape_vec(IxDyn(&shape), values).map_err(|e| e.to_string())
    }
}

/// Decodes `out.len()` floats from `data`, adding each value to `sums[k % sums.len()]` when
/// sums are given (the column sums of row-major rows, accumulated while converting).
fn decode_into(
    data: &[u8],
    width: usize,
    big_endian: bool,
    out: &mut [f64],
    sums: Option<&mut [f64]>,
) {
    let chunks = data.chunks_exact(width);
    match sums {
        None => match (width, big_endian) {
            (4, false) => {
                for (o, c) in out.iter_mut().zip(chunks) {
                    *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64;
                }
            }
            (8, false) => {
                for (o, c) in out.iter_mut().zip(chunks) {
                    *o = f64::from_le_bytes(c.try_into().expect("8 bytes"));
                }
            }
            _ => {
                for (o, c) in out.iter_mut().zip(chunks) {
                    *o = decode_float(c, width, big_endian);
                }
            }
        },
        Some(sums) => {
            let dim = sums.len();
            for (row, bytes) in out
                .chunks_exact_mut(dim)
                .zip(data.chunks_exact(dim * width))
            {
                let row_chunks = bytes.chunks_exact(width);
                match (width, big_endian) {
                    (4, false) => {
                        for ((o, c), s) in row.iter_mut().zip(row_chunks).zip(sums.iter_mut()) {
                            let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64;
                            *o = v;
                            *s += v;
                        }
                    }
                    _ => {
                        for ((o, c), s) in row.iter_mut().zip(row_chunks).zip(sums.iter_mut()) {
                            let v = decode_float(c, width, big_endian);
                            *o = v;
                            *s += v;
                        }
                    }
                }
            }
        }
    }
}

/// Mean and co-moment matrix of the rows of an [N, D] `.npy` file without keeping its rows:
/// the file is read once, and each batch of rows is converted to `f64` while its column sums
/// accumulate, centred in place and reduced by one symmetric product (see
/// [`RunningStats`](crate::stats::RunningStats)). Equal, up to rounding, to
/// `RunningStats::from_rows(&read_npy_rows(path)?)`; a 1-D array (one vector) is refused.
pub fn npy_stats(path: &Path) -> Result<crate::stats::RunningStats> {
    use crate::stats::RunningStats;
    let bytes = fs::read(path).map_err(io_err(path))?;
    let layout = parse_npy_header(&bytes).map_err(|m| format_err(path, m))?;
    match layout.shape.as_slice() {
        [_] => return Err(one_vector(path, &layout.shape)),
        [_, _] => {}
        other => {
            return Err(format_err(
                path,
                format!(
                    "expected an [N, D] matrix, found {} dimensions {other:?}",
                    other.len()
                ),
            ))
        }
    }
    let (n, dim) = (layout.shape[0], layout.shape[1]);
    if n == 0 || dim == 0 {
        return Err(format_err(
            path,
            format!("empty array {:?}: no embedding rows", layout.shape),
        ));
    }
    if layout.fortran {
        let rows = read_npy_rows(path)?;
        return Ok(RunningStats::from_rows(rows.view()));
    }
    let data = &bytes[layout.data_start..layout.data_start + layout.count * layout.width];
    Ok(crate::stats::moments_of_encoded_rows(
        data,
        n,
        dim,
        |bytes: &[u8], out: &mut [f64]| {
            decode_into(bytes, layout.width, layout.big_endian, out, None)
        },
        layout.width,
    ))
}

fn one_vector(path: &Path, shape: &[usize]) -> FadError {
    format_err(
        path,
        format!(
            "shape {shape:?} is one vector, not a set of embeddings: give an [N, D] matrix (N ≥ 2 rows) or a folder of files"
        ),
    )
}

/// The shape in a `.npy` file's header (the data are checked to be long enough, not read).
fn npy_shape(path: &Path) -> Result<Vec<usize>> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    parse_npy_header(&bytes)
        .map(|l| l.shape)
        .map_err(|m| format_err(path, m))
}

fn decode_float(c: &[u8], width: usize, big_endian: bool) -> f64 {
    let mut b = [0u8; 8];
    b[..width].copy_from_slice(c);
    if big_endian {
        b[..width].reverse();
    }
    match width {
        2 => half::f16::from_le_bytes([b[0], b[1]]).to_f64(),
        4 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
        _ => f64::from_le_bytes(b),
    }
}

/// The text after `'key':` up to the next top-level comma or closing brace.
fn header_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let at = header.find(&format!("'{key}'"))?;
    let rest = header[at + key.len() + 2..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim())
}

fn parse_shape(header: &str) -> std::result::Result<Vec<usize>, String> {
    let at = header
        .find("'shape'")
        .ok_or("no 'shape' in the .npy header")?;
    let open = header[at..]
        .find('(')
        .ok_or("bad 'shape' in the .npy header")?
        + at;
    let close = header[open..]
        .find(')')
        .ok_or("bad 'shape' in the .npy header")?
        + open;
    header[open + 1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad dimension `{s}` in 'shape'"))
        })
        .collect()
}

/// Rows of a `.npy` file: [N, D] as is, [D] as one row.
pub fn read_npy_rows(path: &Path) -> Result<Array2<f64>> {
    let a = read_npy(path)?;
    match a.ndim() {
        1 => {
            let d = a.len();
            Ok(a.into_shape_with_order((1, d)).expect("vector to one row"))
        }
        2 => Ok(a.into_dimensionality().expect("checked 2-D")),
        n => Err(format_err(
            path,
            format!(
                "expected an [N, D] matrix, found {n} dimensions {:?}",
                a.shape()
            ),
        )),
    }
}

/// Which tensor and layer of a safetensors file to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SafetensorsSelect {
    /// Tensor name; default: the only tensor, else `hidden_states`.
    pub tensor: Option<String>,
    /// Layer index for [layers+1, frames, D] tensors (0 = input to the first transformer layer).
    pub layer: Option<usize>,
}

/// Rows of a safetensors embedding file (see the module documentation for the shapes).
pub fn read_safetensors_rows(path: &Path, select: &SafetensorsSelect) -> Result<Array2<f64>> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| format_err(path, format!("not a safetensors file: {e}")))?;
    let name = match &select.tensor {
        Some(n) => n.clone(),
        None => {
            let names = st.names();
            if names.len() == 1 {
                names[0].to_string()
            } else if names.contains(&"hidden_states") {
                "hidden_states".to_string()
            } else {
                return Err(format_err(
                    path,
                    format!("several tensors ({}); name one", names.join(", ")),
                ));
            }
        }
    };
    let view = st.tensor(&name).map_err(|_| {
        format_err(
            path,
            format!("no tensor `{name}` (has: {})", st.names().join(", ")),
        )
    })?;
    let values = tensor_values(path, view.dtype(), view.data())?;
    let shape = view.shape().to_vec();
    match (shape.as_slice(), select.layer) {
        ([d], _) => Ok(Array2::from_shape_vec((1, *d), values).expect("shape checked by safetensors")),
        ([f, d], None | Some(0)) => Ok(Array2::from_shape_vec((*f, *d), values).expect("shape checked by safetensors")),
        ([l, f, d], Some(layer)) if layer < *l => {
            let per = f * d;
            Ok(Array2::from_shape_vec((*f, *d), values[layer * per..(layer + 1) * per].to_vec()).expect("slice of checked shape"))
        }
        ([l, _, _], Some(layer)) => Err(format_err(path, format!("layer {layer} out of range: `{name}` has {l} layers (0..{})", l - 1))),
        ([l, _, _], None) => Err(format_err(path, format!("`{name}` holds {l} layers [layers+1, frames, dim]: choose one with a layer index"))),
        (_, Some(layer)) if shape.len() == 2 => Err(format_err(path, format!("layer {layer} asked but `{name}` is [frames, dim]"))),
        _ => Err(format_err(path, format!("`{name}` has shape {shape:?}; expected [dim], [frames, dim] or [layers+1, frames, dim]"))),
    }
}

/// Float tensor bytes as f64 (the cache's reader, [`emobridge_store::float_values`]).
fn tensor_values(path: &Path, dtype: Dtype, data: &[u8]) -> Result<Vec<f64>> {
    emobridge_store::float_values(path, dtype, data).map_err(|e| match e {
        emobridge_store::StoreError::Format { path, reason } => FadError::Format {
            path,
            message: reason,
        },
        other => FadError::Format {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    })
}

/// Statistics from a folder with `mu.npy` + `cov.npy`.
pub fn read_stats_dir(dir: &Path) -> Result<Gaussian> {
    let mu = read_npy(&dir.join("mu.npy"))?;
    let cov_path = dir.join("cov.npy");
    let cov = read_npy(&cov_path)?;
    gaussian_from_arrays(mu, cov, &cov_path)
}

/// Statistics from an `.npz`: entries `mu`/`cov`, or `<name>.mu`/`<name>.cov` with `name` given
/// (or the only such pair in the file).
pub fn read_stats_npz(path: &Path, name: Option<&str>) -> Result<Gaussian> {
    let file = fs::File::open(path).map_err(io_err(path))?;
    let mut npz = ndarray_npy::NpzReader::new(file)
        .map_err(|e| format_err(path, format!("not an .npz archive: {e}")))?;
    let names: Vec<String> = npz
        .names()
        .map_err(|e| format_err(path, e.to_string()))?
        .into_iter()
        .map(|n| n.trim_end_matches(".npy").to_string())
        .collect();
    let prefix = match name {
        Some(n) => format!("{n}."),
        None if names.iter().any(|n| n == "mu") => String::new(),
        None => {
            let models: Vec<&str> = names.iter().filter_map(|n| n.strip_suffix(".mu")).collect();
            match models.as_slice() {
                [one] => format!("{one}."),
                [] => {
                    return Err(format_err(
                        path,
                        "no `mu`/`cov` or `<name>.mu`/`<name>.cov` entries",
                    ))
                }
                many => {
                    return Err(format_err(
                        path,
                        format!(
                            "holds statistics for {} embeddings; name one of: {}",
                            many.len(),
                            many.join(", ")
                        ),
                    ))
                }
            }
        }
    };
    let (mu_name, cov_name) = (format!("{prefix}mu"), format!("{prefix}cov"));
    if !names.contains(&mu_name) || !names.contains(&cov_name) {
        let models: Vec<&str> = names.iter().filter_map(|n| n.strip_suffix(".mu")).collect();
        return Err(format_err(
            path,
            format!(
                "no `{mu_name}`/`{cov_name}` entries (embeddings present: {})",
                models.join(", ")
            ),
        ));
    }
    let mut read = |entry: &str| -> Result<ArrayD<f64>> {
        match npz.by_name::<ndarray::OwnedRepr<f64>, IxDyn>(entry) {
            Ok(a) => Ok(a),
            Err(_) => npz
                .by_name::<ndarray::OwnedRepr<f32>, IxDyn>(entry)
                .map(|a| a.mapv(f64::from))
                .map_err(|e| format_err(path, format!("entry `{entry}`: {e}"))),
        }
    };
    let mu = read(&mu_name)?;
    let cov = read(&cov_name)?;
    gaussian_from_arrays(mu, cov, path)
}

fn gaussian_from_arrays(mu: ArrayD<f64>, cov: ArrayD<f64>, path: &Path) -> Result<Gaussian> {
    if mu.ndim() != 1 || cov.ndim() != 2 {
        return Err(format_err(
            path,
            format!(
                "mean must be [D] and covariance [D, D]; found {:?} and {:?}",
                mu.shape(),
                cov.shape()
            ),
        ));
    }
    let (r, c) = (cov.shape()[0], cov.shape()[1]);
    let mat = Mat::from_fn(r, c, |i, j| cov[[i, j]]);
    Gaussian::from_parts(
        mu.iter().copied().collect(),
        mat,
        None,
        &path.display().to_string(),
    )
}

/// Writes statistics as fadtk does (`mu.npy`, `cov.npy` in `dir`), float64.
pub fn write_stats_dir(dir: &Path, g: &Gaussian) -> Result<()> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mu = ndarray::Array1::from(g.mean.clone());
    let cov = Array2::from_shape_fn((g.dim(), g.dim()), |(i, j)| g.cov[(i, j)]);
    for (name, result) in [
        (
            "mu.npy",
            ndarray_npy::write_npy(dir.join("mu.npy.tmp"), &mu),
        ),
        (
            "cov.npy",
            ndarray_npy::write_npy(dir.join("cov.npy.tmp"), &cov),
        ),
    ] {
        let target = dir.join(name);
        result.map_err(|e| format_err(&target, e.to_string()))?;
        fs::rename(dir.join(format!("{name}.tmp")), &target).map_err(io_err(&target))?;
    }
    Ok(())
}

/// What a path on the command line holds.
#[derive(Debug, Clone)]
pub enum Loaded {
    /// Embedding rows, with the row range of each file (clip) they came from.
    Rows {
        rows: Array2<f64>,
        units: Vec<Range<usize>>,
        files: Vec<PathBuf>,
    },
    /// Precomputed statistics.
    Stats(Gaussian),
}

/// How [`load`] reads a path.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub select: SafetensorsSelect,
    /// For `.npz`: the `<name>` of `<name>.mu` / `<name>.cov`.
    pub stats_name: Option<String>,
    /// Reduce every file to its mean row (clip-level pooling) instead of keeping frames.
    pub pool: bool,
}

/// Reads an embedding file, a folder of them, or statistics; see the module documentation.
pub fn load(path: &Path, options: &LoadOptions) -> Result<Loaded> {
    if path.is_dir() {
        if path.join("mu.npy").is_file() && path.join("cov.npy").is_file() {
            return Ok(Loaded::Stats(read_stats_dir(path)?));
        }
        let mut files: Vec<PathBuf> = fs::read_dir(path)
            .map_err(io_err(path))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| matches!(extension(p).as_str(), "npy" | "safetensors"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(format_err(
                path,
                "folder holds no .npy or .safetensors files (nor mu.npy + cov.npy)",
            ));
        }
        return load_files(&files, options);
    }
    match extension(path).as_str() {
        "npz" => Ok(Loaded::Stats(read_stats_npz(
            path,
            options.stats_name.as_deref(),
        )?)),
        "npy" | "safetensors" => {
            if extension(path) == "npy" {
                let shape = npy_shape(path)?;
                if shape.len() == 1 {
                    return Err(one_vector(path, &shape));
                }
            }
            load_files(&[path.to_path_buf()], options)
        }
        "" if !path.exists() => Err(FadError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
        }),
        other => Err(format_err(
            path,
            format!("unknown extension `.{other}` (expected .npy, .safetensors, .npz or a folder)"),
        )),
    }
}

fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn load_files(files: &[PathBuf], options: &LoadOptions) -> Result<Loaded> {
    let mut blocks = Vec::with_capacity(files.len());
    for f in files {
        let rows = if extension(f) == "npy" {
            read_npy_rows(f)?
        } else {
            read_safetensors_rows(f, &options.select)?
        };
        if rows.nrows() == 0 || rows.ncols() == 0 {
            return Err(format_err(
                f,
                format!("empty array {:?}: no embedding rows", rows.shape()),
            ));
        }
        let rows = if options.pool { mean_row(&rows) } else { rows };
        blocks.push(rows);
    }
    let dim = blocks[0].ncols();
    if let Some((f, b)) = files.iter().zip(&blocks).find(|(_, b)| b.ncols() != dim) {
        return Err(format_err(
            f,
            format!(
                "rows have {} values, but {} has {dim}",
                b.ncols(),
                files[0].display()
            ),
        ));
    }
    let total: usize = blocks.iter().map(Array2::nrows).sum();
    let mut rows = Array2::zeros((total, dim));
    let mut units = Vec::with_capacity(blocks.len());
    let mut at = 0;
    for b in &blocks {
        rows.slice_mut(ndarray::s![at..at + b.nrows(), ..])
            .assign(b);
        units.push(at..at + b.nrows());
        at += b.nrows();
    }
    Ok(Loaded::Rows {
        rows,
        units,
        files: files.to_vec(),
    })
}

fn mean_row(rows: &Array2<f64>) -> Array2<f64> {
    let mean = rows.mean_axis(ndarray::Axis(0)).expect("at least one row");
    mean.insert_axis(ndarray::Axis(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy_bytes(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn reads_c_and_fortran_order_and_all_widths() {
        let vals = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0];
        let c8: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = parse_npy(&npy_bytes("<f8", false, "(2, 3)", &c8)).unwrap();
        assert_eq!(a.shape(), &[2, 3]);
        assert_eq!(a[[1, 0]], 4.0);
        let f = parse_npy(&npy_bytes("<f8", true, "(2, 3)", &c8)).unwrap();
        // Fortran order: column-major, so element [0, 1] is the third value.
        assert_eq!(f[[0, 1]], 3.0);
        assert_eq!(f[[1, 0]], 2.0);
        let f4: Vec<u8> = vals
            .iter()
            .flat_map(|v| (*v as f32).to_le_bytes())
            .collect();
        assert_eq!(
            parse_npy(&npy_bytes("<f4", false, "(6,)", &f4)).unwrap()[[5]],
            6.0
        );
        let f2: Vec<u8> = vals
            .iter()
            .flat_map(|v| half::f16::from_f64(*v).to_le_bytes())
            .collect();
        assert_eq!(
            parse_npy(&npy_bytes("<f2", false, "(3, 2)", &f2)).unwrap()[[2, 1]],
            6.0
        );
        let be: Vec<u8> = vals.iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(
            parse_npy(&npy_bytes(">f8", false, "(6,)", &be)).unwrap()[[1]],
            2.0
        );
    }

    #[test]
    fn rejects_integers_and_truncated_data() {
        let e = parse_npy(&npy_bytes("<i8", false, "(2,)", &[0u8; 16])).unwrap_err();
        assert!(e.contains("not a float"), "{e}");
        let e = parse_npy(&npy_bytes("<f8", false, "(4,)", &[0u8; 16])).unwrap_err();
        assert!(e.contains("too short"), "{e}");
        assert!(parse_npy(b"hello world").unwrap_err().contains("magic"));
    }

    #[test]
    fn npy_statistics_equal_the_statistics_of_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let rows = Array2::from_shape_fn((37, 5), |(i, j)| {
            50.0 + ((i * 13 + j * 7) % 17) as f64 / 3.0 - (j as f64) * 0.25
        });
        let f32_rows = rows.mapv(|v| v as f32);
        let p32 = dir.path().join("a.npy");
        let p64 = dir.path().join("b.npy");
        ndarray_npy::write_npy(&p32, &f32_rows).unwrap();
        ndarray_npy::write_npy(&p64, &rows).unwrap();
        for (path, want) in [(&p32, f32_rows.mapv(f64::from)), (&p64, rows.clone())] {
            let got = npy_stats(path).unwrap().gaussian().unwrap();
            let want = crate::stats::Gaussian::from_rows(want.view()).unwrap();
            assert_eq!(got.n, Some(37));
            for i in 0..5 {
                assert!((got.mean[i] - want.mean[i]).abs() < 1e-12);
                for j in 0..5 {
                    assert!((got.cov[(i, j)] - want.cov[(i, j)]).abs() < 1e-12);
                }
            }
        }
        // A vector and an empty matrix are refused with the file named.
        let vector = dir.path().join("v.npy");
        ndarray_npy::write_npy(&vector, &ndarray::Array1::<f32>::zeros(4)).unwrap();
        let e = npy_stats(&vector).unwrap_err().to_string();
        assert!(e.contains("v.npy") && e.contains("one vector"), "{e}");
        let empty = dir.path().join("e.npy");
        ndarray_npy::write_npy(&empty, &Array2::<f32>::zeros((0, 4))).unwrap();
        assert!(npy_stats(&empty).unwrap_err().to_string().contains("empty"));
    }
}
