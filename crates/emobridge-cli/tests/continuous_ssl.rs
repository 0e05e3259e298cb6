//! `emobridge continuous --cache DIR --model TAG --layer N` end to end through the binary: the
//! synthetic continuous subset, `extract` with the tiny random-init MERT-like fixture encoder,
//! then the study on the cached hidden state pooled to 2 Hz windows writes its results table.

mod common;

use common::{bin, continuous_corpus, ok, tiny_model};

#[test]
fn continuous_on_an_ssl_cache_writes_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let corpus = d.join("corpus");
    // The continuous subset only: the sequences are what the study reads.
    assert_eq!(continuous_corpus(&corpus, (10.0, 12.0)).records.len(), 10);
    let manifest = corpus.join("continuous.csv");

    let cache = d.join("cache");
    ok(bin()
        .args(["extract", "--manifest"])
        .arg(&manifest)
        .arg("--model")
        .arg(tiny_model())
        .arg("--cache")
        .arg(&cache)
        .args(["--tag", "tiny"]));
    let store = emobridge_store::EmbeddingCache::open(&cache, "tiny").unwrap();
    assert_eq!(store.ids().unwrap().len(), 10);

    let config = d.join("tiny.toml");
    std::fs::write(
        &config,
        "folds = 2\nplots = 1\n\
         [lstm]\nhidden = [8]\nrestarts = 2\nkeep_best = 1\nmax_epochs = 4\npatience = 2\nbatch_size = 2\n\
         [dae]\nhidden = [8]\nepochs = 2\n",
    )
    .unwrap();
    let out = d.join("run");
    let stdout = ok(bin()
        .args(["continuous", "--manifest"])
        .arg(&manifest)
        .arg("--cache")
        .arg(&cache)
        .args(["--model", "tiny", "--layer", "1", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out))
    .stdout;
    assert!(stdout.trim_end().ends_with("run.json"), "{stdout}");
    let table = std::fs::read_to_string(out.join("results_table.csv")).unwrap();
    assert!(
        table.starts_with("setting,A r,A CCC,A RMSE,V r,V CCC,V RMSE"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 7, "{table}");
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["config"]["features"], "ssl");
    assert_eq!(run["config"]["model"], "tiny");
    assert_eq!(run["config"]["layer"], 1);
    assert_eq!(run["notes"]["annotation_repairs"]["files_read"], 10);

    // A layer the cache does not hold is one error naming it, not a panic.
    let bad = bin()
        .args(["continuous", "--manifest"])
        .arg(&manifest)
        .arg("--cache")
        .arg(&cache)
        .args(["--model", "tiny", "--layer", "99", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(d.join("bad"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("layer 99") && !err.contains("panicked"),
        "{err}"
    );
}
