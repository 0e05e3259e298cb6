//! `emobridge fad`: the Fréchet audio distance between two embedding sets, or the per-emotion
//! study over a manifest and an embedding cache.
//!
//! ```text
//! emobridge fad A B [--json] [--inf] [--bootstrap N]          # one distance
//! emobridge fad --manifest M --cache DIR --model TAG --out DIR   # the study
//! ```
//!
//! A and B may each be a `.npy` [N, D] (f16/f32/f64), a `.safetensors` embedding file
//! ([D], [frames, D] or [layers+1, frames, D] with `--layer`), a folder of such files (one clip
//! per file), a folder with `mu.npy` + `cov.npy`, or an `.npz` of statistics (`mu`/`cov`, or
//! fadtk's `<name>.mu`/`<name>.cov`: pick with `FILE.npz:NAME` or `--stats-name`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use emobridge_corpus::Manifest;
use emobridge_fad::bootstrap::{bootstrap_frechet, BootstrapConfig, BootstrapSet};
use emobridge_fad::frechet::{frechet_distance_with, FrechetOptions, TraceRoute};
use emobridge_fad::infinity::{fad_infinity, FadInfinityConfig};
use emobridge_fad::io::{load, LoadOptions, Loaded, SafetensorsSelect};
use emobridge_fad::Gaussian;
use emobridge_studies::fad::{FadStudyConfig, SampleMatching, StatisticsLevel};

#[derive(clap::Args)]
pub struct FadArgs {
    /// Two embedding sets or statistics, A (baseline) then B (evaluation). Omit with --manifest.
    #[arg(num_args = 0..=2)]
    pub inputs: Vec<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also compute FAD-∞ of B against A (fadtk's estimator, seeded); B must hold embeddings.
    #[arg(long)]
    pub inf: bool,
    /// Sample sizes of FAD-∞.
    #[arg(long, default_value_t = 25)]
    pub inf_steps: usize,
    /// Smallest sample size of FAD-∞.
    #[arg(long, default_value_t = 500)]
    pub inf_min_n: usize,
    /// Bootstrap replicates for a confidence interval (0 = none). Files (clips) are resampled
    /// whole when a folder holds several, else rows. In the study: speech-vs-music intervals.
    #[arg(long, default_value_t = 0)]
    pub bootstrap: usize,
    /// Coverage of the bootstrap interval.
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// Seed of FAD-∞ draws, bootstrap draws and the study's subsampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Layer of [layers+1, frames, D] safetensors inputs (0 = input to the first layer).
    #[arg(long)]
    pub layer: Option<usize>,
    /// Tensor to read from safetensors inputs (default: the only one, else `hidden_states`).
    #[arg(long)]
    pub tensor: Option<String>,
    /// Embedding name inside `.npz` statistics (`<name>.mu` / `<name>.cov`), for both inputs.
    #[arg(long)]
    pub stats_name: Option<String>,
    /// Pool every file to its mean row (clip-level statistics) instead of using frames.
    #[arg(long)]
    pub pool: bool,
    /// Factorisation of Σ₁: `auto` (Cholesky when positive definite, else eigh) or `eigh`.
    #[arg(long, value_enum, default_value = "auto")]
    pub route: RouteArg,

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
    #[arg(long, default_value = "all")]
    pub layers: String,
    /// Study: `equal` (subsample every group to the smallest), `off`, or a fixed sample count.
    #[arg(long, default_value = "equal")]
    pub matching: String,
    /// Study: smallest group size kept.
    #[arg(long, default_value_t = 2)]
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
pub enum RouteArg {
    Auto,
    Eigh,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LevelArg {
    Frames,
    ClipMeans,
}

pub fn run(args: FadArgs) -> anyhow::Result<()> {
    match (&args.manifest, args.inputs.len()) {
        (Some(_), 0) => run_study(&args),
        (Some(_), _) => bail!("give either two inputs A B or --manifest, not both"),
        (None, 2) => run_pair(&args),
        (None, n) => bail!(
            "expected two inputs A B (got {n}), or --manifest M --cache DIR --model TAG --out DIR"
        ),
    }
}

fn options(args: &FadArgs) -> FrechetOptions {
    let route = match args.route {
        RouteArg::Auto => TraceRoute::Auto,
        RouteArg::Eigh => TraceRoute::Eigh,
    };
    FrechetOptions {
        route,
        ..Default::default()
    }
}

/// Reads one input; `FILE.npz:NAME` selects an embedding inside fadtk-style statistics.
fn read_input(path: &Path, args: &FadArgs) -> anyhow::Result<Loaded> {
    let (path, name) = split_stats_name(path);
    let opts = LoadOptions {
        select: SafetensorsSelect {
            tensor: args.tensor.clone(),
            layer: args.layer,
        },
        stats_name: name.or_else(|| args.stats_name.clone()),
        pool: args.pool,
    };
    load(&path, &opts)
        .with_context(|| format!("{}: cannot read embeddings or statistics", path.display()))
}

fn split_stats_name(path: &Path) -> (PathBuf, Option<String>) {
    let text = path.to_string_lossy();
    if !path.exists() {
        if let Some((file, name)) = text.rsplit_once(':') {
            if file.to_ascii_lowercase().ends_with(".npz") {
                return (PathBuf::from(file), Some(name.to_string()));
            }
        }
    }
    (path.to_path_buf(), None)
}

fn gaussian_of(loaded: &Loaded, what: &Path) -> anyhow::Result<Gaussian> {
    match loaded {
        Loaded::Stats(g) => Ok(g.clone()),
        Loaded::Rows { rows, .. } => {
            Gaussian::from_rows(rows.view()).with_context(|| format!("{}", what.display()))
        }
    }
}

fn run_pair(args: &FadArgs) -> anyhow::Result<()> {
    let (path_a, path_b) = (&args.inputs[0], &args.inputs[1]);
    let a = read_input(path_a, args)?;
    let b = read_input(path_b, args)?;
    let (ga, gb) = (gaussian_of(&a, path_a)?, gaussian_of(&b, path_b)?);
    if ga.dim() != gb.dim() {
        bail!(
            "{} has {}-dimensional embeddings but {} has {}",
            path_a.display(),
            ga.dim(),
            path_b.display(),
            gb.dim()
        );
    }
    let fd = frechet_distance_with(&ga, &gb, options(args))?;
    let mut report =
        serde_json::json!({ "a": path_a, "b": path_b, "fad": fd.distance, "details": fd });

    if args.inf {
        let Loaded::Rows { rows, .. } = &b else {
            bail!(
                "{}: --inf needs embeddings for B, not precomputed statistics",
                path_b.display()
            )
        };
        let cfg = FadInfinityConfig {
            steps: args.inf_steps,
            min_n: args.inf_min_n,
            seed: args.seed,
            options: options(args),
        };
        let inf = fad_infinity(&ga, rows.view(), &cfg).context("FAD-∞")?;
        report["fad_inf"] = serde_json::to_value(&inf)?;
    }
    if args.bootstrap > 0 {
        let (
            Loaded::Rows {
                rows: ra,
                units: ua,
                ..
            },
            Loaded::Rows {
                rows: rb,
                units: ub,
                ..
            },
        ) = (&a, &b)
        else {
            bail!("--bootstrap needs embeddings for both inputs, not precomputed statistics")
        };
        let cfg = BootstrapConfig {
            replicates: args.bootstrap,
            confidence: args.confidence,
            seed: args.seed,
            options: options(args),
        };
        let ci = bootstrap_frechet(&resample_set(ra, ua), &resample_set(rb, ub), &cfg)
            .context("bootstrap")?;
        report["bootstrap"] = serde_json::to_value(&ci)?;
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("{}", fd.distance);
    if let Some(inf) = report.get("fad_inf") {
        println!(
            "FAD-inf {} (slope {}, R² {:.6}, {} points, seed {})",
            inf["value"],
            inf["slope"],
            inf["r2"].as_f64().unwrap_or(f64::NAN),
            inf["points"].as_array().map_or(0, Vec::len),
            args.seed
        );
    }
    if let Some(ci) = report.get("bootstrap") {
        println!(
            "{:.0}% bootstrap interval [{}, {}] ({} replicates, seed {})",
            args.confidence * 100.0,
            ci["lower"],
            ci["upper"],
            ci["replicates"],
            args.seed
        );
    }
    tracing::info!(dim = fd.dim, n_a = ?fd.n_a, n_b = ?fd.n_b, route = fd.route, "mean term {:.6}, trace term {:.6}", fd.mean_term, fd.trace_a + fd.trace_b - 2.0 * fd.trace_sqrt_product);
    Ok(())
}

/// Rows resampled by file (clip) when there are several files, else row by row.
fn resample_set<'a>(
    rows: &'a emobridge_fad::ndarray::Array2<f64>,
    units: &[std::ops::Range<usize>],
) -> BootstrapSet<'a, f64> {
    BootstrapSet {
        rows: rows.view(),
        units: (units.len() > 1).then(|| units.to_vec()),
    }
}

fn run_study(args: &FadArgs) -> anyhow::Result<()> {
    let manifest_path = args.manifest.as_ref().expect("checked by the caller");
    let (Some(cache), Some(model), Some(out)) = (&args.cache, &args.model, &args.out) else {
        bail!("the study needs --manifest, --cache, --model and --out");
    };
    let manifest = Manifest::read(manifest_path)
        .with_context(|| format!("{}: cannot read manifest", manifest_path.display()))?;
    let config = study_config(args)?;
    if let Some(spec) = &args.shard {
        let shard = emobridge_store::Shard::parse(spec)?;
        let done = emobridge_studies::fad::run_shard(&config, &manifest, cache, model, out, shard)
            .with_context(|| format!("FAD study shard {shard} on {}", manifest_path.display()))?;
        println!(
            "shard {shard}: statistics of {} clips in {} ({} failures)",
            done.clips,
            emobridge_studies::fad::shard_dir(out, shard).display(),
            done.failures.len()
        );
        return Ok(());
    }
    let outcome = emobridge_studies::fad::run(&config, &manifest, cache, model, out)
        .with_context(|| format!("FAD study on {}", manifest_path.display()))?;
    for f in &outcome.failures {
        eprintln!("skipped {}: {}", f.item, f.reason);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "run_dir": outcome.run_dir, "layers": outcome.layers, "speech_vs_music": outcome.speech_vs_music, "group_sizes": outcome.group_sizes, "failures": outcome.failures })
            )?
        );
    } else {
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
    }
    Ok(())
}

/// The study's settings from the command line (shared with `emobridge slurm fad`).
pub fn study_config(args: &FadArgs) -> anyhow::Result<FadStudyConfig> {
    Ok(FadStudyConfig {
        level: match args.level {
            LevelArg::Frames => StatisticsLevel::Frames,
            LevelArg::ClipMeans => StatisticsLevel::ClipMeans,
        },
        layers: parse_layers(&args.layers).with_context(|| format!("--layers {}", args.layers))?,
        matching: parse_matching(&args.matching)?,
        min_samples: args.min_samples,
        corpora: args.corpora.clone(),
        bootstrap: args.bootstrap,
        confidence: args.confidence,
        seed: args.seed,
        options: options(args),
        plots: !args.no_plots,
        standardize: args.standardize,
    })
}

/// `all` → None; `0,6,12`, `4-8` or mixtures → the listed states.
fn parse_layers(spec: &str) -> anyhow::Result<Option<Vec<usize>>> {
    if spec.trim() == "all" {
        return Ok(None);
    }
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (
                    a.trim().parse().context("bad range start")?,
                    b.trim().parse().context("bad range end")?,
                );
                if a > b {
                    bail!("range {part} runs backwards");
                }
                out.extend(a..=b);
            }
            None => out.push(
                part.parse()
                    .with_context(|| format!("`{part}` is not a layer index"))?,
            ),
        }
    }
    if out.is_empty() {
        bail!("no layers listed");
    }
    Ok(Some(out))
}

fn parse_matching(spec: &str) -> anyhow::Result<SampleMatching> {
    Ok(match spec.trim() {
        "equal" => SampleMatching::Equal,
        "off" | "none" => SampleMatching::Off,
        n => {
            SampleMatching::Fixed(n.parse().with_context(|| {
                format!("--matching {n}: expected equal, off or a sample count")
            })?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_lists_and_matching_parse() {
        assert_eq!(parse_layers("all").unwrap(), None);
        assert_eq!(
            parse_layers("0,6, 10-12").unwrap(),
            Some(vec![0, 6, 10, 11, 12])
        );
        assert!(parse_layers("3-1").is_err());
        assert!(parse_layers("x").is_err());
        assert_eq!(parse_matching("equal").unwrap(), SampleMatching::Equal);
        assert_eq!(parse_matching("500").unwrap(), SampleMatching::Fixed(500));
        assert!(parse_matching("most").is_err());
    }

    #[test]
    fn npz_name_suffix_is_split_only_for_missing_npz_paths() {
        assert_eq!(
            split_stats_name(Path::new("stats/fma_pop.npz:MERT-v1-95M-1")),
            (
                PathBuf::from("stats/fma_pop.npz"),
                Some("MERT-v1-95M-1".into())
            )
        );
        assert_eq!(
            split_stats_name(Path::new("a.npy")),
            (PathBuf::from("a.npy"), None)
        );
    }
}
