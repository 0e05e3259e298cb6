//! # emobridge-acoustic
//!
//! Owns the hand-crafted descriptors of emobridge, computed as openSMILE 3.0 defines them, in
//! original Rust code:
//!
//! * [`egemaps`] — eGeMAPS v02: 25 low-level descriptors (LLDs) every 10 ms and the 88
//!   functionals, with openSMILE's names, order and semantics;
//! * [`compare`] — ComParE-2016: 65 LLDs, their deltas, and the windowed mean/std summary of the
//!   continuous-emotion paper (1 s windows, 0.5 s hop);
//! * the shared machinery both sets use: [`pitch`] (subharmonic-summation F0 with Viterbi
//!   smoothing, voicing, jitter/shimmer from detected periods, ACF harmonics-to-noise ratio,
//!   harmonic amplitudes), [`formants`] (LPC formants), [`functionals`] (openSMILE's statistics
//!   over contours) and [`smooth`] (`sma` moving average and `de` regression deltas).
//!
//! Every extractor works at the signal's own sample rate (openSMILE never resamples): frame and
//! hop lengths are given in seconds and converted with the rate, the hop is `round(0.010 · sr)`
//! samples and an LLD matrix has `⌊(N − W)/H⌋ + 2` rows for `N ≥ W` samples (W the 60 ms voicing
//! frame), none otherwise. Samples are expected in openSMILE's scaling (16-bit PCM / 32767; load
//! with `emobridge_audio::DecodeOptions { int_scaling: IntScaling::OpenSmile, .. }`).

pub mod compare;
pub mod dsp;
pub mod egemaps;
pub mod formants;
pub mod functionals;
pub mod pitch;
mod simd;
pub mod smooth;
#[cfg(test)]
mod test_signal;

/// A matrix of frame-wise descriptors (LLDs).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FeatureFrames {
    /// Column names, openSMILE's spelling.
    pub names: Vec<String>,
    /// Start time of each frame in seconds (openSMILE's `frameTime`).
    pub frame_times: Vec<f64>,
    /// One row per frame, one value per name.
    pub values: Vec<Vec<f32>>,
}

impl FeatureFrames {
    /// Number of frames.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when no frame was produced (input shorter than one analysis frame).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// One column by name, or `None` if the name is not present.
    pub fn column(&self, name: &str) -> Option<Vec<f32>> {
        let idx = self.names.iter().position(|n| n == name)?;
        Some(self.values.iter().map(|row| row[idx]).collect())
    }
}

/// One vector of summary features (functionals) for a whole clip.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FeatureVector {
    /// Feature names, openSMILE's spelling and order.
    pub names: Vec<String>,
    /// One value per name.
    pub values: Vec<f32>,
}

impl FeatureVector {
    /// A value by name.
    pub fn get(&self, name: &str) -> Option<f32> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| self.values[i])
    }
}

/// Why a descriptor could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum AcousticError {
    /// The sample rate cannot carry the analysis (e.g. 0 Hz or too low for the filter banks).
    #[error("unsupported sample rate {rate} Hz: {reason}")]
    UnsupportedRate { rate: u32, reason: &'static str },
    /// The signal holds NaN or infinite samples.
    #[error("signal contains a non-finite sample at index {index}")]
    NonFinite { index: usize },
    /// A configuration value is out of its valid range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The analysis window is longer than the file's descriptor contour.
    #[error("the {window_s} s window is longer than the file's {length_s:.3} s of descriptor frames; use a shorter --window-s")]
    WindowTooLong { window_s: f64, length_s: f64 },
    /// The signal is shorter than one analysis frame, so no descriptor frame exists and its
    /// functionals would only be the empty-input placeholders (0, −120 dB).
    #[error("too short to analyse: {samples} sample(s) = {seconds:.4} s; {set} functionals need at least one {frame_ms} ms frame ({needed} samples at this rate)")]
    TooShort {
        set: &'static str,
        samples: usize,
        seconds: f64,
        frame_ms: u32,
        needed: usize,
    },
}

/// Checks that every sample is finite.
pub(crate) fn check_finite(samples: &[f32]) -> Result<(), AcousticError> {
    match samples.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(AcousticError::NonFinite { index }),
        None => Ok(()),
    }
}
