//! Scores of both papers, with scikit-learn's and scipy's definitions.
//!
//! Categorical emotion: weighted accuracy (WA, plain accuracy), unweighted accuracy (UA, mean
//! per-class recall = `balanced_accuracy_score`, over the classes present in the truth), macro-F1
//! (over the labels present in truth or prediction, F1 = 0 where undefined, as `f1_score(...,
//! average="macro")`), and the confusion matrix. Continuous arousal/valence: Pearson r
//! (`scipy.stats.pearsonr`; NaN for a constant input), concordance correlation coefficient
//! CCC = 2·cov / (σ²ₓ + σ²ᵧ + (μₓ − μᵧ)²) with population moments (AVEC), and RMSE.

use serde::{Deserialize, Serialize};

use crate::{LearnError, Result};

/// Scores of a categorical prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationScores {
    /// WA: fraction of rows predicted right.
    pub weighted_accuracy: f64,
    /// UA: mean recall over the classes present in the truth.
    pub unweighted_accuracy: f64,
    pub macro_f1: f64,
    /// Counts over labels 0..n_labels: `confusion[truth][prediction]`.
    pub confusion: Vec<Vec<u64>>,
}

/// Scores `pred` against `truth` (labels in 0..n_labels).
pub fn classification(
    truth: &[usize],
    pred: &[usize],
    n_labels: usize,
) -> Result<ClassificationScores> {
    if truth.len() != pred.len() {
        return Err(LearnError::Shape(format!(
            "{} true labels but {} predictions",
            truth.len(),
            pred.len()
        )));
    }
    if truth.is_empty() {
        return Err(LearnError::TooLittleData("no rows to score".into()));
    }
    if let Some(bad) = truth.iter().chain(pred).find(|&&l| l >= n_labels) {
        return Err(LearnError::LabelOutOfRange {
            label: *bad,
            n_labels,
        });
    }
    let mut confusion = vec![vec![0u64; n_labels]; n_labels];
    for (&t, &p) in truth.iter().zip(pred) {
        confusion[t][p] += 1;
    }
    let correct: u64 = (0..n_labels).map(|k| confusion[k][k]).sum();
    let support: Vec<u64> = confusion.iter().map(|row| row.iter().sum()).collect();
    let predicted: Vec<u64> = (0..n_labels)
        .map(|k| confusion.iter().map(|r| r[k]).sum())
        .collect();
    let recalls: Vec<f64> = (0..n_labels)
        .filter(|&k| support[k] > 0)
        .map(|k| confusion[k][k] as f64 / support[k] as f64)
        .collect();
    let f1s: Vec<f64> = (0..n_labels)
        .filter(|&k| support[k] > 0 || predicted[k] > 0)
        .map(|k| {
            let tp = confusion[k][k] as f64;
            let (fp, fn_) = (predicted[k] as f64 - tp, support[k] as f64 - tp);
            let denom = 2.0 * tp + fp + fn_;
            if denom == 0.0 {
                0.0
            } else {
                2.0 * tp / denom
            }
        })
        .collect();
    Ok(ClassificationScores {
        weighted_accuracy: correct as f64 / truth.len() as f64,
        unweighted_accuracy: mean(&recalls),
        macro_f1: mean(&f1s),
        confusion,
    })
}

/// Scores of a continuous prediction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegressionScores {
    pub pearson: f64,
    pub ccc: f64,
    pub rmse: f64,
}

/// Pearson r, CCC and RMSE of `pred` against `truth`.
pub fn regression(truth: &[f64], pred: &[f64]) -> Result<RegressionScores> {
    if truth.len() != pred.len() {
        return Err(LearnError::Shape(format!(
            "{} true values but {} predictions",
            truth.len(),
            pred.len()
        )));
    }
    if truth.len() < 2 {
        return Err(LearnError::TooLittleData(format!(
            "{} rows: need at least 2",
            truth.len()
        )));
    }
    if let Some(i) = truth.iter().chain(pred).position(|v| !v.is_finite()) {
        let (which, at) = if i < truth.len() {
            ("truth", i)
        } else {
            ("prediction", i - truth.len())
        };
        return Err(LearnError::NonFinite(format!(
            "non-finite {which} at row {at}"
        )));
    }
    let n = truth.len() as f64;
    let (mt, mp) = (mean(truth), mean(pred));
    let (mut vt, mut vp, mut cov, mut se) = (0.0, 0.0, 0.0, 0.0);
    for (&t, &p) in truth.iter().zip(pred) {
        vt += (t - mt) * (t - mt);
        vp += (p - mp) * (p - mp);
        cov += (t - mt) * (p - mp);
        se += (t - p) * (t - p);
    }
    let pearson = if vt == 0.0 || vp == 0.0 {
        f64::NAN
    } else {
        (cov / (vt.sqrt() * vp.sqrt())).clamp(-1.0, 1.0)
    };
    let ccc_denominator = vt / n + vp / n + (mt - mp) * (mt - mp);
    Ok(RegressionScores {
        pearson,
        ccc: if ccc_denominator == 0.0 {
            f64::NAN
        } else {
            2.0 * cov / n / ccc_denominator
        },
        rmse: (se / n).sqrt(),
    })
}

/// CCC as the AVEC 2018 scoring script (`scripts_CES/calc_scores.py`) computes it: the
/// covariance with 1/N but the variances with 1/(N − 1). Slightly below the population-moment
/// CCC of [`regression`] for short sequences; equal in the limit.
pub fn ccc_avec(truth: &[f64], pred: &[f64]) -> Result<f64> {
    regression(truth, pred)?;
    let n = truth.len() as f64;
    let (mt, mp) = (mean(truth), mean(pred));
    let (mut vt, mut vp, mut cov) = (0.0, 0.0, 0.0);
    for (&t, &p) in truth.iter().zip(pred) {
        vt += (t - mt) * (t - mt);
        vp += (p - mp) * (p - mp);
        cov += (t - mt) * (p - mp);
    }
    let den = vt / (n - 1.0) + vp / (n - 1.0) + (mt - mp) * (mt - mp);
    Ok(if den == 0.0 {
        f64::NAN
    } else {
        2.0 * (cov / n) / den
    })
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_worked_example() {
        // truth 0 0 1 1 2, pred 0 1 1 1 1: class 2 never predicted.
        let s = classification(&[0, 0, 1, 1, 2], &[0, 1, 1, 1, 1], 4).unwrap();
        assert_eq!(s.weighted_accuracy, 0.6);
        assert!((s.unweighted_accuracy - (0.5 + 1.0 + 0.0) / 3.0).abs() < 1e-15);
        // F1: class 0 = 2/3, class 1 = 2·2/(4+2) = 2/3, class 2 = 0; label 3 absent everywhere.
        assert!((s.macro_f1 - (2.0 / 3.0 + 2.0 / 3.0) / 3.0).abs() < 1e-15);
        assert_eq!(s.confusion[0], vec![1, 1, 0, 0]);
    }

    #[test]
    fn ccc_is_one_only_for_identity_and_penalises_bias() {
        let t = [0.1, -0.3, 0.5, 0.2];
        assert!((regression(&t, &t).unwrap().ccc - 1.0).abs() < 1e-15);
        let shifted: Vec<f64> = t.iter().map(|v| v + 0.5).collect();
        let r = regression(&t, &shifted).unwrap();
        assert!((r.pearson - 1.0).abs() < 1e-12 && r.ccc < 0.5 && (r.rmse - 0.5).abs() < 1e-12);
        assert!(regression(&t, &[1.0; 4]).unwrap().pearson.is_nan());
        // Hand-computed: truth 1 2 3 4, pred 2 2 4 5 → means 2.5 / 3.25, Σdt² = 5, Σdp² = 6.75,
        // Σdt·dp = 5.5, Σ(t−p)² = 3. Pearson 5.5/√(5·6.75); population CCC
        // 2·1.375 / (1.25 + 1.6875 + 0.5625) = 0.785714…; AVEC CCC 2·1.375 / (5/3 + 2.25 + 0.5625).
        let (t4, p4) = ([1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 4.0, 5.0]);
        let s = regression(&t4, &p4).unwrap();
        assert!((s.pearson - 5.5 / (5.0f64 * 6.75).sqrt()).abs() < 1e-12);
        assert!((s.ccc - 2.75 / 3.5).abs() < 1e-12);
        assert!((s.rmse - (3.0f64 / 4.0).sqrt()).abs() < 1e-12);
        let avec = ccc_avec(&t4, &p4).unwrap();
        assert!((avec - 2.75 / (5.0 / 3.0 + 2.25 + 0.5625)).abs() < 1e-12);
        assert!(regression(&t, &[0.0, f64::NAN, 0.0, 0.0])
            .unwrap_err()
            .to_string()
            .contains("row 1"));
    }

    #[test]
    fn errors_tell_their_cause_by_variant() {
        let e = classification(&[0, 5], &[0, 1], 3).unwrap_err();
        assert!(
            matches!(
                e,
                LearnError::LabelOutOfRange {
                    label: 5,
                    n_labels: 3
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "input: label 5 outside 0..3");
        let e = classification(&[], &[], 3).unwrap_err();
        assert!(matches!(e, LearnError::TooLittleData(_)), "{e:?}");
        assert_eq!(e.to_string(), "input: no rows to score");
    }
}
