//! The Fréchet distance between two Gaussians,
//! `FD = ‖μ₁ − μ₂‖² + Tr Σ₁ + Tr Σ₂ − 2·Tr (Σ₁Σ₂)^½`, through the symmetric trace route.
//!
//! `Σ₁Σ₂` is similar to the symmetric positive semi-definite `Σ₁^½ Σ₂ Σ₁^½`, so
//! `Tr (Σ₁Σ₂)^½ = Σᵢ √μᵢ` over the eigenvalues `μᵢ` of that symmetric matrix. We take the
//! eigendecomposition `Σ₁ = U Λ Uᵀ`, form `B = U Λ^½` and the eigenvalues of `M = Bᵀ Σ₂ B`
//! (`M = Uᵀ (Σ₁^½ Σ₂ Σ₁^½) U`, an orthogonal similarity, so the same eigenvalues with one
//! matrix product fewer). Only symmetric eigen-solvers are involved: the result is never complex,
//! unlike the general `eig`/`sqrtm` route of fadtk (whose users meet "Imaginary component" errors).
//!
//! Any factor `F` with `F Fᵀ = Σ₁` gives the same eigenvalues for `Fᵀ Σ₂ F` (it is similar to
//! `Σ₁Σ₂`). With [`TraceRoute::Auto`] (the default) a positive-definite Σ₁ backed by N > D samples
//! (or of unknown N) is factored by Cholesky, `Σ₁ = L Lᵀ`, which costs a small fraction of an
//! eigendecomposition and lets the two products use triangular kernels; a singular or indefinite
//! Σ₁ (Cholesky fails, or N ≤ D) takes the eigendecomposition route, where tiny eigenvalues can be
//! cut off. [`TraceRoute::Eigh`] forces the eigendecomposition route; the parity tests check both.
//!
//! Rounding makes eigenvalues that are zero in exact arithmetic come out as ±(dim·ε·λ_max);
//! their square roots would add noise of order √ε to the trace. Eigenvalues (of Σ₁ and of `M`)
//! below `rank_tolerance · dim · ε · λ_max` (the numerical-rank cut-off numpy's `matrix_rank`
//! uses) are therefore set to zero, negative ones included, and counted in [`Frechet`]. A raw
//! distance within `zero_tolerance` of zero (relative to the size of its terms) is reported as
//! exactly 0; the distance is never negative.
//!
//! Singular covariances (N ≤ D samples, or degenerate features) need no regularisation here:
//! the square root of a PSD matrix exists whatever its rank. Such inputs are flagged
//! (`rank_deficient`) and logged, because FAD with N ≤ D is dominated by the sample-size bias.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::{Accum, Mat, Par, Side};
use serde::Serialize;

use crate::stats::Gaussian;
use crate::{FadError, Result};

/// How Σ₁ is factored before the symmetric eigenvalue problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TraceRoute {
    /// Cholesky when Σ₁ is positive definite with N > D (or unknown N), else eigendecomposition.
    #[default]
    Auto,
    /// Always the eigendecomposition `Σ₁ = U Λ Uᵀ`, `F = U Λ^½`.
    Eigh,
}

impl std::fmt::Display for TraceRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TraceRoute::Auto => "auto",
            TraceRoute::Eigh => "eigh",
        })
    }
}

impl std::str::FromStr for TraceRoute {
    type Err = String;
    /// `auto` or `eigh`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(TraceRoute::Auto),
            "eigh" => Ok(TraceRoute::Eigh),
            _ => Err(format!("`{s}` is not one of auto, eigh")),
        }
    }
}

/// Numerical tolerances of the distance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct FrechetOptions {
    /// Factorisation of Σ₁. Default [`TraceRoute::Auto`].
    pub route: TraceRoute,
    /// Eigenvalues below `rank_tolerance · dim · ε · λ_max` count as zero. Default 1.
    pub rank_tolerance: f64,
    /// A raw distance with `|FD| ≤ zero_tolerance · (Tr Σ₁ + Tr Σ₂ + ‖μ₁ − μ₂‖²)` is reported
    /// as 0. Default 1e-10.
    pub zero_tolerance: f64,
}

impl Default for FrechetOptions {
    fn default() -> Self {
        FrechetOptions {
            route: TraceRoute::Auto,
            rank_tolerance: 1.0,
            zero_tolerance: 1e-10,
        }
    }
}

/// A distance and the terms and diagnostics behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Frechet {
    /// The reported distance: `raw`, with rounding noise around zero mapped to 0; never negative.
    pub distance: f64,
    /// `mean_term + trace_a + trace_b − 2·trace_sqrt_product` as computed.
    pub raw: f64,
    /// `‖μ₁ − μ₂‖²`.
    pub mean_term: f64,
    pub trace_a: f64,
    pub trace_b: f64,
    /// `Tr (Σ₁Σ₂)^½`.
    pub trace_sqrt_product: f64,
    pub dim: usize,
    pub n_a: Option<u64>,
    pub n_b: Option<u64>,
    /// Either side has N ≤ D samples: its covariance is singular.
    pub rank_deficient: bool,
    /// The factorisation of Σ₁ that was used: "cholesky" or "eigh".
    pub route: &'static str,
    /// Eigenvalues of Σ₁ set to zero (negative or below the rank tolerance; eigh route only).
    pub zeroed_eigenvalues_a: usize,
    /// Of those, the ones that came out negative.
    pub negative_eigenvalues_a: usize,
    /// Eigenvalues of Σ₁^½ Σ₂ Σ₁^½ set to zero.
    pub zeroed_eigenvalues_product: usize,
    /// Of those, the ones that came out negative.
    pub negative_eigenvalues_product: usize,
}

/// The first argument of the distance, decomposed once so that many second arguments
/// (matrices, FAD-∞ points) reuse it.
#[derive(Debug, Clone)]
pub struct PreparedGaussian {
    mean: Vec<f64>,
    /// `F` with `F Fᵀ = Σ₁`: the Cholesky factor `L`, or `U Λ^½` with the zeroed eigenvalues'
    /// columns exactly 0.
    half: Mat<f64>,
    cholesky: bool,
    trace: f64,
    n: Option<u64>,
    zeroed: usize,
    negative: usize,
    options: FrechetOptions,
}

impl PreparedGaussian {
    pub fn new(g: &Gaussian, options: FrechetOptions) -> Result<PreparedGaussian> {
        PreparedGaussian::new_in(g, options, faer::get_global_parallelism())
    }

    /// [`PreparedGaussian::new`] with the factorisation on `par` threads (`Par::Seq` when the
    /// caller runs many distances side by side: one thread each does the least synchronising).
    pub fn new_in(g: &Gaussian, options: FrechetOptions, par: Par) -> Result<PreparedGaussian> {
        let (half, cholesky, zeroed, negative) = match cholesky_factor(g, options.route, par) {
            Some(l) => (l, true, 0, 0),
            None => {
                let (half, zeroed, negative) = eigen_factor(g, options.rank_tolerance)?;
                (half, false, zeroed, negative)
            }
        };
        Ok(PreparedGaussian {
            mean: g.mean.clone(),
            half,
            cholesky,
            trace: g.trace(),
            n: g.n,
            zeroed,
            negative,
            options,
        })
    }

    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// `FD(self, other)`.
    pub fn distance_to(&self, other: &Gaussian) -> Result<Frechet> {
        self.distance_to_in(other, faer::get_global_parallelism())
    }

    /// [`PreparedGaussian::distance_to`] with the products and the eigenvalue problem on `par`
    /// threads. The value does not depend on `par` beyond rounding.
    pub fn distance_to_in(&self, other: &Gaussian, par: Par) -> Result<Frechet> {
        let dim = self.dim();
        if other.dim() != dim {
            return Err(FadError::DimensionMismatch {
                left: dim,
                right: other.dim(),
            });
        }
        let values = if self.cholesky {
            // Column-major copies with leading dimension D in this thread's buffers.
            with_workspace(dim, |w| {
                let fill = |m: &mut [f64]| copy_lower(other.cov.as_ref(), m);
                fill(&mut w.m);
                sandwich_eigenvalues(self.half.as_ref(), &mut w.m, &mut w.g, dim, par, fill)
            })?
        } else {
            let m = self.congruence(&other.cov, par);
            symmetric_eigenvalues(&m, par).map_err(|_| FadError::Eigen {
                what: "Σ₁^½ Σ₂ Σ₁^½".into(),
            })?
        };
        let a = Moments {
            mean: &self.mean,
            trace: self.trace,
            n: self.n,
        };
        let b = Moments {
            mean: &other.mean,
            trace: other.trace(),
            n: other.n,
        };
        let mut fd = assemble(&values, a, b, &self.options);
        fd.route = if self.cholesky { "cholesky" } else { "eigh" };
        fd.zeroed_eigenvalues_a = self.zeroed;
        fd.negative_eigenvalues_a = self.negative;
        Ok(fd)
    }
}

/// What the distance needs of one side besides its covariance.
#[derive(Clone, Copy)]
pub(crate) struct Moments<'a> {
    pub(crate) mean: &'a [f64],
    pub(crate) trace: f64,
    pub(crate) n: Option<u64>,
}

/// The distance from the eigenvalues of `Fᵀ Σ₂ F` and the two sides' means and traces (route
/// "cholesky", no eigenvalue of Σ₁ zeroed; the eigen route overwrites those fields).
pub(crate) fn assemble(
    values: &[f64],
    a: Moments<'_>,
    b: Moments<'_>,
    options: &FrechetOptions,
) -> Frechet {
    let dim = a.mean.len();
    let (kept, zeroed_p, negative_p) = clamp_eigenvalues(values, options.rank_tolerance);
    let trace_sqrt_product: f64 = kept.iter().map(|v| v.sqrt()).sum();
    let mean_term: f64 = a
        .mean
        .iter()
        .zip(b.mean)
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    let raw = mean_term + a.trace + b.trace - 2.0 * trace_sqrt_product;
    let scale = mean_term + a.trace + b.trace;
    let distance = settle_near_zero(raw, scale, options.zero_tolerance);
    let rank_deficient =
        a.n.is_some_and(|n| n <= dim as u64) || b.n.is_some_and(|n| n <= dim as u64);
    if rank_deficient {
        tracing::warn!(dim, n_a = ?a.n, n_b = ?b.n, "FAD with N ≤ D samples: singular covariance, the distance is dominated by sample-size bias");
    }
    Frechet {
        distance,
        raw,
        mean_term,
        trace_a: a.trace,
        route: "cholesky",
        trace_b: b.trace,
        trace_sqrt_product,
        dim,
        n_a: a.n,
        n_b: b.n,
        rank_deficient,
        zeroed_eigenvalues_a: 0,
        negative_eigenvalues_a: 0,
        zeroed_eigenvalues_product: zeroed_p,
        negative_eigenvalues_product: negative_p,
    }
}

/// Two order-D matrices, column-major with leading dimension D: the Cholesky factor `l` and
/// `m` (Σ₂, then `Lᵀ Σ₂ L`, then reduced in place), and the congruence's scratch `g`. One set
/// per thread, reused by every distance it computes: fresh ones cost a page fault per 4 KiB
/// touched (at D = 768, 10 MB per distance) when hundreds of distances run back to back.
pub(crate) struct Workspace {
    pub(crate) l: Vec<f64>,
    pub(crate) m: Vec<f64>,
    pub(crate) g: Vec<f64>,
}

impl Workspace {
    fn new(dim: usize) -> Workspace {
        Workspace {
            l: vec![0.0; dim * dim],
            m: vec![0.0; dim * dim],
            g: vec![0.0; congruence_scratch(dim)],
        }
    }
}

thread_local! {
    static WORKSPACE: std::cell::RefCell<Option<Workspace>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with this thread's [`Workspace`] for order `dim` (a fresh one if the thread's is in
/// use, e.g. by a distance this one interrupted through work stealing).
pub(crate) fn with_workspace<R>(dim: usize, f: impl FnOnce(&mut Workspace) -> R) -> R {
    WORKSPACE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => {
            if slot.as_ref().is_none_or(|w| w.l.len() != dim * dim) {
                *slot = Some(Workspace::new(dim));
            }
            f(slot.as_mut().expect("just set"))
        }
        Err(_) => f(&mut Workspace::new(dim)),
    })
}

/// The lower triangle of `s` into `dst` (column-major, leading dimension `s.nrows()`).
fn copy_lower(s: faer::MatRef<'_, f64>, dst: &mut [f64]) {
    let dim = s.nrows();
    for j in 0..dim {
        let col = &mut dst[j * dim..(j + 1) * dim];
        for (i, v) in col.iter_mut().enumerate().skip(j) {
            *v = s[(i, j)];
        }
    }
}

/// Factors the symmetric matrix whose lower triangle is in `s` (order `dim`, column-major,
/// leading dimension `dim`) in place into its lower Cholesky factor, upper triangle zeroed.
/// `false` when it is not positive definite or a pivot is at rounding level
/// (`L²ᵢᵢ ≤ dim · ε · maxᵢ sᵢᵢ`): such a Σ₁ is left to the eigen route.
pub(crate) fn cholesky_in_place(s: &mut [f64], dim: usize, par: Par) -> bool {
    use faer::linalg::cholesky::llt::factor as llt;
    let largest = (0..dim).fold(0.0f64, |m, i| m.max(s[i * dim + i]));
    let floor = dim as f64 * f64::EPSILON * largest;
    let mut mem = MemBuffer::new(llt::cholesky_in_place_scratch::<f64>(
        dim,
        par,
        Default::default(),
    ));
    let mat = faer::MatMut::from_column_major_slice_mut(s, dim, dim);
    if llt::cholesky_in_place(
        mat,
        Default::default(),
        par,
        MemStack::new(&mut mem),
        Default::default(),
    )
    .is_err()
    {
        return false;
    }
    for j in 1..dim {
        s[j * dim..j * dim + j].fill(0.0);
    }
    (0..dim).all(|i| s[i * dim + i] * s[i * dim + i] > floor)
}

/// The eigenvalues of `M = Lᵀ Σ₂ L` for the lower triangular `l` (upper triangle zero) and the
/// symmetric `s2` (order `dim`, column-major, leading dimension `dim`; its lower triangle is
/// read): the lower triangle of `M` replaces Σ₂'s ([`congruence_in_place`], `g` its scratch)
/// and is reduced there in place. Should the QL iteration not converge, `refill` puts Σ₂'s lower
/// triangle back into `s2` so that `M` can be formed again for faer's solver.
pub(crate) fn sandwich_eigenvalues(
    l: faer::MatRef<'_, f64>,
    s2: &mut [f64],
    g: &mut [f64],
    dim: usize,
    par: Par,
    refill: impl Fn(&mut [f64]),
) -> Result<Vec<f64>> {
    congruence_in_place(s2, l, dim, g, par);
    let failed = || FadError::Eigen {
        what: "Σ₁^½ Σ₂ Σ₁^½".into(),
    };
    match crate::symeig::symmetric_eigenvalues_in_place(s2, dim, par) {
        Ok(values) => Ok(values),
        Err(crate::symeig::EigenError::NotFinite) => Err(failed()),
        Err(crate::symeig::EigenError::NoConvergence) => {
            refill(s2);
            congruence_in_place(s2, l, dim, g, par);
            crate::symeig::faer_symmetric_eigenvalues(
                faer::MatRef::from_column_major_slice(s2, dim, dim),
                par,
            )
            .map_err(|_| failed())
        }
    }
}

/// Columns per block of [`congruence_in_place`] (LAPACK's `ilaenv` default for `dsygst`).
const CONGRUENCE_BLOCK: usize = 64;

/// Values of scratch [`congruence_in_place`] needs at order `dim`.
pub fn congruence_scratch(dim: usize) -> usize {
    let kb = CONGRUENCE_BLOCK.min(dim.max(1));
    5 * kb * dim + 2 * kb * kb
}

/// The lower triangle of `Lᵀ A L` in place of the lower triangle of the symmetric `A` (order
/// `dim`, column-major, leading dimension `dim`; the strict upper triangle is neither read nor
/// written) for the lower triangular `L`: LAPACK's blocked `dsygst` (itype 2, lower), `dim³`
/// multiply-adds where forming `X = A L` and then `Lᵀ X` takes `4/3 dim³`. Block `k` (rows
/// and columns `k .. k + kb`) brings the leading `k + kb` rows and columns up to date:
///
/// ```text
/// A₂₁ ← A₂₁ L₁₁ + ½ A₂₂ L₂₁;   A₁₁ += A₂₁ᵀ L₂₁ + L₂₁ᵀ A₂₁;   A₂₁ ← L₂₂ᵀ (A₂₁ + ½ A₂₂ L₂₁);
/// A₂₂ ← L₂₂ᵀ A₂₂ L₂₂
/// ```
///
/// (Golub & Van Loan §8.7.2; LAPACK `dsygst`/`dsygs2`). `g` holds at least
/// [`congruence_scratch`]`(dim)` values.
pub fn congruence_in_place(
    a: &mut [f64],
    l: faer::MatRef<'_, f64>,
    dim: usize,
    g: &mut [f64],
    par: Par,
) {
    use faer::linalg::matmul::matmul;
    use faer::linalg::matmul::triangular::{matmul as tri_matmul, BlockStructure};
    use faer::MatMut;
    let nb = CONGRUENCE_BLOCK.min(dim.max(1));
    let (t_buf, rest) = g.split_at_mut(nb * dim);
    let (s1_buf, rest) = rest.split_at_mut(2 * nb * dim);
    let (s2_buf, rest) = rest.split_at_mut(2 * nb * dim);
    let (full_buf, x_buf) = rest.split_at_mut(nb * nb);
    let mut k = 0;
    while k < dim {
        let kb = nb.min(dim - k);
        let am = MatMut::from_column_major_slice_mut(&mut *a, dim, dim);
        let (a11, _, a_bl, a_br) = am.split_at_mut(k, k);
        let mut a11 = a11;
        let mut a21 = a_bl.subrows_mut(0, kb);
        let a22 = a_br.submatrix_mut(0, 0, kb, kb);
        let l11 = l.submatrix(0, 0, k, k);
        let l21 = l.submatrix(k, 0, kb, k);
        let l22 = l.submatrix(k, k, kb, kb);
        // A₂₂ in full (its lower triangle mirrored).
        let mut full = MatMut::from_column_major_slice_mut(&mut full_buf[..kb * kb], kb, kb);
        for j in 0..kb {
            for i in j..kb {
                let v = a22[(i, j)];
                full[(i, j)] = v;
                full[(j, i)] = v;
            }
        }
        if k > 0 {
            let mut t = MatMut::from_column_major_slice_mut(&mut t_buf[..kb * k], kb, k);
            // A₂₁ ← A₂₁ L₁₁ + ½ A₂₂ L₂₁.
            tri_matmul(
                t.as_mut(),
                BlockStructure::Rectangular,
                Accum::Replace,
                a21.as_ref(),
                BlockStructure::Rectangular,
                l11,
                BlockStructure::TriangularLower,
                1.0,
                par,
            );
            a21.copy_from(t.as_ref());
            matmul(a21.as_mut(), Accum::Add, full.as_ref(), l21, 0.5, par);
            // A₁₁ += A₂₁ᵀ L₂₁ + L₂₁ᵀ A₂₁ (lower triangle): one product of inner size 2kb.
            let mut s1 = MatMut::from_column_major_slice_mut(&mut s1_buf[..2 * kb * k], 2 * kb, k);
            let mut s2 = MatMut::from_column_major_slice_mut(&mut s2_buf[..2 * kb * k], 2 * kb, k);
            s1.as_mut().subrows_mut(0, kb).copy_from(a21.as_ref());
            s1.as_mut().subrows_mut(kb, kb).copy_from(l21);
            s2.as_mut().subrows_mut(0, kb).copy_from(l21);
            s2.as_mut().subrows_mut(kb, kb).copy_from(a21.as_ref());
            tri_matmul(
                a11.as_mut(),
                BlockStructure::TriangularLower,
                Accum::Add,
                s1.as_ref().transpose(),
                BlockStructure::Rectangular,
                s2.as_ref(),
                BlockStructure::Rectangular,
                1.0,
                par,
            );
            // A₂₁ ← L₂₂ᵀ (A₂₁ + ½ A₂₂ L₂₁).
            matmul(a21.as_mut(), Accum::Add, full.as_ref(), l21, 0.5, par);
            tri_matmul(
                t.as_mut(),
                BlockStructure::Rectangular,
                Accum::Replace,
                l22.transpose(),
                BlockStructure::TriangularUpper,
                a21.as_ref(),
                BlockStructure::Rectangular,
                1.0,
                par,
            );
            a21.copy_from(t.as_ref());
        }
        // A₂₂ ← L₂₂ᵀ A₂₂ L₂₂ (lower triangle).
        let mut x = MatMut::from_column_major_slice_mut(&mut x_buf[..kb * kb], kb, kb);
        tri_matmul(
            x.as_mut(),
            BlockStructure::Rectangular,
            Accum::Replace,
            full.as_ref(),
            BlockStructure::Rectangular,
            l22,
            BlockStructure::TriangularLower,
            1.0,
            par,
        );
        tri_matmul(
            a22,
            BlockStructure::TriangularLower,
            Accum::Replace,
            l22.transpose(),
            BlockStructure::TriangularUpper,
            x.as_ref(),
            BlockStructure::Rectangular,
            1.0,
            Par::Seq,
        );
        k += kb;
    }
}

impl PreparedGaussian {
    /// `Fᵀ Σ₂ F` for the eigen route's `F = U Λ^½`, symmetrised.
    fn congruence(&self, sigma2: &Mat<f64>, par: Par) -> Mat<f64> {
        let dim = self.dim();
        let mut x = Mat::zeros(dim, dim);
        let mut m = Mat::zeros(dim, dim);
        faer::linalg::matmul::matmul(
            x.as_mut(),
            Accum::Replace,
            sigma2.as_ref(),
            self.half.as_ref(),
            1.0,
            par,
        );
        faer::linalg::matmul::matmul(
            m.as_mut(),
            Accum::Replace,
            self.half.transpose(),
            x.as_ref(),
            1.0,
            par,
        );
        Mat::from_fn(dim, dim, |i, j| 0.5 * (m[(i, j)] + m[(j, i)]))
    }
}

/// The lower Cholesky factor `L` (`L Lᵀ = s`, upper triangle zero) of the symmetric matrix
/// whose lower triangle is `s`, on `par` threads; `None` when `s` is not positive definite.
pub fn lower_cholesky(s: faer::MatRef<'_, f64>, par: Par) -> Option<Mat<f64>> {
    use faer::linalg::cholesky::llt::factor as llt;
    let dim = s.nrows();
    let mut l = Mat::<f64>::zeros(dim, dim);
    l.copy_from_triangular_lower(s);
    let mut mem = MemBuffer::new(llt::cholesky_in_place_scratch::<f64>(
        dim,
        par,
        Default::default(),
    ));
    llt::cholesky_in_place(
        l.as_mut(),
        Default::default(),
        par,
        MemStack::new(&mut mem),
        Default::default(),
    )
    .ok()?;
    for j in 1..dim {
        for i in 0..j {
            l[(i, j)] = 0.0;
        }
    }
    Some(l)
}

/// The Cholesky factor of Σ₁ when the route allows it and Σ₁ is positive definite with N > D.
fn cholesky_factor(g: &Gaussian, route: TraceRoute, par: Par) -> Option<Mat<f64>> {
    if route != TraceRoute::Auto || g.is_rank_deficient() {
        return None;
    }
    let l = lower_cholesky(g.cov.as_ref(), par)?;
    // A pivot at rounding level means Σ₁ is numerically singular: leave it to the eigen route,
    // which cuts such eigenvalues off instead of taking square roots of noise.
    let largest = (0..g.dim()).fold(0.0f64, |m, i| m.max(g.cov[(i, i)]));
    let floor = g.dim() as f64 * f64::EPSILON * largest;
    (0..g.dim())
        .all(|i| l[(i, i)] * l[(i, i)] > floor)
        .then_some(l)
}

/// The eigenvalues of the symmetric matrix whose lower triangle is `m`, on `par` threads: the
/// blocked reduction of [`crate::symeig`], or faer's solver should its QL iteration not converge.
fn symmetric_eigenvalues(m: &Mat<f64>, par: Par) -> std::result::Result<Vec<f64>, ()> {
    match crate::symeig::symmetric_eigenvalues(m.as_ref(), par) {
        Ok(values) => Ok(values),
        Err(crate::symeig::EigenError::NotFinite) => Err(()),
        Err(crate::symeig::EigenError::NoConvergence) => {
            crate::symeig::faer_symmetric_eigenvalues(m.as_ref(), par).map_err(|_| ())
        }
    }
}

/// `U Λ^½` of Σ₁ with eigenvalues below the rank cut-off zeroed; (factor, zeroed, negative).
fn eigen_factor(g: &Gaussian, rank_tolerance: f64) -> Result<(Mat<f64>, usize, usize)> {
    let dim = g.dim();
    let evd = g
        .cov
        .self_adjoint_eigen(Side::Lower)
        .map_err(|_| FadError::Eigen {
            what: "first covariance".into(),
        })?;
    let values: Vec<f64> = evd.S().column_vector().iter().copied().collect();
    let (kept, zeroed, negative) = clamp_eigenvalues(&values, rank_tolerance);
    let u = evd.U();
    let roots: Vec<f64> = kept.iter().map(|v| v.sqrt()).collect();
    Ok((
        Mat::from_fn(dim, dim, |i, j| u[(i, j)] * roots[j]),
        zeroed,
        negative,
    ))
}

/// `FD(a, b)` with the default tolerances.
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> Result<Frechet> {
    frechet_distance_with(a, b, FrechetOptions::default())
}

/// `FD(a, b)` with explicit tolerances.
pub fn frechet_distance_with(
    a: &Gaussian,
    b: &Gaussian,
    options: FrechetOptions,
) -> Result<Frechet> {
    if a.dim() != b.dim() {
        return Err(FadError::DimensionMismatch {
            left: a.dim(),
            right: b.dim(),
        });
    }
    PreparedGaussian::new(a, options)?.distance_to(b)
}

/// Eigenvalues with those below the numerical-rank cut-off set to 0; returns (values, zeroed, negative).
fn clamp_eigenvalues(values: &[f64], rank_tolerance: f64) -> (Vec<f64>, usize, usize) {
    let largest = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let cutoff = rank_tolerance * values.len() as f64 * f64::EPSILON * largest;
    let negative = values.iter().filter(|v| **v < 0.0).count();
    let mut zeroed = 0;
    let kept = values
        .iter()
        .map(|&v| {
            if v <= cutoff {
                zeroed += 1;
                0.0
            } else {
                v
            }
        })
        .collect();
    (kept, zeroed, negative)
}

/// Maps rounding noise around zero to 0 and never returns a negative distance.
fn settle_near_zero(raw: f64, scale: f64, zero_tolerance: f64) -> f64 {
    if raw.abs() <= zero_tolerance * scale {
        return 0.0;
    }
    if raw < 0.0 {
        // Mathematically impossible for PSD inputs: it means an input was not PSD to begin with.
        tracing::warn!(raw, scale, "negative Fréchet distance beyond rounding; reported as 0 (is a covariance indefinite?)");
        return 0.0;
    }
    raw
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};

    fn rows(n: usize, d: usize, seed: u64) -> Array2<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((n, d), |_| rng.random_range(-1.0..1.0))
    }

    #[test]
    fn univariate_gaussians_have_the_closed_form() {
        // FD between N(m1, s1²) and N(m2, s2²) is (m1 − m2)² + (s1 − s2)².
        let a = Gaussian::from_parts(vec![1.0], Mat::from_fn(1, 1, |_, _| 4.0), None, "a").unwrap();
        let b =
            Gaussian::from_parts(vec![-2.0], Mat::from_fn(1, 1, |_, _| 9.0), None, "b").unwrap();
        let fd = frechet_distance(&a, &b).unwrap();
        assert!((fd.distance - (9.0 + 1.0)).abs() < 1e-12);
    }

    #[test]
    fn commuting_covariances_have_the_closed_form() {
        // Diagonal covariances: FD = ‖Δμ‖² + Σ (√a − √b)².
        let da = [1.0, 2.0, 0.5, 3.0];
        let db = [4.0, 0.25, 0.5, 1.0];
        let a = Gaussian::from_parts(
            vec![0.0; 4],
            Mat::from_fn(4, 4, |i, j| if i == j { da[i] } else { 0.0 }),
            None,
            "a",
        )
        .unwrap();
        let b = Gaussian::from_parts(
            vec![1.0, 0.0, 0.0, 0.0],
            Mat::from_fn(4, 4, |i, j| if i == j { db[i] } else { 0.0 }),
            None,
            "b",
        )
        .unwrap();
        let expected = 1.0
            + da.iter()
                .zip(&db)
                .map(|(x, y): (&f64, &f64)| (x.sqrt() - y.sqrt()).powi(2))
                .sum::<f64>();
        let fd = frechet_distance(&a, &b).unwrap();
        assert!(
            (fd.distance - expected).abs() < 1e-12,
            "{} vs {expected}",
            fd.distance
        );
    }

    #[test]
    fn distance_to_itself_is_exactly_zero_even_when_singular() {
        for (n, d) in [(500, 16), (10, 16), (16, 16)] {
            let g = Gaussian::from_rows(rows(n, d, 7).view()).unwrap();
            let fd = frechet_distance(&g, &g).unwrap();
            assert_eq!(fd.distance, 0.0, "n={n} d={d} raw={}", fd.raw);
            assert_eq!(fd.rank_deficient, n <= d);
        }
    }

    #[test]
    fn symmetric_in_its_arguments() {
        let a = Gaussian::from_rows(rows(200, 12, 1).view()).unwrap();
        let b = Gaussian::from_rows(rows(150, 12, 2).view()).unwrap();
        let ab = frechet_distance(&a, &b).unwrap().distance;
        let ba = frechet_distance(&b, &a).unwrap().distance;
        assert!((ab - ba).abs() < 1e-12 * ab.max(1.0), "{ab} vs {ba}");
        assert!(ab > 0.0);
    }

    #[test]
    fn blocked_congruence_equals_the_two_products() {
        // Orders around the block size: one block, a partial last block, several blocks.
        for (dim, seed) in [(1, 1), (5, 2), (64, 3), (65, 4), (130, 5), (200, 6)] {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let b = Mat::from_fn(dim, dim, |_, _| rng.random_range(-1.0..1.0));
            let a = Mat::from_fn(dim, dim, |i, j| b[(i, j)] + b[(j, i)]);
            let l = Mat::from_fn(dim, dim, |i, j| match i.cmp(&j) {
                std::cmp::Ordering::Less => 0.0,
                std::cmp::Ordering::Equal => 1.0 + rng.random_range(0.0..1.0),
                std::cmp::Ordering::Greater => rng.random_range(-1.0..1.0),
            });
            let want = l.transpose() * &a * &l;
            // Only the lower triangle is read: the upper one holds NaN.
            let mut buf = vec![f64::NAN; dim * dim];
            for j in 0..dim {
                for i in j..dim {
                    buf[j * dim + i] = a[(i, j)];
                }
            }
            let mut g = vec![0.0; congruence_scratch(dim)];
            congruence_in_place(&mut buf, l.as_ref(), dim, &mut g, Par::Seq);
            let largest = (0..dim)
                .flat_map(|j| (0..dim).map(move |i| (i, j)))
                .fold(0.0f64, |m, (i, j)| m.max(want[(i, j)].abs()));
            for j in 0..dim {
                for i in 0..dim {
                    let got = buf[j * dim + i];
                    if i < j {
                        assert!(got.is_nan(), "dim {dim}: ({i}, {j}) written");
                    } else {
                        assert!(
                            (got - want[(i, j)]).abs() <= 1e-13 * largest * dim as f64,
                            "dim {dim}: ({i}, {j}) {got} vs {}",
                            want[(i, j)]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn mismatched_dimensions_are_an_error() {
        let a = Gaussian::from_rows(rows(20, 3, 1).view()).unwrap();
        let b = Gaussian::from_rows(rows(20, 4, 1).view()).unwrap();
        assert!(matches!(
            frechet_distance(&a, &b),
            Err(FadError::DimensionMismatch { left: 3, right: 4 })
        ));
    }
}
