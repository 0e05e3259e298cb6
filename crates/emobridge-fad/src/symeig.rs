//! Eigenvalues (no vectors) of a real symmetric matrix: a blocked Householder reduction to
//! tridiagonal form followed by the implicit QL iteration on the tridiagonal matrix.
//!
//! The reduction is LAPACK's `dsytrd` for the lower triangle (Golub & Van Loan, *Matrix
//! Computations*, 4th ed., §8.3.1 "Householder tridiagonalization"; Dongarra, Sorensen &
//! Hammarling, "Block reduction of matrices to condensed forms for eigenvalue computations",
//! LAPACK Working Note 2, 1987): the columns are reduced in panels of [`PANEL`] columns. Inside a
//! panel (`dlatrd`) each Householder vector `v` is generated from the column brought up to date
//! by the panel's earlier reflectors, and `w = τ (A − V Wᵀ − W Vᵀ) v − ½ τ² (vᵀ…) v` is formed
//! from one symmetric matrix–vector product with the *not yet updated* trailing matrix plus
//! corrections by the panel's `V` and `W`; the trailing matrix then receives the whole panel at
//! once as the symmetric rank-2k update `A ← A − V Wᵀ − W Vᵀ` (`dsyr2k`), one matrix product
//! on faer's GEMM kernels. The unblocked reduction (what faer's `self_adjoint_evd` runs) instead
//! applies a rank-2 update to the whole trailing matrix after every column, reading and writing
//! it twice per column; here the per-column work is one read of its lower triangle (a fused
//! symmetric matrix–vector product, four columns at a time), and half the arithmetic runs in
//! the rank-2k product.
//!
//! The eigenvalues of the tridiagonal matrix come from the QL algorithm with implicit Wilkinson
//! shifts and no accumulation of rotations (Golub & Van Loan §8.3.5; Bowdler, Martin, Reinsch &
//! Wilkinson, "The QR and QL algorithms for symmetric matrices", Numer. Math. 11, 1968) in its
//! root-free form on the squared couplings (Pal, Walker & Kahan; LAPACK's `dsterf`), QL or QR
//! per unreduced block by `dsterf`'s rule, on the matrix scaled by a power of two to unit
//! largest entry.
//!
//! Both stages are backward stable: the computed eigenvalues are exact for a matrix within
//! `O(n ε ‖A‖)` of the input, like those of `eigvalsh` or faer's solver.

use faer::{Accum, MatMut, MatRef, Par};

/// Columns per panel of the blocked reduction (LAPACK's `ilaenv` default for `dsytrd`).
const PANEL: usize = 32;
/// Below this order the reduction is unblocked (one column per panel).
const BLOCKED_FROM: usize = 64;
/// From this order on, a multi-threaded `par` splits each symmetric matrix–vector product in two.
const PARALLEL_FROM: usize = 256;
/// QL sweeps allowed per eigenvalue on average (`dsterf`'s limit) before giving up.
const MAX_SWEEPS: usize = 30;

/// Why the eigenvalues could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EigenError {
    /// A non-finite entry in the input (NaN or infinity).
    NotFinite,
    /// The QL iteration did not converge within its limit.
    NoConvergence,
}

/// faer's eigenvalues-only solver (unblocked tridiagonal reduction) on the lower triangle of
/// `a`: the fallback should the QL iteration of [`symmetric_eigenvalues`] not converge, and the
/// reference it is measured against. Its failure is reported as [`EigenError::NoConvergence`].
pub fn faer_symmetric_eigenvalues(a: MatRef<'_, f64>, par: Par) -> Result<Vec<f64>, EigenError> {
    use faer::dyn_stack::{MemBuffer, MemStack};
    use faer::linalg::evd;
    let n = a.nrows();
    let mut s = faer::diag::Diag::<f64>::zeros(n);
    let mut mem = MemBuffer::new(evd::self_adjoint_evd_scratch::<f64>(
        n,
        evd::ComputeEigenvectors::No,
        par,
        Default::default(),
    ));
    evd::self_adjoint_evd(
        a,
        s.as_mut(),
        None,
        par,
        MemStack::new(&mut mem),
        Default::default(),
    )
    .map_err(|_| EigenError::NoConvergence)?;
    Ok(s.column_vector().iter().copied().collect())
}

/// The eigenvalues, ascending, of the symmetric matrix whose lower triangle is `a` (the strict
/// upper triangle is not read). `par` is handed to the rank-2k products of the reduction.
pub fn symmetric_eigenvalues(a: MatRef<'_, f64>, par: Par) -> Result<Vec<f64>, EigenError> {
    let n = a.nrows();
    assert_eq!(n, a.ncols(), "symmetric_eigenvalues needs a square matrix");
    let mut buf = vec![0.0f64; n * n];
    for j in 0..n {
        let col = &mut buf[j * n..(j + 1) * n];
        for i in j..n {
            col[i] = a[(i, j)];
        }
    }
    symmetric_eigenvalues_in_place(&mut buf, n, par)
}

/// [`symmetric_eigenvalues`] of the order-`n` matrix held column-major in `a` (leading
/// dimension `n`, lower triangle read), reduced in place: `a` is overwritten. For callers that
/// compute many eigenvalue problems in one buffer (no copy, no allocation of the matrix).
///
/// # Panics
/// If `a` does not hold `n · n` values.
pub fn symmetric_eigenvalues_in_place(
    a: &mut [f64],
    n: usize,
    par: Par,
) -> Result<Vec<f64>, EigenError> {
    assert_eq!(
        a.len(),
        n * n,
        "symmetric_eigenvalues_in_place needs n · n values"
    );
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut largest = 0.0f64;
    for j in 0..n {
        for &v in &a[j * n + j..(j + 1) * n] {
            if !v.is_finite() {
                return Err(EigenError::NotFinite);
            }
            largest = largest.max(v.abs());
        }
    }
    if largest == 0.0 {
        return Ok(vec![0.0; n]);
    }
    // The lower triangle scaled by a power of two (exactly) to unit-order entries, so that no
    // intermediate overflows or underflows.
    let scale = 2f64.powi(largest.log2().round() as i32);
    let inv = 1.0 / scale;
    for j in 0..n {
        for v in &mut a[j * n + j..(j + 1) * n] {
            *v *= inv;
        }
    }
    let (d, e) = match par {
        // On a pool thread, so that the per-column two-way splits are cheap.
        Par::Rayon(threads) if threads.get() > 1 && n >= PARALLEL_FROM => {
            rayon::scope(|_| tridiagonalize(a, n, par))
        }
        _ => tridiagonalize(a, n, par),
    };
    let mut values = tridiagonal_eigenvalues(d, e)?;
    for v in values.iter_mut() {
        *v *= scale;
    }
    Ok(values)
}

/// Reduces the lower triangle held column-major in `a` (order `n`, leading dimension `n`) to
/// tridiagonal form in place; returns the diagonal and the sub-diagonal (length `n − 1`).
fn tridiagonalize(a: &mut [f64], n: usize, par: Par) -> (Vec<f64>, Vec<f64>) {
    let nb = if n >= BLOCKED_FROM { PANEL } else { 1 };
    // W (n × nb) and the two operands of the rank-2k update (at most n × 2nb each): one
    // allocation per thread, reused by every reduction it runs (a fresh one per call cost a page
    // fault per 4 KiB touched when many distances run back to back).
    let need = 5 * n * nb;
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => {
            if scratch.len() < need {
                *scratch = vec![0.0; need];
            }
            reduce_dispatch(a, n, nb, par, &mut scratch[..need])
        }
        // Already in use on this thread (a reduction nested in another through work stealing).
        Err(_) => reduce_dispatch(a, n, nb, par, &mut vec![0.0; need]),
    })
}

thread_local! {
    /// The scratch of [`tridiagonalize`], kept per thread.
    static SCRATCH: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn reduce_dispatch(
    a: &mut [f64],
    n: usize,
    nb: usize,
    par: Par,
    scratch: &mut [f64],
) -> (Vec<f64>, Vec<f64>) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the features the function is compiled for were just detected.
            return unsafe { reduce_avx2(a, n, nb, par, scratch) };
        }
    }
    reduce(a, n, nb, par, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn reduce_avx2(
    a: &mut [f64],
    n: usize,
    nb: usize,
    par: Par,
    scratch: &mut [f64],
) -> (Vec<f64>, Vec<f64>) {
    reduce(a, n, nb, par, scratch)
}

#[inline(always)]
fn reduce(
    a: &mut [f64],
    n: usize,
    nb: usize,
    par: Par,
    scratch: &mut [f64],
) -> (Vec<f64>, Vec<f64>) {
    let mut d = vec![0.0; n];
    let mut e = vec![0.0; n.saturating_sub(1)];
    // W (n × nb, column-major, rows indexed like A's), the update's operands and a scratch vector.
    let (w, rest) = scratch.split_at_mut(n * nb);
    let (left_buf, right_buf) = rest.split_at_mut(2 * n * nb);
    let mut tmp = vec![0.0f64; nb];
    let mut p = 0;
    while p + 1 < n {
        let kb = nb.min(n - 1 - p);
        panel(par, a, n, p, kb, w, &mut tmp, &mut e);
        for c in p..p + kb {
            d[c] = a[c * n + c];
        }
        let q = p + kb;
        let r = n - q;
        // A(q.., q..) −= V Wᵀ + W Vᵀ, lower triangle: one product [V W] [W V]ᵀ of inner size 2kb.
        let left = &mut left_buf[..r * 2 * kb];
        let right = &mut right_buf[..r * 2 * kb];
        for k in 0..kb {
            let c = p + k;
            let v = &a[c * n + q..c * n + n];
            let wk = &w[k * n + q..k * n + n];
            left[k * r..(k + 1) * r].copy_from_slice(v);
            left[(kb + k) * r..(kb + k + 1) * r].copy_from_slice(wk);
            right[k * r..(k + 1) * r].copy_from_slice(wk);
            right[(kb + k) * r..(kb + k + 1) * r].copy_from_slice(v);
        }
        let lhs = MatRef::from_column_major_slice(left, r, 2 * kb);
        let rhs = MatRef::from_column_major_slice(right, r, 2 * kb);
        let dst = MatMut::from_column_major_slice_with_stride_mut(&mut a[q * n + q..], r, r, n);
        let par = if r >= 256 { par } else { Par::Seq };
        faer::linalg::matmul::triangular::matmul(
            dst,
            faer::linalg::matmul::triangular::BlockStructure::TriangularLower,
            Accum::Add,
            lhs,
            faer::linalg::matmul::triangular::BlockStructure::Rectangular,
            rhs.transpose(),
            faer::linalg::matmul::triangular::BlockStructure::Rectangular,
            -1.0,
            par,
        );
        p = q;
    }
    d[n - 1] = a[(n - 1) * n + n - 1];
    (d, e)
}

/// `dlatrd` (lower): reduces columns `p .. p + kb` of `a`, writing the sub-diagonal into `e`,
/// the Householder vectors into the columns below their sub-diagonal (with an explicit 1 on it)
/// and the matching columns of `W` into `w` (column `k` of W at `w[k·n ..]`, rows as in A).
#[inline(always)]
fn panel(
    par: Par,
    a: &mut [f64],
    n: usize,
    p: usize,
    kb: usize,
    w: &mut [f64],
    tmp: &mut [f64],
    e: &mut [f64],
) {
    for k in 0..kb {
        let c = p + k;
        // Bring column c up to date with the panel's earlier reflectors:
        // A(c.., c) −= V(c.., 0..k) W(c, 0..k)ᵀ + W(c.., 0..k) V(c, 0..k)ᵀ.
        for j in 0..k {
            let (before, col) = a.split_at_mut(c * n);
            let col = &mut col[c..n];
            let vj = &before[(p + j) * n + c..(p + j) * n + n];
            let wj = &w[j * n + c..j * n + n];
            let (wcj, vcj) = (wj[0], vj[0]);
            axpy2(col, -wcj, vj, -vcj, wj);
        }
        // The reflector H = I − τ v vᵀ that annihilates A(c+2.., c).
        let col = &mut a[c * n + c + 1..c * n + n];
        let (alpha, x) = col.split_first_mut().expect("c + 1 < n");
        let (beta, tau) = householder(*alpha, x);
        e[c] = beta;
        *alpha = 1.0;
        let m = n - c - 1;
        // w = A(c+1.., c+1..) v with the not yet updated trailing matrix.
        let (head, tail) = w.split_at_mut(k * n);
        let wk = &mut tail[c + 1..n];
        {
            let v = &a[c * n + c + 1..c * n + n];
            symv_lower(a, n, c + 1, v, wk, par);
        }
        let v = &a[c * n + c + 1..c * n + n];
        if k > 0 {
            // w −= V (Wᵀ v) + W (Vᵀ v) over the panel's earlier columns.
            for j in 0..k {
                tmp[j] = dot(&head[j * n + c + 1..j * n + n], v);
            }
            for j in 0..k {
                let vj = &a[(p + j) * n + c + 1..(p + j) * n + n];
                axpy(wk, -tmp[j], vj);
            }
            for j in 0..k {
                let vj = &a[(p + j) * n + c + 1..(p + j) * n + n];
                tmp[j] = dot(vj, v);
            }
            for j in 0..k {
                axpy(wk, -tmp[j], &head[j * n + c + 1..j * n + n]);
            }
        }
        for x in wk.iter_mut() {
            *x *= tau;
        }
        let half = -0.5 * tau * dot(wk, v);
        axpy(wk, half, v);
        debug_assert_eq!(wk.len(), m);
    }
}

/// `dlarfg`: `(β, τ)` with `(I − τ [1; u][1; u]ᵀ) [α; x] = [β; 0]`; `x` is overwritten by `u`.
#[inline(always)]
fn householder(alpha: f64, x: &mut [f64]) -> (f64, f64) {
    let scale = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if scale == 0.0 {
        return (alpha, 0.0);
    }
    // ‖x‖ with x scaled to unit largest entry, so the squares neither overflow nor underflow.
    let xnorm = scale * dot_scaled(x, 1.0 / scale).sqrt();
    let big = alpha.abs().max(xnorm);
    let norm = big * ((alpha / big).powi(2) + (xnorm / big).powi(2)).sqrt();
    let beta = if alpha >= 0.0 { -norm } else { norm };
    let tau = (beta - alpha) / beta;
    let s = 1.0 / (alpha - beta);
    for v in x.iter_mut() {
        *v *= s;
    }
    (beta, tau)
}

/// `Σ (s·xᵢ)²`.
#[inline(always)]
fn dot_scaled(x: &[f64], s: f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for l in 0..8 {
            let v = c[l] * s;
            acc[l] += v * v;
        }
    }
    let mut total: f64 = acc.iter().sum();
    for v in chunks.remainder() {
        total += (v * s) * (v * s);
    }
    total
}

#[inline(always)]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let len = a.len().min(b.len());
    let (a, b) = (&a[..len], &b[..len]);
    let mut acc = [0.0f64; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut total: f64 = acc.iter().sum();
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        total += x * y;
    }
    total
}

/// `y += s·x`.
#[inline(always)]
fn axpy(y: &mut [f64], s: f64, x: &[f64]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += s * x;
    }
}

/// `y += s·x + t·z`.
#[inline(always)]
fn axpy2(y: &mut [f64], s: f64, x: &[f64], t: f64, z: &[f64]) {
    for ((y, x), z) in y.iter_mut().zip(x).zip(z) {
        *y += s * x + t * z;
    }
}

/// `y = A(o.., o..) v` for the symmetric trailing matrix whose lower triangle is held in `a`
/// (column-major, leading dimension `n`): each entry below the diagonal is read once and used
/// twice, four columns at a time.
#[inline(always)]
fn symv_lower(a: &[f64], n: usize, o: usize, v: &[f64], y: &mut [f64], par: Par) {
    let m = n - o;
    debug_assert!(v.len() == m && y.len() == m);
    y.fill(0.0);
    if let Par::Rayon(threads) = par {
        if threads.get() > 1 && m >= PARALLEL_FROM {
            // Two column ranges of equal triangle area, the second into its own vector.
            let split = ((m as f64 * (1.0 - std::f64::consts::FRAC_1_SQRT_2)) as usize) / 4 * 4;
            let mut rest = vec![0.0f64; m - split];
            let (head, tail) = (&mut *y, &mut rest);
            rayon::join(
                || symv_columns(a, n, o, v, head, 0, split),
                || symv_columns(a, n, o + split, &v[split..], tail, 0, m - split),
            );
            for (y, r) in y[split..].iter_mut().zip(&rest) {
                *y += r;
            }
            return;
        }
    }
    symv_columns(a, n, o, v, y, 0, m);
}

/// `y += A(o.., o + j0 .. o + j1) v(j0 .. j1)` plus the transposed contributions
/// `y(j0 .. j1) += A(o.., o + j0 .. o + j1)ᵀ v` of the lower triangle (`y` indexed from `o`).
#[inline(always)]
fn symv_columns(a: &[f64], n: usize, o: usize, v: &[f64], y: &mut [f64], j0: usize, j1: usize) {
    let m = n - o;
    let mut j = j0;
    while j + 4 <= j1 {
        let col = |k: usize| &a[(o + j + k) * n + o + j..(o + j + k + 1) * n];
        let (c0, c1, c2, c3) = (col(0), col(1), col(2), col(3));
        let (v0, v1, v2, v3) = (v[j], v[j + 1], v[j + 2], v[j + 3]);
        // The 4 × 4 diagonal block.
        let cols = [c0, c1, c2, c3];
        for k in 0..4 {
            y[j + k] += cols[k][k] * v[j + k];
            for r in k + 1..4 {
                let x = cols[k][r];
                y[j + r] += x * v[j + k];
                y[j + k] += x * v[j + r];
            }
        }
        // Rows below the block.
        let len = m - j - 4;
        let (c0, c1, c2, c3) = (
            &c0[4..4 + len],
            &c1[4..4 + len],
            &c2[4..4 + len],
            &c3[4..4 + len],
        );
        let vr = &v[j + 4..j + 4 + len];
        let yr = &mut y[j + 4..j + 4 + len];
        let s = four_columns([c0, c1, c2, c3], [v0, v1, v2, v3], vr, yr);
        for k in 0..4 {
            y[j + k] += s[k];
        }
        j += 4;
    }
    while j < j1 {
        let c = &a[(o + j) * n + o + j..(o + j + 1) * n];
        let vj = v[j];
        y[j] += c[0] * vj;
        let rest = &c[1..];
        let s = dot(rest, &v[j + 1..]);
        axpy(&mut y[j + 1..], vj, rest);
        y[j] += s;
        j += 1;
    }
}

/// For four columns `c` of equal length: `y += Σₖ cₖ vₖ`; returns `[cₖ · x]`.
#[inline(always)]
fn four_columns(c: [&[f64]; 4], v: [f64; 4], x: &[f64], y: &mut [f64]) -> [f64; 4] {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the features were just detected; the slices have equal lengths.
            return unsafe { four_columns_avx2(c, v, x, y) };
        }
    }
    four_columns_scalar(c, v, x, y, 0)
}

#[inline(always)]
fn four_columns_scalar(
    c: [&[f64]; 4],
    v: [f64; 4],
    x: &[f64],
    y: &mut [f64],
    from: usize,
) -> [f64; 4] {
    let mut s = [0.0f64; 4];
    for i in from..y.len() {
        let (a0, a1, a2, a3) = (c[0][i], c[1][i], c[2][i], c[3][i]);
        let xi = x[i];
        y[i] += a0 * v[0] + a1 * v[1] + a2 * v[2] + a3 * v[3];
        s[0] += a0 * xi;
        s[1] += a1 * xi;
        s[2] += a2 * xi;
        s[3] += a3 * xi;
    }
    s
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn four_columns_avx2(c: [&[f64]; 4], v: [f64; 4], x: &[f64], y: &mut [f64]) -> [f64; 4] {
    use std::arch::x86_64::*;
    let len = y.len();
    assert!(x.len() == len && c.iter().all(|c| c.len() == len));
    let full = len / 4 * 4;
    let (vb0, vb1, vb2, vb3) = (
        _mm256_set1_pd(v[0]),
        _mm256_set1_pd(v[1]),
        _mm256_set1_pd(v[2]),
        _mm256_set1_pd(v[3]),
    );
    let (mut t0, mut t1, mut t2, mut t3) = (
        _mm256_setzero_pd(),
        _mm256_setzero_pd(),
        _mm256_setzero_pd(),
        _mm256_setzero_pd(),
    );
    let (p0, p1, p2, p3) = (c[0].as_ptr(), c[1].as_ptr(), c[2].as_ptr(), c[3].as_ptr());
    let (px, py) = (x.as_ptr(), y.as_mut_ptr());
    let mut i = 0;
    while i < full {
        // SAFETY: i + 4 ≤ len for every slice.
        let a0 = _mm256_loadu_pd(p0.add(i));
        let a1 = _mm256_loadu_pd(p1.add(i));
        let a2 = _mm256_loadu_pd(p2.add(i));
        let a3 = _mm256_loadu_pd(p3.add(i));
        let xi = _mm256_loadu_pd(px.add(i));
        let mut yi = _mm256_loadu_pd(py.add(i));
        yi = _mm256_fmadd_pd(a0, vb0, yi);
        yi = _mm256_fmadd_pd(a1, vb1, yi);
        yi = _mm256_fmadd_pd(a2, vb2, yi);
        yi = _mm256_fmadd_pd(a3, vb3, yi);
        _mm256_storeu_pd(py.add(i), yi);
        t0 = _mm256_fmadd_pd(a0, xi, t0);
        t1 = _mm256_fmadd_pd(a1, xi, t1);
        t2 = _mm256_fmadd_pd(a2, xi, t2);
        t3 = _mm256_fmadd_pd(a3, xi, t3);
        i += 4;
    }
    let mut lanes = [[0.0f64; 4]; 4];
    _mm256_storeu_pd(lanes[0].as_mut_ptr(), t0);
    _mm256_storeu_pd(lanes[1].as_mut_ptr(), t1);
    _mm256_storeu_pd(lanes[2].as_mut_ptr(), t2);
    _mm256_storeu_pd(lanes[3].as_mut_ptr(), t3);
    let tail = four_columns_scalar(c, v, x, y, full);
    let mut s = [0.0f64; 4];
    for k in 0..4 {
        s[k] = (lanes[k][0] + lanes[k][1]) + (lanes[k][2] + lanes[k][3]) + tail[k];
    }
    s
}

/// Eigenvalues, ascending, of the symmetric tridiagonal matrix with diagonal `d` and
/// sub-diagonal `e` (implicit QL with Wilkinson shifts, no vectors).
fn tridiagonal_eigenvalues(mut d: Vec<f64>, e_in: Vec<f64>) -> Result<Vec<f64>, EigenError> {
    let n = d.len();
    let scale = d.iter().chain(&e_in).fold(0.0f64, |m, v| m.max(v.abs()));
    if !scale.is_finite() {
        return Err(EigenError::NotFinite);
    }
    if scale == 0.0 {
        return Ok(d);
    }
    // A power of two: the scaling is exact.
    let scale = 2f64.powi(scale.log2().round() as i32);
    let inv = 1.0 / scale;
    for v in d.iter_mut() {
        *v *= inv;
    }
    // e[i] couples rows i and i + 1; e[n − 1] = 0 closes the matrix.
    let mut e: Vec<f64> = e_in.iter().map(|v| v * inv).collect();
    e.push(0.0);
    let mut budget = MAX_SWEEPS * n;
    // Unreduced blocks, each by QL or, reversed, by QR.
    let mut first = 0;
    while first < n {
        let mut last = first;
        while last + 1 < n && !negligible(&d, &e, last) {
            last += 1;
        }
        e[last] = 0.0;
        if last > first {
            let (db, eb) = (&mut d[first..=last], &mut e[first..=last]);
            // QL chases the bulge upwards and deflates from the top: it is accurate for small
            // eigenvalues when the larger diagonal entries sit at the bottom (`dsterf` picks QL
            // or QR by the same comparison). Reversing the block turns QL into QR.
            if db[db.len() - 1].abs() < db[0].abs() {
                db.reverse();
                let k = eb.len() - 1;
                eb[..k].reverse();
            }
            for v in eb.iter_mut() {
                *v *= *v;
            }
            implicit_ql(db, eb, &mut budget)?;
        }
        first = last + 1;
    }
    for v in d.iter_mut() {
        *v *= scale;
    }
    d.sort_by(f64::total_cmp);
    if d.iter().any(|v| !v.is_finite()) {
        return Err(EigenError::NoConvergence);
    }
    Ok(d)
}

/// `dsterf`'s test: `e[m]` is negligible when `e² ≤ ε² |dₘ dₘ₊₁|` (plus the safe minimum).
#[inline(always)]
fn negligible(d: &[f64], e: &[f64], m: usize) -> bool {
    let eps = f64::EPSILON;
    e[m] * e[m] <= eps * eps * (d[m] * d[m + 1]).abs() + f64::MIN_POSITIVE
}

/// The root-free implicit QL iteration with Wilkinson shifts (Pal, Walker & Kahan; LAPACK's
/// `dsterf`) on one tridiagonal block: `d` its diagonal, `e2` the squares of its couplings (as
/// long as `d`, the last entry 0). The eigenvalues are left in `d`; `budget` counts the sweeps
/// left. No square root per rotation: each step costs two divisions.
fn implicit_ql(d: &mut [f64], e2: &mut [f64], budget: &mut usize) -> Result<(), EigenError> {
    let n = d.len();
    let eps2 = f64::EPSILON * f64::EPSILON;
    let mut l = 0;
    while l < n {
        // The first negligible coupling at or after l.
        let mut m = l;
        while m + 1 < n && e2[m].abs() > eps2 * (d[m] * d[m + 1]).abs() + f64::MIN_POSITIVE {
            m += 1;
        }
        if m + 1 < n {
            e2[m] = 0.0;
        }
        if m == l {
            l += 1;
            continue;
        }
        if m == l + 1 {
            // A 2 × 2 block: its eigenvalues directly (`dlae2`).
            let (rt1, rt2) = two_by_two(d[l], e2[l].sqrt(), d[l + 1]);
            d[l] = rt1;
            d[l + 1] = rt2;
            e2[l] = 0.0;
            l += 2;
            continue;
        }
        if *budget == 0 {
            return Err(EigenError::NoConvergence);
        }
        *budget -= 1;
        // Wilkinson shift from the leading 2 × 2 block.
        let rte = e2[l].sqrt();
        let mut sigma = (d[l + 1] - d[l]) / (2.0 * rte);
        let r = sigma.hypot(1.0);
        sigma = d[l] - rte / (sigma + if sigma >= 0.0 { r } else { -r });
        // The rotation `c = p / r`, `s = bb / r` enters only through
        // `γ = c (α − σ) − s γ' = u / r` with `u = p (α − σ) − bb γ'`, and the next
        // `p = γ² / c = u² / (r p)`: two divisions that depend on this step's `r` and `u` only and
        // run side by side, where `dsterf`'s form chains `c = p / r` → `γ` → `γ² / c` (the loop is
        // bound by that chain's latency, not by its arithmetic). `c` itself is formed only when
        // `p` is 0 (the previous step's `c` continues the recurrence then, as in `dsterf`).
        let mut s = 0.0f64;
        let (mut c_num, mut c_den) = (1.0f64, 1.0f64);
        let mut gamma = d[m] - sigma;
        let mut p = gamma * gamma;
        for i in (l..m).rev() {
            let bb = e2[i];
            let r = p + bb;
            if i + 1 != m {
                e2[i + 1] = s * r;
            }
            let oldgam = gamma;
            let alpha = d[i];
            let u = p * (alpha - sigma) - bb * oldgam;
            gamma = u / r;
            s = bb / r;
            d[i + 1] = oldgam + (alpha - gamma);
            let rp = r * p;
            let next = if rp >= f64::MIN_POSITIVE && rp.is_finite() {
                (u * u) / rp
            } else if p / r != 0.0 {
                (gamma * gamma) / (p / r)
            } else {
                (c_num / c_den) * bb
            };
            c_num = p;
            c_den = r;
            p = next;
        }
        e2[l] = s * p;
        d[l] = sigma + gamma;
    }
    Ok(())
}

/// The eigenvalues of `[[a, b], [b, c]]` (`dlae2`), larger in absolute value first.
fn two_by_two(a: f64, b: f64, c: f64) -> (f64, f64) {
    let sm = a + c;
    let adf = (a - c).abs();
    let ab = (b + b).abs();
    let (acmx, acmn) = if a.abs() > c.abs() { (a, c) } else { (c, a) };
    let rt = if adf > ab {
        adf * (1.0 + (ab / adf).powi(2)).sqrt()
    } else if adf < ab {
        ab * (1.0 + (adf / ab).powi(2)).sqrt()
    } else {
        ab * std::f64::consts::SQRT_2
    };
    if sm != 0.0 {
        let rt1 = 0.5 * (sm + rt.copysign(sm));
        // The smaller one from the determinant, to avoid cancellation.
        (rt1, (acmx / rt1) * acmn - (b / rt1) * b)
    } else {
        (0.5 * rt, -0.5 * rt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;
    use rand::{Rng, SeedableRng};

    fn faer_values(a: &Mat<f64>) -> Vec<f64> {
        let mut v: Vec<f64> = a
            .self_adjoint_eigenvalues(faer::Side::Lower)
            .unwrap()
            .into_iter()
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }

    /// A Wishart-like SPD matrix `XᵀX / rows` with columns scaled by `scales`.
    fn gram(rows: usize, dim: usize, scales: &[f64], seed: u64) -> Mat<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let x = Mat::from_fn(rows, dim, |_, j| rng.random_range(-1.0..1.0) * scales[j]);
        let mut g = x.transpose() * &x;
        g *= faer::Scale(1.0 / rows as f64);
        g
    }

    fn compare(a: &Mat<f64>, what: &str) {
        let ours = symmetric_eigenvalues(a.as_ref(), Par::Seq).unwrap();
        let theirs = faer_values(a);
        let largest = theirs.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let n = a.nrows() as f64;
        for (x, y) in ours.iter().zip(&theirs) {
            assert!(
                (x - y).abs() <= 50.0 * n * f64::EPSILON * largest,
                "{what}: {x} vs {y} (largest {largest})"
            );
        }
        // The trace of the square root, over the eigenvalues above the rank cut-off.
        let cut = n * f64::EPSILON * largest;
        let root = |v: &[f64]| -> f64 { v.iter().filter(|x| **x > cut).map(|x| x.sqrt()).sum() };
        let (ro, rt) = (root(&ours), root(&theirs));
        assert!(
            (ro - rt).abs() <= 1e-12 * rt.abs().max(f64::MIN_POSITIVE),
            "{what}: trace of the square root {ro} vs {rt} ({:e} relative)",
            (ro - rt).abs() / rt
        );
    }

    #[test]
    fn random_symmetric_matrices_match_faer() {
        for (n, seed) in [
            (1, 1),
            (2, 2),
            (3, 3),
            (7, 4),
            (33, 5),
            (64, 6),
            (97, 7),
            (200, 8),
        ] {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let b = Mat::from_fn(n, n, |_, _| rng.random_range(-1.0..1.0));
            let a = Mat::from_fn(n, n, |i, j| b[(i, j)] + b[(j, i)]);
            let ours = symmetric_eigenvalues(a.as_ref(), Par::Seq).unwrap();
            let theirs = faer_values(&a);
            let largest = theirs.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (x, y) in ours.iter().zip(&theirs) {
                assert!(
                    (x - y).abs() <= 100.0 * n as f64 * f64::EPSILON * largest,
                    "n={n}: {x} vs {y}"
                );
            }
        }
    }

    #[test]
    fn covariance_like_matrices_match_faer() {
        // Well conditioned, ill-conditioned (1e-6 .. 1 column scales), rank-deficient (fewer
        // rows than columns) and near-singular (one column a near copy of another).
        let d = 150;
        compare(&gram(600, d, &vec![1.0; d], 11), "well conditioned");
        let graded: Vec<f64> = (0..d)
            .map(|j| 10f64.powf(-6.0 * j as f64 / d as f64))
            .collect();
        compare(&gram(600, d, &graded, 12), "ill-conditioned");
        compare(&gram(40, d, &vec![1.0; d], 13), "rank-deficient");
        let mut near = gram(600, d, &vec![1.0; d], 14);
        for i in 0..d {
            near[(i, 1)] = near[(i, 0)] * (1.0 + 1e-9);
            near[(1, i)] = near[(i, 1)];
        }
        near[(1, 1)] = near[(0, 0)] * (1.0 + 1e-9) * (1.0 + 1e-9);
        compare(&near, "near-singular");
    }

    #[test]
    fn two_threads_give_the_one_thread_values() {
        // Above PARALLEL_FROM: the split matrix–vector products and the parallel rank-2k
        // updates change only the rounding.
        let a = gram(700, 300, &vec![1.0; 300], 41);
        let seq = symmetric_eigenvalues(a.as_ref(), Par::Seq).unwrap();
        let two = symmetric_eigenvalues(a.as_ref(), Par::rayon(2)).unwrap();
        let largest = seq[seq.len() - 1];
        for (x, y) in seq.iter().zip(&two) {
            assert!((x - y).abs() <= 1e-13 * largest, "{x} vs {y}");
        }
        compare(&a, "two threads");
    }

    #[test]
    fn only_the_lower_triangle_is_read() {
        let a = gram(100, 70, &vec![1.0; 70], 21);
        let mut garbled = a.clone();
        for j in 1..70 {
            for i in 0..j {
                garbled[(i, j)] = f64::NAN;
            }
        }
        assert_eq!(
            symmetric_eigenvalues(a.as_ref(), Par::Seq).unwrap(),
            symmetric_eigenvalues(garbled.as_ref(), Par::Seq).unwrap()
        );
    }

    #[test]
    fn degenerate_inputs() {
        let zero = Mat::<f64>::zeros(80, 80);
        assert_eq!(
            symmetric_eigenvalues(zero.as_ref(), Par::Seq).unwrap(),
            vec![0.0; 80]
        );
        let diag = Mat::from_fn(70, 70, |i, j| if i == j { (i as f64) - 30.0 } else { 0.0 });
        let want: Vec<f64> = (0..70).map(|i| i as f64 - 30.0).collect();
        assert_eq!(
            symmetric_eigenvalues(diag.as_ref(), Par::Seq).unwrap(),
            want
        );
        let mut nan = Mat::<f64>::identity(5, 5);
        nan[(3, 1)] = f64::NAN;
        assert_eq!(
            symmetric_eigenvalues(nan.as_ref(), Par::Seq),
            Err(EigenError::NotFinite)
        );
        // Extreme scales survive the scaled rotations.
        for s in [1e-100, 1e100] {
            let a = gram(90, 70, &vec![s; 70], 31);
            let ours = symmetric_eigenvalues(a.as_ref(), Par::Seq).unwrap();
            let theirs = faer_values(&a);
            let largest = theirs[theirs.len() - 1];
            for (x, y) in ours.iter().zip(&theirs) {
                assert!((x - y).abs() <= 1e-12 * largest, "scale {s}: {x} vs {y}");
            }
        }
    }
}
