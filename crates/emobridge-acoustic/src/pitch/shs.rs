//! Subharmonic-summation pitch candidates (Hermes 1988) as openSMILE's `cSpecScale` →
//! `cPitchShs` → `cPitchBase` chain computes them from a magnitude spectrum:
//!
//! 1. peak enhancement (bins further than two from a local maximum are zeroed) and a
//!    (¼, ½, ¼) smoothing of the linear magnitude spectrum;
//! 2. natural cubic-spline resampling onto a log2 (octave) frequency axis from `min_hz` to the
//!    Nyquist frequency with as many points as input bins, weighted by the auditory sensitivity
//!    curve 0.5 + atan(3 (i + 1 − s) / ppo) / π;
//! 3. summation of the spectrum shifted down by log2(h) octaves, h = 2..=n_harmonics, with
//!    compression factor c^(h−1), divided by `n_harmonics`;
//! 4. the highest-scoring local maxima become candidates (parabolic interpolation in log2 Hz);
//!    each candidate's voicing is 1 − mean(SS)/score; candidates outside
//!    [`min_pitch`, `max_pitch`] are dropped and the best-scoring one is moved first.

use super::shs_kernels::{self, SweepCoefficients};

/// Frames [`ShsPitch::candidates_lanes`] analyses together, one per vector lane.
pub const LANES: usize = 8;

/// Settings of the SHS pitch detector (defaults: eGeMAPS / ComParE `cPitchShs` settings).
#[derive(Debug, Clone, PartialEq)]
pub struct ShsConfig {
    /// Lowest frequency of the octave-scale spectrum in Hz (default 25).
    pub min_hz: f64,
    /// Number of harmonics summed (default 15).
    pub n_harmonics: usize,
    /// Weight decay per harmonic (default 0.85).
    pub compression: f64,
    /// Number of candidates kept per frame (default 6).
    pub n_candidates: usize,
    /// Lowest admissible F0 in Hz (default 55 for eGeMAPS; ComParE uses 52).
    pub min_pitch: f64,
    /// Highest admissible F0 in Hz (default 1000 for eGeMAPS; ComParE uses 620).
    pub max_pitch: f64,
    /// Voicing probability a frame needs to be voiced (default 0.7).
    pub voicing_cutoff: f64,
}

impl Default for ShsConfig {
    fn default() -> Self {
        ShsConfig {
            min_hz: 25.0,
            n_harmonics: 15,
            compression: 0.85,
            n_candidates: 6,
            min_pitch: 55.0,
            max_pitch: 1000.0,
            voicing_cutoff: 0.7,
        }
    }
}

/// Pitch candidates of one frame, best-scoring first; unused slots hold 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidates {
    /// Candidate frequencies in Hz.
    pub f0: Vec<f64>,
    /// Voicing probability of each candidate.
    pub voicing: Vec<f64>,
    /// SHS score of each candidate.
    pub score: Vec<f64>,
}

/// SHS analyser for magnitude spectra of a fixed size.
pub struct ShsPitch {
    cfg: ShsConfig,
    aud_weight: Vec<f64>,
    fmin_t: f64,
    step_t: f64,
    /// `(shift, weight)` of each harmonic h = 2..=n_harmonics whose shift (in octave points)
    /// lies inside the spectrum, in order.
    terms: Vec<(usize, f64)>,
    work: Vec<f64>,
    plan: SplinePlan,
    smoothed: Vec<f64>,
    octave: Vec<f64>,
    sum: Vec<f64>,
    /// Local maxima found by the last peak search.
    peaks: Vec<usize>,
    /// Peak marks of the enhancement.
    marks: Vec<u8>,
    /// Buffers of [`ShsPitch::candidates_lanes`], made on its first call.
    lanes: Option<Box<LaneBuffers>>,
}

/// Frames in lanes: per lane the enhanced and smoothed spectrum, then the interleaved
/// ordinates, second derivatives, octave spectrum and harmonic sum, and each lane's best maxima.
struct LaneBuffers {
    work: Vec<f64>,
    smoothed: Vec<Vec<f64>>,
    y: Vec<f64>,
    y2: Vec<f64>,
    octave: Vec<f64>,
    sum: Vec<f64>,
    /// Per lane the `n_candidates` best maxima: scores (0: free) and indices.
    scores: Vec<f64>,
    idx: Vec<usize>,
}

impl ShsPitch {
    /// Analyser for spectra of `n_bins` bins spaced `bin_hz` apart.
    pub fn new(cfg: ShsConfig, n_bins: usize, bin_hz: f64) -> ShsPitch {
        let max_hz = bin_hz * (n_bins - 1) as f64;
        let min_hz = cfg.min_hz.max(1.0);
        let fmin_t = min_hz.log2();
        let fmax_t = max_hz.log2();
        let n_points = n_bins;
        let step_t = (fmax_t - fmin_t) / (n_points - 1) as f64;
        let mut log_f: Vec<f64> = (0..n_bins)
            .map(|i| {
                if i == 0 {
                    0.0
                } else {
                    (i as f64 * bin_hz).log2()
                }
            })
            .collect();
        log_f[0] = 2.0 * log_f[1] - log_f[2];
        let targets: Vec<f64> = (0..n_points).map(|i| fmin_t + i as f64 * step_t).collect();
        let plan = SplinePlan::new(&log_f, &targets);
        let n_octaves = (max_hz / min_hz).log2();
        // openSMILE stores this in a 32-bit float in the level meta data
        let points_per_octave = (n_points as f64 / n_octaves) as f32 as f64;
        let atan_s = points_per_octave * (65.0f64 / 50.0).log2() - 1.0;
        let aud_weight = (0..n_points)
            .map(|i| {
                0.5 + (3.0 * (i as f64 + 1.0 - atan_s) / points_per_octave).atan()
                    / std::f64::consts::PI
            })
            .collect();
        // the weight decays for every harmonic, also those shifted out of the spectrum
        let mut terms = Vec::new();
        let mut scale = cfg.compression;
        for h in 2..=cfg.n_harmonics {
            let shift = (points_per_octave * (h as f64).log2()).floor() as usize;
            if shift < n_points {
                terms.push((shift, scale));
            }
            scale *= cfg.compression;
        }
        ShsPitch {
            cfg,
            aud_weight,
            fmin_t,
            step_t,
            terms,
            work: Vec::new(),
            plan,
            smoothed: Vec::new(),
            octave: Vec::new(),
            sum: Vec::new(),
            peaks: Vec::new(),
            marks: Vec::new(),
            lanes: None,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &ShsConfig {
        &self.cfg
    }

    /// Candidates of one magnitude spectrum.
    pub fn candidates(&mut self, mags: &[f64]) -> Candidates {
        self.octave_spectrum(mags);
        let n = self.octave.len();
        // sized once: every value is written below
        if self.sum.len() != n {
            self.sum.clear();
            self.sum.resize(n, 0.0);
        }
        shs_kernels::harmonic_sum(
            &mut self.sum,
            &self.octave,
            &self.terms,
            self.cfg.n_harmonics as f64,
        );
        // the interior bins with ss[i − 1] < ss[i] > ss[i + 1], in increasing order
        self.peaks.clear();
        crate::simd::local_maxima(&self.sum, false, &mut self.peaks);
        let total = self.sum.iter().sum::<f64>();
        let view = Strided {
            values: &self.sum,
            stride: 1,
            lane: 0,
            len: n,
        };
        self.select(view, &self.peaks, total)
    }

    /// Candidates of the first `count` (at most [`LANES`]) of the [`LANES`] magnitude spectra
    /// `mags`, all of this analyser's size, analysed together one per vector lane (the spectra
    /// past `count` are analysed too and their results dropped); each frame's candidates equal
    /// [`ShsPitch::candidates`] of its spectrum bit for bit.
    pub fn candidates_lanes(&mut self, mags: &[Vec<f64>], count: usize) -> Vec<Candidates> {
        assert!(
            count <= LANES && mags.len() >= LANES,
            "{LANES} spectra, at most {LANES} used"
        );
        let n = self.plan.n;
        let m = self.aud_weight.len();
        let n_c = self.cfg.n_candidates;
        if n < 3 || mags[..LANES].iter().any(|s| s.len() != n) {
            return mags[..count].iter().map(|s| self.candidates(s)).collect();
        }
        let lanes = self.lanes.get_or_insert_with(|| {
            Box::new(LaneBuffers {
                work: Vec::with_capacity(n),
                smoothed: vec![vec![0.0; n]; LANES],
                y: vec![0.0; n * LANES],
                y2: vec![0.0; n * LANES],
                octave: vec![0.0; m * LANES],
                sum: vec![0.0; m * LANES],
                scores: vec![0.0; n_c * LANES],
                idx: vec![0; n_c * LANES],
            })
        });
        // lanes past `count` keep an earlier frame's values (or zeros)
        for (spectrum, smoothed) in mags.iter().zip(lanes.smoothed.iter_mut()).take(count) {
            shs_kernels::enhance_peaks(spectrum, &mut lanes.work, &mut self.marks);
            smooth_spectrum(&lanes.work, smoothed);
        }
        shs_kernels::interleave(&lanes.smoothed, &mut lanes.y);
        // the spline values, rounded to f32 as openSMILE stores them, times the auditory weight
        shs_kernels::second_derivatives_lanes(&lanes.y, &mut lanes.y2, &self.plan.coefficients());
        shs_kernels::spline_points_lanes(
            &mut lanes.octave,
            &lanes.y,
            &lanes.y2,
            &self.plan.lo,
            [
                &self.plan.a,
                &self.plan.b,
                &self.plan.ca,
                &self.plan.cb,
                &self.plan.h26,
                &self.aud_weight,
            ],
        );
        let totals = shs_kernels::harmonic_sum_lanes(
            &mut lanes.sum,
            &lanes.octave,
            &self.terms,
            self.cfg.n_harmonics as f64,
        );
        let n_c = self.cfg.n_candidates;
        shs_kernels::best_peaks_lanes(&lanes.sum, n_c, &mut lanes.scores, &mut lanes.idx);
        let lanes = self.lanes.as_deref().expect("lane buffers");
        (0..count)
            .map(|k| {
                let view = Strided {
                    values: &lanes.sum,
                    stride: LANES,
                    lane: k,
                    len: m,
                };
                // the filled slots (maxima score above 0), best first
                let slots = k * n_c..(k + 1) * n_c;
                let idx: Vec<usize> = lanes.idx[slots.clone()]
                    .iter()
                    .zip(&lanes.scores[slots])
                    .take_while(|&(_, &s)| s != 0.0)
                    .map(|(&i, _)| i)
                    .collect();
                self.finish_candidates(view, &idx, totals[k] / m as f64)
            })
            .collect()
    }

    fn octave_spectrum(&mut self, mags: &[f64]) {
        shs_kernels::enhance_peaks(mags, &mut self.work, &mut self.marks);
        smooth_spectrum(&self.work, &mut self.smoothed);
        // the spline values, rounded to f32 as openSMILE stores them, times the auditory weight
        self.plan
            .evaluate_weighted(&self.smoothed, &self.aud_weight, &mut self.octave);
    }

    /// The candidates of a harmonic sum `ss` whose interior local maxima are `peaks` (in
    /// increasing order) and whose values sum to `total` (in increasing index order).
    fn select(&self, ss: Strided, peaks: &[usize], total: f64) -> Candidates {
        let idx = best_peaks(ss, peaks, self.cfg.n_candidates);
        self.finish_candidates(ss, &idx, total / ss.len as f64)
    }

    fn finish_candidates(&self, ss: Strided, idx: &[usize], mean: f64) -> Candidates {
        let n_c = self.cfg.n_candidates;
        let mut f0 = vec![0.0; n_c];
        let mut voicing = vec![0.0; n_c];
        let mut score = vec![0.0; n_c];
        for (k, &j) in idx.iter().enumerate() {
            let x = |i: f64| i * self.step_t + self.fmin_t;
            let (fx, sc) = quad_peak(
                x(j as f64 - 1.0),
                ss.at(j - 1),
                x(j as f64),
                ss.at(j),
                x(j as f64 + 1.0),
                ss.at(j + 1),
            );
            f0[k] = fx.exp2();
            score[k] = sc;
            voicing[k] = if sc > 0.0 && sc > mean {
                1.0 - mean / sc
            } else {
                0.0
            };
        }
        let mut n_cand = idx.len();
        // drop candidates outside the admissible range, shifting the rest up
        let mut i = 0usize;
        while i < n_c && n_cand > 0 {
            if f0[i] > self.cfg.max_pitch || f0[i] < self.cfg.min_pitch {
                let orig = f0[i];
                for j in i + 1..n_c {
                    f0[j - 1] = f0[j];
                    voicing[j - 1] = voicing[j];
                    score[j - 1] = score[j];
                }
                f0[n_c - 1] = 0.0;
                voicing[n_c - 1] = 0.0;
                score[n_c - 1] = 0.0;
                if orig > 0.0 {
                    n_cand -= 1;
                    continue;
                }
            }
            i += 1;
        }
        // best score first
        let best = (1..n_c).fold(0usize, |b, k| if score[k] > score[b] { k } else { b });
        f0.swap(0, best);
        voicing.swap(0, best);
        score.swap(0, best);
        Candidates { f0, voicing, score }
    }
}

/// One frame's values in a buffer that may hold several frames interleaved: value `i` at
/// `i · stride + lane`, `len` values.
#[derive(Clone, Copy)]
struct Strided<'a> {
    values: &'a [f64],
    stride: usize,
    lane: usize,
    len: usize,
}

impl Strided<'_> {
    #[inline]
    fn at(&self, i: usize) -> f64 {
        self.values[i * self.stride + self.lane]
    }
}

/// Indices of the `n_c` highest local maxima `peaks` of `ss` by score, highest first (greedy
/// insertion, ties keep the earlier peak first).
fn best_peaks(ss: Strided, peaks: &[usize], n_c: usize) -> Vec<usize> {
    let mut idx = vec![0usize; n_c];
    let mut score = vec![0.0f64; n_c];
    let mut n_found = 0;
    for &i in peaks {
        let v = ss.at(i);
        // the slots hold their scores in decreasing order, zeros (free) last, and a peak's
        // score is positive and not NaN: a peak no higher than a full last slot goes nowhere
        if n_c > 0 && score[n_c - 1] != 0.0 && !(score[n_c - 1] < v) {
            continue;
        }
        for j in 0..n_c {
            if score[j] == 0.0 || score[j] < v {
                for jj in (j + 1..n_c).rev() {
                    score[jj] = score[jj - 1];
                    idx[jj] = idx[jj - 1];
                }
                idx[j] = i;
                score[j] = v;
                n_found = (n_found + 1).min(n_c);
                break;
            }
        }
    }
    idx.truncate(n_found);
    idx
}

/// (¼, ½, ¼) smoothing of all but the last bin, left neighbour of bin 0 taken as 0, written to
/// `out` (the same sums as smoothing in place from the left).
fn smooth_spectrum(a: &[f64], out: &mut Vec<f64>) {
    let n = a.len();
    if n < 2 {
        out.clear();
        out.extend_from_slice(a);
        return;
    }
    // sized once: every value is written below
    if out.len() != n {
        out.clear();
        out.resize(n, 0.0);
    }
    out[0] = (0.0 + 2.0 * a[0] + a[1]) / 4.0;
    crate::simd::smooth3(&mut out[1..n - 1], a);
    out[n - 1] = a[n - 1];
}

/// Second derivatives of the natural cubic spline through (x, y).
pub fn natural_spline(x: &[f64], y: &[f64], y2: &mut Vec<f64>) {
    let n = x.len();
    y2.clear();
    y2.resize(n, 0.0);
    if n < 3 {
        return;
    }
    let mut u = vec![0.0; n];
    for i in 1..n - 1 {
        let sig = (x[i] - x[i - 1]) / (x[i + 1] - x[i - 1]);
        let p = sig * y2[i - 1] + 2.0;
        y2[i] = (sig - 1.0) / p;
        let d = (y[i + 1] - y[i]) / (x[i + 1] - x[i]) - (y[i] - y[i - 1]) / (x[i] - x[i - 1]);
        u[i] = (6.0 * d / (x[i + 1] - x[i - 1]) - sig * u[i - 1]) / p;
    }
    y2[n - 1] = 0.0;
    for k in (0..n - 1).rev() {
        y2[k] = y2[k] * y2[k + 1] + u[k];
    }
}

/// Value of the cubic spline at `x` (bisection for the interval).
pub fn spline_eval(xa: &[f64], ya: &[f64], y2: &[f64], x: f64) -> f64 {
    let (mut lo, mut hi) = (0usize, xa.len() - 1);
    while hi - lo > 1 {
        let k = (hi + lo) / 2;
        if xa[k] > x {
            hi = k;
        } else {
            lo = k;
        }
    }
    let h = xa[hi] - xa[lo];
    if h == 0.0 {
        return 0.0;
    }
    let a = (xa[hi] - x) / h;
    let b = (x - xa[lo]) / h;
    a * ya[lo] + b * ya[hi] + ((a * a * a - a) * y2[lo] + (b * b * b - b) * y2[hi]) * h * h / 6.0
}

/// Vertex (x, y) of the parabola through three points; falls back to the largest point.
pub fn quad_peak(x1: f64, y1: f64, x2: f64, y2: f64, x3: f64, y3: f64) -> (f64, f64) {
    let den =
        x1 * x1 * x2 + x2 * x2 * x3 + x3 * x3 * x1 - x3 * x3 * x2 - x2 * x2 * x1 - x1 * x1 * x3;
    if den != 0.0 {
        let a = (y1 * x2 + y2 * x3 + y3 * x1 - y3 * x2 - y2 * x1 - y1 * x3) / den;
        let b = (x1 * x1 * y2 + x2 * x2 * y3 + x3 * x3 * y1
            - x3 * x3 * y2
            - x2 * x2 * y1
            - x1 * x1 * y3)
            / den;
        let c = (x1 * x1 * x2 * y3 + x2 * x2 * x3 * y1 + x3 * x3 * x1 * y2
            - x3 * x3 * x2 * y1
            - x2 * x2 * x1 * y3
            - x1 * x1 * x3 * y2)
            / den;
        if a != 0.0 {
            let x = -b / (2.0 * a);
            return (x, c - a * x * x);
        }
    }
    if y1 > y2 && y1 > y3 {
        (x1, y1)
    } else if y2 > y1 && y2 > y3 {
        (x2, y2)
    } else if y3 > y1 && y3 > y2 {
        (x3, y3)
    } else {
        (x1, y1)
    }
}

/// A natural cubic spline through fixed abscissae `x`, evaluated at fixed points: everything that
/// depends only on the abscissae is computed once, so each new set of ordinates costs one
/// tridiagonal sweep and a few multiply-adds per evaluation point ([`natural_spline`] +
/// [`spline_eval`] up to rounding).
#[derive(Debug, Clone)]
pub struct SplinePlan {
    n: usize,
    /// `x[i + 1] − x[i]`.
    dx: Vec<f64>,
    /// `x[i + 1] − x[i − 1]` (index `i`; entry 0 unused).
    dx2: Vec<f64>,
    sig: Vec<f64>,
    p_inv: Vec<f64>,
    y2_coef: Vec<f64>,
    /// Per evaluation point: lower knot, weights a and b, h²/6 (0: a repeated knot, value 0),
    /// a³ − a and b³ − b.
    lo: Vec<usize>,
    a: Vec<f64>,
    b: Vec<f64>,
    h26: Vec<f64>,
    ca: Vec<f64>,
    cb: Vec<f64>,
    slope: Vec<f64>,
    u: Vec<f64>,
    y2: Vec<f64>,
}

impl SplinePlan {
    /// Plan for knots `x` (strictly increasing) and evaluation points `at`.
    pub fn new(x: &[f64], at: &[f64]) -> SplinePlan {
        let n = x.len();
        let (mut sig, mut p_inv, mut y2_coef) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        for i in 1..n.saturating_sub(1) {
            sig[i] = (x[i] - x[i - 1]) / (x[i + 1] - x[i - 1]);
            let p = sig[i] * y2_coef[i - 1] + 2.0;
            p_inv[i] = 1.0 / p;
            y2_coef[i] = (sig[i] - 1.0) / p;
        }
        let dx = x.windows(2).map(|w| w[1] - w[0]).collect();
        let mut dx2 = vec![0.0; n];
        for i in 1..n.saturating_sub(1) {
            dx2[i] = x[i + 1] - x[i - 1];
        }
        let mut plan = SplinePlan {
            n,
            dx,
            dx2,
            sig,
            p_inv,
            y2_coef,
            lo: Vec::with_capacity(at.len()),
            a: Vec::with_capacity(at.len()),
            b: Vec::with_capacity(at.len()),
            h26: Vec::with_capacity(at.len()),
            ca: Vec::with_capacity(at.len()),
            cb: Vec::with_capacity(at.len()),
            slope: vec![0.0; n.saturating_sub(1)],
            u: vec![0.0; n],
            y2: vec![0.0; n],
        };
        for &v in at {
            let (mut lo, mut hi) = (0usize, n - 1);
            while hi - lo > 1 {
                let k = (hi + lo) / 2;
                if x[k] > v {
                    hi = k;
                } else {
                    lo = k;
                }
            }
            let h = x[hi] - x[lo];
            let (a, b, h26) = if h == 0.0 {
                (0.0, 0.0, 0.0)
            } else {
                ((x[hi] - v) / h, (v - x[lo]) / h, h * h / 6.0)
            };
            plan.lo.push(lo);
            plan.a.push(a);
            plan.b.push(b);
            plan.h26.push(h26);
            plan.ca.push(a * a * a - a);
            plan.cb.push(b * b * b - b);
        }
        plan
    }

    /// The constants of the tridiagonal sweeps (for [`shs_kernels::second_derivatives_lanes`]).
    fn coefficients(&self) -> SweepCoefficients<'_> {
        SweepCoefficients {
            dx: &self.dx,
            dx2: &self.dx2,
            sig: &self.sig,
            p_inv: &self.p_inv,
            y2_coef: &self.y2_coef,
        }
    }

    /// Second derivatives for ordinates `y` (n ≥ 3) into `self.y2`.
    fn second_derivatives(&mut self, y: &[f64]) {
        let n = self.n;
        // each interval's slope once (the right slope of knot i and the left one of i + 1), and
        // the right-hand sides, all independent of each other; only the sweeps are sequential
        crate::simd::interval_slopes(&mut self.slope, y, &self.dx);
        self.u[0] = 0.0;
        crate::simd::second_difference_rhs(&mut self.u[1..n - 1], &self.slope, &self.dx2[1..n - 1]);
        // the forward sweep carries u[i − 1] in a register (not reloaded from the store just
        // made) over slices cut to one length, so the loop holds no bounds tests
        let (u, sig, p_inv) = (
            &mut self.u[1..n - 1],
            &self.sig[1..n - 1],
            &self.p_inv[1..n - 1],
        );
        let mut prev = 0.0;
        for ((u, &s), &p) in u.iter_mut().zip(sig).zip(p_inv) {
            prev = (*u - s * prev) * p;
            *u = prev;
        }
        self.y2[n - 1] = 0.0;
        let (y2, coef, u) = (
            &mut self.y2[..n - 1],
            &self.y2_coef[..n - 1],
            &self.u[..n - 1],
        );
        let mut next = 0.0;
        for ((y2, &c), &u) in y2.iter_mut().zip(coef).zip(u).rev() {
            next = c * next + u;
            *y2 = next;
        }
    }

    /// Spline values at the planned points for ordinates `y`.
    pub fn evaluate(&mut self, y: &[f64], out: &mut Vec<f64>) {
        self.evaluate_with(y, out, |_, v| v)
    }

    /// Spline values at the planned points for ordinates `y`, each rounded to f32 and, where
    /// positive, multiplied by `weight[i]` (0 otherwise).
    pub fn evaluate_weighted(&mut self, y: &[f64], weight: &[f64], out: &mut Vec<f64>) {
        let (n, m) = (self.n, self.lo.len());
        if n < 3 {
            return self.evaluate_with(y, out, |i, v| {
                let v = v as f32 as f64;
                if v > 0.0 {
                    v * weight[i]
                } else {
                    0.0
                }
            });
        }
        self.second_derivatives(y);
        // sized once: every value is written below
        if out.len() != m {
            out.clear();
            out.resize(m, 0.0);
        }
        crate::simd::spline_points(
            out,
            &y[..n],
            &self.y2[..n],
            &self.lo,
            [&self.a, &self.b, &self.ca, &self.cb, &self.h26, weight],
        );
    }

    #[inline(always)]
    fn evaluate_with(&mut self, y: &[f64], out: &mut Vec<f64>, f: impl Fn(usize, f64) -> f64) {
        let n = self.n;
        out.clear();
        if n < 3 {
            out.extend(
                self.lo
                    .iter()
                    .zip(self.a.iter().zip(&self.b))
                    .enumerate()
                    .map(|(i, (&lo, (&a, &b)))| f(i, a * y[lo] + b * y[(lo + 1).min(n - 1)])),
            );
            return;
        }
        self.second_derivatives(y);
        let y2 = &self.y2;
        let m = self.lo.len();
        let (lo, a, b, h26, ca, cb) = (
            &self.lo[..m],
            &self.a[..m],
            &self.b[..m],
            &self.h26[..m],
            &self.ca[..m],
            &self.cb[..m],
        );
        out.extend((0..m).map(|i| {
            let v = if h26[i] == 0.0 {
                0.0
            } else {
                let (l, h) = (lo[i], lo[i] + 1);
                a[i] * y[l] + b[i] * y[h] + (ca[i] * y2[l] + cb[i] * y2[h]) * h26[i]
            };
            f(i, v)
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan's sums as one scalar loop (slopes, sweeps and points in the order the plan
    /// was first written), the reference its vectorised form must equal bit for bit.
    fn scalar_plan_values(x: &[f64], y: &[f64], at: &[f64]) -> Vec<f64> {
        let n = x.len();
        let (mut sig, mut p_inv, mut y2_coef) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        for i in 1..n - 1 {
            sig[i] = (x[i] - x[i - 1]) / (x[i + 1] - x[i - 1]);
            let p = sig[i] * y2_coef[i - 1] + 2.0;
            p_inv[i] = 1.0 / p;
            y2_coef[i] = (sig[i] - 1.0) / p;
        }
        let mut u = vec![0.0; n];
        let mut left = (y[1] - y[0]) / (x[1] - x[0]);
        for i in 1..n - 1 {
            let right = (y[i + 1] - y[i]) / (x[i + 1] - x[i]);
            let d = right - left;
            left = right;
            u[i] = (6.0 * d / (x[i + 1] - x[i - 1]) - sig[i] * u[i - 1]) * p_inv[i];
        }
        let mut y2 = vec![0.0; n];
        for k in (0..n - 1).rev() {
            y2[k] = y2_coef[k] * y2[k + 1] + u[k];
        }
        at.iter()
            .map(|&v| {
                let (mut lo, mut hi) = (0usize, n - 1);
                while hi - lo > 1 {
                    let k = (hi + lo) / 2;
                    if x[k] > v {
                        hi = k;
                    } else {
                        lo = k;
                    }
                }
                let h = x[hi] - x[lo];
                if h == 0.0 {
                    return 0.0;
                }
                let (a, b) = ((x[hi] - v) / h, (v - x[lo]) / h);
                let (ca, cb, h26) = (a * a * a - a, b * b * b - b, h * h / 6.0);
                a * y[lo] + b * y[hi] + (ca * y2[lo] + cb * y2[hi]) * h26
            })
            .collect()
    }

    #[test]
    fn spline_plan_equals_its_scalar_form_bit_for_bit() {
        // knots on a log axis, points denser than knots at the low end and sparser at the high
        // end (as the octave scale over linear bins)
        let x: Vec<f64> = (0..40).map(|i| ((i + 1) as f64).log2()).collect();
        let y: Vec<f64> = (0..40)
            .map(|i| ((i * 7919) % 13) as f64 / 13.0 - 0.2)
            .collect();
        let at: Vec<f64> = (0..60)
            .map(|i| x[0] + i as f64 * (x[39] - x[0]) / 59.0)
            .collect();
        let weight: Vec<f64> = (0..60).map(|i| 0.5 + i as f64 / 120.0).collect();
        let want = scalar_plan_values(&x, &y, &at);
        let mut plan = SplinePlan::new(&x, &at);
        let (mut plain, mut weighted) = (Vec::new(), Vec::new());
        // twice: the second call reuses the plan's buffers
        for _ in 0..2 {
            plan.evaluate(&y, &mut plain);
            plan.evaluate_weighted(&y, &weight, &mut weighted);
            for (i, &w) in want.iter().enumerate() {
                assert_eq!(plain[i].to_bits(), w.to_bits(), "point {i}");
                let r = w as f32 as f64;
                let want_w = if r > 0.0 { r * weight[i] } else { 0.0 };
                assert_eq!(
                    weighted[i].to_bits(),
                    want_w.to_bits(),
                    "weighted point {i}"
                );
            }
        }
        // and the textbook spline to rounding
        let mut y2 = Vec::new();
        natural_spline(&x, &y, &mut y2);
        for (i, &v) in at.iter().enumerate() {
            assert!(
                (plain[i] - spline_eval(&x, &y, &y2, v)).abs() < 1e-12,
                "point {i}"
            );
        }
    }

    #[test]
    fn peak_enhancement_clears_bins_between_distant_peaks() {
        let (mut marks, mut a) = (Vec::new(), Vec::new());
        let x = [0.0, 5.0, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 6.0, 1.0];
        shs_kernels::enhance_peaks(&x, &mut a, &mut marks);
        // peaks at 1 and 8: bins 4..=5 lie more than two bins from both
        assert_eq!(a, vec![0.0, 5.0, 1.0, 0.9, 0.0, 0.0, 0.6, 0.5, 6.0, 1.0]);
        let mut single = Vec::new();
        shs_kernels::enhance_peaks(&[1.0, 2.0, 3.0, 4.0, 3.0, 2.0], &mut single, &mut marks);
        assert_eq!(single, vec![1.0, 2.0, 3.0, 0.0, 0.0, 0.0]);
    }
}
