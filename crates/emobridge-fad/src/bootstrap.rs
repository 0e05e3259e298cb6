//! Percentile bootstrap confidence intervals for the Fréchet distance.
//!
//! Each replicate resamples both sets with replacement, keeping their sizes, and recomputes the
//! distance. The resampled unit is a row by default, or a group of rows (a clip) when units are
//! given: frames of one clip are strongly correlated, so clip-level resampling is the honest
//! choice for frame-level statistics. The interval is the (α/2, 1 − α/2) percentile pair of the
//! replicates (linear interpolation between order statistics, numpy's default), reported with the
//! bootstrap standard error. Draws come from ChaCha8 seeded by `seed`.

use std::ops::Range;

use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::frechet::{frechet_distance_with, FrechetOptions, PreparedGaussian};
use crate::stats::{Element, Gaussian, RunningStats};
use crate::{FadError, Result};

/// Settings of the bootstrap.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct BootstrapConfig {
    /// Number of replicates. Default 200.
    pub replicates: usize,
    /// Coverage of the interval. Default 0.95.
    pub confidence: f64,
    /// Seed of the draws. Default 0.
    pub seed: u64,
    pub options: FrechetOptions,
}

/// Most replicates accepted: far beyond what a percentile interval needs (a few thousand), and
/// small enough that the replicate values fit in memory (`--bootstrap 1e11` once aborted on an
/// 800 GB allocation).
pub const MAX_REPLICATES: usize = 1_000_000;

impl BootstrapConfig {
    /// Checks the ranges: 2 ≤ replicates ≤ [`MAX_REPLICATES`], 0 < confidence < 1. The CLI calls
    /// it when parsing its options.
    pub fn validate(&self) -> Result<()> {
        if !(self.confidence > 0.0 && self.confidence < 1.0)
            || !(2..=MAX_REPLICATES).contains(&self.replicates)
        {
            return Err(FadError::Invalid {
                what: "bootstrap".into(),
                message: format!(
                    "needs 0 < confidence < 1 and 2..={MAX_REPLICATES} replicates (got {} and {})",
                    self.confidence, self.replicates
                ),
            });
        }
        Ok(())
    }
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig {
            replicates: 200,
            confidence: 0.95,
            seed: 0,
            options: FrechetOptions::default(),
        }
    }
}

/// A set to resample: rows [N, D] and, optionally, the row ranges of its units (clips).
#[derive(Debug, Clone)]
pub struct BootstrapSet<'a, T> {
    pub rows: ArrayView2<'a, T>,
    /// Row ranges resampled as wholes; `None` resamples single rows.
    pub units: Option<Vec<Range<usize>>>,
}

impl<'a, T: Element> BootstrapSet<'a, T> {
    pub fn rows(rows: ArrayView2<'a, T>) -> Self {
        BootstrapSet { rows, units: None }
    }

    fn unit_count(&self) -> usize {
        self.units.as_ref().map_or(self.rows.nrows(), Vec::len)
    }

    fn resample(&self, rng: &mut impl Rng) -> Array2<f64> {
        let dim = self.rows.ncols();
        let count = self.unit_count();
        let picks: Vec<Range<usize>> = (0..count)
            .map(|_| {
                let u = rng.random_range(0..count);
                match &self.units {
                    Some(units) => units[u].clone(),
                    None => u..u + 1,
                }
            })
            .collect();
        let total: usize = picks.iter().map(|r| r.len()).sum();
        let mut out = Array2::zeros((total, dim));
        let mut at = 0;
        for range in picks {
            for r in range {
                for (t, s) in out.row_mut(at).iter_mut().zip(self.rows.row(r).iter()) {
                    *t = s.to_f64();
                }
                at += 1;
            }
        }
        out
    }
}

/// A bootstrap interval around a distance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfidenceInterval {
    /// The distance on the full sets.
    pub estimate: f64,
    pub lower: f64,
    pub upper: f64,
    pub std_error: f64,
    pub confidence: f64,
    /// Replicates that produced a distance.
    pub replicates: usize,
    pub seed: u64,
}

/// Distance between `a` and `b` with a percentile bootstrap interval.
pub fn bootstrap_frechet<'a, T: Element>(
    a: &BootstrapSet<'a, T>,
    b: &BootstrapSet<'a, T>,
    config: &BootstrapConfig,
) -> Result<ConfidenceInterval> {
    config.validate()?;
    for set in [a, b] {
        if let Some(units) = &set.units {
            if units
                .iter()
                .any(|r| r.end > set.rows.nrows() || r.start > r.end)
            {
                return Err(FadError::Invalid {
                    what: "bootstrap".into(),
                    message: "a unit's row range lies outside its set".into(),
                });
            }
        }
    }
    let estimate = frechet_distance_with(
        &Gaussian::from_rows(a.rows.view())?,
        &Gaussian::from_rows(b.rows.view())?,
        config.options,
    )?
    .distance;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.seed);
    let mut values = Vec::with_capacity(config.replicates);
    for _ in 0..config.replicates {
        let ra = a.resample(&mut rng);
        let rb = b.resample(&mut rng);
        // A replicate can draw fewer than two rows only with degenerate units; skip it.
        if let (Ok(ga), Ok(gb)) = (
            Gaussian::from_rows(ra.view()),
            Gaussian::from_rows(rb.view()),
        ) {
            values.push(frechet_distance_with(&ga, &gb, config.options)?.distance);
        }
    }
    interval(estimate, values, config)
}

/// [`bootstrap_frechet`] from the sufficient statistics of each unit (clip) instead of its rows:
/// `a[i]` and `b[j]` are the count, mean and co-moment matrix of one unit's rows. Each replicate
/// draws units exactly as [`bootstrap_frechet`] does with `units` given (same generator, same
/// order of draws), and its moments are assembled from the drawn units' statistics
/// ([`RunningStats::weighted_union`]) instead of from their rows: the cost of a replicate no
/// longer grows with the number of rows. Replicates run in parallel (rayon); the interval equals
/// the row-based one up to rounding (tested to 1e-9 relative).
pub fn bootstrap_frechet_units(
    a: &[RunningStats],
    b: &[RunningStats],
    config: &BootstrapConfig,
) -> Result<ConfidenceInterval> {
    config.validate()?;
    let dim = match (a.first(), b.first()) {
        (Some(x), Some(y)) if x.dim() == y.dim() => x.dim(),
        (Some(x), Some(y)) => {
            return Err(FadError::DimensionMismatch {
                left: x.dim(),
                right: y.dim(),
            })
        }
        _ => {
            return Err(FadError::Invalid {
                what: "bootstrap".into(),
                message: "each set needs at least one unit".into(),
            })
        }
    };
    if a.iter().chain(b).any(|u| u.dim() != dim) {
        return Err(FadError::Invalid {
            what: "bootstrap".into(),
            message: "units of different dimensions".into(),
        });
    }
    let all = |units: &[RunningStats]| {
        RunningStats::weighted_union(units, &vec![1; units.len()]).gaussian()
    };
    let estimate = frechet_distance_with(&all(a)?, &all(b)?, config.options)?.distance;
    bootstrap_units_around(a, b, estimate, config)
}

/// [`bootstrap_frechet_units`] around a distance the caller has already computed on the full
/// sets (`estimate`, e.g. a cell of a distance matrix), so that it is not computed twice.
pub fn bootstrap_frechet_units_around(
    a: &[RunningStats],
    b: &[RunningStats],
    estimate: f64,
    config: &BootstrapConfig,
) -> Result<ConfidenceInterval> {
    config.validate()?;
    match (a.first(), b.first()) {
        (Some(x), Some(y)) if x.dim() == y.dim() => {}
        (Some(x), Some(y)) => {
            return Err(FadError::DimensionMismatch {
                left: x.dim(),
                right: y.dim(),
            })
        }
        _ => {
            return Err(FadError::Invalid {
                what: "bootstrap".into(),
                message: "each set needs at least one unit".into(),
            })
        }
    }
    let dim = a[0].dim();
    if a.iter().chain(b).any(|u| u.dim() != dim) {
        return Err(FadError::Invalid {
            what: "bootstrap".into(),
            message: "units of different dimensions".into(),
        });
    }
    bootstrap_units_around(a, b, estimate, config)
}

/// The replicates of a unit bootstrap (checked inputs): every replicate on one thread, the
/// replicates side by side on rayon's pool.
fn bootstrap_units_around(
    a: &[RunningStats],
    b: &[RunningStats],
    estimate: f64,
    config: &BootstrapConfig,
) -> Result<ConfidenceInterval> {
    use rayon::prelude::*;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.seed);
    let mut draw = |count: usize| {
        let mut weights = vec![0u64; count];
        for _ in 0..count {
            weights[rng.random_range(0..count)] += 1;
        }
        weights
    };
    let draws: Vec<(Vec<u64>, Vec<u64>)> = (0..config.replicates)
        .map(|_| {
            let wa = draw(a.len());
            (wa, draw(b.len()))
        })
        .collect();
    let seq = faer::Par::Seq;
    let replicates: Vec<Option<f64>> = draws
        .par_iter()
        .map(|(wa, wb)| {
            let ra = RunningStats::weighted_union_in(a, wa, seq);
            let rb = RunningStats::weighted_union_in(b, wb, seq);
            // A replicate can draw fewer than two rows only with degenerate units; skip it.
            match (ra.gaussian(), rb.gaussian()) {
                (Ok(ga), Ok(gb)) => PreparedGaussian::new_in(&ga, config.options, seq)?
                    .distance_to_in(&gb, seq)
                    .map(|f| Some(f.distance)),
                _ => Ok(None),
            }
        })
        .collect::<Result<_>>()?;
    interval(estimate, replicates.into_iter().flatten().collect(), config)
}

/// The percentile interval of the replicate values around `estimate`.
fn interval(
    estimate: f64,
    mut values: Vec<f64>,
    config: &BootstrapConfig,
) -> Result<ConfidenceInterval> {
    if values.len() < 2 {
        return Err(FadError::Invalid {
            what: "bootstrap".into(),
            message: "fewer than 2 usable replicates".into(),
        });
    }
    values.sort_by(f64::total_cmp);
    let alpha = 1.0 - config.confidence;
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() - 1) as f64;
    Ok(ConfidenceInterval {
        estimate,
        lower: percentile(&values, alpha / 2.0),
        upper: percentile(&values, 1.0 - alpha / 2.0),
        std_error: var.sqrt(),
        confidence: config.confidence,
        replicates: values.len(),
        seed: config.seed,
    })
}

/// Quantile `q` of sorted values, linear interpolation (numpy's default method).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, d: usize, seed: u64, shift: f64) -> Array2<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((n, d), |(_, j)| {
            rng.random_range(-1.0..1.0) + if j == 0 { shift } else { 0.0 }
        })
    }

    #[test]
    fn percentile_matches_numpy_linear() {
        let v = [1.0, 2.0, 4.0, 8.0];
        // np.percentile([1,2,4,8], [2.5, 50, 97.5]) = [1.075, 3.0, 7.7]
        assert!((percentile(&v, 0.025) - 1.075).abs() < 1e-12);
        assert!((percentile(&v, 0.5) - 3.0).abs() < 1e-12);
        assert!((percentile(&v, 0.975) - 7.7).abs() < 1e-12);
    }

    #[test]
    fn interval_brackets_the_estimate_and_is_reproducible() {
        let a = rows(400, 4, 1, 0.0);
        let b = rows(400, 4, 2, 0.5);
        let cfg = BootstrapConfig {
            replicates: 100,
            seed: 9,
            ..Default::default()
        };
        let set_a = BootstrapSet::rows(a.view());
        let units: Vec<Range<usize>> = (0..40).map(|c| c * 10..(c + 1) * 10).collect();
        let set_b = BootstrapSet {
            rows: b.view(),
            units: Some(units),
        };
        let ci = bootstrap_frechet(&set_a, &set_b, &cfg).unwrap();
        assert!(
            ci.lower < ci.estimate + 1e-9 && ci.estimate < ci.upper + 0.2,
            "{ci:?}"
        );
        assert!(ci.lower > 0.0 && ci.std_error > 0.0);
        assert!(
            ci.lower <= 0.25 && ci.upper >= 0.25,
            "the true mean term 0.25 lies inside: {ci:?}"
        );
        assert_eq!(ci, bootstrap_frechet(&set_a, &set_b, &cfg).unwrap());
    }

    #[test]
    fn unit_statistics_give_the_row_based_interval() {
        // Clips of 5..17 rows far from the origin; the interval from per-clip statistics must
        // equal the one from rows (same draws, moments assembled differently).
        let a = rows(230, 6, 3, 40.0);
        let b = rows(260, 6, 4, 40.7);
        let units = |n: usize| -> Vec<Range<usize>> {
            let mut out = Vec::new();
            let mut at = 0;
            let mut k = 0;
            while at < n {
                let len = (5 + (k * 7) % 13).min(n - at);
                out.push(at..at + len);
                at += len;
                k += 1;
            }
            out
        };
        let (ua, ub) = (units(230), units(260));
        let cfg = BootstrapConfig {
            replicates: 60,
            seed: 11,
            ..Default::default()
        };
        let by_rows = bootstrap_frechet(
            &BootstrapSet {
                rows: a.view(),
                units: Some(ua.clone()),
            },
            &BootstrapSet {
                rows: b.view(),
                units: Some(ub.clone()),
            },
            &cfg,
        )
        .unwrap();
        let stats = |x: &Array2<f64>, us: &[Range<usize>]| -> Vec<RunningStats> {
            us.iter()
                .map(|r| RunningStats::from_rows(x.slice(ndarray::s![r.clone(), ..])))
                .collect()
        };
        let by_units = bootstrap_frechet_units(&stats(&a, &ua), &stats(&b, &ub), &cfg).unwrap();
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * y.abs().max(1e-12);
        assert_eq!(by_units.replicates, by_rows.replicates);
        for (x, y) in [
            (by_units.estimate, by_rows.estimate),
            (by_units.lower, by_rows.lower),
            (by_units.upper, by_rows.upper),
            (by_units.std_error, by_rows.std_error),
        ] {
            assert!(close(x, y), "{by_units:?} vs {by_rows:?}");
        }
        assert!(by_units.lower < by_units.upper);
        // Empty sets and mixed dimensions are refused.
        assert!(bootstrap_frechet_units(&[], &stats(&b, &ub), &cfg).is_err());
        let narrow = rows(20, 5, 5, 0.0);
        assert!(matches!(
            bootstrap_frechet_units(&stats(&a, &ua), &stats(&narrow, &[0..20]), &cfg),
            Err(FadError::DimensionMismatch { left: 6, right: 5 })
        ));
    }
}
