//! `emobridge extract`: fill the embedding cache for a manifest, one atomic file per clip,
//! resumable, shardable; also the encoder options and helpers `embed` shares.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use emobridge_corpus::Manifest;
use emobridge_ssl::candle_core::Device;
use emobridge_ssl::{
    EmbedOptions, HiddenStateConvention, LoadOptions, Precision, PretrainedEncoder,
};
use emobridge_store::{ClipEntry, EmbeddingCache, EntryMetadata, FailureLog, Shard, StoredDtype};

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
    /// Cache folder name for this model (default: the model folder name, or org--name).
    #[arg(long)]
    pub tag: Option<String>,
    /// Hidden states to keep: `all`, or indices and ranges such as `0,6,12` or `4-8`
    /// (0 = transformer input, L = last layer).
    #[arg(long, default_value = "all")]
    pub layers: String,
    /// Process only shard I of N (0-based, e.g. 0/4); membership depends on the clip id only.
    #[arg(long)]
    pub shard: Option<String>,
    /// Precision of the cached frame-level `hidden_states`.
    #[arg(long, value_enum, default_value = "f16")]
    pub dtype: StoredDtypeArg,
}

pub fn run(args: ExtractArgs) -> anyhow::Result<()> {
    let manifest = Manifest::read(&args.manifest)
        .with_context(|| format!("{}: cannot read manifest", args.manifest.display()))?;
    let shard = match &args.shard {
        Some(spec) => Shard::parse(spec)?,
        None => Shard::ALL,
    };
    let model = args.encoder.load()?;
    let layers = parse_layers(&args.layers, model.num_states())
        .with_context(|| format!("--layers {}", args.layers))?;
    let tag = args
        .tag
        .clone()
        .unwrap_or_else(|| args.encoder.default_tag());
    let cache = EmbeddingCache::open(&args.cache, &tag)?;
    let mine: Vec<_> = manifest
        .records
        .iter()
        .filter(|r| shard.owns(&r.id))
        .collect();
    let todo: Vec<_> = mine.iter().filter(|r| !cache.contains(&r.id)).collect();
    tracing::info!(
        "{} clips in shard {shard}, {} already cached, {} to extract into {}",
        mine.len(),
        mine.len() - todo.len(),
        todo.len(),
        cache.dir().display()
    );
    let opts = args.encoder.embed_options();
    let layer_label = layers.as_ref().map_or_else(
        || "all".to_string(),
        |l| l.iter().map(usize::to_string).collect::<Vec<_>>().join(","),
    );
    let bar = crate::progress::bar(todo.len() as u64, "extract");
    let started = Instant::now();
    let mut audio_seconds = 0.0;
    let mut failures = FailureLog::default();
    for record in todo {
        let path = manifest.audio_path(record);
        let job = ClipJob {
            model: &model,
            args: &args.encoder,
            opts: &opts,
            layers: layers.as_deref(),
            layer_label: &layer_label,
            dtype: args.dtype.into(),
        };
        match job.run(&cache, &record.id, &path) {
            Ok(seconds) => audio_seconds += seconds,
            Err(e) => {
                let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
                bar.suspend(|| tracing::error!("{}: {}", record.id, chain.join(": ")));
                failures.push(&record.id, &record.path, chain.join(": "));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let wall = started.elapsed().as_secs_f64();
    let failures_path = cache.failures_path(Some(shard));
    failures.save(&failures_path)?;
    tracing::info!(
        "extracted {:.1} s of audio in {:.1} s: {:.2} audio-seconds per second; peak RSS {}; {} failures (listed in {})",
        audio_seconds,
        wall,
        audio_seconds / wall.max(1e-9),
        peak_rss(),
        failures.len(),
        failures_path.display()
    );
    if !failures.is_empty() && failures.len() == mine.len() {
        anyhow::bail!("every clip failed (see {})", failures_path.display());
    }
    Ok(())
}

/// What one clip needs: the model, options and the state selection.
struct ClipJob<'a> {
    model: &'a PretrainedEncoder,
    args: &'a EncoderArgs,
    opts: &'a EmbedOptions,
    layers: Option<&'a [usize]>,
    layer_label: &'a str,
    dtype: StoredDtype,
}

impl ClipJob<'_> {
    /// Decodes, embeds and writes one clip; returns its duration in seconds.
    fn run(&self, cache: &EmbeddingCache, id: &str, path: &Path) -> anyhow::Result<f64> {
        let (samples, seconds) = load_clip(self.model, path)?;
        let prepared = self
            .model
            .prepare(&samples, self.model.preprocess().sampling_rate)?;
        let mut emb = self
            .model
            .embed_prepared(&prepared, self.opts)
            .with_context(|| format!("{}: embedding failed", path.display()))?;
        if let Some(layers) = self.layers {
            emb = emb.select(layers)?;
        }
        let (values, shape) = emb.to_vec()?;
        let meta = entry_metadata(self.model, self.args, path, self.layer_label)?;
        cache.write(
            id,
            &ClipEntry::from_frames(values, shape, self.dtype, meta)?,
        )?;
        Ok(seconds)
    }
}

/// Peak resident memory of this process (Linux `VmHWM`), for the end-of-run line.
fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// `all` → None; otherwise the listed indices (ranges `a-b` inclusive), each below `states`.
fn parse_layers(spec: &str, states: usize) -> anyhow::Result<Option<Vec<usize>>> {
    if spec.trim() == "all" {
        return Ok(None);
    }
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: usize = a
            .trim()
            .parse()
            .with_context(|| format!("`{part}` is not an index or range"))?;
        let b: usize = b
            .trim()
            .parse()
            .with_context(|| format!("`{part}` is not an index or range"))?;
        anyhow::ensure!(a <= b, "range `{part}` is reversed");
        anyhow::ensure!(
            b < states,
            "index {b} is out of range: the model has states 0..={}",
            states - 1
        );
        out.extend(a..=b);
    }
    anyhow::ensure!(!out.is_empty(), "no layer selected");
    Ok(Some(out))
}

/// Which model to load and how to run it.
#[derive(clap::Args, Clone)]
pub struct EncoderArgs {
    /// Model folder (config.json + weights) or HuggingFace id ORG/NAME found in the local HF cache.
    #[arg(long)]
    pub model: String,
    /// Compute precision: f32 (parity with transformers) or bf16 (faster matmuls, small deviation).
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: PrecisionArg,
    /// Longest stretch of audio run through the encoder at once, seconds; longer clips are cut
    /// into windows on the frame grid.
    #[arg(long, default_value_t = 30.0)]
    pub window_s: f64,
    /// Index L of pre-LN models: after the final LayerNorm (transformers4) or before it (transformers5).
    #[arg(long, value_enum, default_value = "transformers4")]
    pub convention: ConventionArg,
    /// Where the encoder runs: `auto` (GPU 0 of those visible, e.g. the one Slurm's `--gres gpu:1`
    /// allocates, when the binary was built with the `cuda` feature; else the CPU), `cpu`, `cuda`.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceArg,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum DeviceArg {
    Auto,
    Cpu,
    Cuda,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum PrecisionArg {
    F32,
    Bf16,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum ConventionArg {
    Transformers4,
    Transformers5,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum StoredDtypeArg {
    F16,
    F32,
}

impl From<StoredDtypeArg> for StoredDtype {
    fn from(d: StoredDtypeArg) -> Self {
        match d {
            StoredDtypeArg::F16 => StoredDtype::F16,
            StoredDtypeArg::F32 => StoredDtype::F32,
        }
    }
}

impl EncoderArgs {
    pub fn load(&self) -> anyhow::Result<PretrainedEncoder> {
        let precision = match self.precision {
            PrecisionArg::F32 => Precision::F32,
            PrecisionArg::Bf16 => Precision::Bf16,
        };
        let model = PretrainedEncoder::load(
            &self.model,
            LoadOptions {
                precision,
                device: self.device()?,
                ..LoadOptions::default()
            },
        )
        .with_context(|| format!("cannot load model `{}`", self.model))?;
        let cfg = model.config();
        tracing::info!(
            "{} ({}, {} layers × {}, {} Hz, {:.1} frames/s)",
            self.model,
            cfg.family.as_str(),
            cfg.num_layers,
            cfg.hidden_size,
            model.preprocess().sampling_rate,
            model.frame_rate_hz()
        );
        Ok(model)
    }

    /// The compute device; `auto` falls back to the CPU (with a warning) when CUDA is absent.
    pub fn device(&self) -> anyhow::Result<Device> {
        Ok(match self.device {
            DeviceArg::Cpu => Device::Cpu,
            DeviceArg::Cuda => Device::new_cuda(0).context(
                "--device cuda (build with `--features cuda`, and run where a GPU is visible)",
            )?,
            DeviceArg::Auto => match Device::cuda_if_available(0) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!("no usable CUDA device ({e}); running on the CPU");
                    Device::Cpu
                }
            },
        })
    }

    pub fn embed_options(&self) -> EmbedOptions {
        if !(self.window_s > 0.0) {
            tracing::warn!(
                "--window-s {} is not positive; using one frame per window",
                self.window_s
            );
        }
        EmbedOptions {
            window_s: self.window_s,
            convention: self.convention(),
        }
    }

    pub fn convention(&self) -> HiddenStateConvention {
        match self.convention {
            ConventionArg::Transformers4 => HiddenStateConvention::Transformers4,
            ConventionArg::Transformers5 => HiddenStateConvention::Transformers5,
        }
    }

    /// A cache folder name for the model: the folder name, or `org--name` for hub ids.
    pub fn default_tag(&self) -> String {
        let p = Path::new(&self.model);
        if p.is_dir() {
            if let Some(name) = p
                .canonicalize()
                .ok()
                .and_then(|c| c.file_name().map(|n| n.to_string_lossy().into_owned()))
            {
                return name;
            }
        }
        self.model
            .trim_matches('/')
            .replace(['/', '@', '\\', ':'], "--")
    }
}

/// Decodes a file as mono at the model's rate; returns the samples and the duration in seconds.
pub fn load_clip(model: &PretrainedEncoder, path: &Path) -> anyhow::Result<(Vec<f32>, f64)> {
    let rate = model.preprocess().sampling_rate;
    let audio = emobridge_audio::load(path, &emobridge_audio::DecodeOptions::mono_at(rate))?;
    let seconds = audio.duration_s();
    Ok((audio.into_mono(), seconds))
}

/// Provenance recorded in every written entry.
pub fn entry_metadata(
    model: &PretrainedEncoder,
    args: &EncoderArgs,
    file: &Path,
    layers: &str,
) -> anyhow::Result<EntryMetadata> {
    let sha = emobridge_store::sha256_file(file)?;
    let mut extra = std::collections::BTreeMap::new();
    extra.insert("layers".to_string(), layers.to_string());
    extra.insert(
        "model_type".to_string(),
        model.config().family.as_str().to_string(),
    );
    extra.insert(
        "precision".to_string(),
        if args.precision == PrecisionArg::Bf16 {
            "bf16"
        } else {
            "f32"
        }
        .to_string(),
    );
    extra.insert("window_s".to_string(), args.window_s.to_string());
    extra.insert(
        "emobridge_version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    Ok(EntryMetadata {
        model: args.model.clone(),
        sample_rate: model.preprocess().sampling_rate,
        frame_rate_hz: model.frame_rate_hz(),
        hidden_state_convention: args.convention().as_str().to_string(),
        source_file: file.display().to_string(),
        audio_sha256: sha,
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_layers;

    #[test]
    fn layer_lists_and_ranges() {
        assert_eq!(parse_layers("all", 13).unwrap(), None);
        assert_eq!(
            parse_layers("0, 6,10-12", 13).unwrap(),
            Some(vec![0, 6, 10, 11, 12])
        );
        assert!(parse_layers("13", 13).is_err());
        assert!(parse_layers("5-3", 13).is_err());
        assert!(parse_layers("x", 13).is_err());
    }
}
