//! `emobridge demo`: the whole study on a freshly synthesised corpus.
//!
//! 1. synthesise the shared-code corpus (speech + music, six emotions, continuous subset);
//! 2. eGeMAPS functionals for every clip (a table) and eGeMAPS LLD frames into the cache;
//! 3. a linear probe on the functionals: how separable the emotions are within each domain
//!    (speaker-independent folds) and across domains;
//! 4. the per-emotion FAD study on the descriptor frames (speech vs music per emotion,
//!    emotion × emotion and quadrant matrices, heatmaps);
//! 5. time-continuous arousal/valence on the continuous subset (LSTMs intra-domain, cross-domain,
//!    and via a denoising autoencoder; `emobridge_studies::continuous`);
//! 6. with `--model`, the probe and the FAD study on every hidden state of an SSL encoder;
//! 7. `run.json` with the command, configuration, seed, version, hashes and failures;
//! 8. `report.html` (with `summary.json` and `summary.md`) over every study's folder.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use emobridge_corpus::synth::SynthConfig;
use emobridge_store::EmbeddingCache;
use emobridge_studies::descriptors::{
    egemaps_over_manifest, write_functionals_csv, ClipFailure, EGEMAPS_LLD_TAG,
};
use emobridge_studies::fad::FadStudyConfig;
use emobridge_studies::separability::{self, SeparabilityConfig};
use emobridge_studies::RunFolder;

use super::extract::{ConventionArg, EncoderArgs, ExtractArgs, PrecisionArg, StoredDtypeArg};

/// Cache tag of the optional SSL encoder's embeddings.
const SSL_TAG: &str = "ssl";

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Run folder (created).
    #[arg(long, default_value = "demo-out")]
    pub out: PathBuf,
    /// The small corpus (finishes in about two minutes on 2 cores).
    #[arg(long)]
    pub quick: bool,
    /// Seed for the corpus and every random choice downstream.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Also run the study on every layer of this SSL encoder (a HuggingFace model folder such
    /// as wav2vec2-base or MERT-v1-95M, or ORG/NAME in the local HF cache).
    #[arg(long)]
    pub model: Option<String>,
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let corpus_cfg = if args.quick {
        SynthConfig::quick(args.seed)
    } else {
        SynthConfig {
            seed: args.seed,
            ..SynthConfig::default()
        }
    };

    tracing::info!("step 1/4: synthesising the corpus");
    let corpus_dir = args.out.join("corpus");
    let summary = super::synth::synthesise(&corpus_dir, &corpus_cfg)?;
    let manifest = &summary.manifest;

    tracing::info!("step 2/4: eGeMAPS descriptors");
    let cache_root = args.out.join("cache");
    let cache = EmbeddingCache::open(&cache_root, EGEMAPS_LLD_TAG)
        .with_context(|| format!("opening the cache in {}", cache_root.display()))?;
    let records: Vec<_> = manifest.records.iter().collect();
    let bar = crate::progress::bar(records.len() as u64, "egemaps");
    let t = Instant::now();
    let descriptors = egemaps_over_manifest(manifest, &records, Some(&cache), &|done, _| {
        bar.set_position(done as u64)
    });
    bar.finish_and_clear();
    let secs = t.elapsed().as_secs_f64();
    tracing::info!(
        "eGeMAPS: {} clips, {:.0} s of audio in {:.1} s ({:.0}× real time)",
        descriptors.functionals.len(),
        descriptors.audio_seconds,
        secs,
        descriptors.audio_seconds / secs.max(1e-9)
    );
    let features_dir = args.out.join("features");
    std::fs::create_dir_all(&features_dir)?;
    write_functionals_csv(
        &features_dir.join("egemaps_functionals.csv"),
        manifest,
        &descriptors,
    )
    .map_err(anyhow::Error::msg)?;

    let profile = emobridge_studies::descriptors::summarise(
        &Default::default(),
        manifest,
        &descriptors,
        &args.out.join("descriptors"),
    )?;
    tracing::info!("step 3/4: emotion probe on the eGeMAPS functionals");
    let probe_dir = probe_step(&args, manifest, &descriptors.functionals)?;

    tracing::info!("step 4/4: per-emotion Fréchet distances");
    let mut studies = vec![
        ("descriptors", profile.run_dir),
        ("probe_egemaps", probe_dir),
        (
            "fad_egemaps",
            fad_step(&args, manifest, &cache_root, EGEMAPS_LLD_TAG, "fad-egemaps")?,
        ),
    ];
    tracing::info!("continuous arousal/valence: LSTMs within, across and via a DAE");
    let continuous = emobridge_studies::continuous::ContinuousConfig::demo(args.seed, args.quick);
    let outcome =
        super::continuous::run_study(&continuous, manifest, &args.out.join("continuous"))?;
    studies.push(("continuous", outcome.run_dir));
    if let Some(model) = &args.model {
        tracing::info!("extra step: every layer of {model}");
        super::extract::run(ExtractArgs {
            manifest: summary.manifest_path.clone(),
            encoder: EncoderArgs {
                model: model.clone(),
                precision: PrecisionArg::F32,
                window_s: 30.0,
                convention: ConventionArg::Transformers4,
                device: super::extract::DeviceArg::Auto,
            },
            cache: cache_root.clone(),
            tag: Some(SSL_TAG.into()),
            layers: "all".into(),
            shard: None,
            dtype: StoredDtypeArg::F16,
        })
        .with_context(|| format!("extracting {model} embeddings"))?;
        let probe = separability::run_by_layer(
            &SeparabilityConfig {
                seed: args.seed,
                ..SeparabilityConfig::default()
            },
            manifest,
            &cache_root,
            SSL_TAG,
            &args.out.join("probe-ssl"),
        )
        .context("emotion probe on every hidden state")?;
        super::probe::log_best(&probe.layers);
        studies.push(("probe_ssl", probe.run_dir));
        studies.push((
            "fad_ssl",
            fad_step(&args, manifest, &cache_root, SSL_TAG, "fad-ssl")?,
        ));
    }

    write_run_json(
        &args,
        &corpus_cfg,
        &summary.manifest_path,
        &descriptors.failures,
        &studies,
    )?;
    emobridge_report::html::write_report(&[args.out.clone()], &args.out.join("report.html"))?;
    tracing::info!(
        "demo finished in {:.0} s → {}",
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    println!("{}", args.out.join("report.html").display());
    Ok(())
}

/// Linear probe (standardised logistic regression, speaker-independent folds) on the functionals.
fn probe_step(
    args: &DemoArgs,
    manifest: &emobridge_corpus::Manifest,
    functionals: &[(String, emobridge_acoustic::FeatureVector)],
) -> anyhow::Result<PathBuf> {
    let rows: Vec<(String, Vec<f64>)> = functionals
        .iter()
        .map(|(id, f)| (id.clone(), f.values.iter().map(|&v| v as f64).collect()))
        .collect();
    let config = SeparabilityConfig {
        seed: args.seed,
        ..SeparabilityConfig::default()
    };
    let outcome = separability::run(
        &config,
        manifest,
        &rows,
        "egemaps-functionals",
        &args.out.join("probe-egemaps"),
    )
    .context("emotion probe on the eGeMAPS functionals")?;
    for s in &outcome.scores {
        tracing::info!(
            "probe {} -> {} ({}): WA {:.3}, UA {:.3}, macro-F1 {:.3} (chance UA {:.3}, n = {})",
            s.train_domain,
            s.test_domain,
            s.setting,
            s.weighted_accuracy,
            s.unweighted_accuracy,
            s.macro_f1,
            s.chance_ua,
            s.n_test
        );
    }
    Ok(outcome.run_dir)
}

/// Per-emotion FAD between speech and music on the eGeMAPS LLD frames.
fn fad_step(
    args: &DemoArgs,
    manifest: &emobridge_corpus::Manifest,
    cache_root: &Path,
    tag: &str,
    folder: &str,
) -> anyhow::Result<PathBuf> {
    // Descriptor columns have unrelated units; SSL dimensions are compared as they are.
    let standardize = tag == EGEMAPS_LLD_TAG;
    let config = FadStudyConfig {
        seed: args.seed,
        bootstrap: if args.quick { 20 } else { 100 },
        standardize,
        ..FadStudyConfig::default()
    };
    let out = args.out.join(folder);
    let outcome = emobridge_studies::fad::run(&config, manifest, cache_root, tag, &out)
        .with_context(|| format!("per-emotion FAD study on {tag}"))?;
    for row in &outcome.speech_vs_music {
        let ci = match (row.ci_lower, row.ci_upper) {
            (Some(lo), Some(hi)) => format!(" [{lo:.2}, {hi:.2}]"),
            _ => String::new(),
        };
        tracing::info!(
            "FAD speech vs music, {tag}, state {}, {:>8}: {:.3}{ci} (n = {} / {} frames)",
            row.layer,
            row.emotion,
            row.fad,
            row.n_speech,
            row.n_music
        );
    }
    Ok(outcome.run_dir)
}

/// The demo's own run record: what ran, with which corpus, and where each study's folder is.
fn write_run_json(
    args: &DemoArgs,
    cfg: &SynthConfig,
    manifest_path: &Path,
    failures: &[ClipFailure],
    studies: &[(&str, PathBuf)],
) -> anyhow::Result<()> {
    let mut run = RunFolder::create(&args.out, "demo")?;
    run.set_command(std::env::args().collect::<Vec<_>>().join(" "));
    run.set_config(
        &serde_json::json!({ "quick": args.quick, "corpus": cfg }),
        args.seed,
    );
    run.hash_file("manifest", manifest_path)?;
    let manifest = emobridge_corpus::Manifest::read(manifest_path)?;
    let audio_list: String = manifest
        .records
        .iter()
        .map(|r| format!("{}\n", r.path))
        .collect();
    run.hash_bytes("audio_list", audio_list.as_bytes());
    for f in failures {
        run.fail(f.id.clone(), f.path.clone(), f.error.clone());
    }
    for (name, dir) in studies {
        let rel = dir
            .strip_prefix(&args.out)
            .unwrap_or(dir)
            .display()
            .to_string();
        run.note(name, rel.clone());
        run.output(format!("{rel}/run.json"));
    }
    run.output("features/egemaps_functionals.csv");
    run.output("corpus/manifest.csv");
    run.finish()?;
    Ok(())
}
