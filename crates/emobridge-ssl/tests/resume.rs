//! Resuming an interrupted training run: the state saved at an epoch's end or inside an epoch
//! (parameters, AdamW moments and step, shuffle and dropout generators, batch order, best-on-dev
//! snapshot) continues to bit-identical parameters and report; a diverging step leaves the last
//! good state; a state of other settings is refused.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use candle_core::Device;
use emobridge_ssl::train::{Example, FineTuner, Schedule, Task, TrainConfig, TrainError};
use emobridge_ssl::weights::{read_tensors, weight_files};
use emobridge_ssl::{EncoderConfig, Method, PeftConfig, TrainableEncoder, WeightSource};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// LoRA with dropout on (its generator is part of the state), on the layer-norm fixture
/// (padded batches of unequal lengths).
fn tuner(cfg: TrainConfig) -> FineTuner {
    let dir = fixture("wav2vec2_layer_preln");
    let ecfg = EncoderConfig::from_file(&dir.join("config.json")).unwrap();
    let source = WeightSource::new(read_tensors(&weight_files(&dir).unwrap()).unwrap());
    let mut peft = PeftConfig::with_method(Method::Lora);
    peft.lora.dropout = 0.2;
    let enc = TrainableEncoder::new(&ecfg, &source, &peft, &Device::Cpu, 5).unwrap();
    FineTuner::new(
        enc,
        Task::Classification {
            classes: 2,
            class_weights: Some(vec![1.0, 1.5]),
        },
        cfg,
    )
    .unwrap()
}

fn config() -> TrainConfig {
    TrainConfig {
        epochs: 3,
        batch_size: 2,
        lr_encoder: 1e-2,
        lr_head: 1e-2,
        warmup_share: 0.2,
        schedule: Schedule::Cosine,
        patience: 0,
        checkpoint_every: 1,
        seed: 11,
        ..TrainConfig::default()
    }
}

fn examples(n: usize) -> Vec<Example> {
    (0..n)
        .map(|i| Example {
            samples: (0..800 + 160 * (i % 3))
                .map(|j| ((j * (i + 2)) as f32 * 0.05).sin() * 0.3)
                .collect(),
            label: i % 2,
            values: Vec::new(),
        })
        .collect()
}

fn weights(t: &FineTuner) -> Vec<Vec<f32>> {
    let mut out: Vec<Vec<f32>> = t
        .encoder
        .checkpoint_tensors()
        .into_iter()
        .map(|(_, v)| v.flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    t.save_checkpoint(dir.path(), "fixture").unwrap();
    out.push(
        std::fs::read(dir.path().join("head.safetensors"))
            .unwrap()
            .iter()
            .map(|&b| b as f32)
            .collect(),
    );
    out
}

#[test]
fn a_run_interrupted_at_an_epoch_end_resumes_bit_identically() {
    let (train, dev) = (examples(6), examples(3));
    let mut whole = tuner(config());
    let want = whole.train(&train, &dev, &|_, _| {}).unwrap();

    let state = tempfile::tempdir().unwrap();
    let mut first = tuner(config());
    let interrupted = catch_unwind(AssertUnwindSafe(|| {
        first.train_resumable(
            &train,
            &dev,
            &|epoch, _| {
                if epoch == 2 {
                    panic!("interrupted before epoch 3");
                }
            },
            Some(state.path()),
        )
    }));
    assert!(interrupted.is_err());
    let mut second = tuner(config());
    let got = second
        .train_resumable(&train, &dev, &|_, _| {}, Some(state.path()))
        .unwrap();
    assert_eq!(got.optimizer_steps, want.optimizer_steps);
    assert_eq!(got.best_epoch, want.best_epoch);
    assert_eq!(
        serde_json::to_string(&got.curve).unwrap(),
        serde_json::to_string(&want.curve).unwrap()
    );
    assert_eq!(weights(&second), weights(&whole));
}

#[test]
fn a_diverging_step_keeps_the_last_good_state_and_a_clean_rerun_continues_from_it() {
    let (train, dev) = (examples(6), examples(3));
    let mut whole = tuner(config());
    let want = whole.train(&train, &dev, &|_, _| {}).unwrap();

    // Clip 5 turns to NaN: the step that meets it fails, inside epoch 1, after good steps.
    let mut broken = train.clone();
    broken[5].samples[7] = f32::NAN;
    let state = tempfile::tempdir().unwrap();
    let mut first = tuner(config());
    let err = first
        .train_resumable(&broken, &dev, &|_, _| {}, Some(state.path()))
        .unwrap_err();
    let TrainError::Diverged { step, .. } = err else {
        panic!("{err}")
    };
    assert!(step >= 1, "the NaN clip came first; choose another seed");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.path().join("state.json")).unwrap()).unwrap();
    assert_eq!(
        record["step"], step,
        "the last good state is the step before"
    );
    let files: Vec<String> = std::fs::read_dir(state.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        files.len(),
        2,
        "one tensors file beside state.json: {files:?}"
    );

    // The same settings and sizes with the clean clip resume inside the epoch.
    let mut second = tuner(config());
    let got = second
        .train_resumable(&train, &dev, &|_, _| {}, Some(state.path()))
        .unwrap();
    assert_eq!(got.optimizer_steps, want.optimizer_steps);
    assert_eq!(
        serde_json::to_string(&got.curve).unwrap(),
        serde_json::to_string(&want.curve).unwrap()
    );
    assert_eq!(weights(&second), weights(&whole));
}

#[test]
fn a_state_of_other_settings_is_refused() {
    let (train, dev) = (examples(4), examples(2));
    let state = tempfile::tempdir().unwrap();
    tuner(TrainConfig {
        epochs: 1,
        ..config()
    })
    .train_resumable(&train, &dev, &|_, _| {}, Some(state.path()))
    .unwrap();
    let err = tuner(TrainConfig {
        lr_head: 0.5,
        ..config()
    })
    .train_resumable(&train, &dev, &|_, _| {}, Some(state.path()))
    .unwrap_err()
    .to_string();
    assert!(err.contains("other data or settings"), "{err}");
}

/// The frozen encoder's hidden-state cache knows clips by content: predicting new clips after
/// training (their indices reused) gives what a fresh model with the same head gives.
#[test]
fn a_frozen_model_predicts_new_clips_from_their_own_states() {
    let dir = fixture("wav2vec2_layer_preln");
    let ecfg = EncoderConfig::from_file(&dir.join("config.json")).unwrap();
    let source = WeightSource::new(read_tensors(&weight_files(&dir).unwrap()).unwrap());
    let make = || {
        let peft = PeftConfig::with_method(Method::Frozen);
        let enc = TrainableEncoder::new(&ecfg, &source, &peft, &Device::Cpu, 5).unwrap();
        let task = Task::Classification {
            classes: 2,
            class_weights: None,
        };
        FineTuner::new(enc, task, config()).unwrap()
    };
    let train = examples(4);
    let test: Vec<Example> = examples(8).into_iter().skip(4).collect();
    let mut trained = make();
    trained.train(&train, &[], &|_, _| {}).unwrap();
    let got = trained.predict(&test).unwrap();
    let ckpt = tempfile::tempdir().unwrap();
    trained.save_checkpoint(ckpt.path(), "fixture").unwrap();
    let mut fresh = make();
    fresh.load_checkpoint(ckpt.path()).unwrap();
    assert_eq!(got, fresh.predict(&test).unwrap());
}
