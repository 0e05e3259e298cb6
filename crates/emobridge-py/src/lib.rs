//! The native half of the `emobridge` Python package (module `emobridge._native`).
//!
//! Every function here converts Python arguments into the library's types, calls one library
//! entry point with the GIL released (`Python::detach`), and converts the result back (numpy
//! arrays, lists, dicts as JSON text); errors become Python exceptions carrying the same one-line
//! message the command line prints. The Python half (`python/emobridge/`) adds pandas
//! DataFrames, the `opensmile`-compatible layout and the docstrings users read.

use std::path::{Path, PathBuf};

use emobridge::acoustic::compare::WindowConfig;
use emobridge::audio::{DecodeOptions, IntScaling, Mixdown};
use emobridge::fad::{compare_arrays, compare_sets, PairConfig, PairReport};
use emobridge::ssl::pretrained::{EmbedOptions, LoadOptions, Precision};
use emobridge::studies::descriptor_table::{
    describe_file, describe_files, describe_signal, Extracted, FeatureSet, Level, TableConfig,
};
use emobridge::studies::descriptors::ClipDescriptors;
use emobridge::studies::separability::SeparabilityConfig;
use emobridge::{EmbeddingCache, Manifest, PretrainedEncoder};
use numpy::{IntoPyArray, PyArray2, PyArray3, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::{
    PyFileNotFoundError, PyIsADirectoryError, PyOSError, PyRuntimeError, PyValueError,
};
use pyo3::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

// ---------------------------------------------------------------------------------------------
// Errors: one line, the exception class chosen from the error's type (never from its text).

/// The error and its sources as one line, each message once (as the CLI prints it).
fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !line.contains(&text) {
            line = format!("{line}: {text}");
        }
        source = s.source();
    }
    line
}

enum Kind {
    NotFound,
    IsDir,
    Os,
    Value,
    Runtime,
}

fn io_kind(e: &std::io::Error) -> Kind {
    match e.kind() {
        std::io::ErrorKind::NotFound => Kind::NotFound,
        std::io::ErrorKind::IsADirectory => Kind::IsDir,
        _ => Kind::Os,
    }
}

/// The exception class of one error in a chain, when its type decides it.
fn kind_of(e: &(dyn std::error::Error + 'static)) -> Option<Kind> {
    use emobridge::audio::AudioError as A;
    use emobridge::fad::FadError as F;
    use emobridge::ssl::SslError as S;
    if let Some(e) = e.downcast_ref::<A>() {
        return Some(match e {
            A::NotFound { .. } => Kind::NotFound,
            A::IsDirectory { .. } => Kind::IsDir,
            A::Io { source, .. } => io_kind(source),
            A::Resample { .. } | A::Write { .. } => Kind::Runtime,
            _ => Kind::Value,
        });
    }
    if let Some(e) = e.downcast_ref::<std::io::Error>() {
        return Some(io_kind(e));
    }
    if let Some(e) = e.downcast_ref::<F>() {
        return Some(match e {
            F::Io { source, .. } => io_kind(source),
            F::Eigen { .. } => Kind::Runtime,
            _ => Kind::Value,
        });
    }
    if e.is::<emobridge::acoustic::AcousticError>() {
        return Some(Kind::Value);
    }
    if let Some(e) = e.downcast_ref::<S>() {
        return match e {
            S::Io { source, .. } => Some(io_kind(source)),
            S::ModelNotFound(_) => Some(Kind::NotFound),
            S::Candle(_) => Some(Kind::Runtime),
            S::Audio(_) | S::Store(_) => None,
            _ => Some(Kind::Value),
        };
    }
    if let Some(e) = e.downcast_ref::<emobridge::corpus::manifest::ManifestError>() {
        use emobridge::corpus::manifest::ManifestError as M;
        return Some(match e {
            M::Io { source, .. } => io_kind(source),
            _ => Kind::Value,
        });
    }
    if let Some(e) = e.downcast_ref::<emobridge::store::StoreError>() {
        use emobridge::store::StoreError as St;
        return Some(match e {
            St::Io { source, .. } => io_kind(source),
            St::NoCache { .. } => Kind::NotFound,
            _ => Kind::Value,
        });
    }
    if let Some(e) = e.downcast_ref::<emobridge::studies::descriptors::DescriptorError>() {
        use emobridge::studies::descriptors::DescriptorError as D;
        return match e {
            D::EgemapsDeltas
            | D::NoInputs
            | D::ColumnsDiffer { .. }
            | D::AllFailed { .. }
            | D::Acoustic(_) => Some(Kind::Value),
            D::Audio(a) => kind_of(a),
            D::Store(s) => kind_of(s),
            _ => None,
        };
    }
    if let Some(e) = e.downcast_ref::<emobridge::studies::separability::SeparabilityError>() {
        use emobridge::studies::separability::SeparabilityError as P;
        return match e {
            P::Features(_) | P::Config(_) => Some(Kind::Value),
            _ => None,
        };
    }
    if let Some(e) = e.downcast_ref::<emobridge::studies::fad::FadStudyError>() {
        use emobridge::studies::fad::FadStudyError as P;
        return match e {
            P::Invalid(_) | P::NoData(_) => Some(Kind::Value),
            P::Fad(f) => kind_of(f),
            P::Store(s) => kind_of(s),
            _ => None,
        };
    }
    None
}

/// A library error as a Python exception with the CLI's one-line message.
fn py_err<E: std::error::Error + 'static>(err: E) -> PyErr {
    let message = one_line(&err);
    let mut kind = Kind::Runtime;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = cur {
        if let Some(k) = kind_of(e) {
            kind = k;
            break;
        }
        cur = e.source();
    }
    match kind {
        Kind::NotFound => PyFileNotFoundError::new_err(message),
        Kind::IsDir => PyIsADirectoryError::new_err(message),
        Kind::Os => PyOSError::new_err(message),
        Kind::Value => PyValueError::new_err(message),
        Kind::Runtime => PyRuntimeError::new_err(message),
    }
}

/// A serde config from its defaults overlaid with the given keyword settings (a JSON object);
/// unknown keys are refused, naming the known ones.
fn config_from<T: Serialize + DeserializeOwned + Default>(what: &str, json: &str) -> PyResult<T> {
    let given: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| PyValueError::new_err(format!("{what} settings: {e}")))?;
    let mut value = serde_json::to_value(T::default())
        .map_err(|e| PyRuntimeError::new_err(format!("{what} settings: {e}")))?;
    if let (Some(base), Some(over)) = (value.as_object_mut(), given.as_object()) {
        for (k, v) in over {
            if !base.contains_key(k) {
                let known: Vec<&str> = base.keys().map(String::as_str).collect();
                return Err(PyValueError::new_err(format!(
                    "{what}: unknown setting `{k}` (known: {})",
                    known.join(", ")
                )));
            }
            base.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(value)
        .map_err(|e| PyValueError::new_err(format!("{what} settings: {e}")))
}

fn to_json<T: Serialize>(value: &T) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Audio

/// load_audio(path, sr=None, mono=True, opensmile_scaling=False) -> (ndarray, int)
#[pyfunction]
#[pyo3(signature = (path, sr=None, mono=true, opensmile_scaling=false))]
fn load_audio<'py>(
    py: Python<'py>,
    path: PathBuf,
    sr: Option<u32>,
    mono: bool,
    opensmile_scaling: bool,
) -> PyResult<(Bound<'py, PyAny>, u32)> {
    let opts = DecodeOptions {
        target_rate: sr,
        mixdown: if mono { Mixdown::Mono } else { Mixdown::Keep },
        int_scaling: if opensmile_scaling {
            IntScaling::OpenSmile
        } else {
            IntScaling::PowerOfTwo
        },
    };
    let audio = py
        .detach(|| emobridge::audio::load(&path, &opts))
        .map_err(py_err)?;
    let rate = audio.sample_rate;
    if mono {
        return Ok((audio.into_mono().into_pyarray(py).into_any(), rate));
    }
    let (channels, len) = (audio.channels.len(), audio.len());
    let flat: Vec<f32> = audio.channels.into_iter().flatten().collect();
    Ok((numpy_array(py, (channels, len), flat)?.into_any(), rate))
}

/// A row-major buffer as a numpy array of `shape` (a shape that does not fit the buffer is a
/// bug of the binding, raised as RuntimeError).
fn numpy_array<'py, D: ndarray::Dimension>(
    py: Python<'py>,
    shape: impl Into<ndarray::StrideShape<D>>,
    flat: Vec<f32>,
) -> PyResult<Bound<'py, numpy::PyArray<f32, D>>> {
    let a = ndarray::Array::from_shape_vec(shape, flat)
        .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    Ok(a.into_pyarray(py))
}

/// write_wav(path, signal, sr, format="pcm16") — signal [samples] or [channels, samples], f32.
#[pyfunction]
#[pyo3(signature = (path, signal, sr, format="pcm16"))]
fn write_wav(
    py: Python<'_>,
    path: PathBuf,
    signal: &Bound<'_, PyAny>,
    sr: u32,
    format: &str,
) -> PyResult<()> {
    use emobridge::audio::wav::WavFormat;
    let format = match format {
        "pcm16" => WavFormat::Pcm16,
        "pcm24" => WavFormat::Pcm24,
        "float32" => WavFormat::Float32,
        other => {
            return Err(PyValueError::new_err(format!(
                "format `{other}`: expected pcm16, pcm24 or float32"
            )))
        }
    };
    let channels: Vec<Vec<f32>> = if let Ok(a) = signal.extract::<PyReadonlyArray1<f32>>() {
        vec![a.as_array().to_vec()]
    } else if let Ok(a) = signal.extract::<PyReadonlyArray2<f32>>() {
        a.as_array().outer_iter().map(|r| r.to_vec()).collect()
    } else {
        return Err(PyValueError::new_err(
            "signal: expected a float32 numpy array of shape [samples] or [channels, samples]",
        ));
    };
    py.detach(|| emobridge::audio::wav::write_wav(&path, &channels, sr, format))
        .map_err(py_err)
}

// ---------------------------------------------------------------------------------------------
// Descriptors

fn table_config(set: &str, level: &str, window_s: f64, hop_s: f64) -> PyResult<TableConfig> {
    let set = match set {
        "egemaps" => FeatureSet::Egemaps,
        "compare" => FeatureSet::Compare,
        other => {
            return Err(PyValueError::new_err(format!(
                "set `{other}`: expected egemaps or compare"
            )))
        }
    };
    let level = match level {
        "functionals" => Level::Functionals,
        "lld" => Level::Lld,
        "lld_deltas" => Level::LldDeltas,
        "windows" => Level::Windows,
        other => {
            return Err(PyValueError::new_err(format!(
                "level `{other}`: expected functionals, lld, lld_deltas or windows"
            )))
        }
    };
    let window = WindowConfig {
        window_s,
        hop_s,
        ..WindowConfig::default()
    };
    Ok(TableConfig {
        set,
        level,
        window,
        threads: None,
        // the Python calls describe one file or signal at a time; a batch reports every failure
        strict: false,
    })
}

/// (values [rows, columns] f32, names, frame times s or None for functionals, duration s,
/// sample rate Hz).
type Described<'py> = (
    Bound<'py, PyArray2<f32>>,
    Vec<String>,
    Option<Vec<f64>>,
    f64,
    u32,
);

fn described<'py>(
    py: Python<'py>,
    x: Extracted,
    seconds: f64,
    rate: u32,
) -> PyResult<Described<'py>> {
    match x {
        Extracted::Vector(v) => {
            let n = v.values.len();
            let a = numpy_array(py, (1, n), v.values)?;
            Ok((a, v.names, None, seconds, rate))
        }
        Extracted::Frames(f) => {
            let (rows, cols) = (f.values.len(), f.names.len());
            let flat: Vec<f32> = f.values.into_iter().flatten().collect();
            let a = numpy_array(py, (rows, cols), flat)?;
            Ok((a, f.names, Some(f.frame_times), seconds, rate))
        }
    }
}

/// Default window geometry of the `windows` level (seconds).
#[pyfunction]
fn default_window() -> (f64, f64) {
    let w = WindowConfig::default();
    (w.window_s, w.hop_s)
}

fn describe_with_rate(
    path: &Path,
    config: &TableConfig,
) -> Result<(Extracted, f64, u32), emobridge::studies::descriptors::DescriptorError> {
    let (x, seconds) = describe_file(path, config)?;
    let rate = emobridge::audio::probe_info(path)?.sample_rate;
    Ok((x, seconds, rate))
}

/// describe_file(path, set, level, window_s, hop_s) -> (values, names, times|None, seconds)
#[pyfunction]
fn describe_file_<'py>(
    py: Python<'py>,
    path: PathBuf,
    set: &str,
    level: &str,
    window_s: f64,
    hop_s: f64,
) -> PyResult<Described<'py>> {
    let config = table_config(set, level, window_s, hop_s)?;
    let (x, seconds, rate) = py
        .detach(|| describe_with_rate(&path, &config))
        .map_err(py_err)?;
    described(py, x, seconds, rate)
}

/// describe_signal(signal f32 [samples], sr, set, level, window_s, hop_s)
#[pyfunction]
fn describe_signal_<'py>(
    py: Python<'py>,
    signal: PyReadonlyArray1<'py, f32>,
    sr: u32,
    set: &str,
    level: &str,
    window_s: f64,
    hop_s: f64,
) -> PyResult<Described<'py>> {
    let config = table_config(set, level, window_s, hop_s)?;
    let samples = signal.as_array().to_vec();
    let seconds = samples.len() as f64 / sr.max(1) as f64;
    let x = py
        .detach(|| describe_signal(&samples, sr, &config))
        .map_err(py_err)?;
    described(py, x, seconds, sr)
}

/// describe_files(paths, set, level, window_s, hop_s, threads=None) -> list of Described;
/// the first failure raises (naming its file).
#[pyfunction]
#[pyo3(signature = (paths, set, level, window_s, hop_s, threads=None))]
fn describe_files_<'py>(
    py: Python<'py>,
    paths: Vec<PathBuf>,
    set: &str,
    level: &str,
    window_s: f64,
    hop_s: f64,
    threads: Option<usize>,
) -> PyResult<Vec<Described<'py>>> {
    let config = TableConfig {
        threads,
        ..table_config(set, level, window_s, hop_s)?
    };
    let results = py
        .detach(|| describe_files(&paths, &config))
        .map_err(py_err)?;
    let mut out = Vec::with_capacity(results.len());
    for (path, r) in paths.iter().zip(results) {
        let (x, seconds) = r.map_err(py_err)?;
        let rate = emobridge::audio::probe_info(path)
            .map_err(py_err)?
            .sample_rate;
        out.push(described(py, x, seconds, rate)?);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Encoders

/// A loaded SSL encoder (wav2vec2-family or MERT checkpoint folder, or ORG/NAME).
#[pyclass(module = "emobridge._native", frozen)]
struct Encoder {
    model: PretrainedEncoder,
    spec: String,
}

#[pymethods]
impl Encoder {
    #[new]
    #[pyo3(signature = (model, precision="f32"))]
    fn new(py: Python<'_>, model: String, precision: &str) -> PyResult<Self> {
        let precision = match precision {
            "f32" => Precision::F32,
            "bf16" => Precision::Bf16,
            other => {
                return Err(PyValueError::new_err(format!(
                    "precision `{other}`: expected f32 or bf16"
                )))
            }
        };
        let opts = LoadOptions {
            precision,
            ..LoadOptions::default()
        };
        let loaded = py
            .detach(|| PretrainedEncoder::load(&model, opts))
            .map_err(py_err)?;
        Ok(Encoder {
            model: loaded,
            spec: model,
        })
    }

    /// The model as given.
    #[getter]
    fn model(&self) -> String {
        self.spec.clone()
    }

    /// Sampling rate the model expects (inputs at other rates are resampled).
    #[getter]
    fn sample_rate(&self) -> u32 {
        self.model.preprocess().sampling_rate
    }

    /// Hidden states per clip (layers + 1).
    #[getter]
    fn num_states(&self) -> usize {
        self.model.num_states()
    }

    /// Frames per second of the hidden states.
    #[getter]
    fn frame_rate_hz(&self) -> f64 {
        self.model.frame_rate_hz()
    }

    /// embed(signal, sr) -> float32 [layers+1, frames, hidden]
    fn embed<'py>(
        &self,
        py: Python<'py>,
        signal: PyReadonlyArray1<'py, f32>,
        sr: u32,
    ) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let samples = signal.as_array().to_vec();
        let emb = py
            .detach(|| self.model.embed(&samples, sr, &EmbedOptions::default()))
            .map_err(py_err)?;
        embedding_array(py, emb)
    }

    /// embed_batch(signals, sr) -> list of float32 [layers+1, frames, hidden]
    fn embed_batch<'py>(
        &self,
        py: Python<'py>,
        signals: Vec<PyReadonlyArray1<'py, f32>>,
        sr: u32,
    ) -> PyResult<Vec<Bound<'py, PyArray3<f32>>>> {
        let clips: Vec<Vec<f32>> = signals.iter().map(|s| s.as_array().to_vec()).collect();
        let embs = py
            .detach(|| {
                let prepared = clips
                    .iter()
                    .map(|c| self.model.prepare(c, sr))
                    .collect::<Result<Vec<_>, _>>()?;
                self.model.embed_batch(&prepared, &EmbedOptions::default())
            })
            .map_err(py_err)?;
        embs.into_iter().map(|e| embedding_array(py, e)).collect()
    }
}

fn embedding_array(
    py: Python<'_>,
    emb: emobridge::ssl::embedding::ClipEmbedding,
) -> PyResult<Bound<'_, PyArray3<f32>>> {
    let (flat, shape) = emb.to_vec().map_err(py_err)?;
    numpy_array(py, (shape[0], shape[1], shape[2]), flat)
}

// ---------------------------------------------------------------------------------------------
// FAD

fn pair_config(inf: bool, bootstrap: usize, seed: u64, layer: Option<usize>) -> PairConfig {
    PairConfig {
        inf,
        bootstrap,
        seed,
        layer,
        ..PairConfig::default()
    }
}

/// fad_arrays(a [N, D] f64, b [M, D] f64, inf, bootstrap, seed) -> JSON report
#[pyfunction]
#[pyo3(signature = (a, b, inf=false, bootstrap=0, seed=0))]
fn fad_arrays(
    py: Python<'_>,
    a: PyReadonlyArray2<'_, f64>,
    b: PyReadonlyArray2<'_, f64>,
    inf: bool,
    bootstrap: usize,
    seed: u64,
) -> PyResult<String> {
    let (a, b) = (a.as_array().to_owned(), b.as_array().to_owned());
    let config = pair_config(inf, bootstrap, seed, None);
    let report: PairReport = py
        .detach(|| compare_arrays(("a", a), ("b", b), &config))
        .map_err(py_err)?;
    to_json(&report)
}

/// fad_paths(a, b, inf, bootstrap, seed, layer) -> JSON report (files as `emobridge fad A B`)
#[pyfunction]
#[pyo3(signature = (a, b, inf=false, bootstrap=0, seed=0, layer=None))]
fn fad_paths(
    py: Python<'_>,
    a: PathBuf,
    b: PathBuf,
    inf: bool,
    bootstrap: usize,
    seed: u64,
    layer: Option<usize>,
) -> PyResult<String> {
    let config = pair_config(inf, bootstrap, seed, layer);
    let report = py.detach(|| compare_sets(&a, &b, &config)).map_err(|e| {
        let err = py_err(e);
        // The CLI's context line: "A vs B: <reason>".
        prefix(py, err, &format!("{} vs {}", a.display(), b.display()))
    })?;
    to_json(&report)
}

/// The same exception with `context: ` in front of its message.
fn prefix(py: Python<'_>, err: PyErr, context: &str) -> PyErr {
    let message = format!("{context}: {}", err.value(py));
    let ty = err.get_type(py);
    match ty.call1((message,)) {
        Ok(value) => PyErr::from_value(value),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------------------
// Corpus, extraction and studies

/// synth(out, seed=7, quick=True, clips_per_cell=None) -> manifest path
#[pyfunction]
#[pyo3(signature = (out, seed=7, quick=true, clips_per_cell=None))]
fn synth(
    py: Python<'_>,
    out: PathBuf,
    seed: u64,
    quick: bool,
    clips_per_cell: Option<usize>,
) -> PyResult<PathBuf> {
    use emobridge::corpus::synth::{generate, SynthConfig};
    let mut cfg = if quick {
        SynthConfig::quick(seed)
    } else {
        SynthConfig {
            seed,
            ..SynthConfig::default()
        }
    };
    if let Some(n) = clips_per_cell {
        cfg.clips_per_cell = n;
    }
    let summary = py
        .detach(|| generate(&out, &cfg, &|_, _| {}))
        .map_err(py_err)?;
    Ok(summary.manifest_path)
}

fn read_manifest(py: Python<'_>, path: &Path) -> PyResult<Manifest> {
    py.detach(|| Manifest::read(path)).map_err(py_err)
}

/// extract(manifest, model, cache, tag, settings_json) -> JSON report
#[pyfunction]
fn extract(
    py: Python<'_>,
    manifest: PathBuf,
    model: String,
    cache: PathBuf,
    tag: String,
    settings: &str,
) -> PyResult<String> {
    let config: emobridge::ExtractConfig = config_from("extract", settings)?;
    let manifest = read_manifest(py, &manifest)?;
    let report = py
        .detach(|| -> Result<_, emobridge::ssl::SslError> {
            let encoder = PretrainedEncoder::load(&model, config.load_options())?;
            let cache = EmbeddingCache::open(&cache, &tag)?;
            emobridge::ssl::extract_manifest(
                &encoder,
                &model,
                &manifest,
                &cache,
                &config,
                &|_, _| {},
            )
        })
        .map_err(py_err)?;
    Ok(serde_json::json!({
        "in_shard": report.in_shard,
        "already_cached": report.already_cached,
        "extracted": report.extracted,
        "audio_seconds": report.audio_seconds,
        "failures": report.failures.len(),
    })
    .to_string())
}

/// run_probe(manifest, out, features, cache, model, settings_json) -> run folder
#[pyfunction]
#[pyo3(signature = (manifest, out, features=None, cache=None, model=None, settings="{}"))]
fn run_probe(
    py: Python<'_>,
    manifest: PathBuf,
    out: PathBuf,
    features: Option<&str>,
    cache: Option<PathBuf>,
    model: Option<String>,
    settings: &str,
) -> PyResult<PathBuf> {
    use emobridge::studies::separability::{probe, probe_descriptors, ProbeInput};
    let config: SeparabilityConfig = config_from("probe", settings)?;
    let manifest = read_manifest(py, &manifest)?;
    let none = |_: usize, _: usize| {};
    match (features, cache, model) {
        (None, Some(root), Some(tag)) => py.detach(|| {
            let cache = EmbeddingCache::open_existing(&root, &tag).map_err(py_err)?;
            let o = probe(
                &config,
                &manifest,
                ProbeInput::Cache { cache: &cache },
                &out,
                &none,
            )
            .map_err(py_err)?;
            Ok(o.run_dir)
        }),
        (Some(set), None, None) => {
            let set = match set {
                "egemaps" => ClipDescriptors::Egemaps,
                "compare" => ClipDescriptors::Compare,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "features `{other}`: expected egemaps or compare"
                    )))
                }
            };
            py.detach(|| {
                let (o, _failures) =
                    probe_descriptors(&config, &manifest, set, &out, &none).map_err(py_err)?;
                Ok(o.run_dir)
            })
        }
        _ => Err(PyValueError::new_err(
            "give features=\"egemaps\"|\"compare\", or cache=DIR and model=TAG",
        )),
    }
}

/// run_fad_study(manifest, cache, model, out, settings_json) -> run folder
#[pyfunction]
#[pyo3(signature = (manifest, cache, model, out, settings="{}"))]
fn run_fad_study(
    py: Python<'_>,
    manifest: PathBuf,
    cache: PathBuf,
    model: String,
    out: PathBuf,
    settings: &str,
) -> PyResult<PathBuf> {
    let config: emobridge::studies::fad::FadStudyConfig = config_from("fad study", settings)?;
    let manifest = read_manifest(py, &manifest)?;
    py.detach(|| {
        let cache = EmbeddingCache::open_existing(&cache, &model).map_err(py_err)?;
        let o = emobridge::studies::fad::run(&config, &manifest, &cache, &out).map_err(py_err)?;
        Ok(o.run_dir)
    })
}

/// run_demo(out, quick, seed, model) -> (run folder, report path)
#[pyfunction]
#[pyo3(signature = (out, quick=true, seed=7, model=None))]
fn run_demo(
    py: Python<'_>,
    out: PathBuf,
    quick: bool,
    seed: u64,
    model: Option<String>,
) -> PyResult<(PathBuf, PathBuf)> {
    let config = emobridge::studies::demo::DemoConfig {
        out: out.clone(),
        quick,
        seed,
        model,
        ..Default::default()
    };
    let outcome = py
        .detach(|| emobridge::studies::demo::run(&config, &|_, _, _| {}))
        .map_err(|e| prefix(py, py_err(e), &format!("demo in {}", out.display())))?;
    Ok((out, outcome.report))
}

/// The column names of a descriptor set (`egemaps`, `compare`) at `functionals`, `lld`
/// (ComParE: the 65 LLDs) or `lld_deltas` (ComParE: their 65 deltas), as openSMILE names them.
#[pyfunction]
fn feature_names(set: &str, level: &str) -> PyResult<Vec<String>> {
    use emobridge::acoustic::{compare, egemaps};
    let owned = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
    match (set, level) {
        ("egemaps", "functionals") => Ok(owned(&egemaps::FUNCTIONAL_NAMES)),
        ("egemaps", "lld") => Ok(owned(&egemaps::LLD_NAMES)),
        ("compare", "functionals") => Ok(compare::functional_names()),
        ("compare", "lld") => Ok(owned(&compare::LLD_NAMES)),
        ("compare", "lld_deltas") => Ok(compare::delta_names()),
        _ => Err(PyValueError::new_err(format!(
            "no {level} names for set `{set}` (egemaps: functionals, lld; compare: functionals, lld, lld_deltas)"
        ))),
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(load_audio, m)?)?;
    m.add_function(wrap_pyfunction!(write_wav, m)?)?;
    m.add_function(wrap_pyfunction!(default_window, m)?)?;
    m.add_function(wrap_pyfunction!(describe_file_, m)?)?;
    m.add_function(wrap_pyfunction!(describe_signal_, m)?)?;
    m.add_function(wrap_pyfunction!(describe_files_, m)?)?;
    m.add_function(wrap_pyfunction!(feature_names, m)?)?;
    m.add_function(wrap_pyfunction!(fad_arrays, m)?)?;
    m.add_function(wrap_pyfunction!(fad_paths, m)?)?;
    m.add_function(wrap_pyfunction!(synth, m)?)?;
    m.add_function(wrap_pyfunction!(extract, m)?)?;
    m.add_function(wrap_pyfunction!(run_probe, m)?)?;
    m.add_function(wrap_pyfunction!(run_fad_study, m)?)?;
    m.add_function(wrap_pyfunction!(run_demo, m)?)?;
    m.add_class::<Encoder>()?;
    Ok(())
}
