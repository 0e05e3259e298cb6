//! # emobridge-fad
//!
//! Owns the Fréchet audio distance (FAD) between two sets of embeddings:
//!
//! * [`stats`]: streaming first and second moments in `f64` (running mean and co-moment
//!   matrix, merged with Chan's pairwise update), so sharded or larger-than-memory sets give the
//!   same statistics as one pass; covariances use the unbiased `N − 1` normalisation (`np.cov`).
//! * [`frechet`]: the distance itself through the symmetric trace route
//!   (eigendecomposition of Σ₁, then the eigenvalues of Σ₁^½ Σ₂ Σ₁^½), which is never complex and,
//!   after clamping rounding noise, never negative; clamped eigenvalues are counted and reported.
//! * [`symeig`]: eigenvalues only of a symmetric matrix (blocked Householder
//!   tridiagonalisation on GEMM kernels, then root-free QL/QR), the trace term's solver.
//! * [`infinity`]: FAD-∞ as fadtk defines it (FAD at growing sample sizes drawn with
//!   replacement, least-squares line against 1/n, intercept and R²) with a seeded generator.
//! * [`bootstrap`]: percentile bootstrap confidence intervals, resampling rows or whole clips;
//!   with clips, replicates can be assembled from per-clip statistics
//!   ([`bootstrap::bootstrap_frechet_units`], [`RunningStats::weighted_union`]), in parallel.
//! * [`pair`]: [`compare_sets`], one distance between two sets read from files, with FAD-∞
//!   and a bootstrap interval on request (`emobridge fad A B`).
//! * [`io`]: `.npy` matrices (f16/f32/f64), safetensors embeddings (frame-level, layered or
//!   pooled), precomputed statistics (`mu.npy` + `cov.npy`, or fadtk-style `.npz`).
//!   [`io::npy_stats`] reads an [N, D] `.npy` straight into its moments (one read, conversion to
//!   `f64` fused with the column sums, one symmetric product): what `emobridge fad A.npy B.npy`
//!   does when only the distance is asked for.
//!
//! The per-clip embedding cache is read through `emobridge_store::EmbeddingCache`.
//!
//! All linear algebra runs on faer in `f64`.

pub mod bootstrap;
pub mod frechet;
pub mod infinity;
pub mod io;
pub mod pair;
pub mod stats;
pub mod symeig;

use std::path::PathBuf;

pub use bootstrap::{bootstrap_frechet, BootstrapConfig, ConfidenceInterval};
/// faer's thread setting, taken by the `*_in` variants (`Par::Seq` runs a product or a distance
/// on the calling thread, for callers that run many side by side).
pub use faer::Par;
pub use frechet::{frechet_distance, Frechet, FrechetOptions, PreparedGaussian};
pub use infinity::{fad_infinity, FadInfinity, FadInfinityConfig};
/// The array crate of this API (`io::Loaded`, `RunningStats::push_rows`), re-exported.
pub use ndarray;
pub use pair::{compare_arrays, compare_sets, PairConfig, PairReport};
pub use stats::{Gaussian, RunningStats};

/// Why a distance could not be computed or an input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("dimension mismatch: {left} vs {right}")]
    DimensionMismatch { left: usize, right: usize },
    #[error("{what}: at least 2 samples are needed for a covariance, got {n}")]
    TooFewSamples { what: String, n: u64 },
    #[error("{what}: non-finite value (NaN or infinity)")]
    NotFinite { what: String },
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
    #[error("eigendecomposition failed to converge for {what}")]
    Eigen { what: String },
}

pub type Result<T, E = FadError> = std::result::Result<T, E>;
