//! The per-emotion FAD study behind `emobridge fad --manifest M --cache DIR --model TAG --out DIR`
//! (`emobridge_studies::fad::run`), and the printing of both `fad` modes.

use std::path::PathBuf;

use anyhow::Context;

use crate::status::Status;
use emobridge_corpus::Manifest;
use emobridge_fad::frechet::FrechetOptions;
use emobridge_fad::{PairConfig, PairReport};
use emobridge_store::{EmbeddingCache, LayerSelection};
use emobridge_studies::fad::{FadStudyConfig, SampleMatching, StatisticsLevel};

use super::fad::FadArgs;

/// The options of the per-emotion study (defaults from `FadStudyConfig::default()`).
#[derive(clap::Args)]
pub struct StudyArgs {
    /// Study: corpus manifest (CSV or JSON Lines).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Study: embedding cache root (CACHE/<model>/<clip-id>.safetensors).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Study: cache tag of the model (or descriptor set), e.g. `wav2vec2-base`, `egemaps-lld`.
    #[arg(long)]
    pub model: Option<String>,
    /// Study: run folder to write.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Study: `frames` (every frame a sample, as fadtk) or `clip-means`.
    #[arg(long, value_enum, default_value = "frames")]
    pub level: LevelArg,
    /// Study: hidden states, `all` or indices/ranges such as `0,6,12` or `4-8`.
    #[arg(long, default_value_t = LayerSelection::All)]
    pub layers: LayerSelection,
    /// Study: `equal` (subsample every group to the smallest), `off`, or a fixed sample count.
    #[arg(long, default_value_t = FadStudyConfig::default().matching)]
    pub matching: SampleMatching,
    /// Study: smallest group size kept.
    #[arg(long, default_value_t = FadStudyConfig::default().min_samples)]
    pub min_samples: usize,
    /// Study: only clips of this corpus (repeatable).
    #[arg(long = "corpus")]
    pub corpora: Vec<String>,
    /// Study: skip the PNG/SVG plots.
    #[arg(long)]
    pub no_plots: bool,
    /// Study: z-score every dimension by the pooled statistics first (for descriptors such as
    /// eGeMAPS, whose columns have unrelated units).
    #[arg(long)]
    pub standardize: bool,
    /// Study: only the clips of shard I of N (membership by clip id, as `extract`): saves per-layer
    /// streaming statistics under OUT/shards/; `emobridge slurm fad … --merge` merges the shards.
    #[arg(long)]
    pub shard: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LevelArg {
    Frames,
    ClipMeans,
}

impl StudyArgs {
    pub fn config(&self, args: &FadArgs, options: FrechetOptions) -> FadStudyConfig {
        FadStudyConfig {
            level: match self.level {
                LevelArg::Frames => StatisticsLevel::Frames,
                LevelArg::ClipMeans => StatisticsLevel::ClipMeans,
            },
            layers: self.layers.indices().map(<[usize]>::to_vec),
            matching: self.matching,
            min_samples: self.min_samples,
            corpora: self.corpora.clone(),
            bootstrap: args.bootstrap,
            confidence: args.confidence,
            seed: args.seed,
            options,
            plots: !self.no_plots,
            standardize: self.standardize,
            strict: false,
        }
    }
}

pub fn run(args: &FadArgs, options: FrechetOptions, strict: bool) -> anyhow::Result<Status> {
    let s = &args.study;
    let (Some(manifest_path), Some(cache), Some(model), Some(out)) =
        (&s.manifest, &s.cache, &s.model, &s.out)
    else {
        anyhow::bail!("the study needs --manifest, --cache, --model and --out");
    };
    let manifest = Manifest::read(manifest_path)
        .with_context(|| format!("{}: cannot read manifest", manifest_path.display()))?;
    let cache = EmbeddingCache::open_existing(cache, model)?;
    let config = FadStudyConfig {
        strict,
        ..s.config(args, options)
    };
    if let Some(spec) = &s.shard {
        let shard = emobridge_store::Shard::parse(spec)?;
        let done = emobridge_studies::fad::run_shard(&config, &manifest, &cache, out, shard)
            .with_context(|| format!("FAD study shard {shard} on {}", manifest_path.display()))?;
        println!(
            "shard {shard}: statistics of {} clips in {} ({} failures)",
            done.clips,
            emobridge_studies::fad::shard_dir(out, shard).display(),
            done.failures.len()
        );
        let listed_in = emobridge_studies::fad::shard_dir(out, shard).join("done.json");
        return Ok(Status::from_count(done.failures.len(), &listed_in));
    }
    let outcome = emobridge_studies::fad::run(&config, &manifest, &cache, out)
        .with_context(|| format!("FAD study on {}", manifest_path.display()))?;
    for f in &outcome.failures {
        eprintln!("skipped {}: {}", f.item, f.reason);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
        return Status::of_run(&outcome.run_dir);
    }
    println!("layer\temotion\tfad\tn_speech\tn_music");
    for r in &outcome.speech_vs_music {
        println!(
            "{}\t{}\t{:.6}\t{}\t{}",
            r.layer, r.emotion, r.fad, r.n_speech, r.n_music
        );
    }
    println!(
        "run folder: {} ({} clips skipped)",
        outcome.run_dir.display(),
        outcome.failures.len()
    );
    Status::of_run(&outcome.run_dir)
}

/// One line with the distance, then FAD-∞ and the interval when computed (or the JSON report).
pub fn print_pair(report: &PairReport, config: &PairConfig, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    println!("{}", report.fad);
    if let Some(inf) = &report.fad_inf {
        println!(
            "FAD-inf {} (slope {}, R² {:.6}, {} points, seed {})",
            inf.value,
            inf.slope,
            inf.r2,
            inf.points.len(),
            config.seed
        );
    }
    if let Some(ci) = &report.bootstrap {
        println!(
            "{:.0}% bootstrap interval [{}, {}] ({} replicates, seed {})",
            config.confidence * 100.0,
            ci.lower,
            ci.upper,
            ci.replicates,
            config.seed
        );
    }
    let fd = &report.details;
    tracing::info!(dim = fd.dim, n_a = ?fd.n_a, n_b = ?fd.n_b, route = fd.route, "mean term {:.6}, trace term {:.6}", fd.mean_term, fd.trace_a + fd.trace_b - 2.0 * fd.trace_sqrt_product);
    Ok(())
}
