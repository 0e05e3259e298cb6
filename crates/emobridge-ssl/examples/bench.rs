//! Encoder benchmark: times one forward pass with every hidden state on a model folder.
//!
//! ```text
//! cargo run --release -p emobridge-ssl --example bench -- --model DIR [--seconds 10] [--runs 5] [--precision f32|bf16] [--kernels packed|candle]
//! ```
//! When DIR holds `bench_expected.safetensors` (written by tools/fixtures/ssl_bench_torch.py) its
//! input is used and every layer is compared with the PyTorch output. Prints one JSON line.
//! Thread count: RAYON_NUM_THREADS (default: all cores).

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use emobridge_ssl::{EmbedOptions, LoadOptions, Precision, PretrainedEncoder};

struct Args {
    model: PathBuf,
    seconds: f64,
    runs: usize,
    precision: Precision,
    candle: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        model: PathBuf::new(),
        seconds: 10.0,
        runs: 5,
        precision: Precision::F32,
        candle: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => args.model = PathBuf::from(value),
            "--seconds" => args.seconds = value.parse().expect("--seconds"),
            "--runs" => args.runs = value.parse().expect("--runs"),
            "--precision" => {
                args.precision = match value.as_str() {
                    "f32" => Precision::F32,
                    "bf16" => Precision::Bf16,
                    other => panic!("unknown precision {other}"),
                }
            }
            "--kernels" => args.candle = value == "candle",
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(
        !args.model.as_os_str().is_empty(),
        "--model DIR is required"
    );
    assert!(args.runs > 0, "--runs must be at least 1");
    args
}

/// Multiply-adds ×2 of convs, projection, positional conv and transformer (norms excluded);
/// the same count as tools/fixtures/ssl_bench_torch.py.
fn flops(model: &PretrainedEncoder, samples: usize) -> f64 {
    let cfg = model.config();
    let (mut len, mut c_in, mut total) = (samples, 1usize, 0.0);
    for ((&c_out, &k), &s) in cfg
        .conv_dim
        .iter()
        .zip(&cfg.conv_kernel)
        .zip(&cfg.conv_stride)
    {
        len = (len - k) / s + 1;
        total += 2.0 * (len * c_out * c_in * k) as f64;
        c_in = c_out;
    }
    let (t, h, f) = (
        len as f64,
        cfg.hidden_size as f64,
        cfg.intermediate_size as f64,
    );
    total += 2.0 * t * c_in as f64 * h;
    if let emobridge_ssl::PositionalEmbedding::Conv { kernel, groups, .. } = cfg.positional {
        total += 2.0 * t * h * (h / groups as f64) * kernel as f64;
    }
    total + cfg.num_layers as f64 * (2.0 * t * (4.0 * h * h + 2.0 * h * f) + 4.0 * t * t * h)
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let args = parse_args();
    let model = PretrainedEncoder::from_dir(
        &args.model,
        LoadOptions {
            precision: args.precision,
            candle_kernels: args.candle,
            ..LoadOptions::default()
        },
    )
    .expect("load model");
    let expected_path = args.model.join("bench_expected.safetensors");
    let expected = expected_path.is_file().then(|| {
        candle_core::safetensors::load(&expected_path, &Device::Cpu).expect("read expected")
    });
    let input: Vec<f32> = match &expected {
        Some(e) => e["input"].to_vec1().expect("input"),
        None => (0..(args.seconds * 16_000.0) as usize)
            .map(|i| ((i as f32) * 0.0863).sin())
            .collect(),
    };
    let seconds = input.len() as f64 / model.preprocess().sampling_rate as f64;
    let opts = EmbedOptions {
        window_s: seconds + 1.0,
        ..EmbedOptions::default()
    };

    let first = model.embed_prepared(&input, &opts).expect("forward");
    let mut times = Vec::new();
    for _ in 0..args.runs {
        let start = Instant::now();
        let out = model.embed_prepared(&input, &opts).expect("forward");
        times.push(start.elapsed().as_secs_f64());
        drop(out);
    }
    times.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    let median = times[times.len() / 2];
    let gflop = flops(&model, input.len()) / 1e9;

    let mut per_layer = Vec::new();
    if let Some(e) = &expected {
        let want = &e["hidden_states"];
        for l in 0..want.dim(0).expect("dims") {
            let (g, w) = (
                first.hidden_states().get(l).expect("layer"),
                want.get(l).expect("layer"),
            );
            let diff = max_abs(&g.sub(&w).expect("sub"));
            let scale = max_abs(&w);
            per_layer.push(format!(
                "{{\"layer\":{l},\"max_abs_diff\":{diff:.3e},\"max_abs_ref\":{scale:.3}}}"
            ));
        }
    }
    println!(
        "{{\"impl\":\"emobridge\",\"precision\":\"{:?}\",\"kernels\":\"{}\",\"threads\":{},\"audio_s\":{seconds:.2},\"median_s\":{median:.4},\"min_s\":{:.4},\"rtf\":{:.4},\"gflop\":{gflop:.2},\"gflop_per_s\":{:.1},\"peak_rss_mb\":{:.1},\"states\":{},\"layers_vs_torch\":[{}]}}",
        args.precision,
        if args.candle { "candle" } else { "packed" },
        candle_core::utils::get_num_threads(),
        times[0],
        median / seconds,
        gflop / median,
        peak_rss_mb(),
        first.num_states(),
        per_layer.join(",")
    );
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .and_then(|a| a.flatten_all())
        .and_then(|a| a.max(0))
        .and_then(|a| a.to_scalar::<f32>())
        .expect("max")
}
