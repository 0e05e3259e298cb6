//! Kernels of the SHS pitch stage ([`super::shs`]) for several frames at once, one frame per
//! vector lane, and the single-frame kernels they share with it.
//!
//! The octave spline's two tridiagonal sweeps, the mean of the harmonic sum and the frame
//! energy are dependency chains (one dependent multiply–subtract–multiply, or add, per knot):
//! on one frame they run at the latency of the chain. Here [`LANES`] frames are laid out
//! interleaved (value `i` of lane `f` at `i · LANES + f`), so one vector operation advances
//! every frame's chain by one step. Every lane performs exactly the operations of the
//! single-frame code in the same order (element-wise loops over lanes; Rust never fuses a
//! multiply and an add), so each frame's values are bit-identical to analysing it alone,
//! whichever lane it occupies and whichever of the compiled versions runs.
//!
//! Each kernel is compiled three times — baseline, AVX2 and AVX-512F — and the widest the CPU
//! has is chosen at run time (the checks are cached by the standard library).

use super::shs::LANES;

/// Defines `pub(crate) fn $name` that runs `$body` compiled for AVX-512F, AVX2 or the baseline
/// target, the widest the CPU supports.
macro_rules! wide_kernel {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? = $body:ident;) => {
        $(#[$doc])*
        pub(crate) fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn wide($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                unsafe fn narrow($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports AVX-512F (checked just above).
                    return unsafe { wide($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2 (checked just above).
                    return unsafe { narrow($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

/// Rust's empty `f64` sum (the start value of `iter().sum()`).
#[inline(always)]
fn empty_sum() -> f64 {
    std::iter::empty::<f64>().sum()
}

wide_kernel! {
    /// Hermes' peak enhancement as openSMILE applies it, from `src` into `dst`: every bin
    /// further than two bins from a local maximum (`a[i] > a[i − 1]` and `a[i] ≥ a[i + 1]`;
    /// bin 0 when `a[0] > a[1]`, the last bin when it exceeds its left neighbour) and lying
    /// between the first and the last maximum is 0; with exactly one maximum, every bin from 3
    /// on; the other bins are copied. Branch-free: the maxima are marked in `marks`, then each
    /// bin is kept where a mark lies within two bins (the same result as clearing each gap
    /// between consecutive maxima).
    fn enhance_peaks(src: &[f64], dst: &mut Vec<f64>, marks: &mut Vec<u8>) = enhance_peaks_body;
}

#[inline(always)]
fn enhance_peaks_body(src: &[f64], dst: &mut Vec<f64>, marks: &mut Vec<u8>) {
    let n = src.len();
    // sized once: every value is written below
    if dst.len() != n {
        dst.clear();
        dst.resize(n, 0.0);
    }
    if n < 2 {
        dst.copy_from_slice(src);
        return;
    }
    // the mark of bin i at i + 2, two unmarked guards on each side
    marks.clear();
    marks.resize(n + 4, 0);
    marks[2] = (src[0] > src[1]) as u8;
    {
        let (l, c, r) = (&src[..n - 2], &src[1..n - 1], &src[2..n]);
        let m = &mut marks[3..n + 1];
        for i in 0..n - 2 {
            m[i] = (c[i] > l[i] && c[i] >= r[i]) as u8;
        }
    }
    marks[n + 1] = (src[n - 1] > src[n - 2]) as u8;
    let count: usize = marks.iter().map(|&m| m as usize).sum();
    if count < 2 {
        dst.copy_from_slice(src);
        if count == 1 {
            // openSMILE reads the (zero) second slot here: everything from bin 3 on is cleared
            for v in dst.iter_mut().skip(3) {
                *v = 0.0;
            }
        }
        return;
    }
    let first = marks.iter().position(|&m| m != 0).expect("a mark") - 2;
    let last = marks.iter().rposition(|&m| m != 0).expect("a mark") - 2;
    // bins first + 1 ..= last − 1: kept where a mark lies in i − 2 ..= i + 2 (marks i ..= i + 4)
    let (lo, hi) = (first + 1, last);
    dst[..lo].copy_from_slice(&src[..lo]);
    dst[hi..].copy_from_slice(&src[hi..]);
    let len = hi - lo;
    let (d, a) = (&mut dst[lo..hi], &src[lo..hi]);
    let (m0, m1, m2, m3, m4) = (
        &marks[lo..lo + len],
        &marks[lo + 1..lo + 1 + len],
        &marks[lo + 2..lo + 2 + len],
        &marks[lo + 3..lo + 3 + len],
        &marks[lo + 4..lo + 4 + len],
    );
    for i in 0..len {
        let keep = m0[i] | m1[i] | m2[i] | m3[i] | m4[i];
        d[i] = if keep != 0 { a[i] } else { 0.0 };
    }
}

/// `out[i · LANES + f] = rows[f][i]` for the first `out.len() / LANES` values of each of
/// the `LANES` rows (blocks of 8 × 8 values transposed in registers where the CPU has
/// AVX-512F).
pub(crate) fn interleave(rows: &[Vec<f64>], out: &mut [f64]) {
    let n = out.len() / LANES;
    let rows: [&[f64]; LANES] = std::array::from_fn(|f| &rows[f][..n]);
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            done = unsafe { interleave_blocks_avx512(&rows, out) };
        }
    }
    for i in done..n {
        for f in 0..LANES {
            out[i * LANES + f] = rows[f][i];
        }
    }
}

/// The whole blocks of eight values of [`interleave`]: each block of the eight rows loaded as
/// eight vectors, transposed (unpacks, then 128-bit lane shuffles) and stored as eight
/// interleaved points. Returns the number of values per row done.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn interleave_blocks_avx512(rows: &[&[f64]; LANES], out: &mut [f64]) -> usize {
    use std::arch::x86_64::*;
    const _: () = assert!(LANES == 8, "8 x 8 blocks");
    let n = out.len() / LANES;
    let full = n - n % 8;
    let mut i = 0;
    while i < full {
        // SAFETY: every row holds n ≥ i + 8 values and `out` n · 8 ≥ (i + 8) · 8.
        let r: [__m512d; 8] = std::array::from_fn(|f| _mm512_loadu_pd(rows[f].as_ptr().add(i)));
        // lo[k]: (r[2k][0], r[2k+1][0]), (r[2k][2], r[2k+1][2]), ...; hi[k] the odd columns
        let lo: [__m512d; 4] = std::array::from_fn(|k| _mm512_unpacklo_pd(r[2 * k], r[2 * k + 1]));
        let hi: [__m512d; 4] = std::array::from_fn(|k| _mm512_unpackhi_pd(r[2 * k], r[2 * k + 1]));
        let dst = out.as_mut_ptr().add(i * LANES);
        for (t, first) in [(lo, 0usize), (hi, 1)] {
            // 128-bit lanes 0 and 2, then 1 and 3, of rows 0–3 and of rows 4–7
            let a0 = _mm512_shuffle_f64x2::<0x88>(t[0], t[1]);
            let a1 = _mm512_shuffle_f64x2::<0x88>(t[2], t[3]);
            let b0 = _mm512_shuffle_f64x2::<0xdd>(t[0], t[1]);
            let b1 = _mm512_shuffle_f64x2::<0xdd>(t[2], t[3]);
            // columns first, first + 4 (from a) and first + 2, first + 6 (from b)
            _mm512_storeu_pd(dst.add(first * LANES), _mm512_shuffle_f64x2::<0x88>(a0, a1));
            _mm512_storeu_pd(
                dst.add((first + 4) * LANES),
                _mm512_shuffle_f64x2::<0xdd>(a0, a1),
            );
            _mm512_storeu_pd(
                dst.add((first + 2) * LANES),
                _mm512_shuffle_f64x2::<0x88>(b0, b1),
            );
            _mm512_storeu_pd(
                dst.add((first + 6) * LANES),
                _mm512_shuffle_f64x2::<0xdd>(b0, b1),
            );
        }
        i += 8;
    }
    full
}

wide_kernel! {
    /// Per lane `f`: `Σ_i (rows[f][i] · w[i])²` over `i < w.len()`, summed in increasing `i`
    /// from Rust's empty sum (as `iter().map(..).sum()` sums one frame).
    fn energies(rows: &[Vec<f64>], w: &[f64]) -> [f64; LANES] = energies_body;
}

#[inline(always)]
fn energies_body(rows: &[Vec<f64>], w: &[f64]) -> [f64; LANES] {
    let n = w.len();
    let rows: [&[f64]; LANES] = std::array::from_fn(|f| &rows[f][..n]);
    let mut acc = [empty_sum(); LANES];
    for i in 0..n {
        for f in 0..LANES {
            let t = rows[f][i] * w[i];
            acc[f] += t * t;
        }
    }
    acc
}

/// The per-knot constants of a natural cubic spline's tridiagonal system (see
/// `shs::SplinePlan`), each of the knots' length `n`.
pub(crate) struct SweepCoefficients<'a> {
    /// `x[i + 1] − x[i]` (`n − 1` values).
    pub dx: &'a [f64],
    /// `x[i + 1] − x[i − 1]` at knot `i`.
    pub dx2: &'a [f64],
    /// Sub-diagonal ratio at knot `i`.
    pub sig: &'a [f64],
    /// `1 / p` of the forward elimination at knot `i`.
    pub p_inv: &'a [f64],
    /// Back-substitution factor at knot `i`.
    pub y2_coef: &'a [f64],
}

wide_kernel! {
    /// Second derivatives of the natural spline through interleaved ordinates `y` (`n · LANES`
    /// values, `n ≥ 3`) into `y2`: per lane, the interval slopes, the right-hand sides
    /// `6 (s_i − s_{i−1}) / dx2_i`, the forward sweep `u_i = (r_i − sig_i u_{i−1}) p_i` and
    /// the back substitution `y2_i = c_i y2_{i+1} + u_i`, each value computed as the
    /// single-frame plan computes it.
    fn second_derivatives_lanes(y: &[f64], y2: &mut [f64], c: &SweepCoefficients) =
        second_derivatives_lanes_body;
}

#[inline(always)]
fn second_derivatives_lanes_body(y: &[f64], y2: &mut [f64], c: &SweepCoefficients) {
    let n = y.len() / LANES;
    assert!(
        n >= 3 && y2.len() == y.len(),
        "interleaved spline of at least 3 knots"
    );
    let (dx, dx2, sig, p_inv, coef) = (
        &c.dx[..n - 1],
        &c.dx2[..n - 1],
        &c.sig[..n - 1],
        &c.p_inv[..n - 1],
        &c.y2_coef[..n - 1],
    );
    let lane = |s: &[f64], i: usize| -> [f64; LANES] {
        s[i * LANES..(i + 1) * LANES]
            .try_into()
            .expect("LANES values")
    };
    // forward: u into y2, knot 0's u is 0
    let mut left = [0.0; LANES];
    {
        let (y0, y1) = (lane(y, 0), lane(y, 1));
        for f in 0..LANES {
            left[f] = (y1[f] - y0[f]) / dx[0];
        }
    }
    y2[..LANES].fill(0.0);
    let mut prev = [0.0f64; LANES];
    for i in 1..n - 1 {
        let (yc, yr) = (lane(y, i), lane(y, i + 1));
        let (d, d2, s, p) = (dx[i], dx2[i], sig[i], p_inv[i]);
        let out: &mut [f64; LANES] = (&mut y2[i * LANES..(i + 1) * LANES])
            .try_into()
            .expect("LANES values");
        for f in 0..LANES {
            let right = (yr[f] - yc[f]) / d;
            let r = 6.0 * (right - left[f]) / d2;
            left[f] = right;
            prev[f] = (r - s * prev[f]) * p;
            out[f] = prev[f];
        }
    }
    // backward, in place over u
    y2[(n - 1) * LANES..].fill(0.0);
    let mut next = [0.0f64; LANES];
    for i in (0..n - 1).rev() {
        let k = coef[i];
        let v: &mut [f64; LANES] = (&mut y2[i * LANES..(i + 1) * LANES])
            .try_into()
            .expect("LANES values");
        for f in 0..LANES {
            next[f] = k * next[f] + v[f];
            v[f] = next[f];
        }
    }
}

wide_kernel! {
    /// Interleaved spline points rounded to f32 and weighted: for point `j` in knot interval
    /// `[l, l + 1]` (`l = lo[j]`, clamped to the last interval), per lane
    /// `v = a·y[l] + b·y[l+1] + (ca·y2[l] + cb·y2[l+1])·h26` (0 where `h26` is 0), rounded to
    /// f32, then `v · w` where positive and 0 otherwise; `coef` = `[a, b, ca, cb, h26, w]`.
    /// `y` and `y2` hold `n · LANES` values (`n ≥ 2`), `out` `lo.len() · LANES`.
    fn spline_points_lanes(out: &mut [f64], y: &[f64], y2: &[f64], lo: &[usize], coef: [&[f64]; 6]) =
        spline_points_lanes_body;
}

#[inline(always)]
fn spline_points_lanes_body(
    out: &mut [f64],
    y: &[f64],
    y2: &[f64],
    lo: &[usize],
    coef: [&[f64]; 6],
) {
    let m = lo.len();
    let n = y.len().min(y2.len()) / LANES;
    assert!(n >= 2, "a spline needs two knots");
    assert!(out.len() >= m * LANES, "room for every point");
    let last = n - 2;
    let [a, b, ca, cb, h26, w] = coef;
    let (a, b, ca, cb, h26, w) = (&a[..m], &b[..m], &ca[..m], &cb[..m], &h26[..m], &w[..m]);
    let lane = |s: &[f64], i: usize| -> [f64; LANES] {
        s[i * LANES..(i + 1) * LANES]
            .try_into()
            .expect("LANES values")
    };
    for (j, o) in out.chunks_exact_mut(LANES).take(m).enumerate() {
        let l = lo[j].min(last);
        let (yl, yh, zl, zh) = (lane(y, l), lane(y, l + 1), lane(y2, l), lane(y2, l + 1));
        let (aj, bj, caj, cbj, hj, wj) = (a[j], b[j], ca[j], cb[j], h26[j], w[j]);
        for f in 0..LANES {
            let v = aj * yl[f] + bj * yh[f] + (caj * zl[f] + cbj * zh[f]) * hj;
            let v = if hj == 0.0 { 0.0 } else { v };
            let v = v as f32 as f64;
            o[f] = if v > 0.0 { v * wj } else { 0.0 };
        }
    }
}

/// Values summed per block of the harmonic sum (small enough to stay in the first-level cache
/// while every harmonic is added to it).
const SUM_BLOCK: usize = 1024;

wide_kernel! {
    /// The subharmonic sum of one octave spectrum: each value `e` starts as `octave[e]` and
    /// gets `octave[e + s] · c` added for each `(s, c)` of `terms` (in order, shifts
    /// non-decreasing) with `e + s` inside the spectrum; then it is divided by `divisor` and
    /// negative results set to 0. The same operations per value as adding one shifted copy of
    /// the whole spectrum after the other, in blocks that stay in cache.
    fn harmonic_sum(out: &mut [f64], octave: &[f64], terms: &[(usize, f64)], divisor: f64) =
        harmonic_sum_body;
}

#[inline(always)]
fn harmonic_sum_body(out: &mut [f64], octave: &[f64], terms: &[(usize, f64)], divisor: f64) {
    let total = octave.len();
    let out = &mut out[..total];
    let mut b0 = 0;
    while b0 < total {
        let b1 = (b0 + SUM_BLOCK).min(total);
        out[b0..b1].copy_from_slice(&octave[b0..b1]);
        for &(off, c) in terms {
            let end = b1.min(total.saturating_sub(off));
            if end <= b0 {
                // shifts only grow: no later term reaches this block either
                break;
            }
            let (dst, src) = (&mut out[b0..end], &octave[b0 + off..end + off]);
            for (d, &x) in dst.iter_mut().zip(src) {
                *d += x * c;
            }
        }
        for v in &mut out[b0..b1] {
            let q = *v / divisor;
            *v = if q < 0.0 { 0.0 } else { q };
        }
        b0 = b1;
    }
}

wide_kernel! {
    /// [`harmonic_sum`] of `LANES` interleaved octave spectra (`octave`, `out`: `m · LANES`
    /// values), each point's sum kept in a register while its harmonics are added (the same
    /// operations per value, in the same order); returns each lane's sum of its `m` results in
    /// increasing order from Rust's empty sum.
    fn harmonic_sum_lanes(out: &mut [f64], octave: &[f64], terms: &[(usize, f64)], divisor: f64) -> [f64; LANES] =
        harmonic_sum_lanes_body;
}

#[inline(always)]
fn harmonic_sum_lanes_body(
    out: &mut [f64],
    octave: &[f64],
    terms: &[(usize, f64)],
    divisor: f64,
) -> [f64; LANES] {
    let m = octave.len() / LANES;
    let lane = |i: usize| -> [f64; LANES] {
        octave[i * LANES..(i + 1) * LANES]
            .try_into()
            .expect("LANES values")
    };
    let mut sums = [empty_sum(); LANES];
    let mut finish = |j: usize, acc: &[f64; LANES], out: &mut [f64]| {
        let dst = &mut out[j * LANES..(j + 1) * LANES];
        for f in 0..LANES {
            let q = acc[f] / divisor;
            let v = if q < 0.0 { 0.0 } else { q };
            dst[f] = v;
            sums[f] += v;
        }
    };
    // terms[..k] are the harmonics that reach inside the spectrum from point j (shift < m − j)
    let mut k = terms.len();
    let mut j = 0;
    while j < m {
        while k > 0 && terms[k - 1].0 >= m - j {
            k -= 1;
        }
        // four points at once (four independent chains) where they have the same harmonics
        if j + GROUP <= m && (k == 0 || terms[k - 1].0 + j + GROUP - 1 < m) {
            let mut acc: [[f64; LANES]; GROUP] = std::array::from_fn(|q| lane(j + q));
            for &(s, c) in &terms[..k] {
                for (q, acc) in acc.iter_mut().enumerate() {
                    let o = lane(j + q + s);
                    for f in 0..LANES {
                        acc[f] += o[f] * c;
                    }
                }
            }
            for (q, acc) in acc.iter().enumerate() {
                finish(j + q, acc, out);
            }
            j += GROUP;
        } else {
            let mut acc = lane(j);
            for &(s, c) in &terms[..k] {
                let o = lane(j + s);
                for f in 0..LANES {
                    acc[f] += o[f] * c;
                }
            }
            finish(j, &acc, out);
            j += 1;
        }
    }
    sums
}

/// Points of [`harmonic_sum_lanes`] summed side by side.
const GROUP: usize = 4;

/// Inserts a peak of score `v` at index `i` into one lane's slots (scores decreasing, free
/// slots 0 at the end): before the first free slot or lower score, the rest moving down.
#[inline(always)]
fn insert_peak(scores: &mut [f64], idx: &mut [usize], v: f64, i: usize) {
    let n_c = scores.len();
    for j in 0..n_c {
        if scores[j] == 0.0 || scores[j] < v {
            for jj in (j + 1..n_c).rev() {
                scores[jj] = scores[jj - 1];
                idx[jj] = idx[jj - 1];
            }
            idx[j] = i;
            scores[j] = v;
            break;
        }
    }
}

/// Per lane of the interleaved harmonic sums `ss` (`n · LANES` values): the `n_c` highest
/// interior local maxima (`ss[i] > ss[i − 1]` and `ss[i] > ss[i + 1]`) by score, as inserting
/// each maximum in index order into `n_c` slots sorted by score (ties keep the earlier one
/// first) leaves them: lane `f`'s slots are `scores[f · n_c ..][..n_c]` and
/// `idx[f · n_c ..][..n_c]`, free slots scored 0 at the end. Only a maximum above a lane's
/// last slot can change its slots (maxima are positive, so a free last slot admits any), so
/// the points are first tested all lanes at once and the few that pass are inserted.
pub(crate) fn best_peaks_lanes(ss: &[f64], n_c: usize, scores: &mut [f64], idx: &mut [usize]) {
    scores[..n_c * LANES].fill(0.0);
    idx[..n_c * LANES].fill(0);
    if n_c == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            return unsafe { best_peaks_lanes_avx512(ss, n_c, scores, idx) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { best_peaks_lanes_avx2(ss, n_c, scores, idx) };
        }
    }
    best_peaks_lanes_scalar(ss, n_c, scores, idx)
}

/// Inserts point `i` (values `v`) into the slots of every lane set in `mask` and updates each
/// such lane's last score in `last`.
#[inline(always)]
fn insert_lanes(
    mut mask: u32,
    v: &[f64],
    i: usize,
    n_c: usize,
    scores: &mut [f64],
    idx: &mut [usize],
    last: &mut [f64; LANES],
) {
    while mask != 0 {
        let f = mask.trailing_zeros() as usize;
        let (sc, ix) = (
            &mut scores[f * n_c..(f + 1) * n_c],
            &mut idx[f * n_c..(f + 1) * n_c],
        );
        insert_peak(sc, ix, v[f], i);
        last[f] = sc[n_c - 1];
        mask &= mask - 1;
    }
}

fn best_peaks_lanes_scalar(ss: &[f64], n_c: usize, scores: &mut [f64], idx: &mut [usize]) {
    let n = ss.len() / LANES;
    if n_c == 0 {
        return;
    }
    let mut last = [0.0f64; LANES];
    for i in 1..n.saturating_sub(1) {
        let (l, c, r) = (
            &ss[(i - 1) * LANES..i * LANES],
            &ss[i * LANES..(i + 1) * LANES],
            &ss[(i + 1) * LANES..(i + 2) * LANES],
        );
        let mut mask = 0u32;
        for f in 0..LANES {
            if c[f] > l[f] && c[f] > r[f] && last[f] < c[f] {
                mask |= 1 << f;
            }
        }
        insert_lanes(mask, c, i, n_c, scores, idx, &mut last);
    }
}

/// [`best_peaks_lanes_scalar`] with the three comparisons of all eight lanes in one AVX-512
/// mask (ordered predicates: false on NaN, as the scalar ones).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn best_peaks_lanes_avx512(ss: &[f64], n_c: usize, scores: &mut [f64], idx: &mut [usize]) {
    use std::arch::x86_64::*;
    const _: () = assert!(LANES == 8, "one 512-bit vector per point");
    let n = ss.len() / LANES;
    if n < 3 {
        return;
    }
    let mut last = [0.0f64; LANES];
    let mut last_v = _mm512_setzero_pd();
    let p = ss.as_ptr();
    // SAFETY: every load reads points i − 1, i, i + 1 with 1 ≤ i ≤ n − 2, inside `ss`.
    let mut l = _mm512_loadu_pd(p);
    let mut c = _mm512_loadu_pd(p.add(LANES));
    for i in 1..n - 1 {
        let r = _mm512_loadu_pd(p.add((i + 1) * LANES));
        let mask = _mm512_cmp_pd_mask::<_CMP_GT_OQ>(c, l)
            & _mm512_cmp_pd_mask::<_CMP_GT_OQ>(c, r)
            & _mm512_cmp_pd_mask::<_CMP_LT_OQ>(last_v, c);
        if mask != 0 {
            let v = &ss[i * LANES..(i + 1) * LANES];
            insert_lanes(mask as u32, v, i, n_c, scores, idx, &mut last);
            last_v = _mm512_loadu_pd(last.as_ptr());
        }
        l = c;
        c = r;
    }
}

/// [`best_peaks_lanes_scalar`] with the comparisons of four lanes per AVX2 vector.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn best_peaks_lanes_avx2(ss: &[f64], n_c: usize, scores: &mut [f64], idx: &mut [usize]) {
    use std::arch::x86_64::*;
    const _: () = assert!(LANES == 8, "two 256-bit vectors per point");
    let n = ss.len() / LANES;
    if n < 3 {
        return;
    }
    let mut last = [0.0f64; LANES];
    let (mut last0, mut last1) = (_mm256_setzero_pd(), _mm256_setzero_pd());
    let p = ss.as_ptr();
    for i in 1..n - 1 {
        // SAFETY: points i − 1, i, i + 1 with 1 ≤ i ≤ n − 2 lie inside `ss`.
        let at = |k: usize, h: usize| _mm256_loadu_pd(p.add(k * LANES + 4 * h));
        let (c0, c1) = (at(i, 0), at(i, 1));
        let hit = |c: __m256d, l: __m256d, r: __m256d, t: __m256d| {
            _mm256_movemask_pd(_mm256_and_pd(
                _mm256_and_pd(
                    _mm256_cmp_pd::<_CMP_GT_OQ>(c, l),
                    _mm256_cmp_pd::<_CMP_GT_OQ>(c, r),
                ),
                _mm256_cmp_pd::<_CMP_LT_OQ>(t, c),
            )) as u32
        };
        let mask = hit(c0, at(i - 1, 0), at(i + 1, 0), last0)
            | (hit(c1, at(i - 1, 1), at(i + 1, 1), last1) << 4);
        if mask != 0 {
            let v = &ss[i * LANES..(i + 1) * LANES];
            insert_lanes(mask, v, i, n_c, scores, idx, &mut last);
            last0 = _mm256_loadu_pd(last.as_ptr());
            last1 = _mm256_loadu_pd(last.as_ptr().add(4));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u64) -> Vec<f64> {
        crate::test_signal::xorshift(n, seed, 0.3)
    }

    /// Peak enhancement as openSMILE orders it: each gap cleared as soon as its right peak is
    /// found, the later peak tests reading the partly cleared spectrum.
    fn enhance_peaks_in_order(a: &mut [f64]) {
        let n = a.len();
        if n < 2 {
            return;
        }
        let (mut count, mut prev) = (0usize, 0usize);
        let mut peak = |a: &mut [f64], i: usize| {
            if count > 0 {
                let mut j = prev as isize + 3;
                while j <= i as isize - 3 {
                    a[j as usize] = 0.0;
                    j += 1;
                }
            }
            count += 1;
            prev = i;
        };
        if a[0] > a[1] {
            peak(a, 0);
        }
        for i in 1..n - 1 {
            if a[i] > a[i - 1] && a[i] >= a[i + 1] {
                peak(a, i);
            }
        }
        if a[n - 1] > a[n - 2] {
            peak(a, n - 1);
        }
        if count == 1 {
            for v in a.iter_mut().skip(3) {
                *v = 0.0;
            }
        }
    }

    #[test]
    fn peak_enhancement_equals_clearing_in_order() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) % 7
        };
        let mut marks = Vec::new();
        for len in [0usize, 1, 2, 3, 4, 5, 6, 8, 13, 100, 257] {
            for round in 0..40 {
                // few levels: plateaus and ties at every distance; some with sparse peaks
                let x: Vec<f64> = (0..len)
                    .map(|i| {
                        let v = next() as f64;
                        if round % 4 == 3 && i % 9 != 0 {
                            0.0
                        } else {
                            v
                        }
                    })
                    .collect();
                let (mut got, mut want) = (vec![7.0; 3], x.clone());
                enhance_peaks(&x, &mut got, &mut marks);
                enhance_peaks_in_order(&mut want);
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{x:?}");
            }
        }
        // NaN compares false, as in the scalar peak tests
        let x = vec![0.0, 2.0, f64::NAN, 1.0, 0.5, 0.2, 0.1, 0.0, 3.0, 0.0];
        let (mut got, mut want) = (Vec::new(), x.clone());
        enhance_peaks(&x, &mut got, &mut marks);
        enhance_peaks_in_order(&mut want);
        assert_eq!(format!("{got:?}"), format!("{want:?}"));
    }

    #[test]
    fn lane_kernels_equal_their_single_frame_sums() {
        let n = 37;
        let rows: Vec<Vec<f64>> = (0..LANES).map(|f| data(n + f, f as u64)).collect();
        let mut inter = vec![0.0; n * LANES];
        interleave(&rows, &mut inter);
        for f in 0..LANES {
            for i in 0..n {
                assert_eq!(inter[i * LANES + f].to_bits(), rows[f][i].to_bits());
            }
        }
        let w = data(n - 3, 99);
        let e = energies(&rows, &w);
        for f in 0..LANES {
            let want: f64 = rows[f]
                .iter()
                .zip(&w)
                .map(|(x, w)| (x * w).powi(2))
                .sum::<f64>();
            assert_eq!(e[f].to_bits(), want.to_bits(), "lane {f}");
        }
        // harmonic sums: interleaved equals each lane alone
        let terms = [
            (3usize, 0.85),
            (5, 0.7225),
            (5, 0.66),
            (9, 0.614),
            (40, 0.5),
        ];
        let mut one = vec![0.0; n];
        let mut all = vec![0.0; n * LANES];
        let sums = harmonic_sum_lanes(&mut all, &inter, &terms, 15.0);
        for f in 0..LANES {
            harmonic_sum(&mut one, &rows[f][..n], &terms, 15.0);
            // the shifted copies added one after the other
            let mut want = rows[f][..n].to_vec();
            for &(s, c) in &terms {
                for i in 0..n.saturating_sub(s) {
                    want[i] += rows[f][i + s] * c;
                }
            }
            for v in &mut want {
                let q = *v / 15.0;
                *v = if q < 0.0 { 0.0 } else { q };
            }
            for i in 0..n {
                assert_eq!(one[i].to_bits(), want[i].to_bits(), "lane {f} value {i}");
                assert_eq!(all[i * LANES + f].to_bits(), want[i].to_bits());
            }
            assert_eq!(sums[f].to_bits(), want.iter().sum::<f64>().to_bits());
        }
    }

    /// The slots of one lane as inserting every maximum in order leaves them.
    fn best_peaks_in_order(ss: &[f64], n_c: usize) -> (Vec<f64>, Vec<usize>) {
        let (mut scores, mut idx) = (vec![0.0; n_c], vec![0usize; n_c]);
        for i in 1..ss.len().saturating_sub(1) {
            if ss[i] > ss[i - 1] && ss[i] > ss[i + 1] {
                insert_peak(&mut scores, &mut idx, ss[i], i);
            }
        }
        (scores, idx)
    }

    #[test]
    fn best_peaks_in_lanes_equal_inserting_every_maximum() {
        for (n, levels) in [(0usize, 5u64), (1, 5), (2, 5), (3, 5), (50, 4), (300, 1000)] {
            // few levels: ties between maxima; clamped zeros
            let rows: Vec<Vec<f64>> = (0..LANES)
                .map(|f| {
                    data(n, 7 + f as u64)
                        .iter()
                        .map(|v| ((v * levels as f64).round() / levels as f64).max(0.0))
                        .collect()
                })
                .collect();
            let mut inter = vec![0.0; n * LANES];
            interleave(&rows, &mut inter);
            for n_c in [0usize, 1, 6] {
                let (mut scores, mut idx) = (vec![9.0; n_c * LANES], vec![9; n_c * LANES]);
                best_peaks_lanes(&inter, n_c, &mut scores, &mut idx);
                let mut scalar = (vec![9.0; n_c * LANES], vec![9; n_c * LANES]);
                scalar.0.fill(0.0);
                scalar.1.fill(0);
                best_peaks_lanes_scalar(&inter, n_c, &mut scalar.0, &mut scalar.1);
                assert_eq!((&scores, &idx), (&scalar.0, &scalar.1), "n {n} n_c {n_c}");
                #[cfg(target_arch = "x86_64")]
                if n_c > 0 && std::arch::is_x86_feature_detected!("avx2") {
                    let (mut s2, mut i2) = (vec![0.0; n_c * LANES], vec![0; n_c * LANES]);
                    // SAFETY: the CPU supports AVX2 (checked just above).
                    unsafe { best_peaks_lanes_avx2(&inter, n_c, &mut s2, &mut i2) };
                    assert_eq!((&s2, &i2), (&scalar.0, &scalar.1), "AVX2, n {n} n_c {n_c}");
                }
                for f in 0..LANES {
                    let (ws, wi) = best_peaks_in_order(&rows[f], n_c);
                    assert_eq!(&scores[f * n_c..(f + 1) * n_c], &ws[..], "n {n} lane {f}");
                    assert_eq!(&idx[f * n_c..(f + 1) * n_c], &wi[..], "n {n} lane {f}");
                }
            }
        }
    }

    #[test]
    fn harmonic_sum_blocks_equal_whole_passes() {
        // longer than a block, shifts crossing block ends
        let n = 3 * SUM_BLOCK + 17;
        let x = data(n, 5);
        let terms: Vec<(usize, f64)> = (2..=15usize)
            .map(|h| {
                (
                    ((h as f64).log2() * 700.0) as usize,
                    0.85f64.powi(h as i32 - 1),
                )
            })
            .filter(|&(s, _)| s < n)
            .collect();
        let mut got = vec![0.0; n];
        harmonic_sum(&mut got, &x, &terms, 15.0);
        let mut want = x.clone();
        for &(s, c) in &terms {
            for i in 0..n - s {
                want[i] += x[i + s] * c;
            }
        }
        for (i, v) in want.iter_mut().enumerate() {
            let q = *v / 15.0;
            *v = if q < 0.0 { 0.0 } else { q };
            assert_eq!(got[i].to_bits(), v.to_bits(), "value {i}");
        }
    }
}
