//! eGeMAPS v02 / ComParE-2016 descriptors of many files as one table with openSMILE's column
//! names, written as CSV or Parquet (`emobridge features`).
//!
//! Every file is analysed at its own sample rate with openSMILE's integer scaling (16-bit /
//! 32767), down-mixed to mono, in parallel over files. A file that cannot be read or analysed
//! gets one failure line and is left out; the others go on.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use emobridge_acoustic::compare::{self, WindowConfig};
use emobridge_acoustic::{egemaps, FeatureFrames, FeatureVector};
use emobridge_audio::IntScaling;
use emobridge_corpus::Manifest;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::descriptors::DescriptorError;

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
        let mut record: Vec<String> = Vec::with_capacity(self.columns.len() + 2);
        for row in &self.rows {
            record.clear();
            record.push(row.file.clone());
            if self.with_time {
                record.push(format!("{}", round_time(row.time)));
            }
            record.extend(row.values.iter().map(|v| v.to_string()));
            w.write_record(&record).map_err(|e| e.to_string())?;
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
