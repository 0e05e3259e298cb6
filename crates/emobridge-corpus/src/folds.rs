//! Speaker/actor-independent folds.
//!
//! A *group* is whatever must never straddle train and test: an actor, a performer, a song.
//! * [`Folds::group_kfold`]: k folds, groups assigned greedily (largest first) to the fold with
//!   the fewest clips so far — the scheme of scikit-learn's `GroupKFold` — with ties among
//!   equal-sized groups broken by a seeded shuffle, so the split is deterministic for a seed.
//! * [`Folds::leave_one_group_out`]: one fold per group.
//! * [`dev_split`]: a held-out dev share inside a training fold, again by whole groups.
//!
//! Fold files are CSV `id,fold` (fold numbers from 0), readable by pandas or any tool.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Why folds could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum FoldError {
    #[error(
        "cannot make {k} group folds from {groups} group(s): need at least k groups and k ≥ 2"
    )]
    TooFewGroups { k: usize, groups: usize },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

/// A fold number for every item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folds {
    /// `assignment[i]` is the test fold of item `i`.
    pub assignment: Vec<usize>,
    /// Number of folds.
    pub k: usize,
}

impl Folds {
    /// Group k-fold balanced by clip count; deterministic for `seed`.
    pub fn group_kfold<S: AsRef<str>>(
        groups: &[S],
        k: usize,
        seed: u64,
    ) -> Result<Folds, FoldError> {
        let sizes = group_sizes(groups);
        if k < 2 || sizes.len() < k {
            return Err(FoldError::TooFewGroups {
                k,
                groups: sizes.len(),
            });
        }
        let mut order: Vec<(&str, usize)> = sizes.iter().map(|(g, n)| (*g, *n)).collect();
        // Shuffle first, then a stable sort by size: equal-sized groups keep the seeded order.
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        order.sort_by_key(|g| std::cmp::Reverse(g.1));
        let mut load = vec![0usize; k];
        let mut fold_of: HashMap<&str, usize> = HashMap::new();
        for (g, n) in order {
            let f = (0..k).min_by_key(|&f| (load[f], f)).expect("k ≥ 2");
            load[f] += n;
            fold_of.insert(g, f);
        }
        Ok(Folds {
            assignment: groups.iter().map(|g| fold_of[g.as_ref()]).collect(),
            k,
        })
    }

    /// Folds from an explicit group → fold table (e.g. a published protocol); unknown groups are an error.
    pub fn from_group_table<S: AsRef<str>>(
        groups: &[S],
        table: &BTreeMap<String, usize>,
    ) -> Result<Folds, FoldError> {
        let mut assignment = Vec::with_capacity(groups.len());
        for g in groups {
            let f = table
                .get(g.as_ref())
                .copied()
                .ok_or_else(|| FoldError::File {
                    path: PathBuf::from("<fold table>"),
                    message: format!("group `{}` has no fold", g.as_ref()),
                })?;
            assignment.push(f);
        }
        let k = table.values().copied().max().map_or(0, |m| m + 1);
        Ok(Folds { assignment, k })
    }

    /// One fold per group, numbered in sorted group order.
    pub fn leave_one_group_out<S: AsRef<str>>(groups: &[S]) -> Folds {
        let sizes = group_sizes(groups);
        let index: HashMap<&str, usize> = sizes.keys().enumerate().map(|(i, g)| (*g, i)).collect();
        Folds {
            assignment: groups.iter().map(|g| index[g.as_ref()]).collect(),
            k: sizes.len(),
        }
    }

    /// (train, test) item indices of fold `fold`.
    pub fn split(&self, fold: usize) -> (Vec<usize>, Vec<usize>) {
        let (test, train): (Vec<usize>, Vec<usize>) =
            (0..self.assignment.len()).partition(|&i| self.assignment[i] == fold);
        (train, test)
    }

    /// Writes `id,fold` rows.
    pub fn write_csv<S: AsRef<str>>(
        &self,
        path: impl AsRef<Path>,
        ids: &[S],
    ) -> Result<(), FoldError> {
        let path = path.as_ref();
        let err = |m: String| FoldError::File {
            path: path.to_path_buf(),
            message: m,
        };
        let mut w = csv::Writer::from_path(path).map_err(|e| err(e.to_string()))?;
        w.write_record(["id", "fold"])
            .map_err(|e| err(e.to_string()))?;
        for (id, f) in ids.iter().zip(&self.assignment) {
            w.write_record([id.as_ref(), &f.to_string()])
                .map_err(|e| err(e.to_string()))?;
        }
        w.flush().map_err(|e| err(e.to_string()))
    }

    /// Reads an `id,fold` file and returns the folds of `ids` in that order.
    pub fn read_csv<S: AsRef<str>>(path: impl AsRef<Path>, ids: &[S]) -> Result<Folds, FoldError> {
        let path = path.as_ref();
        let err = |m: String| FoldError::File {
            path: path.to_path_buf(),
            message: m,
        };
        let mut r = csv::Reader::from_path(path).map_err(|e| err(e.to_string()))?;
        let mut table = HashMap::new();
        for (i, row) in r.records().enumerate() {
            let row = row.map_err(|e| err(e.to_string()))?;
            let fold: usize = row
                .get(1)
                .unwrap_or("")
                .trim()
                .parse()
                .map_err(|_| err(format!("line {}: fold is not a number", i + 2)))?;
            table.insert(row.get(0).unwrap_or("").to_string(), fold);
        }
        let mut assignment = Vec::with_capacity(ids.len());
        for id in ids {
            assignment.push(
                *table
                    .get(id.as_ref())
                    .ok_or_else(|| err(format!("no fold for id `{}`", id.as_ref())))?,
            );
        }
        let k = assignment.iter().copied().max().map_or(0, |m| m + 1);
        Ok(Folds { assignment, k })
    }
}

/// Splits training items into (train, dev) by whole groups, holding out about `share` of the clips.
///
/// Groups are taken in a seeded random order until the dev set reaches the share; at least one
/// group stays in train and, when there are two or more groups, one goes to dev.
pub fn dev_split<S: AsRef<str>>(
    train: &[usize],
    groups: &[S],
    share: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let members: Vec<&str> = train.iter().map(|&i| groups[i].as_ref()).collect();
    let sizes = group_sizes(&members);
    let mut names: Vec<&str> = sizes.keys().copied().collect();
    names.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x9E37_79B9_7F4A_7C15));
    let target = (share.clamp(0.0, 1.0) * train.len() as f64).round() as usize;
    let mut dev_groups = Vec::new();
    let mut taken = 0;
    for g in names.iter().take(names.len().saturating_sub(1)) {
        if taken >= target && !(dev_groups.is_empty() && share > 0.0) {
            break;
        }
        taken += sizes[g];
        dev_groups.push(*g);
    }
    train
        .iter()
        .partition(|&&i| !dev_groups.contains(&groups[i].as_ref()))
}

fn group_sizes<S: AsRef<str>>(groups: &[S]) -> BTreeMap<&str, usize> {
    let mut m = BTreeMap::new();
    for g in groups {
        *m.entry(g.as_ref()).or_insert(0) += 1;
    }
    m
}

/// The 4 actor folds of the Edinburgh group's RAVDESS protocol (github.com/yc-li20/temporary,
/// `ravdess_process.py`), actor → fold.
pub fn ravdess_actor_folds() -> BTreeMap<String, usize> {
    let folds: [&[u32]; 4] = [
        &[2, 8, 10, 16, 18, 24],
        &[1, 3, 9, 11, 19, 23],
        &[4, 6, 12, 13, 20, 21],
        &[5, 7, 14, 15, 17, 22],
    ];
    let mut m = BTreeMap::new();
    for (f, actors) in folds.iter().enumerate() {
        for a in *actors {
            m.insert(format!("{a:02}"), f);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups() -> Vec<String> {
        // 13 groups of uneven size (3 × 20, 10 × 14), 200 items, interleaved.
        (0..200)
            .map(|i| {
                if i % 10 < 3 {
                    format!("big{}", i % 10)
                } else {
                    format!("g{}", (i / 10 + i) % 10)
                }
            })
            .collect()
    }

    fn assert_group_independent(f: &Folds, groups: &[String]) {
        for fold in 0..f.k {
            let (train, test) = f.split(fold);
            assert!(!test.is_empty(), "fold {fold} empty");
            for &t in &test {
                assert!(
                    train.iter().all(|&r| groups[r] != groups[t]),
                    "group {} on both sides of fold {fold}",
                    groups[t]
                );
            }
        }
    }

    #[test]
    fn group_kfold_never_leaks_and_balances() {
        let g = groups();
        for seed in 0..5 {
            let f = Folds::group_kfold(&g, 4, seed).unwrap();
            assert_group_independent(&f, &g);
            let counts: Vec<usize> = (0..4)
                .map(|k| f.assignment.iter().filter(|&&a| a == k).count())
                .collect();
            let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(hi - lo <= 30, "unbalanced {counts:?}");
            assert_eq!(
                f,
                Folds::group_kfold(&g, 4, seed).unwrap(),
                "not deterministic"
            );
        }
        assert!(Folds::group_kfold(&g[..3], 4, 0).is_err());
    }

    #[test]
    fn logo_and_dev_split_keep_groups_whole() {
        let g = groups();
        let f = Folds::leave_one_group_out(&g);
        assert_eq!(f.k, 13);
        assert_group_independent(&f, &g);
        let (train, _) = f.split(0);
        let (tr, dev) = dev_split(&train, &g, 0.2, 7);
        assert!(!dev.is_empty() && !tr.is_empty());
        assert_eq!(tr.len() + dev.len(), train.len());
        for &d in &dev {
            assert!(tr.iter().all(|&t| g[t] != g[d]));
        }
        let share = dev.len() as f64 / train.len() as f64;
        assert!((0.1..0.45).contains(&share), "dev share {share}");
        assert_eq!((tr.clone(), dev.clone()), dev_split(&train, &g, 0.2, 7));
    }

    #[test]
    fn fold_file_round_trips() {
        let g = groups();
        let ids: Vec<String> = (0..g.len()).map(|i| format!("clip{i}")).collect();
        let f = Folds::group_kfold(&g, 5, 1).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("folds.csv");
        f.write_csv(&p, &ids).unwrap();
        assert_eq!(Folds::read_csv(&p, &ids).unwrap(), f);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("id,fold\nclip0,"));
    }

    #[test]
    fn ravdess_protocol_covers_24_actors_in_4_folds() {
        let t = ravdess_actor_folds();
        assert_eq!(t.len(), 24);
        for k in 0..4 {
            assert_eq!(t.values().filter(|&&f| f == k).count(), 6);
        }
    }
}
