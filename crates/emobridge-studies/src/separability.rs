//! Layer-wise probing and speech ↔ music transfer: how well emotion (or arousal / valence) can be
//! read from a representation — every hidden state of a cached SSL model, or a descriptor set —
//! within each domain and across domains, run the way both papers run it.
//!
//! Protocol (the knobs are [`SeparabilityConfig`]; `tools/fixtures/probe_sklearn.py` runs the
//! same protocol with scikit-learn):
//!
//! - **settings**: within speech, within music (group k-fold over the manifest's `speaker`
//!   column: actor, performer, piece — no speaker in both training and test data), speech → music
//!   and music → speech (trained on the source domain's training folds, tested on every clip of
//!   the target domain), so every setting has folds × seeds scores: mean ± std.
//! - **normalisation** ([`Normalize`]): `train` z-scores with the training rows' moments (fitted
//!   per fold); `per-domain` (the default, as Coutinho & Schuller 2017 treat each corpus),
//!   `per-speaker` and `per-corpus` z-score every group of clips with that group's own feature
//!   moments. Group statistics use features only, never labels, so applying them to a test group
//!   leaks no test label; they are computed once over all usable clips of the group.
//! - **shared label set**: with both domains labelled, every setting is restricted to the
//!   emotions both domains have (RAVDESS speech ∩ song = 6), so within- and cross-domain scores
//!   share one chance level; the set is stated in `run.json` and the headlines.
//! - **heads** ([`Head`]): L2 logistic regression (scikit-learn's objective), ridge (arousal /
//!   valence), an MLP (768 → 128 → 16 → outputs by default, ReLU, dropout, Adam, early stopping on a
//!   dev share of the training fold), and a learned softmax-weighted sum of all hidden states
//!   feeding that MLP (SUPERB's featurizer), whose layer weights are reported. Class weighting
//!   (`balanced`) is optional.
//! - **scores**: WA, UA, macro-F1 and the pooled confusion matrix (emotion); Pearson r, CCC, RMSE
//!   (arousal, valence).
//!
//! Bad input is handled by rule and recorded in `run.json` (`notes`, `failures`): clips without
//! the target are skipped and counted; a missing or unreadable cache entry is a failure of that
//! clip; a column non-finite in more than `nonfinite_column_share` of the clips is dropped from
//! every state (named), a clip with any other non-finite value is a failure; constant columns keep
//! scale 1 (scikit-learn's rule) and are named; a domain with fewer speakers than folds gets one
//! fold per speaker (and no within-domain score below two); a label present in one domain only is
//! named and left out of the shared set.
//!
//! Outputs: `scores.{csv,json,md}` (every state × setting), `transfer_matrix.{csv,md}` (states ×
//! the four settings), `best_state.{csv,md}`, `transfer_by_state.{svg,png}` (curves with ±std
//! bands), `confusion/` (cross-domain, pooled over folds and seeds; heatmaps for the best state),
//! `layer_weights.{csv,svg,png}` (weighted-sum head), `folds/`, `config.toml` (the effective
//! configuration) and `run.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use emobridge_corpus::folds::{FoldError, Folds};
use emobridge_corpus::{Domain, Emotion, Manifest};
use emobridge_learn::metrics::{self, ClassificationScores};
use emobridge_learn::mlp::Targets;
use emobridge_learn::{
    balanced_weights, GroupStandardizer, LearnError, LogisticConfig, LogisticRegression, Mlp,
    MlpConfig, Ridge, Standardizer,
};
use emobridge_report::{ReportError, Table};
use emobridge_store::EmbeddingCache;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::descriptors::{clip_descriptors, ClipDescriptors};
use crate::protocol::{group_folds, read_toml_config, row_splits, FoldPlan};
use crate::{RunFolder, RunFolderError};

/// How features are z-scored before the head sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Normalize {
    /// The training rows' moments, fitted per fold and applied to its test rows.
    Train,
    /// Each domain with its own clips' moments.
    PerDomain,
    /// Each speaker / performer with their own clips' moments.
    PerSpeaker,
    /// Each corpus (manifest `corpus` column) with its own clips' moments.
    PerCorpus,
}

/// What is fitted on the features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Head {
    /// L2 multinomial logistic regression (emotion).
    Logreg,
    /// Ridge regression (arousal, valence).
    Ridge,
    /// The MLP of [`MlpConfig`].
    Mlp,
    /// A learned softmax-weighted sum of all hidden states feeding the MLP.
    WeightedSum,
}

/// What is predicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    Emotion,
    Arousal,
    Valence,
}

/// Class weighting of the classification heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClassWeight {
    None,
    /// scikit-learn's `balanced`: n / (classes · nᶜ).
    Balanced,
}

spelled!(
    Normalize,
    "normalisation",
    Train = "train",
    PerDomain = "per-domain",
    PerSpeaker = "per-speaker",
    PerCorpus = "per-corpus"
);
spelled!(
    Head,
    "head",
    Logreg = "logreg",
    Ridge = "ridge",
    Mlp = "mlp",
    WeightedSum = "weighted-sum"
);
spelled!(
    Target,
    "target",
    Emotion = "emotion",
    Arousal = "arousal",
    Valence = "valence"
);
impl Target {
    /// Whether a manifest record carries this target.
    pub fn present(self, r: &emobridge_corpus::Record) -> bool {
        match self {
            Target::Emotion => r.emotion.is_some(),
            Target::Arousal => r.arousal.is_some_and(|v| v.is_finite()),
            Target::Valence => r.valence.is_some_and(|v| v.is_finite()),
        }
    }
}

spelled!(
    ClassWeight,
    "class weight",
    None = "none",
    Balanced = "balanced"
);

/// Every knob of the probe; `Default` gives the documented defaults, and a TOML file with any
/// subset of the fields (`[mlp]` for the MLP's) overrides them (see [`SeparabilityConfig::from_toml`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeparabilityConfig {
    /// Speaker-independent folds within a domain (default 4; fewer when a domain has fewer
    /// speakers).
    pub folds: usize,
    /// Base seed: seed index s uses `seed + s` for its folds and the MLP.
    pub seed: u64,
    /// Repetitions with different seeds (default 3); scores are mean ± std over folds × seeds.
    pub seeds: usize,
    /// Normalisation (default `per-domain`).
    pub normalize: Normalize,
    /// Head; absent = `logreg` for emotion, `ridge` for arousal / valence.
    pub head: Option<Head>,
    /// Target (default `emotion`).
    pub target: Target,
    /// Inverse L2 strength of the logistic regression (default 1, scikit-learn's).
    pub c: f64,
    /// Logistic regression stopping tolerance on max |gradient| (default 1e-4, scikit-learn's
    /// `tol`).
    pub tol: f64,
    /// Logistic regression iteration limit (default 1000).
    pub max_iter: usize,
    /// Ridge penalty (default 30; scikit-learn's α = 1 overfits on z-scored descriptor or SSL
    /// features with ~100 clips per domain: on the default synthetic corpus, eGeMAPS, cross-domain
    /// arousal r is 0.22 / 0.40 at α = 1 and 0.56 / 0.67 at α = 30).
    pub ridge_alpha: f64,
    /// Class weighting of the classification heads (default none).
    pub class_weight: ClassWeight,
    /// Restrict every setting to the emotions both domains have (default true; cross-domain
    /// settings always are).
    pub shared_labels: bool,
    /// A feature column non-finite in more than this share of the clips is dropped (default 0.5).
    pub nonfinite_column_share: f64,
    /// The MLP (heads `mlp` and `weighted-sum`).
    pub mlp: MlpConfig,
    /// Stop at the first clip that fails (unreadable cache entry or audio, non-finite features)
    /// instead of leaving it out (default false; `--strict`).
    pub strict: bool,
}

/// The same settings under the name the CLI uses.
pub type ProbeConfig = SeparabilityConfig;

impl Default for SeparabilityConfig {
    fn default() -> Self {
        SeparabilityConfig {
            folds: 4,
            seed: 7,
            seeds: 3,
            normalize: Normalize::PerDomain,
            head: None,
            target: Target::Emotion,
            c: 1.0,
            tol: 1e-4,
            max_iter: 1000,
            ridge_alpha: 30.0,
            class_weight: ClassWeight::None,
            shared_labels: true,
            nonfinite_column_share: 0.5,
            mlp: MlpConfig::default(),
            strict: false,
        }
    }
}

impl SeparabilityConfig {
    /// Reads a TOML file; fields it omits keep their defaults, unknown fields are an error.
    pub fn from_toml(path: &Path) -> Result<Self, SeparabilityError> {
        let cfg: SeparabilityConfig =
            read_toml_config(path).map_err(|e| SeparabilityError::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The configuration as TOML (what `config.toml` in a run folder holds).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config serialises to TOML")
    }

    /// The head actually used: the configured one, or the target's linear head.
    pub fn effective_head(&self) -> Head {
        self.head.unwrap_or(match self.target {
            Target::Emotion => Head::Logreg,
            Target::Arousal | Target::Valence => Head::Ridge,
        })
    }

    /// Checks every value against its rule; the message names the field.
    pub fn validate(&self) -> Result<(), SeparabilityError> {
        let bad = |m: String| Err(SeparabilityError::Config(m));
        if self.folds < 2 {
            return bad(format!("folds must be ≥ 2, got {}", self.folds));
        }
        if self.seeds == 0 || self.seeds > 100 {
            return bad(format!("seeds must be in 1..=100, got {}", self.seeds));
        }
        if !(self.c > 0.0 && self.c.is_finite()) {
            return bad(format!("c must be positive, got {}", self.c));
        }
        if !(self.tol > 0.0 && self.tol.is_finite()) || self.max_iter == 0 {
            return bad(format!(
                "tol must be positive and max_iter ≥ 1, got {} and {}",
                self.tol, self.max_iter
            ));
        }
        if !(self.ridge_alpha >= 0.0 && self.ridge_alpha.is_finite()) {
            return bad(format!("ridge_alpha must be ≥ 0, got {}", self.ridge_alpha));
        }
        if !(0.0..=1.0).contains(&self.nonfinite_column_share) {
            return bad(format!(
                "nonfinite_column_share must be in [0, 1], got {}",
                self.nonfinite_column_share
            ));
        }
        let head = self.effective_head();
        match (self.target, head) {
            (Target::Emotion, Head::Ridge) => {
                return bad(
                    "head ridge predicts values; target emotion needs logreg, mlp or weighted-sum"
                        .into(),
                )
            }
            (Target::Arousal | Target::Valence, Head::Logreg) => {
                return bad(format!(
                    "head logreg predicts categories; target {} needs ridge, mlp or weighted-sum",
                    self.target
                ))
            }
            _ => {}
        }
        if matches!(head, Head::Mlp | Head::WeightedSum) {
            Mlp::fit(
                &[&[0.0, 1.0, 2.0, 3.0]],
                4,
                1,
                Targets::Classes {
                    y: &[0, 1, 0, 1],
                    n_labels: 2,
                },
                None,
                &MlpConfig {
                    max_epochs: 1,
                    ..self.mlp.clone()
                },
            )
            .map_err(|e| SeparabilityError::Config(format!("[mlp]: {e}")))?;
        }
        Ok(())
    }
}

/// Why the probe could not run.
#[derive(Debug, thiserror::Error)]
pub enum SeparabilityError {
    #[error(transparent)]
    Learn(#[from] LearnError),
    #[error(transparent)]
    Folds(#[from] FoldError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Run(#[from] RunFolderError),
    #[error("features: {0}")]
    Features(String),
    #[error("config: {0}")]
    Config(String),
}

/// One scored setting (mean ± std over folds × seeds).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeScore {
    pub train_domain: String,
    pub test_domain: String,
    /// `within` (group folds) or `cross`.
    pub setting: String,
    /// Folds per seed.
    pub folds: usize,
    /// Fitted models behind the score (folds × seeds).
    pub runs: usize,
    /// Distinct test clips.
    pub n_test: usize,
    /// Labels present in the test truth; UA's chance level is 1 / this (0 for regression).
    pub n_labels: usize,
    /// Emotion scores (NaN for arousal / valence targets).
    pub weighted_accuracy: f64,
    pub unweighted_accuracy: f64,
    pub macro_f1: f64,
    pub chance_ua: f64,
    pub wa_std: f64,
    pub ua_std: f64,
    pub macro_f1_std: f64,
    /// Arousal / valence scores (NaN for emotion).
    pub pearson: f64,
    pub pearson_std: f64,
    pub ccc: f64,
    pub ccc_std: f64,
    pub rmse: f64,
    pub rmse_std: f64,
    /// Pooled over folds and seeds: `confusion[truth][prediction]` over the study's labels.
    #[serde(skip)]
    pub confusion: Vec<Vec<u64>>,
}

impl ProbeScore {
    /// `within_speech`, `speech_to_music`, …
    pub fn key(&self) -> String {
        if self.setting == "within" {
            format!("within_{}", self.train_domain)
        } else {
            format!("{}_to_{}", self.train_domain, self.test_domain)
        }
    }

    /// The headline score: UA (emotion) or Pearson r (arousal / valence), with its std.
    pub fn primary(&self) -> (f64, f64) {
        if self.unweighted_accuracy.is_nan() {
            (self.pearson, self.pearson_std)
        } else {
            (self.unweighted_accuracy, self.ua_std)
        }
    }
}

/// What [`run`] produced (one feature set).
#[derive(Debug, Clone)]
pub struct SeparabilityOutcome {
    pub scores: Vec<ProbeScore>,
    /// Label order of the confusion matrices (the study's label set).
    pub labels: Vec<Emotion>,
    pub run_dir: PathBuf,
}

/// What [`run_by_layer`] produced.
#[derive(Debug)]
pub struct LayerwiseOutcome {
    /// (hidden-state index, that state's scores) in ascending order; empty for the weighted-sum
    /// head, whose single model over all states is `weighted`.
    pub layers: Vec<(usize, SeparabilityOutcome)>,
    pub weighted: Option<SeparabilityOutcome>,
    /// Weighted-sum head: per setting key, mean and std of each state's learned weight.
    pub layer_weights: BTreeMap<String, (Vec<f64>, Vec<f64>)>,
    pub run_dir: PathBuf,
}

impl LayerwiseOutcome {
    /// One log line per setting: the best hidden state and its score, and for the weighted-sum
    /// head the score of the weighted sum of all states.
    pub fn summary_lines(&self) -> Vec<String> {
        let best = best_per_setting(&self.layers)
            .into_iter()
            .map(|(key, layer, v)| format!("probe {key}: best score {v:.3} at state {layer}"));
        let weighted = self.weighted.iter().flat_map(|w| &w.scores).map(|s| {
            format!(
                "probe {} (weighted sum of all states): {:.3}",
                s.key(),
                s.primary().0
            )
        });
        best.chain(weighted).collect()
    }
}

/// Per setting key (`within_speech`, …), the hidden state with the best primary score (UA, or
/// Pearson r): (key, state, score), in first-seen order.
pub fn best_per_setting(layers: &[(usize, SeparabilityOutcome)]) -> Vec<(String, usize, f64)> {
    let mut best: Vec<(String, usize, f64)> = Vec::new();
    for (layer, outcome) in layers {
        for s in &outcome.scores {
            let (key, v) = (s.key(), s.primary().0);
            match best.iter_mut().find(|b| b.0 == key) {
                Some(b) if v > b.2 => *b = (key, *layer, v),
                Some(_) => {}
                None => best.push((key, *layer, v)),
            }
        }
    }
    best
}

/// Where the features come from.
pub enum ProbeInput<'a> {
    /// One row per clip id (a descriptor set such as eGeMAPS functionals), named `name`.
    Features {
        name: &'a str,
        rows: &'a [(String, Vec<f64>)],
    },
    /// Every hidden state's mean-pooled vector from an embedding cache.
    Cache { cache: &'a EmbeddingCache },
    /// Clip-level descriptors computed here from the audio of every manifest clip that carries
    /// the target; a clip that fails is left out and listed in the run's failures.
    Descriptors { set: ClipDescriptors },
}

/// The probe on one feature set (e.g. eGeMAPS functionals); see the module docs.
pub fn run(
    config: &SeparabilityConfig,
    manifest: &Manifest,
    features: &[(String, Vec<f64>)],
    feature_set: &str,
    out: &Path,
) -> Result<SeparabilityOutcome, SeparabilityError> {
    let o = probe(
        config,
        manifest,
        ProbeInput::Features {
            name: feature_set,
            rows: features,
        },
        out,
        &|_, _| {},
    )?;
    Ok(o.weighted
        .or_else(|| o.layers.into_iter().next().map(|l| l.1))
        .unwrap_or(SeparabilityOutcome {
            scores: Vec::new(),
            labels: Vec::new(),
            run_dir: o.run_dir,
        }))
}

/// The probe on a clip-level descriptor set computed here (`emobridge probe --features`): the
/// descriptors of every clip with the configured target, then [`probe`]. Clips whose audio
/// cannot be analysed are left out and returned. `progress(done, total)` counts clips, then fits.
pub fn probe_descriptors(
    config: &SeparabilityConfig,
    manifest: &Manifest,
    set: crate::descriptors::ClipDescriptors,
    out: &Path,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<(LayerwiseOutcome, Vec<crate::descriptors::ClipFailure>), SeparabilityError> {
    let records: Vec<_> = manifest
        .records
        .iter()
        .filter(|r| config.target.present(r))
        .collect();
    let (rows, failures) =
        crate::descriptors::clip_descriptors(manifest, &records, set, config.strict, progress);
    let input = ProbeInput::Features {
        name: set.as_str(),
        rows: &rows,
    };
    Ok((probe(config, manifest, input, out, progress)?, failures))
}

/// The probe on every hidden state of a cached model (mean-pooled); see the module docs.
pub fn run_by_layer(
    config: &SeparabilityConfig,
    manifest: &Manifest,
    cache: &EmbeddingCache,
    out: &Path,
) -> Result<LayerwiseOutcome, SeparabilityError> {
    probe(
        config,
        manifest,
        ProbeInput::Cache { cache },
        out,
        &|_, _| {},
    )
}

/// One usable clip.
struct Clip {
    id: String,
    domain: Domain,
    speaker: String,
    corpus: String,
    /// Index into the study's labels (emotion target).
    label: usize,
    /// Arousal or valence (regression targets).
    value: f64,
}

/// The four settings: (train domain, test domain).
const SETTINGS: [(Domain, Domain); 4] = [
    (Domain::Speech, Domain::Speech),
    (Domain::Music, Domain::Music),
    (Domain::Speech, Domain::Music),
    (Domain::Music, Domain::Speech),
];

fn setting_key(s: usize) -> String {
    let (a, b) = SETTINGS[s];
    if a == b {
        format!("within_{}", a.as_str())
    } else {
        format!("{}_to_{}", a.as_str(), b.as_str())
    }
}

fn setting_title(s: usize) -> String {
    let (a, b) = SETTINGS[s];
    if a == b {
        format!("within {}", a.as_str())
    } else {
        format!("{} → {}", a.as_str(), b.as_str())
    }
}

/// One fit: rows to train on and to test on (indices into the clips).
struct Job {
    setting: usize,
    /// Hidden state, or `None` for the weighted sum of all states.
    state: Option<usize>,
    seed_index: usize,
    fold: usize,
    train: Vec<usize>,
    test: Vec<usize>,
}

/// What one fit scored.
struct JobResult {
    setting: usize,
    state: Option<usize>,
    test: Vec<usize>,
    pred_labels: Vec<usize>,
    class: Option<ClassificationScores>,
    regression: Option<metrics::RegressionScores>,
    layer_weights: Vec<f64>,
}

/// The probe: reads the features, applies the rules for bad input, fits every (state, setting,
/// seed, fold) in parallel, and writes the run folder. `progress(done, total)` counts fits.
pub fn probe(
    config: &SeparabilityConfig,
    manifest: &Manifest,
    input: ProbeInput<'_>,
    out: &Path,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<LayerwiseOutcome, SeparabilityError> {
    config.validate()?;
    let head = config.effective_head();
    let effective = SeparabilityConfig {
        head: Some(head),
        ..config.clone()
    };
    let mut run = RunFolder::create(out, "probe")?;
    run.set_strict(config.strict);
    let computed: Vec<(String, Vec<f64>)>;
    let input = match input {
        ProbeInput::Descriptors { set } => {
            let records: Vec<&emobridge_corpus::Record> = manifest
                .records
                .iter()
                .filter(|r| config.target.present(r))
                .collect();
            let (rows, failures) =
                clip_descriptors(manifest, &records, set, config.strict, progress);
            for f in failures {
                tracing::error!("{}: {}", f.path, f.error);
                run.fail(f.id, f.path, f.error)?;
            }
            computed = rows;
            ProbeInput::Features {
                name: set.as_str(),
                rows: &computed,
            }
        }
        other => other,
    };
    let (feature_name, single) = match &input {
        ProbeInput::Features { name, .. } => (name.to_string(), true),
        ProbeInput::Cache { cache } => (
            format!("{} (mean-pooled hidden states)", cache.tag()),
            false,
        ),
        ProbeInput::Descriptors { .. } => unreachable!("descriptors became feature rows above"),
    };
    run.set_config(
        &serde_json::json!({ "probe": effective, "features": feature_name }),
        config.seed,
    );
    std::fs::write(run.path("config.toml"), effective.to_toml()).map_err(|source| {
        RunFolderError::Io {
            path: run.path("config.toml"),
            source,
        }
    })?;
    run.artifact(
        crate::ArtifactKind::Data,
        "config.toml",
        "Effective configuration",
        "Every knob of this run, defaults filled in.\nPass it back with --config to repeat the run.",
    );
    run.hash_manifest(manifest);
    if let ProbeInput::Features { rows, .. } = &input {
        let mut bytes = Vec::new();
        for (id, row) in rows.iter() {
            bytes.extend_from_slice(id.as_bytes());
            bytes.push(0);
            bytes.extend(row.iter().flat_map(|v| v.to_le_bytes()));
        }
        run.hash_bytes("features", &bytes);
    }
    run.note("normalize", config.normalize.as_str());
    run.note("head", head.as_str());
    run.note("target", config.target.as_str());
    if config.normalize != Normalize::Train {
        run.note(
            "normalize_rule",
            "each group z-scored with its own clips' feature moments (features only, never labels)",
        );
    }

    // Features per clip and state.
    let started = std::time::Instant::now();
    let (ids, mut states) = match input {
        ProbeInput::Features { rows, .. } => {
            let dim = rows.first().map_or(0, |r| r.1.len());
            if let Some((id, row)) = rows.iter().find(|(_, row)| row.len() != dim) {
                return Err(SeparabilityError::Features(format!(
                    "clip {id} has {} features, the first clip {dim}",
                    row.len()
                )));
            }
            let wanted: BTreeSet<&str> = manifest.records.iter().map(|r| r.id.as_str()).collect();
            let kept: Vec<&(String, Vec<f64>)> = rows
                .iter()
                .filter(|r| wanted.contains(r.0.as_str()))
                .collect();
            if kept.len() < rows.len() {
                run.note("feature_rows_not_in_manifest", rows.len() - kept.len());
            }
            let ids: Vec<String> = kept.iter().map(|r| r.0.clone()).collect();
            let matrix: Vec<f64> = kept.iter().flat_map(|r| r.1.iter().copied()).collect();
            (ids, vec![(dim, matrix)])
        }
        ProbeInput::Cache { cache } => read_cache(manifest, cache, config, &mut run)?,
        ProbeInput::Descriptors { .. } => unreachable!("descriptors became feature rows above"),
    };
    let dim = states.first().map_or(0, |s| s.0);
    let mut rows = ids.len();
    tracing::info!(
        "probe: {rows} clips × {} state(s) × {dim} features read in {:.2} s",
        states.len(),
        started.elapsed().as_secs_f64()
    );

    // Non-finite columns, then non-finite clips.
    let limit = config.nonfinite_column_share * rows as f64;
    let mut drop_cols = BTreeSet::new();
    let mut dropped_names = Vec::new();
    for (s, (_, m)) in states.iter().enumerate() {
        for c in 0..dim {
            let bad = (0..rows).filter(|&r| !m[r * dim + c].is_finite()).count();
            if bad > 0 && bad as f64 > limit {
                drop_cols.insert(c);
                dropped_names.push(format!("state {s} column {c} ({bad} of {rows} clips)"));
            }
        }
    }
    if !drop_cols.is_empty() {
        run.note("dropped_nonfinite_columns", &dropped_names);
        let keep: Vec<usize> = (0..dim).filter(|c| !drop_cols.contains(c)).collect();
        for (d, m) in states.iter_mut() {
            *m = m
                .chunks_exact(*d)
                .flat_map(|row| keep.iter().map(move |&c| row[c]))
                .collect();
            *d = keep.len();
        }
    }
    let dim = states.first().map_or(0, |s| s.0);
    if dim == 0 {
        return Err(SeparabilityError::Features(
            "no usable feature column (every column was empty or non-finite)".into(),
        ));
    }
    let by_id: BTreeMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut finite_row = vec![true; rows];
    for (r, ok) in finite_row.iter_mut().enumerate() {
        for (s, (_, m)) in states.iter().enumerate() {
            if let Some(c) = m[r * dim..(r + 1) * dim]
                .iter()
                .position(|v| !v.is_finite())
            {
                let path = manifest
                    .records
                    .iter()
                    .find(|x| x.id == ids[r])
                    .map_or(String::new(), |x| x.path.clone());
                run.fail(
                    ids[r].clone(),
                    path,
                    format!(
                        "non-finite feature {} in state {s} column {c}",
                        m[r * dim + c]
                    ),
                )?;
                *ok = false;
                break;
            }
        }
    }

    // Targets and the label set.
    let mut without_target = Vec::new();
    let mut picked: Vec<(usize, &emobridge_corpus::Record)> = Vec::new();
    let mut without_features = Vec::new();
    for r in &manifest.records {
        if !config.target.present(r) {
            without_target.push(r.id.clone());
            continue;
        }
        match by_id.get(r.id.as_str()) {
            Some(&row) if finite_row[row] => picked.push((row, r)),
            Some(_) => {} // listed under failures above
            None => without_features.push(r.id.clone()),
        }
    }
    if !without_features.is_empty() {
        run.note(
            "clips_without_features",
            serde_json::json!({
                "rule": "skipped: no feature row (or cache entry, listed under failures)",
                "count": without_features.len(),
                "first": without_features.iter().take(10).collect::<Vec<_>>(),
            }),
        );
    }
    if !without_target.is_empty() {
        run.note(
            "clips_without_target",
            serde_json::json!({
                "rule": format!("skipped: no {} value", config.target),
                "count": without_target.len(),
                "first": without_target.iter().take(10).collect::<Vec<_>>(),
            }),
        );
    }
    let domain_labels = |d: Domain| -> BTreeSet<Emotion> {
        picked
            .iter()
            .filter(|(_, r)| r.domain == d)
            .filter_map(|(_, r)| r.emotion)
            .collect()
    };
    let (speech_labels, music_labels) =
        (domain_labels(Domain::Speech), domain_labels(Domain::Music));
    let both_domains = !speech_labels.is_empty() && !music_labels.is_empty();
    let shared: BTreeSet<Emotion> = speech_labels.intersection(&music_labels).copied().collect();
    let names = |s: &BTreeSet<Emotion>| s.iter().map(|e| e.as_str()).collect::<Vec<_>>();
    let mut label_set: BTreeSet<Emotion> = speech_labels.union(&music_labels).copied().collect();
    if config.target == Target::Emotion && both_domains {
        for (d, mine, other) in [
            (Domain::Speech, &speech_labels, &music_labels),
            (Domain::Music, &music_labels, &speech_labels),
        ] {
            let only: BTreeSet<Emotion> = mine.difference(other).copied().collect();
            if !only.is_empty() {
                run.note(&format!("labels_only_in_{}", d.as_str()), names(&only));
            }
        }
        run.note("shared_labels", names(&shared));
        if config.shared_labels {
            let before = picked.len();
            picked.retain(|(_, r)| r.emotion.is_some_and(|e| shared.contains(&e)));
            if picked.len() < before {
                run.note(
                    "clips_outside_shared_labels",
                    serde_json::json!({
                        "rule": "left out: label not present in both domains",
                        "count": before - picked.len(),
                    }),
                );
            }
            label_set = shared.clone();
        }
    }
    let labels: Vec<Emotion> = label_set.into_iter().collect();
    let clips: Vec<Clip> = picked
        .iter()
        .map(|(_, r)| Clip {
            id: r.id.clone(),
            domain: r.domain,
            speaker: r.speaker.clone(),
            corpus: r.corpus.clone(),
            label: r
                .emotion
                .and_then(|e| labels.iter().position(|&l| l == e))
                .unwrap_or(usize::MAX),
            value: match config.target {
                Target::Arousal => r.arousal.map_or(f64::NAN, f64::from),
                Target::Valence => r.valence.map_or(f64::NAN, f64::from),
                Target::Emotion => f64::NAN,
            },
        })
        .collect();
    let rows_of: Vec<usize> = picked.iter().map(|(row, _)| *row).collect();
    // Re-index every state to the usable clips, in manifest order.
    for (d, m) in states.iter_mut() {
        *m = rows_of
            .iter()
            .flat_map(|&r| m[r * *d..(r + 1) * *d].iter().copied())
            .collect();
    }
    rows = clips.len();
    run.note("clips_used", rows);
    if rows == 0 {
        return Err(SeparabilityError::Features(format!(
            "no clip has both features and a {} value",
            config.target
        )));
    }
    if config.target == Target::Emotion {
        let text = if both_domains && config.shared_labels {
            format!(
                "Every setting uses the {} emotions both domains have: {}.",
                labels.len(),
                names(&shared).join(", ")
            )
        } else if both_domains {
            format!(
                "Cross-domain settings use the {} emotions both domains have: {}.",
                shared.len(),
                names(&shared).join(", ")
            )
        } else {
            format!(
                "Only one domain is labelled; its {} emotions are used.",
                labels.len()
            )
        };
        run.headline("label_set", names(&labels.iter().copied().collect()), text);
    }

    // Group normalisation, once per state.
    let mut constant = BTreeMap::new();
    let group_of = |c: &Clip| -> String {
        match config.normalize {
            Normalize::PerDomain => c.domain.as_str().to_string(),
            Normalize::PerSpeaker => format!("{}/{}", c.domain.as_str(), c.speaker),
            Normalize::PerCorpus => c.corpus.clone(),
            Normalize::Train => String::new(),
        }
    };
    let groups: Vec<String> = clips.iter().map(group_of).collect();
    let group_refs: Vec<&str> = groups.iter().map(String::as_str).collect();
    for (s, (_, m)) in states.iter_mut().enumerate() {
        let cols = if config.normalize == Normalize::Train {
            Standardizer::fit(m, rows, dim)?
                .constant
                .iter()
                .enumerate()
                .filter(|c| *c.1)
                .map(|c| c.0)
                .collect::<Vec<_>>()
        } else {
            let g = GroupStandardizer::fit(m, rows, dim, &group_refs)?;
            *m = g.transform(m, rows, &group_refs)?;
            g.constant_columns()
        };
        if !cols.is_empty() {
            constant.insert(format!("state {s}"), cols);
        }
    }
    if !constant.is_empty() {
        run.note(
            "constant_columns",
            serde_json::json!({
                "rule": "constant within a normalisation group: scale kept at 1 (scikit-learn), so the column is 0 there",
                "columns": constant,
            }),
        );
    }

    // Folds per domain and seed.
    let mut domain_rows: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, c) in clips.iter().enumerate() {
        domain_rows.entry(c.domain.as_str()).or_default().push(i);
    }
    let mut folds: BTreeMap<(&str, usize), Folds> = BTreeMap::new();
    for (d, idx) in &domain_rows {
        let group_names: Vec<&str> = idx.iter().map(|&i| clips[i].speaker.as_str()).collect();
        let plan = FoldPlan::new(&group_names, config.folds);
        if plan.is_capped(config.folds) {
            run.note(
                &format!("folds_{d}"),
                format!(
                    "{} speaker(s) for {} folds: {}",
                    plan.groups,
                    config.folds,
                    if plan.is_usable() {
                        format!("{} folds, one speaker each", plan.k)
                    } else {
                        "no within-domain score; cross-domain training uses every clip".into()
                    }
                ),
            );
        }
        if !plan.is_usable() {
            continue;
        }
        for s in 0..config.seeds {
            let f = group_folds(&group_names, config.folds, config.seed + s as u64)?;
            let rel = format!("folds/{d}_seed{s}.csv");
            let path = run.path(&rel);
            create_parent(&path)?;
            let fold_ids: Vec<&str> = idx.iter().map(|&i| clips[i].id.as_str()).collect();
            f.write_csv(&path, &fold_ids)?;
            run.output(rel);
            folds.insert((d, s), f);
        }
    }

    // The jobs.
    let n_states = states.len();
    let state_list: Vec<Option<usize>> = if head == Head::WeightedSum {
        vec![None]
    } else {
        (0..n_states).map(Some).collect()
    };
    let regression = config.target != Target::Emotion;
    let mut jobs = Vec::new();
    let mut skipped = BTreeMap::new();
    for (si, &(src, dst)) in SETTINGS.iter().enumerate() {
        let (Some(src_rows), Some(dst_rows)) =
            (domain_rows.get(src.as_str()), domain_rows.get(dst.as_str()))
        else {
            skipped.insert(
                setting_key(si),
                "no usable clip in one of the domains".to_string(),
            );
            continue;
        };
        let shared_idx: Vec<usize> = (0..labels.len())
            .filter(|&l| shared.contains(&labels[l]))
            .collect();
        let keep_label =
            |i: &usize| regression || src == dst || shared_idx.contains(&clips[*i].label);
        for s in 0..config.seeds {
            let splits: Vec<(Vec<usize>, Vec<usize>)> = match folds.get(&(src.as_str(), s)) {
                // Cross-domain: train on the source's training folds, test on every target clip.
                Some(f) if src != dst => row_splits(f, src_rows)
                    .into_iter()
                    .map(|(tr, _)| (tr, dst_rows.clone()))
                    .collect(),
                Some(f) => row_splits(f, src_rows),
                None if src != dst => vec![(src_rows.clone(), dst_rows.clone())],
                None => {
                    skipped.insert(setting_key(si), "fewer than two speakers".to_string());
                    continue;
                }
            };
            for (fold, (tr, te)) in splits.into_iter().enumerate() {
                let tr: Vec<usize> = tr.into_iter().filter(keep_label).collect();
                let te: Vec<usize> = te.into_iter().filter(keep_label).collect();
                let distinct = tr
                    .iter()
                    .map(|&i| clips[i].label)
                    .collect::<BTreeSet<_>>()
                    .len();
                if te.is_empty() || tr.len() < 2 || (!regression && distinct < 2) {
                    skipped.insert(
                        setting_key(si),
                        "a fold without test clips or with fewer than two training labels".into(),
                    );
                    continue;
                }
                for &state in &state_list {
                    jobs.push(Job {
                        setting: si,
                        state,
                        seed_index: s,
                        fold,
                        train: tr.clone(),
                        test: te.clone(),
                    });
                }
            }
        }
    }
    if !skipped.is_empty() {
        run.note("skipped", &skipped);
    }
    let total = jobs.len();
    let done = AtomicUsize::new(0);
    let ctx = Ctx {
        config,
        head,
        clips: &clips,
        states: &states,
        dim,
        n_labels: labels.len(),
    };
    let results: Vec<JobResult> = jobs
        .par_iter()
        .map(|job| {
            let r = ctx.fit(job);
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
            r
        })
        .collect::<Result<_, _>>()?;

    // Aggregate per (state, setting).
    let mut grouped: BTreeMap<(Option<usize>, usize), Vec<&JobResult>> = BTreeMap::new();
    for r in &results {
        grouped.entry((r.state, r.setting)).or_default().push(r);
    }
    let mut per_state: BTreeMap<Option<usize>, Vec<ProbeScore>> = BTreeMap::new();
    let mut nonfinite = 0usize;
    for ((state, si), rs) in &grouped {
        let (score, bad) = aggregate(rs, *si, &clips, labels.len(), config.folds, regression);
        nonfinite += bad;
        per_state.entry(*state).or_default().push(score);
    }
    if nonfinite > 0 {
        run.note(
            "undefined_correlations",
            format!("{nonfinite} fit(s) predicted a constant, so Pearson r / CCC is undefined there; left out of the means"),
        );
    }
    let mut layer_weights = BTreeMap::new();
    if head == Head::WeightedSum {
        for si in 0..SETTINGS.len() {
            let ws: Vec<&Vec<f64>> = results
                .iter()
                .filter(|r| r.setting == si)
                .map(|r| &r.layer_weights)
                .collect();
            if ws.is_empty() {
                continue;
            }
            let (m, s): (Vec<f64>, Vec<f64>) = (0..n_states)
                .map(|l| mean_std(&ws.iter().map(|w| w[l]).collect::<Vec<_>>()))
                .unzip();
            layer_weights.insert(setting_key(si), (m, s));
        }
    }

    let state_name = |s: Option<usize>| -> String {
        match s {
            None => "weighted-sum".into(),
            Some(_) if single => feature_name.clone(),
            Some(i) => i.to_string(),
        }
    };
    write_outputs(
        &mut run,
        &per_state,
        &labels,
        regression,
        &state_name,
        single,
        &feature_name,
        &layer_weights,
    )?;
    let run_dir = run.dir().to_path_buf();
    run.finish()?;
    let outcome = |scores: Vec<ProbeScore>| SeparabilityOutcome {
        scores,
        labels: labels.clone(),
        run_dir: run_dir.clone(),
    };
    let mut layers = Vec::new();
    let mut weighted = None;
    for (state, scores) in per_state {
        match state {
            Some(i) => layers.push((i, outcome(scores))),
            None => weighted = Some(outcome(scores)),
        }
    }
    Ok(LayerwiseOutcome {
        layers,
        weighted,
        layer_weights,
        run_dir,
    })
}

/// Reads each labelled clip's mean-pooled hidden states (in parallel); a missing or unreadable
/// entry is a failure of that clip. Returns the clip ids and one [rows, dim] matrix per state.
#[allow(clippy::type_complexity)]
fn read_cache(
    manifest: &Manifest,
    cache: &EmbeddingCache,
    config: &SeparabilityConfig,
    run: &mut RunFolder,
) -> Result<(Vec<String>, Vec<(usize, Vec<f64>)>), SeparabilityError> {
    let wanted: Vec<&emobridge_corpus::Record> = manifest
        .records
        .iter()
        .filter(|r| config.target.present(r))
        .collect();
    // Under strict the first unreadable entry stops the reading (and the probe).
    let read = crate::par_until_failure(&wanted, config.strict, |r| {
        cache
            .read_means(&r.id)
            .map(|m| {
                (0..m.rows)
                    .map(|layer| m.row(layer).to_vec())
                    .collect::<Vec<_>>()
            })
            .map_err(|e| e.to_string())
    });
    let mut ids = Vec::new();
    let mut per_clip = Vec::new();
    let mut missing = 0usize;
    for (r, res) in wanted.iter().zip(read) {
        match res {
            Some(Ok(means)) => {
                ids.push(r.id.clone());
                per_clip.push(means);
            }
            Some(Err(e)) => {
                missing += 1;
                tracing::error!("{}: {e}", r.id);
                run.fail(r.id.clone(), r.path.clone(), e)?;
            }
            None => {}
        }
    }
    if missing > 0 {
        run.note(
            "missing_cache_entries",
            serde_json::json!({"rule": "clip left out, listed under failures", "count": missing}),
        );
    }
    let Some(first) = per_clip.first() else {
        return Err(SeparabilityError::Features(format!(
            "no readable cache entry for model `{}` in {}",
            cache.tag(),
            cache.dir().display()
        )));
    };
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    run.hash_cache(cache, &id_refs);
    let (n_states, dim) = (first.len(), first.first().map_or(0, Vec::len));
    for (id, means) in ids.iter().zip(&per_clip) {
        if means.len() != n_states || means.iter().any(|m| m.len() != dim) {
            return Err(SeparabilityError::Features(format!(
                "clip {id} has {} hidden states of width {} in the cache, others {n_states} of {dim}",
                means.len(),
                means.first().map_or(0, Vec::len)
            )));
        }
    }
    let states = (0..n_states)
        .map(|s| {
            (
                dim,
                per_clip.iter().flat_map(|m| m[s].iter().copied()).collect(),
            )
        })
        .collect();
    Ok((ids, states))
}

/// What every fit reads.
struct Ctx<'a> {
    config: &'a SeparabilityConfig,
    head: Head,
    clips: &'a [Clip],
    states: &'a [(usize, Vec<f64>)],
    dim: usize,
    n_labels: usize,
}

impl Ctx<'_> {
    fn gather(&self, state: usize, idx: &[usize]) -> Vec<f64> {
        let (d, m) = (self.dim, &self.states[state].1);
        idx.iter()
            .flat_map(|&i| m[i * d..(i + 1) * d].iter().copied())
            .collect()
    }

    /// Training and test matrices of one state, z-scored on the training rows under `train`.
    fn matrices(&self, state: usize, job: &Job) -> Result<(Vec<f64>, Vec<f64>), LearnError> {
        let (xtr, xte) = (
            self.gather(state, &job.train),
            self.gather(state, &job.test),
        );
        if self.config.normalize == Normalize::Train {
            let s = Standardizer::fit(&xtr, job.train.len(), self.dim)?;
            Ok((
                s.transform(&xtr, job.train.len())?,
                s.transform(&xte, job.test.len())?,
            ))
        } else {
            Ok((xtr, xte))
        }
    }

    fn fit(&self, job: &Job) -> Result<JobResult, SeparabilityError> {
        let cfg = self.config;
        let (ntr, nte) = (job.train.len(), job.test.len());
        let y: Vec<usize> = job.train.iter().map(|&i| self.clips[i].label).collect();
        let v: Vec<f64> = job.train.iter().map(|&i| self.clips[i].value).collect();
        let regression = cfg.target != Target::Emotion;
        let weights = (!regression && cfg.class_weight == ClassWeight::Balanced)
            .then(|| balanced_weights(&y));
        let mlp_cfg = MlpConfig {
            seed: cfg
                .seed
                .wrapping_add(job.seed_index as u64 * 1_000_003)
                .wrapping_add(job.fold as u64 * 7919)
                .wrapping_add(job.setting as u64 * 104_729),
            ..cfg.mlp.clone()
        };
        let targets = if regression {
            Targets::Values { y: &v, outputs: 1 }
        } else {
            Targets::Classes {
                y: &y,
                n_labels: self.n_labels,
            }
        };
        let mut layer_weights = Vec::new();
        let (pred_labels, pred_values): (Vec<usize>, Vec<f64>) = match (self.head, job.state) {
            (Head::Logreg, Some(s)) => {
                let (xtr, xte) = self.matrices(s, job)?;
                let lc = LogisticConfig {
                    c: cfg.c,
                    solver: emobridge_learn::lbfgs::LbfgsConfig {
                        gtol: cfg.tol,
                        max_iter: cfg.max_iter,
                        memory: 10,
                    },
                    ..LogisticConfig::default()
                };
                let m = LogisticRegression::fit_weighted(
                    &xtr,
                    ntr,
                    self.dim,
                    &y,
                    self.n_labels,
                    weights.as_deref(),
                    &lc,
                )?;
                if !m.converged {
                    tracing::debug!("logistic regression stopped at {} iterations", m.iterations);
                }
                (m.predict(&xte, nte)?, Vec::new())
            }
            (Head::Ridge, Some(s)) => {
                let (xtr, xte) = self.matrices(s, job)?;
                let m = Ridge::fit(&xtr, ntr, self.dim, &v, 1, cfg.ridge_alpha)?;
                (Vec::new(), m.predict(&xte, nte)?)
            }
            (Head::Mlp, Some(s)) => {
                let (xtr, xte) = self.matrices(s, job)?;
                let m = Mlp::fit(
                    &[&xtr],
                    ntr,
                    self.dim,
                    targets,
                    weights.as_deref(),
                    &mlp_cfg,
                )?;
                if regression {
                    (Vec::new(), m.outputs(&[&xte], nte)?)
                } else {
                    (m.predict(&[&xte], nte)?, Vec::new())
                }
            }
            (_, _) => {
                let mats: Vec<(Vec<f64>, Vec<f64>)> = (0..self.states.len())
                    .map(|s| self.matrices(s, job))
                    .collect::<Result<_, _>>()?;
                let tr: Vec<&[f64]> = mats.iter().map(|m| m.0.as_slice()).collect();
                let te: Vec<&[f64]> = mats.iter().map(|m| m.1.as_slice()).collect();
                let m = Mlp::fit(&tr, ntr, self.dim, targets, weights.as_deref(), &mlp_cfg)?;
                layer_weights = m.layer_weights();
                if regression {
                    (Vec::new(), m.outputs(&te, nte)?)
                } else {
                    (m.predict(&te, nte)?, Vec::new())
                }
            }
        };
        let (class, regression_scores) = if regression {
            let truth: Vec<f64> = job.test.iter().map(|&i| self.clips[i].value).collect();
            (None, Some(metrics::regression(&truth, &pred_values)?))
        } else {
            let truth: Vec<usize> = job.test.iter().map(|&i| self.clips[i].label).collect();
            (
                Some(metrics::classification(
                    &truth,
                    &pred_labels,
                    self.n_labels,
                )?),
                None,
            )
        };
        Ok(JobResult {
            setting: job.setting,
            state: job.state,
            test: job.test.clone(),
            pred_labels,
            class,
            regression: regression_scores,
            layer_weights,
        })
    }
}

/// Mean and sample std (ddof 1; 0 for a single value) of the finite values; NaN when none.
fn mean_std(v: &[f64]) -> (f64, f64) {
    let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if f.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = f.iter().sum::<f64>() / f.len() as f64;
    if f.len() < 2 {
        return (m, 0.0);
    }
    let var = f.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (f.len() - 1) as f64;
    (m, var.sqrt())
}

/// One setting's score from its fits; also counts fits with an undefined correlation.
fn aggregate(
    rs: &[&JobResult],
    si: usize,
    clips: &[Clip],
    n_labels: usize,
    folds: usize,
    regression: bool,
) -> (ProbeScore, usize) {
    let (src, dst) = SETTINGS[si];
    let test: BTreeSet<usize> = rs.iter().flat_map(|r| r.test.iter().copied()).collect();
    let nan = (f64::NAN, f64::NAN);
    let stat = |f: &dyn Fn(&JobResult) -> Option<f64>| {
        mean_std(&rs.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
    };
    let mut confusion = vec![vec![0u64; n_labels]; n_labels];
    let mut undefined = 0;
    let (wa, ua, f1, pr, cc, rm, present) = if regression {
        undefined = rs
            .iter()
            .filter(|r| r.regression.is_some_and(|s| !s.pearson.is_finite()))
            .count();
        (
            nan,
            nan,
            nan,
            stat(&|r| r.regression.map(|s| s.pearson)),
            stat(&|r| r.regression.map(|s| s.ccc)),
            stat(&|r| r.regression.map(|s| s.rmse)),
            0,
        )
    } else {
        for r in rs {
            for (&i, &p) in r.test.iter().zip(&r.pred_labels) {
                confusion[clips[i].label][p] += 1;
            }
        }
        let present = test
            .iter()
            .map(|&i| clips[i].label)
            .collect::<BTreeSet<_>>()
            .len();
        (
            stat(&|r| r.class.as_ref().map(|s| s.weighted_accuracy)),
            stat(&|r| r.class.as_ref().map(|s| s.unweighted_accuracy)),
            stat(&|r| r.class.as_ref().map(|s| s.macro_f1)),
            nan,
            nan,
            nan,
            present,
        )
    };
    let score = ProbeScore {
        train_domain: src.as_str().into(),
        test_domain: dst.as_str().into(),
        setting: if src == dst { "within" } else { "cross" }.into(),
        folds: folds.min(rs.iter().map(|r| r.test.len()).count()),
        runs: rs.len(),
        n_test: test.len(),
        n_labels: present,
        weighted_accuracy: wa.0,
        unweighted_accuracy: ua.0,
        macro_f1: f1.0,
        chance_ua: if regression {
            f64::NAN
        } else {
            1.0 / present.max(1) as f64
        },
        wa_std: wa.1,
        ua_std: ua.1,
        macro_f1_std: f1.1,
        pearson: pr.0,
        pearson_std: pr.1,
        ccc: cc.0,
        ccc_std: cc.1,
        rmse: rm.0,
        rmse_std: rm.1,
        confusion,
    };
    (score, undefined)
}

fn create_parent(path: &Path) -> Result<(), RunFolderError> {
    let dir = path.parent().expect("inside the run folder");
    std::fs::create_dir_all(dir).map_err(|source| RunFolderError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

fn num(v: f64) -> emobridge_report::Cell {
    v.into()
}

/// Tables, figures and headlines.
#[allow(clippy::too_many_arguments)]
fn write_outputs(
    run: &mut RunFolder,
    per_state: &BTreeMap<Option<usize>, Vec<ProbeScore>>,
    labels: &[Emotion],
    regression: bool,
    state_name: &dyn Fn(Option<usize>) -> String,
    single: bool,
    feature_name: &str,
    layer_weights: &BTreeMap<String, (Vec<f64>, Vec<f64>)>,
) -> Result<(), SeparabilityError> {
    let metric = if regression { "Pearson r" } else { "UA" };
    // Long table.
    let mut cols = vec![
        "state",
        "setting",
        "train_domain",
        "test_domain",
        "runs",
        "n_test",
    ];
    if regression {
        cols.extend([
            "pearson",
            "pearson_std",
            "ccc",
            "ccc_std",
            "rmse",
            "rmse_std",
        ]);
    } else {
        cols.extend([
            "n_labels",
            "ua",
            "ua_std",
            "wa",
            "wa_std",
            "macro_f1",
            "macro_f1_std",
            "chance_ua",
        ]);
    }
    let mut t = Table::new(cols);
    for (state, scores) in per_state {
        for s in scores {
            let mut row = vec![
                state_name(*state).into(),
                s.key().into(),
                s.train_domain.clone().into(),
                s.test_domain.clone().into(),
                s.runs.into(),
                s.n_test.into(),
            ];
            if regression {
                row.extend(
                    [
                        s.pearson,
                        s.pearson_std,
                        s.ccc,
                        s.ccc_std,
                        s.rmse,
                        s.rmse_std,
                    ]
                    .map(num),
                );
            } else {
                row.push(s.n_labels.into());
                row.extend(
                    [
                        s.unweighted_accuracy,
                        s.ua_std,
                        s.weighted_accuracy,
                        s.wa_std,
                        s.macro_f1,
                        s.macro_f1_std,
                        s.chance_ua,
                    ]
                    .map(num),
                );
            }
            t.push(row)?;
        }
    }
    t.write_csv(&run.path("scores.csv"))?;
    t.write_json(&run.path("scores.json"))?;
    t.write_markdown(&run.path("scores.md"), 3)?;
    run.table(
        "scores.csv",
        "Scores per state and setting",
        format!("Every representation and train → test setting, mean ± std over folds × seeds.\nHigher {metric} is better; runs = fitted models behind each mean."),
    );
    run.output("scores.json");
    run.output("scores.md");

    // Transfer matrix: states × settings.
    let mut header = vec!["state".to_string()];
    for si in 0..SETTINGS.len() {
        header.push(setting_key(si));
        header.push(format!("{}_std", setting_key(si)));
    }
    let mut m = Table::new(header.iter().map(String::as_str));
    let find = |scores: &[ProbeScore], si: usize| {
        scores
            .iter()
            .find(|s| s.key() == setting_key(si))
            .map(ProbeScore::primary)
    };
    for (state, scores) in per_state {
        let mut row: Vec<emobridge_report::Cell> = vec![state_name(*state).into()];
        for si in 0..SETTINGS.len() {
            let (a, b) = find(scores, si).unwrap_or((f64::NAN, f64::NAN));
            row.push(num(a));
            row.push(num(b));
        }
        m.push(row)?;
    }
    m.write_csv(&run.path("transfer_matrix.csv"))?;
    m.write_markdown(&run.path("transfer_matrix.md"), 3)?;
    run.table(
        "transfer_matrix.csv",
        format!("Transfer matrix ({metric})"),
        format!("One row per representation: within speech, within music, speech → music, music → speech side by side.\nCompare the cross-domain columns with the within-domain ones; an empty cell is a setting that could not run."),
    );
    run.output("transfer_matrix.md");

    // Best state per setting, and the headlines.
    let mut best = Table::new(["setting", "best_state", "score", "score_std", "chance"]);
    let mut best_states = BTreeMap::new();
    for si in 0..SETTINGS.len() {
        let candidates: Vec<(Option<usize>, &ProbeScore)> = per_state
            .iter()
            .filter_map(|(st, scores)| {
                scores
                    .iter()
                    .find(|s| s.key() == setting_key(si))
                    .map(|s| (*st, s))
            })
            .filter(|(_, s)| s.primary().0.is_finite())
            .collect();
        let Some((st, s)) = candidates
            .into_iter()
            .max_by(|a, b| a.1.primary().0.total_cmp(&b.1.primary().0))
        else {
            continue;
        };
        let (v, sd) = s.primary();
        best.push(vec![
            setting_key(si).into(),
            state_name(st).into(),
            num(v),
            num(sd),
            num(s.chance_ua),
        ])?;
        best_states.insert(si, st);
        let at = if single || st.is_none() {
            format!("with {}", state_name(st))
        } else {
            format!(
                "at {}",
                emobridge_report::plot::layer_name(st.unwrap_or_default())
            )
        };
        let text = if regression {
            format!(
                "{}: best Pearson r {:.2} ± {:.2} {at} (CCC {:.2}).",
                capitalise(&setting_title(si)),
                v,
                sd,
                s.ccc
            )
        } else {
            format!(
                "{}: best UA {:.3} ± {:.3} {at} (chance {:.3}).",
                capitalise(&setting_title(si)),
                v,
                sd,
                s.chance_ua
            )
        };
        run.headline(
            &format!("best_{}", setting_key(si)),
            serde_json::json!({"state": state_name(st), "score": v, "std": sd, "metric": metric}),
            text,
        );
    }
    best.write_csv(&run.path("best_state.csv"))?;
    best.write_markdown(&run.path("best_state.md"), 3)?;
    run.table(
        "best_state.csv",
        "Best representation per setting",
        format!("For each train → test setting, the representation with the highest mean {metric}.\nScore ± std over folds × seeds; chance is 1 / labels for UA."),
    );
    run.output("best_state.md");

    // Curves with ±std bands.
    let chance = per_state
        .values()
        .flatten()
        .find(|s| s.chance_ua.is_finite())
        .map(|s| s.chance_ua);
    let series: Vec<emobridge_report::BandSeries> = (0..SETTINGS.len())
        .filter_map(|si| {
            let points: Vec<(f64, f64, f64)> = per_state
                .iter()
                .filter_map(|(st, scores)| {
                    let (v, sd) = find(scores, si)?;
                    Some((st.unwrap_or(0) as f64, v, sd))
                })
                .collect();
            (!points.is_empty()).then(|| emobridge_report::BandSeries {
                label: setting_title(si),
                points,
            })
        })
        .collect();
    if !series.is_empty() {
        let chart = emobridge_report::BandChart {
            title: format!("{metric} by representation: {feature_name}"),
            x_label: if single || per_state.keys().all(Option::is_none) {
                "representation".into()
            } else {
                emobridge_report::plot::LAYER_AXIS.into()
            },
            y_label: format!("{metric} (mean ± std over folds × seeds)"),
            series,
            reference: (!regression)
                .then_some(())
                .and(chance)
                .map(|c| ("chance".to_string(), c)),
        };
        emobridge_report::write_band_chart(
            &chart,
            &run.path("transfer_by_state.png"),
            &run.path("transfer_by_state.svg"),
        )?;
        run.figure(
            "transfer_by_state.svg",
            format!("{metric} by hidden state, within and across domains"),
            format!("One line per train → test setting, shaded ± one std over folds × seeds; dashed: chance.\nWhere the cross-domain lines rise above chance, emotion knowledge transfers between speech and music."),
        );
        run.output("transfer_by_state.png");
    }

    // Cross-domain confusion matrices: CSV for every state, heatmaps for the best one.
    if !regression {
        let names: Vec<&str> = labels.iter().map(|l| l.as_str()).collect();
        for (state, scores) in per_state {
            for s in scores.iter().filter(|s| s.setting == "cross") {
                let mut c =
                    Table::new(std::iter::once("truth \\ predicted").chain(names.iter().copied()));
                for (label, row) in names.iter().zip(&s.confusion) {
                    c.push(
                        std::iter::once((*label).into())
                            .chain(row.iter().map(|&v| v.into()))
                            .collect(),
                    )?;
                }
                let tag = match state {
                    None => "weighted".to_string(),
                    Some(i) => format!("state{i:02}"),
                };
                let rel = format!("confusion/{tag}_{}.csv", s.key());
                let path = run.path(&rel);
                create_parent(&path)?;
                c.write_csv(&path)?;
                run.output(rel);
                let si = SETTINGS
                    .iter()
                    .position(|&(a, b)| a.as_str() == s.train_domain && b.as_str() == s.test_domain)
                    .expect("one of the settings");
                if best_states.get(&si) == Some(state) {
                    let heat = emobridge_report::Heatmap {
                        title: format!(
                            "{}: confusion, {}",
                            setting_title(si),
                            if single || state.is_none() {
                                state_name(*state)
                            } else {
                                format!("hidden state {}", state_name(*state))
                            }
                        ),
                        row_labels: names.iter().map(|s| s.to_string()).collect(),
                        col_labels: names.iter().map(|s| s.to_string()).collect(),
                        values: s
                            .confusion
                            .iter()
                            .map(|r| {
                                let n = r.iter().sum::<u64>().max(1) as f64;
                                r.iter().map(|&v| v as f64 / n).collect()
                            })
                            .collect(),
                        row_axis: "true emotion".into(),
                        col_axis: "predicted emotion".into(),
                        value_label: "share of row".into(),
                    };
                    let stem = format!("confusion/best_{}", s.key());
                    emobridge_report::write_heatmap(
                        &heat,
                        &run.path(&format!("{stem}.png")),
                        &run.path(&format!("{stem}.svg")),
                    )?;
                    run.figure(
                        format!("{stem}.svg"),
                        format!("Confusion, {} (best representation)", setting_title(si)),
                        "Rows: true emotion of the test clips; columns: predicted emotion; each row sums to 1.\nA bright diagonal means the emotion transfers; off-diagonal cells show what it is taken for.",
                    );
                    run.output(format!("{stem}.png"));
                }
            }
        }
    }

    // Learned layer weights of the weighted-sum head.
    if !layer_weights.is_empty() {
        let n = layer_weights.values().next().map_or(0, |w| w.0.len());
        let mut t = Table::new(["setting", "state", "weight", "weight_std"]);
        for (key, (m, s)) in layer_weights {
            for l in 0..n {
                t.push(vec![key.clone().into(), l.into(), num(m[l]), num(s[l])])?;
            }
        }
        t.write_csv(&run.path("layer_weights.csv"))?;
        run.table(
            "layer_weights.csv",
            "Learned layer weights (weighted-sum head)",
            "The softmax weight each hidden state gets in the learned sum, mean ± std over folds × seeds.\nWeights sum to 1; a peak marks the states the head relies on.",
        );
        let chart = emobridge_report::BandChart {
            title: "Learned layer weights".into(),
            x_label: emobridge_report::plot::LAYER_AXIS.into(),
            y_label: "softmax weight".into(),
            series: layer_weights
                .iter()
                .map(|(key, (m, s))| emobridge_report::BandSeries {
                    label: key.replace('_', " "),
                    points: (0..n).map(|l| (l as f64, m[l], s[l])).collect(),
                })
                .collect(),
            reference: Some(("uniform".into(), 1.0 / n.max(1) as f64)),
        };
        emobridge_report::write_band_chart(
            &chart,
            &run.path("layer_weights.png"),
            &run.path("layer_weights.svg"),
        )?;
        run.figure(
            "layer_weights.svg",
            "Learned layer weights by setting",
            "One line per training setting: the weight of each hidden state in the learned sum, ± one std.\nDashed: uniform weights; states above it matter more to the head.",
        );
        run.output("layer_weights.png");
        if let Some((key, (m, _))) = layer_weights.iter().next() {
            let (top, w) =
                m.iter().enumerate().fold(
                    (0, f64::NEG_INFINITY),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                );
            run.headline(
                "top_layer_weight",
                serde_json::json!({"setting": key, "state": top, "weight": w}),
                format!(
                    "The weighted-sum head ({}) puts most weight on hidden state {top} ({w:.2}).",
                    key.replace('_', " ")
                ),
            );
        }
    }
    Ok(())
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}
