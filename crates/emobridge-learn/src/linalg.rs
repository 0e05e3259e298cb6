//! Row-major matrix products and a Cholesky solve on faer, the kernels behind every head.
//!
//! All matrices are row-major `&[f64]` slices; each product runs on one thread (the studies
//! parallelise over folds, layers and seeds instead).

use faer::{Accum, MatMut, MatRef, Par};

use crate::{LearnError, Result};

/// `c (m×n) = [c +] a·b` where `a` is m×k (or k×m when `ta`) and `b` is k×n (or n×k when `tb`).
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    c: &mut [f64],
    a: &[f64],
    b: &[f64],
    m: usize,
    k: usize,
    n: usize,
    ta: bool,
    tb: bool,
    accumulate: bool,
) {
    debug_assert_eq!(c.len(), m * n);
    debug_assert_eq!(a.len(), m * k);
    debug_assert_eq!(b.len(), k * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.iter_mut().for_each(|v| *v = 0.0);
        }
        return;
    }
    let a = if ta {
        MatRef::from_row_major_slice(a, k, m).transpose()
    } else {
        MatRef::from_row_major_slice(a, m, k)
    };
    let b = if tb {
        MatRef::from_row_major_slice(b, n, k).transpose()
    } else {
        MatRef::from_row_major_slice(b, k, n)
    };
    let dst = MatMut::from_row_major_slice_mut(c, m, n);
    let accum = if accumulate {
        Accum::Add
    } else {
        Accum::Replace
    };
    faer::linalg::matmul::matmul(dst, accum, a, b, 1.0, Par::Seq);
}

/// Solves `a·x = b` for symmetric positive definite `a` (d×d) and `b` (d×r), row-major; `x`
/// replaces `b`. Fails, naming the pivot, when `a` is not positive definite.
pub fn cholesky_solve(a: &mut [f64], b: &mut [f64], d: usize, r: usize) -> Result<()> {
    // In-place lower Cholesky factor (row-major, lower triangle used).
    for j in 0..d {
        let mut s = a[j * d + j];
        for p in 0..j {
            s -= a[j * d + p] * a[j * d + p];
        }
        if !(s > 0.0 && s.is_finite()) {
            return Err(LearnError::NotPositiveDefinite { pivot: j, value: s });
        }
        let l = s.sqrt();
        a[j * d + j] = l;
        for i in j + 1..d {
            let mut s = a[i * d + j];
            for p in 0..j {
                s -= a[i * d + p] * a[j * d + p];
            }
            a[i * d + j] = s / l;
        }
    }
    for col in 0..r {
        // Forward: L y = b.
        for i in 0..d {
            let mut s = b[i * r + col];
            for p in 0..i {
                s -= a[i * d + p] * b[p * r + col];
            }
            b[i * r + col] = s / a[i * d + i];
        }
        // Backward: Lᵀ x = y.
        for i in (0..d).rev() {
            let mut s = b[i * r + col];
            for p in i + 1..d {
                s -= a[p * d + i] * b[p * r + col];
            }
            b[i * r + col] = s / a[i * d + i];
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_in_every_orientation_match_the_naive_loop() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.71).cos()).collect();
        let naive = |i: usize, j: usize| (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum::<f64>();
        let mut c = vec![0.0; m * n];
        gemm(&mut c, &a, &b, m, k, n, false, false, false);
        let at: Vec<f64> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let bt: Vec<f64> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let mut c2 = vec![1.0; m * n];
        gemm(&mut c2, &at, &bt, m, k, n, true, true, true);
        for i in 0..m {
            for j in 0..n {
                assert!((c[i * n + j] - naive(i, j)).abs() < 1e-12);
                assert!((c2[i * n + j] - 1.0 - naive(i, j)).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn cholesky_solves_and_refuses_indefinite_matrices() {
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        let mut b = vec![2.0, 1.0];
        cholesky_solve(&mut a, &mut b, 2, 1).unwrap();
        // 4x + 2y = 2, 2x + 3y = 1 → x = 0.5, y = 0.
        assert!((b[0] - 0.5).abs() < 1e-12 && b[1].abs() < 1e-12, "{b:?}");
        let mut bad = vec![1.0, 2.0, 2.0, 1.0];
        let err = cholesky_solve(&mut bad, &mut [1.0, 1.0], 2, 1).unwrap_err();
        assert!(err.to_string().contains("pivot 1"), "{err}");
    }
}
