//! openSMILE's functionals (statistics over a contour) used by eGeMAPS and ComParE:
//! moments (`cFunctionalMoments`), percentiles with linear interpolation
//! (`cFunctionalPercentiles`), peak and slope statistics (`cFunctionalPeaks2`) and segment
//! statistics (`cFunctionalSegments`).
//!
//! Empty input follows openSMILE's convention: every statistic is 0 (never NaN).

/// Keeps only the non-zero values (openSMILE `nonZeroFuncts = 1`).
pub fn non_zero(x: &[f32]) -> Vec<f32> {
    x.iter().copied().filter(|&v| v != 0.0).collect()
}

/// Arithmetic mean (0 for empty input).
pub fn mean(x: &[f32]) -> f64 {
    if x.is_empty() {
        0.0
    } else {
        x.iter().map(|&v| v as f64).sum::<f64>() / x.len() as f64
    }
}

/// Population standard deviation (divides by N; 0 for empty input).
pub fn stddev(x: &[f32]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    let m = mean(x);
    let var = x.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / x.len() as f64;
    if var > 0.0 {
        var.sqrt()
    } else {
        0.0
    }
}

/// Coefficient of variation σ/μ with the sign of μ (openSMILE `stddevNorm = 2`); 0 if μ = 0.
pub fn stddev_norm(x: &[f32]) -> f64 {
    let m = mean(x);
    if m == 0.0 {
        0.0
    } else {
        stddev(x) / m
    }
}

/// Percentile `p` ∈ [0, 1] of `sorted` with linear interpolation between ranks (0 if empty).
pub fn percentile(sorted: &[f32], p: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    let pos = p * (n - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    let frac = pos - lo as f64;
    sorted[lo] as f64 * (1.0 - frac) + sorted[hi] as f64 * frac
}

/// Sorted copy of a contour.
pub fn sorted(x: &[f32]) -> Vec<f32> {
    let mut s = x.to_vec();
    s.sort_by(f32::total_cmp);
    s
}

/// Peak and slope statistics of a contour (`cFunctionalPeaks2`, relative threshold).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PeakStats {
    /// Number of peaks per second.
    pub peaks_per_sec: f64,
    pub mean_rising_slope: f64,
    pub stddev_rising_slope: f64,
    pub mean_falling_slope: f64,
    pub stddev_falling_slope: f64,
}

#[derive(Debug, Clone, Copy)]
struct Extremum {
    is_max: bool,
    y: f64,
    x: usize,
}

/// Peaks and rising/falling slopes of `x` sampled every `period_s` seconds; extrema whose rise
/// or fall is below `rel_thresh` × range are discarded, then alternation is enforced.
pub fn peaks(x: &[f32], period_s: f64, rel_thresh: f64) -> PeakStats {
    let n = x.len();
    if n == 0 {
        return PeakStats::default();
    }
    let v: Vec<f64> = x.iter().map(|&a| a as f64).collect();
    let (min, max) = v
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &a| (lo.min(a), hi.max(a)));
    let thresh = rel_thresh * (max - min);
    let below = |diff: f64| diff < thresh;
    let mut list: Vec<Extremum> = Vec::new();
    for i in 2..n.saturating_sub(2) {
        if v[i] > v[i - 1] && v[i] > v[i + 1] {
            list.push(Extremum {
                is_max: true,
                y: v[i],
                x: i,
            });
        } else if v[i] < v[i - 1] && v[i] < v[i + 1] {
            list.push(Extremum {
                is_max: false,
                y: v[i],
                x: i,
            });
        }
    }
    // step 2a: drop maxima that do not rise enough above the last value and last minimum
    let mut keep = vec![true; list.len()];
    let (mut last_val, mut last_min, mut last_max) = (v[0], v[0], v[0]);
    let mut min_flag = false;
    let mut last_max_idx: Option<usize> = None;
    for k in 0..list.len() {
        let e = list[k];
        if e.is_max {
            if below((e.y - last_val).abs()) {
                if below(e.y - last_min) {
                    keep[k] = false;
                } else {
                    if e.y > last_max * 1.05 {
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
        .filter(|(_, k)| *k)
        .map(|(e, _)| e)
        .collect();
    // step 2b: drop minima that do not fall enough below the last maximum
    let mut last_max = v[0];
    list.retain(|e| {
        if e.is_max {
            last_max = e.y;
            true
        } else {
            !below(last_max - e.y)
        }
    });
    // step 3: enforce alternation, keeping the more extreme of repeated extrema
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
    slope_stats(&v, &alt, period_s)
}

fn slope_stats(v: &[f64], list: &[Extremum], t: f64) -> PeakStats {
    let n = v.len();
    let n_peaks = list.iter().filter(|e| e.is_max).count();
    let (mut rising, mut falling) = (Vec::new(), Vec::new());
    let (mut last_max, mut last_max_pos, mut last_min, mut last_min_pos) =
        (v[0], 0usize, v[0], 0usize);
    let mut last_is_max: Option<bool> = None;
    for e in list {
        if e.is_max {
            last_max = e.y;
            last_max_pos = e.x;
            if last_max_pos > last_min_pos {
                rising.push((last_max - last_min) / ((last_max_pos - last_min_pos) as f64 * t));
                last_is_max = Some(true);
            }
        } else {
            last_min = e.y;
            last_min_pos = e.x;
            if last_min_pos > last_max_pos {
                falling.push((last_max - last_min) / ((last_min_pos - last_max_pos) as f64 * t));
                last_is_max = Some(false);
            }
        }
    }
    // the stddev pass of openSMILE does not see the end-of-input slope
    let (rise_core, fall_core) = (rising.len(), falling.len());
    match last_is_max {
        Some(true) if n - 1 > last_max_pos => {
            falling.push((v[n - 1] - last_max) / ((n - 1 - last_max_pos) as f64 * t));
        }
        Some(false) if n - 1 > last_min_pos => {
            rising.push((v[n - 1] - last_min) / ((n - 1 - last_min_pos) as f64 * t));
        }
        None => {
            let slope = (v[n - 1] - v[0]) / n as f64;
            if slope > 0.0 {
                rising.push(slope);
            } else if slope < 0.0 {
                falling.push(slope);
            }
        }
        _ => {}
    }
    let mean_of = |s: &[f64]| {
        if s.is_empty() {
            0.0
        } else {
            s.iter().sum::<f64>() / s.len() as f64
        }
    };
    let std_of = |s: &[f64], core: usize, m: f64| {
        let ss: f64 = s[..core].iter().map(|x| (x - m).powi(2)).sum();
        let ss = if s.len() > 1 { ss / s.len() as f64 } else { ss };
        if ss > 0.0 {
            ss.sqrt()
        } else {
            0.0
        }
    };
    let mr = mean_of(&rising);
    let mf = mean_of(&falling);
    PeakStats {
        peaks_per_sec: n_peaks as f64 / (n as f64 * t),
        mean_rising_slope: mr,
        stddev_rising_slope: std_of(&rising, rise_core.min(rising.len()), mr),
        mean_falling_slope: mf,
        stddev_falling_slope: std_of(&falling, fall_core.min(falling.len()), mf),
    }
}

/// Segment statistics of the runs where `inside(value)` holds (`cFunctionalSegments`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SegmentStats {
    /// Number of segments per second of contour.
    pub segments_per_sec: f64,
    /// Mean segment length in seconds.
    pub mean_length_s: f64,
    /// Standard deviation of segment lengths in seconds.
    pub stddev_length_s: f64,
}

/// Segment statistics of openSMILE's `nonX` / `eqX` segmenters (`inside` tells whether a frame
/// belongs to a segment: value ≠ X for `nonX`, value = X for `eqX`). A segment opens after
/// `seg_min_len` consecutive inside frames (single outside frames do not interrupt the count),
/// closes after `pause_min_len` consecutive outside frames, and its length is counted from its
/// first to its last inside frame (so a run of k frames lasts k − 1 periods); a segment still open
/// at the end runs to the second-to-last frame. Rates are per second of contour (N frames).
pub fn segments(
    x: &[f32],
    period_s: f64,
    seg_min_len: usize,
    pause_min_len: usize,
    inside: impl Fn(f32) -> bool,
) -> SegmentStats {
    let n = x.len();
    if n == 0 {
        return SegmentStats::default();
    }
    #[derive(PartialEq)]
    enum State {
        Pause,
        Candidate,
        Segment,
    }
    let mut state = State::Pause;
    let (mut seg_start, mut seg_end, mut start_index) = (0usize, 0usize, 0usize);
    let mut lengths: Vec<f64> = Vec::new();
    for (i, &v) in x.iter().enumerate() {
        if inside(v) {
            match state {
                State::Candidate => {
                    seg_end = 0;
                    seg_start += 1;
                    if seg_start >= seg_min_len {
                        seg_start = 0;
                        state = State::Segment;
                    }
                }
                State::Pause => {
                    seg_start += 1;
                    start_index = i;
                    state = State::Candidate;
                }
                State::Segment => seg_end = 0,
            }
        } else {
            match state {
                State::Segment => {
                    seg_start = 0;
                    seg_end += 1;
                    if seg_end >= pause_min_len {
                        state = State::Pause;
                        lengths.push((i - seg_end) as f64 - start_index as f64);
                        seg_end = 0;
                    }
                }
                State::Candidate => {
                    seg_end += 1;
                    if seg_end >= pause_min_len {
                        state = State::Pause;
                        seg_end = 0;
                        seg_start = 0;
                    }
                }
                State::Pause => {}
            }
        }
    }
    if state == State::Segment {
        seg_end += 1;
        lengths.push((n - seg_end) as f64 - start_index as f64);
    }
    if lengths.is_empty() {
        return SegmentStats::default();
    }
    let count = lengths.len() as f64;
    let m = lengths.iter().sum::<f64>() / count;
    let sd = if lengths.len() > 1 {
        (lengths.iter().map(|l| (l - m).powi(2)).sum::<f64>() / count).sqrt()
    } else {
        0.0
    };
    SegmentStats {
        segments_per_sec: count / (n as f64 * period_s),
        mean_length_s: m * period_s,
        stddev_length_s: sd * period_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_inputs_give_zeros() {
        assert_eq!(mean(&[]), 0.0);
        assert_eq!(stddev_norm(&[]), 0.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(peaks(&[], 0.01, 0.1), PeakStats::default());
    }

    #[test]
    fn percentiles_interpolate_linearly() {
        let s = sorted(&[4.0, 1.0, 3.0, 2.0]);
        assert!((percentile(&s, 0.5) - 2.5).abs() < 1e-12);
        assert!((percentile(&s, 0.2) - 1.6).abs() < 1e-6);
    }

    #[test]
    fn a_triangle_has_one_peak_and_matching_slopes() {
        let x: Vec<f32> = (0..21).map(|i| 10.0 - (i as f32 - 10.0).abs()).collect();
        let p = peaks(&x, 0.01, 0.1);
        assert!((p.peaks_per_sec - 1.0 / 0.21).abs() < 1e-9);
        assert!((p.mean_rising_slope - 100.0).abs() < 1e-6);
        assert!((p.mean_falling_slope + 100.0).abs() < 1e-6);
    }
}
