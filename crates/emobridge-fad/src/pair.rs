//! One distance between two embedding sets (or precomputed statistics) read from files, with
//! FAD-∞ and a bootstrap interval on request: the pipeline behind `emobridge fad A B`.
//!
//! A and B may each be a `.npy` [N, D], a `.safetensors` embedding file, a folder of such files
//! (one clip per file), a folder with `mu.npy` + `cov.npy`, or an `.npz` of statistics; see
//! [`crate::io`]. `FILE.npz:NAME` picks fadtk's `<NAME>.mu` / `<NAME>.cov` inside an archive.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bootstrap::{bootstrap_frechet, BootstrapConfig, BootstrapSet, ConfidenceInterval};
use crate::frechet::{frechet_distance_with, Frechet, FrechetOptions};
use crate::infinity::{fad_infinity, FadInfinity, FadInfinityConfig};
use crate::io::{load, LoadOptions, Loaded, SafetensorsSelect};
use crate::stats::Gaussian;
use crate::{FadError, Result};

/// Settings of [`compare_sets`]; `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PairConfig {
    /// Layer of [layers+1, frames, D] safetensors inputs (default: none, the tensor must be 2-D).
    pub layer: Option<usize>,
    /// Tensor to read from safetensors inputs (default: the only one, else `hidden_states`).
    pub tensor: Option<String>,
    /// Embedding name inside `.npz` statistics, for both inputs (default none).
    pub stats_name: Option<String>,
    /// Pool every file to its mean row (clip-level statistics) instead of using frames
    /// (default false).
    pub pool: bool,
    /// Numerical options of the distance.
    pub options: FrechetOptions,
    /// Also FAD-∞ of B against A (fadtk's estimator); B must hold embeddings (default false).
    pub inf: bool,
    /// Sample sizes of FAD-∞ (default 25).
    pub inf_steps: usize,
    /// Smallest sample size of FAD-∞ (default 500).
    pub inf_min_n: usize,
    /// Bootstrap replicates for a confidence interval (default 0 = none). Files (clips) are
    /// resampled whole when a folder holds several, else rows.
    pub bootstrap: usize,
    /// Coverage of the bootstrap interval (default 0.95).
    pub confidence: f64,
    /// Seed of the FAD-∞ and bootstrap draws (default 0).
    pub seed: u64,
}

impl Default for PairConfig {
    fn default() -> Self {
        let inf = FadInfinityConfig::default();
        PairConfig {
            layer: None,
            tensor: None,
            stats_name: None,
            pool: false,
            options: FrechetOptions::default(),
            inf: false,
            inf_steps: inf.steps,
            inf_min_n: inf.min_n,
            bootstrap: 0,
            confidence: BootstrapConfig::default().confidence,
            seed: 0,
        }
    }
}

/// The distance between A and B, with what was asked for besides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairReport {
    pub a: PathBuf,
    pub b: PathBuf,
    /// The distance (= `details.distance`).
    pub fad: f64,
    pub details: Frechet,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fad_inf: Option<FadInfinity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<ConfidenceInterval>,
}

impl PairReport {
    /// The distance on one line, then FAD-∞ and the bootstrap interval when computed (each with
    /// its seed).
    pub fn summary(&self) -> String {
        let mut text = format!("{}", self.fad);
        if let Some(inf) = &self.fad_inf {
            text += &format!(
                "\nFAD-inf {} (slope {}, R² {:.6}, {} points, seed {})",
                inf.value,
                inf.slope,
                inf.r2,
                inf.points.len(),
                inf.seed
            );
        }
        if let Some(ci) = &self.bootstrap {
            text += &format!(
                "\n{:.0}% bootstrap interval [{}, {}] ({} replicates, seed {})",
                ci.confidence * 100.0,
                ci.lower,
                ci.upper,
                ci.replicates,
                ci.seed
            );
        }
        text
    }
}

/// Reads A and B and measures the Fréchet distance between them (A is the baseline, B the
/// evaluation set), plus FAD-∞ and a bootstrap interval when `config` asks for them.
pub fn compare_sets(a: &Path, b: &Path, config: &PairConfig) -> Result<PairReport> {
    if !config.inf && config.bootstrap == 0 && !config.pool && is_npy_file(a) && is_npy_file(b) {
        // Only the moments are needed: read each matrix once into its statistics, the two
        // files side by side.
        let (sa, sb) = rayon::join(|| crate::io::npy_stats(a), || crate::io::npy_stats(b));
        let ga = sa?.gaussian()?;
        let gb = sb?.gaussian()?;
        check_dims(a, b, &ga, &gb)?;
        let details = frechet_distance_with(&ga, &gb, config.options)?;
        return Ok(PairReport {
            a: a.to_path_buf(),
            b: b.to_path_buf(),
            fad: details.distance,
            details,
            fad_inf: None,
            bootstrap: None,
        });
    }
    let (path_a, loaded_a) = read_input(a, config)?;
    let (path_b, loaded_b) = read_input(b, config)?;
    compare_loaded(path_a, loaded_a, path_b, loaded_b, config)
}

/// [`compare_sets`] on embedding rows held in memory ([N, D] each, e.g. numpy arrays from the
/// Python package): A is the baseline, B the evaluation set; errors name them `label_a` and
/// `label_b`. The bootstrap resamples rows.
pub fn compare_arrays(
    a: (&str, ndarray::Array2<f64>),
    b: (&str, ndarray::Array2<f64>),
    config: &PairConfig,
) -> Result<PairReport> {
    let in_memory = |rows: ndarray::Array2<f64>| {
        let n = rows.nrows();
        Loaded::Rows {
            rows,
            units: vec![0..n],
            files: Vec::new(),
        }
    };
    compare_loaded(
        PathBuf::from(a.0),
        in_memory(a.1),
        PathBuf::from(b.0),
        in_memory(b.1),
        config,
    )
}

fn compare_loaded(
    path_a: PathBuf,
    loaded_a: Loaded,
    path_b: PathBuf,
    loaded_b: Loaded,
    config: &PairConfig,
) -> Result<PairReport> {
    let (ga, gb) = (gaussian_of(&loaded_a)?, gaussian_of(&loaded_b)?);
    check_dims(&path_a, &path_b, &ga, &gb)?;
    let details = frechet_distance_with(&ga, &gb, config.options)?;
    let fad_inf = if config.inf {
        let Loaded::Rows { rows, .. } = &loaded_b else {
            return Err(FadError::Invalid {
                what: path_b.display().to_string(),
                message: "FAD-∞ needs embeddings for B, not precomputed statistics".into(),
            });
        };
        let cfg = FadInfinityConfig {
            steps: config.inf_steps,
            min_n: config.inf_min_n,
            seed: config.seed,
            options: config.options,
        };
        Some(fad_infinity(&ga, rows.view(), &cfg)?)
    } else {
        None
    };
    let bootstrap = if config.bootstrap > 0 {
        let (
            Loaded::Rows {
                rows: ra,
                units: ua,
                ..
            },
            Loaded::Rows {
                rows: rb,
                units: ub,
                ..
            },
        ) = (&loaded_a, &loaded_b)
        else {
            return Err(FadError::Invalid {
                what: "bootstrap".into(),
                message: "needs embeddings for both inputs, not precomputed statistics".into(),
            });
        };
        let cfg = BootstrapConfig {
            replicates: config.bootstrap,
            confidence: config.confidence,
            seed: config.seed,
            options: config.options,
        };
        Some(bootstrap_frechet(
            &resample_set(ra, ua),
            &resample_set(rb, ub),
            &cfg,
        )?)
    } else {
        None
    };
    Ok(PairReport {
        a: path_a,
        b: path_b,
        fad: details.distance,
        details,
        fad_inf,
        bootstrap,
    })
}

fn is_npy_file(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

fn check_dims(a: &Path, b: &Path, ga: &Gaussian, gb: &Gaussian) -> Result<()> {
    if ga.dim() != gb.dim() {
        return Err(FadError::Invalid {
            what: format!("{} vs {}", a.display(), b.display()),
            message: format!(
                "{}-dimensional embeddings against {}-dimensional ones",
                ga.dim(),
                gb.dim()
            ),
        });
    }
    Ok(())
}

/// Reads one input; `FILE.npz:NAME` selects an embedding inside fadtk-style statistics.
fn read_input(path: &Path, config: &PairConfig) -> Result<(PathBuf, Loaded)> {
    let (path, name) = split_stats_name(path);
    let opts = LoadOptions {
        select: SafetensorsSelect {
            tensor: config.tensor.clone(),
            layer: config.layer,
        },
        stats_name: name.or_else(|| config.stats_name.clone()),
        pool: config.pool,
    };
    let loaded = load(&path, &opts)?;
    Ok((path, loaded))
}

/// `FILE.npz:NAME` → (FILE.npz, NAME) when the path as given does not exist.
pub fn split_stats_name(path: &Path) -> (PathBuf, Option<String>) {
    let text = path.to_string_lossy();
    if !path.exists() {
        if let Some((file, name)) = text.rsplit_once(':') {
            if file.to_ascii_lowercase().ends_with(".npz") {
                return (PathBuf::from(file), Some(name.to_string()));
            }
        }
    }
    (path.to_path_buf(), None)
}

fn gaussian_of(loaded: &Loaded) -> Result<Gaussian> {
    match loaded {
        Loaded::Stats(g) => Ok(g.clone()),
        Loaded::Rows { rows, .. } => Gaussian::from_rows(rows.view()),
    }
}

/// Rows resampled by file (clip) when there are several files, else row by row.
fn resample_set<'a>(
    rows: &'a ndarray::Array2<f64>,
    units: &[Range<usize>],
) -> BootstrapSet<'a, f64> {
    BootstrapSet {
        rows: rows.view(),
        units: (units.len() > 1).then(|| units.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npz_name_suffix_is_split_only_for_missing_npz_paths() {
        assert_eq!(
            split_stats_name(Path::new("stats/fma_pop.npz:MERT-v1-95M-1")),
            (
                PathBuf::from("stats/fma_pop.npz"),
                Some("MERT-v1-95M-1".into())
            )
        );
        assert_eq!(
            split_stats_name(Path::new("a.npy")),
            (PathBuf::from("a.npy"), None)
        );
    }

    #[test]
    fn two_npy_sets_give_the_distance_and_its_interval() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, shift: f64| {
            let rows = ndarray::Array2::from_shape_fn((40, 3), |(i, j)| {
                ((i * 7 + j * 3) % 11) as f64 / 5.0 + shift * (j == 0) as u8 as f64
            });
            let path = dir.path().join(name);
            ndarray_npy::write_npy(&path, &rows).unwrap();
            (path, rows)
        };
        let (pa, ra) = write("a.npy", 0.0);
        let (pb, rb) = write("b.npy", 1.5);
        let config = PairConfig {
            bootstrap: 20,
            ..PairConfig::default()
        };
        let report = compare_sets(&pa, &pb, &config).unwrap();
        // Same covariance, means 1.5 apart in one dimension: the distance is 1.5² exactly
        // up to rounding, whatever the code computes for the trace term.
        let want = crate::frechet_distance(
            &Gaussian::from_rows(ra.view()).unwrap(),
            &Gaussian::from_rows(rb.view()).unwrap(),
        )
        .unwrap()
        .distance;
        assert!((want - 2.25).abs() < 1e-9, "{want}");
        assert!((report.fad - want).abs() < 1e-12);
        let ci = report.bootstrap.clone().unwrap();
        assert!(ci.lower <= ci.upper);
        assert!(report.fad_inf.is_none());
        let json = serde_json::to_value(&report).unwrap();
        assert!(json.get("fad_inf").is_none() && json["details"]["distance"].is_number());
        // Different widths are refused with both names.
        let narrow = dir.path().join("c.npy");
        ndarray_npy::write_npy(&narrow, &ndarray::Array2::<f64>::zeros((5, 2))).unwrap();
        let err = compare_sets(&pa, &narrow, &config).unwrap_err().to_string();
        assert!(err.contains("a.npy") && err.contains("c.npy"), "{err}");
    }

    #[test]
    fn the_moments_only_path_equals_the_rows_path() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, seed: usize| {
            let rows = ndarray::Array2::from_shape_fn((60, 4), |(i, j)| {
                (((i * 31 + j * 17 + seed) % 23) as f32) / 7.0
                    + (i % 3) as f32 * j as f32
                    + (seed * j) as f32 * 0.2
            });
            let path = dir.path().join(name);
            ndarray_npy::write_npy(&path, &rows).unwrap();
            path
        };
        let (pa, pb) = (write("a.npy", 1), write("b.npy", 5));
        let fast = compare_sets(&pa, &pb, &PairConfig::default()).unwrap();
        let (_, la) = read_input(&pa, &PairConfig::default()).unwrap();
        let (_, lb) = read_input(&pb, &PairConfig::default()).unwrap();
        let slow = crate::frechet_distance(&gaussian_of(&la).unwrap(), &gaussian_of(&lb).unwrap())
            .unwrap()
            .distance;
        assert!(slow > 0.1);
        assert!(
            (fast.fad - slow).abs() <= 1e-12 * slow,
            "{} vs {slow}",
            fast.fad
        );
        assert_eq!(fast.details.n_a, Some(60));
    }
}
