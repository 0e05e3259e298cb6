//! `emobridge embed`: every hidden state of an SSL encoder for one audio file
//! (`emobridge_ssl::extract::embed_entry`), written in the cache-entry layout.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use emobridge_ssl::ExtractConfig;
use emobridge_store::StoredDtype;

use super::encoder::EncoderArgs;

#[derive(clap::Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    pub encoder: EncoderArgs,
    /// Precision of the written `hidden_states` (mean/std are always f32).
    #[arg(long, default_value_t = StoredDtype::F32)]
    pub dtype: StoredDtype,
    /// Output safetensors file: `hidden_states` [layers+1, frames, hidden], `mean`, `std`.
    #[arg(long)]
    pub out: PathBuf,
    /// The audio file.
    pub file: PathBuf,
}

pub fn run(args: EmbedArgs) -> anyhow::Result<()> {
    let model = args.encoder.load()?;
    let config = ExtractConfig {
        frames: args.dtype.into(),
        ..args.encoder.config()
    };
    let started = Instant::now();
    let weights = model.weights_sha256()?;
    let (entry, seconds) = emobridge_ssl::extract::embed_entry(
        &model,
        &args.encoder.model,
        &config,
        &args.file,
        &weights,
    )
    .with_context(|| format!("{}: embedding failed", args.file.display()))?;
    entry
        .save(&args.out)
        .with_context(|| format!("{}: cannot write", args.out.display()))?;
    let wall = started.elapsed().as_secs_f64();
    let [states, frames, dims] = entry.shape;
    tracing::info!(
        "{}: {states} states × {frames} frames × {dims} dims → {} ({seconds:.2} s audio in {wall:.2} s, {:.1} audio-s/s)",
        args.file.display(),
        args.out.display(),
        seconds / wall.max(1e-9)
    );
    Ok(())
}
