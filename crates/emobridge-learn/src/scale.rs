//! Per-column standardisation fitted on training rows, as scikit-learn's `StandardScaler`:
//! population standard deviation (ddof 0), and a scale of 1 for constant columns (by its own
//! test for a variance at rounding level).

use serde::{Deserialize, Serialize};

use crate::{check_matrix, LearnError, Result};

/// Column means and scales of a training matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
}

impl Standardizer {
    /// Fits on `x` [rows, cols] (row-major).
    pub fn fit(x: &[f64], rows: usize, cols: usize) -> Result<Self> {
        check_matrix(x, rows, cols, "standardizer training data")?;
        if rows == 0 {
            return Err(LearnError::Input("standardizer: no training rows".into()));
        }
        let mut mean = vec![0.0; cols];
        for row in x.chunks_exact(cols) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v;
            }
        }
        mean.iter_mut().for_each(|m| *m /= rows as f64);
        // Two-pass variance: exact enough for features with large offsets.
        let mut var = vec![0.0; cols];
        for row in x.chunks_exact(cols) {
            for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (v - m) * (v - m);
            }
        }
        let n = rows as f64;
        let scale = var
            .iter()
            .zip(&mean)
            .map(|(s, m)| {
                let v = s / n;
                // scikit-learn's `_is_constant_feature`: a variance within rounding of the mean
                // counts as zero, and such a column keeps scale 1.
                let bound = n * f64::EPSILON * v + (n * m * f64::EPSILON).powi(2);
                if v <= bound {
                    1.0
                } else {
                    v.sqrt()
                }
            })
            .collect();
        Ok(Standardizer { mean, scale })
    }

    /// (x − mean) / scale for `rows` rows.
    pub fn transform(&self, x: &[f64], rows: usize) -> Result<Vec<f64>> {
        let cols = self.mean.len();
        check_matrix(x, rows, cols, "data to standardize")?;
        let mut out = x.to_vec();
        for row in out.chunks_exact_mut(cols.max(1)) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.scale) {
                *v = (*v - m) / s;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_columns_keep_unit_scale_and_nan_is_named() {
        let x = [1.0, 5.0, 3.0, 5.0];
        let s = Standardizer::fit(&x, 2, 2).unwrap();
        assert_eq!(s.mean, vec![2.0, 5.0]);
        assert_eq!(s.scale, vec![1.0, 1.0]);
        assert_eq!(s.transform(&x, 2).unwrap(), vec![-1.0, 0.0, 1.0, 0.0]);
        let err = Standardizer::fit(&[1.0, f64::NAN], 1, 2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("row 0, column 1"), "{err}");
    }
}
