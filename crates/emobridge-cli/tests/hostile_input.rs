//! Hostile input through the binary (issue 17 items 3 and 10): absurd option values end at parse
//! time, a failed import writes the issues file it names, messages say each thing once, and the
//! decoders' own log lines stay out of default-verbosity stderr.

mod common;

use common::{stderr, tone};

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn run(args: &[&str], cwd: &Path) -> (Output, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_emobridge"))
        .args(args)
        .current_dir(cwd)
        .env_remove("EMOBRIDGE_LOG")
        .output()
        .unwrap();
    (out, started.elapsed())
}

#[test]
fn window_and_hop_out_of_range_fail_before_any_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tone(&d.join("a.wav"), 1.2);
    for (flag, value) in [
        ("--hop-s", "1e-9"),
        ("--hop-s", "0"),
        ("--hop-s=-1", ""),
        ("--window-s", "1e12"),
        ("--window-s", "NaN"),
    ] {
        let mut args = vec!["features", "--set", "compare", "--level", "windows", flag];
        if !value.is_empty() {
            args.push(value);
        }
        args.extend(["a.wav", "--out", "o.csv"]);
        let (o, took) = run(&args, d);
        let e = stderr(&o);
        assert!(!o.status.success(), "{flag} {value}");
        assert!(took < Duration::from_secs(30), "{flag} {value}: {took:?}");
        assert!(e.contains("--window-s/--hop-s"), "{flag} {value}: {e}");
        assert_eq!(e.trim().lines().count(), 1, "{e}");
        assert!(!d.join("o.csv").exists());
    }
}

#[test]
fn a_failed_import_writes_the_issues_file_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = d.join("CREMA-D/AudioWAV");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("1001_DFA_ANG_XX.wav"),
        "version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1\n",
    )
    .unwrap();
    std::fs::write(root.join("1001_DFA_SAD_XX.wav"), "").unwrap();
    let (o, _) = run(&["import", "crema-d", "CREMA-D", "--out", "out/m.csv"], d);
    assert!(!o.status.success());
    let e = stderr(&o);
    let last = e.trim().lines().last().unwrap();
    assert!(
        last.contains("no crema-d clips found") && last.contains("m_issues.csv"),
        "{e}"
    );
    let issues = std::fs::read_to_string(d.join("out/m_issues.csv")).unwrap();
    assert!(
        issues.contains("Git LFS pointer") && issues.contains("empty file"),
        "{issues}"
    );
}

#[test]
fn an_error_says_each_thing_once() {
    let dir = tempfile::tempdir().unwrap();
    let (o, _) = run(
        &["import", "ravdess", "nowhere", "--out", "m.csv"],
        dir.path(),
    );
    let e = stderr(&o);
    assert!(!o.status.success());
    assert_eq!(e.matches("os error 2").count(), 1, "{e}");
    assert!(e.contains("nowhere"), "{e}");
}

#[test]
fn decoder_log_lines_stay_out_of_default_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Text named .mp3: symphonia's probe logs its own lines while giving up on it.
    std::fs::write(d.join("notes.mp3"), "not audio at all\n".repeat(40)).unwrap();
    tone(&d.join("ok.wav"), 1.0);
    let (o, _) = run(
        &[
            "features",
            "--set",
            "egemaps",
            "--level",
            "functionals",
            "notes.mp3",
            "ok.wav",
            "--out",
            "f.csv",
        ],
        d,
    );
    let e = stderr(&o);
    assert!(e.contains("notes.mp3"), "the bad file is still named: {e}");
    for noise in ["probe reached EOF", "skipping junk", "symphonia"] {
        assert!(!e.contains(noise), "{noise}: {e}");
    }
}
