//! Settings of the FAD study and their validation.

use super::*;

/// What one sample is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum StatisticsLevel {
    /// Every frame of every clip is a sample (fadtk's convention).
    #[default]
    Frames,
    /// One sample per clip: the mean over its frames.
    ClipMeans,
}

/// How group sizes are matched before computing distances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SampleMatching {
    /// Subsample every group of a family to its smallest group's size.
    #[default]
    Equal,
    /// Subsample every group to this many samples (smaller groups keep all theirs).
    Fixed(usize),
    /// Use every sample.
    Off,
}

impl std::str::FromStr for SampleMatching {
    type Err = String;

    /// `equal`, `off` (or `none`), or a sample count.
    fn from_str(spec: &str) -> Result<Self, String> {
        Ok(match spec.trim() {
            "equal" => SampleMatching::Equal,
            "off" | "none" => SampleMatching::Off,
            n => SampleMatching::Fixed(
                n.parse()
                    .map_err(|_| format!("`{n}`: expected equal, off or a sample count"))?,
            ),
        })
    }
}

impl std::fmt::Display for SampleMatching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SampleMatching::Equal => f.write_str("equal"),
            SampleMatching::Off => f.write_str("off"),
            SampleMatching::Fixed(n) => write!(f, "{n}"),
        }
    }
}

/// Settings of the FAD study; `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FadStudyConfig {
    /// Frames (default) or clip means.
    pub level: StatisticsLevel,
    /// Hidden-state indices to analyse (0 = input to the first transformer layer); `None` (default)
    /// means all states in the cache.
    pub layers: Option<Vec<usize>>,
    /// Sample-size matching. Default `Equal`.
    pub matching: SampleMatching,
    /// Groups with fewer samples than this (after reading) are left out. Default 2.
    pub min_samples: usize,
    /// Only clips of these corpora (empty = all, the default).
    pub corpora: Vec<String>,
    /// Bootstrap replicates for the speech-vs-music intervals, resampling whole clips; 0 (default)
    /// turns intervals off.
    pub bootstrap: usize,
    /// Coverage of the bootstrap intervals. Default 0.95.
    pub confidence: f64,
    /// Seed of the subsampling and the bootstrap. Default 0.
    pub seed: u64,
    /// Numerical options of the distance.
    pub options: FrechetOptions,
    /// Draw heatmaps and the per-layer chart. Default true.
    pub plots: bool,
    /// Z-score every dimension by the pooled mean and standard deviation of all selected
    /// emotion-labelled samples of the layer (both domains) before measuring distances.
    /// Needed for hand-crafted descriptors, whose units differ by orders of magnitude (formant
    /// bandwidths in Hz next to log energies) so raw FAD measures mostly the widest column.
    /// The transform is the same diagonal map for every group, applied to each Gaussian
    /// (μ → D⁻¹(μ − m), Σ → D⁻¹ΣD⁻¹), so it is exact. Default false (SSL embeddings are
    /// compared as they are, as fadtk does).
    pub standardize: bool,
    /// Stop at the first clip whose cache entry does not read or fit (`--strict`) instead of
    /// leaving it out. Default false.
    #[serde(default)]
    pub strict: bool,
}

impl Default for FadStudyConfig {
    fn default() -> Self {
        FadStudyConfig {
            level: StatisticsLevel::Frames,
            layers: None,
            matching: SampleMatching::Equal,
            min_samples: 2,
            corpora: Vec::new(),
            bootstrap: 0,
            confidence: 0.95,
            seed: 0,
            options: FrechetOptions::default(),
            plots: true,
            standardize: false,
            strict: false,
        }
    }
}

pub(super) fn validate(config: &FadStudyConfig) -> Result<(), FadStudyError> {
    if config.min_samples < 2 {
        return Err(FadStudyError::Invalid(
            "min_samples must be at least 2 (a covariance needs two samples)".into(),
        ));
    }
    if let SampleMatching::Fixed(n) = config.matching {
        if n < 2 {
            return Err(FadStudyError::Invalid(format!(
                "matching fixed({n}): n must be at least 2"
            )));
        }
    }
    use emobridge_fad::bootstrap::MAX_REPLICATES;
    if config.bootstrap == 1
        || config.bootstrap > MAX_REPLICATES
        || !(config.confidence > 0.0 && config.confidence < 1.0)
    {
        return Err(FadStudyError::Invalid(format!(
            "bootstrap needs 0 or 2..={MAX_REPLICATES} replicates and 0 < confidence < 1 (got {} and {})",
            config.bootstrap, config.confidence
        )));
    }
    Ok(())
}
