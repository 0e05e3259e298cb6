//! Time-continuous arousal and valence in music and speech (Coutinho & Schuller, PLOS ONE 2017):
//! LSTM regressors on windowed acoustic features, within a domain, across domains directly, and
//! across domains through a denoising autoencoder (DAE) trained on unlabelled windows of both.
//!
//! Protocol:
//! 1. **Features** per manifest row, one vector per window of `window_s` seconds every `hop_s`
//!    seconds (default 1 s / 0.5 s, 2 Hz): ComParE-2016 LLDs + deltas summarised by mean and
//!    standard deviation (260 dims, the paper's), eGeMAPS LLDs the same way (50 dims), or a cached
//!    SSL hidden state mean-pooled over the same windows.
//! 2. **Labels**: each row with an `annotation` CSV (`time,arousal,valence`) is a sequence. The
//!    label of window `k` is the trace, linearly interpolated, at the window's centre plus the
//!    annotation lag (`lag_s`: raters answer late, so audio at `t` is labelled at `t + lag`);
//!    traces at any rate are thus resampled to the feature rate. Repairs follow
//!    [`emobridge_corpus::trace`] (dropped bad rows, sorting, interpolated gaps, frames outside
//!    the annotated span trimmed); sequences shorter than `min_frames` are skipped with a line
//!    naming the file. Every repair is counted in `run.json` (`annotation_repairs`).
//! 3. **Standardisation**: per domain (the paper's per-corpus z-normalisation, moments over every
//!    window of the domain), per sequence, or with the training sequences' moments.
//! 4. **Settings**: `intra` (group k-fold over the `speaker` column within a domain), `cross`
//!    (train on every sequence of one domain, test on the other), `cross_dae` (the same on the
//!    DAE's code or reconstruction). A development share of the training groups drives early
//!    stopping and the choice of the best restarts.
//! 5. **Scores** for arousal and valence: Pearson r, CCC and RMSE of the ensemble (mean of the
//!    best restarts) pooled over all test sequences (concatenated, as AVEC scores), and averaged
//!    per sequence; and each kept restart's pooled score per fold, whose mean ± std over restarts
//!    and folds fills the paper-style table. CCC uses population moments by default
//!    (`ccc = "population"`), or AVEC 2018's script convention (`ccc = "avec"`).
//!
//! Outputs: `results.csv` (every score), `results_table.{csv,md}` (the paper's layout),
//! `predictions/*.csv`, trace plots `traces/*.svg|png`, learning curves `curves.csv` and
//! `curves/*.svg|png`, optional `lag_sweep.{csv,svg,png}`, the cross-domain models as
//! safetensors with PyTorch's LSTM names in `models/`, and `run.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use emobridge_acoustic::compare::{self, WindowConfig};
use emobridge_acoustic::{egemaps, FeatureFrames};
use emobridge_audio::{load, DecodeOptions, IntScaling};
use emobridge_corpus::folds::{dev_split, FoldError};
use emobridge_corpus::trace::{align, read_trace, Trace, TraceReport};
use emobridge_corpus::{Domain, Manifest, Record};
use emobridge_learn::dae::{Dae, DaeConfig};
use emobridge_learn::metrics::{self, RegressionScores};
use emobridge_learn::seqtrain::{train_ensemble, Curve, Ensemble, SeqTrainConfig, Sequence};
use emobridge_learn::LearnError;
use emobridge_report::plot::{write_line_chart, LineChart, Series};
use emobridge_report::{Cell, ReportError, Table};
use emobridge_store::EmbeddingCache;
use serde::{Deserialize, Serialize};

use crate::protocol::{group_folds, row_splits, FoldPlan};
use crate::{RunFolder, RunFolderError};

/// Which windowed features feed the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// ComParE-2016 LLDs + deltas, mean and std per window (260 dims): the paper's.
    #[default]
    Compare,
    /// eGeMAPS v02 LLDs, mean and std per window (50 dims).
    Egemaps,
    /// A cached SSL hidden state, mean-pooled per window (`cache`, `model`, `layer`).
    Ssl,
}

/// How features are standardised before the models see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Standardize {
    /// z-score with the moments of every window of the sequence's domain (the paper's).
    #[default]
    PerDomain,
    /// z-score each sequence with its own moments.
    PerSequence,
    /// z-score with the training sequences' moments (per experiment).
    Train,
}

/// Which CCC definition the scores use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CccConvention {
    /// Population moments throughout (Lin 1989).
    #[default]
    Population,
    /// AVEC 2018's script: covariance 1/N, variances 1/(N − 1).
    Avec,
}

/// Every knob of the study; `Default` = the paper where it says, documented choices elsewhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContinuousConfig {
    pub features: FeatureKind,
    /// Cache root for `features = "ssl"`.
    pub cache: Option<PathBuf>,
    /// Cache tag (model folder name) for `features = "ssl"`.
    pub model: Option<String>,
    /// Hidden state for `features = "ssl"` (default: the last one).
    pub layer: Option<usize>,
    /// Window length and hop in seconds (paper: 1 s every 0.5 s).
    pub window_s: f64,
    pub hop_s: f64,
    /// Annotation delay compensation in seconds (labels taken this much later; default 0).
    pub lag_s: f64,
    /// Lags (seconds) for the sweep of intra-domain CCC by lag; empty = no sweep.
    pub lag_sweep: Vec<f64>,
    pub standardize: Standardize,
    /// Group folds within a domain (fewer when a domain has fewer groups; at least 2).
    pub folds: usize,
    /// Share of the training groups held out for early stopping and restart selection.
    pub dev_share: f64,
    /// Arousal and valence as two outputs of one network (default) or one network each.
    pub joint: bool,
    pub ccc: CccConvention,
    /// Sequences with fewer labelled frames are skipped.
    pub min_frames: usize,
    /// Run the DAE transfer setting.
    pub dae_enabled: bool,
    /// Train the DAE on every manifest row (labelled or not) rather than the sequences only.
    pub dae_all_rows: bool,
    pub lstm: SeqTrainConfig,
    pub dae: DaeConfig,
    /// Sequences per setting drawn as predicted-vs-gold traces.
    pub plots: usize,
    pub seed: u64,
    /// Stop at the first row that fails (audio, features, annotation, too short) instead of
    /// leaving it out (default false; `--strict`).
    pub strict: bool,
}

impl Default for ContinuousConfig {
    fn default() -> Self {
        ContinuousConfig {
            features: FeatureKind::Compare,
            cache: None,
            model: None,
            layer: None,
            window_s: 1.0,
            hop_s: 0.5,
            lag_s: 0.0,
            lag_sweep: Vec::new(),
            standardize: Standardize::PerDomain,
            folds: 4,
            dev_share: 0.25,
            joint: true,
            ccc: CccConvention::Population,
            min_frames: 8,
            dae_enabled: true,
            dae_all_rows: true,
            lstm: SeqTrainConfig::default(),
            dae: DaeConfig::default(),
            plots: 1,
            seed: 7,
            strict: false,
        }
    }
}

impl ContinuousConfig {
    /// A small configuration for the quick demo and tests: recurrent layers of 32 then 8
    /// units, 4 restarts keeping 2, at most 25 epochs, 3 folds, a 64-unit DAE for 10 epochs.
    pub fn quick(seed: u64) -> Self {
        ContinuousConfig {
            lstm: SeqTrainConfig {
                hidden: vec![32, 8],
                restarts: 4,
                keep_best: 2,
                max_epochs: 25,
                patience: 6,
                seed,
                ..SeqTrainConfig::default()
            },
            dae: DaeConfig {
                hidden: vec![64],
                epochs: 10,
                seed,
                ..DaeConfig::default()
            },
            folds: 3,
            seed,
            ..ContinuousConfig::default()
        }
    }

    /// The demo's settings: [`ContinuousConfig::quick`] with `quick`, else the paper's 150/10
    /// network with 5 restarts keeping the best 3 and at most 30 epochs.
    pub fn demo(seed: u64, quick: bool) -> Self {
        if quick {
            return ContinuousConfig::quick(seed);
        }
        let mut c = ContinuousConfig::quick(seed);
        c.lstm.hidden = vec![150, 10];
        c.lstm.restarts = 5;
        c.lstm.keep_best = 3;
        c.lstm.max_epochs = 30;
        c.dae.hidden = vec![150];
        c
    }

    /// Checks the knobs, naming the first bad one.
    pub fn validate(&self) -> Result<(), ContinuousError> {
        let bad = |m: String| Err(ContinuousError::Config(m));
        if !(self.window_s > 0.0 && self.window_s.is_finite())
            || !(self.hop_s > 0.0 && self.hop_s.is_finite())
        {
            return bad(format!(
                "window_s {} and hop_s {} must be positive seconds",
                self.window_s, self.hop_s
            ));
        }
        for &lag in std::iter::once(&self.lag_s).chain(&self.lag_sweep) {
            if !(lag.is_finite() && lag.abs() <= 60.0) {
                return bad(format!("lag {lag} s: must be finite and within ±60 s"));
            }
        }
        if self.folds < 2 {
            return bad(format!("folds {}: need at least 2", self.folds));
        }
        if !(self.dev_share > 0.0 && self.dev_share < 1.0) {
            return bad(format!("dev_share {}: must lie in (0, 1)", self.dev_share));
        }
        if self.min_frames < 2 {
            return bad(format!("min_frames {}: need at least 2", self.min_frames));
        }
        if self.features == FeatureKind::Ssl && (self.cache.is_none() || self.model.is_none()) {
            return bad("features = ssl needs `cache` and `model`".into());
        }
        self.lstm.validate()?;
        Ok(())
    }
}

/// Why the study could not run.
#[derive(Debug, thiserror::Error)]
pub enum ContinuousError {
    #[error("config: {0}")]
    Config(String),
    #[error("data: {0}")]
    Data(String),
    #[error(transparent)]
    Learn(#[from] LearnError),
    #[error(transparent)]
    Folds(#[from] FoldError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Run(#[from] RunFolderError),
}

/// Scores of one target in one setting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetScores {
    /// `arousal` or `valence`.
    pub target: String,
    /// The ensemble's prediction scored over all test sequences concatenated.
    pub pooled: RegressionScores,
    /// The ensemble's prediction scored per sequence, averaged (NaN r of a flat gold skipped).
    pub per_sequence: RegressionScores,
    /// Mean and standard deviation over restarts × folds of each kept restart's pooled score.
    pub restarts_mean: RegressionScores,
    pub restarts_std: RegressionScores,
}

/// One row of the results table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SettingResult {
    /// `intra`, `cross` or `cross_dae`.
    pub setting: String,
    pub train_domain: String,
    pub test_domain: String,
    pub folds: usize,
    pub n_sequences: usize,
    pub n_frames: usize,
    pub arousal: TargetScores,
    pub valence: TargetScores,
}

impl SettingResult {
    pub fn label(&self) -> String {
        format!(
            "{} {}→{}",
            self.setting, self.train_domain, self.test_domain
        )
    }

    /// One log line with the pooled A/V scores, as the CLI and the demo print it.
    pub fn summary_line(&self) -> String {
        format!(
            "continuous {:<26} A: r {:.3} CCC {:.3} RMSE {:.3} | V: r {:.3} CCC {:.3} RMSE {:.3} ({} sequences)",
            self.label(),
            self.arousal.pooled.pearson,
            self.arousal.pooled.ccc,
            self.arousal.pooled.rmse,
            self.valence.pooled.pearson,
            self.valence.pooled.ccc,
            self.valence.pooled.rmse,
            self.n_sequences
        )
    }
}

/// One point of the lag sweep: intra-domain CCC by lag.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LagPoint {
    pub lag_s: f64,
    pub domain: String,
    pub arousal_ccc: f64,
    pub valence_ccc: f64,
}

/// Counts of what the annotation rules repaired or skipped.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AnnotationRepairs {
    pub files_read: usize,
    pub files_skipped: usize,
    pub bad_rows_dropped: usize,
    pub unsorted_files: usize,
    pub duplicate_times_dropped: usize,
    pub gaps_interpolated: usize,
    pub frames_trimmed_start: usize,
    pub frames_trimmed_end: usize,
    /// Annotation rates seen (Hz, rounded to 0.01), with file counts.
    pub annotation_rates_hz: BTreeMap<String, usize>,
}

/// What [`run`] produced.
#[derive(Debug)]
pub struct ContinuousOutcome {
    pub settings: Vec<SettingResult>,
    pub lag_sweep: Vec<LagPoint>,
    pub repairs: AnnotationRepairs,
    pub run_dir: PathBuf,
}

/// One manifest row's windows.
struct Clip {
    id: String,
    domain: Domain,
    group: String,
    /// Raw windows `[frames, dim]`.
    x: Vec<f32>,
    frames: usize,
    times: Vec<f64>,
    trace: Option<Trace>,
    annotation: String,
}

/// A labelled sequence ready for a model.
#[derive(Clone)]
struct Seq {
    clip: usize,
    /// First window used.
    start: usize,
    x: Vec<f32>,
    /// `[frames, 2]` (arousal, valence).
    y: Vec<f32>,
}

impl Seq {
    fn frames(&self) -> usize {
        self.y.len() / 2
    }
}

/// Runs the whole study on `manifest` and writes `out`. `progress(done, total)` counts trained
/// ensembles.
pub fn run(
    config: &ContinuousConfig,
    manifest: &Manifest,
    out: &Path,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<ContinuousOutcome, ContinuousError> {
    config.validate()?;
    if let (FeatureKind::Ssl, Some(root), Some(tag)) =
        (config.features, &config.cache, &config.model)
    {
        if !root.join(tag).is_dir() {
            return Err(ContinuousError::Config(format!(
                "no cache folder {} (fill it with `emobridge extract` first)",
                root.join(tag).display()
            )));
        }
    }
    let mut run = RunFolder::create(out, "continuous")?;
    run.set_strict(config.strict);
    run.set_config(config, config.seed);
    run.hash_manifest(manifest);

    // 1. Features for every row the study needs.
    let labelled: Vec<&Record> = manifest
        .records
        .iter()
        .filter(|r| !r.annotation.trim().is_empty())
        .collect();
    if let (Some(root), Some(tag)) = (&config.cache, &config.model) {
        if let (FeatureKind::Ssl, Ok(cache)) = (config.features, EmbeddingCache::open(root, tag)) {
            let ids: Vec<&str> = labelled.iter().map(|r| r.id.as_str()).collect();
            run.hash_cache(&cache, &ids);
        }
    }
    if labelled.is_empty() {
        return Err(ContinuousError::Data(
            "no manifest row names an annotation CSV (`annotation` column): nothing to learn"
                .into(),
        ));
    }
    let rows: Vec<&Record> = if config.dae_enabled && config.dae_all_rows {
        manifest.records.iter().collect()
    } else {
        labelled.clone()
    };
    tracing::info!(
        "continuous: {} rows to featurise ({} annotated)",
        rows.len(),
        labelled.len()
    );
    // Under strict the first row that fails stops the rows not yet started (and the study).
    let extracted =
        crate::par_until_failure(&rows, config.strict, |r| windows_of(config, manifest, r));
    let mut clips = Vec::new();
    let mut dim = None;
    let mut repairs = AnnotationRepairs::default();
    let mut feature_names = Vec::new();
    for (r, e) in rows.iter().zip(extracted) {
        let annotated = !r.annotation.trim().is_empty();
        let Some(e) = e else { continue };
        let (frames, _) = match e {
            Ok(f) => f,
            Err(e) => {
                tracing::error!("{}: {e}", manifest.audio_path(r).display());
                run.fail(&r.id, manifest.audio_path(r).display().to_string(), e)?;
                if annotated {
                    repairs.files_skipped += 1;
                }
                continue;
            }
        };
        if frames.is_empty() {
            run.fail(
                &r.id,
                manifest.audio_path(r).display().to_string(),
                "shorter than one analysis window: no feature windows",
            )?;
            continue;
        }
        let d = frames.names.len();
        if *dim.get_or_insert(d) != d {
            return Err(ContinuousError::Data(format!(
                "{}: {d} features per window, earlier rows have {}",
                r.id,
                dim.unwrap_or(0)
            )));
        }
        if feature_names.is_empty() {
            feature_names = frames.names.clone();
        }
        let mut trace = None;
        if annotated {
            let path = manifest
                .annotation_path(r)
                .expect("annotation named")
                .display()
                .to_string();
            match read_trace(Path::new(&path)) {
                Ok((t, rep)) => {
                    count_repairs(&mut repairs, &rep, &t);
                    trace = Some(t);
                }
                Err(e) => {
                    tracing::error!("{e}");
                    run.fail(&r.id, path, e.to_string())?;
                    repairs.files_skipped += 1;
                }
            }
        }
        let n = frames.len();
        clips.push(Clip {
            id: r.id.clone(),
            domain: r.domain,
            group: r.speaker.clone(),
            x: frames.values.into_iter().flatten().collect(),
            frames: n,
            times: frames.frame_times,
            trace,
            annotation: r.annotation.clone(),
        });
    }
    let dim = dim.ok_or_else(|| ContinuousError::Data("no row produced features".into()))?;
    if let Some(i) = clips
        .iter()
        .find_map(|c| c.x.iter().position(|v| !v.is_finite()).map(|p| (c, p)))
    {
        return Err(ContinuousError::Data(format!(
            "{}: non-finite feature at window {}, column {}",
            i.0.id,
            i.1 / dim,
            i.1 % dim
        )));
    }

    // 2. Standardisation that does not depend on the experiment.
    match config.standardize {
        Standardize::PerDomain => {
            for d in [Domain::Speech, Domain::Music] {
                let idx: Vec<usize> = (0..clips.len()).filter(|&i| clips[i].domain == d).collect();
                let m = Moments::fit(idx.iter().map(|&i| clips[i].x.as_slice()), dim);
                for i in idx {
                    m.apply(&mut clips[i].x);
                }
            }
        }
        Standardize::PerSequence => {
            for c in &mut clips {
                let m = Moments::fit(std::iter::once(c.x.as_slice()), dim);
                m.apply(&mut c.x);
            }
        }
        Standardize::Train => {}
    }

    // 3. Sequences at the configured lag.
    let (seqs, trimmed) = sequences(&clips, dim, config.lag_s, config, &mut run)?;
    repairs.frames_trimmed_start = trimmed.0;
    repairs.frames_trimmed_end = trimmed.1;
    let by_domain = |d: Domain| -> Vec<usize> {
        (0..seqs.len())
            .filter(|&i| clips[seqs[i].clip].domain == d)
            .collect()
    };
    let (music, speech) = (by_domain(Domain::Music), by_domain(Domain::Speech));
    run.note(
        "sequences",
        serde_json::json!({
            "music": music.len(), "speech": speech.len(),
            "music_frames": music.iter().map(|&i| seqs[i].frames()).sum::<usize>(),
            "speech_frames": speech.iter().map(|&i| seqs[i].frames()).sum::<usize>(),
            "feature_dim": dim,
            "feature_rate_hz": 1.0 / config.hop_s,
        }),
    );
    for (name, set) in [("music", &music), ("speech", &speech)] {
        let groups: BTreeSet<&str> = set
            .iter()
            .map(|&i| clips[seqs[i].clip].group.as_str())
            .collect();
        if groups.len() < 2 {
            return Err(ContinuousError::Data(format!(
                "{name}: {} usable sequence(s) from {} group(s); the study needs sequences from at least 2 speakers/performers per domain",
                set.len(),
                groups.len()
            )));
        }
    }

    // 4. The DAE, trained once on windows of both domains.
    let dae = if config.dae_enabled {
        Some(train_dae(config, &clips, dim)?)
    } else {
        None
    };

    // 5. The settings.
    let per_setting = if config.joint { 1 } else { 2 };
    let fold_count = |set: &[usize]| -> usize {
        let groups: Vec<&str> = set
            .iter()
            .map(|&i| clips[seqs[i].clip].group.as_str())
            .collect();
        FoldPlan::new(&groups, config.folds).k
    };
    let sweep_trainings: usize =
        config.lag_sweep.len() * (fold_count(&music) + fold_count(&speech));
    let total = per_setting
        * (fold_count(&music)
            + fold_count(&speech)
            + 2
            + if dae.is_some() { 2 } else { 0 }
            + sweep_trainings);
    let done = AtomicUsize::new(0);
    let tick = || progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
    let ctx = Ctx {
        config,
        clips: &clips,
        dim,
        tick: &tick,
    };
    let mut settings = Vec::new();
    let mut predictions = Vec::new();
    let mut curves_all = Vec::new();
    let mut models = Vec::new();
    let plans: Vec<(&str, Domain, Domain)> = {
        let mut p = vec![
            ("intra", Domain::Music, Domain::Music),
            ("intra", Domain::Speech, Domain::Speech),
            ("cross", Domain::Music, Domain::Speech),
            ("cross", Domain::Speech, Domain::Music),
        ];
        if dae.is_some() {
            p.push(("cross_dae", Domain::Music, Domain::Speech));
            p.push(("cross_dae", Domain::Speech, Domain::Music));
        }
        p
    };
    for (k, (setting, from, to)) in plans.iter().enumerate() {
        let (src, dst) = (
            if *from == Domain::Music {
                &music
            } else {
                &speech
            },
            if *to == Domain::Music {
                &music
            } else {
                &speech
            },
        );
        tracing::info!("continuous: {setting} {from} → {to}");
        let transform = if *setting == "cross_dae" {
            dae.as_ref()
        } else {
            None
        };
        let seed = config.seed.wrapping_add(1000 * k as u64);
        let outcome = if setting == &"intra" {
            ctx.cross_validate(&seqs, src, seed, transform)?
        } else {
            ctx.transfer(&seqs, src, dst, seed, transform)?
        };
        let result = score_setting(setting, *from, *to, &outcome, &seqs, config.ccc)?;
        tracing::info!(
            "continuous: {}: arousal CCC {:.3} (r {:.3}), valence CCC {:.3} (r {:.3})",
            result.label(),
            result.arousal.pooled.ccc,
            result.arousal.pooled.pearson,
            result.valence.pooled.ccc,
            result.valence.pooled.pearson
        );
        for (fold, c) in &outcome.curves {
            curves_all.push((result.label(), *fold, c.clone()));
        }
        if setting != &"intra" {
            if let Some(m) = outcome.first_model.clone() {
                models.push((format!("{setting}_{from}_to_{to}"), m));
            }
        }
        predictions.push((result.clone(), outcome));
        settings.push(result);
    }

    // 6. Lag sweep (intra-domain only).
    let mut sweep = Vec::new();
    for &lag in &config.lag_sweep {
        let mut scratch = RunFolder::create(&out.join(".lag-scratch"), "scratch")?;
        let (lag_seqs, _) = sequences(&clips, dim, lag, config, &mut scratch)?;
        for d in [Domain::Music, Domain::Speech] {
            let set: Vec<usize> = (0..lag_seqs.len())
                .filter(|&i| clips[lag_seqs[i].clip].domain == d)
                .collect();
            let o = ctx.cross_validate(&lag_seqs, &set, config.seed ^ 0x1A6, None)?;
            let r = score_setting("intra", d, d, &o, &lag_seqs, config.ccc)?;
            tracing::info!(
                "continuous: lag {lag} s, {d}: arousal CCC {:.3}, valence CCC {:.3}",
                r.arousal.pooled.ccc,
                r.valence.pooled.ccc
            );
            sweep.push(LagPoint {
                lag_s: lag,
                domain: d.as_str().to_string(),
                arousal_ccc: r.arousal.pooled.ccc,
                valence_ccc: r.valence.pooled.ccc,
            });
        }
    }
    let _ = std::fs::remove_dir_all(out.join(".lag-scratch"));

    // 7. Outputs.
    repairs_note(&mut run, &repairs, config);
    write_outputs(
        &mut run,
        config,
        &clips,
        &settings,
        &predictions,
        &seqs,
        &curves_all,
        &sweep,
        &models,
    )?;
    headlines(&mut run, &settings, config);
    let run_dir = run.dir().to_path_buf();
    run.finish()?;
    Ok(ContinuousOutcome {
        settings,
        lag_sweep: sweep,
        repairs,
        run_dir,
    })
}

fn count_repairs(repairs: &mut AnnotationRepairs, rep: &TraceReport, t: &Trace) {
    repairs.files_read += 1;
    repairs.bad_rows_dropped += rep.bad_rows;
    repairs.unsorted_files += rep.unsorted as usize;
    repairs.duplicate_times_dropped += rep.duplicate_times;
    repairs.gaps_interpolated += rep.gaps;
    let step = t.median_step();
    let rate = if step > 0.0 { 1.0 / step } else { 0.0 };
    *repairs
        .annotation_rates_hz
        .entry(format!("{rate:.2}"))
        .or_default() += 1;
}

fn repairs_note(run: &mut RunFolder, repairs: &AnnotationRepairs, config: &ContinuousConfig) {
    run.note("annotation_repairs", repairs);
    run.note(
        "conventions",
        serde_json::json!({
            "label_time": format!(
                "window start + {} s (window centre) + lag {} s; traces linearly interpolated there, i.e. resampled to the {} Hz feature rate",
                config.window_s / 2.0, config.lag_s, 1.0 / config.hop_s),
            "ccc": match config.ccc {
                CccConvention::Population => "population moments: 2·cov/(σx²+σy²+(μx−μy)²), all 1/N",
                CccConvention::Avec => "AVEC 2018 script: covariance 1/N, variances 1/(N−1)",
            },
            "pooled": "ensemble prediction scored over all test sequences concatenated (AVEC style)",
            "per_sequence": "ensemble prediction scored per sequence, then averaged",
            "restarts_mean_std": "each kept restart's pooled score per fold; mean ± std over restarts × folds",
            "standardize": config.standardize,
            "annotation_rules": "bad rows dropped, unsorted rows sorted, repeated times keep the first, gaps interpolated, frames outside the annotated span (± half a step) trimmed, sequences under min_frames skipped",
        }),
    );
}

/// The windows of one row, as configured.
fn windows_of(
    config: &ContinuousConfig,
    manifest: &Manifest,
    r: &Record,
) -> Result<(FeatureFrames, f64), String> {
    let wc = WindowConfig {
        window_s: config.window_s,
        hop_s: config.hop_s,
        drop_partial: false,
    };
    match config.features {
        FeatureKind::Compare | FeatureKind::Egemaps => {
            let audio = load(
                manifest.audio_path(r),
                &DecodeOptions {
                    int_scaling: IntScaling::OpenSmile,
                    ..DecodeOptions::mono()
                },
            )
            .map_err(|e| e.to_string())?;
            let secs = audio.duration_s();
            let rate = audio.sample_rate;
            let samples = audio.into_mono();
            let frames = if config.features == FeatureKind::Compare {
                compare::windows(&samples, rate, &wc).map_err(|e| e.to_string())?
            } else {
                let lld = egemaps::lld(&samples, rate).map_err(|e| e.to_string())?;
                compare::summarise_windows(&lld, &wc).map_err(|e| e.to_string())?
            };
            Ok((frames, secs))
        }
        FeatureKind::Ssl => {
            let (root, tag) = (
                config.cache.as_ref().expect("validated"),
                config.model.as_ref().expect("validated"),
            );
            if !root.join(tag).is_dir() {
                return Err(format!(
                    "no cache folder {} (extract the model first)",
                    root.join(tag).display()
                ));
            }
            let cache = EmbeddingCache::open(root, tag).map_err(|e| e.to_string())?;
            let entry = cache.read(&r.id).map_err(|e| e.to_string())?;
            let [states, n, d] = entry.shape;
            let layer = config.layer.unwrap_or(states.saturating_sub(1));
            if layer >= states {
                return Err(format!(
                    "layer {layer} out of range: the entry has {states} hidden states"
                ));
            }
            let rate = entry.metadata.frame_rate_hz;
            if !(rate > 0.0) {
                return Err(format!("cache entry has frame rate {rate} Hz"));
            }
            let frames = &entry.hidden_states[layer * n * d..(layer + 1) * n * d];
            Ok((pool_windows(frames, n, d, rate, &wc), n as f64 / rate))
        }
    }
}

/// Mean of the frames (at `rate` Hz) inside each window; windows start while inside the clip.
fn pool_windows(frames: &[f32], n: usize, d: usize, rate: f64, wc: &WindowConfig) -> FeatureFrames {
    let mut out = FeatureFrames {
        names: (0..d).map(|k| format!("dim{k}_amean")).collect(),
        ..FeatureFrames::default()
    };
    let dur = n as f64 / rate;
    let mut k = 0usize;
    loop {
        let start = k as f64 * wc.hop_s;
        if start >= dur - 1e-9 {
            break;
        }
        let (a, b) = (
            (start * rate).ceil() as usize,
            (((start + wc.window_s) * rate).ceil() as usize).min(n),
        );
        if b > a {
            let mut row = vec![0.0f32; d];
            for j in a..b {
                for (r, v) in row.iter_mut().zip(&frames[j * d..(j + 1) * d]) {
                    *r += v;
                }
            }
            row.iter_mut().for_each(|v| *v /= (b - a) as f32);
            out.frame_times.push(start);
            out.values.push(row);
        }
        k += 1;
    }
    out
}

/// Column moments (sd 1 for a constant column).
struct Moments {
    mean: Vec<f64>,
    sd: Vec<f64>,
}

impl Moments {
    fn fit<'a>(blocks: impl Iterator<Item = &'a [f32]>, dim: usize) -> Moments {
        let (mut s, mut s2, mut n) = (vec![0.0f64; dim], vec![0.0f64; dim], 0usize);
        for b in blocks {
            for row in b.chunks_exact(dim) {
                for k in 0..dim {
                    let v = row[k] as f64;
                    s[k] += v;
                    s2[k] += v * v;
                }
                n += 1;
            }
        }
        let n = n.max(1) as f64;
        let mean: Vec<f64> = s.iter().map(|v| v / n).collect();
        let sd = s2
            .iter()
            .zip(&mean)
            .map(|(q, m)| {
                let var = (q / n - m * m).max(0.0);
                if var > 1e-12 * (1.0 + m * m) {
                    var.sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        Moments { mean, sd }
    }

    fn apply(&self, x: &mut [f32]) {
        let dim = self.mean.len();
        for row in x.chunks_exact_mut(dim) {
            for k in 0..dim {
                row[k] = ((row[k] as f64 - self.mean[k]) / self.sd[k]) as f32;
            }
        }
    }
}

/// Labelled sequences at `lag`; returns them and the frames trimmed (start, end).
fn sequences(
    clips: &[Clip],
    dim: usize,
    lag: f64,
    config: &ContinuousConfig,
    run: &mut RunFolder,
) -> Result<(Vec<Seq>, (usize, usize)), RunFolderError> {
    let mut out = Vec::new();
    let mut trimmed = (0, 0);
    for (ci, c) in clips.iter().enumerate() {
        let Some(trace) = &c.trace else { continue };
        let label_times: Vec<f64> = c
            .times
            .iter()
            .map(|t| t + config.window_s / 2.0 + lag)
            .collect();
        let Some((start, labels)) = align(trace, &label_times) else {
            run.fail(
                &c.id,
                &c.annotation,
                "no feature window falls inside the annotated time span; sequence skipped",
            )?;
            continue;
        };
        if labels.len() < config.min_frames {
            run.fail(
                &c.id,
                &c.annotation,
                format!(
                    "{} labelled windows, fewer than min_frames = {}; sequence skipped",
                    labels.len(),
                    config.min_frames
                ),
            )?;
            continue;
        }
        trimmed.0 += start;
        trimmed.1 += c.frames - start - labels.len();
        out.push(Seq {
            clip: ci,
            start,
            x: c.x[start * dim..(start + labels.len()) * dim].to_vec(),
            y: labels
                .iter()
                .flat_map(|&(a, v)| [a as f32, v as f32])
                .collect(),
        });
    }
    Ok((out, trimmed))
}

fn train_dae(
    config: &ContinuousConfig,
    clips: &[Clip],
    dim: usize,
) -> Result<Dae, ContinuousError> {
    let mut x: Vec<f32> = clips.iter().flat_map(|c| c.x.iter().copied()).collect();
    if config.standardize == Standardize::Train {
        Moments::fit(std::iter::once(x.as_slice()), dim).apply(&mut x);
    }
    let rows = x.len() / dim;
    tracing::info!("continuous: DAE on {rows} windows of both domains");
    let dae_cfg = DaeConfig {
        seed: config.dae.seed ^ config.seed,
        ..config.dae.clone()
    };
    Ok(Dae::fit(&x, rows, dim, &dae_cfg, &|_, _| {})?)
}

/// What one setting's trainings produced.
struct SettingOutcome {
    /// Test sequence indices (into the setting's `seqs`), with fold number.
    tests: Vec<(usize, usize)>,
    /// Ensemble prediction per test sequence `[frames, 2]`, aligned with `tests`.
    ensemble: Vec<Vec<f32>>,
    /// Per fold, per kept restart: predictions of the fold's test sequences.
    members: Vec<(usize, Vec<Vec<Vec<f32>>>)>,
    curves: Vec<(usize, Curve)>,
    first_model: Option<emobridge_learn::lstm::LstmNet<f32>>,
}

struct Ctx<'a> {
    config: &'a ContinuousConfig,
    clips: &'a [Clip],
    dim: usize,
    tick: &'a (dyn Fn() + Sync),
}

impl Ctx<'_> {
    fn groups(&self, seqs: &[Seq], set: &[usize]) -> Vec<String> {
        set.iter()
            .map(|&i| self.clips[seqs[i].clip].group.clone())
            .collect()
    }

    fn cross_validate(
        &self,
        seqs: &[Seq],
        set: &[usize],
        seed: u64,
        transform: Option<&Dae>,
    ) -> Result<SettingOutcome, ContinuousError> {
        let folds = group_folds(&self.groups(seqs, set), self.config.folds, seed)?;
        let mut acc = SettingOutcome {
            tests: Vec::new(),
            ensemble: Vec::new(),
            members: Vec::new(),
            curves: Vec::new(),
            first_model: None,
        };
        for (f, (train, test)) in row_splits(&folds, set).into_iter().enumerate() {
            self.one(
                seqs,
                &train,
                &test,
                f,
                seed.wrapping_add(f as u64),
                transform,
                &mut acc,
            )?;
        }
        Ok(acc)
    }

    fn transfer(
        &self,
        seqs: &[Seq],
        src: &[usize],
        dst: &[usize],
        seed: u64,
        transform: Option<&Dae>,
    ) -> Result<SettingOutcome, ContinuousError> {
        let mut acc = SettingOutcome {
            tests: Vec::new(),
            ensemble: Vec::new(),
            members: Vec::new(),
            curves: Vec::new(),
            first_model: None,
        };
        self.one(seqs, src, dst, 0, seed, transform, &mut acc)?;
        Ok(acc)
    }

    #[allow(clippy::too_many_arguments)]
    fn one(
        &self,
        seqs: &[Seq],
        train: &[usize],
        test: &[usize],
        fold: usize,
        seed: u64,
        transform: Option<&Dae>,
        acc: &mut SettingOutcome,
    ) -> Result<(), ContinuousError> {
        let groups: Vec<String> = (0..seqs.len())
            .map(|i| self.clips[seqs[i].clip].group.clone())
            .collect();
        let (fit, dev) = dev_split(train, &groups, self.config.dev_share, seed);
        if fit.is_empty() || dev.is_empty() {
            return Err(ContinuousError::Data(format!(
                "fold {fold}: {} training sequences from too few groups to hold out a development share",
                train.len()
            )));
        }
        // Inputs as the models see them.
        let mut prepared: BTreeMap<usize, Vec<f32>> = BTreeMap::new();
        for &i in fit.iter().chain(&dev).chain(test) {
            prepared.insert(i, seqs[i].x.clone());
        }
        if self.config.standardize == Standardize::Train && transform.is_none() {
            let m = Moments::fit(
                fit.iter().chain(&dev).map(|i| seqs[*i].x.as_slice()),
                self.dim,
            );
            prepared.values_mut().for_each(|x| m.apply(x));
        }
        let mut in_dim = self.dim;
        if let Some(dae) = transform {
            for x in prepared.values_mut() {
                let rows = x.len() / self.dim;
                *x = dae.transform(x, rows)?;
            }
            in_dim = dae.output_dim();
        }
        let targets: Vec<Vec<usize>> = if self.config.joint {
            vec![vec![0, 1]]
        } else {
            vec![vec![0], vec![1]]
        };
        let test_x: Vec<&[f32]> = test.iter().map(|i| prepared[i].as_slice()).collect();
        let mut ens_pred: Vec<Vec<f32>> =
            test.iter().map(|&i| vec![0.0; seqs[i].y.len()]).collect();
        let mut member_pred: Vec<Vec<Vec<f32>>> = Vec::new();
        for (ti, cols) in targets.iter().enumerate() {
            let make = |set: &[usize]| -> Vec<Sequence> {
                set.iter()
                    .map(|&i| Sequence {
                        x: prepared[&i].clone(),
                        y: seqs[i]
                            .y
                            .chunks_exact(2)
                            .flat_map(|p| cols.iter().map(move |&c| p[c]))
                            .collect(),
                    })
                    .collect()
            };
            let lstm = SeqTrainConfig {
                seed: seed.wrapping_mul(31).wrapping_add(ti as u64),
                ..self.config.lstm.clone()
            };
            let ens: Ensemble = train_ensemble(
                &make(&fit),
                &make(&dev),
                in_dim,
                cols.len(),
                &lstm,
                &|_, _| {},
            )?;
            (self.tick)();
            let o = cols.len();
            for (p, out) in ens.predict(&test_x)?.iter().zip(&mut ens_pred) {
                for (t, row) in p.chunks_exact(o).enumerate() {
                    for (j, &c) in cols.iter().enumerate() {
                        out[t * 2 + c] = row[j];
                    }
                }
            }
            let members = ens.predict_members(&test_x)?;
            if member_pred.is_empty() {
                member_pred = members
                    .iter()
                    .map(|_| test.iter().map(|&i| vec![0.0; seqs[i].y.len()]).collect())
                    .collect();
            }
            for (m, preds) in members.iter().enumerate() {
                for (p, out) in preds.iter().zip(&mut member_pred[m]) {
                    for (t, row) in p.chunks_exact(o).enumerate() {
                        for (j, &c) in cols.iter().enumerate() {
                            out[t * 2 + c] = row[j];
                        }
                    }
                }
            }
            for c in ens.curves {
                acc.curves.push((fold, c));
            }
            if acc.first_model.is_none() && self.config.joint {
                acc.first_model = ens.members.first().cloned();
            }
        }
        acc.tests.extend(test.iter().map(|&i| (i, fold)));
        acc.ensemble.extend(ens_pred);
        acc.members.push((fold, member_pred));
        Ok(())
    }
}

fn score(
    truth: &[f64],
    pred: &[f64],
    conv: CccConvention,
) -> Result<RegressionScores, ContinuousError> {
    let mut s = metrics::regression(truth, pred)?;
    if conv == CccConvention::Avec {
        s.ccc = metrics::ccc_avec(truth, pred)?;
    }
    Ok(s)
}

fn column(v: &[f32], c: usize) -> Vec<f64> {
    v.chunks_exact(2).map(|p| p[c] as f64).collect()
}

fn mean_std(v: &[RegressionScores]) -> (RegressionScores, RegressionScores) {
    let pick = |f: &dyn Fn(&RegressionScores) -> f64| -> (f64, f64) {
        let xs: Vec<f64> = v.iter().map(f).filter(|x| x.is_finite()).collect();
        if xs.is_empty() {
            return (f64::NAN, f64::NAN);
        }
        let m = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64;
        (m, var.sqrt())
    };
    let (r, rs) = pick(&|s| s.pearson);
    let (c, cs) = pick(&|s| s.ccc);
    let (e, es) = pick(&|s| s.rmse);
    (
        RegressionScores {
            pearson: r,
            ccc: c,
            rmse: e,
        },
        RegressionScores {
            pearson: rs,
            ccc: cs,
            rmse: es,
        },
    )
}

fn score_setting(
    setting: &str,
    from: Domain,
    to: Domain,
    o: &SettingOutcome,
    seqs: &[Seq],
    conv: CccConvention,
) -> Result<SettingResult, ContinuousError> {
    let mut targets = Vec::new();
    for (c, name) in [(0usize, "arousal"), (1, "valence")] {
        let (mut gold, mut pred) = (Vec::new(), Vec::new());
        let mut per_seq = Vec::new();
        for ((i, _), p) in o.tests.iter().zip(&o.ensemble) {
            let (g, q) = (column(&seqs[*i].y, c), column(p, c));
            per_seq.push(score(&g, &q, conv)?);
            gold.extend(g);
            pred.extend(q);
        }
        let pooled = score(&gold, &pred, conv)?;
        let mut member_scores = Vec::new();
        for (fold, members) in &o.members {
            let idx: Vec<usize> = o
                .tests
                .iter()
                .filter(|(_, f)| f == fold)
                .map(|(i, _)| *i)
                .collect();
            for m in members {
                let (mut g, mut q) = (Vec::new(), Vec::new());
                for (i, p) in idx.iter().zip(m) {
                    g.extend(column(&seqs[*i].y, c));
                    q.extend(column(p, c));
                }
                member_scores.push(score(&g, &q, conv)?);
            }
        }
        let (restarts_mean, restarts_std) = mean_std(&member_scores);
        targets.push(TargetScores {
            target: name.to_string(),
            pooled,
            per_sequence: mean_std(&per_seq).0,
            restarts_mean,
            restarts_std,
        });
    }
    let valence = targets.pop().expect("two targets");
    let arousal = targets.pop().expect("two targets");
    Ok(SettingResult {
        setting: setting.to_string(),
        train_domain: from.as_str().to_string(),
        test_domain: to.as_str().to_string(),
        folds: o.members.len(),
        n_sequences: o.tests.len(),
        n_frames: o.tests.iter().map(|(i, _)| seqs[*i].frames()).sum(),
        arousal,
        valence,
    })
}

fn pm(m: f64, s: f64) -> String {
    if m.is_finite() {
        format!("{m:.3} ± {s:.3}")
    } else {
        "n/a".into()
    }
}

#[allow(clippy::too_many_arguments)]
fn write_outputs(
    run: &mut RunFolder,
    config: &ContinuousConfig,
    clips: &[Clip],
    settings: &[SettingResult],
    predictions: &[(SettingResult, SettingOutcome)],
    seqs: &[Seq],
    curves: &[(String, usize, Curve)],
    sweep: &[LagPoint],
    models: &[(String, emobridge_learn::lstm::LstmNet<f32>)],
) -> Result<(), ContinuousError> {
    // Every score, long format.
    let mut long = Table::new([
        "setting",
        "train",
        "test",
        "target",
        "aggregate",
        "pearson_r",
        "ccc",
        "rmse",
        "folds",
        "sequences",
        "frames",
    ]);
    for s in settings {
        for t in [&s.arousal, &s.valence] {
            for (agg, v) in [
                ("ensemble_pooled", &t.pooled),
                ("ensemble_per_sequence", &t.per_sequence),
                ("restarts_mean", &t.restarts_mean),
                ("restarts_std", &t.restarts_std),
            ] {
                long.push(vec![
                    Cell::from(s.setting.as_str()),
                    Cell::from(s.train_domain.as_str()),
                    Cell::from(s.test_domain.as_str()),
                    Cell::from(t.target.as_str()),
                    Cell::from(agg),
                    Cell::from(v.pearson),
                    Cell::from(v.ccc),
                    Cell::from(v.rmse),
                    Cell::from(s.folds),
                    Cell::from(s.n_sequences),
                    Cell::from(s.n_frames),
                ])?;
            }
        }
    }
    long.write_csv(&run.path("results.csv"))?;
    run.table(
        "results.csv",
        "Every score of every setting",
        "Pearson r, CCC and RMSE per setting and target: the ensemble pooled over test sequences, per sequence, and the restarts' mean and spread.\nHigher r and CCC (at most 1) and lower RMSE are better; CCC 0 means no agreement.",
    );
    // The paper's layout.
    let mut paper = Table::new([
        "setting", "A r", "A CCC", "A RMSE", "V r", "V CCC", "V RMSE",
    ]);
    for s in settings {
        let (a, v) = (&s.arousal, &s.valence);
        paper.push(vec![
            Cell::from(s.label()),
            Cell::from(pm(a.restarts_mean.pearson, a.restarts_std.pearson)),
            Cell::from(pm(a.restarts_mean.ccc, a.restarts_std.ccc)),
            Cell::from(pm(a.restarts_mean.rmse, a.restarts_std.rmse)),
            Cell::from(pm(v.restarts_mean.pearson, v.restarts_std.pearson)),
            Cell::from(pm(v.restarts_mean.ccc, v.restarts_std.ccc)),
            Cell::from(pm(v.restarts_mean.rmse, v.restarts_std.rmse)),
        ])?;
    }
    paper.write_csv(&run.path("results_table.csv"))?;
    paper.write_markdown(&run.path("results_table.md"), 3)?;
    run.table(
        "results_table.csv",
        "Arousal (A) and valence (V) over time, as laid out in the paper",
        "Rows: trained on one domain and tested on the same (intra) or the other (cross, cross_dae via the autoencoder); cells: mean ± std over restarts and folds.\nCompare CCC down a column: cross-domain rows near the intra rows mean the acoustic code is shared.",
    );
    run.output("results_table.md");

    // Predictions and trace plots.
    std::fs::create_dir_all(run.path("predictions")).map_err(io_err(run.path("predictions")))?;
    for (s, o) in predictions {
        let name = format!("{}_{}_to_{}", s.setting, s.train_domain, s.test_domain);
        let mut t = Table::new([
            "id",
            "fold",
            "time",
            "arousal",
            "arousal_pred",
            "valence",
            "valence_pred",
        ]);
        for ((i, fold), p) in o.tests.iter().zip(&o.ensemble) {
            let c = &clips[seqs[*i].clip];
            for (k, (g, q)) in seqs[*i]
                .y
                .chunks_exact(2)
                .zip(p.chunks_exact(2))
                .enumerate()
            {
                t.push(vec![
                    Cell::from(c.id.as_str()),
                    Cell::from(*fold),
                    Cell::from(c.times[seqs[*i].start + k]),
                    Cell::from(g[0] as f64),
                    Cell::from(q[0] as f64),
                    Cell::from(g[1] as f64),
                    Cell::from(q[1] as f64),
                ])?;
            }
        }
        let rel = format!("predictions/{name}.csv");
        t.write_csv(&run.path(&rel))?;
        run.artifact(
            crate::ArtifactKind::Data,
            rel,
            format!("Predicted and gold traces, {}", s.label()),
            "One row per window of every test sequence: gold and predicted arousal and valence.\nTime is the window start in seconds.",
        );
        for ((i, _), p) in o.tests.iter().zip(&o.ensemble).take(config.plots) {
            let c = &clips[seqs[*i].clip];
            let times: Vec<f64> = (0..seqs[*i].frames())
                .map(|k| c.times[seqs[*i].start + k])
                .collect();
            let line = |label: &str, v: Vec<f64>| Series {
                label: label.to_string(),
                points: times.iter().copied().zip(v).collect(),
            };
            let chart = LineChart {
                title: format!("{} — {}", s.label(), c.id),
                x_label: "time (s)".into(),
                y_label: "value".into(),
                series: vec![
                    line("arousal (gold)", column(&seqs[*i].y, 0)),
                    line("arousal (predicted)", column(p, 0)),
                    line("valence (gold)", column(&seqs[*i].y, 1)),
                    line("valence (predicted)", column(p, 1)),
                ],
            };
            let stem = format!("traces/{name}_{}", c.id);
            write_line_chart(
                &chart,
                &run.path(&format!("{stem}.png")),
                &run.path(&format!("{stem}.svg")),
            )?;
            run.figure(
                format!("{stem}.svg"),
                format!("Predicted vs gold over time: {}, {}", s.label(), c.id),
                "Gold (annotated) and predicted arousal and valence of one test sequence, window by window.\nThe closer each predicted line follows its gold line, the better; arousal is usually tracked better than valence.",
            );
        }
    }

    // Learning curves.
    let mut ct = Table::new([
        "setting",
        "fold",
        "restart",
        "epoch",
        "train_loss",
        "dev_loss",
        "best_epoch",
    ]);
    let mut by_setting: BTreeMap<&str, Vec<&Curve>> = BTreeMap::new();
    for (label, fold, c) in curves {
        for (e, (tr, dv)) in c.train.iter().zip(&c.dev).enumerate() {
            ct.push(vec![
                Cell::from(label.as_str()),
                Cell::from(*fold),
                Cell::from(c.restart),
                Cell::from(e + 1),
                Cell::from(*tr),
                Cell::from(*dv),
                Cell::from(c.best_epoch),
            ])?;
        }
        by_setting.entry(label.as_str()).or_default().push(c);
    }
    ct.write_csv(&run.path("curves.csv"))?;
    run.table(
        "curves.csv",
        "Learning curves of every restart",
        "Training loss (on noisy inputs) and development loss after each epoch, per setting, fold and restart.\nThe kept weights are those of `best_epoch`, where the development loss was lowest.",
    );
    for (label, cs) in &by_setting {
        let mean_by_epoch = |f: &dyn Fn(&Curve) -> &Vec<f64>| -> Vec<(f64, f64)> {
            let longest = cs.iter().map(|c| f(c).len()).max().unwrap_or(0);
            (0..longest)
                .map(|e| {
                    let v: Vec<f64> = cs.iter().filter_map(|c| f(c).get(e).copied()).collect();
                    ((e + 1) as f64, v.iter().sum::<f64>() / v.len() as f64)
                })
                .collect()
        };
        let chart = LineChart {
            title: format!("Learning curve, {label}"),
            x_label: "epoch".into(),
            y_label: format!("loss ({:?})", config.lstm.loss).to_lowercase(),
            series: vec![
                Series {
                    label: "training (noisy inputs)".into(),
                    points: mean_by_epoch(&|c| &c.train),
                },
                Series {
                    label: "development".into(),
                    points: mean_by_epoch(&|c| &c.dev),
                },
            ],
        };
        let stem = format!("curves/{}", label.replace(' ', "_").replace('→', "_to_"));
        write_line_chart(
            &chart,
            &run.path(&format!("{stem}.png")),
            &run.path(&format!("{stem}.svg")),
        )?;
        run.figure(
            format!("{stem}.svg"),
            format!("Learning curve: {label}"),
            "Mean training and development loss by epoch over the restarts (and folds) still running.\nA development curve that turns up while training keeps falling marks over-fitting; early stopping keeps the minimum.",
        );
    }

    // Lag sweep.
    if !sweep.is_empty() {
        let mut t = Table::new(["lag_s", "domain", "arousal_ccc", "valence_ccc"]);
        for p in sweep {
            t.push(vec![
                Cell::from(p.lag_s),
                Cell::from(p.domain.as_str()),
                Cell::from(p.arousal_ccc),
                Cell::from(p.valence_ccc),
            ])?;
        }
        t.write_csv(&run.path("lag_sweep.csv"))?;
        run.table(
            "lag_sweep.csv",
            "Intra-domain CCC by annotation lag",
            "Pooled CCC of the intra-domain ensembles when labels are taken this many seconds after the audio.\nThe lag with the highest CCC estimates the raters' reaction delay.",
        );
        let mut series = Vec::new();
        for d in ["music", "speech"] {
            for (name, f) in [
                (
                    "arousal",
                    (|p: &LagPoint| p.arousal_ccc) as fn(&LagPoint) -> f64,
                ),
                ("valence", |p: &LagPoint| p.valence_ccc),
            ] {
                series.push(Series {
                    label: format!("{d} {name}"),
                    points: sweep
                        .iter()
                        .filter(|p| p.domain == d)
                        .map(|p| (p.lag_s, f(p)))
                        .collect(),
                });
            }
        }
        write_line_chart(
            &LineChart {
                title: "Intra-domain CCC by annotation lag".into(),
                x_label: "lag (s)".into(),
                y_label: "CCC".into(),
                series,
            },
            &run.path("lag_sweep.png"),
            &run.path("lag_sweep.svg"),
        )?;
        run.figure(
            "lag_sweep.svg",
            "CCC by annotation lag",
            "Intra-domain CCC for arousal and valence as the labels are shifted later by the lag.\nA peak away from 0 s means the annotations trail the audio by about that much.",
        );
    }

    // Models of the cross-domain settings (best restart), loadable in PyTorch.
    if !models.is_empty() {
        std::fs::create_dir_all(run.path("models")).map_err(io_err(run.path("models")))?;
        for (name, m) in models {
            let rel = format!("models/{name}.safetensors");
            let bytes = m.to_safetensors()?;
            emobridge_report::write_atomic(&run.path(&rel), &bytes)?;
            run.artifact(
                crate::ArtifactKind::Data,
                rel,
                format!("LSTM weights, {name} (best restart)"),
                "safetensors with PyTorch's nn.LSTM names (weight_ih_l0, …, _reverse) and a linear head (head.weight, head.bias).\nThe shape is in the file's metadata.",
            );
        }
    }
    Ok(())
}

fn io_err(path: PathBuf) -> impl Fn(std::io::Error) -> ContinuousError {
    move |source| {
        ContinuousError::Run(RunFolderError::Io {
            path: path.clone(),
            source,
        })
    }
}

fn headlines(run: &mut RunFolder, settings: &[SettingResult], config: &ContinuousConfig) {
    let find = |setting: &str, from: &str, to: &str| {
        settings
            .iter()
            .find(|s| s.setting == setting && s.train_domain == from && s.test_domain == to)
    };
    for s in settings {
        let key = format!("{}_{}_to_{}", s.setting, s.train_domain, s.test_domain);
        run.headline(
            &format!("{key}_ccc"),
            serde_json::json!({
                "arousal": s.arousal.pooled.ccc,
                "valence": s.valence.pooled.ccc,
                "arousal_r": s.arousal.pooled.pearson,
                "valence_r": s.valence.pooled.pearson,
            }),
            format!(
                "{}: arousal CCC {:.2} (r {:.2}), valence CCC {:.2} (r {:.2}) over {} test sequences.",
                s.label(),
                s.arousal.pooled.ccc,
                s.arousal.pooled.pearson,
                s.valence.pooled.ccc,
                s.valence.pooled.pearson,
                s.n_sequences
            ),
        );
    }
    if let (Some(mi), Some(si)) = (
        find("intra", "music", "music"),
        find("intra", "speech", "speech"),
    ) {
        let above = mi.arousal.pooled.ccc > mi.valence.pooled.ccc
            && si.arousal.pooled.ccc > si.valence.pooled.ccc;
        run.headline(
            "arousal_above_valence",
            above,
            format!(
                "Within each domain arousal is {} tracked than valence (CCC music {:.2} vs {:.2}, speech {:.2} vs {:.2}).",
                if above { "better" } else { "not consistently better" },
                mi.arousal.pooled.ccc,
                mi.valence.pooled.ccc,
                si.arousal.pooled.ccc,
                si.valence.pooled.ccc
            ),
        );
        if let (Some(sm), Some(ms)) = (
            find("cross", "speech", "music"),
            find("cross", "music", "speech"),
        ) {
            let music_valence_cross_wins = sm.valence.pooled.ccc > mi.valence.pooled.ccc;
            let speech_intra_best = si.arousal.pooled.ccc >= ms.arousal.pooled.ccc
                && si.valence.pooled.ccc >= ms.valence.pooled.ccc;
            run.headline(
                "paper_findings",
                serde_json::json!({
                    "cross_domain_arousal_positive": sm.arousal.pooled.ccc > 0.0 && ms.arousal.pooled.ccc > 0.0,
                    "music_valence_cross_beats_intra": music_valence_cross_wins,
                    "speech_intra_best": speech_intra_best,
                }),
                format!(
                    "Paper's findings on this corpus: cross-domain arousal CCC {:.2} (speech→music) and {:.2} (music→speech); music valence cross {:.2} vs intra {:.2}; speech intra {} cross-domain.",
                    sm.arousal.pooled.ccc,
                    ms.arousal.pooled.ccc,
                    sm.valence.pooled.ccc,
                    mi.valence.pooled.ccc,
                    if speech_intra_best { "beats" } else { "does not beat" }
                ),
            );
        }
    }
    let _ = config;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_windows_averages_the_frames_inside() {
        // 10 frames at 4 Hz of a ramp; 1 s windows every 0.5 s.
        let frames: Vec<f32> = (0..10).map(|v| v as f32).collect();
        let p = pool_windows(&frames, 10, 1, 4.0, &WindowConfig::default());
        assert_eq!(p.frame_times, vec![0.0, 0.5, 1.0, 1.5, 2.0]);
        assert_eq!(p.values[0], vec![1.5]); // frames 0..4
        assert_eq!(p.values[1], vec![3.5]); // frames 2..6
        assert_eq!(p.values[4], vec![8.5]); // frames 8..10, partial
    }

    #[test]
    fn config_round_trips_through_toml_and_rejects_nonsense() {
        let cfg = ContinuousConfig::default();
        let text = toml::to_string(&cfg).unwrap();
        let back: ContinuousConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, cfg);
        let partial: ContinuousConfig =
            toml::from_str("lag_s = 2.0\nstandardize = \"per-sequence\"\n[lstm]\nhidden = [8]\n")
                .unwrap();
        assert_eq!(partial.lstm.hidden, vec![8]);
        assert_eq!(partial.lstm.restarts, 10);
        assert!(toml::from_str::<ContinuousConfig>("lags = 1").is_err());
        let bad = ContinuousConfig {
            dev_share: 1.5,
            ..ContinuousConfig::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("dev_share"));
    }
}
