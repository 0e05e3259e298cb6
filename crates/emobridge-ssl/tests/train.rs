//! The training loop's rules: schedule shape, gradient accumulation = one big batch, the
//! regression losses, divergence stops with an error and leaves a good checkpoint alone,
//! absurd settings are refused.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use emobridge_ssl::train::{
    loss, lr_factor, Example, FineTuner, RegressionLoss, Schedule, Task, TrainConfig, TrainError,
};
use emobridge_ssl::weights::{read_tensors, weight_files};
use emobridge_ssl::{EncoderConfig, Method, PeftConfig, TrainableEncoder, WeightSource};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

fn tuner(method: Method, train: TrainConfig) -> FineTuner {
    let dir = fixture("wav2vec2_group_postln");
    let cfg = EncoderConfig::from_file(&dir.join("config.json")).unwrap();
    let source = WeightSource::new(read_tensors(&weight_files(&dir).unwrap()).unwrap());
    let mut peft = PeftConfig::with_method(method);
    peft.lora.dropout = 0.0;
    let enc = TrainableEncoder::new(&cfg, &source, &peft, &Device::Cpu, 3).unwrap();
    FineTuner::new(
        enc,
        Task::Classification {
            classes: 2,
            class_weights: None,
        },
        train,
    )
    .unwrap()
}

fn examples(n: usize) -> Vec<Example> {
    (0..n)
        .map(|i| Example {
            samples: (0..1200)
                .map(|j| ((j * (i + 2)) as f32 * 0.05).sin() * 0.3)
                .collect(),
            label: i % 2,
            values: Vec::new(),
        })
        .collect()
}

fn quiet() -> TrainConfig {
    TrainConfig {
        epochs: 1,
        warmup_share: 0.0,
        schedule: Schedule::Constant,
        clip_norm: 0.0,
        patience: 0,
        lr_encoder: 1e-2,
        lr_head: 1e-2,
        ..TrainConfig::default()
    }
}

#[test]
fn warm_up_then_linear_or_cosine_decay() {
    assert_eq!(lr_factor(0, 10, 2, Schedule::Linear), 0.5);
    assert_eq!(lr_factor(1, 10, 2, Schedule::Linear), 1.0);
    assert_eq!(lr_factor(2, 10, 2, Schedule::Linear), 1.0);
    assert!((lr_factor(6, 10, 2, Schedule::Linear) - 0.5).abs() < 1e-12);
    assert!((lr_factor(6, 10, 2, Schedule::Cosine) - 0.5).abs() < 1e-12);
    assert!(lr_factor(9, 10, 2, Schedule::Cosine) < 0.05);
    assert_eq!(lr_factor(9, 10, 0, Schedule::Constant), 1.0);
}

#[test]
fn accumulating_two_batches_equals_one_batch_of_both() {
    let data = examples(4);
    let run = |batch_size, grad_accum| {
        let mut t = tuner(
            Method::Lora,
            TrainConfig {
                batch_size,
                grad_accum,
                ..quiet()
            },
        );
        let r = t.train(&data, &[], &|_, _| {}).unwrap();
        assert_eq!(r.optimizer_steps, 1);
        t.encoder
            .checkpoint_tensors()
            .into_iter()
            .map(|(_, v)| v.flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .collect::<Vec<_>>()
    };
    let one = run(4, 1);
    let acc = run(2, 2);
    for (a, b) in one.iter().zip(&acc) {
        let d = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(d < 1e-5, "{d}");
    }
}

#[test]
fn regression_losses_follow_their_formulas() {
    let out = Tensor::new(&[[0.5f32, 1.0], [1.5, -1.0], [2.0, 0.0]], &Device::Cpu).unwrap();
    let ex: Vec<Example> = [[1.0f32, 0.5], [2.0, -0.5], [2.5, 0.5]]
        .iter()
        .map(|v| Example {
            samples: vec![],
            label: 0,
            values: v.to_vec(),
        })
        .collect();
    let refs: Vec<&Example> = ex.iter().collect();
    let mse = loss(
        &Task::Regression {
            outputs: 2,
            loss: RegressionLoss::Mse,
        },
        &out,
        &refs,
    )
    .unwrap()
    .to_scalar::<f32>()
    .unwrap();
    let want_mse = (0.25 + 0.25 + 0.25 + 0.25 + 0.25 + 0.25) / 6.0;
    assert!((mse - want_mse).abs() < 1e-6);
    // CCC per column with population moments, loss = 1 − mean.
    let ccc = |x: [f64; 3], y: [f64; 3]| {
        let mx = x.iter().sum::<f64>() / 3.0;
        let my = y.iter().sum::<f64>() / 3.0;
        let vx = x.iter().map(|v| (v - mx).powi(2)).sum::<f64>() / 3.0;
        let vy = y.iter().map(|v| (v - my).powi(2)).sum::<f64>() / 3.0;
        let c = x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - mx) * (b - my))
            .sum::<f64>()
            / 3.0;
        2.0 * c / (vx + vy + (mx - my).powi(2))
    };
    let want = 1.0
        - (ccc([0.5, 1.5, 2.0], [1.0, 2.0, 2.5]) + ccc([1.0, -1.0, 0.0], [0.5, -0.5, 0.5])) / 2.0;
    let got = loss(
        &Task::Regression {
            outputs: 2,
            loss: RegressionLoss::Ccc,
        },
        &out,
        &refs,
    )
    .unwrap()
    .to_scalar::<f32>()
    .unwrap();
    assert!((got as f64 - want).abs() < 1e-5, "{got} vs {want}");
}

#[test]
fn a_diverging_run_errors_and_keeps_the_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = tuner(Method::BitFit, quiet());
    t.train(&examples(2), &[], &|_, _| {}).unwrap();
    t.save_checkpoint(dir.path(), "fixture").unwrap();
    let good = std::fs::read(dir.path().join("adapter_model.safetensors")).unwrap();
    let mut bad = examples(2);
    bad[1].samples[10] = f32::NAN;
    let err = t.train(&bad, &[], &|_, _| {}).unwrap_err();
    assert!(matches!(err, TrainError::Diverged { .. }), "{err}");
    assert!(err.to_string().contains("NaN"), "{err}");
    // A NaN parameter is never written over the good checkpoint.
    let (_, var) = t.encoder.named_vars().into_iter().next().unwrap();
    let shape = var.shape().clone();
    var.set(&Tensor::full(f32::NAN, shape, &Device::Cpu).unwrap())
        .unwrap();
    let err = t.save_checkpoint(dir.path(), "fixture").unwrap_err();
    assert!(err.to_string().contains("NaN"), "{err}");
    assert_eq!(
        std::fs::read(dir.path().join("adapter_model.safetensors")).unwrap(),
        good
    );
}

#[test]
fn absurd_settings_are_refused() {
    for bad in [
        TrainConfig {
            epochs: 0,
            ..quiet()
        },
        TrainConfig {
            batch_size: 0,
            ..quiet()
        },
        TrainConfig {
            lr_head: f64::NAN,
            ..quiet()
        },
        TrainConfig {
            warmup_share: 1.5,
            ..quiet()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
    let mut t = tuner(Method::Frozen, quiet());
    assert!(t.train(&[], &[], &|_, _| {}).is_err());
    let bad_layer = TrainConfig {
        layer: Some(99),
        ..quiet()
    };
    let dir = fixture("wav2vec2_group_postln");
    let cfg = EncoderConfig::from_file(&dir.join("config.json")).unwrap();
    let source = WeightSource::new(read_tensors(&weight_files(&dir).unwrap()).unwrap());
    let enc = TrainableEncoder::new(
        &cfg,
        &source,
        &PeftConfig::with_method(Method::Frozen),
        &Device::Cpu,
        0,
    )
    .unwrap();
    let err = FineTuner::new(
        enc,
        Task::Classification {
            classes: 2,
            class_weights: None,
        },
        bad_layer,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("layer 99"), "{err}");
}
