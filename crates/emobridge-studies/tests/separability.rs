//! The emotion probe on features that encode the emotion (plus speaker offsets and noise), and on
//! a domain that cannot be split by speaker.

use emobridge_corpus::Manifest;
use emobridge_studies::separability::{run, SeparabilityConfig};

const EMOTIONS: [&str; 3] = ["happy", "sad", "angry"];

/// Speech: 4 speakers × 3 emotions × 3 clips; music: one performer only.
fn corpus(dir: &std::path::Path) -> (Manifest, Vec<(String, Vec<f64>)>) {
    let mut csv =
        String::from("id,path,domain,corpus,speaker,emotion,arousal,valence,split,annotation\n");
    let mut features = Vec::new();
    let mut state = 0.123f64;
    let mut noise = || {
        state = (state * 9301.0 + 49297.0) % 233280.0;
        state / 233280.0 - 0.5
    };
    for (domain, people) in [("speech", 4), ("music", 1)] {
        for p in 0..people {
            for (e, emotion) in EMOTIONS.iter().enumerate() {
                for clip in 0..3 {
                    let id = format!("{domain}_{p}_{emotion}_{clip}");
                    csv.push_str(&format!(
                        "{id},{id}.wav,{domain},t,{domain}{p},{emotion},,,,\n"
                    ));
                    // Emotion on two axes, a speaker offset on a third, noise everywhere.
                    let row = vec![
                        e as f64 * 2.0 + noise(),
                        (e as f64 - 1.0).abs() * 3.0 + noise(),
                        p as f64 * 10.0 + noise(),
                        noise(),
                    ];
                    features.push((id, row));
                }
            }
        }
    }
    let path = dir.join("manifest.csv");
    std::fs::write(&path, csv).unwrap();
    (Manifest::read(&path).unwrap(), features)
}

#[test]
fn encoded_emotions_are_found_speaker_independently_and_unsplittable_domains_are_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, features) = corpus(tmp.path());
    let out = tmp.path().join("probe");
    let outcome = run(
        &SeparabilityConfig::default(),
        &manifest,
        &features,
        "test",
        &out,
    )
    .unwrap();

    let within: Vec<_> = outcome
        .scores
        .iter()
        .filter(|s| s.setting == "within")
        .collect();
    assert_eq!(
        within.len(),
        1,
        "music has one performer: no within-domain split"
    );
    let speech = within[0];
    assert_eq!(
        (speech.test_domain.as_str(), speech.folds, speech.n_test),
        ("speech", 4, 36)
    );
    assert_eq!(speech.unweighted_accuracy, 1.0, "{speech:?}");
    assert!((speech.chance_ua - 1.0 / 3.0).abs() < 1e-12);

    let cross: Vec<_> = outcome
        .scores
        .iter()
        .filter(|s| s.setting == "cross")
        .collect();
    assert_eq!(cross.len(), 2);
    assert!(cross.iter().all(|s| s.n_test > 0));

    let folds = std::fs::read_to_string(out.join("folds/speech.csv")).unwrap();
    assert_eq!(folds.lines().count(), 37);
    // A speaker's clips share one fold.
    for p in 0..4 {
        let mut f: Vec<&str> = folds
            .lines()
            .filter(|l| l.starts_with(&format!("speech_{p}_")))
            .map(|l| l.split(',').nth(1).unwrap())
            .collect();
        f.dedup();
        assert_eq!(f.len(), 1, "speaker {p}: folds {f:?}");
    }
    assert!(!out.join("folds/music.csv").exists());
    let record = std::fs::read_to_string(out.join("run.json")).unwrap();
    assert!(record.contains("skipped_within_music"), "{record}");
    for f in [
        "scores.csv",
        "scores.json",
        "scores.md",
        "confusion/speech_to_speech.csv",
        "confusion/music_to_speech.csv",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
}

#[test]
fn rows_of_unequal_length_are_refused_with_the_clip_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, mut features) = corpus(tmp.path());
    features[5].1.pop();
    let err = run(
        &SeparabilityConfig::default(),
        &manifest,
        &features,
        "test",
        &tmp.path().join("p"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains(&features[5].0), "{err}");
}

#[test]
fn every_cached_state_is_probed_and_missing_clips_are_recorded() {
    use emobridge_store::{ClipEntry, EmbeddingCache, EntryMetadata, StoredDtype};
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, features) = corpus(tmp.path());
    let cache_root = tmp.path().join("cache");
    let cache = EmbeddingCache::open(&cache_root, "m").unwrap();
    // State 0: the speaker offset only; state 1: the emotion features. Two frames per clip.
    for (id, row) in features.iter().skip(1) {
        let state0 = [row[2] as f32, row[3] as f32];
        let state1 = [row[0] as f32, row[1] as f32];
        let frames: Vec<f32> = [state0, state0, state1, state1].concat();
        let meta = EntryMetadata {
            model: "m".into(),
            hidden_state_convention: "n/a".into(),
            ..EntryMetadata::default()
        };
        let entry = ClipEntry::from_frames(frames, [2, 2, 2], StoredDtype::F32, meta).unwrap();
        cache.write(id, &entry).unwrap();
    }
    let out = tmp.path().join("by-layer");
    let outcome = emobridge_studies::separability::run_by_layer(
        &SeparabilityConfig::default(),
        &manifest,
        &cache,
        &out,
    )
    .unwrap();
    assert_eq!(outcome.layers.len(), 2);
    let speech_ua = |layer: usize| {
        outcome.layers[layer]
            .1
            .scores
            .iter()
            .find(|s| s.setting == "within" && s.test_domain == "speech")
            .unwrap()
            .unweighted_accuracy
    };
    assert_eq!(speech_ua(1), 1.0);
    assert!(
        speech_ua(0) < 0.7,
        "state 0 carries no emotion: {}",
        speech_ua(0)
    );
    let record = std::fs::read_to_string(out.join("run.json")).unwrap();
    assert!(
        record.contains(&features[0].0),
        "the uncached clip is listed: {record}"
    );
    for f in [
        "by_layer.csv",
        "by_layer.md",
        "ua_by_layer.png",
        "layer00/scores.csv",
        "layer01/folds/speech.csv",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
}

#[test]
fn a_clip_with_nan_features_is_left_out_and_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, mut features) = corpus(tmp.path());
    features[3].1[1] = f64::NAN;
    let out = tmp.path().join("p");
    let outcome = run(
        &SeparabilityConfig::default(),
        &manifest,
        &features,
        "test",
        &out,
    )
    .unwrap();
    let speech = outcome
        .scores
        .iter()
        .find(|s| s.setting == "within")
        .unwrap();
    assert_eq!(speech.n_test, 35);
    let record = std::fs::read_to_string(out.join("run.json")).unwrap();
    assert!(
        record.contains(&features[3].0) && record.contains("non-finite"),
        "{record}"
    );
}
