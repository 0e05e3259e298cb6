//! Encoder start-up benchmark: the whole user path in one process — load a checkpoint folder,
//! then one forward pass with every hidden state on a 1 s synthetic clip.
//!
//! ```text
//! cargo run --release -p emobridge-ssl --example startup -- --model DIR [--seconds 1] [--precision f32|bf16]
//! ```
//! Prints one JSON line: seconds to load, to first output (load + forward), peak RSS (VmHWM)
//! after loading and at the end. tools/bench/ssl_startup.sh runs it against PyTorch.

use std::path::PathBuf;
use std::time::Instant;

use emobridge_ssl::{EmbedOptions, LoadOptions, Precision, PretrainedEncoder};

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let start = Instant::now();
    let (mut model, mut seconds, mut precision) = (PathBuf::new(), 1.0f64, Precision::F32);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => model = PathBuf::from(value),
            "--seconds" => seconds = value.parse().expect("--seconds: a number"),
            "--precision" => {
                precision = match value.as_str() {
                    "f32" => Precision::F32,
                    "bf16" => Precision::Bf16,
                    other => panic!("unknown precision {other}"),
                }
            }
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(!model.as_os_str().is_empty(), "--model DIR is required");
    let encoder = PretrainedEncoder::from_dir(
        &model,
        LoadOptions {
            precision,
            ..LoadOptions::default()
        },
    )
    .expect("load model");
    let loaded = start.elapsed().as_secs_f64();
    let rss_loaded = peak_rss_mb();
    let rate = encoder.preprocess().sampling_rate;
    let n = (seconds * rate as f64) as usize;
    let clip: Vec<f32> = (0..n)
        .map(|i| 0.3 * (2.0 * std::f32::consts::PI * 220.0 * i as f32 / rate as f32).sin())
        .collect();
    let out = encoder
        .embed(&clip, rate, &EmbedOptions::default())
        .expect("forward");
    let done = start.elapsed().as_secs_f64();
    println!(
        "{{\"impl\":\"emobridge\",\"precision\":\"{precision:?}\",\"states\":{},\"load_s\":{loaded:.4},\"first_output_s\":{done:.4},\"peak_rss_after_load_mb\":{rss_loaded:.1},\"peak_rss_mb\":{:.1}}}",
        out.num_states(),
        peak_rss_mb()
    );
}
