//! The two-stage fine-tuning study end to end on a small synthetic corpus with the tiny fixture
//! encoder: every method, both directions, the comparison table, curves, checkpoints and
//! trainable-parameter counts; and its refusals.

use std::path::PathBuf;

use emobridge_corpus::synth::{generate, SynthConfig};
use emobridge_corpus::{Domain, Manifest};
use emobridge_ssl::Method;
use emobridge_studies::finetune::{run, Direction, FinetuneConfig};

fn model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../emobridge-ssl/tests/fixtures/wav2vec2_layer_preln")
}

fn corpus(dir: &std::path::Path) -> Manifest {
    let cfg = SynthConfig {
        clips_per_cell: 1,
        speakers: 4,
        performers: 4,
        continuous_per_domain: 0,
        clip_seconds: (0.6, 0.8),
        ..SynthConfig::default()
    };
    generate(dir, &cfg, &|_, _| {}).unwrap().manifest
}

fn small() -> FinetuneConfig {
    let mut c = FinetuneConfig {
        folds: 2,
        max_seconds: 0.5,
        ..FinetuneConfig::default()
    };
    c.train.epochs = 2;
    c.train.batch_size = 8;
    c.train.lr_encoder = 1e-3;
    c.peft.adapter.bottleneck = 4;
    c
}

#[test]
fn every_method_runs_both_directions_and_writes_the_comparison() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = corpus(&tmp.path().join("corpus"));
    let out = tmp.path().join("run");
    let cfg = small();
    let outcome = run(&cfg, &manifest, &model(), &out, &|_, _| {}).unwrap();
    assert_eq!(outcome.rows.len(), Method::ALL.len() * 2 * 2);
    assert_eq!(outcome.labels.len(), 6);
    for r in &outcome.rows {
        for v in [r.unweighted_accuracy, r.weighted_accuracy, r.macro_f1] {
            assert!((0.0..=1.0).contains(&v), "{r:?}");
        }
        assert_eq!(r.n_test, 24);
        let frozen = matches!(r.method, Method::Frozen | Method::WeightedSum);
        assert_eq!(r.trainable_encoder == 0, frozen, "{r:?}");
    }
    let lora = outcome
        .rows
        .iter()
        .find(|r| r.method == Method::Lora)
        .unwrap();
    let full = outcome
        .rows
        .iter()
        .find(|r| r.method == Method::Full)
        .unwrap();
    assert!(lora.trainable_encoder < full.trainable_encoder);
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let text = record.to_string();
    assert!(text.contains("trainable_parameters"), "{text}");
    for f in [
        "comparison.csv",
        "comparison.md",
        "curves.json",
        "curves_music-to-speech.svg",
        "curves_speech-to-music.png",
        "checkpoints/music-to-speech/lora/adapter_model.safetensors",
        "checkpoints/music-to-speech/lora/adapter_config.json",
        "checkpoints/speech-to-music/bitfit/head.safetensors",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let cfg_json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("checkpoints/music-to-speech/lora/adapter_config.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(cfg_json["peft_type"], "LORA");
    assert_eq!(cfg_json["r"], 8);
    // Deterministic from the seed.
    let again = run(
        &FinetuneConfig {
            methods: vec![Method::Lora],
            directions: vec![Direction::MusicToSpeech],
            ..cfg.clone()
        },
        &manifest,
        &model(),
        &tmp.path().join("again"),
        &|_, _| {},
    )
    .unwrap();
    for r in &again.rows {
        let first = outcome
            .rows
            .iter()
            .find(|o| o.method == r.method && o.direction == r.direction && o.setting == r.setting)
            .unwrap();
        assert_eq!(first.unweighted_accuracy, r.unweighted_accuracy);
    }
}

#[test]
fn bad_corpora_and_settings_end_in_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = corpus(&tmp.path().join("corpus"));
    let one = FinetuneConfig {
        methods: vec![Method::Frozen],
        directions: vec![Direction::SpeechToMusic],
        ..small()
    };
    // Too few clips per label for the folds.
    let err = run(
        &FinetuneConfig {
            folds: 5,
            ..one.clone()
        },
        &manifest,
        &model(),
        &tmp.path().join("a"),
        &|_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("per label"), "{err}");
    // A run folder that a live process is writing (its pid in resume/lock) is refused.
    let busy = tmp.path().join("busy");
    std::fs::create_dir_all(busy.join("resume")).unwrap();
    let live = std::os::unix::process::parent_id();
    std::fs::write(busy.join("resume/lock"), live.to_string()).unwrap();
    let err = run(&one, &manifest, &model(), &busy, &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("another process"), "{err}");
    // No label shared between the domains.
    let mut music_only = manifest.clone();
    music_only.records.retain(|r| r.domain == Domain::Music);
    let err = run(
        &one,
        &music_only,
        &model(),
        &tmp.path().join("b"),
        &|_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("share 0 emotion"), "{err}");
    // A LoRA target that does not exist.
    let mut bad = one.clone();
    bad.methods = vec![Method::Lora];
    bad.peft.lora.targets = vec!["query".into()];
    let err = run(&bad, &manifest, &model(), &tmp.path().join("c"), &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("`query`") && err.contains("q_proj"), "{err}");
    // Absurd option values.
    let mut bad = one.clone();
    bad.dev_share = 2.0;
    assert!(run(&bad, &manifest, &model(), &tmp.path().join("d"), &|_, _| {}).is_err());
    // A config file with an unknown key names it.
    let toml_path = tmp.path().join("c.toml");
    std::fs::write(&toml_path, "folds = 3\n[train]\nepochs = 1\nbogus = 2\n").unwrap();
    let err = FinetuneConfig::from_toml_file(&toml_path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bogus"), "{err}");
    std::fs::write(
        &toml_path,
        "folds = 3\nmethods = [\"lora\", \"bitfit\"]\n[lora]\n",
    )
    .unwrap();
    assert!(FinetuneConfig::from_toml_file(&toml_path).is_err());
    std::fs::write(
        &toml_path,
        "folds = 3\nmethods = [\"lora\", \"bitfit\"]\n[peft.lora]\nr = 4\n",
    )
    .unwrap();
    let c = FinetuneConfig::from_toml_file(&toml_path).unwrap();
    assert_eq!(c.folds, 3);
    assert_eq!(c.peft.lora.r, 4);
    assert_eq!(c.methods, vec![Method::Lora, Method::BitFit]);
}
