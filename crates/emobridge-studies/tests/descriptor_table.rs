//! The descriptor-table pipeline behind `emobridge features` (tests moved from the command).

use std::path::{Path, PathBuf};

use emobridge_corpus::{Domain, Manifest, Record};
use emobridge_studies::descriptor_table::{extract_table, inputs, FeatureSet, Level, TableConfig};

/// The command's arguments, as the pipeline takes them.
struct Args {
    set: FeatureSet,
    level: Level,
    files: Vec<PathBuf>,
    manifest: Option<PathBuf>,
    out: PathBuf,
}

/// Runs the pipeline as `emobridge features` does: extract, then write the table.
fn run(a: Args) -> Result<(), emobridge_studies::descriptors::DescriptorError> {
    let manifest = a.manifest.map(|m| Manifest::read(m).unwrap());
    let config = TableConfig {
        set: a.set,
        level: a.level,
        threads: Some(2),
        ..TableConfig::default()
    };
    let outcome = extract_table(&config, &inputs(&a.files, manifest.as_ref()), &|_, _| {})?;
    outcome.table.write(&a.out)
}

fn tone(path: &Path, seconds: f64, rate: u32) {
    let n = (seconds * rate as f64) as usize;
    let x: Vec<f32> = (0..n)
        .map(|i| 0.3 * (2.0 * std::f64::consts::PI * 180.0 * i as f64 / rate as f64).sin() as f32)
        .collect();
    emobridge_audio::wav::write_wav_mono16(path, &x, rate).unwrap();
}

fn args(set: FeatureSet, level: Level, files: Vec<PathBuf>, out: PathBuf) -> Args {
    Args {
        set,
        level,
        files,
        manifest: None,
        out,
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
fn compare_functionals_have_6373_columns() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("a.wav");
    tone(&wav, 1.0, 16000);
    let out = dir.path().join("f.csv");
    run(args(
        FeatureSet::Compare,
        Level::Functionals,
        vec![wav],
        out.clone(),
    ))
    .unwrap();
    let (header, rows) = read_csv(&out);
    assert_eq!(header.len(), 1 + 6373, "file column + functionals");
    assert_eq!(header[1], "audspec_lengthL1norm_sma_range");
    assert_eq!(rows.len(), 1);
    assert!(rows[0][1..]
        .iter()
        .all(|v| v.parse::<f64>().unwrap().is_finite()));
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

/// Every value of a Parquet table, column by column (strings, f64 and f32 as text).
fn parquet_rows(path: &Path) -> (Vec<String>, Vec<Vec<String>>, usize) {
    use arrow::array::{Array, Float32Array, Float64Array, StringArray};
    let file = std::fs::File::open(path).unwrap();
    let builder =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let groups = builder.metadata().num_row_groups();
    let header = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut rows = Vec::new();
    for batch in builder.build().unwrap() {
        let batch = batch.unwrap();
        for r in 0..batch.num_rows() {
            let row = batch
                .columns()
                .iter()
                .map(|c| {
                    let any = c.as_any();
                    if let Some(s) = any.downcast_ref::<StringArray>() {
                        s.value(r).to_string()
                    } else if let Some(x) = any.downcast_ref::<Float64Array>() {
                        x.value(r).to_string()
                    } else {
                        let x = any.downcast_ref::<Float32Array>().unwrap();
                        assert!(!x.is_null(r));
                        x.value(r).to_string()
                    }
                })
                .collect();
            rows.push(row);
        }
    }
    (header, rows, groups)
}

#[test]
fn streamed_tables_equal_the_in_memory_tables() {
    use emobridge_studies::descriptor_table::{write_table, PARQUET_ROW_GROUP};
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.wav");
    tone(&a, 2.3, 16_000);
    let b = dir.path().join("b.wav");
    tone(&b, 1.1, 22_050);
    let bad = dir.path().join("bad.wav");
    std::fs::write(&bad, b"not audio").unwrap();
    let files = vec![a, bad, b];
    for set in [FeatureSet::Compare, FeatureSet::Egemaps] {
        for level in [Level::Lld, Level::Windows] {
            let config = TableConfig {
                set,
                level,
                threads: Some(2),
                ..TableConfig::default()
            };
            let ins = inputs(&files, None);
            let expected = dir.path().join("expected.csv");
            let o = extract_table(&config, &ins, &|_, _| {}).unwrap();
            o.table.write(&expected).unwrap();
            let got = dir.path().join("got.csv");
            let w = write_table(&config, &ins, &got, &|_, _| {}).unwrap();
            assert_eq!(
                std::fs::read(&expected).unwrap(),
                std::fs::read(&got).unwrap(),
                "{set:?} {level:?}"
            );
            assert_eq!((w.rows, w.files), (o.table.rows.len(), 2));
            assert_eq!(w.failed_inputs, vec![1]);
            assert_eq!(w.failures, o.failures);

            let pq = dir.path().join("got.parquet");
            write_table(&config, &ins, &pq, &|_, _| {}).unwrap();
            let (header, rows, _) = parquet_rows(&pq);
            let (csv_header, csv_rows) = read_csv(&expected);
            assert_eq!(header, csv_header);
            assert_eq!(rows, csv_rows, "{set:?} {level:?}");
            // nothing left beside the table
            let left: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.'))
                .collect();
            assert!(left.is_empty(), "{left:?}");
        }
    }
    // a long LLD table is written in row groups of PARQUET_ROW_GROUP rows
    let long = dir.path().join("long.wav");
    tone(&long, 400.0, 8_000);
    let config = TableConfig {
        set: FeatureSet::Egemaps,
        level: Level::Lld,
        threads: Some(1),
        ..TableConfig::default()
    };
    let pq = dir.path().join("long.parquet");
    let w = write_table(&config, &inputs(&[long], None), &pq, &|_, _| {}).unwrap();
    let (_, rows, groups) = parquet_rows(&pq);
    assert_eq!(rows.len(), w.rows);
    assert_eq!(groups, w.rows.div_ceil(PARQUET_ROW_GROUP));
    assert!(groups >= 3);
}

#[test]
fn a_killed_runs_spool_is_removed_and_a_live_ones_kept() {
    use emobridge_studies::descriptor_table::write_table;
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.wav");
    tone(&a, 1.2, 16_000);
    // a pid no process can have (above i32::MAX) stands for a writer killed with -9
    let dead = dir
        .path()
        .join(format!(".got.csv.spool-{}", i32::MAX as u32 + 1));
    std::fs::create_dir_all(&dead).unwrap();
    std::fs::write(dead.join("0.rows"), b"partial").unwrap();
    // pid 1 is alive on every unix machine: its spool is another writer's and stays
    let live = dir.path().join(".got.csv.spool-1");
    std::fs::create_dir_all(&live).unwrap();
    let config = TableConfig {
        set: FeatureSet::Egemaps,
        level: Level::Lld,
        ..TableConfig::default()
    };
    let got = dir.path().join("got.csv");
    write_table(&config, &inputs(&[a], None), &got, &|_, _| {}).unwrap();
    assert!(!dead.exists(), "the dead writer's spool is removed");
    assert!(live.exists(), "a live writer's spool is kept");
    assert!(got.exists());
}
