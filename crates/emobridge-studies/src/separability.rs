//! How separable the emotions are with a linear probe on clip-level features: the demo's check
//! that a representation carries emotion at all, and the unit the layer-wise probing study
//! repeats per layer.
//!
//! Protocol (as `tools/fixtures/synth_probe.py` runs it with scikit-learn): clips with an emotion
//! label and a feature row; features standardised with the training rows' statistics; L2
//! multinomial logistic regression (C = 1 by default); scores WA, UA, macro-F1 and the confusion
//! matrix.
//!
//! - **within a domain**: group k-fold over the manifest's `speaker` column (actor, performer,
//!   piece), so no speaker is in both training and test data; predictions of all folds pooled;
//! - **across domains**: trained on every clip of one domain, tested on the clips of the other
//!   whose emotion the training data contains.
//!
//! Outputs in the run folder: `scores.{csv,json,md}`, `confusion/<train>_to_<test>.csv`,
//! `folds/<domain>.csv` (`id,fold`: the speaker-independent split, to reuse or to check against
//! another tool), `run.json`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use emobridge_corpus::folds::{FoldError, Folds};
use emobridge_corpus::{Domain, Emotion, Manifest};
use emobridge_learn::metrics::{self, ClassificationScores};
use emobridge_learn::{LearnError, LogisticConfig, LogisticRegression, Standardizer};
use emobridge_report::{ReportError, Table};
use emobridge_store::EmbeddingCache;
use serde::{Deserialize, Serialize};

use crate::{RunFolder, RunFolderError};

/// Settings of the probe; `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeparabilityConfig {
    /// Folds within a domain (default 4; fewer when the domain has fewer speakers).
    pub folds: usize,
    /// Inverse L2 strength of the logistic regression (default 1, scikit-learn's).
    pub c: f64,
    /// Seed of the fold assignment.
    pub seed: u64,
}

impl Default for SeparabilityConfig {
    fn default() -> Self {
        SeparabilityConfig {
            folds: 4,
            c: 1.0,
            seed: 7,
        }
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
}

/// One scored setting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeScore {
    pub train_domain: String,
    pub test_domain: String,
    /// `within` (group folds) or `cross`.
    pub setting: String,
    pub folds: usize,
    pub n_test: usize,
    /// Labels present in the test truth; UA's chance level is 1 / this.
    pub n_labels: usize,
    pub weighted_accuracy: f64,
    pub unweighted_accuracy: f64,
    pub macro_f1: f64,
    pub chance_ua: f64,
    #[serde(skip)]
    pub confusion: Vec<Vec<u64>>,
}

/// What [`run`] produced.
#[derive(Debug)]
pub struct SeparabilityOutcome {
    pub scores: Vec<ProbeScore>,
    /// Label order of the confusion matrices.
    pub labels: Vec<Emotion>,
    pub run_dir: PathBuf,
}

/// One clip usable by the probe.
struct Example<'a> {
    id: &'a str,
    features: &'a [f64],
    label: usize,
    speaker: &'a str,
    domain: Domain,
}

/// Runs the probe on `features` (clip id → row, all rows equally long) and writes `out`.
pub fn run(
    config: &SeparabilityConfig,
    manifest: &Manifest,
    features: &[(String, Vec<f64>)],
    feature_set: &str,
    out: &Path,
) -> Result<SeparabilityOutcome, SeparabilityError> {
    let mut run = RunFolder::create(out, "separability")?;
    run.set_config(
        &serde_json::json!({ "probe": config, "features": feature_set }),
        config.seed,
    );
    let dim = features.first().map_or(0, |(_, row)| row.len());
    if let Some((id, row)) = features.iter().find(|(_, row)| row.len() != dim) {
        return Err(SeparabilityError::Features(format!(
            "clip {id} has {} features, the first clip {dim}",
            row.len()
        )));
    }
    // A clip with a NaN or infinite feature is left out and listed, not allowed to stop the study.
    let mut by_id: HashMap<&str, &[f64]> = HashMap::new();
    for (id, row) in features {
        match row.iter().position(|v| !v.is_finite()) {
            None => {
                by_id.insert(id.as_str(), row.as_slice());
            }
            Some(col) => {
                let path = manifest
                    .records
                    .iter()
                    .find(|r| &r.id == id)
                    .map_or(String::new(), |r| r.path.clone());
                run.fail(
                    id.clone(),
                    path,
                    format!("non-finite feature {} in column {col}", row[col]),
                );
            }
        }
    }
    let labels: Vec<Emotion> = manifest
        .records
        .iter()
        .filter(|r| by_id.contains_key(r.id.as_str()))
        .filter_map(|r| r.emotion)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let label_of = |e: Emotion| {
        labels
            .iter()
            .position(|&l| l == e)
            .expect("collected above")
    };
    let examples: Vec<Example> = manifest
        .records
        .iter()
        .filter_map(|r| {
            Some(Example {
                id: &r.id,
                features: by_id.get(r.id.as_str())?,
                label: label_of(r.emotion?),
                speaker: &r.speaker,
                domain: r.domain,
            })
        })
        .collect();
    let probe = Probe {
        dim,
        n_labels: labels.len(),
        logistic: LogisticConfig {
            c: config.c,
            ..LogisticConfig::default()
        },
    };
    let mut scores = Vec::new();
    for domain in [Domain::Speech, Domain::Music] {
        let subset: Vec<&Example> = examples.iter().filter(|e| e.domain == domain).collect();
        match probe.within(&subset, config)? {
            Some((score, folds)) => {
                let rel = format!("folds/{}.csv", domain.as_str());
                let path = run.path(&rel);
                create_parent(&path)?;
                let ids: Vec<&str> = subset.iter().map(|e| e.id).collect();
                folds.write_csv(&path, &ids)?;
                run.output(rel);
                scores.push(score.named(domain, domain));
            }
            None => run.note(
                &format!("skipped_within_{}", domain.as_str()),
                "fewer than two speakers or two emotions",
            ),
        }
    }
    for (source, target) in [
        (Domain::Speech, Domain::Music),
        (Domain::Music, Domain::Speech),
    ] {
        let train: Vec<&Example> = examples.iter().filter(|e| e.domain == source).collect();
        let test: Vec<&Example> = examples.iter().filter(|e| e.domain == target).collect();
        match probe.cross(&train, &test)? {
            Some(score) => scores.push(score.named(source, target)),
            None => run.note(
                &format!("skipped_{}_to_{}", source.as_str(), target.as_str()),
                "no two shared emotions",
            ),
        }
    }
    write_tables(&mut run, &scores, &labels)?;
    let run_dir = run.dir().to_path_buf();
    run.finish()?;
    Ok(SeparabilityOutcome {
        scores,
        labels,
        run_dir,
    })
}

/// The fitted-and-scored unit: standardise, fit, predict.
struct Probe {
    dim: usize,
    n_labels: usize,
    logistic: LogisticConfig,
}

impl Probe {
    /// Pooled predictions of group folds; `None` when the domain cannot be split.
    fn within(
        &self,
        examples: &[&Example],
        config: &SeparabilityConfig,
    ) -> Result<Option<(ProbeScore, Folds)>, SeparabilityError> {
        let speakers: BTreeSet<&str> = examples.iter().map(|e| e.speaker).collect();
        let k = config.folds.min(speakers.len());
        if k < 2 || distinct_labels(examples) < 2 {
            return Ok(None);
        }
        let groups: Vec<&str> = examples.iter().map(|e| e.speaker).collect();
        let folds = Folds::group_kfold(&groups, k, config.seed)?;
        let mut pred = vec![0usize; examples.len()];
        for fold in 0..k {
            let (train, test) = folds.split(fold);
            let train: Vec<&Example> = train.iter().map(|&i| examples[i]).collect();
            let test_rows: Vec<&Example> = test.iter().map(|&i| examples[i]).collect();
            let predicted = self.fit_predict(&train, &test_rows)?;
            for (&i, p) in test.iter().zip(predicted) {
                pred[i] = p;
            }
        }
        let truth: Vec<usize> = examples.iter().map(|e| e.label).collect();
        Ok(Some((self.score(&truth, &pred, "within", k)?, folds)))
    }

    /// Trained on `train`, tested on the `test` clips whose label `train` has.
    fn cross(
        &self,
        train: &[&Example],
        test: &[&Example],
    ) -> Result<Option<ProbeScore>, SeparabilityError> {
        let known: BTreeSet<usize> = train.iter().map(|e| e.label).collect();
        let test: Vec<&Example> = test
            .iter()
            .copied()
            .filter(|e| known.contains(&e.label))
            .collect();
        if known.len() < 2 || distinct_labels(&test) < 2 {
            return Ok(None);
        }
        let pred = self.fit_predict(train, &test)?;
        let truth: Vec<usize> = test.iter().map(|e| e.label).collect();
        Ok(Some(self.score(&truth, &pred, "cross", 1)?))
    }

    fn fit_predict(&self, train: &[&Example], test: &[&Example]) -> Result<Vec<usize>, LearnError> {
        let x_train: Vec<f64> = train
            .iter()
            .flat_map(|e| e.features.iter().copied())
            .collect();
        let x_test: Vec<f64> = test
            .iter()
            .flat_map(|e| e.features.iter().copied())
            .collect();
        let y: Vec<usize> = train.iter().map(|e| e.label).collect();
        let scaler = Standardizer::fit(&x_train, train.len(), self.dim)?;
        let model = LogisticRegression::fit(
            &scaler.transform(&x_train, train.len())?,
            train.len(),
            self.dim,
            &y,
            self.n_labels,
            &self.logistic,
        )?;
        if !model.converged {
            tracing::warn!(
                "probe: logistic regression stopped after {} iterations without converging",
                model.iterations
            );
        }
        model.predict(&scaler.transform(&x_test, test.len())?, test.len())
    }

    fn score(
        &self,
        truth: &[usize],
        pred: &[usize],
        setting: &str,
        folds: usize,
    ) -> Result<ProbeScore, LearnError> {
        let ClassificationScores {
            weighted_accuracy,
            unweighted_accuracy,
            macro_f1,
            confusion,
        } = metrics::classification(truth, pred, self.n_labels)?;
        let n_labels = truth.iter().collect::<BTreeSet<_>>().len();
        Ok(ProbeScore {
            train_domain: String::new(),
            test_domain: String::new(),
            setting: setting.into(),
            folds,
            n_test: truth.len(),
            n_labels,
            weighted_accuracy,
            unweighted_accuracy,
            macro_f1,
            chance_ua: 1.0 / n_labels as f64,
            confusion,
        })
    }
}

impl ProbeScore {
    fn named(mut self, train: Domain, test: Domain) -> ProbeScore {
        self.train_domain = train.as_str().into();
        self.test_domain = test.as_str().into();
        self
    }
}

fn create_parent(path: &Path) -> Result<(), RunFolderError> {
    let dir = path.parent().expect("inside the run folder");
    std::fs::create_dir_all(dir).map_err(|source| RunFolderError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

fn distinct_labels(examples: &[&Example]) -> usize {
    examples
        .iter()
        .map(|e| e.label)
        .collect::<BTreeSet<_>>()
        .len()
}

fn write_tables(
    run: &mut RunFolder,
    scores: &[ProbeScore],
    labels: &[Emotion],
) -> Result<(), SeparabilityError> {
    let mut t = Table::new([
        "train_domain",
        "test_domain",
        "setting",
        "folds",
        "n_test",
        "n_labels",
        "wa",
        "ua",
        "macro_f1",
        "chance_ua",
    ]);
    for s in scores {
        t.push(vec![
            s.train_domain.clone().into(),
            s.test_domain.clone().into(),
            s.setting.clone().into(),
            s.folds.into(),
            s.n_test.into(),
            s.n_labels.into(),
            s.weighted_accuracy.into(),
            s.unweighted_accuracy.into(),
            s.macro_f1.into(),
            s.chance_ua.into(),
        ])?;
    }
    t.write_csv(&run.path("scores.csv"))?;
    t.write_json(&run.path("scores.json"))?;
    t.write_markdown(&run.path("scores.md"), 3)?;
    for name in ["scores.csv", "scores.json", "scores.md"] {
        run.output(name);
    }
    let names: Vec<&str> = labels.iter().map(|l| l.as_str()).collect();
    for s in scores {
        let mut c = Table::new(std::iter::once("truth \\ predicted").chain(names.iter().copied()));
        for (label, row) in names.iter().zip(&s.confusion) {
            c.push(
                std::iter::once((*label).into())
                    .chain(row.iter().map(|&v| v.into()))
                    .collect(),
            )?;
        }
        let rel = format!("confusion/{}_to_{}.csv", s.train_domain, s.test_domain);
        let path = run.path(&rel);
        create_parent(&path)?;
        c.write_csv(&path)?;
        run.output(rel);
    }
    Ok(())
}

/// What [`run_by_layer`] produced.
#[derive(Debug)]
pub struct LayerwiseOutcome {
    /// (hidden-state index, that state's probe) in ascending order.
    pub layers: Vec<(usize, SeparabilityOutcome)>,
    pub run_dir: PathBuf,
}

/// The probe on every hidden state of a cached model: clip vectors are the cache's per-state
/// `mean` (mean pooling over frames), each state probed as [`run`] does, one sub-folder
/// `layerNN/` per state, plus `by_layer.{csv,md}` and `ua_by_layer.{png,svg}`. A clip whose cache
/// entry is missing or unreadable is listed in `run.json` and left out.
pub fn run_by_layer(
    config: &SeparabilityConfig,
    manifest: &Manifest,
    cache: &EmbeddingCache,
    out: &Path,
) -> Result<LayerwiseOutcome, SeparabilityError> {
    let tag = cache.tag();
    let mut run = RunFolder::create(out, "separability-by-layer")?;
    run.set_config(
        &serde_json::json!({ "probe": config, "cache_tag": tag, "pooling": "mean" }),
        config.seed,
    );
    // Only each clip's pooled `mean` [states, dim] is decoded, not its frames.
    let mut pooled: Vec<(String, Vec<Vec<f64>>)> = Vec::new();
    for r in manifest.records.iter().filter(|r| r.emotion.is_some()) {
        let means = cache
            .read_means(&r.id)
            .map(|m| (0..m.rows).map(|layer| m.row(layer).to_vec()).collect());
        match means {
            Ok(means) => pooled.push((r.id.clone(), means)),
            Err(e) => run.fail(r.id.clone(), r.path.clone(), e.to_string()),
        }
    }
    let states = pooled.first().map_or(0, |p| p.1.len());
    if let Some((id, means)) = pooled.iter().find(|p| p.1.len() != states) {
        return Err(SeparabilityError::Features(format!(
            "clip {id} has {} hidden states in the cache, others {states}",
            means.len()
        )));
    }
    let mut layers = Vec::with_capacity(states);
    let mut summary = Table::new([
        "layer",
        "train_domain",
        "test_domain",
        "setting",
        "n_test",
        "wa",
        "ua",
        "macro_f1",
        "chance_ua",
    ]);
    for layer in 0..states {
        let rows: Vec<(String, Vec<f64>)> = pooled
            .iter()
            .map(|(id, means)| (id.clone(), means[layer].clone()))
            .collect();
        let outcome = self::run(
            config,
            manifest,
            &rows,
            &format!("{tag} state {layer} (mean-pooled)"),
            &run.path(&format!("layer{layer:02}")),
        )?;
        for s in &outcome.scores {
            summary.push(vec![
                layer.into(),
                s.train_domain.clone().into(),
                s.test_domain.clone().into(),
                s.setting.clone().into(),
                s.n_test.into(),
                s.weighted_accuracy.into(),
                s.unweighted_accuracy.into(),
                s.macro_f1.into(),
                s.chance_ua.into(),
            ])?;
        }
        run.output(format!("layer{layer:02}/run.json"));
        layers.push((layer, outcome));
    }
    summary.write_csv(&run.path("by_layer.csv"))?;
    summary.write_markdown(&run.path("by_layer.md"), 3)?;
    run.output("by_layer.csv");
    run.output("by_layer.md");
    if !layers.is_empty() {
        write_ua_chart(&mut run, &layers, tag)?;
    }
    let run_dir = run.dir().to_path_buf();
    run.finish()?;
    Ok(LayerwiseOutcome { layers, run_dir })
}

/// UA per hidden state, one line per train → test setting.
fn write_ua_chart(
    run: &mut RunFolder,
    layers: &[(usize, SeparabilityOutcome)],
    tag: &str,
) -> Result<(), SeparabilityError> {
    let mut series: Vec<emobridge_report::Series> = Vec::new();
    for (layer, outcome) in layers {
        for s in &outcome.scores {
            let label = format!("{} → {}", s.train_domain, s.test_domain);
            let point = (*layer as f64, s.unweighted_accuracy);
            match series.iter_mut().find(|x| x.label == label) {
                Some(x) => x.points.push(point),
                None => series.push(emobridge_report::Series {
                    label,
                    points: vec![point],
                }),
            }
        }
    }
    let chart = emobridge_report::LineChart {
        title: format!("Emotion probe by hidden state ({tag}, mean-pooled)"),
        x_label: "hidden state".into(),
        y_label: "unweighted accuracy".into(),
        series,
    };
    emobridge_report::write_line_chart(
        &chart,
        &run.path("ua_by_layer.png"),
        &run.path("ua_by_layer.svg"),
    )?;
    run.output("ua_by_layer.png");
    run.output("ua_by_layer.svg");
    Ok(())
}

/// Per setting (`train -> test (setting)`), the hidden state with the highest UA and that UA.
pub fn best_layers(layers: &[(usize, SeparabilityOutcome)]) -> Vec<(String, usize, f64)> {
    let mut best: Vec<(String, usize, f64)> = Vec::new();
    for (layer, outcome) in layers {
        for s in &outcome.scores {
            let key = format!("{} -> {} ({})", s.train_domain, s.test_domain, s.setting);
            match best.iter_mut().find(|b| b.0 == key) {
                Some(b) if s.unweighted_accuracy > b.2 => *b = (key, *layer, s.unweighted_accuracy),
                Some(_) => {}
                None => best.push((key, *layer, s.unweighted_accuracy)),
            }
        }
    }
    best
}
