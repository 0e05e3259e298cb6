//! The emotion probe on features that encode the emotion (plus speaker offsets and noise), and on
//! a domain that cannot be split by speaker.

use emobridge_corpus::Manifest;
use emobridge_studies::separability::{run, Head, Normalize, SeparabilityConfig, Target};

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
    assert_eq!(speech.runs, 12, "4 folds × 3 seeds");
    assert_eq!(speech.unweighted_accuracy, 1.0, "{speech:?}");
    assert_eq!(speech.ua_std, 0.0);
    assert!((speech.chance_ua - 1.0 / 3.0).abs() < 1e-12);

    let cross: Vec<_> = outcome
        .scores
        .iter()
        .filter(|s| s.setting == "cross")
        .collect();
    assert_eq!(cross.len(), 2);
    assert!(cross.iter().all(|s| s.n_test > 0));

    let folds = std::fs::read_to_string(out.join("folds/speech_seed0.csv")).unwrap();
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
    assert!(!out.join("folds/music_seed0.csv").exists());
    let record = std::fs::read_to_string(out.join("run.json")).unwrap();
    assert!(
        record.contains("within_music") && record.contains("fewer than two speakers"),
        "{record}"
    );
    assert!(record.contains("\"normalize\": \"per-domain\""), "{record}");
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(
        config.contains("normalize = \"per-domain\"") && config.contains("[mlp]"),
        "{config}"
    );
    for f in [
        "scores.csv",
        "scores.json",
        "scores.md",
        "transfer_matrix.csv",
        "best_state.csv",
        "transfer_by_state.svg",
        "transfer_by_state.png",
        "confusion/state00_music_to_speech.csv",
        "confusion/state00_speech_to_music.csv",
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
        &cache_root,
        "m",
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
        "transfer_matrix.csv",
        "transfer_matrix.md",
        "transfer_by_state.png",
        "best_state.csv",
        "folds/speech_seed2.csv",
        "confusion/state01_speech_to_music.csv",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let best = std::fs::read_to_string(out.join("best_state.csv")).unwrap();
    assert!(best.contains("within_speech,1,1"), "{best}");

    // The weighted sum of both states learns to rely on state 1.
    let config = SeparabilityConfig {
        head: Some(Head::WeightedSum),
        seeds: 1,
        mlp: emobridge_learn::MlpConfig {
            hidden: vec![8],
            learning_rate: 0.01,
            dropout: 0.0,
            patience: 30,
            ..Default::default()
        },
        ..SeparabilityConfig::default()
    };
    let ws = emobridge_studies::separability::run_by_layer(
        &config,
        &manifest,
        &cache_root,
        "m",
        &tmp.path().join("ws"),
    )
    .unwrap();
    assert!(ws.layers.is_empty());
    let scores = &ws.weighted.as_ref().unwrap().scores;
    let within = scores.iter().find(|s| s.key() == "within_speech").unwrap();
    assert!(within.unweighted_accuracy > 0.8, "{within:?}");
    let (w, _) = &ws.layer_weights["within_speech"];
    assert!(w[1] > w[0], "layer weights {w:?}");
    assert!(tmp.path().join("ws/layer_weights.svg").is_file());
}

/// Arousal on the same features: ridge finds it, and a mismatched head is refused by rule.
#[test]
fn arousal_is_regressed_with_ridge_and_scored_with_r_ccc_rmse() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, features) = corpus(tmp.path());
    let mut text =
        String::from("id,path,domain,corpus,speaker,emotion,arousal,valence,split,annotation\n");
    for r in &manifest.records {
        let e = EMOTIONS
            .iter()
            .position(|e| *e == r.emotion.unwrap().as_str())
            .unwrap();
        text.push_str(&format!(
            "{},{}.wav,{},t,{},{},{},,,\n",
            r.id,
            r.id,
            r.domain.as_str(),
            r.speaker,
            EMOTIONS[e],
            e as f64 * 0.5 - 0.5
        ));
    }
    std::fs::write(tmp.path().join("av.csv"), text).unwrap();
    let manifest = Manifest::read(tmp.path().join("av.csv")).unwrap();
    let config = SeparabilityConfig {
        target: Target::Arousal,
        // 27 training rows: the default α = 30 shrinks the predictions (CCC 0.75).
        ridge_alpha: 1.0,
        ..SeparabilityConfig::default()
    };
    assert_eq!(config.effective_head(), Head::Ridge);
    let out = run(&config, &manifest, &features, "test", &tmp.path().join("r")).unwrap();
    let s = out
        .scores
        .iter()
        .find(|s| s.key() == "within_speech")
        .unwrap();
    assert!(s.pearson > 0.9 && s.ccc > 0.8 && s.rmse < 0.3, "{s:?}");
    assert!(s.unweighted_accuracy.is_nan());
    let scores = std::fs::read_to_string(tmp.path().join("r/scores.csv")).unwrap();
    assert!(
        scores
            .lines()
            .next()
            .unwrap()
            .contains("pearson,pearson_std,ccc"),
        "{scores}"
    );
    let err = run(
        &SeparabilityConfig {
            head: Some(Head::Logreg),
            ..config
        },
        &manifest,
        &features,
        "test",
        &tmp.path().join("bad"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("logreg predicts categories"), "{err}");
}

/// Labels in one domain only, constant and all-NaN columns: handled by rule and named.
#[test]
fn bad_columns_and_one_domain_labels_are_handled_by_rule_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, mut features) = corpus(tmp.path());
    for (_, row) in features.iter_mut() {
        row.push(3.0); // constant
        row.push(f64::NAN); // never finite
    }
    // Music loses `angry`: the label is now in speech only.
    let mut text = std::fs::read_to_string(tmp.path().join("manifest.csv")).unwrap();
    text = text
        .lines()
        .filter(|l| !(l.starts_with("music_") && l.contains(",angry,")))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str("unlabelled,u.wav,speech,t,speech0,,,,,\n");
    std::fs::write(tmp.path().join("m2.csv"), text).unwrap();
    let manifest2 = Manifest::read(tmp.path().join("m2.csv")).unwrap();
    let _ = manifest;
    let out = tmp.path().join("p");
    let outcome = run(
        &SeparabilityConfig::default(),
        &manifest2,
        &features,
        "test",
        &out,
    )
    .unwrap();
    assert_eq!(outcome.labels.len(), 2, "shared set: happy, sad");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let notes = &record["notes"];
    assert_eq!(notes["labels_only_in_speech"][0], "angry", "{notes}");
    assert_eq!(notes["clips_without_target"]["count"], 1, "{notes}");
    assert_eq!(
        notes["clips_without_target"]["first"][0], "unlabelled",
        "{notes}"
    );
    assert_eq!(notes["clips_outside_shared_labels"]["count"], 12, "{notes}");
    assert!(
        notes["dropped_nonfinite_columns"][0]
            .as_str()
            .unwrap()
            .contains("column 5"),
        "{notes}"
    );
    assert_eq!(
        notes["constant_columns"]["columns"]["state 0"][0], 4,
        "{notes}"
    );
    assert!(
        record["failures"].as_array().unwrap().is_empty(),
        "{record}"
    );
    let headline = record["headlines"].as_array().unwrap();
    assert!(headline.iter().any(|h| h["key"] == "label_set"
        && h["text"]
            .as_str()
            .unwrap()
            .contains("2 emotions both domains have")));
}

#[test]
fn config_round_trips_through_toml_and_unknown_or_absurd_values_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = SeparabilityConfig {
        normalize: Normalize::PerSpeaker,
        head: Some(Head::Mlp),
        seeds: 2,
        ..SeparabilityConfig::default()
    };
    let path = tmp.path().join("c.toml");
    std::fs::write(&path, cfg.to_toml()).unwrap();
    assert_eq!(SeparabilityConfig::from_toml(&path).unwrap(), cfg);
    std::fs::write(&path, "normalize = \"per-corpus\"\n[mlp]\nhidden = [64]\n").unwrap();
    let partial = SeparabilityConfig::from_toml(&path).unwrap();
    assert_eq!(partial.normalize, Normalize::PerCorpus);
    assert_eq!(partial.mlp.hidden, vec![64]);
    assert_eq!(partial.folds, 4);
    std::fs::write(&path, "fodls = 3\n").unwrap();
    let err = SeparabilityConfig::from_toml(&path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("fodls"), "{err}");
    std::fs::write(&path, "seeds = 0\n").unwrap();
    let err = SeparabilityConfig::from_toml(&path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("seeds"), "{err}");
    std::fs::write(&path, "head = \"mlp\"\n[mlp]\ndropout = 1.5\n").unwrap();
    let err = SeparabilityConfig::from_toml(&path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("dropout"), "{err}");
    assert!("per-everything"
        .parse::<Normalize>()
        .unwrap_err()
        .contains("per-domain"));
}

/// Per-speaker normalisation removes a speaker offset that `train` normalisation keeps.
#[test]
fn every_normalisation_and_head_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, features) = corpus(tmp.path());
    for normalize in [
        Normalize::Train,
        Normalize::PerDomain,
        Normalize::PerSpeaker,
        Normalize::PerCorpus,
    ] {
        for head in [Head::Logreg, Head::Mlp, Head::WeightedSum] {
            let cfg = SeparabilityConfig {
                normalize,
                head: Some(head),
                seeds: 1,
                class_weight: emobridge_studies::separability::ClassWeight::Balanced,
                ..SeparabilityConfig::default()
            };
            let o = run(&cfg, &manifest, &features, "test", &tmp.path().join("n")).unwrap();
            let s = o
                .scores
                .iter()
                .find(|s| s.key() == "within_speech")
                .unwrap();
            assert!(
                s.unweighted_accuracy > 0.8,
                "{normalize} {head}: {}",
                s.unweighted_accuracy
            );
        }
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
