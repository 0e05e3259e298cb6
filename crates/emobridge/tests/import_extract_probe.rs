//! End to end through the binary (issue 17 item 1): `import` → `extract` → `probe` on small fake
//! trees, with the tiny random-init MERT-like fixture model. Folder-per-label ids contain `/`
//! (`happy/spk1/take1`); `extract` used to reject every one of them as a cache key.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_emobridge"));
    c.env("EMOBRIDGE_LOG", "warn");
    c
}

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../emobridge-ssl/tests/fixtures/mert_like_24k")
}

/// Runs the command, failing the test with its stderr when it fails.
fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{cmd:?} failed:\n{stderr}");
    stderr
}

/// Half a second at 24 kHz: a tone whose pitch and level depend on the label, so the probe has
/// something to find, plus a little per-take variation.
fn clip(path: &Path, label: usize, take: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let f = 180.0 + 220.0 * label as f32 + 7.0 * take as f32;
    let amp = 0.15 + 0.2 * label as f32;
    let x: Vec<f32> = (0..12_000)
        .map(|i| {
            let t = i as f32 / 24_000.0;
            amp * (2.0 * std::f32::consts::PI * f * t).sin()
                + 0.01 * ((i * 7919 + take * 31) % 97) as f32 / 97.0
        })
        .collect();
    emobridge_audio::wav::write_wav_mono16(path, &x, 24_000).unwrap();
}

#[test]
fn folder_per_label_ids_with_separators_go_through_extract_and_probe() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = d.join("tree");
    for (l, label) in ["happy", "sad"].iter().enumerate() {
        for spk in 1..=4 {
            for take in 1..=2 {
                clip(
                    &root.join(format!("{label}/spk{spk}/take{take}.wav")),
                    l,
                    take + spk,
                );
            }
        }
    }
    let manifest = d.join("m.csv");
    ok(bin()
        .args(["import", "folder-per-label"])
        .arg(&root)
        .args(["--domain", "speech", "--out"])
        .arg(&manifest));
    let m = emobridge_corpus::Manifest::read(&manifest).unwrap();
    assert_eq!(m.records.len(), 16);
    assert!(m.records.iter().any(|r| r.id == "happy/spk1/take1"));

    let cache = d.join("cache");
    let stderr = ok(bin()
        .args(["extract", "--manifest"])
        .arg(&manifest)
        .arg("--model")
        .arg(model())
        .arg("--cache")
        .arg(&cache)
        .args(["--tag", "tiny"]));
    assert!(!stderr.contains("invalid clip id"), "{stderr}");
    // One flat folder, one reversible file name per id.
    let store = emobridge_store::EmbeddingCache::open(&cache, "tiny").unwrap();
    let mut ids: Vec<String> = m.records.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    assert_eq!(store.ids().unwrap(), ids);
    assert!(cache
        .join("tiny/happy%2Fspk1%2Ftake1.safetensors")
        .is_file());

    let out = d.join("probe");
    ok(bin()
        .args(["probe", "--manifest"])
        .arg(&manifest)
        .arg("--cache")
        .arg(&cache)
        .args(["--model", "tiny", "--folds", "2", "--out"])
        .arg(&out));
    let by_layer = std::fs::read_to_string(out.join("by_layer.csv")).unwrap();
    let states = store.read("sad/spk4/take2").unwrap().shape[0];
    assert_eq!(by_layer.lines().count(), 1 + states, "{by_layer}");
    // Every clip was found in the cache: the run lists no failure.
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let failures = run
        .get("failures")
        .and_then(|f| f.as_array())
        .map_or(0, Vec::len);
    assert_eq!(failures, 0, "{run}");
}

#[test]
fn every_importer_writes_ids_that_are_cache_keys() {
    // The ids each importer forms (from their module docs and the layout tests), including the
    // separators and odd characters real corpora bring.
    let ids = [
        "03-01-05-01-02-01-12",   // ravdess
        "1001_DFA_ANG_XX",        // crema-d
        "03a01Fa",                // emodb
        "OAF_back_angry",         // tess
        "DC_a01",                 // savee
        "Ses01F_impro01_F000",    // iemocap
        "MSP-PODCAST_0001_0008",  // msp-podcast
        "Q4__BK2o77sTc0_2",       // emopia
        "emomusic_2",             // emomusic
        "pmemo_1",                // pmemo
        "deam_2000",              // deam
        "happy/actor01/take1",    // folder-per-label
        "Wut/Sprecher 3/Satz: 1", // folder-per-label, spaces and colons
        ".x/y",                   // any id that starts with a dot
    ];
    let dir = tempfile::tempdir().unwrap();
    let store = emobridge_store::EmbeddingCache::open(dir.path(), "t").unwrap();
    for id in ids {
        let path = store.path_for(id).unwrap_or_else(|e| panic!("{id}: {e}"));
        let name = path.file_name().unwrap().to_str().unwrap();
        let key = name.strip_suffix(".safetensors").unwrap();
        assert_eq!(emobridge_store::id_from_key(key).as_deref(), Some(id));
    }
}
