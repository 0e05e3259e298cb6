//! # emobridge-learn
//!
//! Owns what is learned on top of the cached representations and how it is scored: feature
//! standardisation fitted on training data (or per group: domain, speaker, corpus), the
//! multinomial logistic-regression probe (the linear probe of layer-wise studies, with
//! scikit-learn's objective and L2 convention) and its L-BFGS solver, ridge regression, a small
//! MLP (classifier or regressor, Adam, dropout, early stopping) that can take a learned softmax
//! weighting of all layers as input (SUPERB's featurizer), and the metrics of both papers — weighted and unweighted accuracy, macro-F1 and
//! the confusion matrix for categorical emotion; Pearson r, concordance correlation (CCC) and RMSE
//! for arousal and valence; and the time-continuous models of Coutinho & Schuller (2017):
//! stacked (bidirectional) LSTM regressors with hand-written back-propagation through time
//! ([`lstm`]), their training with noise, early stopping and restart ensembles ([`seqtrain`]),
//! SGD/Adam ([`optim`]) and the denoising autoencoder ([`dae`]).
//!
//! Every estimator is deterministic and works in f64. Parity with scikit-learn and scipy is
//! tested against committed fixtures made by `tools/fixtures/learn_sklearn.py`.
//!
//! ```
//! use emobridge_learn::{LogisticRegression, LogisticConfig, Standardizer, metrics};
//! // Two well separated classes in one feature.
//! let x = vec![-2.0, -1.5, -1.0, 1.0, 1.5, 2.0];
//! let y = vec![0, 0, 0, 1, 1, 1];
//! let scaler = Standardizer::fit(&x, 6, 1)?;
//! let xs = scaler.transform(&x, 6)?;
//! let model = LogisticRegression::fit(&xs, 6, 1, &y, 2, &LogisticConfig::default())?;
//! let pred = model.predict(&xs, 6)?;
//! assert_eq!(metrics::classification(&y, &pred, 2)?.weighted_accuracy, 1.0);
//! # Ok::<(), emobridge_learn::LearnError>(())
//! ```

pub mod dae;
pub mod kernels;
pub mod lbfgs;
pub mod linalg;
pub mod logistic;
pub mod lstm;
pub mod metrics;
pub mod mlp;
pub mod optim;
pub mod ridge;
pub mod scale;
pub mod seqtrain;

pub use logistic::{LogisticConfig, LogisticRegression};
pub use mlp::{Mlp, MlpConfig, MlpTask};
pub use ridge::Ridge;
pub use scale::{GroupStandardizer, Standardizer};

/// scikit-learn's `class_weight="balanced"` as per-row weights: n / (classes · nᶜ) for a row of
/// class c, over the classes present in `y`.
pub fn balanced_weights(y: &[usize]) -> Vec<f64> {
    let mut counts = std::collections::BTreeMap::<usize, usize>::new();
    for &l in y {
        *counts.entry(l).or_default() += 1;
    }
    let (n, k) = (y.len() as f64, counts.len() as f64);
    y.iter().map(|l| n / (k * counts[l] as f64)).collect()
}

/// Why a model could not be fitted or scored: one variant per cause, so a caller can tell them
/// apart without reading the message; the message names the offending input.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    /// A matrix whose value count is not rows × columns.
    #[error("input: {what}: {values} values for {rows} rows x {cols} columns")]
    MatrixSize {
        what: String,
        values: usize,
        rows: usize,
        cols: usize,
    },
    /// A NaN or infinite cell of a matrix.
    #[error("input: {what}: non-finite value {value} at row {row}, column {col}")]
    NonFiniteCell {
        what: String,
        value: f64,
        row: usize,
        col: usize,
    },
    /// A NaN or infinite value elsewhere (targets, predictions, sequences).
    #[error("input: {0}")]
    NonFinite(String),
    /// Label and row counts differ.
    #[error("input: {labels} labels for {rows} rows")]
    LabelCount { labels: usize, rows: usize },
    /// A class index at or above the number of classes.
    #[error("input: label {label} outside 0..{n_labels}")]
    LabelOutOfRange { label: usize, n_labels: usize },
    /// Fewer than two classes among the training labels.
    #[error("input: training labels hold {classes} class(es); a classifier needs at least 2")]
    TooFewClasses { classes: usize },
    /// Sample weights of the wrong count, negative or non-finite.
    #[error("input: sample weights: need {rows} finite non-negative values")]
    SampleWeights { rows: usize },
    /// Sample weights that sum to zero.
    #[error("input: sample weights sum to zero")]
    ZeroSampleWeights,
    /// Group names and row counts differ.
    #[error("input: {groups} group names for {rows} rows")]
    GroupCount { groups: usize, rows: usize },
    /// A group that the standardizer was not fitted on.
    #[error("input: group `{group}` was not fitted")]
    UnknownGroup { group: String },
    /// No (or too few) rows, windows or sequences to fit or score.
    #[error("input: {0}")]
    TooLittleData(String),
    /// Sizes that do not fit together (inputs, parameters, gradients, sequences).
    #[error("input: {0}")]
    Shape(String),
    /// A setting outside its stated range.
    #[error("input: {0}")]
    Config(String),
    /// Weights that cannot be written or read (safetensors).
    #[error("input: {0}")]
    Weights(String),
    /// A safetensors file without a tensor the model needs.
    #[error("input: weights: no tensor `{name}`")]
    MissingTensor { name: String },
    /// Training diverged: the loss became non-finite.
    #[error("solver: {0}")]
    Diverged(String),
    /// The objective is not finite at the starting point.
    #[error("solver: objective is {value} at the start")]
    BadStart { value: f64 },
    /// A Cholesky factorisation met a non-positive pivot.
    #[error("solver: matrix not positive definite at pivot {pivot} ({value})")]
    NotPositiveDefinite { pivot: usize, value: f64 },
    /// The ridge normal equations could not be solved.
    /// The ridge normal equations could not be solved (`cause`: the factorisation's error,
    /// part of this message rather than a separate source, so a chain prints it once).
    #[error("solver: ridge system is singular with alpha {alpha} (use alpha > 0): {cause}")]
    Singular { alpha: f64, cause: Box<LearnError> },
}

pub type Result<T, E = LearnError> = std::result::Result<T, E>;

/// Checks a row-major matrix: size and finiteness (naming the first bad cell).
pub(crate) fn check_matrix(x: &[f64], rows: usize, cols: usize, what: &str) -> Result<()> {
    if x.len() != rows * cols {
        return Err(LearnError::MatrixSize {
            what: what.to_string(),
            values: x.len(),
            rows,
            cols,
        });
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(LearnError::NonFiniteCell {
            what: what.to_string(),
            value: x[i],
            row: i / cols.max(1),
            col: i % cols.max(1),
        });
    }
    Ok(())
}
