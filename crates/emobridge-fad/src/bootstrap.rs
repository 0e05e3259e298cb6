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
/// A unit with a non-finite mean or co-moment is an error ([`FadError::NotFinite`]).
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

/// Memory the replicate sums of one batch may take (both sets): bounds how many replicates are
/// assembled together.
const REPLICATE_BATCH_BYTES: usize = 128 << 20;

/// The replicates of a unit bootstrap (checked inputs), in batches: the co-moment sums of a
/// batch's replicates are one matrix product over the packed statistics of the units (each
/// unit's statistics read once per batch, not once per replicate), then every replicate's
/// distance runs on one thread, the replicates side by side on rayon's pool, in buffers kept
/// per thread.
fn bootstrap_units_around(
    a: &[RunningStats],
    b: &[RunningStats],
    estimate: f64,
    config: &BootstrapConfig,
) -> Result<ConfidenceInterval> {
    let dim = a[0].dim();
    // Not tied to the number of threads, so that no value depends on it.
    let packed = (dim * (dim + 1) / 2).max(1);
    let batch = (REPLICATE_BATCH_BYTES / (2 * 8 * packed)).max(1);
    let values = units_replicates(a, b, config, batch)?;
    interval(estimate, values, config)
}

/// The replicate distances (skipped replicates left out), `batch` replicates assembled at a time.
fn units_replicates(
    a: &[RunningStats],
    b: &[RunningStats],
    config: &BootstrapConfig,
    batch: usize,
) -> Result<Vec<f64>> {
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
    let (pa, pb) = rayon::join(|| PackedUnits::new(a), || PackedUnits::new(b));
    // A unit with a non-finite moment would reach every replicate through the product
    // (0 · NaN is NaN), not only those that draw it: refused up front.
    let (pa, pb) = (pa?, pb?);
    let mut values = Vec::with_capacity(config.replicates);
    // The batch's sums, allocated once for all batches.
    let batch = batch.clamp(1, draws.len().max(1));
    let mut sa = faer::Mat::<f64>::zeros(pa.packed.nrows(), batch);
    let mut sb = faer::Mat::<f64>::zeros(pb.packed.nrows(), batch);
    for chunk in draws.chunks(batch) {
        let (sa, sb) = (
            sa.as_mut().subcols_mut(0, chunk.len()),
            sb.as_mut().subcols_mut(0, chunk.len()),
        );
        let (sa, sb) = rayon::join(
            || pa.sums(chunk.iter().map(|(w, _)| w.as_slice()), sa),
            || pb.sums(chunk.iter().map(|(_, w)| w.as_slice()), sb),
        );
        let replicates: Vec<Option<f64>> = chunk
            .par_iter()
            .enumerate()
            .map(|(r, (wa, wb))| {
                replicate_distance(&pa, sa.col(r), wa, &pb, sb.col(r), wb, &config.options)
            })
            .collect::<Result<_>>()?;
        values.extend(replicates.into_iter().flatten());
    }
    Ok(values)
}

/// One replicate's distance on the calling thread; `None` when a side has fewer than two rows
/// or a non-finite moment (the replicate is skipped, as a [`RunningStats::gaussian`] error is).
fn replicate_distance(
    pa: &PackedUnits,
    sa: faer::ColRef<'_, f64>,
    wa: &[u64],
    pb: &PackedUnits,
    sb: faer::ColRef<'_, f64>,
    wb: &[u64],
    options: &FrechetOptions,
) -> Result<Option<f64>> {
    use crate::frechet::{
        assemble, cholesky_in_place, sandwich_eigenvalues, with_workspace, Moments,
    };
    let dim = pa.dim;
    let (Some(ma), Some(mb)) = (pa.moments(wa), pb.moments(wb)) else {
        return Ok(None);
    };
    let fast =
        options.route == crate::frechet::TraceRoute::Auto && ma.n > dim as u64 && mb.n > dim as u64;
    if fast {
        let done = with_workspace(dim, |w| -> Result<Option<Option<f64>>> {
            let ta = pa.unpack(sa, &ma, &mut w.l, false);
            let tb = pb.unpack(sb, &mb, &mut w.m, false);
            let (Some(ta), Some(tb)) = (ta, tb) else {
                return Ok(Some(None));
            };
            if !cholesky_in_place(&mut w.l, dim, faer::Par::Seq) {
                return Ok(None);
            }
            let l = faer::MatRef::from_column_major_slice(&w.l, dim, dim);
            let refill = |m: &mut [f64]| {
                pb.unpack(sb, &mb, m, false);
            };
            let values = sandwich_eigenvalues(l, &mut w.m, &mut w.g, dim, faer::Par::Seq, refill)?;
            let side_a = Moments {
                mean: &ma.mean,
                trace: ta,
                n: Some(ma.n),
            };
            let side_b = Moments {
                mean: &mb.mean,
                trace: tb,
                n: Some(mb.n),
            };
            Ok(Some(Some(
                assemble(&values, side_a, side_b, options).distance,
            )))
        })?;
        if let Some(value) = done {
            return Ok(value);
        }
    }
    // The general route (Σ₁ singular at rounding level, N ≤ D, or the eigen route asked for).
    let gaussian = |p: &PackedUnits, s: faer::ColRef<'_, f64>, m: &ReplicateMoments| {
        let mut cov = vec![0.0; dim * dim];
        p.unpack(s, m, &mut cov, true)?;
        Some(Gaussian {
            mean: m.mean.clone(),
            cov: faer::Mat::from_fn(dim, dim, |i, j| cov[j * dim + i]),
            n: Some(m.n),
        })
    };
    let (Some(ga), Some(gb)) = (gaussian(pa, sa, &ma), gaussian(pb, sb, &mb)) else {
        return Ok(None);
    };
    Ok(Some(
        PreparedGaussian::new_in(&ga, *options, faer::Par::Seq)?
            .distance_to_in(&gb, faer::Par::Seq)?
            .distance,
    ))
}

/// The units of one set, packed for replicate sums: with `g` the count-weighted mean of all
/// units and `dᵤ = μᵤ − g`, column `u` of `packed` holds the lower triangle (column by column)
/// of `Tᵤ = Mᵤ + nᵤ dᵤ dᵤᵀ`, the unit's co-moment matrix about `g`. A replicate drawing unit
/// `u` `wᵤ` times has `N = Σ wᵤnᵤ`, mean `g + δ` with `δ = Σ wᵤnᵤdᵤ / N` and co-moment matrix
/// `Σ wᵤTᵤ − N δδᵀ` (equal to [`RunningStats::weighted_union`]'s up to rounding), so the sums of
/// many replicates are one product `packed · Wᵀ`.
struct PackedUnits {
    dim: usize,
    centre: Vec<f64>,
    counts: Vec<u64>,
    /// `dᵤ`, one row of `dim` per unit.
    offsets: Vec<f64>,
    packed: faer::Mat<f64>,
}

/// Count and mean of one replicate of one set.
struct ReplicateMoments {
    n: u64,
    /// `δ`, the mean's offset from the set's centre.
    delta: Vec<f64>,
    mean: Vec<f64>,
}

impl PackedUnits {
    fn new(units: &[RunningStats]) -> Result<PackedUnits> {
        let dim = units[0].dim();
        let total: u64 = units.iter().map(RunningStats::count).sum();
        let mut centre = vec![0.0; dim];
        if total > 0 {
            for u in units {
                let c = u.count() as f64;
                for (g, m) in centre.iter_mut().zip(u.mean()) {
                    *g += c * m;
                }
            }
            for g in &mut centre {
                *g /= total as f64;
            }
        }
        let mut offsets = vec![0.0; units.len() * dim];
        for (u, row) in units.iter().zip(offsets.chunks_exact_mut(dim.max(1))) {
            if u.count() > 0 {
                for ((d, m), g) in row.iter_mut().zip(u.mean()).zip(&centre) {
                    *d = m - g;
                }
            }
        }
        let size = dim * (dim + 1) / 2;
        let mut packed = faer::Mat::<f64>::zeros(size, units.len());
        for (k, u) in units.iter().enumerate() {
            let n = u.count() as f64;
            let d = &offsets[k * dim..(k + 1) * dim];
            let dst = packed.col_as_slice_mut(k);
            let scatter = u.scatter();
            let mut at = 0;
            for j in 0..dim {
                let dj = n * d[j];
                let src = &scatter
                    .col(j)
                    .try_as_col_major()
                    .expect("a matrix column is contiguous")
                    .as_slice()[j..];
                for ((t, s), di) in dst[at..at + dim - j].iter_mut().zip(src).zip(&d[j..]) {
                    *t = s + di * dj;
                }
                at += dim - j;
            }
            if !dst.iter().chain(d).all(|v| v.is_finite()) {
                return Err(FadError::NotFinite {
                    what: format!("bootstrap unit {k}"),
                });
            }
        }
        Ok(PackedUnits {
            dim,
            centre,
            counts: units.iter().map(RunningStats::count).collect(),
            offsets,
            packed,
        })
    }

    /// `Σ wᵤTᵤ` (packed) for each weight vector into `out`: one column per replicate.
    fn sums<'w, 'o>(
        &self,
        weights: impl ExactSizeIterator<Item = &'w [u64]>,
        mut out: faer::MatMut<'o, f64>,
    ) -> faer::MatRef<'o, f64> {
        let units = self.counts.len();
        let replicates = weights.len();
        let mut w = faer::Mat::<f64>::zeros(units, replicates);
        for (r, ws) in weights.enumerate() {
            for (u, &x) in ws.iter().enumerate() {
                w[(u, r)] = x as f64;
            }
        }
        faer::linalg::matmul::matmul(
            out.as_mut(),
            faer::Accum::Replace,
            self.packed.as_ref(),
            w.as_ref(),
            1.0,
            faer::get_global_parallelism(),
        );
        faer::reborrow::IntoConst::into_const(out)
    }

    /// Count and mean of the replicate drawing `weights`; `None` below two rows.
    fn moments(&self, weights: &[u64]) -> Option<ReplicateMoments> {
        let dim = self.dim;
        let n: u64 = self.counts.iter().zip(weights).map(|(c, w)| c * w).sum();
        if n < 2 {
            return None;
        }
        let mut delta = vec![0.0; dim];
        for (k, (&c, &w)) in self.counts.iter().zip(weights).enumerate() {
            if c > 0 && w > 0 {
                let f = (c * w) as f64;
                for (d, o) in delta.iter_mut().zip(&self.offsets[k * dim..(k + 1) * dim]) {
                    *d += f * o;
                }
            }
        }
        for d in &mut delta {
            *d /= n as f64;
        }
        let mean = self.centre.iter().zip(&delta).map(|(g, d)| g + d).collect();
        Some(ReplicateMoments { n, delta, mean })
    }

    /// The replicate's covariance `(Σ wᵤTᵤ − N δδᵀ) / (N − 1)` from its packed sums `sums` into
    /// `dst` (column-major, leading dimension `dim`): the lower triangle, and with `full` the
    /// upper one too. Returns the trace, or `None` when a value is not finite.
    fn unpack(
        &self,
        sums: faer::ColRef<'_, f64>,
        m: &ReplicateMoments,
        dst: &mut [f64],
        full: bool,
    ) -> Option<f64> {
        let dim = self.dim;
        let sums = sums
            .try_as_col_major()
            .expect("a column of a matrix")
            .as_slice();
        let n = m.n as f64;
        let inv = 1.0 / (n - 1.0);
        let mut at = 0;
        let mut finite = m.mean.iter().all(|v| v.is_finite());
        let mut trace = 0.0;
        for j in 0..dim {
            let nd = n * m.delta[j];
            let col = &mut dst[j * dim..(j + 1) * dim];
            for ((t, s), d) in col[j..]
                .iter_mut()
                .zip(&sums[at..at + dim - j])
                .zip(&m.delta[j..])
            {
                *t = (s - d * nd) * inv;
            }
            finite &= col[j..].iter().all(|v| v.is_finite());
            trace += col[j];
            at += dim - j;
        }
        if !finite {
            return None;
        }
        if full {
            mirror_lower(dst, dim);
        }
        Some(trace)
    }
}

/// Copies the lower triangle of the order-`dim` column-major matrix in `a` onto its upper one,
/// in square tiles so that both the rows read and the columns written stay in cache.
fn mirror_lower(a: &mut [f64], dim: usize) {
    const TILE: usize = 32;
    for jb in (0..dim).step_by(TILE) {
        for ib in (jb..dim).step_by(TILE) {
            for j in jb..(jb + TILE).min(dim) {
                for i in ib.max(j + 1)..(ib + TILE).min(dim) {
                    a[i * dim + j] = a[j * dim + i];
                }
            }
        }
    }
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
    use crate::frechet::TraceRoute;

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

    /// Each replicate's distance the direct way: the drawn units' weighted union, its Gaussian,
    /// the distance (what the batched path replaces).
    fn direct_replicates(
        a: &[RunningStats],
        b: &[RunningStats],
        cfg: &BootstrapConfig,
    ) -> Vec<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
        let mut draw = |count: usize| {
            let mut weights = vec![0u64; count];
            for _ in 0..count {
                weights[rng.random_range(0..count)] += 1;
            }
            weights
        };
        let mut out = Vec::new();
        for _ in 0..cfg.replicates {
            let wa = draw(a.len());
            let wb = draw(b.len());
            let ga = RunningStats::weighted_union(a, &wa).gaussian().unwrap();
            let gb = RunningStats::weighted_union(b, &wb).gaussian().unwrap();
            out.push(
                frechet_distance_with(&ga, &gb, cfg.options)
                    .unwrap()
                    .distance,
            );
        }
        out
    }

    #[test]
    fn batched_replicates_equal_the_direct_ones() {
        // D = 80 (the blocked reduction), clips of 8..20 rows far from the origin; a set with
        // more rows than D (the Cholesky route in place) and one with fewer (the general route).
        let d = 80;
        let units = |count: usize, seed: u64, shift: f64| -> Vec<RunningStats> {
            (0..count)
                .map(|k| {
                    let x = rows(8 + (k * 5) % 13, d, seed + k as u64, shift);
                    RunningStats::from_rows(x.view())
                })
                .collect()
        };
        let (a, b, few) = (
            units(16, 100, 30.0),
            units(14, 200, 30.4),
            units(4, 300, 30.2),
        );
        for (other, route) in [
            (&b, TraceRoute::Auto),
            (&b, TraceRoute::Eigh),
            (&few, TraceRoute::Auto),
        ] {
            let cfg = BootstrapConfig {
                replicates: 23,
                seed: 5,
                options: FrechetOptions {
                    route,
                    ..Default::default()
                },
                ..Default::default()
            };
            let want = direct_replicates(&a, other, &cfg);
            for batch in [1, 7, 1000] {
                let got = units_replicates(&a, other, &cfg, batch).unwrap();
                assert_eq!(got.len(), want.len());
                for (x, y) in got.iter().zip(&want) {
                    assert!(
                        (x - y).abs() <= 1e-10 * y.abs(),
                        "{route} batch {batch}: {x} vs {y}"
                    );
                }
            }
        }
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
        // A unit with a non-finite moment is refused with an error naming it.
        let mut bad = stats(&b, &ub);
        let mut x = b.slice(ndarray::s![0..5, ..]).to_owned();
        x[(2, 3)] = f64::NAN;
        bad[1] = RunningStats::from_rows(x.view());
        assert!(matches!(
            bootstrap_frechet_units_around(&stats(&a, &ua), &bad, 1.0, &cfg),
            Err(FadError::NotFinite { .. })
        ));
        // Empty sets and mixed dimensions are refused.
        assert!(bootstrap_frechet_units(&[], &stats(&b, &ub), &cfg).is_err());
        let narrow = rows(20, 5, 5, 0.0);
        assert!(matches!(
            bootstrap_frechet_units(&stats(&a, &ua), &stats(&narrow, &[0..20]), &cfg),
            Err(FadError::DimensionMismatch { left: 6, right: 5 })
        ));
    }
}
