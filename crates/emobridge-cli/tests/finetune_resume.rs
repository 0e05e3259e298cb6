//! `emobridge finetune` end to end: every method in both directions on a synthetic corpus with
//! the tiny fixture encoder; a run killed with SIGKILL after its first resume state appeared,
//! then started again on the same `--out`, ends with the same checkpoints, curves and metrics
//! as an uninterrupted run, bit for bit; a rerun with other settings is refused.

mod common;

use common::fixture;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_emobridge"))
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

fn finetune(manifest: &Path, config: &Path, out: &Path) -> Command {
    let mut c = bin();
    c.args([
        "finetune",
        "--method",
        "all",
        "--direction",
        "both",
        "--manifest",
    ])
    .arg(manifest)
    .arg("--model")
    .arg(fixture("wav2vec2_layer_preln"))
    .arg("--config")
    .arg(config)
    .arg("--out")
    .arg(out);
    c
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn any_state(dir: &Path) -> bool {
    dir.is_dir() && files(dir).iter().any(|f| f.ends_with("state.json"))
}

#[test]
fn a_killed_finetune_resumes_to_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    ok(bin()
        .args([
            "synth",
            "--clips-per-cell",
            "1",
            "--people",
            "4",
            "--continuous",
            "0",
            "--out",
        ])
        .arg(&corpus)
        .output()
        .unwrap());
    let manifest = corpus.join("manifest.csv");
    let config = tmp.path().join("ft.toml");
    let settings = "folds = 2\nmax_seconds = 0.5\n[train]\nepochs = 2\nbatch_size = 8\nlr_encoder = 1e-3\ncheckpoint_every = 1\n[peft.adapter]\nbottleneck = 4\n";
    std::fs::write(&config, settings).unwrap();

    let whole = tmp.path().join("whole");
    ok(finetune(&manifest, &config, &whole).output().unwrap());

    let killed = tmp.path().join("killed");
    let mut child = finetune(&manifest, &config, &killed)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !any_state(&killed.join("resume")) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its first resume state"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no resume state"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!killed.join("comparison.csv").exists(), "killed too late");

    let rerun = ok(finetune(&manifest, &config, &killed).output().unwrap());
    let log = String::from_utf8_lossy(&rerun.stderr);
    assert!(log.contains("resumed"), "{log}");
    let record = std::fs::read_to_string(killed.join("run.json")).unwrap();
    assert!(record.contains("\"resumed\""), "{record}");

    let compared: Vec<PathBuf> = files(&whole)
        .into_iter()
        .filter(|f| {
            f.starts_with("checkpoints")
                || f.starts_with("resume")
                || ["comparison.csv", "comparison.json", "curves.json"]
                    .iter()
                    .any(|n| f == Path::new(n))
        })
        .collect();
    assert!(compared.len() > 30, "{compared:?}");
    assert_eq!(
        files(&killed)
            .into_iter()
            .filter(|f| compared.contains(f))
            .count(),
        compared.len()
    );
    for f in &compared {
        assert!(
            std::fs::read(whole.join(f)).unwrap() == std::fs::read(killed.join(f)).unwrap(),
            "{} differs after resuming",
            f.display()
        );
    }

    // Other settings on the same folder are refused, naming it.
    std::fs::write(&config, settings.replace("epochs = 2", "epochs = 3")).unwrap();
    let o = finetune(&manifest, &config, &killed).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("other settings") && err.contains("killed"),
        "{err}"
    );
}
