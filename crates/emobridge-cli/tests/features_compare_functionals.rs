//! `emobridge features --set compare --level functionals`: the 6,373 ComParE-2016 functionals
//! (values are tested against SMILExtract in `emobridge-acoustic`), one row per file, and a clip
//! too short for any 60 ms frame is a one-line error for that file.

mod common;

use common::tone;

use std::process::Command;

#[test]
fn compare_functionals_table_has_6373_columns_and_skips_a_too_short_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tone(&d.join("a.wav"), 1.0);
    tone(&d.join("short.wav"), 0.02);
    let out = Command::new(env!("CARGO_BIN_EXE_emobridge"))
        .args(["features", "--set", "compare", "--level", "functionals"])
        .args(["a.wav", "short.wav", "--out", "f.csv"])
        .current_dir(d)
        .env_remove("EMOBRIDGE_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("short.wav") && stderr.contains("too short"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(d.join("f.csv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    assert_eq!(header.len(), 1 + 6373, "file + functionals");
    assert_eq!(header[0], "file");
    assert_eq!(header[1], "audspec_lengthL1norm_sma_range");
    assert_eq!(header[6373], "mfcc_sma_de[14]_stddevFallingSlope");
    assert_eq!(lines.len(), 2, "one row: the short file is left out");
    let values: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(values.len(), 1 + 6373);
    assert!(values[1..]
        .iter()
        .all(|v| v.parse::<f64>().unwrap().is_finite()));
}
