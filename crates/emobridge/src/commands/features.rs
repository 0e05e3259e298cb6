//! `emobridge features`: eGeMAPS v02 / ComParE-2016 descriptors for files or a manifest, written as
//! one CSV (or Parquet) table with openSMILE's column names.
//!
//! Every file is analysed at its own sample rate with openSMILE's integer scaling (16-bit / 32767),
//! down-mixed to mono, in parallel over files. A file that cannot be read or analysed gets one
//! error line and is left out; the others go on, and the failures are listed at the end (the
//! command fails only when every file failed).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context};
use emobridge_acoustic::compare::{self, WindowConfig};
use emobridge_acoustic::{egemaps, FeatureFrames, FeatureVector};
use emobridge_audio::{DecodeOptions, IntScaling, Mixdown};
use emobridge_slurm::workload::features_failures_path;
use emobridge_store::{sharded_path, FailureLog, Shard};
use rayon::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FeatureSet {
    /// eGeMAPS v02: 25 LLDs, 88 functionals.
    Egemaps,
    /// ComParE-2016: 65 LLDs + 65 deltas (functionals are not provided).
    Compare,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Level {
    /// Frame-wise descriptors every 10 ms (ComParE: 65 LLDs followed by their 65 deltas).
    Lld,
    /// One row of summary statistics per file (eGeMAPS only).
    Functionals,
    /// Mean and standard deviation of the LLDs (and ComParE deltas) over sliding windows.
    Windows,
}

#[derive(clap::Args)]
#[command(
    after_help = "Output: first column `file`; LLD and window levels add `frameTime` (seconds, window start for \
windows); then openSMILE's columns in openSMILE's order. OUT ending in .parquet writes Parquet, anything else CSV."
)]
pub struct FeaturesArgs {
    /// Descriptor set.
    #[arg(long, value_enum)]
    pub set: FeatureSet,
    /// Frame-wise LLDs, per-file functionals, or windowed mean/std.
    #[arg(long, value_enum)]
    pub level: Level,
    /// Audio files (any format and rate the audio crate decodes).
    pub files: Vec<PathBuf>,
    /// A manifest whose `path` column lists the audio files (relative to the manifest's folder).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Output table (.csv or .parquet).
    #[arg(long)]
    pub out: PathBuf,
    /// Window length in seconds for `--level windows`.
    #[arg(long, default_value_t = 1.0)]
    pub window_s: f64,
    /// Hop between windows in seconds for `--level windows`.
    #[arg(long, default_value_t = 0.5)]
    pub hop_s: f64,
    /// With `--level windows`, keep only complete windows (drop the partial ones at the end).
    #[arg(long)]
    pub drop_partial: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Only the manifest clips of shard I of N (0-based, membership by clip id, as `extract`):
    /// `--out f.csv` writes f.shard-I-of-N.csv, then f.shard-I-of-N.csv.failures.json;
    /// `emobridge slurm features … --merge` joins the shards.
    #[arg(long)]
    pub shard: Option<String>,
}

/// One input: how it is shown in the `file` column and where it is read from.
struct Input {
    label: String,
    path: PathBuf,
    /// The manifest's clip id (None for FILE arguments).
    id: Option<String>,
}

/// Descriptors of one file.
enum Extracted {
    Frames(FeatureFrames),
    Vector(FeatureVector),
}

impl Extracted {
    fn names(&self) -> &[String] {
        match self {
            Extracted::Frames(f) => &f.names,
            Extracted::Vector(v) => &v.names,
        }
    }
}

pub fn run(args: FeaturesArgs) -> anyhow::Result<()> {
    if args.set == FeatureSet::Compare && args.level == Level::Functionals {
        bail!("--set compare --level functionals is not provided (the 6,373 ComParE functionals are out of scope); use --level lld or --level windows, or --set egemaps for functionals");
    }
    let window = WindowConfig {
        window_s: args.window_s,
        hop_s: args.hop_s,
        drop_partial: args.drop_partial,
    };
    if args.level == Level::Windows {
        window
            .validate()
            .map_err(|e| anyhow::anyhow!("--window-s/--hop-s: {e}"))?;
    }
    let (inputs, shard) = shard_inputs(&args, collect_inputs(&args)?)?;
    let out = shard.map_or_else(|| args.out.clone(), |s| sharded_path(&args.out, s));
    if inputs.is_empty() && shard.is_some() {
        tracing::info!("shard owns no clip of the manifest: nothing to do");
        return save_shard_failures(&args.out, shard, &[]);
    }
    if inputs.is_empty() {
        bail!("no input files: give FILE arguments or --manifest");
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.unwrap_or(0))
        .build()
        .context("cannot start worker threads")?;
    let pb = crate::progress::bar(inputs.len() as u64, "features");
    let failures = Mutex::new(Vec::new());
    let results: Vec<Option<Extracted>> = pool.install(|| {
        inputs
            .par_iter()
            .map(|input| {
                let out = extract(&input.path, args.set, args.level, &window);
                pb.inc(1);
                match out {
                    Ok(x) => Some(x),
                    Err(e) => {
                        // Audio errors already name the file; prefix the others with it.
                        let msg = format!("{e:#}");
                        let line = if msg.contains(&input.path.display().to_string()) {
                            msg
                        } else {
                            format!("{}: {msg}", input.label)
                        };
                        pb.suspend(|| eprintln!("error: {line}"));
                        failures
                            .lock()
                            .expect("no panics while holding the lock")
                            .push((input, line));
                        None
                    }
                }
            })
            .collect()
    });
    pb.finish_and_clear();
    let failures = failures.into_inner().expect("workers finished");
    let done: Vec<(&Input, Extracted)> = inputs
        .iter()
        .zip(results)
        .filter_map(|(i, r)| r.map(|r| (i, r)))
        .collect();
    if done.is_empty() {
        save_shard_failures(&args.out, shard, &failures)?;
        bail!("all {} input file(s) failed; nothing written", inputs.len());
    }
    let table = Table::build(&done, args.level)?;
    write_table(&table, &out)?;
    save_shard_failures(&args.out, shard, &failures)?;
    tracing::info!(
        "wrote {} rows × {} columns for {} file(s) to {}",
        table.rows.len(),
        table.columns.len(),
        done.len(),
        out.display()
    );
    if !failures.is_empty() {
        eprintln!("{} of {} file(s) failed:", failures.len(), inputs.len());
        for (_, f) in &failures {
            eprintln!("  {f}");
        }
    }
    Ok(())
}

fn collect_inputs(args: &FeaturesArgs) -> anyhow::Result<Vec<Input>> {
    let mut inputs: Vec<Input> = args
        .files
        .iter()
        .map(|p| Input {
            label: p.display().to_string(),
            path: p.clone(),
            id: None,
        })
        .collect();
    if let Some(m) = &args.manifest {
        let manifest = emobridge_corpus::Manifest::read(m)
            .with_context(|| format!("cannot read manifest {}", m.display()))?;
        for record in &manifest.records {
            inputs.push(Input {
                label: record.path.clone(),
                path: manifest.audio_path(record),
                id: Some(record.id.clone()),
            });
        }
    }
    Ok(inputs)
}

/// With `--shard I/N`: the manifest clips of the shard (CSV output only: the merge joins CSV).
fn shard_inputs(
    args: &FeaturesArgs,
    inputs: Vec<Input>,
) -> anyhow::Result<(Vec<Input>, Option<Shard>)> {
    let Some(spec) = &args.shard else {
        return Ok((inputs, None));
    };
    let shard = Shard::parse(spec)?;
    if args.manifest.is_none() || !args.files.is_empty() {
        bail!("--shard splits a manifest by clip id: give --manifest and no FILE arguments");
    }
    if args
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
    {
        bail!("--shard writes CSV tables (the merge joins CSV): give an OUT ending in .csv");
    }
    // An earlier run's failure list must not mark this run finished if it stops early.
    let marker = features_failures_path(&args.out, shard);
    if marker.exists() {
        std::fs::remove_file(&marker)
            .with_context(|| format!("cannot remove {}", marker.display()))?;
    }
    let mine = inputs
        .into_iter()
        .filter(|i| i.id.as_deref().is_some_and(|id| shard.owns(id)))
        .collect();
    Ok((mine, Some(shard)))
}

/// A shard's failure list, written after its table: its presence marks the shard finished.
fn save_shard_failures(
    out: &Path,
    shard: Option<Shard>,
    failures: &[(&Input, String)],
) -> anyhow::Result<()> {
    let Some(shard) = shard else { return Ok(()) };
    let mut log = FailureLog::default();
    for (input, line) in failures {
        log.push(
            input.id.as_deref().unwrap_or(&input.label),
            &input.label,
            line,
        );
    }
    log.save(&features_failures_path(out, shard))?;
    Ok(())
}

/// Decode one file the way SMILExtract reads it and compute the requested descriptors.
fn extract(
    path: &Path,
    set: FeatureSet,
    level: Level,
    window: &WindowConfig,
) -> anyhow::Result<Extracted> {
    let opts = DecodeOptions {
        target_rate: None,
        mixdown: Mixdown::Mono,
        int_scaling: IntScaling::OpenSmile,
    };
    let audio = emobridge_audio::load(path, &opts)?;
    let rate = audio.sample_rate;
    let samples = audio.into_mono();
    let out = match (set, level) {
        (FeatureSet::Compare, Level::Lld) => {
            Extracted::Frames(compare::lld_with_deltas(&samples, rate)?)
        }
        (FeatureSet::Compare, Level::Windows) => {
            Extracted::Frames(compare::windows(&samples, rate, window)?)
        }
        (FeatureSet::Compare, Level::Functionals) => bail!("ComParE functionals are not provided"),
        (FeatureSet::Egemaps, Level::Lld) => Extracted::Frames(egemaps::lld(&samples, rate)?),
        (FeatureSet::Egemaps, Level::Functionals) => {
            Extracted::Vector(egemaps::functionals(&samples, rate)?)
        }
        (FeatureSet::Egemaps, Level::Windows) => Extracted::Frames(compare::summarise_windows(
            &egemaps::lld(&samples, rate)?,
            window,
        )?),
    };
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

/// The assembled output: `file`, optional `frameTime`, then the feature columns.
struct Table {
    columns: Vec<String>,
    with_time: bool,
    rows: Vec<Row>,
}

struct Row {
    file: String,
    time: f64,
    values: Vec<f32>,
}

impl Table {
    fn build(done: &[(&Input, Extracted)], level: Level) -> anyhow::Result<Table> {
        let columns = done[0].1.names().to_vec();
        let mut rows = Vec::new();
        for (input, x) in done {
            if x.names() != columns.as_slice() {
                bail!(
                    "{}: descriptor columns differ from the first file's (internal error)",
                    input.label
                );
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
        Ok(Table {
            columns,
            with_time: level != Level::Functionals,
            rows,
        })
    }

    fn header(&self) -> Vec<String> {
        let mut h = vec!["file".to_string()];
        if self.with_time {
            h.push("frameTime".to_string());
        }
        h.extend(self.columns.iter().cloned());
        h
    }
}

/// Write to a temporary file next to `out`, then rename, so a failed run leaves no half table.
fn write_table(table: &Table, out: &Path) -> anyhow::Result<()> {
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.partial",
        out.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("features")
    ));
    let is_parquet = out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    let written = if is_parquet {
        write_parquet(table, &tmp)
    } else {
        write_csv(table, &tmp)
    };
    written.with_context(|| format!("cannot write {}", out.display()))?;
    std::fs::rename(&tmp, out)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), out.display()))?;
    Ok(())
}

fn write_csv(table: &Table, path: &Path) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(table.header())?;
    let mut record: Vec<String> = Vec::with_capacity(table.columns.len() + 2);
    for row in &table.rows {
        record.clear();
        record.push(row.file.clone());
        if table.with_time {
            record.push(format!("{}", round_time(row.time)));
        }
        record.extend(row.values.iter().map(|v| v.to_string()));
        w.write_record(&record)?;
    }
    w.flush()?;
    Ok(())
}

/// Frame times are `i · hop / sr`; print them without floating-point noise (µs resolution).
fn round_time(t: f64) -> f64 {
    (t * 1e6).round() / 1e6
}

fn write_parquet(table: &Table, path: &Path) -> anyhow::Result<()> {
    use arrow::array::{ArrayRef, Float32Array, Float64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use std::sync::Arc;

    let mut fields = vec![Field::new("file", DataType::Utf8, false)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(
        table.rows.iter().map(|r| r.file.as_str()),
    ))];
    if table.with_time {
        fields.push(Field::new("frameTime", DataType::Float64, false));
        arrays.push(Arc::new(Float64Array::from_iter_values(
            table.rows.iter().map(|r| round_time(r.time)),
        )));
    }
    for (c, name) in table.columns.iter().enumerate() {
        fields.push(Field::new(name, DataType::Float32, false));
        arrays.push(Arc::new(Float32Array::from_iter_values(
            table.rows.iter().map(|r| r.values[c]),
        )));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?;
    let file = std::fs::File::create(path)?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use emobridge_corpus::{Domain, Manifest, Record};

    fn tone(path: &Path, seconds: f64, rate: u32) {
        let n = (seconds * rate as f64) as usize;
        let x: Vec<f32> = (0..n)
            .map(|i| {
                0.3 * (2.0 * std::f64::consts::PI * 180.0 * i as f64 / rate as f64).sin() as f32
            })
            .collect();
        emobridge_audio::wav::write_wav_mono16(path, &x, rate).unwrap();
    }

    fn args(set: FeatureSet, level: Level, files: Vec<PathBuf>, out: PathBuf) -> FeaturesArgs {
        FeaturesArgs {
            set,
            level,
            files,
            manifest: None,
            out,
            window_s: 1.0,
            hop_s: 0.5,
            drop_partial: false,
            threads: Some(2),
            shard: None,
        }
    }

    fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
        let mut r = csv::Reader::from_path(path).unwrap();
        let header = r.headers().unwrap().iter().map(String::from).collect();
        let rows = r
            .records()
            .map(|x| x.unwrap().iter().map(String::from).collect())
            .collect();
        (header, rows)
    }

    #[test]
    fn compare_windows_skip_a_bad_file_and_keep_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.wav");
        tone(&good, 1.2, 16_000);
        let bad = dir.path().join("bad.wav");
        std::fs::write(&bad, b"not audio").unwrap();
        let out = dir.path().join("w.csv");
        run(args(
            FeatureSet::Compare,
            Level::Windows,
            vec![good.clone(), bad],
            out.clone(),
        ))
        .unwrap();
        let (header, rows) = read_csv(&out);
        assert_eq!(header.len(), 2 + 260);
        assert_eq!(&header[..3], ["file", "frameTime", "F0final_sma_amean"]);
        // 1.2 s → LLD rows 0.00..1.15 s → windows starting at 0.0, 0.5, 1.0.
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| r[0] == good.display().to_string()));
        assert_eq!(rows[1][1], "0.5");
    }

    #[test]
    fn all_files_failing_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("x.csv");
        let err = run(args(
            FeatureSet::Compare,
            Level::Lld,
            vec![dir.path().join("missing.wav")],
            out.clone(),
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("all 1 input file(s) failed"),
            "{err}"
        );
        assert!(!out.exists());
    }

    #[test]
    fn compare_functionals_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = run(args(
            FeatureSet::Compare,
            Level::Functionals,
            vec![],
            dir.path().join("f.csv"),
        ))
        .unwrap_err();
        assert!(err.to_string().contains("not provided"), "{err}");
    }

    #[test]
    fn manifest_lld_to_parquet_at_the_files_own_rate() {
        let dir = tempfile::tempdir().unwrap();
        tone(&dir.path().join("a.wav"), 0.5, 22_050);
        tone(&dir.path().join("b.wav"), 0.5, 16_000);
        let records = vec![
            Record::new("a", "a.wav", Domain::Speech, "test", "s1"),
            Record::new("b", "b.wav", Domain::Music, "test", "s2"),
        ];
        let manifest = dir.path().join("m.csv");
        Manifest::new(dir.path(), records).write(&manifest).unwrap();
        let out = dir.path().join("lld.parquet");
        let mut a = args(FeatureSet::Compare, Level::Lld, vec![], out.clone());
        a.manifest = Some(manifest);
        run(a).unwrap();
        let file = std::fs::File::open(&out).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        // 0.5 s: ⌊(N − W60)/H⌋ + 2 rows = 46 at 16 kHz (H 160, W 960) and 45 at 22.05 kHz (H 221, W 1323).
        assert_eq!(rows, 45 + 46);
        assert_eq!(batches[0].num_columns(), 2 + 130);
        assert_eq!(batches[0].schema().field(2).name(), "F0final_sma");
    }
}
