//! CPU matrix products with weights packed once at load: C = A·Wᵀ (+ bias, optional GELU).
//!
//! The encoder spends almost all its time in products of activations [M, K] with fixed weights
//! [N, K] (linear layers, and the feature-encoder convolutions, whose im2col matrix is a strided
//! view of the [frames, channels] activations, so no copy is made). Packing the weights at load
//! and running an AVX-512 micro-kernel (f32 FMA, or bf16 dot products on CPUs with AVX-512 BF16)
//! avoids per-call packing of the large operand. Without AVX-512 a portable scalar path computes
//! the same products.

use half::bf16;
use rayon::prelude::*;

/// Rows of A per micro-tile.
const MR: usize = 12;
/// Columns of C per micro-tile (two 16-lane vectors).
const NR: usize = 32;
/// Depth of one packed A block (f32: the 16 KB B micro-panel stays in L1).
const KC: usize = 256;
/// Rows of A per parallel task.
const MC: usize = MR * 8;

/// Precision of the products (accumulation is always f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GemmPrecision {
    F32,
    /// Inputs rounded to bfloat16 (round-to-nearest-even), products accumulated in f32.
    Bf16,
}

fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn has_avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Packed weights: panels of NR output columns, k-major within a panel.
enum Packed {
    /// [N/NR][K][NR]
    F32(Vec<f32>),
    /// [N/NR][K/2][NR][2] (k padded to even)
    Bf16(Vec<u16>),
}

/// A weight matrix W [N, K] ready for C = A·Wᵀ.
pub struct PackedWeight {
    n: usize,
    k: usize,
    panels: usize,
    packed: Packed,
    /// W as given, for the portable path.
    plain: Vec<f32>,
}

impl PackedWeight {
    /// Packs W [n, k] (row-major). Bf16 falls back to f32 where the CPU lacks AVX-512 BF16.
    pub fn new(w: &[f32], n: usize, k: usize, precision: GemmPrecision) -> Self {
        assert_eq!(w.len(), n * k, "weight size");
        let panels = n.div_ceil(NR);
        let packed = if precision == GemmPrecision::Bf16 && has_avx512_bf16() {
            let kp = k.div_ceil(2);
            let mut p = vec![0u16; panels * kp * NR * 2];
            for col in 0..n {
                let (panel, c) = (col / NR, col % NR);
                for kk in 0..k {
                    p[((panel * kp + kk / 2) * NR + c) * 2 + kk % 2] = bf16::from_f32(w[col * k + kk]).to_bits();
                }
            }
            Packed::Bf16(p)
        } else {
            let mut p = vec![0f32; panels * k * NR];
            for col in 0..n {
                let (panel, c) = (col / NR, col % NR);
                for kk in 0..k {
                    p[(panel * k + kk) * NR + c] = w[col * k + kk];
                }
            }
            Packed::F32(p)
        };
        PackedWeight { n, k, panels, packed, plain: if has_avx512() { Vec::new() } else { w.to_vec() } }
    }

    pub fn n(&self) -> usize {
        self.n
    }

    /// C [m, n] = A·Wᵀ + bias, where row i of A starts at `a[i * row_stride]` and holds k values.
    /// `gelu` applies the exact erf GELU to the result.
    pub fn matmul(&self, a: &[f32], m: usize, row_stride: usize, bias: Option<&[f32]>, gelu: bool) -> Vec<f32> {
        let mut c = vec![0f32; m * self.n];
        if m == 0 {
            return c;
        }
        assert!(a.len() >= (m - 1) * row_stride + self.k, "A too short");
        if let Some(b) = bias {
            assert_eq!(b.len(), self.n);
        }
        let n = self.n;
        c.par_chunks_mut(MC * n).enumerate().for_each(|(block, c_block)| {
            let rows = c_block.len() / n;
            let a_block = &a[block * MC * row_stride..];
            self.block(a_block, rows, row_stride, c_block);
            finish_rows(c_block, n, bias, gelu);
        });
        c
    }

    /// One block of ≤ MC rows: all of C's columns for those rows.
    fn block(&self, a: &[f32], rows: usize, row_stride: usize, c: &mut [f32]) {
        if !has_avx512() {
            return self.block_portable(a, rows, row_stride, c);
        }
        #[cfg(target_arch = "x86_64")]
        match &self.packed {
            Packed::F32(b) => unsafe { self.block_f32(b, a, rows, row_stride, c) },
            Packed::Bf16(b) => unsafe { self.block_bf16(b, a, rows, row_stride, c) },
        }
    }

    fn block_portable(&self, a: &[f32], rows: usize, row_stride: usize, c: &mut [f32]) {
        for i in 0..rows {
            let ai = &a[i * row_stride..i * row_stride + self.k];
            for (j, out) in c[i * self.n..(i + 1) * self.n].iter_mut().enumerate() {
                let wj = &self.plain[j * self.k..(j + 1) * self.k];
                *out = ai.iter().zip(wj).map(|(x, y)| x * y).sum();
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn block_f32(&self, b: &[f32], a: &[f32], rows: usize, row_stride: usize, c: &mut [f32]) {
        let k = self.k;
        let tiles = rows.div_ceil(MR);
        let mut apack = vec![0f32; tiles * KC * MR];
        let mut tile = [0f32; MR * NR];
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            // Pack A[rows, k0..k0+kc] as [tile][kc][MR], zero rows past the end.
            for t in 0..tiles {
                let dst = &mut apack[t * kc * MR..(t + 1) * kc * MR];
                for r in 0..MR {
                    let row = t * MR + r;
                    if row < rows {
                        let src = &a[row * row_stride + k0..row * row_stride + k0 + kc];
                        for (kk, &v) in src.iter().enumerate() {
                            dst[kk * MR + r] = v;
                        }
                    } else {
                        for kk in 0..kc {
                            dst[kk * MR + r] = 0.0;
                        }
                    }
                }
            }
            for p in 0..self.panels {
                let bp = &b[(p * k + k0) * NR..(p * k + k0 + kc) * NR];
                for t in 0..tiles {
                    kernel_f32(kc, apack[t * kc * MR..].as_ptr(), bp.as_ptr(), &mut tile);
                    self.accumulate(&tile, c, t, p, rows);
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn block_bf16(&self, b: &[u16], a: &[f32], rows: usize, row_stride: usize, c: &mut [f32]) {
        let k = self.k;
        let kp_total = k.div_ceil(2);
        let tiles = rows.div_ceil(MR);
        let kcp_max = KC; // k-pairs per block: 2·KC deep, same bytes as the f32 block
        let mut apack = vec![0u32; tiles * kcp_max * MR];
        let mut tile = [0f32; MR * NR];
        for kp0 in (0..kp_total).step_by(kcp_max) {
            let kcp = kcp_max.min(kp_total - kp0);
            for t in 0..tiles {
                let dst = &mut apack[t * kcp * MR..(t + 1) * kcp * MR];
                for r in 0..MR {
                    let row = t * MR + r;
                    for q in 0..kcp {
                        let kk = 2 * (kp0 + q);
                        dst[q * MR + r] = if row < rows {
                            let base = row * row_stride;
                            let lo = bf16::from_f32(a[base + kk]).to_bits() as u32;
                            let hi = if kk + 1 < k { bf16::from_f32(a[base + kk + 1]).to_bits() as u32 } else { 0 };
                            lo | (hi << 16)
                        } else {
                            0
                        };
                    }
                }
            }
            for p in 0..self.panels {
                let bp = &b[(p * kp_total + kp0) * NR * 2..(p * kp_total + kp0 + kcp) * NR * 2];
                for t in 0..tiles {
                    kernel_bf16(kcp, apack[t * kcp * MR..].as_ptr(), bp.as_ptr(), &mut tile);
                    self.accumulate(&tile, c, t, p, rows);
                }
            }
        }
    }

    /// Adds a finished micro-tile to C, skipping padded rows and columns.
    #[inline]
    fn accumulate(&self, tile: &[f32; MR * NR], c: &mut [f32], t: usize, p: usize, rows: usize) {
        let n = self.n;
        let cols = NR.min(n - p * NR);
        for r in 0..MR.min(rows - t * MR) {
            let dst = &mut c[(t * MR + r) * n + p * NR..(t * MR + r) * n + p * NR + cols];
            for (d, s) in dst.iter_mut().zip(&tile[r * NR..r * NR + cols]) {
                *d += s;
            }
        }
    }
}

/// Bias and activation on finished rows.
fn finish_rows(c: &mut [f32], n: usize, bias: Option<&[f32]>, gelu: bool) {
    for row in c.chunks_exact_mut(n) {
        if let Some(b) = bias {
            for (x, bb) in row.iter_mut().zip(b) {
                *x += bb;
            }
        }
        if gelu {
            gelu_in_place(row);
        }
    }
}

/// Exact-erf GELU, x·Φ(x), with an erf accurate to about 1e-7 absolute.
pub fn gelu_in_place(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// erf(x) via the complementary error function approximation of Numerical Recipes (erfcc,
/// fractional error < 1.2e-7), evaluated in f32 arithmetic with an f64 exponential.
fn erf(x: f32) -> f32 {
    let z = x.abs() as f64;
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06 + t * (0.278_868_07 + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    let r = (1.0 - erfc) as f32;
    if x >= 0.0 {
        r
    } else {
        -r
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel_f32(kc: usize, a: *const f32, b: *const f32, out: &mut [f32; MR * NR]) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for kk in 0..kc {
        let b0 = _mm512_loadu_ps(b.add(kk * NR));
        let b1 = _mm512_loadu_ps(b.add(kk * NR + 16));
        let ap = a.add(kk * MR);
        for (r, row) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*ap.add(r));
            row[0] = _mm512_fmadd_ps(av, b0, row[0]);
            row[1] = _mm512_fmadd_ps(av, b1, row[1]);
        }
    }
    for (r, row) in acc.iter().enumerate() {
        _mm512_storeu_ps(out.as_mut_ptr().add(r * NR), row[0]);
        _mm512_storeu_ps(out.as_mut_ptr().add(r * NR + 16), row[1]);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn kernel_bf16(kcp: usize, a: *const u32, b: *const u16, out: &mut [f32; MR * NR]) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for q in 0..kcp {
        let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(q * NR * 2) as *const _));
        let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(q * NR * 2 + 32) as *const _));
        let ap = a.add(q * MR);
        for (r, row) in acc.iter_mut().enumerate() {
            let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*ap.add(r) as i32));
            row[0] = _mm512_dpbf16_ps(row[0], av, b0);
            row[1] = _mm512_dpbf16_ps(row[1], av, b1);
        }
    }
    for (r, row) in acc.iter().enumerate() {
        _mm512_storeu_ps(out.as_mut_ptr().add(r * NR), row[0]);
        _mm512_storeu_ps(out.as_mut_ptr().add(r * NR + 16), row[1]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(a: &[f32], m: usize, stride: usize, w: &[f32], n: usize, k: usize) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|kk| a[i * stride + kk] as f64 * w[j * k + kk] as f64).sum::<f64>() as f32;
            }
        }
        c
    }

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / (1u32 << 24) as f32) - 0.5).collect()
    }

    #[test]
    fn packed_products_match_a_plain_product_with_odd_sizes_and_strides() {
        for &(m, n, k, stride) in &[(1, 1, 1, 1), (13, 33, 7, 7), (100, 70, 300, 300), (50, 16, 30, 10), (200, 64, 513, 600)] {
            let a = data((m - 1) * stride + k, 1);
            let w = data(n * k, 2);
            let want = reference(&a, m, stride, &w, n, k);
            let got = PackedWeight::new(&w, n, k, GemmPrecision::F32).matmul(&a, m, stride, None, false);
            let err = got.iter().zip(&want).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
            assert!(err < 1e-4, "f32 {m}x{n}x{k}: {err}");
            let got = PackedWeight::new(&w, n, k, GemmPrecision::Bf16).matmul(&a, m, stride, None, false);
            let err = got.iter().zip(&want).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
            assert!(err < 0.02 * (k as f32).sqrt(), "bf16 {m}x{n}x{k}: {err}");
        }
    }

    #[test]
    fn bias_and_gelu_epilogue() {
        let w = vec![1.0, 0.0, 0.0, 1.0];
        let c = PackedWeight::new(&w, 2, 2, GemmPrecision::F32).matmul(&[1.0, -1.0], 1, 2, Some(&[0.5, 0.0]), true);
        let g = |x: f64| 0.5 * x * (1.0 + libm_erf(x / 2f64.sqrt()));
        assert!((c[0] as f64 - g(1.5)).abs() < 1e-6 && (c[1] as f64 - g(-1.0)).abs() < 1e-6, "{c:?}");
    }

    /// erf by its Taylor series (enough terms for |x| ≤ 3).
    fn libm_erf(x: f64) -> f64 {
        let mut sum = 0.0;
        let mut term = x;
        for n in 0..80 {
            sum += term / (2 * n + 1) as f64;
            term *= -x * x / (n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_is_accurate() {
        for i in -300..=300 {
            let x = i as f64 / 100.0;
            assert!((erf(x as f32) as f64 - libm_erf(x)).abs() < 3e-7, "{x}");
        }
    }
}
