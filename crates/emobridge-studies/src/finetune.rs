//! Two-stage cross-domain fine-tuning of an SSL encoder (the first paper's adaptation
//! experiment): stage 1 trains on the source domain (music for speech emotion recognition,
//! speech for music emotion recognition), stage 2 continues on the target domain; compared with
//! training on the target domain only.
//!
//! Protocol: the emotion labels both domains share; on the target domain, speaker-independent
//! group folds over the manifest's `speaker` column (as the probe), a dev share of the training
//! speakers for early stopping, predictions of all folds pooled and scored with WA, UA and
//! macro-F1. With `target = "arousal"` or `"valence"` the head regresses the manifest's
//! clip-level value instead (MSE or 1 − CCC, [`FinetuneConfig::regression_loss`]) on every clip
//! that has one, whatever its emotion; rows without the value are skipped and counted in
//! `run.json` (`skipped_without_target`), and the pooled predictions are scored with Pearson r,
//! CCC and RMSE. Stage 1 uses every source clip (with its own speaker-held-out dev share). What
//! stage 2 inherits is configurable: the encoder-side trainable parameters alone, or with the
//! head.
//!
//! Outputs: `comparison.{csv,md,json}` (method × direction × single/two-stage), learning curves
//! `curves_<direction>.svg` (+ PNG), `curves.json`, stage-1 checkpoints (trainable parameters
//! only) under `checkpoints/<direction>/<method>/`, `run.json` with the trainable-parameter counts
//! and each training run's cost (`cost`: wall and CPU seconds, encoder passes and seconds of
//! audio, [`RunCost`]).
//!
//! Cost: every fine-tuner of a study shares one [`ClipCache`], so a frozen encoder passes each
//! clip once in the whole study (its head then trains on the pooled states), and LoRA and
//! adapters compute each clip's frozen front (everything below the first transformer layer)
//! once, or take it from the frozen method's pass.
//!
//! Resume: every training run keeps its state under `resume/<direction>/<method>/<run>/` (saved
//! at each epoch's end and every `train.checkpoint_every` steps, see
//! [`FineTuner::train_resumable`]) and, once finished, its curve and predictions there
//! (`done.json`). Running the study again on the same `out` after a kill skips the finished
//! runs, continues the interrupted one from its last state and ends with the same weights and
//! metrics as an uninterrupted run; `resume/study.json` refuses a rerun with other settings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use emobridge_audio::{load as load_audio, DecodeOptions};
use emobridge_corpus::folds::{dev_split, FoldError, Folds};
use emobridge_corpus::taxonomy::{label_set, shared_labels};
use emobridge_corpus::{Domain, Emotion, Manifest, Record};
use emobridge_learn::metrics;
use emobridge_report::{write_line_chart, LineChart, ReportError, Series, Table};
use emobridge_ssl::train::{
    process_cpu_seconds, ClipCache, EpochLog, Example, FineTuner, PassCounts, RegressionLoss, Task,
    TrainConfig, TrainError,
};
use emobridge_ssl::weights::{read_tensors, weight_files};
use emobridge_ssl::{
    device_name, normalize_utterance, DeviceChoice, EncoderConfig, Method, PeftConfig,
    PreprocessConfig, SslError, TrainableEncoder, WeightSource,
};
use serde::{Deserialize, Serialize};

use crate::{RunFolder, RunFolderError};

/// Which domain teaches which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Source music, target speech (SER helped by MER).
    MusicToSpeech,
    /// Source speech, target music.
    SpeechToMusic,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::MusicToSpeech, Direction::SpeechToMusic];

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::MusicToSpeech => "music-to-speech",
            Direction::SpeechToMusic => "speech-to-music",
        }
    }

    pub fn parse(s: &str) -> Option<Direction> {
        Direction::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// (source, target)
    pub fn domains(self) -> (Domain, Domain) {
        match self {
            Direction::MusicToSpeech => (Domain::Music, Domain::Speech),
            Direction::SpeechToMusic => (Domain::Speech, Domain::Music),
        }
    }
}

/// What the head learns: the emotion class or one of the manifest's clip-level dimensions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// Emotion classes shared by both domains (cross-entropy; UA, WA, macro-F1).
    #[default]
    Emotion,
    /// The `arousal` column (regression; Pearson r, CCC, RMSE).
    Arousal,
    /// The `valence` column (regression; Pearson r, CCC, RMSE).
    Valence,
}

impl Target {
    pub const ALL: [Target; 3] = [Target::Emotion, Target::Arousal, Target::Valence];

    pub fn as_str(self) -> &'static str {
        match self {
            Target::Emotion => "emotion",
            Target::Arousal => "arousal",
            Target::Valence => "valence",
        }
    }

    pub fn parse(s: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether the head regresses a continuous value.
    pub fn is_regression(self) -> bool {
        self != Target::Emotion
    }

    /// The record's value of a continuous target (`None` for emotion or an empty cell).
    fn value(self, r: &Record) -> Option<f32> {
        match self {
            Target::Emotion => None,
            Target::Arousal => r.arousal,
            Target::Valence => r.valence,
        }
        .filter(|v| v.is_finite())
    }
}

/// What stage 2 starts from besides the pretrained encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Carry {
    /// The stage-1 encoder-side parameters (adapters, LoRA, biases, weights); a fresh head.
    Adapters,
    /// The stage-1 encoder-side parameters and head.
    AdaptersAndHead,
}

/// Settings of the study; `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FinetuneConfig {
    /// What the head learns (default `emotion`; `arousal` / `valence` regress that column).
    pub target: Target,
    /// Loss of the `arousal` / `valence` targets (default `mse`; `ccc` = 1 − CCC).
    pub regression_loss: RegressionLoss,
    /// Methods to compare (each one row pair per direction).
    pub methods: Vec<Method>,
    pub directions: Vec<Direction>,
    /// Method settings (LoRA rank, adapter kind, …); `method` inside is ignored.
    pub peft: PeftConfig,
    pub train: TrainConfig,
    /// Speaker-independent folds on the target domain (default 4).
    pub folds: usize,
    /// Share of the training clips (whole speakers) held out for early stopping (default 0.2).
    pub dev_share: f64,
    pub carry: Carry,
    /// Clips are cut to their first `max_seconds` (default 4 s, the cost benchmark's length).
    pub max_seconds: f32,
    pub seed: u64,
    /// Stop at the first clip that does not decode (`--strict`) instead of leaving it out.
    /// Default false.
    pub strict: bool,
    /// Where the encoder and head train: `cpu` (the default), `cuda`, `cuda:N` (a build with the
    /// `cuda` feature, see docs/cuda.md) or `auto`. A GPU takes candle's plain ops (the route
    /// `train.ops = "plain"` selects on the CPU); its results agree with the CPU's to rounding,
    /// not bit for bit, so a resume folder belongs to one device. Left out of the written
    /// settings when `cpu`.
    #[serde(skip_serializing_if = "DeviceChoice::is_cpu_ref")]
    pub device: DeviceChoice,
    /// Why the settings are what they are, in a sentence (e.g. the demo's compute rule for its
    /// fine-tuning section): written as the run's first headline (`settings`), so that the
    /// report and `summary.md` state it. Default none (and then not written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings_note: Option<String>,
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        FinetuneConfig {
            target: Target::Emotion,
            regression_loss: RegressionLoss::Mse,
            methods: Method::ALL.to_vec(),
            directions: Direction::ALL.to_vec(),
            peft: PeftConfig::default(),
            train: TrainConfig::default(),
            folds: 4,
            dev_share: 0.2,
            carry: Carry::AdaptersAndHead,
            max_seconds: 4.0,
            seed: 7,
            strict: false,
            device: DeviceChoice::Cpu,
            settings_note: None,
        }
    }
}

impl FinetuneConfig {
    /// Reads a config written in TOML (missing keys keep their defaults; unknown keys are an
    /// error naming them).
    pub fn from_toml_file(path: &Path) -> Result<Self, FinetuneError> {
        crate::protocol::read_toml_config(path).map_err(|e| FinetuneError::Config(e.to_string()))
    }
}

/// Why the study could not run.
#[derive(Debug, thiserror::Error)]
pub enum FinetuneError {
    #[error(transparent)]
    Ssl(#[from] SslError),
    #[error("{method} {direction} ({stage}): {source}")]
    Train {
        method: &'static str,
        direction: &'static str,
        stage: String,
        source: Box<TrainError>,
    },
    #[error(transparent)]
    Folds(#[from] FoldError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Run(#[from] RunFolderError),
    #[error(transparent)]
    Learn(#[from] emobridge_learn::LearnError),
    #[error("{path}: {reason}")]
    Audio { path: PathBuf, reason: String },
    #[error("config: {0}")]
    Config(String),
    #[error("corpus: {0}")]
    Corpus(String),
}

/// One line of the comparison table. The scores of the other kind of target are NaN (`null`
/// in JSON): a row has either UA/WA/macro-F1 (emotion) or Pearson r/CCC/RMSE (arousal, valence).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComparisonRow {
    pub method: Method,
    pub direction: Direction,
    /// `target-only` or `two-stage`.
    pub setting: String,
    pub target: Target,
    pub n_test: usize,
    pub weighted_accuracy: f64,
    pub unweighted_accuracy: f64,
    pub macro_f1: f64,
    pub pearson: f64,
    pub ccc: f64,
    pub rmse: f64,
    pub trainable_encoder: usize,
    pub trainable_head: usize,
}

/// What one training run (stage 1, or one fold of a target-only / two-stage setting) cost:
/// its wall and process CPU seconds (training, dev and test passes) and its encoder work
/// ([`PassCounts`]; the seconds of audio are its sample counts at the model's rate). Logged
/// per run and kept in `run.json` (`cost`), so that a study's time can be read off its record.
#[derive(Debug, Clone, Serialize)]
pub struct RunCost {
    /// `direction/method/stage1` or `direction/method/setting/foldN`.
    pub run: String,
    pub wall_seconds: f64,
    pub cpu_seconds: f64,
    /// Seconds of audio through the layers below the first transformer layer (computed).
    pub front_audio_seconds: f64,
    /// … through the transformer layers with a backward pass (training batches).
    pub train_audio_seconds: f64,
    /// … through the transformer layers, forward only (dev and test).
    pub eval_audio_seconds: f64,
    /// … through a frozen encoder (each clip once; later passes come from the cache).
    pub frozen_audio_seconds: f64,
    pub passes: PassCounts,
}

impl RunCost {
    fn new(run: String, started: (std::time::Instant, f64), passes: PassCounts, rate: f64) -> Self {
        let secs = |samples: usize| samples as f64 / rate;
        RunCost {
            run,
            wall_seconds: started.0.elapsed().as_secs_f64(),
            cpu_seconds: process_cpu_seconds() - started.1,
            front_audio_seconds: secs(passes.front_samples),
            train_audio_seconds: secs(passes.train_samples),
            eval_audio_seconds: secs(passes.eval_samples),
            frozen_audio_seconds: secs(passes.frozen_samples),
            passes,
        }
    }

    /// One log line: times, then the encoder work.
    pub fn summary_line(&self) -> String {
        let p = &self.passes;
        format!(
            "finetune cost {}: {:.1} s wall, {:.1} s CPU (forward {:.1}, backward {:.1}, update {:.1}, dev/test {:.1}); \
             front {} clips / {:.0} s audio (+{} reused), trained {} clips / {:.0} s, evaluated {} clips / {:.0} s, \
             frozen {} clips / {:.0} s (+{} reused)",
            self.run,
            self.wall_seconds,
            self.cpu_seconds,
            p.cpu_forward,
            p.cpu_backward,
            p.cpu_update,
            p.cpu_eval,
            p.front_clips,
            self.front_audio_seconds,
            p.front_reused,
            p.train_clips,
            self.train_audio_seconds,
            p.eval_clips,
            self.eval_audio_seconds,
            p.frozen_clips,
            self.frozen_audio_seconds,
            p.frozen_reused
        )
    }
}

/// What [`run`] produced.
#[derive(Debug)]
pub struct FinetuneOutcome {
    /// The cost of each training run this process ran (resumed, finished runs have none).
    pub cost: Vec<RunCost>,
    pub rows: Vec<ComparisonRow>,
    /// The shared emotion labels (empty for an arousal / valence target).
    pub labels: Vec<Emotion>,
    /// Clips of each domain left out because they lack the arousal / valence value.
    pub skipped_without_target: BTreeMap<Domain, usize>,
    pub run_dir: PathBuf,
    /// Training runs finished or started by an earlier process on the same run folder.
    pub resumed: Vec<String>,
}

struct Clip {
    example: Example,
    speaker: String,
}

/// Decodes the clips of `records`; one that does not decode (or is shorter than an encoder
/// frame) is left out, logged and listed under the run's failures (under strict the run stops
/// there).
fn load_clips(
    run: &mut RunFolder,
    manifest: &Manifest,
    records: &[&Record],
    target: Target,
    labels: &[Emotion],
    pre: &PreprocessConfig,
    max_seconds: f32,
) -> Result<Vec<Clip>, FinetuneError> {
    let max = (max_seconds * pre.sampling_rate as f32).round() as usize;
    let mut clips = Vec::with_capacity(records.len());
    for r in records {
        match load_clip(manifest, r, target, labels, pre, max) {
            Ok(c) => clips.push(c),
            Err(FinetuneError::Audio { path, reason }) => {
                tracing::error!("{}: {reason}", path.display());
                run.fail(r.id.clone(), path.display().to_string(), reason)?;
            }
            Err(other) => return Err(other),
        }
    }
    Ok(clips)
}

fn load_clip(
    manifest: &Manifest,
    r: &Record,
    target: Target,
    labels: &[Emotion],
    pre: &PreprocessConfig,
    max: usize,
) -> Result<Clip, FinetuneError> {
    let path = manifest.audio_path(r);
    let audio = load_audio(&path, &DecodeOptions::mono_at(pre.sampling_rate)).map_err(|e| {
        FinetuneError::Audio {
            path: path.clone(),
            reason: e.to_string(),
        }
    })?;
    let mut samples = audio.channels.into_iter().next().unwrap_or_default();
    samples.truncate(max);
    if samples.len() < 400 {
        return Err(FinetuneError::Audio {
            path,
            reason: format!(
                "{} samples is shorter than one encoder frame",
                samples.len()
            ),
        });
    }
    if pre.do_normalize {
        normalize_utterance(&mut samples);
    }
    let (label, values) = match target {
        Target::Emotion => {
            let emotion = r.emotion.expect("records were filtered to labelled ones");
            let label = labels.iter().position(|l| *l == emotion).expect("shared");
            (label, Vec::new())
        }
        _ => (
            0,
            vec![target
                .value(r)
                .expect("records were filtered to valued ones")],
        ),
    };
    Ok(Clip {
        example: Example {
            samples,
            label,
            values,
        },
        speaker: r.speaker.clone(),
    })
}

/// The model's parts loaded once.
struct Model {
    cfg: EncoderConfig,
    source: WeightSource,
    name: String,
    device: candle_core::Device,
    /// Per-clip outputs of the frozen parts, shared by every fine-tuner of the study (all are
    /// built from these pretrained weights): each clip goes through a frozen encoder, or below
    /// the first trained layer, once in the whole study.
    cache: ClipCache,
}

impl Model {
    fn tuner(
        &self,
        method: Method,
        config: &FinetuneConfig,
        task: Task,
    ) -> Result<FineTuner, FinetuneError> {
        let mut peft = config.peft.clone();
        peft.method = method;
        let encoder =
            TrainableEncoder::new(&self.cfg, &self.source, &peft, &self.device, config.seed)?;
        let mut train = config.train.clone();
        train.seed = config.seed;
        let mut tuner = FineTuner::new(encoder, task, train)?;
        tuner.share_cache(&self.cache);
        Ok(tuner)
    }
}

/// Inverse-frequency class weights (sklearn's "balanced"), 0 for an absent class.
fn balanced_weights(labels: &[usize], classes: usize) -> Vec<f32> {
    let mut counts = vec![0usize; classes];
    for &l in labels {
        counts[l] += 1;
    }
    let present = counts.iter().filter(|&&c| c > 0).count().max(1);
    counts
        .iter()
        .map(|&c| {
            if c == 0 {
                0.0
            } else {
                labels.len() as f32 / (present as f32 * c as f32)
            }
        })
        .collect()
}

/// The head's task for `target`, trained on `train` of `clips`: class-balanced cross-entropy over
/// `classes`, or one regressed value.
fn task_for(config: &FinetuneConfig, clips: &[Clip], train: &[usize], classes: usize) -> Task {
    if config.target.is_regression() {
        return Task::Regression {
            outputs: 1,
            loss: config.regression_loss,
        };
    }
    let labels: Vec<usize> = train.iter().map(|&i| clips[i].example.label).collect();
    Task::Classification {
        classes,
        class_weights: Some(balanced_weights(&labels, classes)),
    }
}

/// Pearson r, CCC and RMSE of the pooled predictions of a continuous target.
fn regression_scores(truth: &[f64], pred: &[f64]) -> Result<(f64, f64, f64), FinetuneError> {
    let s = metrics::regression(truth, pred)?;
    Ok((s.pearson, s.ccc, s.rmse))
}

fn pick(clips: &[Clip], idx: &[usize]) -> Vec<Example> {
    idx.iter().map(|&i| clips[i].example.clone()).collect()
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |b, (i, &x)| if x > b.1 { (i, x) } else { b },
        )
        .0
}

/// Trains `tuner` on `idx` of `clips` with a speaker-held-out dev share, saving its resume
/// state in `state` (see [`FineTuner::train_resumable`]).
fn fit(
    tuner: &mut FineTuner,
    clips: &[Clip],
    idx: &[usize],
    config: &FinetuneConfig,
    seed: u64,
    state: &Path,
) -> Result<Vec<EpochLog>, TrainError> {
    let speakers: Vec<&str> = clips.iter().map(|c| c.speaker.as_str()).collect();
    let (train, dev) = dev_split(idx, &speakers, config.dev_share, seed);
    let report = tuner.train_resumable(
        &pick(clips, &train),
        &pick(clips, &dev),
        &|_, _| {},
        Some(state),
    )?;
    Ok(report.curve)
}

/// What a finished training run left for a rerun on the same run folder (`done.json` in its
/// resume folder): its curve, its test predictions and its trainable-parameter counts.
#[derive(Debug, Serialize, Deserialize)]
struct Finished {
    curve: Vec<EpochLog>,
    /// (clip index, predicted class) of an emotion target.
    predictions: Vec<(usize, usize)>,
    /// (clip index, predicted value) of an arousal / valence target, as the head's f32 (JSON
    /// writes and reads an f32 back exactly, so a resumed study scores the same values).
    #[serde(default)]
    values: Vec<(usize, f32)>,
    trainable_encoder: usize,
    trainable_head: usize,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> FinetuneError {
    FinetuneError::Corpus(format!("{}: {e}", path.display()))
}

fn finished(state: &Path) -> Result<Option<Finished>, FinetuneError> {
    let path = state.join("done.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| io_err(&path, e))
}

/// Records a finished run (written beside, then renamed) and drops its resume tensors.
fn mark_finished(state: &Path, done: &Finished) -> Result<(), FinetuneError> {
    std::fs::create_dir_all(state).map_err(|e| io_err(state, e))?;
    let path = state.join("done.json");
    let tmp = state.join(".done.json.partial");
    let bytes = serde_json::to_vec(done).map_err(|e| io_err(&path, e))?;
    std::fs::write(&tmp, bytes).map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
    for entry in std::fs::read_dir(state).map_err(|e| io_err(state, e))? {
        let entry = entry.map_err(|e| io_err(state, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "state.json" || name.ends_with(".safetensors") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// Takes `resume/lock` for this process. Rule: a lock naming a live process (Linux: its
/// `/proc/<pid>` exists) other than this one refuses the run; a lock left by a killed process is
/// taken over. The lock is removed when the study finishes.
fn lock_resume_folder(run: &RunFolder) -> Result<PathBuf, FinetuneError> {
    let dir = run.path("resume");
    std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
    let path = dir.join("lock");
    let me = std::process::id();
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(pid) = text.trim().parse::<u32>() {
            if pid != me && Path::new("/proc").join(pid.to_string()).exists() {
                return Err(FinetuneError::Config(format!(
                    "{} is being written by another process (pid {pid}); wait for it or use another --out",
                    run.dir().display()
                )));
            }
        }
    }
    std::fs::write(&path, me.to_string()).map_err(|e| io_err(&path, e))?;
    Ok(path)
}

/// The settings a run folder's resume states belong to (`resume/study.json`): written by the
/// first run, compared by every rerun, so that states of other settings are never mixed in.
fn claim_resume_folder(
    run: &RunFolder,
    config: &FinetuneConfig,
    model: &str,
) -> Result<(), FinetuneError> {
    let mut c = config.clone();
    c.train.checkpoint_every = 0;
    let mut want = serde_json::json!({ "config": c, "model": model });
    // Stopping rules do not change what is trained: a strict and a lenient run resume each other.
    if let Some(c) = want["config"].as_object_mut() {
        c.remove("strict");
    }
    let path = run.path("resume/study.json");
    if path.is_file() {
        let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
        let have: serde_json::Value = serde_json::from_str(&text).map_err(|e| io_err(&path, e))?;
        if have != want {
            return Err(FinetuneError::Config(format!(
                "{} holds the resume state of a run with other settings or another model; use a new --out or delete its resume folder",
                run.dir().display()
            )));
        }
        return Ok(());
    }
    let dir = run.path("resume");
    std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
    let bytes = serde_json::to_vec_pretty(&want).map_err(|e| io_err(&path, e))?;
    std::fs::write(&path, bytes).map_err(|e| io_err(&path, e))
}

type DomainClips = (
    Vec<Emotion>,
    BTreeMap<Domain, Vec<Clip>>,
    BTreeMap<Domain, usize>,
);

/// Rule: every domain needs at least `folds` (and 2) clips of each class / with a value, so that
/// each fold's training data can contain it.
fn min_clips(config: &FinetuneConfig) -> usize {
    config.folds.max(2)
}

/// Emotion target: the labels both domains share and their clips (every clip outside them is
/// left out).
fn labelled_clips(
    run: &mut RunFolder,
    manifest: &Manifest,
    config: &FinetuneConfig,
    pre: &PreprocessConfig,
) -> Result<DomainClips, FinetuneError> {
    let of = |d: Domain| -> Vec<&Record> {
        manifest
            .of_domain(d)
            .filter(|r| r.emotion.is_some())
            .collect()
    };
    let (speech, music) = (of(Domain::Speech), of(Domain::Music));
    let labels = shared_labels(
        &label_set(speech.iter().map(|r| r.emotion)),
        &label_set(music.iter().map(|r| r.emotion)),
    );
    if labels.len() < 2 {
        return Err(FinetuneError::Corpus(format!(
            "speech and music share {} emotion label(s) ({}); two or more are needed",
            labels.len(),
            labels
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    run.note(
        "labels",
        labels.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
    );
    fn keep<'a>(v: Vec<&'a Record>, labels: &[Emotion]) -> Vec<&'a Record> {
        v.into_iter()
            .filter(|r| r.emotion.is_some_and(|e| labels.contains(&e)))
            .collect()
    }
    let mut clips: BTreeMap<Domain, Vec<Clip>> = BTreeMap::new();
    for (domain, recs) in [
        (Domain::Speech, keep(speech, &labels)),
        (Domain::Music, keep(music, &labels)),
    ] {
        let c = load_clips(
            run,
            manifest,
            &recs,
            Target::Emotion,
            &labels,
            pre,
            config.max_seconds,
        )?;
        for (k, label) in labels.iter().enumerate() {
            let n = c.iter().filter(|x| x.example.label == k).count();
            if n < min_clips(config) {
                return Err(FinetuneError::Corpus(format!(
                    "{} has {n} clip(s) of `{label}`; the {}-fold protocol needs at least {} per label",
                    domain.as_str(),
                    config.folds,
                    min_clips(config)
                )));
            }
        }
        clips.insert(domain, c);
    }
    Ok((labels, clips, BTreeMap::new()))
}

/// Arousal / valence target: every clip with the value in the manifest; the others are skipped
/// and counted (`skipped_without_target` in `run.json`).
fn valued_clips(
    run: &mut RunFolder,
    manifest: &Manifest,
    config: &FinetuneConfig,
    pre: &PreprocessConfig,
) -> Result<DomainClips, FinetuneError> {
    let target = config.target;
    let mut clips = BTreeMap::new();
    let mut skipped = BTreeMap::new();
    for domain in [Domain::Speech, Domain::Music] {
        let all: Vec<&Record> = manifest.of_domain(domain).collect();
        let recs: Vec<&Record> = all
            .iter()
            .copied()
            .filter(|r| target.value(r).is_some())
            .collect();
        if recs.len() < min_clips(config) {
            return Err(FinetuneError::Corpus(format!(
                "{} has {} clip(s) with a `{}` value (of {}); --target {} needs at least {} in each domain for the {}-fold protocol",
                domain.as_str(),
                recs.len(),
                target.as_str(),
                all.len(),
                target.as_str(),
                min_clips(config),
                config.folds
            )));
        }
        skipped.insert(domain, all.len() - recs.len());
        let c = load_clips(run, manifest, &recs, target, &[], pre, config.max_seconds)?;
        clips.insert(domain, c);
    }
    run.note(
        "skipped_without_target",
        skipped
            .iter()
            .map(|(d, n)| (d.as_str(), *n))
            .collect::<BTreeMap<_, _>>(),
    );
    Ok((Vec::new(), clips, skipped))
}

/// Runs the study for `model_dir` (a HuggingFace model folder) on `manifest`, writing `out`.
/// `progress(done, total)` counts training runs.
pub fn run(
    config: &FinetuneConfig,
    manifest: &Manifest,
    model_dir: &Path,
    out: &Path,
    progress: &dyn Fn(usize, usize),
) -> Result<FinetuneOutcome, FinetuneError> {
    if config.methods.is_empty() || config.directions.is_empty() {
        return Err(FinetuneError::Config(
            "at least one method and one direction".into(),
        ));
    }
    if !(0.0..0.9).contains(&config.dev_share) {
        return Err(FinetuneError::Config(format!(
            "dev_share must be in [0, 0.9), got {}",
            config.dev_share
        )));
    }
    if !(config.max_seconds.is_finite() && config.max_seconds > 0.0) {
        return Err(FinetuneError::Config(format!(
            "max_seconds must be > 0, got {}",
            config.max_seconds
        )));
    }
    config.train.validate()?;
    config.peft.validate()?;
    let device = config.device.resolve()?;
    let mut run = RunFolder::create(out, "finetune")?;
    run.set_strict(config.strict);
    run.set_config(config, config.seed);
    if let Some(note) = &config.settings_note {
        run.headline(
            "settings",
            serde_json::json!({
                "methods": config.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
                "manifest_records": manifest.records.len(),
                "max_seconds": config.max_seconds,
                "epochs": config.train.epochs,
                "batch_size": config.train.batch_size,
                "folds": config.folds,
            }),
            note.clone(),
        );
    }
    run.hash_manifest(manifest);
    run.set_hash(
        "model_weights",
        emobridge_ssl::weights::weights_sha256(model_dir)?,
    );
    let cfg = EncoderConfig::from_file(&model_dir.join("config.json"))?;
    let pre_path = model_dir.join("preprocessor_config.json");
    let pre = if pre_path.is_file() {
        PreprocessConfig::from_file(&pre_path, cfg.family)?
    } else {
        PreprocessConfig::default_for(cfg.family)
    };
    let source = WeightSource::new(read_tensors(&weight_files(model_dir)?)?);
    let model = Model {
        cfg,
        source,
        name: model_dir.display().to_string(),
        device,
        cache: ClipCache::new(),
    };
    // A frozen method's passes leave each clip's first-layer input for LoRA and adapters.
    model.cache.keep_fronts_from_frozen(
        config
            .methods
            .iter()
            .any(|m| matches!(m, Method::Lora | Method::Adapter)),
    );
    let rate = pre.sampling_rate as f64;
    let mut cost: Vec<RunCost> = Vec::new();
    let mut record_cost = |c: RunCost| {
        tracing::info!("{}", c.summary_line());
        cost.push(c);
    };
    run.note("model", &model.name);
    let device = device_name(&model.device);
    tracing::info!("device: {device}");
    run.note("device", &device);
    let lock = lock_resume_folder(&run)?;
    claim_resume_folder(&run, config, &model.name)?;
    // Training runs taken over from an earlier, interrupted process on this run folder.
    let mut resumed: Vec<String> = Vec::new();

    let (labels, clips, skipped) = if config.target.is_regression() {
        valued_clips(&mut run, manifest, config, &pre)?
    } else {
        labelled_clips(&mut run, manifest, config, &pre)?
    };

    let classes = labels.len();
    let total = config.methods.len() * config.directions.len() * (1 + 2 * config.folds);
    let mut done = 0usize;
    let mut rows = Vec::new();
    let mut curves: BTreeMap<String, Vec<EpochLog>> = BTreeMap::new();
    let mut counts = BTreeMap::new();
    for &direction in &config.directions {
        let (src_domain, tgt_domain) = direction.domains();
        let (src, tgt) = (&clips[&src_domain], &clips[&tgt_domain]);
        let tgt_speakers: Vec<&str> = tgt.iter().map(|c| c.speaker.as_str()).collect();
        let folds = Folds::group_kfold(&tgt_speakers, config.folds, config.seed)?;
        for &method in &config.methods {
            let err = |stage: &str| {
                let stage = stage.to_string();
                move |source| FinetuneError::Train {
                    method: method.as_str(),
                    direction: direction.as_str(),
                    stage,
                    source: Box::new(source),
                }
            };
            // Stage 1 on every source clip.
            let all: Vec<usize> = (0..src.len()).collect();
            let mut stage1 = model.tuner(method, config, task_for(config, src, &all, classes))?;
            let ckpt = run.path(&format!(
                "checkpoints/{}/{}",
                direction.as_str(),
                method.as_str()
            ));
            let key = format!("{}/{}/stage1", direction.as_str(), method.as_str());
            let state = run.path(&format!("resume/{key}"));
            let curve = match finished(&state)? {
                Some(done) => {
                    stage1
                        .load_checkpoint(&ckpt)
                        .map_err(err("stage 1 checkpoint"))?;
                    resumed.push(key);
                    done.curve
                }
                None => {
                    if state.join("state.json").is_file() {
                        resumed.push(key.clone());
                    }
                    let started = (std::time::Instant::now(), process_cpu_seconds());
                    let curve = fit(&mut stage1, src, &all, config, config.seed, &state)
                        .map_err(err("stage 1"))?;
                    record_cost(RunCost::new(key, started, stage1.passes(), rate));
                    stage1
                        .save_checkpoint(&ckpt, &model.name)
                        .map_err(err("stage 1 checkpoint"))?;
                    mark_finished(
                        &state,
                        &Finished {
                            curve: curve.clone(),
                            predictions: Vec::new(),
                            values: Vec::new(),
                            trainable_encoder: stage1.encoder.trainable_parameters(),
                            trainable_head: stage1.trainable_head(),
                        },
                    )?;
                    curve
                }
            };
            curves.insert(
                format!("{} {} stage 1", direction.as_str(), method.as_str()),
                curve,
            );
            done += 1;
            progress(done, total);
            let enc_state = stage1.encoder.checkpoint_tensors();
            counts.insert(
                method.as_str(),
                serde_json::json!({
                    "encoder": stage1.encoder.trainable_parameters(),
                    "head": stage1.trainable_head(),
                    "encoder_linear_layers": stage1.encoder.base_parameters(),
                }),
            );

            for two_stage in [false, true] {
                let setting = if two_stage {
                    "two-stage"
                } else {
                    "target-only"
                };
                let mut pred = vec![usize::MAX; tgt.len()];
                let mut pred_values = vec![f64::NAN; tgt.len()];
                let (mut enc_n, mut head_n) = (0, 0);
                for fold in 0..folds.k {
                    let (train_idx, test_idx) = folds.split(fold);
                    let stage = format!("{setting} fold {}", fold + 1);
                    let key = format!(
                        "{}/{}/{setting}/fold{}",
                        direction.as_str(),
                        method.as_str(),
                        fold + 1
                    );
                    let state = run.path(&format!("resume/{key}"));
                    if let Some(fin) = finished(&state)? {
                        for (i, p) in fin.predictions {
                            pred[i] = p;
                        }
                        for (i, v) in fin.values {
                            pred_values[i] = v as f64;
                        }
                        curves.insert(
                            format!("{} {} {stage}", direction.as_str(), method.as_str()),
                            fin.curve,
                        );
                        (enc_n, head_n) = (fin.trainable_encoder, fin.trainable_head);
                        resumed.push(key);
                        done += 1;
                        progress(done, total);
                        continue;
                    }
                    if state.join("state.json").is_file() {
                        resumed.push(key.clone());
                    }
                    let started = (std::time::Instant::now(), process_cpu_seconds());
                    let mut tuner =
                        model.tuner(method, config, task_for(config, tgt, &train_idx, classes))?;
                    if two_stage {
                        let map = enc_state.iter().cloned().collect();
                        tuner.encoder.load_checkpoint_tensors(&map)?;
                        if config.carry == Carry::AdaptersAndHead {
                            tuner.load_checkpoint(&ckpt).map_err(err("stage 2 start"))?;
                        }
                    }
                    let curve = fit(
                        &mut tuner,
                        tgt,
                        &train_idx,
                        config,
                        config.seed + fold as u64,
                        &state,
                    )
                    .map_err(err(&stage))?;
                    let test = pick(tgt, &test_idx);
                    let out = tuner.predict(&test)?;
                    let (mut predictions, mut values) = (Vec::new(), Vec::new());
                    for (&i, o) in test_idx.iter().zip(&out) {
                        if config.target.is_regression() {
                            pred_values[i] = o[0] as f64;
                            values.push((i, o[0]));
                        } else {
                            pred[i] = argmax(o);
                            predictions.push((i, pred[i]));
                        }
                    }
                    enc_n = tuner.encoder.trainable_parameters();
                    head_n = tuner.trainable_head();
                    record_cost(RunCost::new(key, started, tuner.passes(), rate));
                    mark_finished(
                        &state,
                        &Finished {
                            curve: curve.clone(),
                            predictions,
                            values,
                            trainable_encoder: enc_n,
                            trainable_head: head_n,
                        },
                    )?;
                    curves.insert(
                        format!("{} {} {stage}", direction.as_str(), method.as_str()),
                        curve,
                    );
                    done += 1;
                    progress(done, total);
                }
                let mut row = ComparisonRow {
                    method,
                    direction,
                    setting: setting.into(),
                    target: config.target,
                    n_test: tgt.len(),
                    weighted_accuracy: f64::NAN,
                    unweighted_accuracy: f64::NAN,
                    macro_f1: f64::NAN,
                    pearson: f64::NAN,
                    ccc: f64::NAN,
                    rmse: f64::NAN,
                    trainable_encoder: enc_n,
                    trainable_head: head_n,
                };
                if config.target.is_regression() {
                    let truth: Vec<f64> = tgt.iter().map(|c| c.example.values[0] as f64).collect();
                    (row.pearson, row.ccc, row.rmse) = regression_scores(&truth, &pred_values)?;
                } else {
                    let truth: Vec<usize> = tgt.iter().map(|c| c.example.label).collect();
                    let s = metrics::classification(&truth, &pred, classes)?;
                    row.weighted_accuracy = s.weighted_accuracy;
                    row.unweighted_accuracy = s.unweighted_accuracy;
                    row.macro_f1 = s.macro_f1;
                }
                rows.push(row);
            }
        }
    }
    run.note("trainable_parameters", &counts);
    run.note("cost", &cost);
    if !resumed.is_empty() {
        run.note("resumed", &resumed);
    }
    write_outputs(&mut run, &rows, &curves, config)?;
    let run_dir = run.dir().to_path_buf();
    run.finish()?;
    let _ = std::fs::remove_file(lock);
    Ok(FinetuneOutcome {
        cost,
        rows,
        labels,
        skipped_without_target: skipped,
        run_dir,
        resumed,
    })
}

fn write_outputs(
    run: &mut RunFolder,
    rows: &[ComparisonRow],
    curves: &BTreeMap<String, Vec<EpochLog>>,
    config: &FinetuneConfig,
) -> Result<(), FinetuneError> {
    let regression = config.target.is_regression();
    let scores: [&str; 3] = if regression {
        ["r", "CCC", "RMSE"]
    } else {
        ["UA", "WA", "macro_F1"]
    };
    let mut columns = vec!["method", "direction", "setting", "target"];
    columns.extend(scores);
    columns.extend(["n_test", "trainable_encoder", "trainable_head"]);
    let mut table = Table::new(columns);
    for r in rows {
        let values = if regression {
            [r.pearson, r.ccc, r.rmse]
        } else {
            [r.unweighted_accuracy, r.weighted_accuracy, r.macro_f1]
        };
        let mut row = vec![
            r.method.as_str().into(),
            r.direction.as_str().into(),
            r.setting.clone().into(),
            r.target.as_str().into(),
        ];
        row.extend(values.map(Into::into));
        row.extend([
            r.n_test.into(),
            r.trainable_encoder.into(),
            r.trainable_head.into(),
        ]);
        table.push(row)?;
    }
    table.write_csv(&run.path("comparison.csv"))?;
    table.write_json(&run.path("comparison.json"))?;
    table.write_markdown(&run.path("comparison.md"), 3)?;
    if regression {
        run.table(
            "comparison.csv",
            format!("Fine-tuning methods, single- vs two-stage ({})", config.target.as_str()),
            format!("Target-domain {} regression scored with Pearson r, CCC and RMSE (predictions pooled over speaker-independent folds) per method and direction, trained on the target only or after a first stage on the other domain.\nA two-stage CCC above its target-only CCC means the other domain helped; compare trainable-parameter counts for the cost.", config.target.as_str()),
        );
    } else {
        run.table(
            "comparison.csv",
            "Fine-tuning methods, single- vs two-stage",
            "Target-domain UA, WA and macro-F1 (pooled over speaker-independent folds) per method and direction, trained on the target only or after a first stage on the other domain.\nA two-stage row above its target-only row means the other domain helped; compare trainable-parameter counts for the cost.",
        );
    }
    let loss_name = match (regression, config.regression_loss) {
        (false, _) => "cross-entropy",
        (true, RegressionLoss::Mse) => "MSE",
        (true, RegressionLoss::Ccc) => "1 − CCC",
    };
    std::fs::write(
        run.path("curves.json"),
        serde_json::to_vec_pretty(curves).map_err(|e| FinetuneError::Config(e.to_string()))?,
    )
    .map_err(|e| FinetuneError::Corpus(e.to_string()))?;
    run.output("curves.json");
    for &direction in &config.directions {
        let series: Vec<Series> = curves
            .iter()
            .filter(|(k, _)| {
                k.starts_with(direction.as_str())
                    && (k.ends_with("stage 1") || k.ends_with("fold 1"))
            })
            .map(|(k, c)| Series {
                label: k.trim_start_matches(direction.as_str()).trim().to_string(),
                points: c.iter().map(|e| (e.epoch as f64, e.dev_loss)).collect(),
            })
            .collect();
        let name = format!("curves_{}", direction.as_str());
        write_line_chart(
            &LineChart {
                title: format!("Dev loss per epoch, {}", direction.as_str()),
                x_label: "epoch".into(),
                y_label: format!("dev {loss_name}"),
                series,
            },
            &run.path(&format!("{name}.png")),
            &run.path(&format!("{name}.svg")),
        )?;
        run.figure(
            format!("{name}.svg"),
            format!("Learning curves, {}", direction.as_str()),
            format!("{} on the held-out dev speakers after each epoch: stage 1 on the source domain, and fold 1 of target-only and two-stage training.\nLower is better; the kept parameters are those of each curve's minimum.", capitalise(loss_name)),
        );
    }
    for r in rows.iter().filter(|r| r.setting == "two-stage") {
        if let Some(single) = rows.iter().find(|s| {
            s.method == r.method && s.direction == r.direction && s.setting == "target-only"
        }) {
            if regression {
                run.headline(
                    &format!(
                        "gain_ccc_{}_{}_{}",
                        config.target.as_str(),
                        r.direction.as_str(),
                        r.method.as_str()
                    ),
                    r.ccc - single.ccc,
                    format!(
                        "{} {} {}: two-stage CCC {:.3} (r {:.3}, RMSE {:.3}) vs target-only CCC {:.3} (r {:.3}, RMSE {:.3}).",
                        config.target.as_str(),
                        r.method.as_str(),
                        r.direction.as_str(),
                        r.ccc,
                        r.pearson,
                        r.rmse,
                        single.ccc,
                        single.pearson,
                        single.rmse
                    ),
                );
            } else {
                run.headline(
                    &format!("gain_ua_{}_{}", r.direction.as_str(), r.method.as_str()),
                    r.unweighted_accuracy - single.unweighted_accuracy,
                    format!(
                        "{} {}: two-stage UA {:.3} vs target-only {:.3}.",
                        r.method.as_str(),
                        r.direction.as_str(),
                        r.unweighted_accuracy,
                        single.unweighted_accuracy
                    ),
                );
            }
        }
    }
    Ok(())
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_scores_of_a_fixed_prediction_are_the_hand_computed_ones() {
        // Prediction = truth + 1: r = 1, RMSE = 1; population variances 1.25 each, covariance
        // 1.25, mean gap 1, so CCC = 2 · 1.25 / (1.25 + 1.25 + 1) = 5/7.
        let truth = [1.0, 2.0, 3.0, 4.0];
        let pred = [2.0, 3.0, 4.0, 5.0];
        let (r, ccc, rmse) = regression_scores(&truth, &pred).unwrap();
        assert!((r - 1.0).abs() < 1e-12, "{r}");
        assert!((ccc - 5.0 / 7.0).abs() < 1e-12, "{ccc}");
        assert!((rmse - 1.0).abs() < 1e-12, "{rmse}");
        // Reversed order: r = −1, CCC = 2 · (−1.25) / (1.25 + 1.25 + 0) = −1, RMSE = √5.
        let (r, ccc, rmse) = regression_scores(&truth, &[4.0, 3.0, 2.0, 1.0]).unwrap();
        assert!(
            (r + 1.0).abs() < 1e-12 && (ccc + 1.0).abs() < 1e-12,
            "{r} {ccc}"
        );
        assert!((rmse - 5f64.sqrt()).abs() < 1e-12, "{rmse}");
        // A diverged prediction is an error, not a NaN row.
        let err = regression_scores(&truth, &[1.0, f64::NAN, 3.0, 4.0]).unwrap_err();
        assert!(
            err.to_string().contains("non-finite prediction at row 1"),
            "{err}"
        );
    }

    #[test]
    fn a_regression_table_carries_r_ccc_rmse_and_ccc_gain_headlines() {
        let tmp = tempfile::tempdir().unwrap();
        let mut run = RunFolder::create(&tmp.path().join("run"), "finetune").unwrap();
        let config = FinetuneConfig {
            target: Target::Valence,
            directions: vec![Direction::MusicToSpeech],
            ..FinetuneConfig::default()
        };
        let row = |setting: &str, ccc: f64| ComparisonRow {
            method: Method::Lora,
            direction: Direction::MusicToSpeech,
            setting: setting.into(),
            target: Target::Valence,
            n_test: 4,
            weighted_accuracy: f64::NAN,
            unweighted_accuracy: f64::NAN,
            macro_f1: f64::NAN,
            pearson: 1.0,
            ccc,
            rmse: 1.0,
            trainable_encoder: 10,
            trainable_head: 3,
        };
        let rows = [row("target-only", 0.5), row("two-stage", 5.0 / 7.0)];
        write_outputs(&mut run, &rows, &BTreeMap::new(), &config).unwrap();
        let csv = std::fs::read_to_string(run.path("comparison.csv")).unwrap();
        let mut lines = csv.lines();
        assert_eq!(
            lines.next().unwrap(),
            "method,direction,setting,target,r,CCC,RMSE,n_test,trainable_encoder,trainable_head"
        );
        let two = lines.nth(1).unwrap();
        assert!(
            two.starts_with("lora,music-to-speech,two-stage,valence,1"),
            "{two}"
        );
        assert!(two.contains(",0.714"), "{two}");
        run.finish().unwrap();
        let json = std::fs::read_to_string(tmp.path().join("run/run.json")).unwrap();
        assert!(
            json.contains("gain_ccc_valence_music-to-speech_lora"),
            "{json}"
        );
        assert!(json.contains("two-stage CCC 0.714"), "{json}");
    }
}
