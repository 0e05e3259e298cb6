//! The evaluation protocol the studies share: group-independent (speaker / performer / piece)
//! k-fold splits over a subset of a study's rows, and study configs read from TOML files.
//!
//! The separability probe, the continuous study and the fine-tuning study all cross-validate the
//! same way: take the rows of one domain, assign each row's group to one of
//! `k = min(configured folds, distinct groups)` folds (balanced by row count, seeded), and map
//! each fold's local (train, test) indices back to the study's row numbers.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use emobridge_corpus::folds::{FoldError, Folds};
use serde::de::DeserializeOwned;

/// How many folds a set of rows supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoldPlan {
    /// Distinct groups among the rows.
    pub groups: usize,
    /// Folds actually used: the configured number, capped at one group per fold.
    pub k: usize,
}

impl FoldPlan {
    /// `wanted` folds over rows whose groups are `groups` (one entry per row).
    pub fn new<S: AsRef<str>>(groups: &[S], wanted: usize) -> FoldPlan {
        let distinct = groups
            .iter()
            .map(|g| g.as_ref())
            .collect::<BTreeSet<&str>>()
            .len();
        FoldPlan {
            groups: distinct,
            k: wanted.min(distinct),
        }
    }

    /// Fewer folds than configured (a note for `run.json`).
    pub fn is_capped(&self, wanted: usize) -> bool {
        self.k < wanted
    }

    /// At least two folds, so a cross-validated score exists.
    pub fn is_usable(&self) -> bool {
        self.k >= 2
    }
}

/// Group k-fold over rows whose groups are `groups` with `min(wanted, distinct groups)` folds;
/// fewer than two distinct groups is [`FoldError::TooFewGroups`].
pub fn group_folds<S: AsRef<str>>(
    groups: &[S],
    wanted: usize,
    seed: u64,
) -> Result<Folds, FoldError> {
    let plan = FoldPlan::new(groups, wanted);
    Folds::group_kfold(groups, plan.k, seed)
}

/// Each fold's (train, test) as study row numbers: `folds` was made over `rows` (item `i` of
/// the folds is row `rows[i]`).
pub fn row_splits(folds: &Folds, rows: &[usize]) -> Vec<(Vec<usize>, Vec<usize>)> {
    assert_eq!(
        folds.assignment.len(),
        rows.len(),
        "folds were made over a different row set"
    );
    (0..folds.k)
        .map(|f| {
            let (train, test) = folds.split(f);
            (
                train.into_iter().map(|i| rows[i]).collect(),
                test.into_iter().map(|i| rows[i]).collect(),
            )
        })
        .collect()
}

/// Why a config file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// Reads a study config from TOML: keys it omits keep their defaults (the struct's
/// `#[serde(default)]`), unknown keys are an error naming them.
pub fn read_toml_config<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigFileError::Parse {
        path: path.to_path_buf(),
        message: e.message().trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_caps_folds_at_the_group_count() {
        let groups = ["a", "a", "b", "c", "c"];
        assert_eq!(FoldPlan::new(&groups, 4), FoldPlan { groups: 3, k: 3 });
        assert!(FoldPlan::new(&groups, 4).is_capped(4));
        assert!(!FoldPlan::new(&groups, 2).is_capped(2));
        assert!(!FoldPlan::new(&["x", "x"], 4).is_usable());
    }

    #[test]
    fn row_splits_map_back_to_rows_and_keep_groups_apart() {
        // Rows 10..16 of a larger table, three speakers.
        let rows = [10, 11, 12, 13, 14, 15];
        let groups = ["s1", "s2", "s1", "s3", "s2", "s3"];
        let folds = group_folds(&groups, 5, 3).unwrap();
        assert_eq!(folds.k, 3);
        let splits = row_splits(&folds, &rows);
        let mut tested = Vec::new();
        for (train, test) in &splits {
            assert_eq!(train.len() + test.len(), rows.len());
            let group_of = |r: &usize| groups[rows.iter().position(|x| x == r).unwrap()];
            let test_groups: BTreeSet<&str> = test.iter().map(group_of).collect();
            assert!(train.iter().all(|r| !test_groups.contains(group_of(r))));
            tested.extend(test.iter().copied());
        }
        tested.sort();
        assert_eq!(tested, rows);
    }

    #[test]
    fn one_group_is_an_error() {
        assert!(matches!(
            group_folds(&["a", "a"], 4, 0),
            Err(FoldError::TooFewGroups { k: 1, groups: 1 })
        ));
    }

    #[test]
    fn config_files_name_the_file_and_the_unknown_key() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields, default)]
        struct C {
            folds: usize,
        }
        impl Default for C {
            fn default() -> Self {
                C { folds: 4 }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "").unwrap();
        assert_eq!(read_toml_config::<C>(&path).unwrap().folds, 4);
        std::fs::write(&path, "fold = 2\n").unwrap();
        let err = read_toml_config::<C>(&path).unwrap_err().to_string();
        assert!(err.starts_with(&path.display().to_string()), "{err}");
        assert!(err.contains("fold"), "{err}");
        assert!(matches!(
            read_toml_config::<C>(&dir.path().join("missing.toml")),
            Err(ConfigFileError::Read { .. })
        ));
    }
}
