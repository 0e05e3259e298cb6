//! The fine-tuning study with a continuous target (`arousal`) on a small synthetic corpus with
//! the tiny 24 kHz MERT-like encoder: frozen and LoRA in both directions write finite Pearson r,
//! CCC and RMSE rows; rows without the value are skipped and counted; a target missing from a
//! domain and a rerun with another target are refused in one line.

use std::path::PathBuf;

use emobridge_corpus::synth::{generate, SynthConfig};
use emobridge_corpus::{Domain, Manifest};
use emobridge_ssl::Method;
use emobridge_studies::finetune::{run, Direction, FinetuneConfig, Target};

fn model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../emobridge-ssl/tests/fixtures/mert_like_24k")
}

fn corpus(dir: &std::path::Path) -> Manifest {
    let cfg = SynthConfig {
        clips_per_cell: 1,
        speakers: 4,
        performers: 4,
        continuous_per_domain: 0,
        clip_seconds: (1.0, 1.1),
        ..SynthConfig::default()
    };
    generate(dir, &cfg, &|_, _| {}).unwrap().manifest
}

fn arousal() -> FinetuneConfig {
    let mut c = FinetuneConfig {
        target: Target::Arousal,
        methods: vec![Method::Frozen, Method::Lora],
        directions: Direction::ALL.to_vec(),
        folds: 2,
        max_seconds: 1.0,
        ..FinetuneConfig::default()
    };
    c.train.epochs = 1;
    c.train.batch_size = 8;
    c.train.lr_encoder = 1e-3;
    c
}

#[test]
fn arousal_rows_carry_finite_r_ccc_rmse_and_reruns_with_another_target_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut manifest = corpus(&tmp.path().join("corpus"));
    // Two speech clips without an arousal value: skipped and counted.
    let mut cleared = 0;
    for r in manifest.records.iter_mut() {
        if r.domain == Domain::Speech && cleared < 2 {
            r.arousal = None;
            cleared += 1;
        }
    }
    let n_speech = manifest.of_domain(Domain::Speech).count();
    let n_music = manifest.of_domain(Domain::Music).count();
    let out = tmp.path().join("run");
    let cfg = arousal();
    let outcome = run(&cfg, &manifest, &model(), &out, &|_, _| {}).unwrap();
    assert_eq!(outcome.rows.len(), 2 * 2 * 2);
    assert!(outcome.labels.is_empty());
    assert_eq!(outcome.skipped_without_target[&Domain::Speech], 2);
    assert_eq!(outcome.skipped_without_target[&Domain::Music], 0);
    for r in &outcome.rows {
        assert_eq!(r.target, Target::Arousal);
        assert!(
            r.pearson.is_finite() && (-1.0..=1.0).contains(&r.pearson),
            "{r:?}"
        );
        assert!(r.ccc.is_finite() && (-1.0..=1.0).contains(&r.ccc), "{r:?}");
        assert!(r.rmse.is_finite() && r.rmse >= 0.0, "{r:?}");
        assert!(r.unweighted_accuracy.is_nan(), "{r:?}");
        let n = match r.direction {
            Direction::MusicToSpeech => n_speech - 2,
            Direction::SpeechToMusic => n_music,
        };
        assert_eq!(r.n_test, n, "{r:?}");
        assert_eq!(
            r.trainable_encoder == 0,
            r.method == Method::Frozen,
            "{r:?}"
        );
        assert_eq!(r.trainable_head, 32 + 1, "{r:?}");
    }
    let csv = std::fs::read_to_string(out.join("comparison.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(header.contains(",r,CCC,RMSE,"), "{header}");
    assert!(!header.contains("UA"), "{header}");
    assert_eq!(csv.lines().count(), 1 + 8);
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let text = record.to_string();
    assert!(
        text.contains(r#""skipped_without_target":{"music":0,"speech":2}"#),
        "{text}"
    );
    assert!(
        text.contains("gain_ccc_arousal_music-to-speech_lora"),
        "{text}"
    );
    // The same settings resume (every run finished: same rows); another target is refused.
    let again = run(&cfg, &manifest, &model(), &out, &|_, _| {}).unwrap();
    assert_eq!(again.resumed.len(), 2 * 2 * (1 + 2 * 2));
    let scores = |rows: &[emobridge_studies::finetune::ComparisonRow]| -> Vec<[u64; 3]> {
        rows.iter()
            .map(|r| [r.pearson.to_bits(), r.ccc.to_bits(), r.rmse.to_bits()])
            .collect()
    };
    assert_eq!(scores(&again.rows), scores(&outcome.rows));
    let err = run(
        &FinetuneConfig {
            target: Target::Valence,
            ..cfg.clone()
        },
        &manifest,
        &model(),
        &out,
        &|_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("other settings"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

#[test]
fn a_target_missing_from_a_domain_is_a_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut manifest = corpus(&tmp.path().join("corpus"));
    for r in manifest.records.iter_mut() {
        if r.domain == Domain::Music {
            r.valence = None;
        }
    }
    let cfg = FinetuneConfig {
        target: Target::Valence,
        methods: vec![Method::Frozen],
        directions: vec![Direction::SpeechToMusic],
        ..arousal()
    };
    let err = run(&cfg, &manifest, &model(), &tmp.path().join("a"), &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("music has 0 clip(s) with a `valence` value"),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");
    // The TOML key and the CLI spelling.
    let toml_path = tmp.path().join("c.toml");
    std::fs::write(
        &toml_path,
        "target = \"arousal\"\nregression_loss = \"ccc\"\n",
    )
    .unwrap();
    let c = FinetuneConfig::from_toml_file(&toml_path).unwrap();
    assert_eq!(c.target, Target::Arousal);
    assert_eq!(Target::parse("valence"), Some(Target::Valence));
    assert_eq!(Target::parse("dominance"), None);
    assert_eq!(FinetuneConfig::default().target, Target::Emotion);
}
