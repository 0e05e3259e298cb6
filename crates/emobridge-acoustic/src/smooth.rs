//! Contour filters of openSMILE: the `sma` moving average (`cContourSmoother`) and the `de`
//! regression deltas (`cDeltaRegression`).
//!
//! Both pad the contour at its ends by repeating the first and last value. For `sma` this is
//! confirmed on SMILExtract's eGeMAPS output (a constant contour keeps its value at frame 0 and
//! at the last frame); for `delta` it is the same window-processor padding, checked by the
//! ComParE `_de` parity tests rather than here.

/// Symmetric moving average over `window` frames (odd; 3 gives openSMILE's `_sma3`).
pub fn sma(x: &[f32], window: usize) -> Vec<f32> {
    let half = (window / 2) as isize;
    let n = x.len() as isize;
    (0..n)
        .map(|t| {
            let sum: f64 = (-half..=half)
                .map(|k| x[(t + k).clamp(0, n - 1) as usize] as f64)
                .sum();
            (sum / (2 * half + 1) as f64) as f32
        })
        .collect()
}

/// Moving average that ignores zeros (openSMILE `noZeroSma = 1`, the `_sma3nz` contours): a zero
/// frame (unvoiced) stays zero, a non-zero frame becomes the mean of the non-zero frames in its
/// window.
pub fn sma_nonzero(x: &[f32], window: usize) -> Vec<f32> {
    let half = (window / 2) as isize;
    let n = x.len() as isize;
    (0..n)
        .map(|t| {
            if x[t as usize] == 0.0 {
                return 0.0;
            }
            let (mut sum, mut count) = (0.0f64, 0usize);
            for k in -half..=half {
                let v = x[(t + k).clamp(0, n - 1) as usize];
                if v != 0.0 {
                    sum += v as f64;
                    count += 1;
                }
            }
            (sum / count as f64) as f32
        })
        .collect()
}

/// Regression deltas over ±`half_window` frames (openSMILE `deltawin`, default 2):
/// `d_t = Σ_k k (x_{t+k} − x_{t−k}) / (2 Σ_k k²)`, ends padded by repetition.
pub fn delta(x: &[f32], half_window: usize) -> Vec<f32> {
    let w = half_window as isize;
    let n = x.len() as isize;
    if n == 0 || w == 0 {
        return vec![0.0; x.len()];
    }
    let norm: f64 = 2.0 * (1..=w).map(|k| (k * k) as f64).sum::<f64>();
    (0..n)
        .map(|t| {
            let at = |i: isize| x[i.clamp(0, n - 1) as usize] as f64;
            let num: f64 = (1..=w).map(|k| k as f64 * (at(t + k) - at(t - k))).sum();
            (num / norm) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sma_keeps_constants_and_averages_neighbours() {
        assert_eq!(sma(&[2.0; 4], 3), vec![2.0; 4]);
        let y = sma(&[0.0, 3.0, 0.0], 3);
        assert_eq!(y, vec![1.0, 1.0, 1.0]);
    }

    #[test]
    fn sma_nonzero_skips_unvoiced_frames() {
        let y = sma_nonzero(&[0.0, 4.0, 2.0, 0.0], 3);
        assert_eq!(y, vec![0.0, 3.0, 3.0, 0.0]);
    }

    #[test]
    fn delta_of_a_ramp_is_its_slope() {
        let x: Vec<f32> = (0..10).map(|i| 2.0 * i as f32).collect();
        let d = delta(&x, 2);
        assert!((d[5] - 2.0).abs() < 1e-6);
    }
}
