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
//!    short two-stage fine-tuning run (`crate::finetune`) sized to the encoder by a stated
//!    compute rule ([`size_finetune`]);
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
    if config.model.is_some() {
        // The fine-tuning section trains on the CPU: candle's elementwise ops on the calling
        // thread and freed buffers kept for reuse (see the function). Set before the first
        // tensor op, since candle sizes its elementwise thread pool once.
        emobridge_ssl::train::prepare_process_for_training();
    }
    let out = &config.out;
    std::fs::create_dir_all(out).map_err(|source| DemoError::Io {
        path: out.clone(),
        source,
    })?;
    // The whole demo writes this folder: held from the start, not only while its record is open.
    let _folder = crate::lock_run_folder(out)?;
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

    let mut sizing = None;
    if let Some((dir, s)) = finetune_step(config, manifest, progress)? {
        studies.push(("finetune".to_string(), dir));
        sizing = Some(s);
    }

    let run_json = write_run_json(
        config,
        &corpus_cfg,
        &summary.manifest_path,
        manifest,
        &descriptors.failures,
        &studies,
        sizing.as_ref(),
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

/// The demo's compute budget for its fine-tuning section, in encoder parameters × seconds of
/// audio-pass units ([`finetune_work_units`]): about 3 minutes on 2 cores for a base-size
/// encoder (wav2vec2-base, 94 M parameters), from the section's CPU time measured on one.
pub const FINETUNE_BUDGET: f64 = 2.6e11;

/// How the demo sized its fine-tuning section to the encoder, and why (`finetune_sizing` in
/// the demo's `run.json`; the sentence is the fine-tuning run's `settings` headline).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FinetuneSizing {
    /// Scalars in the encoder's weight files.
    pub encoder_parameters: usize,
    /// Clips kept per domain, speaker and emotion (None: all).
    pub clips_per_cell: Option<usize>,
    /// Labelled clips per domain (speech, music) the section trains and tests on.
    pub clips_speech: usize,
    pub clips_music: usize,
    /// Clips are cut to their first `clip_seconds`.
    pub clip_seconds: f32,
    pub epochs: usize,
    pub batch_size: usize,
    pub folds: usize,
    /// Estimated work of these settings: parameters × audio-pass units.
    pub work: f64,
    /// The same for the demo's usual settings.
    pub usual_work: f64,
    pub budget: f64,
    /// Whether the usual settings were cut to fit the budget.
    pub reduced: bool,
    /// The rule's sentence, as the report shows it.
    pub text: String,
}

/// Seconds of audio passes the section's training runs make, weighted by their cost: a
/// training pass (forward and backward) counts 3, a forward-only pass (dev, test, a frozen
/// encoder's one pass per clip) 1. Per direction, LoRA's stage 1 on every source clip and
/// target-only and two-stage runs on each fold of the target clips (a `dev_share` of each
/// training set evaluated after every epoch, the fold's test clips once); the frozen method
/// passes every clip once. `n_*`: labelled clips per domain; `seconds`: their cut length.
pub fn finetune_work_units(
    n_speech: usize,
    n_music: usize,
    seconds: f64,
    epochs: usize,
    folds: usize,
    dev_share: f64,
) -> f64 {
    let e = epochs as f64;
    let k = folds as f64;
    let per_clip_epoch = 3.0 * (1.0 - dev_share) + dev_share;
    let lora = |src: f64, tgt: f64| {
        e * per_clip_epoch * src + 2.0 * (e * per_clip_epoch * tgt * (k - 1.0) + tgt)
    };
    let (s, m) = (n_speech as f64, n_music as f64);
    seconds * (lora(m, s) + lora(s, m) + s + m)
}

/// Scalars in a model folder's weight files ([`emobridge_ssl::weights::parameter_count`]).
fn encoder_parameters(model_dir: &Path) -> Result<usize, DemoError> {
    let files = emobridge_ssl::weights::weight_files(model_dir)?;
    Ok(emobridge_ssl::weights::parameter_count(&files)?)
}

/// The labelled clips of `manifest`, at most `cap` per domain, speaker and emotion (in manifest
/// order), and their count per domain (speech, music).
fn capped_clips(
    manifest: &Manifest,
    cap: Option<usize>,
) -> (Vec<emobridge_corpus::Record>, usize, usize) {
    use std::collections::HashMap;
    let mut seen: HashMap<(emobridge_corpus::Domain, String, String), usize> = HashMap::new();
    let mut out = Vec::new();
    let (mut speech, mut music) = (0, 0);
    for r in &manifest.records {
        let Some(emotion) = r.emotion else { continue };
        let n = seen
            .entry((r.domain, r.speaker.clone(), emotion.as_str().to_string()))
            .or_default();
        if cap.is_some_and(|c| *n >= c) {
            continue;
        }
        *n += 1;
        match r.domain {
            emobridge_corpus::Domain::Speech => speech += 1,
            emobridge_corpus::Domain::Music => music += 1,
        }
        out.push(r.clone());
    }
    (out, speech, music)
}

/// `work` against [`FINETUNE_BUDGET`] in words: "0.42×", or "under 1 % of".
fn share_of_budget(work: f64) -> String {
    let r = work / FINETUNE_BUDGET;
    if r < 0.01 {
        "under 1 % of".to_string()
    } else {
        format!("{r:.2}×")
    }
}

/// The demo's rule for its fine-tuning section. The usual settings (every labelled clip cut to
/// 2 s, or 1 s with `quick`; 2 epochs per stage; 2 folds; batches of 8) run when their
/// estimated work, encoder parameters × [`finetune_work_units`], is within
/// [`FINETUNE_BUDGET`]. Otherwise the first of these that fits does, in order: clips cut to
/// 1 s; at most 2, then 1 clip per domain, speaker and emotion; then 1 epoch per stage (the
/// last one runs even if it does not fit); reduced runs use batches of 4, so that the fewer
/// clips still give each run several optimiser steps. Returns the sizing and the records.
pub fn size_finetune(
    parameters: usize,
    manifest: &Manifest,
    quick: bool,
) -> (FinetuneSizing, Vec<emobridge_corpus::Record>) {
    let dev_share = crate::finetune::FinetuneConfig::default().dev_share;
    let (folds, usual_epochs) = (2usize, 2usize);
    let usual_seconds: f32 = if quick { 1.0 } else { 2.0 };
    let p = parameters as f64;
    let mut ladder: Vec<(f32, Option<usize>, usize)> = vec![(usual_seconds, None, usual_epochs)];
    if usual_seconds > 1.0 {
        ladder.push((1.0, None, usual_epochs));
    }
    ladder.extend([
        (1.0, Some(2), usual_epochs),
        (1.0, Some(1), usual_epochs),
        (1.0, Some(1), 1),
    ]);
    let work_of = |(secs, cap, epochs): (f32, Option<usize>, usize)| {
        let (records, s, m) = capped_clips(manifest, cap);
        let w = p * finetune_work_units(s, m, secs as f64, epochs, folds, dev_share);
        (w, records, s, m)
    };
    let (usual_work, ..) = work_of(ladder[0]);
    let last = ladder.len() - 1;
    for (i, &step) in ladder.iter().enumerate() {
        let (work, records, s, m) = work_of(step);
        if work > FINETUNE_BUDGET && i < last {
            continue;
        }
        let (secs, cap, epochs) = step;
        let reduced = i > 0;
        let batch_size = if reduced { 4 } else { 8 };
        let mparams = p / 1e6;
        let per_cell = match cap {
            Some(c) => format!("{c} per speaker and emotion, "),
            None => String::new(),
        };
        let what = format!(
            "Fine-tuning (frozen and LoRA, both directions) ran on {} labelled clips ({per_cell}{s} speech, {m} music) cut to {secs} s, {epochs} epoch{} per stage, batches of {batch_size}, {folds} speaker-independent folds",
            s + m,
            if epochs == 1 { "" } else { "s" },
        );
        let text = if reduced {
            format!(
                "{what}, instead of the demo's usual every clip cut to {usual_seconds} s with {usual_epochs} epochs, because the encoder has {mparams:.1} M parameters: the usual settings would need about {:.1}× the demo's compute budget for this section (parameters × seconds of audio passes, {FINETUNE_BUDGET:.1e}, about 3 minutes on 2 cores for a base-size encoder), these {}. Its scores show the protocol, not the encoder's best: `emobridge finetune` runs the full one.",
                usual_work / FINETUNE_BUDGET,
                share_of_budget(work)
            )
        } else {
            format!(
                "{what}: the demo's usual settings, since their estimated work for this {mparams:.2} M-parameter encoder is {} the demo's compute budget for this section (parameters × seconds of audio passes, {FINETUNE_BUDGET:.1e}, about 3 minutes on 2 cores for a base-size encoder).",
                share_of_budget(work)
            )
        };
        return (
            FinetuneSizing {
                encoder_parameters: parameters,
                clips_per_cell: cap,
                clips_speech: s,
                clips_music: m,
                clip_seconds: secs,
                epochs,
                batch_size,
                folds,
                work,
                usual_work,
                budget: FINETUNE_BUDGET,
                reduced,
                text,
            },
            records,
        );
    }
    unreachable!("the ladder's last step always returns")
}

/// The fine-tuning section: with a model, a short two-stage run (frozen and LoRA, both
/// directions, two folds) into `finetune/`, sized to the encoder by [`size_finetune`] (the
/// tiny test encoders keep the usual settings); without one nothing (the report's hint on
/// adding an encoder names this section). Returns the run folder and the sizing.
pub fn finetune_step(
    config: &DemoConfig,
    manifest: &Manifest,
    progress: Progress,
) -> Result<Option<(PathBuf, FinetuneSizing)>, DemoError> {
    use crate::finetune::{run as finetune, FinetuneConfig};
    let dir = config.out.join("finetune");
    let Some(spec) = &config.model else {
        return Ok(None);
    };
    tracing::info!("extra step: short two-stage fine-tuning of {spec} (frozen, LoRA)");
    let model_dir =
        emobridge_ssl::hub::resolve_model_dir(spec, &emobridge_ssl::hub::HubOptions::from_env())?;
    let (sizing, records) = size_finetune(encoder_parameters(&model_dir)?, manifest, config.quick);
    tracing::info!("{}", sizing.text);
    let subset;
    let manifest = if sizing.clips_per_cell.is_some() {
        subset = Manifest::new(manifest.root.clone(), records);
        &subset
    } else {
        manifest
    };
    let mut cfg = FinetuneConfig {
        methods: vec![emobridge_ssl::Method::Frozen, emobridge_ssl::Method::Lora],
        folds: sizing.folds,
        max_seconds: sizing.clip_seconds,
        seed: config.seed,
        strict: config.strict,
        settings_note: Some(sizing.text.clone()),
        ..FinetuneConfig::default()
    };
    cfg.train.epochs = sizing.epochs;
    cfg.train.batch_size = sizing.batch_size;
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
    let (wall, cpu) = outcome.cost.iter().fold((0.0, 0.0), |(w, c), r| {
        (w + r.wall_seconds, c + r.cpu_seconds)
    });
    tracing::info!("fine-tuning section: {wall:.1} s wall, {cpu:.1} s CPU in its training runs");
    Ok(Some((outcome.run_dir, sizing)))
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
    sizing: Option<&FinetuneSizing>,
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
    if let Some(s) = sizing {
        run.note("finetune_sizing", s);
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

#[cfg(test)]
mod tests {
    use super::*;
    use emobridge_corpus::{Domain, Emotion, Record};

    /// The default demo corpus's labelled part: per domain 6 speakers × 6 emotions × 3 clips,
    /// plus unlabelled continuous clips.
    fn demo_like() -> Manifest {
        // the first six of the taxonomy: neutral, calm, happy, sad, angry, fearful
        let emotions = &Emotion::ALL[..6];
        let mut records = Vec::new();
        for domain in [Domain::Speech, Domain::Music] {
            for spk in 0..6 {
                for &e in emotions {
                    for i in 0..3 {
                        let id = format!("{}_{spk}_{}_{i}", domain.as_str(), e.as_str());
                        let mut r = Record::new(
                            &id,
                            format!("{id}.wav"),
                            domain,
                            "synthetic",
                            format!("p{spk}"),
                        );
                        r.emotion = Some(e);
                        records.push(r);
                    }
                }
            }
            for i in 0..12 {
                let id = format!("{}_cont_{i}", domain.as_str());
                records.push(Record::new(
                    &id,
                    format!("{id}.wav"),
                    domain,
                    "synthetic",
                    format!("p{}", i % 6),
                ));
            }
        }
        Manifest::new("corpus", records)
    }

    #[test]
    fn a_tiny_encoder_keeps_the_usual_settings_and_says_so() {
        let m = demo_like();
        for (quick, secs) in [(false, 2.0), (true, 1.0)] {
            // mert_like_24k, the CI demo's encoder, has about 31 k parameters.
            let (s, records) = size_finetune(31_000, &m, quick);
            assert!(!s.reduced);
            assert_eq!(
                (
                    s.clip_seconds,
                    s.epochs,
                    s.batch_size,
                    s.folds,
                    s.clips_per_cell
                ),
                (secs, 2, 8, 2, None)
            );
            assert_eq!(
                (s.clips_speech, s.clips_music, records.len()),
                (108, 108, 216)
            );
            assert!(s.text.contains("the demo's usual settings"), "{}", s.text);
        }
    }

    #[test]
    fn a_base_size_encoder_gets_a_section_within_the_budget_with_the_reason_stated() {
        let m = demo_like();
        // wav2vec2-base: 94.4 M parameters.
        let (s, records) = size_finetune(94_400_000, &m, false);
        assert!(s.reduced && s.work <= FINETUNE_BUDGET, "{s:?}");
        assert!(s.usual_work > 2.0 * FINETUNE_BUDGET, "{s:?}");
        assert_eq!(s.clip_seconds, 1.0);
        // Every speaker and emotion of both domains stays in, with fewer clips each.
        let cap = s.clips_per_cell.expect("clips were capped");
        assert_eq!(s.clips_speech, 36 * cap);
        assert_eq!(records.len(), 72 * cap);
        assert!(records.iter().all(|r| r.emotion.is_some()));
        assert!(s.text.contains("instead of the demo's usual"), "{}", s.text);
        assert!(s.text.contains("94.4 M parameters"), "{}", s.text);
        // A larger encoder gets the smallest settings, still stated, even beyond the budget.
        let (l, _) = size_finetune(2_000_000_000, &m, false);
        assert_eq!(
            (l.clips_per_cell, l.epochs, l.clip_seconds),
            (Some(1), 1, 1.0)
        );
        assert!(l.work > FINETUNE_BUDGET);
    }

    #[test]
    fn the_work_estimate_counts_the_protocol_s_passes() {
        // One clip per domain, 1 s, 1 epoch, 2 folds, no dev share: per direction stage 1
        // trains on the source clip (3), each of the 2 settings trains on the target clip once
        // per other fold (3 · 1) and tests it (1): 3 + 2 · 4 = 11; both directions 22, plus the
        // frozen method's pass over both clips: 24.
        assert_eq!(finetune_work_units(1, 1, 1.0, 1, 2, 0.0), 24.0);
        assert_eq!(finetune_work_units(1, 1, 2.0, 1, 2, 0.0), 48.0);
    }
}
