//! FAD-∞ (Chung et al.'s extrapolation as implemented by fadtk 1.1.0 `score_inf`).
//!
//! The baseline statistics are used whole; the evaluation rows are pooled (N rows) and, for each
//! `n` in `int(linspace(min_n, N, steps))`, `n` rows are drawn **with replacement**, their mean and
//! covariance taken and `FD(baseline, sample)` computed. A least-squares line
//! `FD = slope · (1/n) + intercept` is fitted; FAD-∞ is the intercept, reported with the slope,
//! R² and the points. When N < `min_n` the grid runs downwards from `min_n` (oversampling), as in
//! fadtk. fadtk draws with an unseeded global generator; here the draws come from ChaCha8 seeded
//! by `seed`, so a run is reproducible.

use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::frechet::{FrechetOptions, PreparedGaussian};
use crate::stats::{Element, Gaussian};
use crate::{FadError, Result};

/// Settings of FAD-∞; defaults are fadtk's (25 steps from 500 rows) with seed 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct FadInfinityConfig {
    /// Number of sample sizes. Default 25.
    pub steps: usize,
    /// Smallest sample size. Default 500.
    pub min_n: usize,
    /// Seed of the row draws. Default 0.
    pub seed: u64,
    pub options: FrechetOptions,
}

impl Default for FadInfinityConfig {
    fn default() -> Self {
        FadInfinityConfig {
            steps: 25,
            min_n: 500,
            seed: 0,
            options: FrechetOptions::default(),
        }
    }
}

/// One point of the extrapolation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FadInfinityPoint {
    pub n: usize,
    pub distance: f64,
}

/// FAD-∞ and its fit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FadInfinity {
    /// The intercept of the fit: the distance extrapolated to infinitely many samples.
    pub value: f64,
    pub slope: f64,
    pub r2: f64,
    pub points: Vec<FadInfinityPoint>,
    pub seed: u64,
}

/// The sample sizes `int(numpy.linspace(min_n, max_n, steps))`.
pub fn sample_sizes(min_n: usize, max_n: usize, steps: usize) -> Vec<usize> {
    match steps {
        0 => Vec::new(),
        1 => vec![min_n],
        _ => {
            let step = (max_n as f64 - min_n as f64) / (steps - 1) as f64;
            (0..steps)
                .map(|i| {
                    if i == steps - 1 {
                        max_n
                    } else {
                        (min_n as f64 + i as f64 * step) as usize
                    }
                })
                .collect()
        }
    }
}

/// FAD-∞ of the evaluation rows `eval` ([N, D]) against `baseline`.
pub fn fad_infinity<T: Element>(
    baseline: &Gaussian,
    eval: ArrayView2<'_, T>,
    config: &FadInfinityConfig,
) -> Result<FadInfinity> {
    if eval.ncols() != baseline.dim() {
        return Err(FadError::DimensionMismatch {
            left: baseline.dim(),
            right: eval.ncols(),
        });
    }
    if eval.nrows() < 2 {
        return Err(FadError::TooFewSamples {
            what: "FAD-∞ evaluation set".into(),
            n: eval.nrows() as u64,
        });
    }
    if config.steps < 2 || config.min_n < 2 {
        return Err(FadError::Invalid {
            what: "FAD-∞".into(),
            message: format!(
                "needs steps ≥ 2 and min_n ≥ 2 (got {} and {})",
                config.steps, config.min_n
            ),
        });
    }
    let prepared = PreparedGaussian::new(baseline, config.options)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.seed);
    let mut points = Vec::with_capacity(config.steps);
    for n in sample_sizes(config.min_n, eval.nrows(), config.steps) {
        let sample = draw_with_replacement(eval, n, &mut rng);
        let fd = prepared.distance_to(&Gaussian::from_rows(sample.view())?)?;
        points.push(FadInfinityPoint {
            n,
            distance: fd.distance,
        });
    }
    let xs: Vec<f64> = points.iter().map(|p| 1.0 / p.n as f64).collect();
    let ys: Vec<f64> = points.iter().map(|p| p.distance).collect();
    let (slope, intercept, r2) = fit_line(&xs, &ys);
    Ok(FadInfinity {
        value: intercept,
        slope,
        r2,
        points,
        seed: config.seed,
    })
}

fn draw_with_replacement<T: Element>(
    rows: ArrayView2<'_, T>,
    n: usize,
    rng: &mut impl Rng,
) -> Array2<f64> {
    let dim = rows.ncols();
    let mut out = Array2::zeros((n, dim));
    for mut target in out.rows_mut() {
        let source = rows.row(rng.random_range(0..rows.nrows()));
        for (t, s) in target.iter_mut().zip(source.iter()) {
            *t = s.to_f64();
        }
    }
    out
}

/// Least-squares line y = slope·x + intercept and its R² (as `numpy.polyfit(x, y, 1)` and fadtk).
pub fn fit_line(xs: &[f64], ys: &[f64]) -> (f64, f64, f64) {
    let n = xs.len() as f64;
    let mx = xs.iter().sum::<f64>() / n;
    let my = ys.iter().sum::<f64>() / n;
    let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let intercept = my - slope * mx;
    let ss_res: f64 = xs
        .iter()
        .zip(ys)
        .map(|(x, y)| (y - (slope * x + intercept)).powi(2))
        .sum();
    let ss_tot: f64 = ys.iter().map(|y| (y - my).powi(2)).sum();
    let r2 = if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else {
        f64::NAN
    };
    (slope, intercept, r2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_sizes_follow_numpy_linspace_truncation() {
        // int(np.linspace(500, 1234, 25)) computed with numpy 2.x.
        let expected = [
            500, 530, 561, 591, 622, 652, 683, 714, 744, 775, 805, 836, 867, 897, 928, 958, 989,
            1019, 1050, 1081, 1111, 1142, 1172, 1203, 1234,
        ];
        assert_eq!(sample_sizes(500, 1234, 25), expected);
        // Oversampling: N < min_n runs downwards.
        assert_eq!(sample_sizes(500, 300, 3), vec![500, 400, 300]);
    }

    #[test]
    fn fit_recovers_an_exact_line() {
        let xs = [0.1, 0.2, 0.5, 1.0];
        let ys: Vec<f64> = xs.iter().map(|x| 3.0 * x + 2.0).collect();
        let (slope, intercept, r2) = fit_line(&xs, &ys);
        assert!(
            (slope - 3.0).abs() < 1e-12
                && (intercept - 2.0).abs() < 1e-12
                && (r2 - 1.0).abs() < 1e-12
        );
    }

    #[test]
    fn same_seed_same_result_and_the_bias_shrinks_with_n() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let eval = Array2::from_shape_fn((3000, 8), |_| rng.random_range(-1.0..1.0f64));
        let base = Gaussian::from_rows(eval.view()).unwrap();
        let cfg = FadInfinityConfig {
            steps: 10,
            min_n: 200,
            seed: 3,
            ..Default::default()
        };
        let a = fad_infinity(&base, eval.view(), &cfg).unwrap();
        let b = fad_infinity(&base, eval.view(), &cfg).unwrap();
        assert_eq!(a, b);
        // Same distribution: the finite-n bias is positive and FAD-∞ is far below the n = 200 point.
        assert!(a.slope > 0.0, "{a:?}");
        assert!(a.value.abs() < 0.2 * a.points[0].distance, "{a:?}");
        let c = fad_infinity(&base, eval.view(), &FadInfinityConfig { seed: 4, ..cfg }).unwrap();
        assert_ne!(a.points, c.points);
    }
}
