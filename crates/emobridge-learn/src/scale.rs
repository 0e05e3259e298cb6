//! Per-column standardisation fitted on training rows, as scikit-learn's `StandardScaler`:
//! population standard deviation (ddof 0), and a scale of 1 for constant columns (by its own
//! test for a variance at rounding level).
//!
//! [`GroupStandardizer`] does the same per group of rows (a domain, a speaker, a corpus): each
//! group z-scored with its own rows' feature moments — statistics of features only, never of
//! labels, which is why applying it to a test group is legitimate.

use serde::{Deserialize, Serialize};

use crate::{check_matrix, LearnError, Result};

/// Column means and scales of a training matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    /// Columns found constant (scale kept at 1).
    #[serde(default)]
    pub constant: Vec<bool>,
}

impl Standardizer {
    /// Fits on `x` [rows, cols] (row-major).
    pub fn fit(x: &[f64], rows: usize, cols: usize) -> Result<Self> {
        check_matrix(x, rows, cols, "standardizer training data")?;
        if rows == 0 {
            return Err(LearnError::TooLittleData(
                "standardizer: no training rows".into(),
            ));
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
        let constant: Vec<bool> = var
            .iter()
            .zip(&mean)
            .map(|(s, m)| {
                let v = s / n;
                // scikit-learn's `_is_constant_feature`: a variance within rounding of the mean
                // counts as zero, and such a column keeps scale 1.
                let bound = n * f64::EPSILON * v + (n * m * f64::EPSILON).powi(2);
                v <= bound
            })
            .collect();
        let scale = var
            .iter()
            .zip(&constant)
            .map(|(s, &c)| if c { 1.0 } else { (s / n).sqrt() })
            .collect();
        Ok(Standardizer {
            mean,
            scale,
            constant,
        })
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

/// One [`Standardizer`] per group of rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupStandardizer {
    /// (group name, its standardiser), in first-seen order.
    pub groups: Vec<(String, Standardizer)>,
}

impl GroupStandardizer {
    /// Fits one standardiser per distinct value of `groups` (one name per row).
    pub fn fit(x: &[f64], rows: usize, cols: usize, groups: &[&str]) -> Result<Self> {
        check_matrix(x, rows, cols, "standardizer training data")?;
        if groups.len() != rows {
            return Err(LearnError::GroupCount {
                groups: groups.len(),
                rows,
            });
        }
        let mut names: Vec<&str> = Vec::new();
        for g in groups {
            if !names.contains(g) {
                names.push(g);
            }
        }
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let sub: Vec<f64> = x
                .chunks_exact(cols.max(1))
                .zip(groups)
                .filter(|(_, g)| **g == name)
                .flat_map(|(row, _)| row.iter().copied())
                .collect();
            let n = sub.len() / cols.max(1);
            out.push((name.to_string(), Standardizer::fit(&sub, n, cols)?));
        }
        Ok(GroupStandardizer { groups: out })
    }

    /// Z-scores each row with its group's statistics; a group not seen in fitting is an error.
    pub fn transform(&self, x: &[f64], rows: usize, groups: &[&str]) -> Result<Vec<f64>> {
        let cols = self.groups.first().map_or(0, |g| g.1.mean.len());
        check_matrix(x, rows, cols, "data to standardize")?;
        if groups.len() != rows {
            return Err(LearnError::GroupCount {
                groups: groups.len(),
                rows,
            });
        }
        let mut out = x.to_vec();
        for (row, g) in out.chunks_exact_mut(cols.max(1)).zip(groups) {
            let s = &self
                .groups
                .iter()
                .find(|(name, _)| name == g)
                .ok_or_else(|| LearnError::UnknownGroup {
                    group: g.to_string(),
                })?
                .1;
            for ((v, m), sc) in row.iter_mut().zip(&s.mean).zip(&s.scale) {
                *v = (*v - m) / sc;
            }
        }
        Ok(out)
    }

    /// Columns constant in at least one group, ascending.
    pub fn constant_columns(&self) -> Vec<usize> {
        let cols = self.groups.first().map_or(0, |g| g.1.mean.len());
        (0..cols)
            .filter(|&c| self.groups.iter().any(|(_, s)| s.constant[c]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_group_is_z_scored_on_its_own_rows() {
        let x = [1.0, 3.0, 10.0, 30.0, 5.0, 7.0];
        let g = GroupStandardizer::fit(&x, 3, 2, &["a", "b", "a"]).unwrap();
        let z = g.transform(&x, 3, &["a", "b", "a"]).unwrap();
        assert_eq!(z, vec![-1.0, -1.0, 0.0, 0.0, 1.0, 1.0]);
        assert_eq!(g.constant_columns(), vec![0, 1], "group b has one row");
        let err = g.transform(&x[..2], 1, &["c"]).unwrap_err().to_string();
        assert!(err.contains("`c`"), "{err}");
    }

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
