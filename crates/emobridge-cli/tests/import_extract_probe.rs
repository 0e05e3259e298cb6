//! End to end through the binary (issue 17 item 1): `import` → `extract` → `probe` on small fake
//! trees, with the tiny random-init MERT-like fixture model. Folder-per-label ids contain `/`
//! (`happy/spk1/take1`); `extract` used to reject every one of them as a cache key.

mod common;

use std::path::Path;

use common::{bin, ok, tiny_model};

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
        .arg(tiny_model())
        .arg("--cache")
        .arg(&cache)
        .args(["--tag", "tiny"]))
    .stderr;
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
    let by_layer = std::fs::read_to_string(out.join("transfer_matrix.csv")).unwrap();
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

/// `import` → `extract` → `probe` for a corpus tree; returns the number of clips imported.
fn pipeline(corpus: &str, root: &Path, d: &Path) -> usize {
    let manifest = d.join(format!("{corpus}.csv"));
    ok(bin()
        .args(["import", corpus])
        .arg(root)
        .arg("--out")
        .arg(&manifest));
    let m = emobridge_corpus::Manifest::read(&manifest).unwrap();
    let cache = d.join("cache");
    ok(bin()
        .args(["extract", "--manifest"])
        .arg(&manifest)
        .arg("--model")
        .arg(tiny_model())
        .arg("--cache")
        .arg(&cache)
        .args(["--tag", corpus]));
    let store = emobridge_store::EmbeddingCache::open(&cache, corpus).unwrap();
    assert_eq!(store.ids().unwrap().len(), m.records.len(), "{corpus}");
    let out = d.join(format!("probe-{corpus}"));
    ok(bin()
        .args(["probe", "--manifest"])
        .arg(&manifest)
        .arg("--cache")
        .arg(&cache)
        .args(["--model", corpus, "--folds", "2", "--out"])
        .arg(&out));
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let failures = run
        .get("failures")
        .and_then(|f| f.as_array())
        .map_or(0, Vec::len);
    assert_eq!(failures, 0, "{corpus}: {run}");
    assert!(out.join("transfer_matrix.csv").is_file(), "{corpus}");
    m.records.len()
}

#[test]
fn ravdess_speech_and_song_go_through_extract_and_probe() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("RAVDESS");
    for (channel, folder) in [
        (1, "Audio_Speech_Actors_01-24"),
        (2, "Audio_Song_Actors_01-24"),
    ] {
        for actor in 1..=4u32 {
            for (l, emotion) in [3u32, 4].into_iter().enumerate() {
                for statement in 1..=2u32 {
                    clip(
                        &root.join(format!("{folder}/Actor_{actor:02}/03-{channel:02}-{emotion:02}-01-{statement:02}-01-{actor:02}.wav")),
                        l,
                        statement as usize + actor as usize,
                    );
                }
            }
        }
    }
    assert_eq!(pipeline("ravdess", &root, dir.path()), 32);
}

#[test]
fn crema_d_one_level_up_goes_through_extract_and_probe() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    for actor in 1001..=1004 {
        for (l, emo) in ["ANG", "SAD"].into_iter().enumerate() {
            for sentence in ["DFA", "TSI"] {
                clip(
                    &root.join(format!("CREMA-D/AudioWAV/{actor}_{sentence}_{emo}_XX.wav")),
                    l,
                    actor - 1000 + sentence.len(),
                );
            }
        }
    }
    assert_eq!(pipeline("crema-d", &root, dir.path()), 16);
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
