//! Exit status and provenance through the binary (issue 17 items 6 and 7): 0 when everything is
//! done, 3 with a `failures.json` when some items failed, 1 under `--strict`; every study's
//! `run.json` holds the input hashes, its true elapsed time and the commit emobridge was built
//! from.

mod common;

use std::path::Path;
use std::process::Command;

use common::{code, json, run, stderr, synth, tiny_model, tone};

/// `git rev-parse HEAD` of the checkout this test was built in (None outside one).
fn build_checkout_commit() -> Option<String> {
    let o = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// The run folder's `run.json`: the named hashes are SHA-256 hex, the elapsed time lies in
/// `[min_s, 600)`, the commit is the build's.
fn check_run_json(dir: &Path, hashes: &[&str], min_s: f64) -> serde_json::Value {
    let r = json(&dir.join("run.json"));
    for h in hashes {
        let v = r["hashes"][h].as_str().unwrap_or_default();
        assert!(
            v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()),
            "{}: hash `{h}` is {:?}",
            dir.display(),
            r["hashes"]
        );
    }
    let elapsed = r["elapsed_s"].as_f64().unwrap();
    assert!(
        elapsed >= min_s && elapsed < 600.0,
        "{}: elapsed_s {elapsed}",
        dir.display()
    );
    assert_eq!(
        r["git_commit"].as_str().map(str::to_string),
        build_checkout_commit(),
        "{}",
        dir.display()
    );
    r
}

#[test]
fn features_exit_0_when_done_3_with_failures_json_when_partial_1_when_strict() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tone(&d.join("a.wav"), 0.5);
    tone(&d.join("b.wav"), 0.5);
    std::fs::write(d.join("bad.wav"), b"RIFF but not a wave file").unwrap();

    let all_good = run(
        &[
            "features",
            "--set",
            "egemaps",
            "--level",
            "functionals",
            "a.wav",
            "b.wav",
            "--out",
            "ok.csv",
        ],
        d,
    );
    assert_eq!(code(&all_good), 0, "{}", stderr(&all_good));
    assert!(d.join("ok.csv").is_file());
    assert!(!d.join("ok.csv.failures.json").exists());

    let partial = run(
        &[
            "features",
            "--set",
            "egemaps",
            "--level",
            "functionals",
            "a.wav",
            "bad.wav",
            "b.wav",
            "--out",
            "p.csv",
        ],
        d,
    );
    assert_eq!(code(&partial), 3, "{}", stderr(&partial));
    assert!(stderr(&partial).contains("p.csv.failures.json"));
    let table = std::fs::read_to_string(d.join("p.csv")).unwrap();
    assert_eq!(table.lines().count(), 3, "header + two good files");
    let failures = json(&d.join("p.csv.failures.json"));
    let failures = failures["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1);
    assert!(failures[0]["path"].as_str().unwrap().ends_with("bad.wav"));

    let strict = run(
        &[
            "features",
            "--set",
            "egemaps",
            "--level",
            "functionals",
            "--strict",
            "a.wav",
            "bad.wav",
            "b.wav",
            "--out",
            "s.csv",
        ],
        d,
    );
    assert_eq!(code(&strict), 1, "{}", stderr(&strict));
    assert!(stderr(&strict).contains("bad.wav"), "{}", stderr(&strict));
    assert!(!d.join("s.csv").exists(), "nothing half-written");

    // A clean rerun into the same OUT drops the earlier failure list.
    let again = run(
        &[
            "features",
            "--set",
            "egemaps",
            "--level",
            "functionals",
            "a.wav",
            "b.wav",
            "--out",
            "p.csv",
        ],
        d,
    );
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    assert!(!d.join("p.csv.failures.json").exists());

    // Usage errors keep clap's 2.
    assert_eq!(code(&run(&["features", "--no-such-flag"], d)), 2);
}

#[test]
fn probe_and_fad_on_a_cache_missing_an_entry_exit_3_and_record_their_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    synth(d, "2", "2");
    let model = tiny_model();
    let model = model.to_str().unwrap();
    let extract = run(
        &[
            "extract",
            "--manifest",
            "syn/manifest.csv",
            "--model",
            model,
            "--cache",
            "cache",
        ],
        d,
    );
    assert_eq!(code(&extract), 0, "{}", stderr(&extract));
    let tag = "mert_like_24k";
    let entry = d
        .join("cache")
        .join(tag)
        .join("sp_spk01_calm_001.safetensors");
    std::fs::remove_file(&entry).unwrap();

    let probe_args = [
        "probe",
        "--manifest",
        "syn/manifest.csv",
        "--cache",
        "cache",
        "--model",
        tag,
        "--out",
        "probe",
    ];
    let probe = run(&probe_args, d);
    assert_eq!(code(&probe), 3, "{}", stderr(&probe));
    let failures = json(&d.join("probe/failures.json"));
    assert_eq!(failures[0]["item"], "sp_spk01_calm_001");
    let r = check_run_json(
        &d.join("probe"),
        &["manifest", "audio_list", "cache_index", "model_weights"],
        0.0,
    );
    assert!(r["outputs"]
        .as_array()
        .unwrap()
        .contains(&"failures.json".into()));
    // The weights hash is the model file's.
    let weights = emobridge_store::sha256_file(&tiny_model().join("model.safetensors")).unwrap();
    assert_eq!(r["hashes"]["model_weights"], weights);

    let mut strict_args = probe_args.to_vec();
    strict_args.push("--strict");
    let strict = run(&strict_args, d);
    assert_eq!(code(&strict), 1, "{}", stderr(&strict));
    assert!(
        d.join("probe/run.json").is_file(),
        "what was written is kept"
    );

    let fad = run(
        &[
            "fad",
            "--manifest",
            "syn/manifest.csv",
            "--cache",
            "cache",
            "--model",
            tag,
            "--out",
            "fad",
        ],
        d,
    );
    assert_eq!(code(&fad), 3, "{}", stderr(&fad));
    assert!(d.join("fad/failures.json").is_file());
    check_run_json(
        &d.join("fad"),
        &["manifest", "audio_list", "cache_index", "model_weights"],
        0.0,
    );

    // With the entry back, the same commands exit 0 and drop the failure list.
    let extract = run(
        &[
            "extract",
            "--manifest",
            "syn/manifest.csv",
            "--model",
            model,
            "--cache",
            "cache",
        ],
        d,
    );
    assert_eq!(code(&extract), 0, "{}", stderr(&extract));
    let probe = run(&probe_args, d);
    assert_eq!(code(&probe), 0, "{}", stderr(&probe));
    assert!(!d.join("probe/failures.json").exists());

    // Descriptors computed by the probe itself: an unreadable clip is a listed failure too.
    let manifest = std::fs::read_to_string(d.join("syn/manifest.csv")).unwrap();
    let victim = manifest
        .lines()
        .find(|l| l.starts_with("sp_spk02_"))
        .and_then(|l| l.split(',').nth(1))
        .unwrap()
        .to_string();
    std::fs::write(d.join("syn").join(&victim), b"not audio").unwrap();
    let eg = run(
        &[
            "probe",
            "--manifest",
            "syn/manifest.csv",
            "--features",
            "egemaps",
            "--out",
            "probe-eg",
        ],
        d,
    );
    assert_eq!(code(&eg), 3, "{}", stderr(&eg));
    let failures = json(&d.join("probe-eg/failures.json"));
    assert!(failures[0]["path"].as_str().unwrap().contains(&victim));
    check_run_json(
        &d.join("probe-eg"),
        &["manifest", "audio_list", "features"],
        0.0,
    );
}

#[test]
fn the_demo_and_its_continuous_study_record_hashes_and_their_real_elapsed_time() {
    let dir = tempfile::tempdir().unwrap();
    let demo = run(&["demo", "--quick", "--out", "demo"], dir.path());
    assert_eq!(code(&demo), 0, "{}", stderr(&demo));
    let out = dir.path().join("demo");
    let cont = check_run_json(&out.join("continuous"), &["manifest", "audio_list"], 0.0);
    let cont_s = cont["elapsed_s"].as_f64().unwrap();
    // The demo ran the continuous study (and more) inside its own run: its elapsed time is at
    // least the sub-study's, not the instant it took to write run.json.
    let demo_json = check_run_json(&out, &["manifest", "audio_list"], cont_s);
    assert!(demo_json["elapsed_s"].as_f64().unwrap() > 0.5);
}

#[test]
fn extract_strict_stops_at_the_first_failed_clip_keeping_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tone(&d.join("a.wav"), 0.5);
    tone(&d.join("b.wav"), 0.5);
    std::fs::write(d.join("bad.wav"), b"RIFF but not a wave file").unwrap();
    std::fs::write(
        d.join("m.csv"),
        "id,path,domain\nclip_a,a.wav,speech\nclip_bad,bad.wav,speech\nclip_b,b.wav,speech\n",
    )
    .unwrap();
    let model = tiny_model();
    let args = [
        "extract",
        "--manifest",
        "m.csv",
        "--model",
        model.to_str().unwrap(),
        "--cache",
        "cache",
        "--tag",
        "t",
    ];
    let mut strict_args = args.to_vec();
    strict_args.push("--strict");
    let strict = run(&strict_args, d);
    assert_eq!(code(&strict), 1, "{}", stderr(&strict));
    assert!(stderr(&strict).contains("clip_bad"), "{}", stderr(&strict));
    let tag = d.join("cache").join("t");
    assert!(
        tag.join("clip_a.safetensors").is_file(),
        "the earlier clip is kept"
    );
    assert!(
        !tag.join("clip_b.safetensors").exists(),
        "strict stops before the later clip"
    );

    // Without --strict the same batch finishes: exit 3, the later clip is extracted.
    let partial = run(&args, d);
    assert_eq!(code(&partial), 3, "{}", stderr(&partial));
    assert!(tag.join("clip_b.safetensors").is_file());
}
