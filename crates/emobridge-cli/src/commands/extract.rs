//! `emobridge extract`: fill the embedding cache for a manifest (`emobridge_ssl::extract_manifest`),
//! one atomic file per clip, resumable (entries checked, fingerprint compared), shardable, shared
//! between processes by per-clip claims.

use std::path::PathBuf;

use anyhow::Context;
use emobridge_corpus::Manifest;
use emobridge_ssl::ExtractConfig;
use emobridge_store::{EmbeddingCache, Frames, LayerSelection, Shard};

pub use super::encoder::EncoderArgs;

#[derive(clap::Args)]
pub struct ExtractArgs {
    /// Corpus manifest (CSV or JSON Lines).
    #[arg(long)]
    pub manifest: PathBuf,
    #[command(flatten)]
    pub encoder: EncoderArgs,
    /// Cache root; entries go to CACHE/<tag>/<clip-id>.safetensors.
    #[arg(long)]
    pub cache: PathBuf,
    /// Cache folder name for this model (default: the model folder name, or org--name; with
    /// `--adapter`, followed by `+` and the checkpoint's last two folder names).
    #[arg(long)]
    pub tag: Option<String>,
    /// Hidden states to keep: `all`, or indices and ranges such as `0,6,12` or `4-8`
    /// (0 = transformer input, L = last layer).
    #[arg(long, default_value_t = ExtractConfig::default().layers)]
    pub layers: LayerSelection,
    /// Process only shard I of N (0-based, e.g. 0/4); membership depends on the clip id only.
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<Shard>,
    /// What entries keep of the frames: `none` (only the pooled mean/std per state, for
    /// probing and clip-mean FAD), or every frame as `f16` or `f32` (`--dtype`: former name).
    #[arg(long, alias = "dtype", value_parser = ["none", "f16", "f32"], default_value_t = ExtractConfig::default().frames.to_string())]
    pub frames: String,
    /// Re-extract entries made by another extraction (model weights or config, layers, frames,
    /// convention, precision, window, emobridge version) instead of stopping with the difference.
    #[arg(long)]
    pub refresh: bool,
}

fn parse_shard(spec: &str) -> Result<Shard, String> {
    Shard::parse(spec).map_err(|e| e.to_string())
}

pub fn run(args: ExtractArgs, strict: bool) -> anyhow::Result<crate::status::Status> {
    let manifest = Manifest::read(&args.manifest)
        .with_context(|| format!("{}: cannot read manifest", args.manifest.display()))?;
    let model = args.encoder.load()?;
    let config = ExtractConfig {
        layers: args.layers.clone(),
        frames: args.frames.parse::<Frames>().map_err(anyhow::Error::msg)?,
        shard: args.shard.unwrap_or(Shard::ALL),
        refresh: args.refresh,
        strict,
        ..args.encoder.config()
    };
    let tag = args
        .tag
        .clone()
        .unwrap_or_else(|| args.encoder.spec().cache_tag());
    let cache = EmbeddingCache::open(&args.cache, &tag)?;
    let bar = crate::progress::bar(0, "extract");
    let report = emobridge_ssl::extract_manifest(
        &model,
        &args.encoder.model,
        &manifest,
        &cache,
        &config,
        &|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )
    .with_context(|| format!("extracting into {}", cache.dir().display()))?;
    bar.finish_and_clear();
    if !report.repaired.is_empty() {
        tracing::warn!(
            "{} damaged entries extracted again (listed under `repaired` in {})",
            report.repaired.len(),
            report.failures_path.display()
        );
    }
    tracing::info!(
        "{} clips: {} already cached, {} extracted, {} extracted by another process, {} refreshed, {} failed",
        report.in_shard,
        report.already_cached,
        report.extracted,
        report.done_by_others,
        report.refreshed,
        report.failures.len()
    );
    tracing::info!(
        "extracted {:.1} s of audio in {:.1} s: {:.2} audio-seconds per second; peak RSS {}; {} failures (listed in {})",
        report.audio_seconds,
        report.wall_s,
        report.audio_seconds / report.wall_s.max(1e-9),
        crate::progress::peak_rss(),
        report.failures.len(),
        report.failures_path.display()
    );
    if report.all_failed() {
        anyhow::bail!("every clip failed (see {})", report.failures_path.display());
    }
    Ok(crate::status::Status::from_count(
        report.failures.len(),
        &report.failures_path,
    ))
}
