//! `--strict` in every batch command (issue 17 item 6): with a bad item early in the batch the
//! command stops there (exit 1), keeps what it had written, lists that one item, and produces
//! none of the later results; without `--strict` the same batch finishes with every bad item
//! listed and exits 3 (partial success). `features` and `extract` are covered in
//! `exit_status_provenance.rs`.

mod common;

use std::path::Path;
use std::process::Output;

use common::{code, continuous_corpus, json, run, stderr, synth, tiny_model, tone};
use emobridge_corpus::Manifest;

/// `args` once with `--strict`, once without.
fn both(args: &[&str], strict_out: &str, lenient_out: &str, cwd: &Path) -> (Output, Output) {
    let with_out = |out: &str, strict: bool| {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--out", out]);
        if strict {
            a.push("--strict");
        }
        run(&a, cwd)
    };
    (with_out(strict_out, true), with_out(lenient_out, false))
}

/// The strict run stopped at `first` with exit 1 and a one-line reason; its run folder keeps
/// `run.json` and lists that one item; `result` is absent.
fn check_strict(o: &Output, dir: &Path, first: &str, result: &str) {
    assert_eq!(code(o), 1, "{}", stderr(o));
    let err = stderr(o);
    assert!(
        err.contains("--strict: stopped at the first failure") && err.contains(first),
        "{err}"
    );
    let failures = json(&dir.join("failures.json"));
    let items: Vec<&str> = failures
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["item"].as_str().unwrap())
        .collect();
    assert_eq!(items, [first], "strict lists only the first failure");
    let record = json(&dir.join("run.json"));
    assert!(record["notes"]["stopped_by_strict"].is_string(), "{record}");
    assert!(
        !dir.join(result).exists(),
        "strict stopped before {result} was computed"
    );
}

/// The lenient run finished with exit 3, wrote `result` and listed every bad item.
fn check_partial(o: &Output, dir: &Path, bad: &[&str], result: &str) {
    assert_eq!(code(o), 3, "{}", stderr(o));
    assert!(dir.join(result).is_file(), "{result} written");
    let failures = json(&dir.join("failures.json"));
    let mut items: Vec<&str> = failures
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["item"].as_str().unwrap())
        .collect();
    items.sort_unstable();
    items.dedup();
    let mut want = bad.to_vec();
    want.sort_unstable();
    assert_eq!(items, want);
}

#[test]
fn probe_and_fad_study_stop_at_the_first_bad_cache_entry_under_strict() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    synth(d, "2", "0");
    let model = tiny_model();
    let extract = run(
        &[
            "extract",
            "--manifest",
            "syn/manifest.csv",
            "--model",
            model.to_str().unwrap(),
            "--cache",
            "cache",
            "--tag",
            "t",
        ],
        d,
    );
    assert_eq!(code(&extract), 0, "{}", stderr(&extract));
    let manifest = Manifest::read(&d.join("syn/manifest.csv")).unwrap();
    let labelled: Vec<&str> = manifest
        .records
        .iter()
        .filter(|r| r.emotion.is_some())
        .map(|r| r.id.as_str())
        .collect();
    let (first, last) = (labelled[0], labelled[labelled.len() - 1]);
    let entry = |id: &str| d.join("cache/t").join(format!("{id}.safetensors"));
    std::fs::write(entry(first), b"not a safetensors file").unwrap();
    std::fs::remove_file(entry(last)).unwrap();

    let probe = [
        "probe",
        "--manifest",
        "syn/manifest.csv",
        "--cache",
        "cache",
        "--model",
        "t",
        "--seeds",
        "1",
    ];
    let (strict, lenient) = both(&probe, "probe-strict", "probe", d);
    check_strict(&strict, &d.join("probe-strict"), first, "scores.csv");
    check_partial(&lenient, &d.join("probe"), &[first, last], "scores.csv");

    let fad = [
        "fad",
        "--manifest",
        "syn/manifest.csv",
        "--cache",
        "cache",
        "--model",
        "t",
        "--no-plots",
    ];
    let (strict, lenient) = both(&fad, "fad-strict", "fad", d);
    check_strict(&strict, &d.join("fad-strict"), first, "speech_vs_music.csv");
    check_partial(
        &lenient,
        &d.join("fad"),
        &[first, last],
        "speech_vs_music.csv",
    );
}

#[test]
fn continuous_stops_at_the_first_bad_row_under_strict() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let manifest = continuous_corpus(&d.join("corpus"), (6.0, 7.0));
    // The first row's audio and the last row's annotation are unreadable.
    let (first, last) = (
        &manifest.records[0],
        &manifest.records[manifest.records.len() - 1],
    );
    std::fs::write(manifest.audio_path(first), b"not audio").unwrap();
    std::fs::write(manifest.annotation_path(last).unwrap(), b"no,trace\n").unwrap();
    std::fs::write(
        d.join("tiny.toml"),
        "folds = 2\nplots = 0\ndae_enabled = false\n\
         [lstm]\nhidden = [4]\nrestarts = 1\nkeep_best = 1\nmax_epochs = 2\npatience = 1\nbatch_size = 2\n",
    )
    .unwrap();
    let args = [
        "continuous",
        "--manifest",
        "corpus/continuous.csv",
        "--features",
        "egemaps",
        "--config",
        "tiny.toml",
    ];
    let (strict, lenient) = both(&args, "strict", "lenient", d);
    check_strict(&strict, &d.join("strict"), &first.id, "results.csv");
    check_partial(
        &lenient,
        &d.join("lenient"),
        &[&first.id, &last.id],
        "results.csv",
    );
}

#[test]
fn finetune_stops_at_the_first_clip_that_does_not_decode_under_strict() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    synth(d, "4", "0");
    let manifest = Manifest::read(&d.join("syn/manifest.csv")).unwrap();
    // The first speech clip and the last music clip do not decode.
    let speech = manifest
        .records
        .iter()
        .find(|r| r.domain == emobridge_corpus::Domain::Speech && r.emotion.is_some())
        .unwrap();
    let music = manifest
        .records
        .iter()
        .rev()
        .find(|r| r.domain == emobridge_corpus::Domain::Music && r.emotion.is_some())
        .unwrap();
    for r in [speech, music] {
        std::fs::write(manifest.audio_path(r), b"not audio").unwrap();
    }
    std::fs::write(
        d.join("ft.toml"),
        "folds = 2\nmax_seconds = 0.5\n[train]\nepochs = 1\nbatch_size = 8\n",
    )
    .unwrap();
    let model = tiny_model();
    let args = [
        "finetune",
        "--method",
        "frozen",
        "--direction",
        "speech-to-music",
        "--manifest",
        "syn/manifest.csv",
        "--model",
        model.to_str().unwrap(),
        "--config",
        "ft.toml",
    ];
    let (strict, lenient) = both(&args, "strict", "lenient", d);
    check_strict(&strict, &d.join("strict"), &speech.id, "comparison.csv");
    check_partial(
        &lenient,
        &d.join("lenient"),
        &[&speech.id, &music.id],
        "comparison.csv",
    );
}

#[test]
fn import_stops_at_the_first_issue_under_strict_and_writes_no_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    for (label, good, bad) in [("happy", "a", "b"), ("sad", "c", "d")] {
        tone(&root.join(label).join(format!("{good}.wav")), 0.3);
        std::fs::write(
            root.join(label).join(format!("{bad}.wav")),
            b"RIFF but not a wave file",
        )
        .unwrap();
    }
    let args = ["import", "folder-per-label", "tree", "--domain", "speech"];
    let (strict, lenient) = both(&args, "s.csv", "m.csv", dir.path());

    assert_eq!(code(&strict), 1, "{}", stderr(&strict));
    assert!(stderr(&strict).contains("--strict"), "{}", stderr(&strict));
    assert!(
        !dir.path().join("s.csv").exists(),
        "no manifest under strict"
    );
    let issues = std::fs::read_to_string(dir.path().join("s_issues.csv")).unwrap();
    assert_eq!(
        issues.lines().count(),
        2,
        "header + the first issue: {issues}"
    );

    assert_eq!(code(&lenient), 3, "{}", stderr(&lenient));
    let m = Manifest::read(&dir.path().join("m.csv")).unwrap();
    assert_eq!(m.records.len(), 2);
    let issues = std::fs::read_to_string(dir.path().join("m_issues.csv")).unwrap();
    assert_eq!(
        issues.lines().count(),
        3,
        "header + both bad files: {issues}"
    );
}
