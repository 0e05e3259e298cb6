//! The LPC autocorrelation with its lags side by side.
//!
//! `r[L] = Σ_{j ≤ n−1−L} x[j] · x[j + L]`, each lag summed in increasing `j` from Rust's empty
//! sum as `iter().sum()` sums it; the AVX2 version (chosen once at run time) keeps one vector
//! lane per lag, so every lane performs the same multiplies and adds in the same order as the
//! one-lag loop (no fused multiply-add, no reassociation) and the values are the same bits. The
//! last terms, which only the shorter lags have, are added under a lane mask (masked loads, so
//! nothing past the signal is read).

/// Most lags the vector version takes (four lanes × four groups); more go to the scalar loop.
const MAX_VECTOR_LAGS: usize = 16;

/// `r[L]` for `L < lags` (0 for lags at or beyond `x.len()`).
pub fn autocorrelation(x: &[f64], lags: usize) -> Vec<f64> {
    let mut r = vec![0.0; lags];
    #[cfg(target_arch = "x86_64")]
    {
        if lags > 0 && lags <= MAX_VECTOR_LAGS && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe {
                match lags.div_ceil(4) {
                    1 => x86::lags_avx2::<1>(x, &mut r),
                    2 => x86::lags_avx2::<2>(x, &mut r),
                    3 => x86::lags_avx2::<3>(x, &mut r),
                    _ => x86::lags_avx2::<4>(x, &mut r),
                }
            }
            return r;
        }
    }
    autocorrelation_scalar(x, &mut r);
    r
}

/// One lag at a time (the reference the vector version equals bit for bit).
fn autocorrelation_scalar(x: &[f64], r: &mut [f64]) {
    for (lag, r) in r.iter_mut().enumerate() {
        *r = (lag..x.len()).map(|i| x[i] * x[i - lag]).sum();
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Lags `0..4·G` in `G` four-lane groups (lane `4g + l` is lag `4g + l`); writes the first
    /// `r.len()` (at most `4·G`).
    ///
    /// # Safety
    /// The CPU supports AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn lags_avx2<const G: usize>(x: &[f64], r: &mut [f64]) {
        let n = x.len();
        let k = 4 * G;
        let empty: f64 = std::iter::empty::<f64>().sum();
        let mut acc = [_mm256_set1_pd(empty); G];
        let p = x.as_ptr();
        // every lane has term j while j + 4G − 1 ≤ n − 1
        let full = (n + 1).saturating_sub(k);
        for j in 0..full {
            // SAFETY: j + 4G − 1 < n, so every load lies inside x.
            unsafe {
                let xj = _mm256_set1_pd(*p.add(j));
                for (g, acc) in acc.iter_mut().enumerate() {
                    let w = _mm256_loadu_pd(p.add(j + 4 * g));
                    *acc = _mm256_add_pd(*acc, _mm256_mul_pd(xj, w));
                }
            }
        }
        // then lag L takes term j while L ≤ n − 1 − j: masked loads read only those lanes
        let lane = _mm256_setr_epi64x(0, 1, 2, 3);
        for j in full..n {
            let room = (n - 1 - j) as i64;
            // SAFETY: the masked loads touch only x[j + L] with L ≤ n − 1 − j.
            unsafe {
                let xj = _mm256_set1_pd(*p.add(j));
                for (g, acc) in acc.iter_mut().enumerate() {
                    let keep = _mm256_cmpgt_epi64(
                        _mm256_set1_epi64x(room + 1),
                        _mm256_add_epi64(lane, _mm256_set1_epi64x(4 * g as i64)),
                    );
                    if _mm256_testz_si256(keep, keep) != 0 {
                        continue;
                    }
                    let w = _mm256_maskload_pd(p.add(j + 4 * g), keep);
                    let sum = _mm256_add_pd(*acc, _mm256_mul_pd(xj, w));
                    *acc = _mm256_blendv_pd(*acc, sum, _mm256_castsi256_pd(keep));
                }
            }
        }
        let mut out = [0.0f64; 16];
        for (g, acc) in acc.iter().enumerate() {
            // SAFETY: `out` holds 16 ≥ 4·G values.
            unsafe { _mm256_storeu_pd(out.as_mut_ptr().add(4 * g), *acc) };
        }
        // lags at or beyond n have no term: the empty sum, as the scalar loop gives
        let m = r.len();
        r.copy_from_slice(&out[..m]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_one_lag_at_a_time_bit_for_bit() {
        // the xorshift64 sequence from state 0x2545_f491_4f6c_dd1d
        let x =
            crate::test_signal::xorshift(300, 0x2545_f491_4f6c_dd1d ^ 0x9e37_79b9_7f4a_7c15, 0.5);
        for n in [0usize, 1, 2, 3, 5, 11, 12, 13, 16, 17, 220, 300] {
            for lags in [1usize, 4, 5, 12, 16, 17] {
                let got = autocorrelation(&x[..n], lags);
                let mut want = vec![0.0; lags];
                autocorrelation_scalar(&x[..n], &mut want);
                assert_eq!(
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "n {n} lags {lags}"
                );
            }
        }
    }
}
