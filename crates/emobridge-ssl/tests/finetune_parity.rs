//! Three AdamW steps of `FineTuner` against PyTorch (+ HF peft for LoRA) from the same initial
//! weights (fixtures of tools/fixtures/finetune_parity.py): losses and updated trainable weights
//! within 1e-4; and autograd gradients of LoRA / adapter / BitFit parameters against central
//! finite differences.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use emobridge_ssl::train::{
    loss, Example, FineTuner, HeadKind, Pooling, Schedule, Task, TrainConfig,
};
use emobridge_ssl::weights::{read_tensors, weight_files};
use emobridge_ssl::{
    AdapterKind, EncoderConfig, Method, PeftConfig, TrainableEncoder, WeightSource,
};

mod common;
use common::max_abs_diff;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

struct Case {
    examples: Vec<Example>,
    losses: Vec<f32>,
    init: HashMap<String, Tensor>,
    last: HashMap<String, Tensor>,
}

fn case(method: &str) -> Case {
    let t = candle_core::safetensors::load(
        fixture("finetune_parity").join(format!("{method}.safetensors")),
        &Device::Cpu,
    )
    .unwrap();
    let input = &t["input"];
    let labels: Vec<i64> = t["labels"].to_vec1().unwrap();
    let examples = labels
        .iter()
        .enumerate()
        .map(|(i, &l)| Example {
            samples: input.get(i).unwrap().to_vec1().unwrap(),
            label: l as usize,
            values: Vec::new(),
        })
        .collect();
    let pick = |prefix: &str| -> HashMap<String, Tensor> {
        t.iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
            .collect()
    };
    Case {
        examples,
        losses: t["losses"].to_vec1().unwrap(),
        init: pick("init/"),
        last: pick("final/"),
    }
}

fn peft(method: &str) -> PeftConfig {
    let mut p = PeftConfig::default();
    match method {
        "lora" => {
            p.method = Method::Lora;
            p.lora.r = 4;
            p.lora.alpha = 8.0;
            p.lora.dropout = 0.0;
        }
        "adapter" => {
            p.method = Method::Adapter;
            p.adapter.kind = AdapterKind::Houlsby;
            p.adapter.bottleneck = 4;
        }
        "bitfit" => p.method = Method::BitFit,
        _ => unreachable!(),
    }
    p
}

fn tuner(method: &str, state: &HashMap<String, Tensor>) -> FineTuner {
    let dir = fixture("wav2vec2_group_postln");
    let cfg = EncoderConfig::from_file(&dir.join("config.json")).unwrap();
    let source = WeightSource::new(read_tensors(&weight_files(&dir).unwrap()).unwrap());
    let enc = TrainableEncoder::new(&cfg, &source, &peft(method), &Device::Cpu, 3).unwrap();
    let train = TrainConfig {
        pooling: Pooling::Mean,
        head: HeadKind::Linear,
        epochs: 3,
        batch_size: 2,
        grad_accum: 1,
        lr_encoder: 1e-2,
        lr_head: 1e-2,
        weight_decay: 0.01,
        warmup_share: 0.0,
        schedule: Schedule::Constant,
        clip_norm: 0.0,
        patience: 0,
        ..TrainConfig::default()
    };
    let task = Task::Classification {
        classes: 3,
        class_weights: Some(vec![1.0, 2.0, 0.5]),
    };
    let t = FineTuner::new(enc, task, train).unwrap();
    // Start from the fixture's weights through the checkpoint reader.
    let tmp = tempfile::tempdir().unwrap();
    let (head, enc): (HashMap<_, _>, HashMap<_, _>) = state
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|(k, _)| k.starts_with("head."));
    candle_core::safetensors::save(&enc, tmp.path().join("adapter_model.safetensors")).unwrap();
    candle_core::safetensors::save(&head, tmp.path().join("head.safetensors")).unwrap();
    t.load_checkpoint(tmp.path()).unwrap();
    t
}

#[test]
fn three_adamw_steps_match_pytorch_and_peft() {
    for method in ["lora", "adapter", "bitfit"] {
        let c = case(method);
        let mut t = tuner(method, &c.init);
        assert_eq!(
            t.encoder.trainable_parameters() + t.trainable_head(),
            c.init.values().map(|v| v.elem_count()).sum::<usize>(),
            "{method}: trainable-parameter count"
        );
        let report = t.train(&c.examples, &[], &|_, _| {}).unwrap();
        assert_eq!(report.optimizer_steps, 3);
        for (e, want) in report.curve.iter().zip(&c.losses) {
            let d = (e.train_loss - *want as f64).abs();
            assert!(d <= 1e-4, "{method}: loss {} vs {want}", e.train_loss);
        }
        let mut got: HashMap<String, Tensor> = t.encoder.checkpoint_tensors().into_iter().collect();
        for (k, v) in t.head.vars().data().lock().unwrap().iter() {
            got.insert(k.clone(), v.as_tensor().clone());
        }
        assert_eq!(got.len(), c.last.len(), "{method}");
        for (k, want) in &c.last {
            // The key bias shifts every score of a query by the same amount, which softmax
            // ignores: its gradient is zero in exact arithmetic, and Adam scales the rounding
            // noise of each implementation up to full-size steps of random sign.
            if k.ends_with(".k_proj.bias") {
                continue;
            }
            let d = max_abs_diff(&got[k], want);
            assert!(d <= 1e-4, "{method}: {k} differs by {d:e}");
            // Something was actually learned (not only the identity).
            if k.contains("lora_B") || k.starts_with("head.") {
                assert!(
                    max_abs_diff(want, &c.init[k]) > 1e-4,
                    "{method}: {k} did not move"
                );
            }
        }
    }
}

/// Central differences of the loss along single entries of LoRA, adapter and BitFit
/// parameters (at the trained point, where LoRA's B is non-zero) against autograd.
#[test]
fn gradients_match_finite_differences() {
    for (method, probes) in [
        (
            "lora",
            vec![
                "base_model.model.encoder.layers.0.attention.q_proj.lora_A.weight",
                "base_model.model.encoder.layers.1.attention.v_proj.lora_B.weight",
            ],
        ),
        (
            "adapter",
            vec![
                "encoder.layers.0.attention.out_proj.adapter_down.weight",
                "encoder.layers.1.feed_forward.output_dense.adapter_up.bias",
            ],
        ),
        (
            "bitfit",
            vec![
                "encoder.layers.0.attention.q_proj.bias",
                "encoder.layers.1.feed_forward.intermediate_dense.bias",
            ],
        ),
    ] {
        let c = case(method);
        let t = tuner(method, &c.last);
        let x = Tensor::stack(
            &c.examples
                .iter()
                .map(|e| Tensor::new(e.samples.as_slice(), &Device::Cpu).unwrap())
                .collect::<Vec<_>>(),
            0,
        )
        .unwrap();
        let refs: Vec<&Example> = c.examples.iter().collect();
        let frames = t.encoder.encoder().config().frames_for(x.dim(1).unwrap());
        let mask = Tensor::ones((2, frames), candle_core::DType::F32, &Device::Cpu).unwrap();
        let eval = || {
            let states = t.encoder.forward(&x, None).unwrap();
            let out = t.head.forward(&states, &mask).unwrap();
            loss(&t.task, &out, &refs).unwrap()
        };
        let grads = eval().backward().unwrap();
        let vars: HashMap<String, candle_core::Var> = t.encoder.named_vars().into_iter().collect();
        for probe in probes {
            let name = probe.strip_prefix("base_model.model.").unwrap_or(probe);
            let var = &vars[name];
            let g: Vec<f32> = grads
                .get(var.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let base: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            // The entry with the largest gradient, and entry 0.
            let big = (0..g.len())
                .max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs()))
                .unwrap();
            for i in [big, 0] {
                let eps = 1e-2f32;
                let at = |delta: f32| {
                    let mut v = base.clone();
                    v[i] += delta;
                    var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
                        .unwrap();
                    eval().to_scalar::<f32>().unwrap() as f64
                };
                let fd = (at(eps) - at(-eps)) / (2.0 * eps as f64);
                var.set(&Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                let ad = g[i] as f64;
                assert!(
                    (fd - ad).abs() <= 2e-3 + 0.02 * ad.abs(),
                    "{method} {probe}[{i}]: autograd {ad:e} vs finite difference {fd:e}"
                );
            }
            assert!(g[big].abs() > 1e-4, "{method} {probe}: zero gradient");
        }
    }
}
