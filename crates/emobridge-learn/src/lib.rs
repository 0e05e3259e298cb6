//! # emobridge-learn
//!
//! Owns what is learned on top of the cached representations and how it is scored: feature
//! standardisation fitted on training data (or per group: domain, speaker, corpus), the
//! multinomial logistic-regression probe (the linear probe of layer-wise studies, with
//! scikit-learn's objective and L2 convention) and its L-BFGS solver, ridge regression, a small
//! MLP (classifier or regressor, Adam, dropout, early stopping) that can take a learned softmax
//! weighting of all layers as input (SUPERB's featurizer), and the metrics of both papers — weighted and unweighted accuracy, macro-F1 and
//! the confusion matrix for categorical emotion; Pearson r, concordance correlation (CCC) and RMSE
//! for arousal and valence.
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

pub mod lbfgs;
pub mod linalg;
pub mod logistic;
pub mod metrics;
pub mod mlp;
pub mod ridge;
pub mod scale;

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

/// Why a model could not be fitted or scored; the message names the offending input.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    #[error("input: {0}")]
    Input(String),
    #[error("solver: {0}")]
    Solver(String),
}

pub type Result<T, E = LearnError> = std::result::Result<T, E>;

/// Checks a row-major matrix: size and finiteness (naming the first bad cell).
pub(crate) fn check_matrix(x: &[f64], rows: usize, cols: usize, what: &str) -> Result<()> {
    if x.len() != rows * cols {
        return Err(LearnError::Input(format!(
            "{what}: {} values for {rows} rows x {cols} columns",
            x.len()
        )));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(LearnError::Input(format!(
            "{what}: non-finite value {} at row {}, column {}",
            x[i],
            i / cols.max(1),
            i % cols.max(1)
        )));
    }
    Ok(())
}
