//! ComParE-2016 functionals: the 6,373 statistics of openSMILE's `ComParE_2016` configuration
//! (its `ComParE_2016_core.func.conf.inc`), computed from the LLD and delta contours.
//!
//! Six groups, each one openSMILE `cFunctionals` component, in output order:
//!
//! | group | contours | functionals per contour |
//! |---|---|---|
//! | A | 4 energy LLDs + their deltas | 31: range, maxPos, minPos, quartiles, IQRs, 1st/99th percentile and their range, stddev, skewness, kurtosis, relative-threshold segment lengths, up-level times 25/50/75/90 %, rise time, left-curvature time, LPC gain + 5 LPC coefficients |
//! | B | 55 spectral LLDs + their deltas | the same 31 |
//! | Nz | 6 voicing LLDs + their deltas, zeros (unvoiced frames) removed | 39: amean, flatness, posamean, rqmean, range, maxPos, minPos, linear and quadratic regression (inputs normalised to 0..1), centroid, the percentiles, moments, times and LPC of A |
//! | F0 | `F0final_sma` (as `F0final_sma_ff0`) | 5: share of voiced frames, voiced-segment lengths (mean, max, min, stddev) |
//! | LLD | the 59 energy and spectral LLDs | 23: amean, flatness, rqmean, 12 peak/slope statistics, regression in units of seconds |
//! | Delta | the 59 energy and spectral deltas | 15: flatness, posamean, rqmean, the 12 peak/slope statistics |
//!
//! Numerics follow openSMILE 3.0's `cFunctional*` components (public source,
//! github.com/audeering/opensmile, `src/functionals/`): values are single precision between
//! components; percentiles interpolate linearly between ranks; time-like outputs are relative to
//! the contour length (`segment`) except segment lengths and peak distances (seconds).
//!
//! **Contour lengths.** SMILExtract computes the functionals when its end-of-input pass reaches
//! them, before the smoothers and delta filters have flushed their last rows, so each group sees
//! a few rows less than the LLD output holds. With `A` the energy-level length (the LLD row
//! count) and `B` the spectral-level length (one more than the number of 20 ms frames): group A
//! reads `A − 3` rows, group B `B − 3`, LLD `A − 1`, Delta `A − 3`, Nz `A − 3` and F0 `A − 2`
//! (measured on SMILExtract's level dumps; PARITY.md). The voicing chain is delayed further by
//! the Viterbi pitch smoother's data-dependent lag when a file is voiced up to its end; that lag
//! is not modelled (PARITY.md states its effect).

use super::{delta_name, LLD_NAMES};
use crate::FeatureVector;

/// Number of ComParE-2016 functionals.
pub const N_FUNCTIONALS: usize = 6373;

/// The contours the functionals read, column-major, each column at its own level length.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Levels {
    /// The 65 smoothed LLDs (`LLD_NAMES` order); voicing and energy columns have the LLD row
    /// count, spectral columns the (longer) length of the 20 ms stream.
    pub lld: Vec<Vec<f32>>,
    /// The 65 deltas, same lengths as their LLD column.
    pub deltas: Vec<Vec<f32>>,
    /// Spacing of the rows in seconds (`hop / sample_rate`).
    pub period_s: f64,
}

const VOICING: std::ops::Range<usize> = 0..6;
const ENERGY: std::ops::Range<usize> = 6..10;
const SPECTRAL: std::ops::Range<usize> = 10..65;

const NAMES_FULL: [&str; 31] = [
    "range",
    "maxPos",
    "minPos",
    "quartile1",
    "quartile2",
    "quartile3",
    "iqr1-2",
    "iqr2-3",
    "iqr1-3",
    "percentile1.0",
    "percentile99.0",
    "pctlrange0-1",
    "stddev",
    "skewness",
    "kurtosis",
    "meanSegLen",
    "maxSegLen",
    "minSegLen",
    "segLenStddev",
    "upleveltime25",
    "upleveltime50",
    "upleveltime75",
    "upleveltime90",
    "risetime",
    "leftctime",
    "lpgain",
    "lpc0",
    "lpc1",
    "lpc2",
    "lpc3",
    "lpc4",
];
const NAMES_NZ: [&str; 39] = [
    "amean",
    "flatness",
    "posamean",
    "rqmean",
    "range",
    "maxPos",
    "minPos",
    "linregc1",
    "linregc2",
    "linregerrQ",
    "qregc1",
    "qregc2",
    "qregc3",
    "qregerrQ",
    "centroid",
    "quartile1",
    "quartile2",
    "quartile3",
    "iqr1-2",
    "iqr2-3",
    "iqr1-3",
    "percentile1.0",
    "percentile99.0",
    "pctlrange0-1",
    "stddev",
    "skewness",
    "kurtosis",
    "upleveltime25",
    "upleveltime50",
    "upleveltime75",
    "upleveltime90",
    "risetime",
    "leftctime",
    "lpgain",
    "lpc0",
    "lpc1",
    "lpc2",
    "lpc3",
    "lpc4",
];
const NAMES_F0: [&str; 5] = [
    "nnz",
    "meanSegLen",
    "maxSegLen",
    "minSegLen",
    "segLenStddev",
];
const NAMES_PEAKS: [&str; 12] = [
    "meanPeakDist",
    "peakDistStddev",
    "peakRangeAbs",
    "peakRangeRel",
    "peakMeanAbs",
    "peakMeanMeanDist",
    "peakMeanRel",
    "minRangeRel",
    "meanRisingSlope",
    "stddevRisingSlope",
    "meanFallingSlope",
    "stddevFallingSlope",
];
const NAMES_REGRESSION: [&str; 8] = [
    "linregc1",
    "linregc2",
    "linregerrQ",
    "qregc1",
    "qregc2",
    "qregc3",
    "qregerrQ",
    "centroid",
];

/// The contour (input) names of each group, in output order.
fn group_inputs() -> [(Group, Vec<String>); 6] {
    let lld = |r: std::ops::Range<usize>| -> Vec<String> {
        r.map(|c| LLD_NAMES[c].to_string()).collect()
    };
    let de = |r: std::ops::Range<usize>| -> Vec<String> {
        r.map(|c| delta_name(LLD_NAMES[c])).collect()
    };
    let cat = |a: Vec<String>, b: Vec<String>| a.into_iter().chain(b).collect::<Vec<_>>();
    [
        (Group::Full, cat(lld(ENERGY), de(ENERGY))),
        (Group::Full, cat(lld(SPECTRAL), de(SPECTRAL))),
        (Group::Voiced, cat(lld(VOICING), de(VOICING))),
        (Group::F0, vec![format!("{}_ff0", LLD_NAMES[0])]),
        (Group::Lld, cat(lld(ENERGY), lld(SPECTRAL))),
        (Group::Delta, cat(de(ENERGY), de(SPECTRAL))),
    ]
}

#[derive(Clone, Copy)]
enum Group {
    Full,
    Voiced,
    F0,
    Lld,
    Delta,
}

impl Group {
    fn names(self) -> Vec<&'static str> {
        match self {
            Group::Full => NAMES_FULL.to_vec(),
            Group::Voiced => NAMES_NZ.to_vec(),
            Group::F0 => NAMES_F0.to_vec(),
            Group::Lld => ["amean", "flatness", "rqmean"]
                .into_iter()
                .chain(NAMES_PEAKS)
                .chain(NAMES_REGRESSION)
                .collect(),
            Group::Delta => ["flatness", "posamean", "rqmean"]
                .into_iter()
                .chain(NAMES_PEAKS)
                .collect(),
        }
    }
}

/// The 6,373 functional names in openSMILE's order.
pub fn functional_names() -> Vec<String> {
    let mut out = Vec::with_capacity(N_FUNCTIONALS);
    for (group, inputs) in group_inputs() {
        let funcs = group.names();
        for input in &inputs {
            out.extend(funcs.iter().map(|f| format!("{input}_{f}")));
        }
    }
    out
}

/// The 6,373 functionals of one file's contours.
pub fn functionals(levels: &Levels) -> FeatureVector {
    let period = levels.period_s;
    let a_len = levels.lld.get(ENERGY.start).map_or(0, Vec::len);
    let b_len = levels.lld.get(SPECTRAL.start).map_or(0, Vec::len);
    let take = |col: &[f32], n: usize| -> Vec<f32> { col[..n.min(col.len())].to_vec() };
    let mut values = Vec::with_capacity(N_FUNCTIONALS);

    // group A and B: relative-threshold segments, percentiles, moments, times, LPC
    for (range, len) in [(ENERGY, a_len), (SPECTRAL, b_len)] {
        let n = len.saturating_sub(3);
        for cols in [&levels.lld, &levels.deltas] {
            for c in range.clone() {
                full_set(&take(&cols[c], n), period, &mut values);
            }
        }
    }
    // group Nz: voiced frames only
    let n = a_len.saturating_sub(3);
    for cols in [&levels.lld, &levels.deltas] {
        for c in VOICING {
            let x: Vec<f32> = take(&cols[c], n)
                .into_iter()
                .filter(|&v| v != 0.0)
                .collect();
            voiced_set(&x, &mut values);
        }
    }
    // group F0: voicing share and voiced segments
    f0_set(
        &take(&levels.lld[0], a_len.saturating_sub(2)),
        period,
        &mut values,
    );
    // group LLD and Delta
    let n = a_len.saturating_sub(1);
    for c in ENERGY.chain(SPECTRAL) {
        lld_set(&take(&levels.lld[c], n), period, &mut values);
    }
    let n = a_len.saturating_sub(3);
    for c in ENERGY.chain(SPECTRAL) {
        delta_set(&take(&levels.deltas[c], n), period, &mut values);
    }
    debug_assert_eq!(values.len(), N_FUNCTIONALS);
    FeatureVector {
        names: functional_names(),
        values,
    }
}

// ---------------------------------------------------------------------------------------------
// the groups

fn full_set(x: &[f32], period: f64, out: &mut Vec<f32>) {
    let Some(s) = Summary::of(x) else {
        out.extend([0.0; 31]);
        return;
    };
    extremes(&s, out);
    percentiles(&s, out);
    moments(&s, out);
    segments_rel_threshold(&s, period, out);
    times(&s, out);
    lpc(x, out);
}

fn voiced_set(x: &[f32], out: &mut Vec<f32>) {
    let Some(s) = Summary::of(x) else {
        out.extend([0.0; 39]);
        return;
    };
    let m = means(&s);
    out.extend([s.mean, m.flatness, m.posamean, m.rqmean]);
    extremes(&s, out);
    regression(&s, None, out);
    percentiles(&s, out);
    moments(&s, out);
    times(&s, out);
    lpc(x, out);
}

fn f0_set(x: &[f32], period: f64, out: &mut Vec<f32>) {
    if x.is_empty() {
        out.extend([0.0; 5]);
        return;
    }
    let nnz = x.iter().filter(|&&v| v != 0.0).count();
    out.push(nnz as f32 / x.len() as f32);
    segments_non_zero(x, period, out);
}

fn lld_set(x: &[f32], period: f64, out: &mut Vec<f32>) {
    let Some(s) = Summary::of(x) else {
        out.extend([0.0; 23]);
        return;
    };
    let m = means(&s);
    out.extend([s.mean, m.flatness, m.rqmean]);
    peaks(&s, period, out);
    regression(&s, Some(period), out);
}

fn delta_set(x: &[f32], period: f64, out: &mut Vec<f32>) {
    let Some(s) = Summary::of(x) else {
        out.extend([0.0; 15]);
        return;
    };
    let m = means(&s);
    out.extend([m.flatness, m.posamean, m.rqmean]);
    peaks(&s, period, out);
}

// ---------------------------------------------------------------------------------------------
// the statistics (cFunctional* components)

/// A contour with the values every component receives: min, max and mean (single precision).
struct Summary<'a> {
    x: &'a [f32],
    min: f32,
    max: f32,
    mean: f32,
    sorted: Vec<f32>,
}

impl<'a> Summary<'a> {
    fn of(x: &'a [f32]) -> Option<Summary<'a>> {
        let first = *x.first()?;
        let (mut min, mut max, mut sum) = (first, first, first as f64);
        for &v in &x[1..] {
            min = min.min(v);
            max = max.max(v);
            sum += v as f64;
        }
        let mut sorted = x.to_vec();
        sorted.sort_by(f32::total_cmp);
        Some(Summary {
            x,
            min,
            max,
            mean: (sum / x.len() as f64) as f32,
            sorted,
        })
    }

    fn n(&self) -> usize {
        self.x.len()
    }
}

struct Means {
    flatness: f32,
    posamean: f32,
    rqmean: f32,
}

/// `cFunctionalMeans`: flatness (geometric mean of |x| over non-zero values / mean |x|),
/// mean of the positive values, root mean square.
fn means(s: &Summary) -> Means {
    let n = s.n() as f64;
    let (mut abs, mut sq, mut log_nz, mut nnz, mut pos, mut n_pos) =
        (0.0, 0.0, 0.0, 0usize, 0.0, 0usize);
    for &v in s.x {
        let v = v as f64;
        abs += v.abs();
        sq += v * v;
        if v != 0.0 {
            log_nz += v.abs().ln();
            nnz += 1;
        }
        if v > 0.0 {
            pos += v;
            n_pos += 1;
        }
    }
    let absmean = abs / n;
    let gmean = if nnz > 0 {
        (log_nz / nnz as f64).exp()
    } else {
        0.0
    };
    Means {
        flatness: if absmean != 0.0 {
            (gmean / absmean) as f32
        } else {
            1.0
        },
        posamean: if n_pos > 0 {
            (pos / n_pos as f64) as f32
        } else {
            0.0
        },
        rqmean: (sq / n).sqrt() as f32,
    }
}

/// `cFunctionalExtremes`: range and the first positions of the maximum and minimum relative to
/// the contour length.
fn extremes(s: &Summary, out: &mut Vec<f32>) {
    let n = s.n() as f32;
    let pos = |target: f32| s.x.iter().position(|&v| v == target).unwrap_or(0) as f32 / n;
    out.extend([s.max - s.min, pos(s.max), pos(s.min)]);
}

/// Linearly interpolated percentile of a sorted contour (`cFunctionalPercentiles`, interp=1).
fn percentile(sorted: &[f32], p: f64) -> f32 {
    let n = sorted.len();
    let idx = p * (n - 1) as f64;
    let i1 = (idx.floor() as usize).min(n - 1);
    let i2 = (idx.ceil() as usize).min(n - 1);
    if i1 == i2 {
        return sorted[i1];
    }
    let (w1, w2) = (idx - i1 as f64, i2 as f64 - idx);
    sorted[i1] * w2 as f32 + sorted[i2] * w1 as f32
}

fn percentiles(s: &Summary, out: &mut Vec<f32>) {
    let [q1, q2, q3, p1, p99] = [0.25, 0.5, 0.75, 0.01, 0.99].map(|p| percentile(&s.sorted, p));
    out.extend([
        q1,
        q2,
        q3,
        q2 - q1,
        q3 - q2,
        q3 - q1,
        p1,
        p99,
        (p99 - p1).abs(),
    ]);
}

/// `cFunctionalMoments`: population standard deviation, skewness, kurtosis.
fn moments(s: &Summary, out: &mut Vec<f32>) {
    let n = s.n() as f64;
    let mean = s.mean as f64;
    let (mut m2, mut m3, mut m4) = (0.0, 0.0, 0.0);
    for &v in s.x {
        let d = v as f64 - mean;
        let d2 = d * d;
        m2 += d2;
        m3 += d2 * d;
        m4 += d2 * d2;
    }
    m2 /= n;
    if m2 > 0.0 {
        let sd = m2.sqrt();
        out.extend([
            sd as f32,
            (m3 / (n * m2 * sd)) as f32,
            (m4 / (n * m2 * m2)) as f32,
        ]);
    } else {
        out.extend([0.0; 3]);
    }
}

/// Segment-length statistics in seconds (`cFunctionalSegments`, norm = second): mean, max, min,
/// population standard deviation of the lengths in frames, times the frame period.
fn segment_lengths(lengths: &[i64], period: f64, out: &mut Vec<f32>) {
    let n = lengths.len();
    let total: i64 = lengths.iter().sum();
    let mean = if n > 1 {
        total as f32 / n as f32
    } else {
        total as f32
    };
    let mut dev = 0.0f32;
    for &l in lengths {
        dev += (l as f32 - mean) * (l as f32 - mean);
    }
    let dev = if n > 1 { (dev / n as f32).sqrt() } else { 0.0 };
    let max = lengths.iter().copied().max().unwrap_or(0);
    let min = lengths.iter().copied().min().unwrap_or(0);
    let t = period as f32;
    out.extend([mean * t, max as f32 * t, min as f32 * t, dev * t]);
}

const MAX_SEGMENTS: usize = 100;

/// `relTh` segmentation with thresholds at 25 % and 75 % of the range: a boundary wherever the
/// 3-frame running average crosses a threshold, at least `N/100 − 1` (≥ 2) frames after the
/// previous one; each segment runs from one boundary to the next.
fn segments_rel_threshold(s: &Summary, period: f64, out: &mut Vec<f32>) {
    let n = s.n() as i64;
    let range = s.max - s.min;
    let thresholds = [0.25f32, 0.75].map(|t| s.min + range * t);
    let min_len = (n / MAX_SEGMENTS as i64 - 1).max(2);
    let mut last = -(min_len / 2);
    let (mut ravg, mut ra_last) = (0.0f32, 0.0f32);
    let mut lengths = Vec::new();
    for i in 0..s.n() {
        ravg += s.x[i];
        if i >= 3 {
            ravg -= s.x[i - 3];
        }
        let ra = ravg / (i + 1).min(3) as f32;
        let cross = thresholds
            .iter()
            .any(|&t| (ra > t && ra_last <= t) || (ra < t && ra_last >= t));
        ra_last = ra;
        if cross && i as i64 - last > min_len {
            if lengths.len() < MAX_SEGMENTS {
                lengths.push(i as i64 - last);
            }
            last = i as i64;
        }
    }
    segment_lengths(&lengths, period, out);
}

/// `nonX` segmentation with X = 0 (voiced segments of F0): a segment opens after 3 non-zero
/// frames and closes after 2 zero frames.
fn segments_non_zero(x: &[f32], period: f64, out: &mut Vec<f32>) {
    const SEG_MIN: usize = 3;
    const PAUSE_MIN: usize = 2;
    let (mut state, mut seg_start, mut seg_end, mut start_index) = (0u8, 0usize, 0usize, 0i64);
    let mut lengths = Vec::new();
    let add = |end: i64, start: i64, lengths: &mut Vec<i64>| {
        if lengths.len() < MAX_SEGMENTS {
            lengths.push(end - start);
        }
    };
    for (i, &v) in x.iter().enumerate() {
        if v != 0.0 {
            match state {
                1 => {
                    seg_end = 0;
                    seg_start += 1;
                    if seg_start >= SEG_MIN {
                        seg_start = 0;
                        state = 2;
                    }
                }
                0 => {
                    seg_start += 1;
                    start_index = i as i64;
                    state = 1;
                }
                _ => seg_end = 0,
            }
        } else if state == 2 {
            seg_start = 0;
            seg_end += 1;
            if seg_end >= PAUSE_MIN {
                state = 0;
                add(i as i64 - seg_end as i64, start_index, &mut lengths);
                seg_end = 0;
            }
        } else if state == 1 {
            seg_end += 1;
            if seg_end >= PAUSE_MIN {
                state = 0;
                seg_end = 0;
                seg_start = 0;
            }
        }
    }
    if state == 2 {
        seg_end += 1;
        add(x.len() as i64 - seg_end as i64, start_index, &mut lengths);
    }
    segment_lengths(&lengths, period, out);
}

/// `cFunctionalTimes` (norm = segment): share of frames above 25/50/75/90 % of the range, share
/// of rising steps, share of left-curved (convex) points.
fn times(s: &Summary, out: &mut Vec<f32>) {
    let x = s.x;
    let n = x.len();
    let nf = n as f32;
    let range = s.max - s.min;
    let levels = [0.25f32, 0.5, 0.75, 0.9].map(|l| l * range + s.min);
    for l in levels {
        let below = x.iter().filter(|&&v| v <= l).count();
        out.push((n - below) as f32 / nf);
    }
    let rises = x.windows(2).filter(|w| w[0] < w[1]).count();
    let left = x
        .windows(3)
        .filter(|w| {
            let (a1, a2) = (w[1] - w[0], w[2] - w[1]);
            !(a2 < a1) && a1 < a2
        })
        .count();
    let (n1, n2) = (nf - 1.0, nf - 2.0);
    out.push(if n1 != 0.0 { rises as f32 / n1 } else { 0.0 });
    out.push(if n2 != 0.0 { left as f32 / n2 } else { 0.0 });
}

/// `cFunctionalLpc`: order-5 LPC of the contour by the autocorrelation method (Levinson–Durbin,
/// single precision), gain divided by the contour length, then the 5 coefficients.
fn lpc(x: &[f32], out: &mut Vec<f32>) {
    const ORDER: usize = 5;
    let n = x.len();
    let mut r = [0.0f32; ORDER + 1];
    for (lag, acf) in r.iter_mut().enumerate() {
        for i in lag..n {
            *acf += x[i] * x[i - lag];
        }
    }
    let mut a = [0.0f32; ORDER];
    let mut gain = 0.0f32;
    if r[0] != 0.0 {
        let mut e = r[0];
        for m in 1..=ORDER {
            let mut sum = r[m];
            for i in 1..m {
                sum += a[i - 1] * r[m - i];
            }
            let k = (-1.0 / e) * sum;
            a[m - 1] = k;
            for i in 1..=m / 2 {
                let prev = a[i - 1];
                a[i - 1] += k * a[m - i - 1];
                if i < m / 2 || m & 1 == 1 {
                    a[m - i - 1] += k * prev;
                }
            }
            e *= 1.0 - k * k;
            if e == 0.0 {
                for v in a.iter_mut().skip(m) {
                    *v = 0.0;
                }
                break;
            }
        }
        gain = e;
    }
    out.push(gain / n as f32);
    out.extend(a);
}

/// openSMILE's soft limiter: linear within ±`limit`, then a tanh curve converging to
/// ±(`limit` + `excess`).
fn ratio_limit(x: f32, limit: f32, excess: f32) -> f32 {
    let tanh = |v: f64| 2.0 * (1.0 / (1.0 + (-2.0 * v).exp())) as f32 as f64 - 1.0;
    let (x, l, e) = (x as f64, limit as f64, excess as f64);
    if x > l {
        (tanh(((x - l + 1.0).sqrt() - 1.0) / (e * 0.5)) as f32 as f64 * e + l) as f32
    } else if x < -l {
        (tanh(-((-(x + l) + 1.0).sqrt() - 1.0) / (e * 0.5)) as f32 as f64 * e - l) as f32
    } else {
        x as f32
    }
}

/// `cFunctionalRegression` with inputs normalised to 0..1 by the range and soft-limited slopes:
/// linear slope and offset, its mean squared error, quadratic coefficients and error, and the
/// centroid of |x| relative to the length. `seconds`: slopes per second of this frame period
/// (normRegCoeff = 2), otherwise per frame.
fn regression(s: &Summary, seconds: Option<f64>, out: &mut Vec<f32>) {
    let x = s.x;
    let nd = x.len() as f64;
    let (min, mean) = (s.min as f64, s.mean as f64);
    let mut range = (s.max - s.min) as f64;
    let range_inv = if range <= 0.0 {
        range = 1.0;
        0.0
    } else {
        1.0 / range
    };
    let (mut num, mut num2, mut num_abs, mut asum_abs) = (0.0, 0.0, 0.0, 0.0);
    for (i, &v) in x.iter().enumerate() {
        let (v, ii) = (v as f64, i as f64);
        asum_abs += v.abs();
        num_abs += v.abs() * ii;
        num += v * ii;
        num2 += v * ii * ii;
    }
    let asum = mean * nd;
    let mut centroid = if asum_abs != 0.0 {
        num_abs / asum_abs
    } else {
        0.0
    };
    centroid = ratio_limit(centroid as f32, nd as f32, nd as f32) as f64 / nd;

    let (mut m, mut t, mut a, mut b, mut c);
    if x.len() > 1 {
        let nnm1 = nd * (nd - 1.0);
        let s1 = nnm1 / 2.0;
        let s2 = nnm1 * (2.0 * nd - 1.0) / 6.0;
        let s1ds2 = s1 / s2;
        let den = nd - s1 * s1ds2;
        t = if den == 0.0 {
            0.0
        } else {
            (asum - num * s1ds2) / den
        };
        m = (num - t * s1) / s2;
        let s3 = s1 * s1;
        let nd1 = nd - 1.0;
        let s4 = s2 * (3.0 * (nd1 * nd1 + nd1) - 1.0) / 5.0;
        let det = s4 * s2 * nd + 2.0 * s3 * s1 * s2 - s2 * s2 * s2 - s3 * s3 * nd - s3 * s4;
        if det != 0.0 {
            a = ((s2 * nd - s3) * num2 + (s1 * s2 - s3 * nd) * num + (s3 * s1 - s2 * s2) * asum)
                / det;
            b = ((s1 * s2 - s3 * nd) * num2
                + (s4 * nd - s2 * s2) * num
                + (s3 * s2 - s4 * s1) * asum)
                / det;
            c = ((s3 * s1 - s2 * s2) * num2
                + (s3 * s2 - s4 * s1) * num
                + (s4 * s2 - s3 * s3) * asum)
                / det;
        } else {
            (a, b, c) = (0.0, 0.0, 0.0);
        }
    } else {
        m = 0.0;
        t = x[0] as f64;
        c = t;
        a = 0.0;
        b = 0.0;
    }
    let (mut leq, mut qeq) = (0.0, 0.0);
    for (i, &v) in x.iter().enumerate() {
        let ii = i as f64;
        let e = (v as f64 - (m * ii + t)) * range_inv;
        leq += e * e;
        let e = (v as f64 - (a * ii * ii + b * ii + c)) * range_inv;
        qeq += e * e;
    }
    let lim = (range / 10.0) as f32;
    let lim_excess = (range / 10.0 + 0.01) as f32;
    m = ratio_limit(m as f32, lim, lim_excess) as f64;
    let qlim = (range / 10.0).sqrt();
    a = ratio_limit(a as f32, qlim as f32, (qlim + 0.01) as f32) as f64;
    b = ratio_limit(b as f32, lim, lim_excess) as f64;
    if let Some(period) = seconds {
        let per_s = 1.0 / period;
        m *= per_s;
        a *= per_s * per_s;
        b *= per_s;
    }
    m *= range_inv;
    t = (t - min) * range_inv;
    a *= range_inv;
    b *= range_inv;
    c = (c - min) * range_inv;
    let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
    out.extend(
        [
            finite(m),
            finite(t),
            finite(leq / nd),
            finite(a),
            finite(b),
            finite(c),
            finite(qeq / nd),
            finite(centroid),
        ]
        .map(|v| v as f32),
    );
}

#[derive(Clone, Copy)]
struct Extremum {
    is_max: bool,
    y: f32,
    x: usize,
}

/// `cFunctionalPeaks2` (relative threshold 0.1 of the range, norm = seconds): local maxima and
/// minima after removing those that do not rise/fall enough and enforcing alternation; peak
/// distances, peak and minimum ranges and means, rising and falling slopes.
fn peaks(s: &Summary, period: f64, out: &mut Vec<f32>) {
    let x = s.x;
    let n = x.len();
    let range = s.max - s.min;
    let thresh = 0.1f32 * range;
    let below = |d: f32| d < thresh;
    let mut list: Vec<Extremum> = Vec::new();
    for i in 2..n.saturating_sub(2) {
        if x[i] > x[i - 1] && x[i] > x[i + 1] {
            list.push(Extremum {
                is_max: true,
                y: x[i],
                x: i,
            });
        } else if x[i] < x[i - 1] && x[i] < x[i + 1] {
            list.push(Extremum {
                is_max: false,
                y: x[i],
                x: i,
            });
        }
    }
    // pass 1: maxima that do not rise enough
    let mut keep = vec![true; list.len()];
    let (mut last_val, mut last_min, mut last_max) = (x[0], x[0], x[0]);
    let mut min_flag = false;
    let mut last_max_idx: Option<usize> = None;
    for k in 0..list.len() {
        let e = list[k];
        if e.is_max {
            if below((e.y - last_val).abs()) {
                if below(e.y - last_min) {
                    keep[k] = false;
                } else {
                    if e.y as f64 > last_max as f64 * 1.05 {
                        if let Some(p) = last_max_idx {
                            keep[p] = false;
                        }
                        last_max = e.y;
                        last_max_idx = Some(k);
                    } else if min_flag {
                        last_max = e.y;
                        last_max_idx = Some(k);
                    } else {
                        keep[k] = false;
                    }
                    min_flag = false;
                }
            } else {
                min_flag = false;
                last_max = e.y;
                last_max_idx = Some(k);
            }
        } else if !below((e.y - last_val).abs()) {
            min_flag = true;
            last_min = e.y;
        }
        last_val = e.y;
    }
    let mut list: Vec<Extremum> = list
        .into_iter()
        .zip(keep)
        .filter_map(|(e, k)| k.then_some(e))
        .collect();
    // pass 2: minima that do not fall enough below the last maximum
    let mut last_max = x[0];
    list.retain(|e| {
        if e.is_max {
            last_max = e.y;
            true
        } else {
            !below(last_max - e.y)
        }
    });
    // pass 3: alternation, keeping the more extreme of repeated extrema
    let mut alt: Vec<Extremum> = Vec::new();
    for e in list {
        match alt.last_mut() {
            Some(prev) if prev.is_max == e.is_max => {
                let better = if e.is_max { e.y > prev.y } else { e.y < prev.y };
                if better {
                    *prev = e;
                }
            }
            _ => alt.push(e),
        }
    }
    let list = alt;

    // peak and minimum statistics
    let (mut peak_max, mut peak_min, mut peak_dist, mut peak_mean) =
        (0.0f32, 0.0f32, 0.0f32, 0.0f32);
    let (mut n_peaks, mut n_peak_dist) = (0usize, 0usize);
    let (mut min_max, mut min_min) = (0.0f32, 0.0f32);
    let (mut last_max_e, mut last_min_e): (Option<Extremum>, Option<Extremum>) = (None, None);
    for e in &list {
        if e.is_max {
            match last_max_e {
                None => {
                    peak_min = e.y;
                    peak_max = e.y;
                }
                Some(p) => {
                    n_peak_dist += 1;
                    peak_dist += (e.x - p.x) as f32;
                    peak_min = peak_min.min(e.y);
                    peak_max = peak_max.max(e.y);
                }
            }
            last_max_e = Some(*e);
            peak_mean += e.y;
            n_peaks += 1;
        } else {
            match last_min_e {
                None => {
                    min_min = e.y;
                    min_max = e.y;
                }
                Some(_) => {
                    min_min = min_min.min(e.y);
                    min_max = min_max.max(e.y);
                }
            }
            last_min_e = Some(*e);
        }
    }
    if n_peaks > 1 {
        peak_mean /= n_peaks as f32;
        if n_peak_dist > 1 {
            peak_dist /= n_peak_dist as f32;
        }
    }
    // openSMILE measures the spread of peak distances from the preceding minimum
    let mut peak_sd = 0.0f32;
    let (mut seen_max, mut last_min_x) = (false, None::<usize>);
    for e in &list {
        if e.is_max {
            if seen_max {
                let d = (e.x as f32 - last_min_x.unwrap_or(e.x) as f32) - peak_dist;
                peak_sd += d * d;
            }
            seen_max = true;
        } else {
            last_min_x = Some(e.x);
        }
    }
    if n_peak_dist > 1 {
        peak_sd /= n_peak_dist as f32;
    }
    let peak_sd = if peak_sd > 0.0 { peak_sd.sqrt() } else { 0.0 };

    // slopes
    let t = period as f32;
    let (mut rising, mut falling) = (Vec::new(), Vec::new());
    let (mut lmax, mut lmax_pos, mut lmin, mut lmin_pos) = (x[0], 0usize, x[0], 0usize);
    let mut last_is_max: Option<bool> = None;
    for e in &list {
        if e.is_max {
            lmax = e.y;
            lmax_pos = e.x;
            if lmax_pos > lmin_pos {
                rising.push((lmax - lmin) / ((lmax_pos - lmin_pos) as f32 * t));
                last_is_max = Some(true);
            }
        } else {
            lmin = e.y;
            lmin_pos = e.x;
            if lmin_pos > lmax_pos {
                falling.push((lmax - lmin) / ((lmin_pos - lmax_pos) as f32 * t));
                last_is_max = Some(false);
            }
        }
    }
    let (rise_core, fall_core) = (rising.len(), falling.len());
    match last_is_max {
        Some(true) if n - 1 > lmax_pos => {
            falling.push((x[n - 1] - lmax) / ((n - 1 - lmax_pos) as f32 * t));
        }
        Some(false) if n - 1 > lmin_pos => {
            rising.push((x[n - 1] - lmin) / ((n - 1 - lmin_pos) as f32 * t));
        }
        None => {
            let slope = (x[n - 1] - x[0]) / n as f32;
            if slope > 0.0 {
                rising.push(slope);
            } else if slope < 0.0 {
                falling.push(slope);
            }
        }
        _ => {}
    }
    let mean_of = |v: &[f32]| -> f32 {
        let mut sum = 0.0f32;
        for &s in v {
            sum += s;
        }
        if v.len() > 1 {
            sum / v.len() as f32
        } else {
            sum
        }
    };
    let sd_of = |v: &[f32], core: usize, mean: f32| -> f32 {
        let mut ss = 0.0f32;
        for &s in &v[..core] {
            ss += (s - mean) * (s - mean);
        }
        if v.len() > 1 {
            ss /= v.len() as f32;
        }
        if ss > 0.0 {
            ss.sqrt()
        } else {
            0.0
        }
    };
    let (mr, mf) = (mean_of(&rising), mean_of(&falling));
    let peak_range = peak_max - peak_min;
    let rel_unity = |v: f32| v.clamp(-1.0, 1.0);
    out.extend([
        peak_dist * t,
        peak_sd * t,
        peak_range,
        if range != 0.0 {
            rel_unity((peak_range / range).abs())
        } else {
            peak_range
        },
        peak_mean,
        peak_mean - s.mean,
        if s.mean != 0.0 {
            ratio_limit(peak_mean / s.mean, 10.0, 10.0)
        } else {
            20.0
        },
        if range != 0.0 {
            rel_unity(((min_max - min_min) / range).abs())
        } else {
            min_max - min_min
        },
        mr,
        sd_of(&rising, rise_core, mr),
        mf,
        sd_of(&falling, fall_core, mf),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::N_LLD;

    #[test]
    fn names_count_and_order() {
        let names = functional_names();
        assert_eq!(names.len(), N_FUNCTIONALS);
        assert_eq!(names[0], "audspec_lengthL1norm_sma_range");
        assert_eq!(
            names[N_FUNCTIONALS - 1],
            "mfcc_sma_de[14]_stddevFallingSlope"
        );
        assert!(names.contains(&"F0final_sma_ff0_nnz".to_string()));
    }

    #[test]
    fn percentile_and_lpc_of_simple_contours() {
        let s = [1.0f32, 2.0, 3.0, 4.0];
        assert!((percentile(&s, 0.5) - 2.5).abs() < 1e-6);
        // an AR(1)-like geometric contour has a dominant first coefficient
        let x: Vec<f32> = (0..200).map(|i| 0.9f32.powi(i)).collect();
        let mut out = Vec::new();
        lpc(&x, &mut out);
        assert!((out[1] + 0.9).abs() < 0.05, "{out:?}");
    }

    #[test]
    fn empty_levels_give_zeros() {
        let levels = Levels {
            lld: vec![Vec::new(); N_LLD],
            deltas: vec![Vec::new(); N_LLD],
            period_s: 0.01,
        };
        let v = functionals(&levels);
        assert_eq!(v.values.len(), N_FUNCTIONALS);
        assert!(v.values.iter().all(|&x| x == 0.0));
    }
}
