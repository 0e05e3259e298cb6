//! Cost of one fine-tuning method on a randomly initialised encoder: trainable parameters,
//! training steps per second for a batch of `--batch` clips of `--seconds` s, and peak resident
//! memory. `frozen` and `weighted-sum` compute each clip's hidden states once and reuse them
//! (as training does), so their timed steps cover the head only (`encoder_forward_cached`).
//! One method per process so that the peak is that method's. Used by
//! tools/bench/finetune_cost.sh (with its PyTorch + peft twin). `DEVICE` is `cpu` (default),
//! `cuda` or `cuda:N` (build with `--features cuda`; the GPU's route is candle's plain ops); on
//! a GPU the peak is the process's resident memory only, not the GPU's.
//!
//! ```text
//! cargo run --release -p emobridge-ssl --example finetune_cost -- CONFIG.json METHOD [STEPS] [BATCH] [SECONDS] [DEVICE]
//! ```

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use emobridge_ssl::train::{Example, FineTuner, Schedule, Task, TrainConfig};
use emobridge_ssl::{
    device_name, DeviceChoice, Encoder, EncoderConfig, Kernels, Method, PeftConfig,
    TrainableEncoder, WeightSource,
};

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    // As `emobridge finetune` does.
    emobridge_ssl::train::prepare_process_for_training();
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err(
            "usage: finetune_cost CONFIG.json METHOD [STEPS] [BATCH] [SECONDS] [DEVICE]".into(),
        );
    }
    let cfg = EncoderConfig::from_file(std::path::Path::new(&args[1]))?;
    let method = Method::parse(&args[2]).ok_or("unknown method")?;
    let steps: usize = args.get(3).map_or(Ok(5), |s| s.parse())?;
    let batch: usize = args.get(4).map_or(Ok(4), |s| s.parse())?;
    let seconds: f32 = args.get(5).map_or(Ok(4.0), |s| s.parse())?;
    let device = args
        .get(6)
        .map_or(Ok(DeviceChoice::Cpu), |s| s.parse())?
        .resolve()?;
    // Random weights: a VarMap fills every tensor the encoder asks for.
    let map = VarMap::new();
    Encoder::new(
        &cfg,
        VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu),
        Kernels::Candle,
    )?;
    let tensors: HashMap<String, Tensor> = map
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
        .collect();
    drop(map);
    let source = WeightSource::new(tensors);
    let peft = PeftConfig::with_method(method);
    let enc = TrainableEncoder::new(&cfg, &source, &peft, &device, 0)?;
    // The encoder holds what it needs (trainable tensors are copies in its VarMap); PyTorch keeps
    // one copy of the weights, so the checkpoint's tensors are not kept alive beside it.
    drop(source);
    let n = (seconds * 16_000.0) as usize;
    let examples: Vec<Example> = (0..batch)
        .map(|i| Example {
            samples: (0..n)
                .map(|j| ((j * (i + 3)) as f32 * 0.01).sin() * 0.3)
                .collect(),
            label: i % 4,
            values: Vec::new(),
        })
        .collect();
    let train = |epochs| TrainConfig {
        epochs,
        batch_size: batch,
        warmup_share: 0.0,
        schedule: Schedule::Constant,
        patience: 0,
        ..TrainConfig::default()
    };
    let task = Task::Classification {
        classes: 4,
        class_weights: None,
    };
    let mut tuner = FineTuner::new(enc, task.clone(), train(1))?;
    // One warm-up step (allocations, frozen-state cache), then `steps` timed steps.
    tuner.train(&examples, &[], &|_, _| {})?;
    tuner.cfg = train(steps);
    let t0 = Instant::now();
    let report = tuner.train(&examples, &[], &|_, _| {})?;
    device.synchronize()?;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{{\"impl\":\"emobridge\",\"device\":\"{}\",\"method\":\"{}\",\"encoder_forward_cached\":{},\"trainable\":{},\"steps\":{},\"steps_per_s\":{:.4},\"peak_rss_mib\":{:.0}}}",
        device_name(&device),
        method.as_str(),
        !method.trains_encoder(),
        report.trainable_encoder + report.trainable_head,
        report.optimizer_steps,
        report.optimizer_steps as f64 / secs,
        peak_rss_mib()
    );
    Ok(())
}
