//! The demo: every study on a freshly synthesised corpus (`emobridge demo`).
//!
//! 1. synthesise the shared-code corpus (speech + music, six emotions, continuous subset);
//! 2. eGeMAPS functionals for every clip (a table) and eGeMAPS LLD frames into the cache;
//! 3. a linear probe on the functionals: how separable the emotions are within each domain
//!    (speaker-independent folds) and across domains;
//! 4. the per-emotion FAD study on the descriptor frames (speech vs music per emotion,
//!    emotion × emotion and quadrant matrices, heatmaps);
//! 5. time-continuous arousal/valence on the continuous subset (LSTMs intra-domain, cross-domain,
//!    and via a denoising autoencoder; `crate::continuous`);
//! 6. with a model, the probe and the FAD study on every hidden state of an SSL encoder, and a
//!    a short two-stage fine-tuning run (`crate::finetune`);
//! 7. `run.json` with the configuration, seed, version, hashes, failures and the sub-studies;
//! 8. `report.html` (with `summary.json` and `summary.md`) over every study's folder.

use std::path::{Path, PathBuf};
use std::time::Instant;

use emobridge_corpus::synth::{generate, SynthConfig, SynthError};
use emobridge_corpus::Manifest;
use emobridge_ssl::{ExtractConfig, PretrainedEncoder, SslError};
use emobridge_store::{EmbeddingCache, StoreError};
use serde::{Deserialize, Serialize};

use crate::descriptors::{
    egemaps_over_manifest, write_functionals_csv, DescriptorError, EGEMAPS_LLD_TAG,
};
use crate::fad::{FadStudyConfig, FadStudyError};
use crate::separability::{self, SeparabilityConfig, SeparabilityError};
use crate::{RunFolder, RunFolderError};

/// Cache tag of the optional SSL encoder's embeddings.
pub const SSL_TAG: &str = "ssl";

/// Settings of the demo; `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    /// Run folder (created). Default `demo-out`.
    pub out: PathBuf,
    /// The small corpus (about two minutes on 2 cores). Default false.
    pub quick: bool,
    /// Seed for the corpus and every random choice downstream. Default 7.
    pub seed: u64,
    /// Also run the probe and the FAD study on every layer of this SSL encoder (a HuggingFace
    /// model folder, or ORG/NAME in the local HF cache). Default none.
    pub model: Option<String>,
    /// Stop at the first failed item of any step (`--strict`), every sub-study included.
    /// Default false.
    pub strict: bool,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            out: PathBuf::from("demo-out"),
            quick: false,
            seed: 7,
            model: None,
            strict: false,
        }
    }
}

/// Why the demo stopped (per-clip problems do not stop it; they are listed in `run.json`).
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("synthesising the corpus: {0}")]
    Synth(#[from] SynthError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("eGeMAPS descriptors: {0}")]
    Descriptors(#[from] DescriptorError),
    #[error("emotion probe: {0}")]
    Probe(#[from] SeparabilityError),
    #[error("per-emotion FAD study: {0}")]
    Fad(#[from] FadStudyError),
    #[error("SSL encoder: {0}")]
    Ssl(#[from] SslError),
    #[error("SSL extraction: every clip failed (see {0})")]
    ExtractionFailed(PathBuf),
    #[error(transparent)]
    Run(#[from] RunFolderError),
    #[error("descriptor profiles: {0}")]
    DescriptorSummary(#[from] crate::descriptors::DescriptorSummaryError),
    #[error("continuous arousal/valence: {0}")]
    Continuous(#[from] crate::continuous::ContinuousError),
    #[error("the HTML report: {0}")]
    Report(#[from] emobridge_report::ReportError),
    #[error("fine-tuning: {0}")]
    Finetune(#[from] crate::finetune::FinetuneError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What [`run`] produced.
#[derive(Debug, Clone)]
pub struct DemoOutcome {
    /// The demo's own `run.json`.
    pub run_json: PathBuf,
    /// The HTML report over every study (`report.html`, beside `summary.json`/`summary.md`).
    pub report: PathBuf,
    /// (name, folder) of every sub-study, in the order run.
    pub studies: Vec<(String, PathBuf)>,
    pub seconds: f64,
}

/// Progress of the demo: `(stage, done, total)` with stages `synth`, `egemaps`, `continuous`, `extract`.
pub type Progress<'a> = &'a (dyn Fn(&str, usize, usize) + Sync);

/// Runs every step into `config.out`.
pub fn run(config: &DemoConfig, progress: Progress) -> Result<DemoOutcome, DemoError> {
    let started = Instant::now();
    let out = &config.out;
    std::fs::create_dir_all(out).map_err(|source| DemoError::Io {
        path: out.clone(),
        source,
    })?;
    let corpus_cfg = if config.quick {
        SynthConfig::quick(config.seed)
    } else {
        SynthConfig {
            seed: config.seed,
            ..SynthConfig::default()
        }
    };

    tracing::info!("step 1/4: synthesising the corpus");
    let summary = generate(&out.join("corpus"), &corpus_cfg, &|d, t| {
        progress("synth", d, t)
    })?;
    let manifest = &summary.manifest;

    tracing::info!("step 2/4: eGeMAPS descriptors");
    let cache_root = out.join("cache");
    let cache = EmbeddingCache::open(&cache_root, EGEMAPS_LLD_TAG)?;
    let records: Vec<_> = manifest.records.iter().collect();
    let t = Instant::now();
    let descriptors =
        egemaps_over_manifest(manifest, &records, Some(&cache), config.strict, &|d, n| {
            progress("egemaps", d, n)
        });
    if let (true, Some(f)) = (config.strict, descriptors.failures.first()) {
        // Strict: the demo's own record lists the clip and the demo stops here.
        let mut run = RunFolder::create_started(out, "demo", started)?;
        run.set_config(&serde_json::json!({ "demo": config }), config.seed);
        run.set_strict(true);
        run.fail(f.id.clone(), f.path.clone(), f.error.clone())?;
    }
    let secs = t.elapsed().as_secs_f64();
    tracing::info!(
        "eGeMAPS: {} clips, {:.0} s of audio in {:.1} s ({:.0}× real time)",
        descriptors.functionals.len(),
        descriptors.audio_seconds,
        secs,
        descriptors.audio_seconds / secs.max(1e-9)
    );
    let features_dir = out.join("features");
    std::fs::create_dir_all(&features_dir).map_err(|source| DemoError::Io {
        path: features_dir.clone(),
        source,
    })?;
    write_functionals_csv(
        &features_dir.join("egemaps_functionals.csv"),
        manifest,
        &descriptors,
    )?;

    let profile = crate::descriptors::summarise(
        &Default::default(),
        manifest,
        &descriptors,
        &out.join("descriptors"),
    )?;
    tracing::info!("step 3/4: emotion probe on the eGeMAPS functionals");
    let rows: Vec<(String, Vec<f64>)> = descriptors
        .functionals
        .iter()
        .map(|(id, f)| (id.clone(), f.values.iter().map(|&v| v as f64).collect()))
        .collect();
    let probe_cfg = SeparabilityConfig {
        seed: config.seed,
        strict: config.strict,
        ..SeparabilityConfig::default()
    };
    let probe = separability::run(
        &probe_cfg,
        manifest,
        &rows,
        "egemaps-functionals",
        &out.join("probe-egemaps"),
    )?;
    for s in &probe.scores {
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

    tracing::info!("step 4/4: per-emotion Fréchet distances");
    let mut studies = vec![
        ("descriptors".to_string(), profile.run_dir),
        ("probe_egemaps".to_string(), probe.run_dir),
        (
            "fad_egemaps".to_string(),
            fad_step(config, manifest, &cache, "fad-egemaps", true)?,
        ),
    ];
    tracing::info!("continuous arousal/valence: LSTMs within, across and via a DAE");
    let continuous = crate::continuous::run(
        &crate::continuous::ContinuousConfig {
            strict: config.strict,
            ..crate::continuous::ContinuousConfig::demo(config.seed, config.quick)
        },
        manifest,
        &out.join("continuous"),
        &|d, n| progress("continuous", d, n),
    )?;
    for s in &continuous.settings {
        tracing::info!("{}", s.summary_line());
    }
    studies.push(("continuous".to_string(), continuous.run_dir));
    if let Some(spec) = &config.model {
        tracing::info!("extra step: every layer of {spec}");
        let extract = ExtractConfig {
            strict: config.strict,
            ..ExtractConfig::default()
        };
        // GPU 0 when the build has CUDA and one is visible, else the CPU.
        let device = emobridge_ssl::candle_core::Device::cuda_if_available(0)
            .unwrap_or(emobridge_ssl::candle_core::Device::Cpu);
        let model = PretrainedEncoder::load(
            spec,
            emobridge_ssl::LoadOptions {
                device,
                ..extract.load_options()
            },
        )?;
        let ssl_cache = EmbeddingCache::open(&cache_root, SSL_TAG)?;
        let report = emobridge_ssl::extract_manifest(
            &model,
            spec,
            manifest,
            &ssl_cache,
            &extract,
            &|d, n| progress("extract", d, n),
        )?;
        if report.all_failed() {
            return Err(DemoError::ExtractionFailed(report.failures_path));
        }
        let by_layer =
            separability::run_by_layer(&probe_cfg, manifest, &ssl_cache, &out.join("probe-ssl"))?;
        for line in by_layer.summary_lines() {
            tracing::info!("{line}");
        }
        studies.push(("probe_ssl".to_string(), by_layer.run_dir));
        studies.push((
            "fad_ssl".to_string(),
            fad_step(config, manifest, &ssl_cache, "fad-ssl", false)?,
        ));
    }

    if let Some(dir) = finetune_step(config, manifest, progress)? {
        studies.push(("finetune".to_string(), dir));
    }

    let run_json = write_run_json(
        config,
        &corpus_cfg,
        &summary.manifest_path,
        manifest,
        &descriptors.failures,
        &studies,
        started,
    )?;
    let report = out.join("report.html");
    emobridge_report::html::write_report(std::slice::from_ref(out), &report)?;
    Ok(DemoOutcome {
        run_json,
        report,
        studies,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The fine-tuning section: with a model, a short two-stage run (frozen and LoRA, both
/// directions, two folds, two epochs on clips cut to 1 s, or 2 s without `quick`) into
/// `finetune/`; without one nothing (the report's hint on adding an encoder names this section).
fn finetune_step(
    config: &DemoConfig,
    manifest: &Manifest,
    progress: Progress,
) -> Result<Option<PathBuf>, DemoError> {
    use crate::finetune::{run as finetune, FinetuneConfig};
    let dir = config.out.join("finetune");
    let Some(spec) = &config.model else {
        return Ok(None);
    };
    tracing::info!("extra step: short two-stage fine-tuning of {spec} (frozen, LoRA)");
    let model_dir =
        emobridge_ssl::hub::resolve_model_dir(spec, &emobridge_ssl::hub::HubOptions::from_env())?;
    let mut cfg = FinetuneConfig {
        methods: vec![emobridge_ssl::Method::Frozen, emobridge_ssl::Method::Lora],
        folds: 2,
        max_seconds: if config.quick { 1.0 } else { 2.0 },
        seed: config.seed,
        strict: config.strict,
        ..FinetuneConfig::default()
    };
    cfg.train.epochs = 2;
    cfg.train.lr_encoder = 1e-4;
    // The demo starts afresh each time (its corpus is rewritten): no state of an earlier demo.
    let resume = dir.join("resume");
    if resume.exists() {
        std::fs::remove_dir_all(&resume).map_err(|source| DemoError::Io {
            path: resume.clone(),
            source,
        })?;
    }
    let outcome = finetune(&cfg, manifest, &model_dir, &dir, &|d, n| {
        progress("finetune", d, n)
    })?;
    for r in &outcome.rows {
        tracing::info!(
            "finetune {} {} {}: UA {:.3}, macro-F1 {:.3}",
            r.method.as_str(),
            r.direction.as_str(),
            r.setting,
            r.unweighted_accuracy,
            r.macro_f1
        );
    }
    Ok(Some(outcome.run_dir))
}

/// Per-emotion FAD between speech and music on one cached model (descriptor columns have
/// unrelated units and are standardised; SSL dimensions are compared as they are).
fn fad_step(
    config: &DemoConfig,
    manifest: &Manifest,
    cache: &EmbeddingCache,
    folder: &str,
    standardize: bool,
) -> Result<PathBuf, DemoError> {
    let fad_cfg = FadStudyConfig {
        seed: config.seed,
        bootstrap: if config.quick { 20 } else { 100 },
        standardize,
        strict: config.strict,
        ..FadStudyConfig::default()
    };
    let outcome = crate::fad::run(&fad_cfg, manifest, cache, &config.out.join(folder))?;
    for row in &outcome.speech_vs_music {
        let ci = match (row.ci_lower, row.ci_upper) {
            (Some(lo), Some(hi)) => format!(" [{lo:.2}, {hi:.2}]"),
            _ => String::new(),
        };
        tracing::info!(
            "FAD speech vs music, {}, state {}, {:>8}: {:.3}{ci} (n = {} / {} frames)",
            cache.tag(),
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
    config: &DemoConfig,
    corpus: &SynthConfig,
    manifest_path: &Path,
    manifest: &Manifest,
    failures: &[crate::descriptors::ClipFailure],
    studies: &[(String, PathBuf)],
    started: Instant,
) -> Result<PathBuf, DemoError> {
    let out = &config.out;
    let mut run = RunFolder::create_started(out, "demo", started)?;
    run.set_config(
        &serde_json::json!({ "demo": config, "corpus": corpus }),
        config.seed,
    );
    run.hash_file("manifest", manifest_path)?;
    let audio_list: String = manifest
        .records
        .iter()
        .map(|r| format!("{}\n", r.path))
        .collect();
    run.hash_bytes("audio_list", audio_list.as_bytes());
    for f in failures {
        run.fail(f.id.clone(), f.path.clone(), f.error.clone())?;
    }
    for (name, dir) in studies {
        let rel = dir.strip_prefix(out).unwrap_or(dir).display().to_string();
        run.note(name, rel.clone());
        run.output(format!("{rel}/run.json"));
    }
    run.table(
        "features/egemaps_functionals.csv",
        "eGeMAPS functionals of every clip",
        "One row per clip (first columns file and id), then the 88 eGeMAPS v02 functionals \
         under openSMILE's names.\nCompare rows of different emotions or domains column by \
         column; units differ between columns.",
    );
    run.table(
        "corpus/manifest.csv",
        "The synthetic corpus",
        "One row per clip: id, audio path, domain, speaker or performer, emotion, and \
         arousal/valence.\nEvery study of this demo reads the clips listed here.",
    );
    run.finish()?;
    Ok(out.join("run.json"))
}
