//! Sample-rate conversion with rubato's synchronous FFT resampler.
//!
//! The rates this toolkit meets (8–48 kHz, e.g. 44.1 k → 16 k, 48 k → 24 k) are fixed integer
//! ratios, which rubato's `Fft` resampler handles exactly with a steep anti-aliasing filter;
//! `process_all_into_buffer` resamples a whole clip and trims the filter delay, so output
//! length is the exact ratio (±1 sample) and aligned in time with the input.

use std::path::{Path, PathBuf};

use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Fft, FixedSync, Resampler};

use crate::AudioError;

/// Lowest target rate accepted.
pub const MIN_RATE: u32 = 8_000;
/// Highest target rate accepted.
pub const MAX_RATE: u32 = 48_000;

/// Lowest rate a file may declare (below it nothing audible is left to analyse).
pub const MIN_SOURCE_RATE: u32 = 1_000;
/// Highest rate a file may declare (768 kHz, the top of studio PCM). A mutated header once
/// declared ~4.3 GHz, and the resampler's FFT of that size ran for minutes (found by fuzzing).
pub const MAX_SOURCE_RATE: u32 = 768_000;

/// Resamples one channel from `from` Hz (within [`MIN_SOURCE_RATE`], [`MAX_SOURCE_RATE`]) to
/// `to` Hz (within [`MIN_RATE`], [`MAX_RATE`]).
pub fn resample(signal: &[f32], from: u32, to: u32) -> Result<Vec<f32>, AudioError> {
    let nowhere = PathBuf::from("<signal>");
    if !(MIN_SOURCE_RATE..=MAX_SOURCE_RATE).contains(&from) {
        return Err(AudioError::BadRate {
            path: nowhere,
            rate: from,
        });
    }
    if !(MIN_RATE..=MAX_RATE).contains(&to) {
        return Err(AudioError::BadTargetRate {
            path: nowhere,
            rate: to,
            min: MIN_RATE,
            max: MAX_RATE,
        });
    }
    if from == to || signal.is_empty() {
        return Ok(signal.to_vec());
    }
    let fail = |reason: String| AudioError::Resample {
        path: PathBuf::from("<signal>"),
        reason,
    };
    // ~20 ms chunks keep the filter delay small for short clips and the FFTs cheap.
    let chunk = (from as usize / 50).max(64);
    let mut rs = Fft::<f32>::new(from as usize, to as usize, chunk, 1, FixedSync::Input)
        .map_err(|e| fail(e.to_string()))?;
    let input = vec![signal.to_vec()];
    let adapter_in =
        SequentialSliceOfVecs::new(&input, 1, signal.len()).map_err(|e| fail(e.to_string()))?;
    let out_cap = rs.process_all_needed_output_len(signal.len());
    let mut output = vec![vec![0.0f32; out_cap]];
    let mut adapter_out =
        SequentialSliceOfVecs::new_mut(&mut output, 1, out_cap).map_err(|e| fail(e.to_string()))?;
    let (_, produced) = rs
        .process_all_into_buffer(&adapter_in, &mut adapter_out, signal.len(), None)
        .map_err(|e| fail(e.to_string()))?;
    let mut out = output.pop().unwrap_or_default();
    out.truncate(produced);
    Ok(out)
}

impl AudioError {
    /// Re-labels an error raised on an anonymous signal with the file it came from.
    pub(crate) fn with_path(self, path: &Path) -> AudioError {
        let path = path.to_path_buf();
        match self {
            AudioError::BadRate { rate, .. } => AudioError::BadRate { path, rate },
            AudioError::BadTargetRate { rate, min, max, .. } => AudioError::BadTargetRate {
                path,
                rate,
                min,
                max,
            },
            AudioError::Resample { reason, .. } => AudioError::Resample { path, reason },
            other => other,
        }
    }
}
