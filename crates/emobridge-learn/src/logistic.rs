//! L2-regularised logistic regression: multinomial (softmax) for three or more classes, binomial
//! (sigmoid, one coefficient vector) for two — the model and objective of scikit-learn's
//! `LogisticRegression(penalty="l2", solver="lbfgs")`:
//!
//! minimise (1/n)·Σᵢ cross-entropyᵢ + 1/(2·C·n)·‖W‖², intercepts not penalised.
//!
//! With sample weights wᵢ (e.g. balanced class weights) n becomes Σᵢ wᵢ and each cross-entropy
//! term is weighted, as scikit-learn does for `class_weight` / `sample_weight`.
//!
//! The objective is strictly convex in W, so the coefficients are unique and comparable with
//! scikit-learn's; multinomial intercepts are unique up to a common shift and are returned
//! centred (summing to zero), which is also what scikit-learn's zero start leaves them at.

use serde::{Deserialize, Serialize};

use crate::lbfgs::{minimize, LbfgsConfig};
use crate::linalg::gemm;
use crate::{check_matrix, LearnError, Result};

/// Fitting settings; defaults are scikit-learn's except the tighter tolerance and larger
/// iteration limit (its `max_iter=100` often stops short on standardised SSL features).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogisticConfig {
    /// Inverse regularisation strength (scikit-learn's `C`, default 1).
    pub c: f64,
    /// Learn intercepts (default true).
    pub fit_intercept: bool,
    /// Solver settings (default gtol 1e-6 on the objective above, 1000 iterations).
    pub solver: LbfgsConfig,
}

impl Default for LogisticConfig {
    fn default() -> Self {
        LogisticConfig {
            c: 1.0,
            fit_intercept: true,
            solver: LbfgsConfig {
                gtol: 1e-6,
                max_iter: 1000,
                memory: 10,
            },
        }
    }
}

/// A fitted model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogisticRegression {
    /// Label of each output, ascending: the labels seen in training.
    pub classes: Vec<usize>,
    /// Labels the caller's label space has (outputs of `predict_proba`).
    pub n_labels: usize,
    /// [outputs, features] row-major; one row for two classes (the second class's score).
    pub coef: Vec<f64>,
    /// One per row of `coef`.
    pub intercept: Vec<f64>,
    pub n_features: usize,
    pub iterations: usize,
    pub converged: bool,
}

impl LogisticRegression {
    /// Fits on `x` [rows, cols] (row-major) with labels `y` in `0..n_labels`.
    pub fn fit(
        x: &[f64],
        rows: usize,
        cols: usize,
        y: &[usize],
        n_labels: usize,
        cfg: &LogisticConfig,
    ) -> Result<Self> {
        Self::fit_weighted(x, rows, cols, y, n_labels, None, cfg)
    }

    /// [`LogisticRegression::fit`] with one non-negative weight per row.
    pub fn fit_weighted(
        x: &[f64],
        rows: usize,
        cols: usize,
        y: &[usize],
        n_labels: usize,
        sample_weight: Option<&[f64]>,
        cfg: &LogisticConfig,
    ) -> Result<Self> {
        check_matrix(x, rows, cols, "training features")?;
        if let Some(w) = sample_weight {
            if w.len() != rows || w.iter().any(|v| !(v.is_finite() && *v >= 0.0)) {
                return Err(LearnError::SampleWeights { rows });
            }
        }
        let weight_sum = sample_weight.map_or(rows as f64, |w| w.iter().sum());
        if !(weight_sum > 0.0) {
            return Err(LearnError::ZeroSampleWeights);
        }
        if y.len() != rows {
            return Err(LearnError::LabelCount {
                labels: y.len(),
                rows,
            });
        }
        if let Some(bad) = y.iter().find(|&&l| l >= n_labels) {
            return Err(LearnError::LabelOutOfRange {
                label: *bad,
                n_labels,
            });
        }
        if !(cfg.c > 0.0 && cfg.c.is_finite()) {
            return Err(LearnError::Config(format!(
                "C must be positive, got {}",
                cfg.c
            )));
        }
        let mut classes: Vec<usize> = y.to_vec();
        classes.sort_unstable();
        classes.dedup();
        if classes.len() < 2 {
            return Err(LearnError::TooFewClasses {
                classes: classes.len(),
            });
        }
        let mut index = vec![usize::MAX; n_labels];
        for (k, &c) in classes.iter().enumerate() {
            index[c] = k;
        }
        let targets: Vec<usize> = y.iter().map(|&l| index[l]).collect();
        let outputs = if classes.len() == 2 { 1 } else { classes.len() };
        let problem = Problem {
            x,
            rows,
            cols,
            targets: &targets,
            weights: sample_weight,
            weight_sum,
            outputs,
            penalty: 1.0 / (cfg.c * weight_sum),
            fit_intercept: cfg.fit_intercept,
        };
        let params = outputs * cols + if cfg.fit_intercept { outputs } else { 0 };
        let result = minimize(
            |w, g| problem.loss_grad(w, g),
            vec![0.0; params],
            &cfg.solver,
        )?;
        let coef = result.x[..outputs * cols].to_vec();
        let mut intercept = if cfg.fit_intercept {
            result.x[outputs * cols..].to_vec()
        } else {
            vec![0.0; outputs]
        };
        if outputs > 1 {
            let shift = intercept.iter().sum::<f64>() / outputs as f64;
            intercept.iter_mut().for_each(|b| *b -= shift);
        }
        Ok(LogisticRegression {
            classes,
            n_labels,
            coef,
            intercept,
            n_features: cols,
            iterations: result.iterations,
            converged: result.converged,
        })
    }

    /// Class probabilities [rows, n_labels]; labels unseen in training get 0.
    pub fn predict_proba(&self, x: &[f64], rows: usize) -> Result<Vec<f64>> {
        let d = self.n_features;
        check_matrix(x, rows, d, "features to predict")?;
        let mut out = vec![0.0; rows * self.n_labels];
        let mut scores = vec![0.0; self.intercept.len()];
        for (row, probs) in x
            .chunks_exact(d.max(1))
            .take(rows)
            .zip(out.chunks_exact_mut(self.n_labels))
        {
            for (k, s) in scores.iter_mut().enumerate() {
                *s = self.intercept[k] + dot(&self.coef[k * d..(k + 1) * d], row);
            }
            if scores.len() == 1 {
                let p1 = sigmoid(scores[0]);
                probs[self.classes[0]] = 1.0 - p1;
                probs[self.classes[1]] = p1;
            } else {
                let lse = log_sum_exp(&scores);
                for (k, &c) in self.classes.iter().enumerate() {
                    probs[c] = (scores[k] - lse).exp();
                }
            }
        }
        Ok(out)
    }

    /// Most probable label per row (ties: the lowest label, as numpy's argmax).
    pub fn predict(&self, x: &[f64], rows: usize) -> Result<Vec<usize>> {
        let p = self.predict_proba(x, rows)?;
        Ok(p.chunks_exact(self.n_labels)
            .map(|row| {
                row.iter()
                    .enumerate()
                    .fold((0, f64::NEG_INFINITY), |best, (i, &v)| {
                        if v > best.1 {
                            (i, v)
                        } else {
                            best
                        }
                    })
                    .0
            })
            .collect())
    }
}

/// The data and settings of one fit.
struct Problem<'a> {
    x: &'a [f64],
    rows: usize,
    cols: usize,
    /// Output index of each row's class.
    targets: &'a [usize],
    /// Per-row weights (None: all 1).
    weights: Option<&'a [f64]>,
    /// Σ weights (n when unweighted).
    weight_sum: f64,
    /// 1 (binomial) or the class count (multinomial).
    outputs: usize,
    /// 1/(C·Σw).
    penalty: f64,
    fit_intercept: bool,
}

impl Problem<'_> {
    /// Objective and gradient at `w` = [coef (outputs × cols), intercepts]: scores = X·Wᵀ and
    /// the coefficient gradient Rᵀ·X as two matrix products (the cost of the fit).
    fn loss_grad(&self, w: &[f64], grad: &mut [f64]) -> f64 {
        let (d, k_out, n) = (self.cols, self.outputs, self.rows);
        let mut scores = vec![0.0; n * k_out];
        gemm(
            &mut scores,
            self.x,
            &w[..k_out * d],
            n,
            d,
            k_out,
            false,
            true,
            false,
        );
        let mut loss = 0.0;
        for (i, (row, &target)) in scores.chunks_exact_mut(k_out).zip(self.targets).enumerate() {
            if self.fit_intercept {
                for (s, b) in row.iter_mut().zip(&w[k_out * d..]) {
                    *s += b;
                }
            }
            let sw = self.weights.map_or(1.0, |v| v[i]);
            if k_out == 1 {
                // log(1 + e^z) − y·z, written to stay finite for large |z|.
                let z = row[0];
                let y = target as f64; // output 0 ↔ class index 1
                loss += sw * (softplus(z) - y * z);
                row[0] = sw * (sigmoid(z) - y);
            } else {
                let lse = log_sum_exp(row);
                loss += sw * (lse - row[target]);
                for (k, s) in row.iter_mut().enumerate() {
                    *s = sw * ((*s - lse).exp() - if k == target { 1.0 } else { 0.0 });
                }
            }
        }
        // `scores` now holds the weighted residuals R [n, outputs].
        gemm(
            &mut grad[..k_out * d],
            &scores,
            self.x,
            k_out,
            n,
            d,
            true,
            false,
            false,
        );
        if self.fit_intercept {
            let gb = &mut grad[k_out * d..];
            gb.iter_mut().for_each(|g| *g = 0.0);
            for row in scores.chunks_exact(k_out) {
                for (g, r) in gb.iter_mut().zip(row) {
                    *g += r;
                }
            }
        }
        let total = self.weight_sum;
        let mut reg = 0.0;
        for (i, g) in grad.iter_mut().enumerate() {
            *g /= total;
            if i < k_out * d {
                *g += self.penalty * w[i];
                reg += w[i] * w[i];
            }
        }
        loss / total + 0.5 * self.penalty * reg
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn log_sum_exp(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central differences agree with the analytic gradient, binomial and multinomial.
    #[test]
    fn gradient_matches_finite_differences() {
        let x: Vec<f64> = (0..40)
            .map(|i| ((i * 37 % 17) as f64 - 8.0) / 5.0)
            .collect();
        for (targets, outputs) in [
            (vec![0, 1, 1, 0, 1, 0, 0, 1, 1, 1], 1),
            (vec![0, 2, 1, 0, 2, 1, 1, 0, 2, 2], 3),
        ] {
            let p = Problem {
                x: &x,
                rows: 10,
                cols: 4,
                targets: &targets,
                weights: Some(&[1.0, 0.5, 2.0, 1.0, 1.0, 0.3, 1.0, 1.0, 1.5, 1.0]),
                weight_sum: 10.3,
                outputs,
                penalty: 0.3,
                fit_intercept: true,
            };
            let w: Vec<f64> = (0..outputs * 5).map(|i| (i as f64 * 0.37).sin()).collect();
            let mut g = vec![0.0; w.len()];
            p.loss_grad(&w, &mut g);
            for i in 0..w.len() {
                let (mut hi, mut lo) = (w.clone(), w.clone());
                hi[i] += 1e-6;
                lo[i] -= 1e-6;
                let mut scratch = vec![0.0; w.len()];
                let num = (p.loss_grad(&hi, &mut scratch) - p.loss_grad(&lo, &mut scratch)) / 2e-6;
                assert!((num - g[i]).abs() < 1e-7, "param {i}: {num} vs {}", g[i]);
            }
        }
    }

    #[test]
    fn bad_input_is_refused_with_the_reason() {
        let cfg = LogisticConfig::default();
        let err = LogisticRegression::fit(&[0.0, 1.0], 2, 1, &[1, 1], 2, &cfg).unwrap_err();
        assert!(err.to_string().contains("1 class"), "{err}");
        let err =
            LogisticRegression::fit(&[0.0, f64::INFINITY], 2, 1, &[0, 1], 2, &cfg).unwrap_err();
        assert!(err.to_string().contains("row 1"), "{err}");
        let err = LogisticRegression::fit(&[0.0, 1.0], 2, 1, &[0, 5], 2, &cfg).unwrap_err();
        assert!(err.to_string().contains("label 5"), "{err}");
    }
}
