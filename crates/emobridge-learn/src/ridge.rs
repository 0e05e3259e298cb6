//! Ridge regression, scikit-learn's `Ridge(alpha, fit_intercept=True)`: minimise
//! ‖y − X·w − b‖² + α‖w‖², intercept not penalised (X and y centred first). Solved exactly by
//! Cholesky on the d×d normal equations, or on the n×n kernel form when there are fewer rows
//! than features. Several targets (arousal, valence) are fitted at once.

use serde::{Deserialize, Serialize};

use crate::linalg::{cholesky_solve, gemm};
use crate::{check_matrix, LearnError, Result};

/// A fitted ridge model for `targets` outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ridge {
    /// [features, targets] row-major.
    pub coef: Vec<f64>,
    pub intercept: Vec<f64>,
    pub n_features: usize,
    pub targets: usize,
}

impl Ridge {
    /// Fits `y` [rows, targets] on `x` [rows, cols] with penalty `alpha` ≥ 0.
    pub fn fit(
        x: &[f64],
        rows: usize,
        cols: usize,
        y: &[f64],
        targets: usize,
        alpha: f64,
    ) -> Result<Self> {
        check_matrix(x, rows, cols, "training features")?;
        check_matrix(y, rows, targets, "training targets")?;
        if !(alpha >= 0.0 && alpha.is_finite()) {
            return Err(LearnError::Config(format!(
                "ridge alpha must be ≥ 0, got {alpha}"
            )));
        }
        if rows < 2 {
            return Err(LearnError::TooLittleData(format!(
                "ridge needs at least 2 training rows, got {rows}"
            )));
        }
        let x_mean = col_means(x, rows, cols);
        let y_mean = col_means(y, rows, targets);
        let xc = centred(x, cols, &x_mean);
        let yc = centred(y, targets, &y_mean);
        let coef = if rows >= cols {
            let mut gram = vec![0.0; cols * cols];
            gemm(&mut gram, &xc, &xc, cols, rows, cols, true, false, false);
            for i in 0..cols {
                gram[i * cols + i] += alpha;
            }
            let mut rhs = vec![0.0; cols * targets];
            gemm(&mut rhs, &xc, &yc, cols, rows, targets, true, false, false);
            cholesky_solve(&mut gram, &mut rhs, cols, targets).map_err(|e| singular(alpha, e))?;
            rhs
        } else {
            let mut kernel = vec![0.0; rows * rows];
            gemm(&mut kernel, &xc, &xc, rows, cols, rows, false, true, false);
            for i in 0..rows {
                kernel[i * rows + i] += alpha;
            }
            let mut dual = yc.clone();
            cholesky_solve(&mut kernel, &mut dual, rows, targets)
                .map_err(|e| singular(alpha, e))?;
            let mut coef = vec![0.0; cols * targets];
            gemm(
                &mut coef, &xc, &dual, cols, rows, targets, true, false, false,
            );
            coef
        };
        let intercept = (0..targets)
            .map(|t| {
                y_mean[t]
                    - (0..cols)
                        .map(|j| x_mean[j] * coef[j * targets + t])
                        .sum::<f64>()
            })
            .collect();
        Ok(Ridge {
            coef,
            intercept,
            n_features: cols,
            targets,
        })
    }

    /// Predictions [rows, targets].
    pub fn predict(&self, x: &[f64], rows: usize) -> Result<Vec<f64>> {
        check_matrix(x, rows, self.n_features, "features to predict")?;
        let mut out = vec![0.0; rows * self.targets];
        gemm(
            &mut out,
            x,
            &self.coef,
            rows,
            self.n_features,
            self.targets,
            false,
            false,
            false,
        );
        for row in out.chunks_exact_mut(self.targets.max(1)) {
            for (v, b) in row.iter_mut().zip(&self.intercept) {
                *v += b;
            }
        }
        Ok(out)
    }
}

fn singular(alpha: f64, e: LearnError) -> LearnError {
    LearnError::Singular {
        alpha,
        cause: Box::new(e),
    }
}

fn col_means(x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut m = vec![0.0; cols];
    for row in x.chunks_exact(cols.max(1)) {
        for (a, v) in m.iter_mut().zip(row) {
            *a += v;
        }
    }
    m.iter_mut().for_each(|a| *a /= rows as f64);
    m
}

fn centred(x: &[f64], cols: usize, mean: &[f64]) -> Vec<f64> {
    let mut out = x.to_vec();
    for row in out.chunks_exact_mut(cols.max(1)) {
        for (v, m) in row.iter_mut().zip(mean) {
            *v -= m;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primal_and_kernel_forms_agree_and_recover_a_noiseless_fit() {
        // y = 2·x0 − x1 + 3, exactly.
        let x: Vec<f64> = (0..20).map(|i| ((i * 7 % 11) as f64) - 5.0).collect();
        let y: Vec<f64> = x.chunks(2).map(|r| 2.0 * r[0] - r[1] + 3.0).collect();
        let m = Ridge::fit(&x, 10, 2, &y, 1, 1e-9).unwrap();
        assert!((m.coef[0] - 2.0).abs() < 1e-6 && (m.coef[1] + 1.0).abs() < 1e-6);
        assert!((m.intercept[0] - 3.0).abs() < 1e-6);
        // 3 rows × 5 features: the kernel form equals the primal form.
        let x: Vec<f64> = (0..15).map(|i| (i as f64 * 0.7).sin()).collect();
        let y = vec![1.0, -1.0, 0.5];
        let k = Ridge::fit(&x, 3, 5, &y, 1, 0.3).unwrap();
        let mut gram_form = Ridge::fit(
            &[x.clone(), x.clone()].concat(),
            6,
            5,
            &[y.clone(), y.clone()].concat(),
            1,
            0.6,
        )
        .unwrap();
        // Duplicating every row doubles XᵀX and Xᵀy: alpha 0.6 on the doubled data ≡ 0.3 here.
        gram_form.n_features = 5;
        for (a, b) in k.coef.iter().zip(&gram_form.coef) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
        let err = Ridge::fit(&x, 3, 5, &y, 1, -1.0).unwrap_err().to_string();
        assert!(err.contains("alpha"), "{err}");
    }
}
