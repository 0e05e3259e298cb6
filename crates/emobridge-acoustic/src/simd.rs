//! The few inner loops that dominate the descriptors' cost, written so that they vectorise and
//! compiled twice: for the baseline target and, where the CPU has it (checked once at run time),
//! for AVX2. Every kernel performs the same IEEE operations in the same order per output value
//! in both versions (element-wise loops, or independent accumulators each summing in the
//! original order; Rust never fuses a multiply and an add), so the results are bit-identical
//! whichever version runs.

use emobridge_audio::dispatch_avx2 as dispatch;

/// `out[k] = (a[k] + 2·a[k+1] + a[k+2]) / 4` (the (¼, ½, ¼) smoothing; `a` has `out.len() + 2`
/// values).
pub fn smooth3(out: &mut [f64], a: &[f64]) {
    dispatch!(smooth3_avx2, smooth3_body, (out, a))
}

#[inline(always)]
fn smooth3_body(out: &mut [f64], a: &[f64]) {
    let m = out.len();
    let (l, c, r) = (&a[..m], &a[1..m + 1], &a[2..m + 2]);
    for k in 0..m {
        out[k] = (l[k] + 2.0 * c[k] + r[k]) / 4.0;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn smooth3_avx2(out: &mut [f64], a: &[f64]) {
    smooth3_body(out, a)
}

/// `slope[i] = (y[i + 1] − y[i]) / dx[i]` for every interval (`slope` and `dx` have
/// `y.len() − 1` values).
pub fn interval_slopes(slope: &mut [f64], y: &[f64], dx: &[f64]) {
    dispatch!(interval_slopes_avx2, interval_slopes_body, (slope, y, dx))
}

#[inline(always)]
fn interval_slopes_body(slope: &mut [f64], y: &[f64], dx: &[f64]) {
    let m = slope.len();
    let (y0, y1, dx) = (&y[..m], &y[1..m + 1], &dx[..m]);
    for i in 0..m {
        slope[i] = (y1[i] - y0[i]) / dx[i];
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn interval_slopes_avx2(slope: &mut [f64], y: &[f64], dx: &[f64]) {
    interval_slopes_body(slope, y, dx)
}

/// `out[k] = 6 · (slope[k + 1] − slope[k]) / dx2[k]` (the right-hand side of a natural
/// spline's tridiagonal system at knot `k + 1`; `slope` has `out.len() + 1` values).
pub fn second_difference_rhs(out: &mut [f64], slope: &[f64], dx2: &[f64]) {
    dispatch!(
        second_difference_rhs_avx2,
        second_difference_rhs_body,
        (out, slope, dx2)
    )
}

#[inline(always)]
fn second_difference_rhs_body(out: &mut [f64], slope: &[f64], dx2: &[f64]) {
    let m = out.len();
    let (left, right, dx2) = (&slope[..m], &slope[1..m + 1], &dx2[..m]);
    for k in 0..m {
        out[k] = 6.0 * (right[k] - left[k]) / dx2[k];
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn second_difference_rhs_avx2(out: &mut [f64], slope: &[f64], dx2: &[f64]) {
    second_difference_rhs_body(out, slope, dx2)
}

/// Cubic-spline points rounded to f32 and weighted: for point `i` in knot interval
/// `[l, l + 1]` (`l = lo[i]`, at most `y.len() − 2`),
/// `v = a·y[l] + b·y[l+1] + (ca·y2[l] + cb·y2[l+1])·h26` (0 where `h26` is 0), rounded to f32,
/// then `v · w` where positive and 0 otherwise; `coef` = `[a, b, ca, cb, h26, w]`, each at
/// least as long as `out`. `y` and `y2` have the same length, at least 2.
pub fn spline_points(out: &mut [f64], y: &[f64], y2: &[f64], lo: &[usize], coef: [&[f64]; 6]) {
    dispatch!(
        spline_points_avx2,
        spline_points_body,
        (out, y, y2, lo, coef)
    )
}

#[inline(always)]
fn spline_points_body(out: &mut [f64], y: &[f64], y2: &[f64], lo: &[usize], coef: [&[f64]; 6]) {
    let m = out.len();
    let n = y.len().min(y2.len());
    assert!(n >= 2, "a spline needs two knots");
    // clamping is a no-op for valid intervals and lets the knot reads go unchecked
    let last = n - 2;
    let (y, y2) = (&y[..n], &y2[..n]);
    let [a, b, ca, cb, h26, w] = coef;
    let (lo, a, b, ca, cb, h26, w) = (
        &lo[..m],
        &a[..m],
        &b[..m],
        &ca[..m],
        &cb[..m],
        &h26[..m],
        &w[..m],
    );
    for i in 0..m {
        let l = lo[i].min(last);
        let v = a[i] * y[l] + b[i] * y[l + 1] + (ca[i] * y2[l] + cb[i] * y2[l + 1]) * h26[i];
        let v = if h26[i] == 0.0 { 0.0 } else { v };
        let v = v as f32 as f64;
        out[i] = if v > 0.0 { v * w[i] } else { 0.0 };
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn spline_points_avx2(
    out: &mut [f64],
    y: &[f64],
    y2: &[f64],
    lo: &[usize],
    coef: [&[f64]; 6],
) {
    spline_points_body(out, y, y2, lo, coef)
}

/// Appends to `peaks`, in increasing order, every interior index `i` (`1 ≤ i < a.len() − 1`)
/// with `a[i] > a[i − 1]` and `a[i] > a[i + 1]`, or `a[i] ≥ a[i + 1]` when `right_ge` (false
/// where a value is NaN, as the scalar comparisons are).
pub fn local_maxima(a: &[f64], right_ge: bool, peaks: &mut Vec<usize>) {
    dispatch!(local_maxima_avx2, local_maxima_body, (a, right_ge, peaks))
}

#[inline(always)]
fn local_maxima_body(a: &[f64], right_ge: bool, peaks: &mut Vec<usize>) {
    for i in 1..a.len().saturating_sub(1) {
        let right = if right_ge {
            a[i] >= a[i + 1]
        } else {
            a[i] > a[i + 1]
        };
        if a[i] > a[i - 1] && right {
            peaks.push(i);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn local_maxima_avx2(a: &[f64], right_ge: bool, peaks: &mut Vec<usize>) {
    local_maxima_body(a, right_ge, peaks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<f64> {
        crate::test_signal::xorshift(n, 0, 0.5)
    }

    #[test]
    fn local_maxima_equal_the_scalar_tests() {
        // plateaus, NaN and lengths around the block size
        let mut x = data(203);
        for i in (0..203).step_by(17) {
            x[i] = x[(i + 1) % 203];
        }
        x[50] = f64::NAN;
        x[120] = f64::INFINITY;
        for len in [0usize, 1, 2, 3, 4, 5, 6, 7, 8, 9, 64, 65, 203] {
            let a = &x[..len];
            for right_ge in [false, true] {
                let (mut got, mut want) = (vec![7], vec![7]);
                local_maxima(a, right_ge, &mut got);
                local_maxima_body(a, right_ge, &mut want);
                assert_eq!(got, want, "len {len} right_ge {right_ge}");
            }
        }
    }

    #[test]
    fn spline_points_equal_the_scalar_body_bit_for_bit() {
        let n = 50;
        let (y, y2) = (data(n), data(n + 3));
        for m in [0usize, 3, 4, 37, 64] {
            let lo: Vec<usize> = (0..m)
                .map(|i| match i % 11 {
                    // an index past the last interval takes the clamp
                    10 => n + 5,
                    k => (i * 7 + k) % (n - 1),
                })
                .collect();
            let mut coef: Vec<Vec<f64>> = (0..6).map(|k| data(m + k)).collect();
            // repeated knots (h26 = 0) and points that come out negative
            for i in (0..m).step_by(5) {
                coef[4][i] = 0.0;
            }
            let c: [&[f64]; 6] = std::array::from_fn(|k| &coef[k][..]);
            let (mut got, mut want) = (vec![1.0; m], vec![2.0; m]);
            spline_points(&mut got, &y, &y2[..n], &lo, c);
            spline_points_body(&mut want, &y, &y2[..n], &lo, c);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "m {m}");
        }
    }

    #[test]
    fn element_wise_kernels_equal_scalar_loops() {
        let (x, z) = (data(37), data(41));
        let mut out = vec![0.0; 35];
        smooth3(&mut out, &x);
        for k in 0..35 {
            assert_eq!(
                out[k].to_bits(),
                ((x[k] + 2.0 * x[k + 1] + x[k + 2]) / 4.0).to_bits()
            );
        }
        let dx: Vec<f64> = z.iter().map(|v| v.abs() + 0.1).collect();
        let mut slope = vec![0.0; 36];
        interval_slopes(&mut slope, &x, &dx);
        for i in 0..36 {
            assert_eq!(slope[i].to_bits(), ((x[i + 1] - x[i]) / dx[i]).to_bits());
        }
        let mut rhs = vec![0.0; 35];
        second_difference_rhs(&mut rhs, &slope, &dx);
        for k in 0..35 {
            let want = 6.0 * (slope[k + 1] - slope[k]) / dx[k];
            assert_eq!(rhs[k].to_bits(), want.to_bits());
        }
    }
}
