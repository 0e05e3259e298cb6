//! `emobridge embed`: every hidden state of an SSL encoder for one audio file.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use emobridge_ssl::{EmbedOptions, PretrainedEncoder};
use emobridge_store::ClipEntry;

use super::extract::{entry_metadata, load_clip, EncoderArgs, StoredDtypeArg};

#[derive(clap::Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    pub encoder: EncoderArgs,
    /// Precision of the written `hidden_states` (mean/std are always f32).
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: StoredDtypeArg,
    /// Output safetensors file: `hidden_states` [layers+1, frames, hidden], `mean`, `std`.
    #[arg(long)]
    pub out: PathBuf,
    /// The audio file.
    pub file: PathBuf,
}

pub fn run(args: EmbedArgs) -> anyhow::Result<()> {
    let model = args.encoder.load()?;
    let opts: EmbedOptions = args.encoder.embed_options();
    let started = Instant::now();
    let (samples, seconds) = load_clip(&model, &args.file)?;
    let emb = embed(&model, &samples, &opts)
        .with_context(|| format!("{}: embedding failed", args.file.display()))?;
    let (values, shape) = emb.to_vec()?;
    let meta = entry_metadata(&model, &args.encoder, &args.file, "all")?;
    let entry = ClipEntry::from_frames(values, shape, args.dtype.into(), meta)?;
    entry
        .save(&args.out)
        .with_context(|| format!("{}: cannot write", args.out.display()))?;
    let wall = started.elapsed().as_secs_f64();
    tracing::info!(
        "{}: {} states × {} frames × {} dims → {} ({:.2} s audio in {:.2} s, {:.1} audio-s/s)",
        args.file.display(),
        shape[0],
        shape[1],
        shape[2],
        args.out.display(),
        seconds,
        wall,
        seconds / wall.max(1e-9)
    );
    Ok(())
}

fn embed(
    model: &PretrainedEncoder,
    samples: &[f32],
    opts: &EmbedOptions,
) -> anyhow::Result<emobridge_ssl::ClipEmbedding> {
    let prepared = model.prepare(samples, model.preprocess().sampling_rate)?;
    Ok(model.embed_prepared(&prepared, opts)?)
}
