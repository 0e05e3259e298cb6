//! Kernels of the sequence models: the numeric scalar (f32 for training, f64 for gradient
//! checks) with fast f32 activations, and a bounds-checked wrapper over the `gemm` crate's
//! strided matrix product.

use num_traits::Float;

/// A float the recurrent models and the autoencoder run in: `f32` for training and inference,
/// `f64` for finite-difference gradient checks.
pub trait Scalar:
    Float + Send + Sync + 'static + std::fmt::Debug + std::iter::Sum + Default
{
    fn lit(v: f64) -> Self;
    fn as_f64(self) -> f64;
    /// tanh: exact for f64; for f32 a branch-free rational approximation (absolute error
    /// < 4e-7, see [`tanh_f32`]) that vectorises.
    fn tanh_act(self) -> Self;
    /// The logistic function, as `0.5 + 0.5 · tanh(x / 2)` with [`Scalar::tanh_act`].
    #[inline]
    fn sigmoid_act(self) -> Self {
        let half = Self::lit(0.5);
        half + half * (self * half).tanh_act()
    }
}

/// tanh(x) in f32 as the ratio of an odd degree-13 and an even degree-6 polynomial on x clamped
/// to ±7.9053 (the approximation Eigen uses for `float`); absolute error below 4e-7 everywhere.
#[inline]
pub fn tanh_f32(x: f32) -> f32 {
    const A: [f32; 7] = [
        4.893_524_6e-3,
        6.372_619_3e-4,
        1.485_722_4e-5,
        5.122_297e-8,
        -8.604_671_5e-11,
        2.000_188e-13,
        -2.760_768_5e-16,
    ];
    const B: [f32; 4] = [
        4.893_525_2e-3,
        2.268_434_6e-3,
        1.185_347_1e-4,
        1.198_258_4e-6,
    ];
    let x = x.clamp(-7.905_311, 7.905_311);
    let x2 = x * x;
    let mut p = A[6];
    for c in A[..6].iter().rev() {
        p = p * x2 + *c;
    }
    let mut q = B[3];
    for c in B[..3].iter().rev() {
        q = q * x2 + *c;
    }
    x * p / q
}

impl Scalar for f32 {
    fn lit(v: f64) -> Self {
        v as f32
    }
    #[inline]
    fn tanh_act(self) -> Self {
        tanh_f32(self)
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Scalar for f64 {
    fn lit(v: f64) -> Self {
        v
    }
    #[inline]
    fn tanh_act(self) -> Self {
        self.tanh()
    }
    #[inline]
    fn sigmoid_act(self) -> Self {
        1.0 / (1.0 + (-self).exp())
    }
    fn as_f64(self) -> f64 {
        self
    }
}

/// Whether this CPU runs AVX2 and FMA code (detected once). The recurrent cells' element-wise
/// loops are compiled a second time for them; results are bit-identical (no contraction of
/// `a · b + c` into FMA is allowed, only wider lanes).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2_fma() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    })
}

/// A strided view of a row-major buffer: element (r, c) is `data[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a, T> {
    pub data: &'a [T],
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T> View<'a, T> {
    /// A row-major matrix with `cols` columns.
    pub fn rows(data: &'a [T], cols: usize) -> Self {
        View {
            data,
            rs: cols,
            cs: 1,
        }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [T], cols: usize) -> Self {
        View {
            data,
            rs: 1,
            cs: cols,
        }
    }
    /// A row-major matrix whose rows are `stride` apart.
    pub fn strided(data: &'a [T], stride: usize) -> Self {
        View {
            data,
            rs: stride,
            cs: 1,
        }
    }
}

fn span(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

/// `C[m×n] (+)= A[m×k] · B[k×n]`, C row-major with row stride `ldc`.
///
/// Panics (a programming error, never an input error) when a view is too short for its shape.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul<T: Scalar>(
    m: usize,
    n: usize,
    k: usize,
    c: &mut [T],
    ldc: usize,
    accumulate: bool,
    a: View<'_, T>,
    b: View<'_, T>,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(span(m, n, ldc, 1) <= c.len(), "matmul: C too short");
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                c[r * ldc..r * ldc + n].fill(T::zero());
            }
        }
        return;
    }
    assert!(
        span(m, k, a.rs, a.cs) <= a.data.len(),
        "matmul: A too short"
    );
    assert!(
        span(k, n, b.rs, b.cs) <= b.data.len(),
        "matmul: B too short"
    );
    // SAFETY: every index the kernel touches lies inside the spans checked above; C does not
    // alias A or B (a `&mut` and two `&` borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_f32_activations_are_within_4e_7() {
        let mut worst: f64 = 0.0;
        for k in -200_000..=200_000 {
            let x = k as f32 * 6e-5;
            worst = worst.max((tanh_f32(x) as f64 - (x as f64).tanh()).abs());
            let s = x.sigmoid_act() as f64;
            worst = worst.max((s - 1.0 / (1.0 + (-(x as f64)).exp())).abs());
        }
        for x in [-1e30f32, -20.0, 20.0, 1e30] {
            worst = worst.max((tanh_f32(x) as f64 - (x as f64).tanh()).abs());
        }
        assert!(worst < 4e-7, "{worst:e}");
        assert!(tanh_f32(f32::NAN).is_nan());
    }

    #[test]
    fn strided_products_match_loops() {
        let a: Vec<f64> = (0..6).map(|v| v as f64).collect(); // 2×3
        let b: Vec<f64> = (0..12).map(|v| (v as f64) * 0.5 - 1.0).collect(); // 3×4
        let mut c = vec![1.0; 8];
        matmul(
            2,
            4,
            3,
            &mut c,
            4,
            true,
            View::rows(&a, 3),
            View::rows(&b, 4),
        );
        for i in 0..2 {
            for j in 0..4 {
                let want: f64 = 1.0 + (0..3).map(|k| a[i * 3 + k] * b[k * 4 + j]).sum::<f64>();
                assert!((c[i * 4 + j] - want).abs() < 1e-12);
            }
        }
        // Aᵀ·A through a transposed view (3×2 · 2×3).
        let mut g = vec![0.0; 9];
        matmul(
            3,
            3,
            2,
            &mut g,
            3,
            false,
            View::transposed(&a, 3),
            View::rows(&a, 3),
        );
        assert_eq!(g[0], 0.0 * 0.0 + 3.0 * 3.0);
        assert_eq!(g[5], 1.0 * 2.0 + 4.0 * 5.0);
    }
}
