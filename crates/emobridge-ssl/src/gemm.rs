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
/// Most rows of A per parallel task.
const MC: usize = MR * 8;

/// Precision of the products (accumulation is always f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GemmPrecision {
    F32,
    /// Inputs rounded to bfloat16 (round-to-nearest-even), products accumulated in f32.
    Bf16,
}

pub(crate) fn has_avx512() -> bool {
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

/// `n` zeros, with the pages of a fresh allocation mapped in one system call
/// ([`populate`]) rather than one page fault per 4 KiB page as they are first written.
pub(crate) fn zeroed_buffer<T: Copy + Default>(n: usize) -> Vec<T> {
    let mut v = vec![T::default(); n];
    populate(v.as_mut_ptr().cast(), std::mem::size_of_val(v.as_slice()));
    v
}

/// Maps the pages of `len` bytes at `ptr` (one live allocation of ours) ahead of their first
/// write with `MADV_POPULATE_WRITE` (Linux ≥ 5.14): a model's weights are hundreds of MB, and
/// faulting them in page by page cost about as much system time as reading and packing them took
/// user time (perf, wav2vec2-base load). Advisory: where refused or unsupported, the pages fault
/// in as usual. Small buffers are left alone.
pub(crate) fn populate(ptr: *mut u8, len: usize) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        const PAGE: usize = 4096;
        if len < 64 * PAGE {
            return;
        }
        let start = (ptr as usize).next_multiple_of(PAGE);
        let end = (ptr as usize).saturating_add(len) / PAGE * PAGE;
        if end > start {
            // SAFETY: the range lies inside one live allocation; populating for write maps
            // pages (zero-filled where none was mapped) and changes no byte already there.
            unsafe {
                libc::madvise(
                    start as *mut libc::c_void,
                    end - start,
                    libc::MADV_POPULATE_WRITE,
                );
            }
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (ptr, len);
}

/// The weights in the layout of the kernels that use them (held once).
enum Packed {
    /// [N/NR][K][NR]
    F32(Vec<f32>),
    /// [N/NR][K/2][NR][2] (k padded to even)
    Bf16(Vec<u16>),
    /// W as given [N, K], for the portable path (CPUs without AVX-512).
    Plain(Vec<f32>),
}

/// A weight matrix W [N, K] ready for C = A·Wᵀ.
pub struct PackedWeight {
    n: usize,
    k: usize,
    panels: usize,
    packed: Packed,
}

impl PackedWeight {
    /// Packs W [n, k] (row-major). Bf16 falls back to f32 where the CPU lacks AVX-512 BF16, and
    /// both to W as given where it lacks AVX-512. Panels are packed in parallel.
    pub fn new(w: &[f32], n: usize, k: usize, precision: GemmPrecision) -> Self {
        Self::pack(w, n, k, precision, true)
    }

    /// [`Self::new`] on the calling thread (for callers that already run one task per core).
    pub fn new_serial(w: &[f32], n: usize, k: usize, precision: GemmPrecision) -> Self {
        Self::pack(w, n, k, precision, false)
    }

    fn pack(w: &[f32], n: usize, k: usize, precision: GemmPrecision, parallel: bool) -> Self {
        assert_eq!(w.len(), n * k, "weight size");
        // Rows of W per panel task; a serial pack runs the same tasks in order.
        fn for_panels<T: Send>(
            p: &mut [T],
            chunk: usize,
            parallel: bool,
            f: impl Fn(usize, &mut [T]) + Sync + Send,
        ) {
            if parallel {
                p.par_chunks_mut(chunk)
                    .enumerate()
                    .for_each(|(i, d)| f(i, d));
            } else {
                p.chunks_mut(chunk).enumerate().for_each(|(i, d)| f(i, d));
            }
        }
        let panels = n.div_ceil(NR);
        let packed = if !has_avx512() {
            Packed::Plain(w.to_vec())
        } else if precision == GemmPrecision::Bf16 && has_avx512_bf16() {
            let kp = k.div_ceil(2);
            let mut p = zeroed_buffer::<u16>(panels * kp * NR * 2);
            for_panels(&mut p, kp * NR * 2, parallel, |panel, dst| {
                for c in 0..NR.min(n - panel * NR) {
                    let col = panel * NR + c;
                    for (kk, &x) in w[col * k..(col + 1) * k].iter().enumerate() {
                        dst[((kk / 2) * NR + c) * 2 + kk % 2] = bf16::from_f32(x).to_bits();
                    }
                }
            });
            Packed::Bf16(p)
        } else {
            let mut p = zeroed_buffer::<f32>(panels * k * NR);
            for_panels(&mut p, k * NR, parallel, |panel, dst| {
                for c in 0..NR.min(n - panel * NR) {
                    let col = panel * NR + c;
                    for (kk, &x) in w[col * k..(col + 1) * k].iter().enumerate() {
                        dst[kk * NR + c] = x;
                    }
                }
            });
            Packed::F32(p)
        };
        PackedWeight {
            n,
            k,
            panels,
            packed,
        }
    }

    pub fn n(&self) -> usize {
        self.n
    }

    /// C [m, n] = A·Wᵀ + bias, where row i of A starts at `a[i * row_stride]` and holds k values.
    /// `gelu` applies the exact erf GELU to the result.
    pub fn matmul(
        &self,
        a: &[f32],
        m: usize,
        row_stride: usize,
        bias: Option<&[f32]>,
        gelu: bool,
    ) -> Vec<f32> {
        let n = self.n;
        let mut c = vec![0f32; m * n];
        if m == 0 {
            return c;
        }
        assert!(a.len() >= (m - 1) * row_stride + self.k, "A too short");
        if let Some(b) = bias {
            assert_eq!(b.len(), n);
        }
        let block_rows = balanced_block_rows(m, rayon::current_num_threads());
        c.par_chunks_mut(block_rows * n)
            .enumerate()
            .for_each(|(block, c_block)| {
                let rows = c_block.len() / n;
                let a_block = &a[block * block_rows * row_stride..];
                self.block(a_block, rows, row_stride, c_block);
                for row in c_block.chunks_exact_mut(n) {
                    finish_row(row, bias, gelu);
                }
            });
        c
    }

    /// C [m, n] = A·Wᵀ on the calling thread (for callers that already run one task per core).
    pub fn matmul_serial(&self, a: &[f32], m: usize, row_stride: usize) -> Vec<f32> {
        let mut c = vec![0f32; m * self.n];
        if m == 0 {
            return c;
        }
        assert!(a.len() >= (m - 1) * row_stride + self.k, "A too short");
        for (block, c_block) in c.chunks_mut(MC * self.n).enumerate() {
            let rows = c_block.len() / self.n;
            self.block(&a[block * MC * row_stride..], rows, row_stride, c_block);
        }
        c
    }

    /// C rows of one block (≤ MC rows of n columns).
    fn block(&self, a: &[f32], rows: usize, row_stride: usize, c: &mut [f32]) {
        assert!(c.len() >= rows * self.n, "C block too short");
        match &self.packed {
            Packed::Plain(w) => self.block_portable(w, a, rows, row_stride, c),
            // SAFETY: the packed forms exist only on CPUs with AVX-512 (and AVX-512 BF16 for
            // the bf16 one), see `new`; `c` holds the block's rows (asserted).
            #[cfg(target_arch = "x86_64")]
            Packed::F32(b) => unsafe { self.block_f32(b, a, rows, row_stride, c.as_mut_ptr()) },
            #[cfg(target_arch = "x86_64")]
            Packed::Bf16(b) => unsafe { self.block_bf16(b, a, rows, row_stride, c.as_mut_ptr()) },
            #[cfg(not(target_arch = "x86_64"))]
            Packed::F32(_) | Packed::Bf16(_) => unreachable!("packed only with AVX-512"),
        }
    }

    fn block_portable(
        &self,
        plain: &[f32],
        a: &[f32],
        rows: usize,
        row_stride: usize,
        c: &mut [f32],
    ) {
        for i in 0..rows {
            let ai = &a[i * row_stride..i * row_stride + self.k];
            for (j, out) in c[i * self.n..(i + 1) * self.n].iter_mut().enumerate() {
                let wj = &plain[j * self.k..(j + 1) * self.k];
                *out = ai.iter().zip(wj).map(|(x, y)| x * y).sum();
            }
        }
    }

    /// f32 path: the block's A rows packed once as [tile][k][MR]; each micro-tile runs the full
    /// depth in registers and is stored once (no read-modify-write of C).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn block_f32(&self, b: &[f32], a: &[f32], rows: usize, row_stride: usize, c: *mut f32) {
        let k = self.k;
        let tiles = rows.div_ceil(MR);
        let mut apack = vec![0f32; tiles * k * MR];
        for t in 0..tiles {
            let dst = &mut apack[t * k * MR..(t + 1) * k * MR];
            for r in 0..MR.min(rows - t * MR) {
                let row = t * MR + r;
                for (kk, &v) in a[row * row_stride..row * row_stride + k].iter().enumerate() {
                    dst[kk * MR + r] = v;
                }
            }
        }
        self.for_each_tile(tiles, rows, c, |t, p, out, ldc| {
            kernel_f32(
                k,
                apack[t * k * MR..].as_ptr(),
                b[p * k * NR..].as_ptr(),
                out,
                ldc,
            )
        });
    }

    /// bf16 path: A rows rounded to bf16 and packed as k-pairs [tile][k/2][MR] (u32 = two bf16).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn block_bf16(&self, b: &[u16], a: &[f32], rows: usize, row_stride: usize, c: *mut f32) {
        let k = self.k;
        let kp = k.div_ceil(2);
        let tiles = rows.div_ceil(MR);
        let mut apack = vec![0u32; tiles * kp * MR];
        let mut pairs = vec![0u32; kp];
        for t in 0..tiles {
            let dst = &mut apack[t * kp * MR..(t + 1) * kp * MR];
            for r in 0..MR.min(rows - t * MR) {
                let src = &a[(t * MR + r) * row_stride..(t * MR + r) * row_stride + k];
                bf16_pairs(src, &mut pairs);
                for (q, &pair) in pairs.iter().enumerate() {
                    dst[q * MR + r] = pair;
                }
            }
        }
        self.for_each_tile(tiles, rows, c, |t, p, out, ldc| {
            kernel_bf16(
                kp,
                apack[t * kp * MR..].as_ptr(),
                b[p * kp * NR * 2..].as_ptr(),
                out,
                ldc,
            )
        });
    }

    /// Runs `kernel(t, p, out, ldc)` for every micro-tile (t of the block's row tiles, p of the
    /// weight's column panels). Full tiles are written straight into C (row stride n); edge tiles go through a
    /// scratch tile (stride NR) that is then copied in without its padding.
    ///
    /// # Safety
    /// `c` must point at the block's first row of C with room for `rows` rows, and `kernel` must
    /// write exactly one MR × NR tile at `out`.
    #[inline(always)]
    unsafe fn for_each_tile(
        &self,
        tiles: usize,
        rows: usize,
        c: *mut f32,
        mut kernel: impl FnMut(usize, usize, *mut f32, usize),
    ) {
        let mut tile = [0f32; MR * NR];
        for p in 0..self.panels {
            for t in 0..tiles {
                if self.is_full_tile(t, p, rows) {
                    kernel(t, p, c.add(t * MR * self.n + p * NR), self.n);
                } else {
                    kernel(t, p, tile.as_mut_ptr(), NR);
                    self.store(&tile, c, t, p, rows);
                }
            }
        }
    }

    /// Whether micro-tile (t, p) lies wholly inside C.
    #[inline]
    fn is_full_tile(&self, t: usize, p: usize, rows: usize) -> bool {
        (t + 1) * MR <= rows && (p + 1) * NR <= self.n
    }

    /// Copies a finished edge micro-tile into C, skipping padded rows and columns.
    ///
    /// # Safety
    /// `c` must point at the block's first row of C (row stride n) with room for `rows` rows.
    #[inline]
    unsafe fn store(&self, tile: &[f32; MR * NR], c: *mut f32, t: usize, p: usize, rows: usize) {
        let cols = NR.min(self.n - p * NR);
        for r in 0..MR.min(rows - t * MR) {
            let at = (t * MR + r) * self.n + p * NR;
            std::ptr::copy_nonoverlapping(tile.as_ptr().add(r * NR), c.add(at), cols);
        }
    }
}

/// Rows per parallel block: at most MC, in whole micro-tiles, and with a block count that is a
/// multiple of the thread count so that the threads finish together. (The 499 frames of 10 s of
/// audio in fixed blocks of 96 rows split 288 : 211 between two threads, losing about 13 %.)
fn balanced_block_rows(m: usize, threads: usize) -> usize {
    let tiles = m.div_ceil(MR);
    let blocks = tiles
        .div_ceil(MC / MR)
        .next_multiple_of(threads.max(1))
        .min(tiles);
    tiles.div_ceil(blocks) * MR
}

/// Bias and activation on a finished row segment.
fn finish_row(row: &mut [f32], bias: Option<&[f32]>, gelu: bool) {
    if let Some(b) = bias {
        for (x, bb) in row.iter_mut().zip(b) {
            *x += bb;
        }
    }
    if gelu {
        gelu_in_place(row);
    }
}

/// Exact-erf GELU, x·Φ(x), with an erf accurate to about 1e-6 absolute. The body is branch-free
/// and free of libm calls so that it vectorises; on AVX-512 CPUs it is compiled for 16 lanes.
pub fn gelu_in_place(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU supports AVX-512F (checked just above).
        return unsafe { gelu_avx512(x) };
    }
    gelu_slice(x);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gelu_avx512(x: &mut [f32]) {
    gelu_slice(x);
}

#[inline(always)]
fn gelu_slice(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// erf(x) from the complementary error function approximation of Numerical Recipes (erfcc,
/// fractional error < 1.2e-7 in exact arithmetic), evaluated in f32.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204
                                + t * (1.488_515_9 + t * (-0.822_152_2 + t * 0.170_872_77))))))));
    let r = 1.0 - t * exp_nonpositive(poly);
    r.copysign(x)
}

/// 1.5·2²³: adding it rounds an f32 of magnitude < 2²² to an integer (round-to-nearest-even) and
/// leaves that integer in the low mantissa bits.
const ROUNDING_MAGIC: f32 = 12_582_912.0;

/// e^x on [-87, 0] (inputs clamped there): 2^n · p(r) with a degree-6 polynomial for e^r on
/// |r| ≤ ln2/2 (relative error ~2e-7). Rounding and 2^n are done with bit arithmetic, not
/// `round()` and a saturating cast, so the loops that call it vectorise.
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f32) -> f32 {
    let x = x.clamp(-87.0, 0.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUNDING_MAGIC;
    let n = shifted - ROUNDING_MAGIC;
    let n_int = shifted.to_bits().wrapping_sub(ROUNDING_MAGIC.to_bits()) as i32;
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67
                    + r * (0.041_666_668 + r * (0.008_333_334 + r * 0.001_388_889)))));
    p * f32::from_bits(((n_int + 127) as u32) << 23)
}

/// `src` rounded to bf16 (nearest even) as little-endian pairs: `out[q]` = src[2q] | src[2q+1] << 16,
/// zero-padded when `src` has odd length. 32 values per instruction (`vcvtne2ps2bf16`, which
/// flushes f32 subnormals to zero) and the scalar rounding for the tail.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn bf16_pairs(src: &[f32], out: &mut [u32]) {
    use std::arch::x86_64::*;
    let k = src.len();
    debug_assert_eq!(out.len(), k.div_ceil(2));
    let mut q = 0;
    while 2 * q + 32 <= k {
        let lo = _mm512_loadu_ps(src.as_ptr().add(2 * q));
        let hi = _mm512_loadu_ps(src.as_ptr().add(2 * q + 16));
        let packed: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
        _mm512_storeu_si512(out.as_mut_ptr().add(q) as *mut _, packed);
        q += 16;
    }
    for (q, pair) in out.iter_mut().enumerate().skip(q) {
        let lo = half::bf16::from_f32(src[2 * q]).to_bits() as u32;
        let hi = src
            .get(2 * q + 1)
            .map_or(0, |&x| half::bf16::from_f32(x).to_bits() as u32);
        *pair = lo | (hi << 16);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel_f32(kc: usize, a: *const f32, b: *const f32, out: *mut f32, ldc: usize) {
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
        _mm512_storeu_ps(out.add(r * ldc), row[0]);
        _mm512_storeu_ps(out.add(r * ldc + 16), row[1]);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn kernel_bf16(kcp: usize, a: *const u32, b: *const u16, out: *mut f32, ldc: usize) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for q in 0..kcp {
        let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(q * NR * 2) as *const _));
        let b1: __m512bh =
            std::mem::transmute(_mm512_loadu_si512(b.add(q * NR * 2 + 32) as *const _));
        let ap = a.add(q * MR);
        for (r, row) in acc.iter_mut().enumerate() {
            let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*ap.add(r) as i32));
            row[0] = _mm512_dpbf16_ps(row[0], av, b0);
            row[1] = _mm512_dpbf16_ps(row[1], av, b1);
        }
    }
    for (r, row) in acc.iter().enumerate() {
        _mm512_storeu_ps(out.add(r * ldc), row[0]);
        _mm512_storeu_ps(out.add(r * ldc + 16), row[1]);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn reference(a: &[f32], m: usize, stride: usize, w: &[f32], n: usize, k: usize) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|kk| a[i * stride + kk] as f64 * w[j * k + kk] as f64)
                    .sum::<f64>() as f32;
            }
        }
        c
    }

    /// Deterministic values in [-0.5, 0.5) for kernel tests (also used by the attention tests).
    pub(crate) fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32
                    / (1u32 << 24) as f32)
                    - 0.5
            })
            .collect()
    }

    #[test]
    fn packed_products_match_a_plain_product_with_odd_sizes_and_strides() {
        for &(m, n, k, stride) in &[
            (1, 1, 1, 1),
            (13, 33, 7, 7),
            (100, 70, 300, 300),
            (50, 16, 30, 10),
            (200, 64, 513, 600),
        ] {
            let a = data((m - 1) * stride + k, 1);
            let w = data(n * k, 2);
            let want = reference(&a, m, stride, &w, n, k);
            let got =
                PackedWeight::new(&w, n, k, GemmPrecision::F32).matmul(&a, m, stride, None, false);
            let err = got
                .iter()
                .zip(&want)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(err < 1e-4, "f32 {m}x{n}x{k}: {err}");
            let got =
                PackedWeight::new(&w, n, k, GemmPrecision::Bf16).matmul(&a, m, stride, None, false);
            let err = got
                .iter()
                .zip(&want)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(err < 0.02 * (k as f32).sqrt(), "bf16 {m}x{n}x{k}: {err}");
        }
    }

    #[test]
    fn vector_bf16_rounding_equals_the_scalar_one() {
        if !has_avx512_bf16() {
            return;
        }
        for k in [1, 31, 32, 33, 64, 77] {
            let src: Vec<f32> = data(k, 9).iter().map(|x| x * 1e3).collect();
            let mut got = vec![0u32; k.div_ceil(2)];
            unsafe { bf16_pairs(&src, &mut got) };
            for (q, &pair) in got.iter().enumerate() {
                let lo = bf16::from_f32(src[2 * q]).to_bits() as u32;
                let hi = src
                    .get(2 * q + 1)
                    .map_or(0, |&x| bf16::from_f32(x).to_bits() as u32);
                assert_eq!(pair, lo | (hi << 16), "k {k}, pair {q}");
            }
        }
    }

    #[test]
    fn blocks_are_whole_tiles_and_shared_evenly() {
        assert_eq!(balanced_block_rows(499, 2), 84); // 6 blocks: 3 per thread
        assert_eq!(balanced_block_rows(499, 1), 84);
        assert_eq!(balanced_block_rows(5, 2), 12);
        for (m, threads) in [(1, 2), (499, 2), (16_000, 2), (1500, 16), (97, 3)] {
            let rows = balanced_block_rows(m, threads);
            assert!(
                rows.is_multiple_of(MR) && rows <= MC && rows > 0,
                "{m} {threads}: {rows}"
            );
        }
    }

    #[test]
    fn bias_and_gelu_epilogue() {
        let w = vec![1.0, 0.0, 0.0, 1.0];
        let c = PackedWeight::new(&w, 2, 2, GemmPrecision::F32).matmul(
            &[1.0, -1.0],
            1,
            2,
            Some(&[0.5, 0.0]),
            true,
        );
        let g = |x: f64| 0.5 * x * (1.0 + libm_erf(x / 2f64.sqrt()));
        assert!(
            (c[0] as f64 - g(1.5)).abs() < 1e-6 && (c[1] as f64 - g(-1.0)).abs() < 1e-6,
            "{c:?}"
        );
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
    fn exp_is_accurate_over_its_range() {
        for i in 0..=8700 {
            let x = -(i as f32) / 100.0;
            let want = (x as f64).exp();
            let got = exp_nonpositive(x) as f64;
            assert!(((got - want) / want).abs() < 1e-6, "{x}: {got} vs {want}");
        }
    }

    #[test]
    fn vectorised_gelu_equals_the_scalar_formula() {
        let mut v: Vec<f32> = (-4000..4000).map(|i| i as f32 / 500.0).collect();
        let want: Vec<f32> = v
            .iter()
            .map(|&x| 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)))
            .collect();
        gelu_in_place(&mut v);
        for (g, w) in v.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{g} vs {w}");
        }
    }

    #[test]
    fn erf_is_accurate() {
        for i in -600..=600 {
            let x = i as f64 / 200.0;
            assert!((erf(x as f32) as f64 - libm_erf(x)).abs() < 1e-6, "{x}");
        }
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// Allocating and packing the largest wav2vec2-base weight (run with --ignored --nocapture).
    #[test]
    #[ignore]
    fn pack_throughput() {
        let (n, k) = (3072, 768);
        let w: Vec<f32> = (0..n * k).map(|i| ((i % 89) as f32) * 0.01).collect();
        for precision in [GemmPrecision::F32, GemmPrecision::Bf16] {
            let mut best = f64::INFINITY;
            for _ in 0..7 {
                let start = std::time::Instant::now();
                std::hint::black_box(PackedWeight::new_serial(&w, n, k, precision));
                best = best.min(start.elapsed().as_secs_f64());
            }
            eprintln!(
                "pack {n}x{k} {precision:?}: {:.2} ms (best of 7, one thread)",
                best * 1e3
            );
        }
    }

    /// Throughput of the shapes wav2vec2-base uses on 10 s of audio (run with --ignored --nocapture).
    #[test]
    #[ignore]
    fn gemm_throughput() {
        for &(m, n, k, stride) in &[
            (499, 3072, 768, 768),
            (499, 768, 3072, 3072),
            (499, 768, 768, 768),
            (15999, 512, 1536, 1024),
        ] {
            let a: Vec<f32> = (0..(m - 1) * stride + k)
                .map(|i| ((i % 97) as f32) * 0.01)
                .collect();
            let w: Vec<f32> = (0..n * k).map(|i| ((i % 89) as f32) * 0.01).collect();
            for precision in [GemmPrecision::F32, GemmPrecision::Bf16] {
                let pw = PackedWeight::new(&w, n, k, precision);
                let _ = pw.matmul(&a, m, stride, None, false);
                let start = std::time::Instant::now();
                let reps = 5;
                for _ in 0..reps {
                    std::hint::black_box(pw.matmul(&a, m, stride, None, false));
                }
                let s = start.elapsed().as_secs_f64() / reps as f64;
                eprintln!(
                    "{m}x{n}x{k} {precision:?}: {:.1} GFLOP/s",
                    2.0 * (m * n * k) as f64 / s / 1e9
                );
            }
        }
    }
}
