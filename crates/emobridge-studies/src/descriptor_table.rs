//! eGeMAPS v02 / ComParE-2016 descriptors of many files as one table with openSMILE's column
//! names, written as CSV or Parquet (`emobridge features`).
//!
//! Every file is analysed at its own sample rate with openSMILE's integer scaling (16-bit /
//! 32767), down-mixed to mono, in parallel over files. A file that cannot be read or analysed
//! gets one failure line and is left out; the others go on.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use emobridge_acoustic::compare::{self, WindowConfig, WindowSummariser};
use emobridge_acoustic::{egemaps, FeatureFrames, FeatureVector};
use emobridge_audio::IntScaling;
use emobridge_corpus::Manifest;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::descriptors::DescriptorError;
use crate::number_text;

/// Descriptor set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureSet {
    /// eGeMAPS v02: 25 LLDs, 88 functionals.
    Egemaps,
    /// ComParE-2016: 65 LLDs + 65 deltas, or the 6,373 functionals.
    Compare,
}

/// Time resolution of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Frame-wise descriptors every 10 ms (ComParE: 65 LLDs followed by their 65 deltas).
    Lld,
    /// One row of summary statistics per file (eGeMAPS: 88, ComParE: 6,373).
    Functionals,
    /// Mean and standard deviation of the LLDs (and ComParE deltas) over sliding windows.
    Windows,
    /// ComParE only: the 65 deltas as openSMILE's delta level holds them, two rows longer than
    /// the LLDs (its delta filter's flush rows; `compare::deltas`).
    #[serde(rename = "lld_deltas")]
    LldDeltas,
}

spelled!(
    FeatureSet,
    "descriptor set",
    Egemaps = "egemaps",
    Compare = "compare"
);
spelled!(
    Level,
    "level",
    Lld = "lld",
    Functionals = "functionals",
    Windows = "windows",
    LldDeltas = "lld_deltas"
);

/// Settings of [`extract_table`]; `Default` gives eGeMAPS functionals and the documented
/// window geometry (1 s windows, 0.5 s hop, partial windows kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TableConfig {
    pub set: FeatureSet,
    pub level: Level,
    /// Window geometry of `Level::Windows`.
    pub window: WindowConfig,
    /// Worker threads (default none: all cores).
    pub threads: Option<usize>,
    /// Stop at the first file that fails (default false: skip it, list it, go on).
    pub strict: bool,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            set: FeatureSet::Egemaps,
            level: Level::Functionals,
            window: WindowConfig::default(),
            threads: None,
            strict: false,
        }
    }
}

/// One input: how it is shown in the `file` column and where it is read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub label: String,
    pub path: PathBuf,
    /// The manifest's clip id (None for FILE arguments).
    pub id: Option<String>,
}

/// The files as given, then every clip of the manifest (labelled by its manifest path).
pub fn inputs(files: &[PathBuf], manifest: Option<&Manifest>) -> Vec<Input> {
    let mut out: Vec<Input> = files
        .iter()
        .map(|p| Input {
            label: p.display().to_string(),
            path: p.clone(),
            id: None,
        })
        .collect();
    if let Some(m) = manifest {
        out.extend(m.records.iter().map(|r| Input {
            label: r.path.clone(),
            path: m.audio_path(r),
            id: Some(r.id.clone()),
        }));
    }
    out
}

/// One table row: the file, the frame (or window start) time in seconds, the values.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub file: String,
    pub time: f64,
    pub values: Vec<f32>,
}

/// The assembled output: `file`, `frameTime` unless functionals, then the feature columns.
#[derive(Debug, Clone, PartialEq)]
pub struct DescriptorTable {
    pub columns: Vec<String>,
    pub with_time: bool,
    pub rows: Vec<Row>,
}

/// What [`extract_table`] produced.
#[derive(Debug, Clone)]
pub struct TableOutcome {
    pub table: DescriptorTable,
    /// Files that made it into the table.
    pub files: usize,
    /// One line per failed file, naming it.
    pub failures: Vec<String>,
    /// The index into the inputs of each failure, in the order of `failures`.
    pub failed_inputs: Vec<usize>,
}

/// Descriptors of one file or signal: frames (LLDs, windows) or one vector (functionals).
#[derive(Debug, Clone, PartialEq)]
pub enum Extracted {
    Frames(FeatureFrames),
    Vector(FeatureVector),
}

impl Extracted {
    /// The column names.
    pub fn names(&self) -> &[String] {
        match self {
            Extracted::Frames(f) => &f.names,
            Extracted::Vector(v) => &v.names,
        }
    }
}

/// Computes the descriptors of every input into one table. `progress(done, total)` is called as
/// files finish. Fails on a refused combination (ComParE functionals), no input, or when every
/// file failed.
pub fn extract_table(
    config: &TableConfig,
    inputs: &[Input],
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<TableOutcome, DescriptorError> {
    if inputs.is_empty() {
        return Err(DescriptorError::NoInputs);
    }
    // A set/level pair that exists for no file is the caller's mistake: one error up front,
    // not the same failure once per input.
    if (config.set, config.level) == (FeatureSet::Egemaps, Level::LldDeltas) {
        return Err(DescriptorError::EgemapsDeltas);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.threads.unwrap_or(0))
        .build()
        .map_err(DescriptorError::ThreadPool)?;
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let results: Vec<Option<Result<Extracted, String>>> = pool.install(|| {
        inputs
            .par_iter()
            .map(|input| {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                let out = extract_one(&input.path, config).map_err(|e| match e {
                    // Audio errors already name the file; prefix the others with it.
                    DescriptorError::Audio(_) => e.to_string(),
                    other => format!("{}: {other}", input.label),
                });
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, inputs.len());
                if out.is_err() && config.strict {
                    stop.store(true, Ordering::Relaxed);
                }
                Some(out)
            })
            .collect()
    });
    if config.strict {
        // The first failure in input order among those that ran.
        if let Some(Err(first)) = results.iter().flatten().find(|r| r.is_err()) {
            return Err(DescriptorError::Strict {
                first: first.clone(),
            });
        }
    }
    let results: Vec<Result<Extracted, String>> = results.into_iter().flatten().collect();
    let mut failures = Vec::new();
    let mut failed_inputs = Vec::new();
    let mut ok: Vec<(&Input, Extracted)> = Vec::new();
    for (index, (input, r)) in inputs.iter().zip(results).enumerate() {
        match r {
            Ok(x) => ok.push((input, x)),
            Err(line) => {
                tracing::error!("{line}");
                failures.push(line);
                failed_inputs.push(index);
            }
        }
    }
    if ok.is_empty() {
        return Err(DescriptorError::AllFailed {
            count: inputs.len(),
        });
    }
    let table = assemble(&ok, config.level)?;
    Ok(TableOutcome {
        table,
        files: ok.len(),
        failures,
        failed_inputs,
    })
}

/// Decodes one file the way SMILExtract reads it and computes the requested descriptors.
fn extract_one(path: &Path, config: &TableConfig) -> Result<Extracted, DescriptorError> {
    let (out, _) = describe_file(path, config)?;
    if let Extracted::Frames(f) = &out {
        if f.is_empty() {
            tracing::warn!(
                "{}: no frames (shorter than one 60 ms analysis frame); no rows written",
                path.display()
            );
        }
    }
    Ok(out)
}

/// The descriptors `config` asks for (set and level; `threads` is not used) of one file, decoded
/// as SMILExtract reads it (mono, own rate, 16-bit / 32767), with the file's duration in seconds.
pub fn describe_file(
    path: &Path,
    config: &TableConfig,
) -> Result<(Extracted, f64), DescriptorError> {
    // eGeMAPS functionals in one streaming pass: memory bounded by the analysis windows, not
    // the file length.
    if (config.set, config.level) == (FeatureSet::Egemaps, Level::Functionals) {
        let (v, seconds) = crate::descriptors::egemaps_functionals_of_file(path)?;
        return Ok((Extracted::Vector(v), seconds));
    }
    // Mono straight from the decoder, block by block: the same samples as `load` with
    // `Mixdown::Mono`, without holding every channel of a long file first.
    let mut samples = Vec::new();
    let info = emobridge_audio::stream_mono(path, IntScaling::OpenSmile, |block, _| {
        samples.extend_from_slice(block)
    })?;
    let seconds = info.frames as f64 / info.sample_rate as f64;
    Ok((
        describe_signal(&samples, info.sample_rate, config)?,
        seconds,
    ))
}

/// [`describe_file`] of every path, in parallel over files (`config.threads` workers, default
/// all cores); one result per path, in order.
pub fn describe_files(
    paths: &[PathBuf],
    config: &TableConfig,
) -> Result<Vec<Result<(Extracted, f64), DescriptorError>>, DescriptorError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.threads.unwrap_or(0))
        .build()
        .map_err(DescriptorError::ThreadPool)?;
    Ok(pool.install(|| paths.par_iter().map(|p| describe_file(p, config)).collect()))
}

/// The descriptors `config` asks for of a mono signal at `rate` Hz (samples in openSMILE's
/// scaling).
pub fn describe_signal(
    samples: &[f32],
    rate: u32,
    config: &TableConfig,
) -> Result<Extracted, DescriptorError> {
    let window = &config.window;
    let out = match (config.set, config.level) {
        (FeatureSet::Compare, Level::Lld) => {
            Extracted::Frames(compare::lld_with_deltas(samples, rate)?)
        }
        (FeatureSet::Compare, Level::Windows) => {
            Extracted::Frames(compare::windows(samples, rate, window)?)
        }
        (FeatureSet::Compare, Level::Functionals) => {
            Extracted::Vector(compare::functionals(samples, rate)?)
        }
        (FeatureSet::Compare, Level::LldDeltas) => {
            Extracted::Frames(compare::deltas(samples, rate)?)
        }
        (FeatureSet::Egemaps, Level::LldDeltas) => return Err(DescriptorError::EgemapsDeltas),
        (FeatureSet::Egemaps, Level::Lld) => Extracted::Frames(egemaps::lld(samples, rate)?),
        (FeatureSet::Egemaps, Level::Functionals) => {
            Extracted::Vector(egemaps::functionals(samples, rate)?)
        }
        (FeatureSet::Egemaps, Level::Windows) => Extracted::Frames(compare::summarise_windows(
            &egemaps::lld(samples, rate)?,
            window,
        )?),
    };
    Ok(out)
}

/// What [`write_table`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenTable {
    /// Feature columns (without `file` and `frameTime`).
    pub columns: usize,
    pub rows: usize,
    /// Files that made it into the table.
    pub files: usize,
    /// One line per failed file, naming it.
    pub failures: Vec<String>,
    /// The index into the inputs of each failure, in the order of `failures`.
    pub failed_inputs: Vec<usize>,
}

/// Computes the descriptors of every input and writes them to `out` (Parquet when it ends in
/// `.parquet`, else CSV), atomically, with the same failure rules as [`extract_table`] and the
/// same bytes (CSV) or values (Parquet) as writing its table.
///
/// LLD and window rows are written as they are produced, without holding a file's signal or
/// its rows: each file is decoded block by block into the streaming extractor
/// ([`compare::CompareStream`], [`egemaps::EgemapsStream`], [`WindowSummariser`]), whose rows
/// go to a spool file beside `out` (files run in parallel and one may fail half-way, so rows
/// reach the table only once their file is complete); the spools are then appended to the
/// table in input order (CSV rows, Parquet row groups of [`PARQUET_ROW_GROUP`] rows) and
/// removed. Functionals (one row per file) are computed in memory and written at once.
pub fn write_table(
    config: &TableConfig,
    inputs: &[Input],
    out: &Path,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<WrittenTable, DescriptorError> {
    // Functionals are one row per file and the delta level is a compatibility view for the
    // Python drop-in: both are built in memory; LLD and window rows stream.
    if matches!(config.level, Level::Functionals | Level::LldDeltas) {
        let o = extract_table(config, inputs, progress)?;
        o.table.write(out)?;
        return Ok(WrittenTable {
            columns: o.table.columns.len(),
            rows: o.table.rows.len(),
            files: o.files,
            failures: o.failures,
            failed_inputs: o.failed_inputs,
        });
    }
    if inputs.is_empty() {
        return Err(DescriptorError::NoInputs);
    }
    if config.level == Level::Windows {
        config.window.validate()?;
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.threads.unwrap_or(0))
        .build()
        .map_err(DescriptorError::ThreadPool)?;
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|source| DescriptorError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let spool = Spool::create(out)?;
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let results: Vec<Option<Result<usize, String>>> = pool.install(|| {
        inputs
            .par_iter()
            .enumerate()
            .map(|(i, input)| {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                let r = spool.write(i, &input.path, config).map_err(|e| match e {
                    DescriptorError::Audio(_) => e.to_string(),
                    other => format!("{}: {other}", input.label),
                });
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, inputs.len());
                if r.is_err() && config.strict {
                    stop.store(true, Ordering::Relaxed);
                }
                Some(r)
            })
            .collect()
    });
    if config.strict {
        if let Some(Err(first)) = results.iter().flatten().find(|r| r.is_err()) {
            return Err(DescriptorError::Strict {
                first: first.clone(),
            });
        }
    }
    let mut written = WrittenTable {
        columns: frame_columns(config.set, config.level).len(),
        rows: 0,
        files: 0,
        failures: Vec::new(),
        failed_inputs: Vec::new(),
    };
    let mut ok = Vec::new();
    for (index, r) in results.into_iter().enumerate() {
        match r {
            Some(Ok(rows)) => ok.push((index, rows)),
            Some(Err(line)) => {
                tracing::error!("{line}");
                written.failures.push(line);
                written.failed_inputs.push(index);
            }
            None => {}
        }
    }
    if ok.is_empty() {
        return Err(DescriptorError::AllFailed {
            count: inputs.len(),
        });
    }
    let columns = frame_columns(config.set, config.level);
    let mut sink = TableSink::create(out, &columns)?;
    for &(index, rows) in &ok {
        spool.copy_into(index, &inputs[index].label, columns.len(), &mut sink)?;
        written.rows += rows;
    }
    sink.finish()?;
    written.files = ok.len();
    Ok(written)
}

/// Rows of a Parquet row group written by [`write_table`].
pub const PARQUET_ROW_GROUP: usize = 16_384;

/// The feature columns of frame-wise output (LLD or windows) of `set`.
pub fn frame_columns(set: FeatureSet, level: Level) -> Vec<String> {
    let lld: Vec<String> = match set {
        FeatureSet::Egemaps => egemaps::LLD_NAMES.iter().map(|s| s.to_string()).collect(),
        FeatureSet::Compare => compare::LLD_NAMES
            .iter()
            .map(|s| s.to_string())
            .chain(compare::delta_names())
            .collect(),
    };
    match level {
        Level::Windows => compare::windows::window_names(&lld),
        _ => lld,
    }
}

/// The LLD or window rows of one file, handed to `out(time, row)` as they are produced (the
/// file decoded block by block as SMILExtract reads it: mono, own rate, 16-bit / 32767);
/// returns the number of rows. Equal to [`describe_file`]'s frames.
pub fn stream_file_frames(
    path: &Path,
    config: &TableConfig,
    out: &mut dyn FnMut(f64, &[f32]),
) -> Result<usize, DescriptorError> {
    let mut summariser = match config.level {
        Level::Windows => Some(WindowSummariser::new(&config.window)?),
        Level::Lld => None,
        Level::Functionals | Level::LldDeltas => return Err(DescriptorError::NoFrames),
    };
    let mut rows = 0usize;
    let mut lld_rows = 0usize;
    {
        let mut put = |t: f64, v: &[f32]| {
            lld_rows += 1;
            match &mut summariser {
                Some(s) => s.push(t, v, &mut |t, w| {
                    rows += 1;
                    out(t, w)
                }),
                None => {
                    rows += 1;
                    out(t, v)
                }
            }
        };
        match config.set {
            FeatureSet::Compare => {
                let mut stream = None;
                let mut failed = None;
                emobridge_audio::stream_mono(path, IntScaling::OpenSmile, |block, rate| {
                    if failed.is_some() {
                        return;
                    }
                    if let Ok(s) = stream.get_or_insert_with(|| compare::CompareStream::new(rate)) {
                        if let Err(e) = s.push(block, &mut put) {
                            failed = Some(e);
                        }
                    }
                })?;
                if let Some(e) = failed {
                    return Err(e.into());
                }
                // stream_mono succeeds only after delivering at least one sample
                stream.ok_or(DescriptorError::NoFrames)??.finish(&mut put)?;
            }
            FeatureSet::Egemaps => {
                let mut stream = None;
                emobridge_audio::stream_mono(path, IntScaling::OpenSmile, |block, rate| {
                    if let Ok(s) = stream.get_or_insert_with(|| egemaps::EgemapsStream::new(rate)) {
                        s.push(block);
                    }
                })?;
                stream
                    .ok_or(DescriptorError::NoFrames)??
                    .finish_lld_rows(&mut put)?;
            }
        }
    }
    if lld_rows == 0 {
        tracing::warn!(
            "{}: no frames (shorter than one 60 ms analysis frame); no rows written",
            path.display()
        );
    }
    if let Some(s) = summariser {
        if lld_rows > 0 {
            s.finish(&mut |t, w| {
                rows += 1;
                out(t, w)
            })?;
        }
    }
    Ok(rows)
}

/// Removes the spool folders that killed runs left beside `out` (`.<name>.spool-<pid>` whose
/// process is gone); a live writer's spool is left alone. Best effort: a folder that cannot be
/// removed stays and is reported at debug level.
fn remove_dead_spools(parent: &Path, name: &str) {
    let prefix = format!(".{name}.spool-");
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !emobridge_store::claim::pid_alive(pid) {
            if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                tracing::debug!("cannot remove stale spool {}: {e}", entry.path().display());
            }
        }
    }
}

/// One spool file per input beside the table (hidden, removed when dropped): the rows of one
/// file as little-endian `f64` time then `f32` values.
struct Spool {
    dir: PathBuf,
}

impl Spool {
    fn create(out: &Path) -> Result<Spool, DescriptorError> {
        let name = out.file_name().unwrap_or_default().to_string_lossy();
        let parent = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        remove_dead_spools(parent, &name);
        let dir = parent.join(format!(".{name}.spool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|source| DescriptorError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Spool { dir })
    }

    fn path(&self, index: usize) -> PathBuf {
        self.dir.join(format!("{index}.rows"))
    }

    /// Streams input `index` into its spool file; returns its number of rows.
    fn write(
        &self,
        index: usize,
        audio: &Path,
        config: &TableConfig,
    ) -> Result<usize, DescriptorError> {
        use std::io::Write;
        let path = self.path(index);
        let io = |source| DescriptorError::Io {
            path: path.clone(),
            source,
        };
        let file = std::fs::File::create(&path).map_err(io)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 16, file);
        let mut failed = None;
        let rows = stream_file_frames(audio, config, &mut |t, v| {
            if failed.is_some() {
                return;
            }
            let r = w
                .write_all(&t.to_le_bytes())
                .and_then(|()| v.iter().try_for_each(|x| w.write_all(&x.to_le_bytes())));
            if let Err(e) = r {
                failed = Some(e);
            }
        });
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                drop(w);
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        if let Some(e) = failed {
            return Err(io(e));
        }
        w.flush().map_err(io)?;
        Ok(rows)
    }

    /// Appends the rows of input `index` to the table and removes its spool file.
    fn copy_into(
        &self,
        index: usize,
        label: &str,
        n_values: usize,
        sink: &mut TableSink,
    ) -> Result<(), DescriptorError> {
        use std::io::Read;
        let path = self.path(index);
        let io = |source| DescriptorError::Io {
            path: path.clone(),
            source,
        };
        let file = std::fs::File::open(&path).map_err(io)?;
        let mut r = std::io::BufReader::with_capacity(1 << 16, file);
        let mut bytes = vec![0u8; 8 + 4 * n_values];
        let mut values = vec![0.0f32; n_values];
        loop {
            match r.read_exact(&mut bytes) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(io(e)),
            }
            let t = f64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
            for (v, b) in values.iter_mut().zip(bytes[8..].chunks_exact(4)) {
                *v = f32::from_le_bytes(b.try_into().expect("4 bytes"));
            }
            sink.row(label, t, &values)?;
        }
        drop(r);
        std::fs::remove_file(&path).map_err(io)?;
        Ok(())
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The table being written (a hidden temporary file beside it, renamed into place by
/// [`TableSink::finish`]).
struct TableSink {
    out: PathBuf,
    tmp: PathBuf,
    /// None once finished.
    kind: Option<SinkKind>,
}

enum SinkKind {
    /// Rows written as bytes: the header and the `file` field escaped by the `csv` crate (the
    /// in-memory table's writer), the numbers as [`number_text`](crate::number_text) lays them
    /// out (never quoted), so the bytes equal [`DescriptorTable::write`]'s.
    Csv {
        writer: std::io::BufWriter<std::fs::File>,
        line: Vec<u8>,
        /// The last `file` value and its escaped bytes.
        label: (String, Vec<u8>),
    },
    Parquet {
        writer: parquet::arrow::ArrowWriter<std::fs::File>,
        schema: std::sync::Arc<arrow::datatypes::Schema>,
        files: Vec<String>,
        times: Vec<f64>,
        columns: Vec<Vec<f32>>,
    },
}

impl TableSink {
    fn create(out: &Path, columns: &[String]) -> Result<TableSink, DescriptorError> {
        let name = out.file_name().unwrap_or_default().to_string_lossy();
        let tmp = out.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let fail = |reason: String| DescriptorError::Write {
            path: out.to_path_buf(),
            reason,
        };
        let file = std::fs::File::create(&tmp).map_err(|e| fail(e.to_string()))?;
        let is_parquet = out
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
        let kind = if is_parquet {
            use arrow::datatypes::{DataType, Field, Schema};
            let mut fields = vec![
                Field::new("file", DataType::Utf8, false),
                Field::new("frameTime", DataType::Float64, false),
            ];
            fields.extend(
                columns
                    .iter()
                    .map(|n| Field::new(n, DataType::Float32, false)),
            );
            let schema = std::sync::Arc::new(Schema::new(fields));
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                .build();
            let writer = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(props))
                .map_err(|e| fail(e.to_string()))?;
            SinkKind::Parquet {
                writer,
                schema,
                files: Vec::new(),
                times: Vec::new(),
                columns: vec![Vec::new(); columns.len()],
            }
        } else {
            use std::io::Write;
            let mut writer = std::io::BufWriter::with_capacity(1 << 16, file);
            let header = ["file", "frameTime"]
                .into_iter()
                .chain(columns.iter().map(String::as_str));
            let mut h = csv::Writer::from_writer(Vec::new());
            h.write_record(header).map_err(|e| fail(e.to_string()))?;
            let h = h.into_inner().map_err(|e| fail(e.to_string()))?;
            writer.write_all(&h).map_err(|e| fail(e.to_string()))?;
            SinkKind::Csv {
                writer,
                line: Vec::new(),
                label: (String::new(), Vec::new()),
            }
        };
        Ok(TableSink {
            out: out.to_path_buf(),
            tmp,
            kind: Some(kind),
        })
    }

    fn fail(&self, reason: String) -> DescriptorError {
        DescriptorError::Write {
            path: self.out.clone(),
            reason,
        }
    }

    /// One row, formatted as [`DescriptorTable::write`] formats it.
    fn row(&mut self, file: &str, time: f64, values: &[f32]) -> Result<(), DescriptorError> {
        let r = match self.kind.as_mut().expect("an unfinished table") {
            SinkKind::Csv {
                writer,
                line,
                label,
            } => (|| {
                use std::io::Write;
                if label.0 != file || label.1.is_empty() {
                    *label = (file.to_string(), csv_field(file)?);
                }
                line.clear();
                line.extend_from_slice(&label.1);
                line.push(b',');
                number_text::push_f64(line, round_time(time));
                for &v in values {
                    line.push(b',');
                    number_text::push_f32(line, v);
                }
                line.push(b'\n');
                writer.write_all(line).map_err(|e| e.to_string())
            })(),
            SinkKind::Parquet {
                files,
                times,
                columns,
                ..
            } => {
                files.push(file.to_string());
                times.push(round_time(time));
                for (c, &v) in columns.iter_mut().zip(values) {
                    c.push(v);
                }
                if times.len() >= PARQUET_ROW_GROUP {
                    self.flush_row_group()
                } else {
                    Ok(())
                }
            }
        };
        r.map_err(|reason| self.fail(reason))
    }

    /// Writes the buffered Parquet rows as one row group.
    fn flush_row_group(&mut self) -> Result<(), String> {
        use arrow::array::{ArrayRef, Float32Array, Float64Array, StringArray};
        use std::sync::Arc;
        let Some(SinkKind::Parquet {
            writer,
            schema,
            files,
            times,
            columns,
        }) = &mut self.kind
        else {
            return Ok(());
        };
        if times.is_empty() {
            return Ok(());
        }
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(files.iter())),
            Arc::new(Float64Array::from(std::mem::take(times))),
        ];
        arrays.extend(
            columns
                .iter_mut()
                .map(|c| Arc::new(Float32Array::from(std::mem::take(c))) as ArrayRef),
        );
        files.clear();
        let batch = arrow::record_batch::RecordBatch::try_new(schema.clone(), arrays)
            .map_err(|e| e.to_string())?;
        writer.write(&batch).map_err(|e| e.to_string())?;
        writer.flush().map_err(|e| e.to_string())
    }

    /// Completes the table, syncs it and renames it into place.
    fn finish(mut self) -> Result<(), DescriptorError> {
        self.flush_row_group().map_err(|r| self.fail(r))?;
        let kind = self.kind.take().expect("an unfinished table");
        let file = match kind {
            SinkKind::Csv { writer, .. } => writer.into_inner().map_err(|e| e.to_string()),
            SinkKind::Parquet { writer, .. } => writer.into_inner().map_err(|e| e.to_string()),
        }
        .map_err(|r| self.fail(r))?;
        file.sync_all().map_err(|e| self.fail(e.to_string()))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.out).map_err(|e| self.fail(e.to_string()))
    }
}

impl Drop for TableSink {
    fn drop(&mut self) {
        // not finished (an error on the way): leave no temporary file behind
        if self.kind.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn assemble(
    done: &[(&Input, Extracted)],
    level: Level,
) -> Result<DescriptorTable, DescriptorError> {
    let columns = done[0].1.names().to_vec();
    let mut rows = Vec::new();
    for (input, x) in done {
        if x.names() != columns.as_slice() {
            return Err(DescriptorError::ColumnsDiffer {
                label: input.label.clone(),
            });
        }
        match x {
            Extracted::Frames(f) => {
                for (t, v) in f.frame_times.iter().zip(&f.values) {
                    rows.push(Row {
                        file: input.label.clone(),
                        time: *t,
                        values: v.clone(),
                    });
                }
            }
            Extracted::Vector(v) => rows.push(Row {
                file: input.label.clone(),
                time: 0.0,
                values: v.values.clone(),
            }),
        }
    }
    Ok(DescriptorTable {
        columns,
        with_time: level != Level::Functionals,
        rows,
    })
}

/// The bytes of `text` as the `csv` crate writes it as the first of several fields (quoted
/// only when it must be).
fn csv_field(text: &str) -> Result<Vec<u8>, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([text, ""]).map_err(|e| e.to_string())?;
    let mut bytes = w.into_inner().map_err(|e| e.to_string())?;
    // drop the empty second field and the record terminator: `,` and `\n`
    bytes.truncate(bytes.len() - 2);
    Ok(bytes)
}

/// Frame times are `i · hop / sr`; print them without floating-point noise (µs resolution).
fn round_time(t: f64) -> f64 {
    (t * 1e6).round() / 1e6
}

impl DescriptorTable {
    pub fn header(&self) -> Vec<String> {
        let mut h = vec!["file".to_string()];
        if self.with_time {
            h.push("frameTime".to_string());
        }
        h.extend(self.columns.iter().cloned());
        h
    }

    /// Writes the table atomically: Parquet (zstd) when `out` ends in `.parquet`, else CSV.
    pub fn write(&self, out: &Path) -> Result<(), DescriptorError> {
        if let Some(dir) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| DescriptorError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let is_parquet = out
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
        let bytes = if is_parquet {
            self.parquet_bytes()
        } else {
            self.csv_bytes()
        }
        .map_err(|reason| DescriptorError::Write {
            path: out.to_path_buf(),
            reason,
        })?;
        Ok(emobridge_store::write_atomic(out, &bytes)?)
    }

    fn csv_bytes(&self) -> Result<Vec<u8>, String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(self.header()).map_err(|e| e.to_string())?;
        // one text buffer for every value; the text is `Display`'s (see `number_text`)
        let mut text = Vec::new();
        for row in &self.rows {
            w.write_field(&row.file).map_err(|e| e.to_string())?;
            if self.with_time {
                text.clear();
                number_text::push_f64(&mut text, round_time(row.time));
                w.write_field(&text).map_err(|e| e.to_string())?;
            }
            for &v in &row.values {
                text.clear();
                number_text::push_f32(&mut text, v);
                w.write_field(&text).map_err(|e| e.to_string())?;
            }
            w.write_record(None::<&[u8]>).map_err(|e| e.to_string())?;
        }
        w.into_inner().map_err(|e| e.to_string())
    }

    fn parquet_bytes(&self) -> Result<Vec<u8>, String> {
        use arrow::array::{ArrayRef, Float32Array, Float64Array, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        use arrow::record_batch::RecordBatch;
        use std::sync::Arc;

        let mut fields = vec![Field::new("file", DataType::Utf8, false)];
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(
            self.rows.iter().map(|r| r.file.as_str()),
        ))];
        if self.with_time {
            fields.push(Field::new("frameTime", DataType::Float64, false));
            arrays.push(Arc::new(Float64Array::from_iter_values(
                self.rows.iter().map(|r| round_time(r.time)),
            )));
        }
        for (c, name) in self.columns.iter().enumerate() {
            fields.push(Field::new(name, DataType::Float32, false));
            arrays.push(Arc::new(Float32Array::from_iter_values(
                self.rows.iter().map(|r| r.values[c]),
            )));
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| e.to_string())?;
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
            .build();
        let mut buf = Vec::new();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))
                .map_err(|e| e.to_string())?;
        writer.write(&batch).map_err(|e| e.to_string())?;
        writer.close().map_err(|e| e.to_string())?;
        Ok(buf)
    }
}
