//! First and second moments of an embedding set, accumulated in `f64`.
//!
//! [`RunningStats`] keeps the count `n`, the running mean `μ` and the co-moment (scatter) matrix
//! `M = Σᵢ (xᵢ − μ)(xᵢ − μ)ᵀ`. Rows arrive in batches: each batch is centred on its own mean
//! (two-pass within the batch, accurate even when the data sit far from the origin) and folded in
//! with Chan, Golub & LeVeque's pairwise update
//!
//! ```text
//! δ = μ_b − μ_a,   n = n_a + n_b,   μ = μ_a + δ·n_b/n,   M = M_a + M_b + δδᵀ·n_a·n_b/n
//! ```
//!
//! which is also how two shards merge ([`RunningStats::merge`]): the merged statistics equal the
//! statistics of the concatenated rows up to rounding, whatever the split. fadtk merges per-file
//! statistics the same way.
//!
//! [`Gaussian`] is the finished pair (mean, covariance with `N − 1`), or a precomputed pair read
//! from disk (then the sample count may be unknown).

use faer::{Accum, Mat, MatRef, Par};
use ndarray::ArrayView2;

use crate::{FadError, Result};

/// An element type embeddings arrive in; everything is accumulated in `f64`.
pub trait Element: Copy + Send + Sync {
    fn to_f64(self) -> f64;
}

impl Element for f64 {
    fn to_f64(self) -> f64 {
        self
    }
}

impl Element for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Element for half::f16 {
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
}

impl Element for half::bf16 {
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
}

/// Rows folded in per batch: bounds the temporary centred copy (batch × dim × 8 bytes).
const BATCH_ROWS: usize = 4096;

/// Streaming mean and co-moment matrix of a set of `dim`-dimensional rows.
#[derive(Debug, Clone)]
pub struct RunningStats {
    n: u64,
    mean: Vec<f64>,
    scatter: Mat<f64>,
}

impl RunningStats {
    /// Empty statistics for `dim`-dimensional rows.
    pub fn new(dim: usize) -> RunningStats {
        RunningStats {
            n: 0,
            mean: vec![0.0; dim],
            scatter: Mat::zeros(dim, dim),
        }
    }

    /// Statistics of the rows of `rows` ([N, D]).
    pub fn from_rows<T: Element>(rows: ArrayView2<'_, T>) -> RunningStats {
        RunningStats::from_rows_in(rows, faer::get_global_parallelism())
    }

    /// [`RunningStats::from_rows`] with the products on `par` threads (`Par::Seq` when the
    /// caller already runs many of them side by side).
    pub fn from_rows_in<T: Element>(rows: ArrayView2<'_, T>, par: Par) -> RunningStats {
        let mut s = RunningStats::new(rows.ncols());
        s.assign_rows_in(rows, None, par);
        s
    }

    /// Makes these the statistics of the rows of `rows` ([N, D], D = [`RunningStats::dim`]),
    /// or of the rows `select` lists (in that order) when given, reusing this value's mean and
    /// co-moment buffers: equal, bit for bit, to [`RunningStats::from_rows_in`] of those rows,
    /// whatever these statistics held before. Up to [`BATCH_ROWS`] rows allocate nothing but the
    /// calling thread's row buffer (kept for its next call), so a caller that recycles its
    /// statistics, as the per-emotion study does with every clip's, computes them without
    /// allocating an order-D matrix.
    ///
    /// # Panics
    /// If the row width differs from [`RunningStats::dim`] or a selected row is out of range.
    pub fn assign_rows_in<T: Element>(
        &mut self,
        rows: ArrayView2<'_, T>,
        select: Option<&[usize]>,
        par: Par,
    ) {
        assert_eq!(
            rows.ncols(),
            self.dim(),
            "row width differs from the statistics' dimension"
        );
        let dim = self.dim();
        let count = select.map_or(rows.nrows(), <[usize]>::len);
        let row = |k: usize| rows.row(select.map_or(k, |s| s[k]));
        if count == 0 {
            self.reset();
            return;
        }
        // The first batch straight into these buffers, as `push_rows_in` into empty statistics.
        let first = count.min(BATCH_ROWS);
        ROW_BUFFER.with(|cell| {
            let mut owned = Vec::new();
            let mut borrowed = cell.try_borrow_mut();
            let buffer = match borrowed.as_deref_mut() {
                Ok(b) => b,
                Err(_) => &mut owned,
            };
            buffer.clear();
            buffer.resize(first * dim, 0.0);
            self.mean.fill(0.0);
            for (k, out) in buffer.chunks_exact_mut(dim.max(1)).enumerate() {
                for ((o, x), s) in out.iter_mut().zip(row(k).iter()).zip(self.mean.iter_mut()) {
                    let v = x.to_f64();
                    *o = v;
                    *s += v;
                }
            }
            for m in &mut self.mean {
                *m /= first as f64;
            }
            for r in buffer.chunks_exact_mut(dim.max(1)) {
                for (x, m) in r.iter_mut().zip(&self.mean) {
                    *x -= m;
                }
            }
            if dim > 0 {
                syrk_lower_mirrored_into(
                    self.scatter.as_mut(),
                    MatRef::from_row_major_slice(buffer, first, dim),
                    par,
                );
            }
        });
        self.n = first as u64;
        // Further batches (clips longer than BATCH_ROWS rows), merged by `push_rows_in`.
        match select {
            None => self.push_rows_in(rows.slice(ndarray::s![first.., ..]), par),
            Some(select) => {
                for batch in select[first..].chunks(BATCH_ROWS) {
                    self.push_rows_in(rows.select(ndarray::Axis(0), batch).view(), par);
                }
            }
        }
    }

    /// Empties the statistics (count 0, mean and co-moment matrix zero), keeping the buffers.
    pub fn reset(&mut self) {
        self.n = 0;
        self.mean.fill(0.0);
        for j in 0..self.scatter.ncols() {
            self.scatter.col_as_slice_mut(j).fill(0.0);
        }
    }

    /// Statistics saved earlier by [`RunningStats::to_parts`] (count, mean, co-moment matrix in
    /// row-major order), e.g. by one shard of a sharded run, so that they can be
    /// [merged](RunningStats::merge) with the other shards'.
    pub fn from_parts(n: u64, mean: Vec<f64>, scatter: &[f64]) -> Result<RunningStats> {
        let dim = mean.len();
        if scatter.len() != dim * dim {
            return Err(FadError::Invalid {
                what: "saved statistics".into(),
                message: format!(
                    "a {dim}-dimensional mean needs a {dim}×{dim} co-moment matrix, got {} values",
                    scatter.len()
                ),
            });
        }
        if mean.iter().chain(scatter).any(|v| !v.is_finite()) {
            return Err(FadError::NotFinite {
                what: "saved statistics".into(),
            });
        }
        if n == 0 && mean.iter().chain(scatter).any(|v| *v != 0.0) {
            return Err(FadError::Invalid {
                what: "saved statistics".into(),
                message: "a count of 0 with non-zero moments".into(),
            });
        }
        let scatter = Mat::from_fn(dim, dim, |i, j| scatter[i * dim + j]);
        Ok(RunningStats { n, mean, scatter })
    }

    /// Count, mean and co-moment matrix (row-major), exactly as kept; [`RunningStats::from_parts`]
    /// restores them bit for bit.
    pub fn to_parts(&self) -> (u64, Vec<f64>, Vec<f64>) {
        let dim = self.dim();
        let mut scatter = Vec::with_capacity(dim * dim);
        for i in 0..dim {
            for j in 0..dim {
                scatter.push(self.scatter[(i, j)]);
            }
        }
        (self.n, self.mean.clone(), scatter)
    }

    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// The co-moment matrix `Σᵢ (xᵢ − μ)(xᵢ − μ)ᵀ`.
    pub fn scatter(&self) -> MatRef<'_, f64> {
        self.scatter.as_ref()
    }

    /// Adds the rows of `rows` ([N, D], any layout).
    ///
    /// # Panics
    /// If the row width differs from [`RunningStats::dim`]; callers check shapes when they read.
    pub fn push_rows<T: Element>(&mut self, rows: ArrayView2<'_, T>) {
        self.push_rows_in(rows, faer::get_global_parallelism());
    }

    /// [`RunningStats::push_rows`] with the products on `par` threads.
    pub fn push_rows_in<T: Element>(&mut self, rows: ArrayView2<'_, T>, par: Par) {
        assert_eq!(
            rows.ncols(),
            self.dim(),
            "row width differs from the statistics' dimension"
        );
        let mut start = 0;
        while start < rows.nrows() {
            let end = (start + BATCH_ROWS).min(rows.nrows());
            let batch = rows.slice(ndarray::s![start..end, ..]);
            let part = batch_stats(batch, par);
            self.merge(&part);
            start = end;
        }
    }

    /// Adds one row.
    pub fn push_row<T: Element>(&mut self, row: &[T]) {
        let view = ArrayView2::from_shape((1, row.len()), row).expect("one row");
        self.push_rows(view);
    }

    /// Folds `other` in (Chan's pairwise update); the result is as if all rows had been pushed here.
    pub fn merge(&mut self, other: &RunningStats) {
        assert_eq!(
            other.dim(),
            self.dim(),
            "merging statistics of different dimensions"
        );
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            // Copied into the buffers already here: no new order-D matrix.
            self.n = other.n;
            self.mean.copy_from_slice(&other.mean);
            self.scatter.copy_from(&other.scatter);
            return;
        }
        let (na, nb) = (self.n as f64, other.n as f64);
        let n = na + nb;
        let delta: Vec<f64> = other
            .mean
            .iter()
            .zip(&self.mean)
            .map(|(b, a)| b - a)
            .collect();
        let w = na * nb / n;
        let dim = self.dim();
        for j in 0..dim {
            let dj = delta[j] * w;
            for i in 0..dim {
                let v = self.scatter[(i, j)] + other.scatter[(i, j)] + delta[i] * dj;
                self.scatter[(i, j)] = v;
            }
        }
        for (m, d) in self.mean.iter_mut().zip(&delta) {
            *m += d * nb / n;
        }
        self.n += other.n;
    }

    /// The statistics of a multiset of row sets: `weights[i]` copies of the rows behind
    /// `parts[i]` (e.g. the clips drawn by one bootstrap replicate, with their multiplicities).
    /// Computed from the parts' statistics alone, in one step:
    /// `μ = Σ wᵢnᵢμᵢ / N`, `M = Σ wᵢMᵢ + Σ wᵢnᵢ(μᵢ − μ)(μᵢ − μ)ᵀ` (the between-parts term is one
    /// symmetric product of the centred part means), so its cost does not depend on the number
    /// of rows. Equal to merging the copies one by one, up to rounding.
    ///
    /// # Panics
    /// If `weights` and `parts` differ in length or the parts in dimension.
    pub fn weighted_union(parts: &[RunningStats], weights: &[u64]) -> RunningStats {
        RunningStats::weighted_union_in(parts, weights, faer::get_global_parallelism())
    }

    /// [`RunningStats::weighted_union`] with its product on `par` threads.
    pub fn weighted_union_in(parts: &[RunningStats], weights: &[u64], par: Par) -> RunningStats {
        use faer::linalg::matmul::triangular::{matmul as tri_matmul, BlockStructure};
        assert_eq!(parts.len(), weights.len(), "one weight per part");
        let dim = parts.first().map_or(0, RunningStats::dim);
        assert!(
            parts.iter().all(|p| p.dim() == dim),
            "parts of different dimensions"
        );
        let used: Vec<(&RunningStats, f64)> = parts
            .iter()
            .zip(weights)
            .filter(|(p, w)| **w > 0 && p.n > 0)
            .map(|(p, w)| (p, *w as f64))
            .collect();
        let n: u64 = parts.iter().zip(weights).map(|(p, w)| p.n * w).sum();
        if n == 0 {
            return RunningStats::new(dim);
        }
        let mut mean = vec![0.0f64; dim];
        for (p, w) in &used {
            let c = w * p.n as f64;
            for (m, x) in mean.iter_mut().zip(&p.mean) {
                *m += c * x;
            }
        }
        for m in &mut mean {
            *m /= n as f64;
        }
        let mut scatter = Mat::<f64>::zeros(dim, dim);
        for j in 0..dim {
            let dst = &mut scatter.col_as_slice_mut(j)[j..];
            for (p, w) in &used {
                let src = &p.scatter.col_as_slice(j)[j..];
                for (d, s) in dst.iter_mut().zip(src) {
                    *d += w * s;
                }
            }
        }
        let k = used.len();
        let mut centred = vec![0.0f64; k * dim];
        for ((p, w), row) in used.iter().zip(centred.chunks_exact_mut(dim.max(1))) {
            let c = (w * p.n as f64).sqrt();
            for ((z, x), m) in row.iter_mut().zip(&p.mean).zip(&mean) {
                *z = c * (x - m);
            }
        }
        if k > 0 && dim > 0 {
            let z = MatRef::from_row_major_slice(&centred, k, dim);
            tri_matmul(
                scatter.as_mut(),
                BlockStructure::TriangularLower,
                Accum::Add,
                z.transpose(),
                BlockStructure::Rectangular,
                z,
                BlockStructure::Rectangular,
                1.0,
                par,
            );
        }
        for j in 0..dim {
            for i in 0..j {
                scatter[(i, j)] = scatter[(j, i)];
            }
        }
        RunningStats { n, mean, scatter }
    }

    /// Applies the diagonal map `x → (x − centre) / scale` to the rows behind the statistics
    /// (exact on the moments: μ → (μ − c)/s, Mᵢⱼ → Mᵢⱼ/(sᵢsⱼ)).
    pub fn standardize(&mut self, centre: &[f64], scale: &[f64]) {
        assert_eq!(centre.len(), self.dim(), "one centre per dimension");
        assert_eq!(scale.len(), self.dim(), "one scale per dimension");
        if self.n > 0 {
            for ((m, c), s) in self.mean.iter_mut().zip(centre).zip(scale) {
                *m = (*m - c) / s;
            }
        }
        let d = scale.len();
        for j in 0..d {
            for i in 0..d {
                self.scatter[(i, j)] /= scale[i] * scale[j];
            }
        }
    }

    /// Mean and unbiased (`N − 1`) covariance; needs at least two rows.
    pub fn gaussian(&self) -> Result<Gaussian> {
        if self.n < 2 {
            return Err(FadError::TooFewSamples {
                what: "embedding set".into(),
                n: self.n,
            });
        }
        let denom = (self.n - 1) as f64;
        let dim = self.dim();
        // The scatter matrix comes from gemm, which is not bit-symmetric: average the triangles.
        let cov = Mat::from_fn(dim, dim, |i, j| {
            0.5 * (self.scatter[(i, j)] + self.scatter[(j, i)]) / denom
        });
        let g = Gaussian {
            mean: self.mean.clone(),
            cov,
            n: Some(self.n),
        };
        g.check_finite("embedding set")?;
        Ok(g)
    }
}

/// Mean and scatter of one batch, centred on the batch mean.
fn batch_stats<T: Element>(batch: ArrayView2<'_, T>, par: Par) -> RunningStats {
    let (rows, dim) = batch.dim();
    let mut buffer = vec![0.0f64; rows * dim];
    let mut sum = vec![0.0f64; dim];
    for (row, out) in batch.rows().into_iter().zip(buffer.chunks_exact_mut(dim)) {
        for ((o, x), s) in out.iter_mut().zip(row.iter()).zip(sum.iter_mut()) {
            let v = x.to_f64();
            *o = v;
            *s += v;
        }
    }
    centred_batch_stats(buffer, rows, dim, &sum, par)
}

/// Statistics of `rows` rows already converted to `f64` in `buffer` (row-major `rows × dim`),
/// whose column sums are `sum` (accumulated while converting, so the data are read once). The
/// rows are centred in place and their co-moment matrix is one symmetric rank-k product (only
/// the lower triangle is computed, on faer's global parallelism, then mirrored).
pub(crate) fn centred_batch_stats(
    mut buffer: Vec<f64>,
    rows: usize,
    dim: usize,
    sum: &[f64],
    par: Par,
) -> RunningStats {
    debug_assert_eq!(buffer.len(), rows * dim);
    let mean: Vec<f64> = sum.iter().map(|s| s / rows as f64).collect();
    for row in buffer.chunks_exact_mut(dim.max(1)) {
        for (x, m) in row.iter_mut().zip(&mean) {
            *x -= m;
        }
    }
    let scatter = if rows == 0 || dim == 0 {
        Mat::zeros(dim, dim)
    } else {
        syrk_lower_mirrored(MatRef::from_row_major_slice(&buffer, rows, dim), par)
    };
    RunningStats {
        n: rows as u64,
        mean,
        scatter,
    }
}

/// `Xᵀ X` for `X` [rows, dim]: the lower triangle by faer's triangular product, mirrored.
pub(crate) fn syrk_lower_mirrored(xc: MatRef<'_, f64>, par: Par) -> Mat<f64> {
    let dim = xc.ncols();
    let mut scatter = Mat::zeros(dim, dim);
    syrk_lower_mirrored_into(scatter.as_mut(), xc, par);
    scatter
}

/// [`syrk_lower_mirrored`] into `scatter` (order `xc.ncols()`), whatever it held: the product
/// replaces the lower triangle, which is then mirrored.
fn syrk_lower_mirrored_into(mut scatter: faer::MatMut<'_, f64>, xc: MatRef<'_, f64>, par: Par) {
    use faer::linalg::matmul::triangular::{matmul as tri_matmul, BlockStructure};
    let dim = xc.ncols();
    tri_matmul(
        scatter.as_mut(),
        BlockStructure::TriangularLower,
        Accum::Replace,
        xc.transpose(),
        BlockStructure::Rectangular,
        xc,
        BlockStructure::Rectangular,
        1.0,
        par,
    );
    for j in 0..dim {
        for i in 0..j {
            scatter[(i, j)] = scatter[(j, i)];
        }
    }
}

thread_local! {
    /// The row buffer of [`RunningStats::assign_rows_in`], one per thread, reused.
    static ROW_BUFFER: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Rows per product when the moments of encoded rows are taken: the centred block (256 × D
/// values) stays in the core's cache while it is multiplied.
const ENCODED_BLOCK_ROWS: usize = 256;

/// Count, mean and co-moment matrix of `n` rows of `dim` values stored one after the other in
/// `data` (`width` bytes per value), which `decode` turns into `f64` a row block at a time.
///
/// Two passes over the encoded bytes, each split across rayon's threads by rows: the column
/// sums, then, for blocks of [`ENCODED_BLOCK_ROWS`] rows decoded and centred on the exact mean
/// in a small buffer, the lower triangle of `Xᵀ X` accumulated into one `f64` matrix per thread
/// (one thread per product, no `N × D` copy of the data in `f64`); the threads' matrices are
/// summed and mirrored. Centring on the mean of all rows is the two-pass algorithm: accurate for
/// data far from the origin.
///
/// With `f32_products` (for data stored as f16/f32, whose values carry at most 24 significant
/// bits), each block's centred values are rounded to `f32` and multiplied with `f32` kernels
/// (twice the arithmetic throughput of `f64`), summing at most [`ENCODED_BLOCK_ROWS`] products
/// in `f32`; the block products are added up in `f64`. Rounding a centred value to `f32` moves
/// it by 6e-8 of itself, below the resolution of the stored value before centring. On the
/// benchmark pairs of `tools/bench/fad_make_inputs.py` (6,000 × 768 and × 1,024, plain and
/// near-singular far from the origin) the distance moves by ≤ 6e-9 relative to the all-`f64`
/// one.
pub(crate) fn moments_of_encoded_rows(
    data: &[u8],
    n: usize,
    dim: usize,
    decode: impl Fn(&[u8], &mut [f64]) + Sync,
    width: usize,
    f32_products: bool,
) -> RunningStats {
    use faer::linalg::matmul::triangular::{matmul as tri_matmul, BlockStructure};
    use rayon::prelude::*;
    let row_bytes = dim * width;
    debug_assert_eq!(data.len(), n * row_bytes);
    if n == 0 || dim == 0 {
        return RunningStats::new(dim);
    }
    let threads = rayon::current_num_threads().clamp(1, n);
    let part_bytes = n.div_ceil(threads) * row_bytes;
    let sums = data
        .par_chunks(part_bytes)
        .map(|part| column_sums(part, row_bytes, dim, &decode))
        .reduce(
            || vec![0.0f64; dim],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(&b) {
                    *x += y;
                }
                a
            },
        );
    let mean: Vec<f64> = sums.iter().map(|s| s / n as f64).collect();
    let mut scatter = data
        .par_chunks(part_bytes)
        .map(|part| {
            let mut acc = Mat::<f64>::zeros(dim, dim);
            let mut buffer = vec![0.0f64; ENCODED_BLOCK_ROWS * dim];
            let (mut single, mut product) = if f32_products {
                (
                    vec![0.0f32; ENCODED_BLOCK_ROWS * dim],
                    Mat::<f32>::zeros(dim, dim),
                )
            } else {
                (Vec::new(), Mat::<f32>::zeros(0, 0))
            };
            for block in part.chunks(ENCODED_BLOCK_ROWS * row_bytes) {
                let rows = block.len() / row_bytes;
                let values = &mut buffer[..rows * dim];
                let single = &mut single[..if f32_products { rows * dim } else { 0 }];
                decode(block, values);
                centre_and_round(values, single, &mean);
                if f32_products {
                    let x = MatRef::from_row_major_slice(single, rows, dim);
                    tri_matmul(
                        product.as_mut(),
                        BlockStructure::TriangularLower,
                        Accum::Replace,
                        x.transpose(),
                        BlockStructure::Rectangular,
                        x,
                        BlockStructure::Rectangular,
                        1.0f32,
                        Par::Seq,
                    );
                    add_lower(&mut acc, &product);
                } else {
                    let x = MatRef::from_row_major_slice(values, rows, dim);
                    tri_matmul(
                        acc.as_mut(),
                        BlockStructure::TriangularLower,
                        Accum::Add,
                        x.transpose(),
                        BlockStructure::Rectangular,
                        x,
                        BlockStructure::Rectangular,
                        1.0,
                        Par::Seq,
                    );
                }
            }
            acc
        })
        .reduce_with(|mut a, b| {
            for j in 0..dim {
                for (x, y) in a.col_as_slice_mut(j)[j..]
                    .iter_mut()
                    .zip(&b.col_as_slice(j)[j..])
                {
                    *x += y;
                }
            }
            a
        })
        .expect("at least one row");
    for j in 0..dim {
        for i in 0..j {
            scatter[(i, j)] = scatter[(j, i)];
        }
    }
    RunningStats {
        n: n as u64,
        mean,
        scatter,
    }
}

/// The column sums of the rows of `part` (`row_bytes` bytes each, decoded by `decode`).
fn column_sums(
    part: &[u8],
    row_bytes: usize,
    dim: usize,
    decode: &impl Fn(&[u8], &mut [f64]),
) -> Vec<f64> {
    let mut sums = vec![0.0f64; dim];
    let mut row = vec![0.0f64; dim];
    for bytes in part.chunks_exact(row_bytes) {
        decode(bytes, &mut row);
        for (s, x) in sums.iter_mut().zip(&row) {
            *s += x;
        }
    }
    sums
}

/// Centres each row of `values` on `mean` and rounds the centred values to `f32` into `single`
/// when it is not empty. Compiled for AVX2 where the processor has it (four values per
/// instruction instead of two); the arithmetic is element by element, so the results are the
/// same either way.
fn centre_and_round(values: &mut [f64], single: &mut [f32], mean: &[f64]) {
    #[inline(always)]
    fn body(values: &mut [f64], single: &mut [f32], mean: &[f64]) {
        for row in values.chunks_exact_mut(mean.len()) {
            for (x, m) in row.iter_mut().zip(mean) {
                *x -= m;
            }
        }
        for (s, x) in single.iter_mut().zip(values.iter()) {
            *s = *x as f32;
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(values: &mut [f64], single: &mut [f32], mean: &[f64]) {
            body(values, single, mean)
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the feature was just detected.
            return unsafe { avx2(values, single, mean) };
        }
    }
    body(values, single, mean)
}

/// `acc += product` on the lower triangle, `f32` widened to `f64` (AVX2 where available, as
/// [`centre_and_round`]).
fn add_lower(acc: &mut Mat<f64>, product: &Mat<f32>) {
    #[inline(always)]
    fn body(acc: &mut Mat<f64>, product: &Mat<f32>) {
        for j in 0..acc.ncols() {
            let src = &product.col_as_slice(j)[j..];
            for (d, s) in acc.col_as_slice_mut(j)[j..].iter_mut().zip(src) {
                *d += f64::from(*s);
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(acc: &mut Mat<f64>, product: &Mat<f32>) {
            body(acc, product)
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the feature was just detected.
            return unsafe { avx2(acc, product) };
        }
    }
    body(acc, product)
}

/// A Gaussian summary of an embedding set: mean, covariance and (when known) the sample count.
#[derive(Debug, Clone)]
pub struct Gaussian {
    pub mean: Vec<f64>,
    pub cov: Mat<f64>,
    /// Number of rows behind the statistics; `None` for precomputed statistics without a count.
    pub n: Option<u64>,
}

impl Gaussian {
    /// Mean and `N − 1` covariance of the rows of `rows` ([N, D]).
    pub fn from_rows<T: Element>(rows: ArrayView2<'_, T>) -> Result<Gaussian> {
        RunningStats::from_rows(rows).gaussian()
    }

    /// Precomputed statistics: checks shapes and finiteness, symmetrises the covariance.
    pub fn from_parts(
        mean: Vec<f64>,
        cov: Mat<f64>,
        n: Option<u64>,
        what: &str,
    ) -> Result<Gaussian> {
        if cov.nrows() != cov.ncols() {
            return Err(FadError::Invalid {
                what: what.into(),
                message: format!("covariance is {}×{}, not square", cov.nrows(), cov.ncols()),
            });
        }
        if cov.nrows() != mean.len() {
            return Err(FadError::Invalid {
                what: what.into(),
                message: format!(
                    "mean has {} entries but the covariance is {}×{}",
                    mean.len(),
                    cov.nrows(),
                    cov.ncols()
                ),
            });
        }
        let dim = mean.len();
        let cov = Mat::from_fn(dim, dim, |i, j| 0.5 * (cov[(i, j)] + cov[(j, i)]));
        let g = Gaussian { mean, cov, n };
        g.check_finite(what)?;
        Ok(g)
    }

    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// True when the covariance is necessarily rank-deficient (N ≤ D rows).
    pub fn is_rank_deficient(&self) -> bool {
        self.n.is_some_and(|n| n <= self.dim() as u64)
    }

    pub fn trace(&self) -> f64 {
        (0..self.dim()).map(|i| self.cov[(i, i)]).sum()
    }

    fn check_finite(&self, what: &str) -> Result<()> {
        let dim = self.dim();
        let finite = self.mean.iter().all(|x| x.is_finite())
            && (0..dim).all(|j| (0..dim).all(|i| self.cov[(i, j)].is_finite()));
        if finite {
            Ok(())
        } else {
            Err(FadError::NotFinite { what: what.into() })
        }
    }
}

/// Limits faer's (rayon) parallelism, e.g. to leave cores to other work.
pub fn set_threads(threads: usize) {
    let par = match std::num::NonZeroUsize::new(threads) {
        Some(n) if threads > 1 => Par::Rayon(n),
        _ => Par::Seq,
    };
    faer::set_global_parallelism(par);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};

    fn random_rows(n: usize, d: usize, seed: u64, offset: f64) -> Array2<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((n, d), |(_, j)| {
            offset + j as f64 * 0.1 + rng.random_range(-1.0..1.0)
        })
    }

    /// Textbook two-pass statistics, the independent reference.
    fn two_pass(x: &Array2<f64>) -> (Vec<f64>, Vec<Vec<f64>>) {
        let (n, d) = x.dim();
        let mean: Vec<f64> = (0..d).map(|j| x.column(j).sum() / n as f64).collect();
        let cov = (0..d)
            .map(|i| {
                (0..d)
                    .map(|j| {
                        (0..n)
                            .map(|r| (x[(r, i)] - mean[i]) * (x[(r, j)] - mean[j]))
                            .sum::<f64>()
                            / (n - 1) as f64
                    })
                    .collect()
            })
            .collect();
        (mean, cov)
    }

    #[test]
    fn matches_two_pass_statistics_far_from_the_origin() {
        let x = random_rows(300, 7, 1, 1e4);
        let g = Gaussian::from_rows(x.view()).unwrap();
        let (mean, cov) = two_pass(&x);
        for i in 0..7 {
            assert!((g.mean[i] - mean[i]).abs() < 1e-9 * mean[i].abs());
            for j in 0..7 {
                assert!(
                    (g.cov[(i, j)] - cov[i][j]).abs() < 1e-10,
                    "{} vs {}",
                    g.cov[(i, j)],
                    cov[i][j]
                );
            }
        }
        assert_eq!(g.n, Some(300));
    }

    #[test]
    fn shards_merge_to_the_statistics_of_the_whole() {
        let x = random_rows(1000, 5, 2, 3.0);
        let whole = RunningStats::from_rows(x.view()).gaussian().unwrap();
        let mut merged = RunningStats::new(5);
        for (a, b) in [(0, 1), (1, 250), (250, 251), (251, 1000)] {
            merged.merge(&RunningStats::from_rows(x.slice(ndarray::s![a..b, ..])));
        }
        let merged = merged.gaussian().unwrap();
        for i in 0..5 {
            assert!((whole.mean[i] - merged.mean[i]).abs() < 1e-12);
            for j in 0..5 {
                assert!((whole.cov[(i, j)] - merged.cov[(i, j)]).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn assigned_statistics_equal_fresh_ones_bit_for_bit_whatever_the_buffers_held() {
        let bits = |s: &RunningStats| {
            let (n, mean, scatter) = s.to_parts();
            let bits: Vec<u64> = mean.iter().chain(&scatter).map(|v| v.to_bits()).collect();
            (n, bits)
        };
        let d = 6;
        // Buffers full of NaN: nothing of them may reach the result.
        let stale = || RunningStats {
            n: 7,
            mean: vec![f64::NAN; d],
            scatter: Mat::from_fn(d, d, |_, _| f64::NAN),
        };
        // Short, and longer than one batch (merged batch by batch, as `push_rows_in` does).
        for n in [3, BATCH_ROWS + 37] {
            let x = random_rows(n, d, 11, 5.0).mapv(|v| v as f32);
            let mut s = stale();
            s.assign_rows_in(x.view(), None, Par::Seq);
            assert_eq!(
                bits(&s),
                bits(&RunningStats::from_rows_in(x.view(), Par::Seq))
            );
            // And to rows pushed into new statistics, batch by batch.
            let mut pushed = RunningStats::new(d);
            pushed.push_rows_in(x.view(), Par::Seq);
            assert_eq!(bits(&s), bits(&pushed));
            // A selection of half the rows, and one longer than a batch (rows repeated).
            let half: Vec<usize> = (0..n).rev().step_by(2).collect();
            let long: Vec<usize> = (0..n).rev().chain(0..n.min(9)).collect();
            for pick in [half, long] {
                s.assign_rows_in(x.view(), Some(&pick), Par::Seq);
                let picked = x.select(ndarray::Axis(0), &pick);
                assert_eq!(
                    bits(&s),
                    bits(&RunningStats::from_rows_in(picked.view(), Par::Seq))
                );
            }
        }
        // No rows: empty statistics; merging into emptied statistics copies the other side.
        let x = random_rows(50, d, 12, 1.0);
        let mut s = stale();
        s.assign_rows_in(x.view(), Some(&[]), Par::Seq);
        assert_eq!(bits(&s), bits(&RunningStats::new(d)));
        let whole = RunningStats::from_rows(x.view());
        let mut t = stale();
        t.reset();
        t.merge(&whole);
        assert_eq!(bits(&t), bits(&whole));
    }

    #[test]
    fn saved_parts_round_trip_and_bad_parts_are_refused() {
        let x = random_rows(40, 3, 4, 1.0);
        let s = RunningStats::from_rows(x.view());
        let (n, mean, scatter) = s.to_parts();
        let back = RunningStats::from_parts(n, mean, &scatter).unwrap();
        assert_eq!(back.to_parts(), s.to_parts());
        assert!(matches!(
            RunningStats::from_parts(2, vec![0.0; 3], &[0.0; 4]),
            Err(FadError::Invalid { .. })
        ));
        assert!(matches!(
            RunningStats::from_parts(2, vec![f64::NAN, 0.0], &[0.0; 4]),
            Err(FadError::NotFinite { .. })
        ));
        assert!(RunningStats::from_parts(0, vec![1.0], &[0.0]).is_err());
    }

    #[test]
    fn fewer_than_two_rows_is_an_error() {
        let x = random_rows(1, 3, 3, 0.0);
        assert!(matches!(
            RunningStats::from_rows(x.view()).gaussian(),
            Err(FadError::TooFewSamples { n: 1, .. })
        ));
    }

    #[test]
    fn non_finite_rows_are_rejected() {
        let mut x = random_rows(10, 3, 4, 0.0);
        x[(3, 1)] = f64::NAN;
        assert!(matches!(
            Gaussian::from_rows(x.view()),
            Err(FadError::NotFinite { .. })
        ));
    }

    #[test]
    fn weighted_union_equals_merging_the_copies() {
        let x = random_rows(120, 6, 8, 1e3);
        let parts: Vec<RunningStats> = [(0, 7), (7, 40), (40, 41), (41, 120)]
            .iter()
            .map(|&(a, b)| RunningStats::from_rows(x.slice(ndarray::s![a..b, ..])))
            .collect();
        let weights = [2u64, 0, 3, 1];
        let mut merged = RunningStats::new(6);
        for (p, w) in parts.iter().zip(weights) {
            for _ in 0..w {
                merged.merge(p);
            }
        }
        let union = RunningStats::weighted_union(&parts, &weights);
        assert_eq!(union.count(), merged.count());
        let (g, h) = (union.gaussian().unwrap(), merged.gaussian().unwrap());
        for i in 0..6 {
            assert!(
                (g.mean[i] - h.mean[i]).abs() < 1e-9,
                "{} vs {}",
                g.mean[i],
                h.mean[i]
            );
            for j in 0..6 {
                let (a, b) = (g.cov[(i, j)], h.cov[(i, j)]);
                assert!((a - b).abs() <= 1e-10 * b.abs().max(1.0), "{a} vs {b}");
                assert_eq!(a, g.cov[(j, i)]);
            }
        }
        assert_eq!(RunningStats::weighted_union(&parts, &[0; 4]).count(), 0);
        // Standardising the statistics equals standardising the rows.
        let (centre, scale) = (
            vec![1e3, 1e3, 0.0, 5.0, -2.0, 1e3],
            vec![2.0, 0.5, 4.0, 1.0, 8.0, 0.25],
        );
        let mut z = RunningStats::from_rows(x.view());
        z.standardize(&centre, &scale);
        let zx = Array2::from_shape_fn(x.dim(), |(r, j)| (x[(r, j)] - centre[j]) / scale[j]);
        let (g, h) = (
            z.gaussian().unwrap(),
            Gaussian::from_rows(zx.view()).unwrap(),
        );
        for i in 0..6 {
            assert!((g.mean[i] - h.mean[i]).abs() < 1e-9);
            for j in 0..6 {
                assert!(
                    (g.cov[(i, j)] - h.cov[(i, j)]).abs() <= 1e-10 * h.cov[(i, j)].abs().max(1.0)
                );
            }
        }
    }
}
