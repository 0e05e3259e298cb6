//! The plain route (`TrainConfig::ops = plain`: candle's composed ops and candle's conv for the
//! frozen feature encoder, the code a GPU runs) against the fused CPU route: the same losses,
//! updated weights and predictions within 1e-5 after three optimiser steps, for every method,
//! on a group-norm and a layer-norm (masked, pre-LN) model. This is what vouches for the GPU
//! route without a GPU: off the CPU every fused op falls back to exactly this plain route.
//! (The gradients themselves are compared in `train.rs`'s unit tests.)

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use emobridge_ssl::train::{
    Example, FineTuner, HeadKind, Ops, Pooling, Schedule, Task, TrainConfig, TrainReport,
};
use emobridge_ssl::weights::{read_tensors, weight_files};
use emobridge_ssl::{EncoderConfig, Method, PeftConfig, TrainableEncoder, WeightSource};

mod common;
use common::max_abs_diff;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// Four clips of two lengths per class pair: a layer-norm model pads and masks each batch of
/// two, a group-norm model trains per length.
fn examples() -> Vec<Example> {
    [1200usize, 1200, 1500, 1500]
        .iter()
        .enumerate()
        .map(|(i, &n)| Example {
            samples: (0..n)
                .map(|j| ((j * (i + 2)) as f32 * 0.05).sin() * 0.3 + (j as f32 * 0.011).cos() * 0.1)
                .collect(),
            label: i % 3,
            values: Vec::new(),
        })
        .collect()
}

fn config(ops: Ops, pooling: Pooling, head: HeadKind) -> TrainConfig {
    TrainConfig {
        pooling,
        head,
        mlp_hidden: 8,
        epochs: 3,
        batch_size: 2,
        grad_accum: 2,
        // The default learning rates (5e-5 encoder side, 1e-3 head).
        weight_decay: 0.01,
        warmup_share: 0.0,
        schedule: Schedule::Linear,
        clip_norm: 0.5,
        patience: 0,
        seed: 11,
        ops,
        ..TrainConfig::default()
    }
}

struct Outcome {
    report: TrainReport,
    weights: HashMap<String, Tensor>,
    predictions: Vec<Vec<f32>>,
}

fn train(model: &str, peft: &PeftConfig, cfg: TrainConfig) -> Outcome {
    let dir = fixture(model);
    let ecfg = EncoderConfig::from_file(&dir.join("config.json")).unwrap();
    let source = WeightSource::new(read_tensors(&weight_files(&dir).unwrap()).unwrap());
    let enc = TrainableEncoder::new(&ecfg, &source, peft, &Device::Cpu, 5).unwrap();
    let task = Task::Classification {
        classes: 3,
        class_weights: Some(vec![1.0, 2.0, 0.5]),
    };
    let mut t = FineTuner::new(enc, task, cfg).unwrap();
    let data = examples();
    let report = t.train(&data, &[], &|_, _| {}).unwrap();
    let mut weights: HashMap<String, Tensor> = t.encoder.checkpoint_tensors().into_iter().collect();
    for (k, v) in t.head.vars().data().lock().unwrap().iter() {
        weights.insert(k.clone(), v.as_tensor().clone());
    }
    let predictions = t.predict(&data).unwrap();
    Outcome {
        report,
        weights,
        predictions,
    }
}

#[test]
fn the_plain_route_trains_like_the_fused_one_for_every_method() {
    let mut largest = 0f32;
    for (model, pooling, head) in [
        ("wav2vec2_group_postln", Pooling::Mean, HeadKind::Linear),
        ("wav2vec2_layer_preln", Pooling::Attentive, HeadKind::Mlp),
    ] {
        let mut cases: Vec<(String, PeftConfig)> = Method::ALL
            .iter()
            .map(|&m| {
                let mut p = PeftConfig::with_method(m);
                p.lora.r = 2;
                p.lora.dropout = 0.1;
                p.adapter.bottleneck = 4;
                (m.as_str().to_string(), p)
            })
            .collect();
        // The whole model, the conv feature encoder included (its norms under autograd).
        let mut cnn = PeftConfig::with_method(Method::Full);
        cnn.train_feature_encoder = true;
        cases.push(("full+feature-encoder".into(), cnn));
        for (name, peft) in cases {
            let what = format!("{model} {name}");
            let fused = train(model, &peft, config(Ops::Fused, pooling, head));
            let plain = train(model, &peft, config(Ops::Plain, pooling, head));
            assert_eq!(fused.report.optimizer_steps, 3, "{what}");
            assert_eq!(plain.report.optimizer_steps, 3, "{what}");
            for (a, b) in fused.report.curve.iter().zip(&plain.report.curve) {
                let d = (a.train_loss - b.train_loss).abs();
                assert!(a.train_loss.is_finite(), "{what}");
                assert!(
                    d <= 1e-5,
                    "{what}: loss {} vs {}",
                    a.train_loss,
                    b.train_loss
                );
                largest = largest.max(d as f32);
            }
            assert_eq!(fused.weights.len(), plain.weights.len(), "{what}");
            for (k, a) in &fused.weights {
                // The key bias shifts every score of a query alike, and the attentive pooling's
                // score bias every frame's score, which softmax ignores: their gradients are
                // zero in exact arithmetic and Adam scales each route's rounding noise up to
                // full-size steps of random sign (as in the PyTorch parity test).
                if k.ends_with(".k_proj.bias") || k == "head.attention.bias" {
                    continue;
                }
                let d = max_abs_diff(a, &plain.weights[k]);
                assert!(d <= 1e-5, "{what}: {k} differs by {d:e}");
                largest = largest.max(d);
            }
            for (a, b) in fused.predictions.iter().zip(&plain.predictions) {
                for (x, y) in a.iter().zip(b) {
                    assert!((x - y).abs() <= 1e-5, "{what}: prediction {x} vs {y}");
                    largest = largest.max((x - y).abs());
                }
            }
        }
    }
    // Two different codes: some value differs in its last bits (the switch took effect).
    assert!(largest > 0.0, "the plain route gave the fused route's bits");
}

/// `ops = fused` stays out of the serialised settings (so default runs' settings and resume
/// fingerprints are unchanged); `plain` is written and read back.
#[test]
fn the_default_route_is_not_written_and_plain_round_trips() {
    let json = serde_json::to_value(TrainConfig::default()).unwrap();
    assert!(json.get("ops").is_none(), "{json}");
    let plain = TrainConfig {
        ops: Ops::Plain,
        ..TrainConfig::default()
    };
    let json = serde_json::to_string(&plain).unwrap();
    assert!(json.contains("\"ops\":\"plain\""), "{json}");
    let back: TrainConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back.ops, Ops::Plain);
}
