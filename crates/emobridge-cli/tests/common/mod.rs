//! Set-up shared by the CLI integration tests: the binary, the fixture encoders, generated
//! inputs, and command runs that either fail the test with their stderr or hand back the
//! output for the test to judge.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use emobridge_corpus::synth::{generate, SynthConfig};
use emobridge_corpus::Manifest;

/// The `emobridge` binary with logging at warn.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_emobridge"));
    c.env("EMOBRIDGE_LOG", "warn");
    c
}

/// A random-init fixture encoder of the SSL crate's tests, by folder name.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../emobridge-ssl/tests/fixtures")
        .join(name)
}

/// The tiny random-init MERT-like fixture encoder (24 kHz) of the SSL crate's tests.
pub fn tiny_model() -> PathBuf {
    fixture("mert_like_24k")
}

/// What a successful command printed.
pub struct Printed {
    pub stdout: String,
    pub stderr: String,
}

/// Runs the command, failing the test with its stderr when it fails.
pub fn ok(cmd: &mut Command) -> Printed {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{cmd:?} failed:\n{stderr}");
    Printed {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    }
}

/// `emobridge ARGS` run in `cwd`, whatever its exit status.
pub fn run(args: &[&str], cwd: &Path) -> Output {
    bin().args(args).current_dir(cwd).output().unwrap()
}

/// The exit code of a process that exited (not killed).
pub fn code(o: &Output) -> i32 {
    o.status.code().expect("exited, not killed")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A JSON file, failing the test with the path when it cannot be read.
pub fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A 16 kHz mono 16-bit tone of `seconds` at `path` (folders created).
pub fn tone(path: &Path, seconds: f32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let x: Vec<f32> = (0..(16_000.0 * seconds) as usize)
        .map(|i| 0.3 * (i as f32 * 0.05).sin())
        .collect();
    emobridge_audio::wav::write_wav_mono16(path, &x, 16_000).unwrap();
}

/// `emobridge synth --out syn` in `d`: one clip per cell, `people` speakers and performers,
/// `continuous` annotated sequences per domain.
pub fn synth(d: &Path, people: &str, continuous: &str) {
    let o = run(
        &[
            "synth",
            "--out",
            "syn",
            "--clips-per-cell",
            "1",
            "--people",
            people,
            "--continuous",
            continuous,
        ],
        d,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

/// The synthetic corpus's continuous subset (5 annotated sequences per domain of
/// `seconds`), generated in `corpus` and written as `corpus/continuous.csv`.
pub fn continuous_corpus(corpus: &Path, seconds: (f32, f32)) -> Manifest {
    let synth = SynthConfig {
        clips_per_cell: 1,
        speakers: 4,
        performers: 4,
        clip_seconds: (0.3, 0.4),
        continuous_per_domain: 5,
        continuous_seconds: seconds,
        ..SynthConfig::default()
    };
    let summary = generate(corpus, &synth, &|_, _| {}).unwrap();
    let full = Manifest::read(&summary.manifest_path).unwrap();
    let rows: Vec<_> = full
        .records
        .iter()
        .filter(|r| !r.annotation.is_empty())
        .cloned()
        .collect();
    let manifest = Manifest::new(corpus, rows);
    manifest.write(&corpus.join("continuous.csv")).unwrap();
    manifest
}
