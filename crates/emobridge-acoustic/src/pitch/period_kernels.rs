//! The period matcher's inner loops ([`super::jitter`]): the lagged products of one period
//! start over the whole lag search range, their normalisation to Pearson correlations, and the
//! peak-to-peak amplitude of a period.
//!
//! The lagged products are summed lag by lag in increasing sample order from Rust's empty sum,
//! exactly as `iter().sum()` sums one lag; only the lags run side by side (one vector lane per
//! lag). The vector versions — AVX-512 (eight lags a lane group, 32 lags a pass) and AVX2 (four
//! lags a lane group, 32 lags a pass), chosen once at run time — therefore give the same bits as
//! the scalar one: every lane performs the same multiplies and adds in the same order, and the
//! last terms, which only the longer lags have, are added under a lane mask (no fused
//! multiply-add, no reassociation).

/// `out[k] = Σ_{i < L} x[a + i] · x[a + L + i]` with `L = lag0 + k`, each sum taken in
/// increasing `i` from the empty sum (bit-identical to `iter().sum()` per lag).
///
/// # Panics
/// When `lag0` is 0 or `x` is shorter than `a + 2·(lag0 + out.len() − 1)` (what the longest
/// lag reads).
pub fn lagged_dots(x: &[f64], a: usize, lag0: usize, out: &mut [f64]) {
    if out.is_empty() {
        return;
    }
    assert!(lag0 > 0, "lags start at 1");
    let last = lag0 + out.len() - 1;
    assert!(
        x.len() >= a + 2 * last,
        "lagged products up to lag {last} from {a} need {} samples, got {}",
        a + 2 * last,
        x.len()
    );
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above); the bounds are asserted.
            unsafe { x86::lagged_dots_avx512(x, a, lag0, out) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above); the bounds are asserted.
            unsafe { x86::lagged_dots_avx2(x, a, lag0, out) };
            return;
        }
    }
    lagged_dots_scalar(x, a, lag0, out)
}

/// One lag at a time (the reference the vector versions equal bit for bit).
fn lagged_dots_scalar(x: &[f64], a: usize, lag0: usize, out: &mut [f64]) {
    for (k, o) in out.iter_mut().enumerate() {
        let l = lag0 + k;
        *o = x[a..a + l]
            .iter()
            .zip(&x[a + l..a + 2 * l])
            .map(|(p, q)| p * q)
            .sum();
    }
}

/// Splits the lags `0..n` (at least `narrow`) into blocks of `wide` lags, then of `narrow`
/// lags, and a last `narrow` block moved back to end at `n` (it recomputes a few lags, with the
/// same bits); calls `f(first lag, wide?)` per block.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn blocks(n: usize, wide: usize, narrow: usize, mut f: impl FnMut(usize, bool)) {
    let mut k = 0;
    while k + wide <= n {
        f(k, true);
        k += wide;
    }
    while k + narrow <= n {
        f(k, false);
        k += narrow;
    }
    if k < n {
        f(n - narrow, false);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// The empty sum of `f64` as Rust's `Sum` starts it (−0.0), so that a lane equals `sum()`.
    #[inline(always)]
    fn empty_sum() -> f64 {
        std::iter::empty::<f64>().sum()
    }

    /// [`super::lagged_dots`] with AVX-512F: 32 lags a pass (four 8-lane accumulators), a last
    /// block of 8 lags; fewer than 8 lags in all go to the scalar loop.
    ///
    /// # Safety
    /// The CPU supports AVX-512F; `x.len() ≥ a + 2·(lag0 + out.len() − 1)`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn lagged_dots_avx512(x: &[f64], a: usize, lag0: usize, out: &mut [f64]) {
        let n = out.len();
        if n < 8 {
            return super::lagged_dots_scalar(x, a, lag0, out);
        }
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        super::blocks(n, 32, 8, |k, wide| unsafe {
            if wide {
                block512::<4>(xp, a, lag0 + k, op.add(k))
            } else {
                block512::<1>(xp, a, lag0 + k, op.add(k))
            }
        });
    }

    /// `8·NB` lags from `lag`: lane `8b + l` sums lag `lag + 8b + l`.
    ///
    /// # Safety
    /// AVX-512F; `x` valid up to index `a + 2·(lag + 8·NB − 1) − 1`; `out` valid for `8·NB`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn block512<const NB: usize>(x: *const f64, a: usize, lag: usize, out: *mut f64) {
        unsafe {
            let u = x.add(a);
            let v = x.add(a + lag);
            let mut acc = [_mm512_set1_pd(empty_sum()); NB];
            // two samples a step (each lane still adds its terms in increasing i)
            let mut i = 0;
            while i + 2 <= lag {
                let (p, q) = (_mm512_set1_pd(*u.add(i)), _mm512_set1_pd(*u.add(i + 1)));
                for (b, acc) in acc.iter_mut().enumerate() {
                    let w = v.add(i + 8 * b);
                    *acc = _mm512_add_pd(*acc, _mm512_mul_pd(p, _mm512_loadu_pd(w)));
                    *acc = _mm512_add_pd(*acc, _mm512_mul_pd(q, _mm512_loadu_pd(w.add(1))));
                }
                i += 2;
            }
            if i < lag {
                let p = _mm512_set1_pd(*u.add(i));
                for (b, acc) in acc.iter_mut().enumerate() {
                    let w = _mm512_loadu_pd(v.add(i + 8 * b));
                    *acc = _mm512_add_pd(*acc, _mm512_mul_pd(p, w));
                }
            }
            // lag + j also has the terms i = lag .. lag + j: group b takes the terms
            // i = lag .. lag + 8b in all its lanes, then term lag + 8b + d in its lanes l > d
            for (b, acc) in acc.iter_mut().enumerate() {
                let w = v.add(8 * b);
                for i in lag..lag + 8 * b {
                    let p = _mm512_set1_pd(*u.add(i));
                    *acc = _mm512_add_pd(*acc, _mm512_mul_pd(p, _mm512_loadu_pd(w.add(i))));
                }
                for d in 0..7 {
                    let i = lag + 8 * b + d;
                    let p = _mm512_set1_pd(*u.add(i));
                    let prod = _mm512_mul_pd(p, _mm512_loadu_pd(w.add(i)));
                    *acc = _mm512_mask_add_pd(*acc, (0xffu32 << (d + 1)) as __mmask8, *acc, prod);
                }
            }
            for (b, acc) in acc.iter().enumerate() {
                _mm512_storeu_pd(out.add(8 * b), *acc);
            }
        }
    }

    /// [`super::lagged_dots`] with AVX2: 32 lags a pass (eight 4-lane accumulators), a last
    /// block of 4 lags; fewer than 4 lags in all go to the scalar loop.
    ///
    /// # Safety
    /// The CPU supports AVX2; `x.len() ≥ a + 2·(lag0 + out.len() − 1)`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn lagged_dots_avx2(x: &[f64], a: usize, lag0: usize, out: &mut [f64]) {
        let n = out.len();
        if n < 4 {
            return super::lagged_dots_scalar(x, a, lag0, out);
        }
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        super::blocks(n, 32, 4, |k, wide| unsafe {
            if wide {
                block256::<8>(xp, a, lag0 + k, op.add(k))
            } else {
                block256::<1>(xp, a, lag0 + k, op.add(k))
            }
        });
    }

    /// `4·NB` lags from `lag`: lane `4b + l` sums lag `lag + 4b + l`.
    ///
    /// # Safety
    /// AVX2; `x` valid up to index `a + 2·(lag + 4·NB − 1) − 1`; `out` valid for `4·NB`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn block256<const NB: usize>(x: *const f64, a: usize, lag: usize, out: *mut f64) {
        unsafe {
            let u = x.add(a);
            let v = x.add(a + lag);
            let mut acc = [_mm256_set1_pd(empty_sum()); NB];
            for i in 0..lag {
                let p = _mm256_set1_pd(*u.add(i));
                for (b, acc) in acc.iter_mut().enumerate() {
                    let w = _mm256_loadu_pd(v.add(i + 4 * b));
                    *acc = _mm256_add_pd(*acc, _mm256_mul_pd(p, w));
                }
            }
            // lag + j also has the terms i = lag .. lag + j: group b takes the terms
            // i = lag .. lag + 4b in all its lanes, then term lag + 4b + d in its lanes l > d
            let all = _mm256_castsi256_pd(_mm256_set1_epi64x(-1));
            let zero = _mm256_setzero_pd();
            let keep = [
                _mm256_blend_pd::<0b1110>(zero, all),
                _mm256_blend_pd::<0b1100>(zero, all),
                _mm256_blend_pd::<0b1000>(zero, all),
            ];
            for (b, acc) in acc.iter_mut().enumerate() {
                let w = v.add(4 * b);
                for i in lag..lag + 4 * b {
                    let p = _mm256_set1_pd(*u.add(i));
                    *acc = _mm256_add_pd(*acc, _mm256_mul_pd(p, _mm256_loadu_pd(w.add(i))));
                }
                for (d, keep) in keep.iter().enumerate() {
                    let i = lag + 4 * b + d;
                    let p = _mm256_set1_pd(*u.add(i));
                    let sum = _mm256_add_pd(*acc, _mm256_mul_pd(p, _mm256_loadu_pd(w.add(i))));
                    *acc = _mm256_blendv_pd(*acc, sum, *keep);
                }
            }
            for (b, acc) in acc.iter().enumerate() {
                _mm256_storeu_pd(out.add(4 * b), *acc);
            }
        }
    }
}

/// Pearson correlations from the lagged products: `dots[k]` is the product sum of lag
/// `L = lag0 + k` at `start`; `sum` and `sum_sq` are prefix sums of the samples and of their
/// squares (`sum[i]` = the first `i` samples). Each value is computed with the same operations
/// in the same order as the one-lag formula
/// `(sxy − n·mx·my) / (√max(nx, 0) · √max(ny, 0))`, lag by lag (element-wise, vectorised).
pub fn normalise(sum: &[f64], sum_sq: &[f64], start: usize, lag0: usize, dots: &mut [f64]) {
    emobridge_audio::dispatch_avx2!(
        normalise_avx2,
        normalise_body,
        (sum, sum_sq, start, lag0, dots)
    )
}

#[inline(always)]
fn normalise_body(sum: &[f64], sum_sq: &[f64], start: usize, lag0: usize, dots: &mut [f64]) {
    let m = dots.len();
    if m == 0 {
        return;
    }
    let (sa, qa) = (sum[start], sum_sq[start]);
    let (sb, qb) = (
        &sum[start + lag0..start + lag0 + m],
        &sum_sq[start + lag0..start + lag0 + m],
    );
    let c0 = start + 2 * lag0;
    let (sc, qc) = (&sum[c0..c0 + 2 * m - 1], &sum_sq[c0..c0 + 2 * m - 1]);
    for k in 0..m {
        let n = (lag0 + k) as f64;
        let (sx, sy) = (sb[k] - sa, sc[2 * k] - sb[k]);
        let (mx, my) = (sx / n, sy / n);
        let nx = (qb[k] - qa) - sx * mx;
        let ny = (qc[2 * k] - qb[k]) - sy * my;
        dots[k] = (dots[k] - n * mx * my) / (nx.max(0.0).sqrt() * ny.max(0.0).sqrt());
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn normalise_avx2(sum: &[f64], sum_sq: &[f64], start: usize, lag0: usize, dots: &mut [f64]) {
    normalise_body(sum, sum_sq, start, lag0, dots)
}

/// Largest minus smallest value of `x` (order-free: the same value however it is reduced; 0
/// for an empty slice is not asked for — callers pass at least one value).
pub fn peak_to_peak(x: &[f64]) -> f64 {
    emobridge_audio::dispatch_avx2!(peak_to_peak_avx2, peak_to_peak_body, (x))
}

#[inline(always)]
fn peak_to_peak_body(x: &[f64]) -> f64 {
    // eight running extremes (vector lanes); max and min are exact, so the grouping does not
    // change the result
    let mut hi = [f64::MIN; 8];
    let mut lo = [f64::MAX; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for j in 0..8 {
            hi[j] = if c[j] > hi[j] { c[j] } else { hi[j] };
            lo[j] = if c[j] < lo[j] { c[j] } else { lo[j] };
        }
    }
    for &v in chunks.remainder() {
        hi[0] = if v > hi[0] { v } else { hi[0] };
        lo[0] = if v < lo[0] { v } else { lo[0] };
    }
    let max = hi.iter().fold(f64::MIN, |m, &v| if v > m { v } else { m });
    let min = lo.iter().fold(f64::MAX, |m, &v| if v < m { v } else { m });
    max - min
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn peak_to_peak_avx2(x: &[f64]) -> f64 {
    peak_to_peak_body(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<f64> {
        crate::test_signal::xorshift(n, 0, 0.5)
    }

    fn one_lag(x: &[f64], a: usize, l: usize) -> f64 {
        x[a..a + l]
            .iter()
            .zip(&x[a + l..a + 2 * l])
            .map(|(p, q)| p * q)
            .sum()
    }

    /// Every lag count from 1 to 80 (all block splits), long and short lags, exact-length input.
    #[test]
    fn lagged_dots_equal_one_lag_at_a_time_bit_for_bit() {
        for (a, lag0) in [(0usize, 1usize), (3, 5), (10, 100), (7, 290), (1, 17)] {
            for n in 1..=80 {
                let len = a + 2 * (lag0 + n - 1);
                let x = data(len);
                let mut got = vec![f64::NAN; n];
                lagged_dots(&x, a, lag0, &mut got);
                for (k, g) in got.iter().enumerate() {
                    let want = one_lag(&x, a, lag0 + k);
                    assert_eq!(g.to_bits(), want.to_bits(), "a {a} lag {} of {n}", lag0 + k);
                }
            }
        }
    }

    /// The AVX2 version also where the dispatcher picks AVX-512 (both are run on such a CPU).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_vector_version_equals_the_scalar_one() {
        let x = data(2_000);
        for (a, lag0, n) in [
            (0usize, 1usize, 3usize),
            (5, 40, 37),
            (11, 300, 170),
            (2, 9, 64),
        ] {
            let mut want = vec![0.0; n];
            lagged_dots_scalar(&x, a, lag0, &mut want);
            if std::arch::is_x86_feature_detected!("avx2") {
                let mut got = vec![f64::NAN; n];
                unsafe { x86::lagged_dots_avx2(&x, a, lag0, &mut got) };
                assert_eq!(
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                );
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                let mut got = vec![f64::NAN; n];
                unsafe { x86::lagged_dots_avx512(&x, a, lag0, &mut got) };
                assert_eq!(
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "need")]
    fn too_short_an_input_is_refused() {
        let x = data(20);
        let mut out = [0.0; 4];
        lagged_dots(&x, 0, 8, &mut out);
    }

    #[test]
    fn normalise_equals_the_one_lag_formula() {
        let x = data(700);
        let (mut sum, mut sum_sq) = (vec![0.0], vec![0.0]);
        for &v in &x {
            sum.push(sum.last().unwrap() + v);
            sum_sq.push(sum_sq.last().unwrap() + v * v);
        }
        let (start, lag0, n) = (13, 120, 57);
        let mut dots: Vec<f64> = (0..n).map(|k| one_lag(&x, start, lag0 + k)).collect();
        let sxy = dots.clone();
        normalise(&sum, &sum_sq, start, lag0, &mut dots);
        for k in 0..n {
            let lag = lag0 + k;
            let nn = lag as f64;
            let (a, b, c) = (start, start + lag, start + 2 * lag);
            let (sx, sy) = (sum[b] - sum[a], sum[c] - sum[b]);
            let (mx, my) = (sx / nn, sy / nn);
            let nx = (sum_sq[b] - sum_sq[a]) - sx * mx;
            let ny = (sum_sq[c] - sum_sq[b]) - sy * my;
            let want = (sxy[k] - nn * mx * my) / (nx.max(0.0).sqrt() * ny.max(0.0).sqrt());
            assert_eq!(dots[k].to_bits(), want.to_bits(), "lag {lag}");
        }
    }

    #[test]
    fn peak_to_peak_equals_the_folds() {
        let x = data(301);
        for len in [1usize, 2, 7, 8, 9, 64, 301] {
            let s = &x[..len];
            let max = s.iter().cloned().fold(f64::MIN, f64::max);
            let min = s.iter().cloned().fold(f64::MAX, f64::min);
            assert_eq!(peak_to_peak(s).to_bits(), (max - min).to_bits(), "{len}");
        }
    }
}
