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
use emobridge_fad::cache::{clip_path, CachedClip};
use emobridge_learn::metrics::{self, ClassificationScores};
use emobridge_learn::{LearnError, LogisticConfig, LogisticRegression, Standardizer};
use emobridge_report::{ReportError, Table};
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

/// Runs the probe on `features` (clip id → row, all rows equally long) and writes `out`, with
/// the confusion heatmaps and the transfer matrix as figures.
pub fn run(
    config: &SeparabilityConfig,
    manifest: &Manifest,
    features: &[(String, Vec<f64>)],
    feature_set: &str,
    out: &Path,
) -> Result<SeparabilityOutcome, SeparabilityError> {
    run_with(config, manifest, features, feature_set, out, true)
}

fn run_with(
    config: &SeparabilityConfig,
    manifest: &Manifest,
    features: &[(String, Vec<f64>)],
    feature_set: &str,
    out: &Path,
    figures: bool,
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
    score_headlines(&mut run, &scores, feature_set);
    if figures {
        write_probe_figures(&mut run, &scores, &labels, "", feature_set)?;
    }
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
    run.table(
        "scores.csv",
        "Probe scores by setting",
        "One row per setting: within a domain (speaker-independent folds) or trained on one domain \
         and tested on the other.\nUA is the mean per-emotion recall; compare it with chance_ua, one \
         over the number of emotions.",
    );
    for name in ["scores.json", "scores.md"] {
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
    cache_root: &Path,
    tag: &str,
    out: &Path,
) -> Result<LayerwiseOutcome, SeparabilityError> {
    let mut run = RunFolder::create(out, "separability-by-layer")?;
    run.set_config(
        &serde_json::json!({ "probe": config, "cache_tag": tag, "pooling": "mean" }),
        config.seed,
    );
    // Only each clip's pooled `mean` [states, dim] is decoded, not its frames.
    let mut pooled: Vec<(String, Vec<Vec<f64>>)> = Vec::new();
    for r in manifest.records.iter().filter(|r| r.emotion.is_some()) {
        let means = CachedClip::open(&clip_path(cache_root, tag, &r.id)).and_then(|clip| {
            (0..clip.shape().states)
                .map(|layer| clip.layer_mean(layer))
                .collect::<Result<Vec<_>, _>>()
        });
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
        let outcome = run_with(
            config,
            manifest,
            &rows,
            &format!("{tag} state {layer} (mean-pooled)"),
            &run.path(&format!("layer{layer:02}")),
            false,
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
        write_ua_chart(&mut run, &layers, tag, config.seed)?;
        layer_headlines(&mut run, &layers, tag)?;
    }
    let run_dir = run.dir().to_path_buf();
    run.finish()?;
    Ok(LayerwiseOutcome { layers, run_dir })
}

/// UA per hidden state, one line per train → test setting, with 95% bootstrap intervals over
/// the test clips and chance as a dashed line; also the same numbers as a layer × setting table.
fn write_ua_chart(
    run: &mut RunFolder,
    layers: &[(usize, SeparabilityOutcome)],
    tag: &str,
    seed: u64,
) -> Result<(), SeparabilityError> {
    let mut series: Vec<emobridge_report::Series> = Vec::new();
    let mut bands: Vec<emobridge_report::Band> = Vec::new();
    for (layer, outcome) in layers {
        for (i, s) in outcome.scores.iter().enumerate() {
            let label = setting_label(s);
            let point = (*layer as f64, s.unweighted_accuracy);
            let (lo, hi) = ua_interval(&s.confusion, 200, seed ^ ((*layer as u64) << 8) ^ i as u64)
                .unwrap_or((f64::NAN, f64::NAN));
            match series.iter_mut().position(|x| x.label == label) {
                Some(k) => {
                    series[k].points.push(point);
                    bands[k].points.push((point.0, lo, hi));
                }
                None => {
                    series.push(emobridge_report::Series {
                        label: label.clone(),
                        points: vec![point],
                    });
                    bands.push(emobridge_report::Band {
                        label,
                        points: vec![(point.0, lo, hi)],
                    });
                }
            }
        }
    }
    let chance = layers
        .first()
        .and_then(|(_, o)| o.scores.first())
        .map(|s| s.chance_ua);
    let chart = emobridge_report::LineChart {
        title: format!("Emotion probe by layer ({tag}, mean-pooled)"),
        x_label: emobridge_report::plot::LAYER_AXIS.into(),
        y_label: "unweighted accuracy (UA)".into(),
        series: series.clone(),
    };
    let extras = emobridge_report::ChartExtras {
        bands: bands.clone(),
        reference: chance.map(|c| (c, format!("chance ({})", fmt3(c)))),
        band_label: "95% bootstrap interval".into(),
    };
    emobridge_report::write_line_chart_with(
        &chart,
        &extras,
        &run.path("ua_by_layer.png"),
        &run.path("ua_by_layer.svg"),
    )?;
    run.figure(
        "ua_by_layer.svg",
        "UA by layer, within and across domains",
        "Unweighted accuracy of a linear probe on each layer's mean-pooled output; shaded bands are \
         95% bootstrap intervals over the test clips, the dashed line is chance.\nThe peak marks the \
         layer whose output carries the most linearly decodable emotion; the cross-domain lines show \
         how much of it transfers between speech and music.",
    );
    run.output("ua_by_layer.png");
    let mut t = Table::new(
        std::iter::once("layer".to_string()).chain(series.iter().flat_map(|s| {
            [
                format!("{} UA", s.label),
                format!("{} lower", s.label),
                format!("{} upper", s.label),
            ]
        })),
    );
    for (layer, _) in layers {
        let mut row: Vec<emobridge_report::Cell> = vec![(*layer).into()];
        for (s, b) in series.iter().zip(&bands) {
            let at = s.points.iter().position(|p| p.0 == *layer as f64);
            row.push(at.map(|k| s.points[k].1).into());
            row.push(at.map(|k| b.points[k].1).into());
            row.push(at.map(|k| b.points[k].2).into());
        }
        t.push(row)?;
    }
    t.write_csv(&run.path("ua_by_layer.csv"))?;
    run.table(
        "ua_by_layer.csv",
        "UA by layer",
        "The numbers behind the chart: UA per layer and setting (train → test) with its 95% \
         bootstrap interval.\nLayer 0 is the CNN feature encoder's output; higher layers are \
         transformer blocks.",
    );
    Ok(())
}

/// "speech → music" and the like.
fn setting_label(s: &ProbeScore) -> String {
    format!("{} → {}", s.train_domain, s.test_domain)
}

fn fmt3(v: f64) -> String {
    emobridge_report::table::format_significant(v, 3)
}

/// UA of a confusion matrix (rows truth): the mean recall over the rows that have clips.
fn ua_of(confusion: &[Vec<u64>]) -> f64 {
    let recalls: Vec<f64> = confusion
        .iter()
        .enumerate()
        .filter_map(|(r, row)| {
            let n: u64 = row.iter().sum();
            (n > 0).then(|| row.get(r).copied().unwrap_or(0) as f64 / n as f64)
        })
        .collect();
    recalls.iter().sum::<f64>() / recalls.len().max(1) as f64
}

/// 95% percentile bootstrap interval of UA, resampling the test clips (the cells of the
/// confusion matrix) with replacement; `None` without clips.
fn ua_interval(confusion: &[Vec<u64>], replicates: usize, seed: u64) -> Option<(f64, f64)> {
    use rand::{Rng, SeedableRng};
    let k = confusion.len();
    let cells: Vec<(usize, usize)> = (0..k)
        .flat_map(|r| (0..confusion[r].len()).map(move |c| (r, c)))
        .filter(|&(r, c)| confusion[r][c] > 0)
        .collect();
    let mut cumulative = Vec::with_capacity(cells.len());
    let mut total = 0u64;
    for &(r, c) in &cells {
        total += confusion[r][c];
        cumulative.push(total);
    }
    if total == 0 || replicates < 2 {
        return None;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut uas = Vec::with_capacity(replicates);
    let mut m = vec![vec![0u64; k]; k];
    for _ in 0..replicates {
        m.iter_mut()
            .for_each(|row| row.iter_mut().for_each(|v| *v = 0));
        for _ in 0..total {
            let u = rng.random_range(0..total);
            let (r, c) = cells[cumulative.partition_point(|&x| x <= u)];
            m[r][c] += 1;
        }
        uas.push(ua_of(&m));
    }
    uas.sort_by(f64::total_cmp);
    let at = |q: f64| uas[((q * (replicates - 1) as f64).round() as usize).min(replicates - 1)];
    Some((at(0.025), at(0.975)))
}

/// One headline per setting: its UA against chance.
fn score_headlines(run: &mut RunFolder, scores: &[ProbeScore], feature_set: &str) {
    for s in scores {
        let (key, text) = if s.setting == "within" {
            (
                format!("ua_within_{}", s.train_domain),
                format!(
                    "Within {}, a linear probe on {feature_set} recognises emotion with UA {} \
                     (chance {}).",
                    s.train_domain,
                    fmt3(s.unweighted_accuracy),
                    fmt3(s.chance_ua)
                ),
            )
        } else {
            (
                format!("ua_{}_to_{}", s.train_domain, s.test_domain),
                format!(
                    "Trained on {} and tested on {}, the probe reaches UA {} (chance {}).",
                    s.train_domain,
                    s.test_domain,
                    fmt3(s.unweighted_accuracy),
                    fmt3(s.chance_ua)
                ),
            )
        };
        run.headline(
            &key,
            serde_json::json!({ "ua": s.unweighted_accuracy, "chance": s.chance_ua }),
            text,
        );
    }
}

/// Per setting, the layer with the highest UA.
fn layer_headlines(
    run: &mut RunFolder,
    layers: &[(usize, SeparabilityOutcome)],
    tag: &str,
) -> Result<(), SeparabilityError> {
    let mut best: Vec<(&ProbeScore, usize)> = Vec::new();
    for (layer, outcome) in layers {
        for s in &outcome.scores {
            match best
                .iter_mut()
                .find(|(b, _)| setting_label(b) == setting_label(s))
            {
                Some(b) if s.unweighted_accuracy > b.0.unweighted_accuracy => *b = (s, *layer),
                Some(_) => {}
                None => best.push((s, *layer)),
            }
        }
    }
    for (s, layer) in &best {
        let name = emobridge_report::plot::layer_name(*layer);
        let (key, text) = if s.setting == "within" {
            (
                format!("best_layer_{}", s.train_domain),
                format!(
                    "{} emotion is best decoded from {tag} at {name}: UA {} (chance {}).",
                    capitalise(&s.train_domain),
                    fmt3(s.unweighted_accuracy),
                    fmt3(s.chance_ua)
                ),
            )
        } else {
            (
                format!("best_layer_{}_to_{}", s.train_domain, s.test_domain),
                format!(
                    "{} → {} transfer peaks at {name}: UA {} (chance {}).",
                    capitalise(&s.train_domain),
                    s.test_domain,
                    fmt3(s.unweighted_accuracy),
                    fmt3(s.chance_ua)
                ),
            )
        };
        run.headline(
            &key,
            serde_json::json!({ "layer": layer, "ua": s.unweighted_accuracy, "chance": s.chance_ua }),
            text,
        );
    }
    // The figures of the layer best within speech (else the first setting's best).
    let pick = best
        .iter()
        .find(|(s, _)| s.setting == "within" && s.train_domain == "speech")
        .or(best.first())
        .map(|b| b.1);
    if let Some((layer, outcome)) = pick.and_then(|l| layers.iter().find(|(x, _)| *x == l)) {
        write_probe_figures(
            run,
            &outcome.scores,
            &outcome.labels,
            "best_layer/",
            &format!("{tag}, {}", emobridge_report::plot::layer_name(*layer)),
        )?;
    }
    Ok(())
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// The transfer matrix (UA, train domain × test domain) and a confusion heatmap per setting
/// (row-normalised: the share of each true emotion's clips given each prediction), registered
/// as figures; `prefix` is prepended to the file names, `what` names the representation.
fn write_probe_figures(
    run: &mut RunFolder,
    scores: &[ProbeScore],
    labels: &[Emotion],
    prefix: &str,
    what: &str,
) -> Result<(), SeparabilityError> {
    let domains = ["speech", "music"];
    let values: Vec<Vec<f64>> = domains
        .iter()
        .map(|train| {
            domains
                .iter()
                .map(|test| {
                    scores
                        .iter()
                        .find(|s| s.train_domain == *train && s.test_domain == *test)
                        .map_or(f64::NAN, |s| s.unweighted_accuracy)
                })
                .collect()
        })
        .collect();
    let chance = scores.first().map_or(f64::NAN, |s| s.chance_ua);
    let stem = format!("{prefix}transfer_matrix");
    create_parent(&run.path(&format!("{stem}.svg")))?;
    emobridge_report::write_heatmap(
        &emobridge_report::Heatmap {
            title: format!("Transfer matrix ({what})"),
            row_labels: domains.iter().map(|d| d.to_string()).collect(),
            col_labels: domains.iter().map(|d| d.to_string()).collect(),
            values,
            row_axis: "trained on".into(),
            col_axis: "tested on".into(),
            value_label: "UA".into(),
        },
        &run.path(&format!("{stem}.png")),
        &run.path(&format!("{stem}.svg")),
    )?;
    run.figure(
        format!("{stem}.svg"),
        format!("Transfer matrix ({what})"),
        format!(
            "UA of a probe trained on the row's domain and tested on the column's; the diagonal is \
             within a domain (speaker-independent folds), chance is about {}.\nOff-diagonal cells \
             close to the diagonal mean the emotion code transfers between speech and music.",
            fmt3(chance)
        ),
    );
    run.output(format!("{stem}.png"));
    for s in scores {
        let rows: Vec<usize> = (0..labels.len())
            .filter(|&r| {
                s.confusion
                    .get(r)
                    .is_some_and(|row| row.iter().sum::<u64>() > 0)
            })
            .collect();
        let values = rows
            .iter()
            .map(|&r| {
                let n: u64 = s.confusion[r].iter().sum();
                s.confusion[r]
                    .iter()
                    .map(|&v| v as f64 / n as f64)
                    .collect()
            })
            .collect();
        let stem = format!("{prefix}confusion/{}_to_{}", s.train_domain, s.test_domain);
        create_parent(&run.path(&format!("{stem}.svg")))?;
        let title = format!("Confusion, {} ({what})", setting_label(s));
        emobridge_report::write_heatmap(
            &emobridge_report::Heatmap {
                title: title.clone(),
                row_labels: rows
                    .iter()
                    .map(|&r| labels[r].as_str().to_string())
                    .collect(),
                col_labels: labels.iter().map(|l| l.as_str().to_string()).collect(),
                values,
                row_axis: "true emotion".into(),
                col_axis: "predicted emotion".into(),
                value_label: "share of row".into(),
            },
            &run.path(&format!("{stem}.png")),
            &run.path(&format!("{stem}.svg")),
        )?;
        run.figure(
            format!("{stem}.svg"),
            title,
            format!(
                "Rows are the true emotion of the {} test clips, columns the predicted one; each \
                 cell is the share of its row (UA {}).\nA bright diagonal means the emotions are \
                 recognised; bright cells off it are the confusions.",
                s.test_domain,
                fmt3(s.unweighted_accuracy)
            ),
        );
        run.output(format!("{stem}.png"));
    }
    Ok(())
}

#[cfg(test)]
mod report_tests {
    use super::*;

    #[test]
    fn ua_and_its_bootstrap_interval() {
        let confusion = vec![vec![8, 2, 0], vec![1, 9, 0], vec![0, 5, 5]];
        assert!((ua_of(&confusion) - (0.8 + 0.9 + 0.5) / 3.0).abs() < 1e-12);
        let (lo, hi) = ua_interval(&confusion, 300, 1).unwrap();
        assert!(
            lo < ua_of(&confusion) && ua_of(&confusion) < hi,
            "{lo} {hi}"
        );
        assert!(lo > 0.4 && hi < 0.95, "{lo} {hi}");
        assert_eq!(
            ua_interval(&confusion, 300, 1),
            ua_interval(&confusion, 300, 1)
        );
        assert_eq!(ua_interval(&[vec![0, 0], vec![0, 0]], 300, 1), None);
    }
}
