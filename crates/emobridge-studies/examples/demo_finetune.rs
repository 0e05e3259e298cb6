//! The demo's fine-tuning section alone (`emobridge demo --model`'s last study), on a corpus the
//! demo (or `emobridge synth`) wrote: for timing it without the stages before it.
//!
//!     cargo run --release -p emobridge-studies --example demo_finetune -- \
//!         CORPUS/manifest.csv MODEL_DIR OUT_DIR [--quick]
//!
//! Prints the demo's sizing rule, each training run's cost line and the section's totals
//! (`RUST_LOG=info` for the per-run lines).

use std::path::PathBuf;

use emobridge_corpus::Manifest;
use emobridge_studies::demo::{finetune_step, DemoConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    emobridge_ssl::train::prepare_process_for_training();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let pos: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [manifest, model, out] = pos[..] else {
        return Err("usage: demo_finetune MANIFEST MODEL_DIR OUT_DIR [--quick]".into());
    };
    let manifest = Manifest::read(manifest)?;
    let config = DemoConfig {
        out: PathBuf::from(out),
        quick,
        model: Some(model.clone()),
        ..DemoConfig::default()
    };
    let started = std::time::Instant::now();
    let cpu = emobridge_ssl::train::process_cpu_seconds();
    let Some((dir, sizing)) = finetune_step(&config, &manifest, &|_, _, _| {})? else {
        return Err("no model".into());
    };
    println!("{}", sizing.text);
    println!(
        "section: {:.1} s wall, {:.1} s CPU -> {}",
        started.elapsed().as_secs_f64(),
        emobridge_ssl::train::process_cpu_seconds() - cpu,
        dir.display()
    );
    Ok(())
}
