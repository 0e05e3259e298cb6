//! The per-emotion FAD study behind `emobridge fad --manifest M --cache DIR --model TAG --out DIR`
//! (`emobridge_studies::fad::run_job`).

use std::path::PathBuf;

use anyhow::Context;

use crate::status::Status;
use emobridge_fad::frechet::FrechetOptions;
use emobridge_store::{LayerSelection, Shard};
use emobridge_studies::fad::{
    run_job, FadJob, FadJobOutcome, FadStudyConfig, SampleMatching, StatisticsLevel,
};

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
        }
    }
}

pub fn run(args: &FadArgs, options: FrechetOptions) -> anyhow::Result<Status> {
    let s = &args.study;
    let (Some(manifest), Some(cache), Some(model), Some(out)) =
        (&s.manifest, &s.cache, &s.model, &s.out)
    else {
        anyhow::bail!("the study needs --manifest, --cache, --model and --out");
    };
    let job = FadJob {
        manifest: manifest.clone(),
        cache: cache.clone(),
        model: model.clone(),
        out: out.clone(),
        shard: s.shard.as_deref().map(Shard::parse).transpose()?,
        study: s.config(args, options),
    };
    let outcome = run_job(&job).with_context(|| format!("FAD study on {}", manifest.display()))?;
    for f in outcome.failures() {
        eprintln!("skipped {}: {}", f.item, f.reason);
    }
    match &outcome {
        FadJobOutcome::Study(o) if args.json => println!("{}", serde_json::to_string_pretty(o)?),
        _ => println!("{}", outcome.summary()),
    }
    Ok(Status::from_count(
        outcome.failures().len(),
        &outcome.failures_listed_in(),
    ))
}
