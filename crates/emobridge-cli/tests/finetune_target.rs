//! `emobridge finetune --target arousal`: the comparison table carries r, CCC and RMSE, and
//! `run.json` names the device; a rerun on the same `--out` with `--target valence` and an
//! unknown target are one-line errors, as are a GPU asked of a build without the `cuda` feature
//! (by flag or config) and an unknown device.

mod common;

use common::tiny_model;

use std::path::Path;
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_emobridge"))
}

fn finetune(manifest: &Path, config: &Path, out: &Path, target: &str) -> Output {
    bin()
        .args([
            "finetune",
            "--method",
            "frozen",
            "--direction",
            "speech-to-music",
        ])
        .args(["--target", target, "--manifest"])
        .arg(manifest)
        .arg("--model")
        .arg(tiny_model())
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn last_line(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    err.trim_end().lines().last().unwrap_or("").to_string()
}

#[test]
fn finetune_target_arousal_writes_regression_scores_and_refuses_another_target() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    let o = bin()
        .args(["synth", "--clips-per-cell", "1", "--people", "4"])
        .args(["--continuous", "0", "--out"])
        .arg(&corpus)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let manifest = corpus.join("manifest.csv");
    let config = tmp.path().join("ft.toml");
    std::fs::write(
        &config,
        "folds = 2\nmax_seconds = 1.0\n[train]\nepochs = 1\nbatch_size = 8\n",
    )
    .unwrap();
    let out = tmp.path().join("run");
    let o = finetune(&manifest, &config, &out, "arousal");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(out.join("comparison.csv")).unwrap();
    assert!(
        csv.lines().next().unwrap().contains(",r,CCC,RMSE,"),
        "{csv}"
    );
    assert_eq!(csv.lines().filter(|l| l.contains(",arousal,")).count(), 2);
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["notes"]["device"], "cpu", "{run}");

    let o = finetune(&manifest, &config, &out, "valence");
    assert!(!o.status.success());
    let line = last_line(&o);
    assert!(line.contains("other settings"), "{line}");

    let o = finetune(&manifest, &config, &tmp.path().join("b"), "dominance");
    assert!(!o.status.success());
    let line = last_line(&o);
    assert!(
        line.contains("--target takes emotion, arousal or valence"),
        "{line}"
    );
    // A GPU asked of a build without the `cuda` feature, by flag or in the config: one line
    // that names the device and the feature, nothing written.
    if !cfg!(feature = "cuda") {
        let gpu_config = tmp.path().join("gpu.toml");
        std::fs::write(&gpu_config, "device = \"cuda:1\"\nfolds = 2\n").unwrap();
        for (flag, conf, device) in [
            (Some("cuda"), &config, "cuda"),
            (None, &gpu_config, "cuda:1"),
        ] {
            let out = tmp.path().join("gpu");
            let mut c = bin();
            c.args(["finetune", "--method", "lora", "--manifest"])
                .arg(&manifest)
                .arg("--model")
                .arg(tiny_model())
                .arg("--config")
                .arg(conf)
                .arg("--out")
                .arg(&out);
            if let Some(f) = flag {
                c.args(["--device", f]);
            }
            let o = c.output().unwrap();
            assert!(!o.status.success());
            let line = last_line(&o);
            assert!(
                line.contains(&format!("device `{device}`"))
                    && line.contains("no CUDA support")
                    && line.contains("--features cuda"),
                "{line}"
            );
            assert!(!out.exists());
        }
    }
    let o = bin()
        .args(["finetune", "--device", "gpu", "--manifest"])
        .arg(&manifest)
        .args(["--model", "m", "--out", "x"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("device `gpu` is not one of auto, cpu, cuda, cuda:N"),
        "{err}"
    );
}
