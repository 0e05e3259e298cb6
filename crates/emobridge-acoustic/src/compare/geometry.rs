//! Frame geometry of the ComParE-2016 extractor at a given sample rate.
//!
//! openSMILE never resamples: frame and hop lengths are rounded from seconds to samples at the
//! file's own rate (`round(0.010 · sr)` etc.), and the FFT length is the next power of two of the
//! frame length. The spectral bin spacing follows openSMILE's bookkeeping, which scales the
//! *nominal* frame duration (0.020 s) by the padding ratio rather than using `sr / nfft`; the two
//! differ only when `0.020 · sr` is not an integer (e.g. 11.025 kHz).

/// Hop between frames (seconds).
pub const HOP_S: f64 = 0.010;
/// Short frames (energy, spectral, auditory, MFCC), Hamming-windowed where a spectrum is taken.
pub const SHORT_FRAME_S: f64 = 0.020;
/// Long frames (ZCR unwindowed; pitch and voice quality Gaussian-windowed).
pub const LONG_FRAME_S: f64 = 0.060;

/// Sample counts and frame counts for one signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    pub sample_rate: u32,
    /// Hop in samples.
    pub hop: usize,
    /// Short frame length in samples.
    pub short_len: usize,
    /// Long frame length in samples.
    pub long_len: usize,
    /// FFT length of the short frames (next power of two, at least 4).
    pub short_fft: usize,
    /// Spacing of short-frame FFT bins in Hz.
    pub short_bin_hz: f64,
    /// Complete short frames in the signal.
    pub n_short: usize,
    /// Complete long frames in the signal.
    pub n_long: usize,
}

impl Geometry {
    pub fn new(n_samples: usize, sample_rate: u32) -> Geometry {
        let sr = sample_rate as f64;
        let hop = ((HOP_S * sr).round() as usize).max(1);
        let short_len = ((SHORT_FRAME_S * sr).round() as usize).max(1);
        let long_len = ((LONG_FRAME_S * sr).round() as usize).max(1);
        let short_fft = short_len.next_power_of_two().max(4);
        let short_bin_hz = 1.0 / (SHORT_FRAME_S * short_fft as f64 / short_len as f64);
        Geometry {
            sample_rate,
            hop,
            short_len,
            long_len,
            short_fft,
            short_bin_hz,
            n_short: crate::dsp::frame_count(n_samples, short_len, hop),
            n_long: crate::dsp::frame_count(n_samples, long_len, hop),
        }
    }

    /// Output rows: one more than the number of complete long frames (openSMILE's smoother emits
    /// a final row at end of input), none when the signal is shorter than one long frame.
    pub fn rows(&self) -> usize {
        if self.n_long == 0 {
            0
        } else {
            self.n_long + 1
        }
    }

    /// Start time of row `i` in seconds (openSMILE's `frameTime`: `i · hop / sr`).
    pub fn frame_time(&self, i: usize) -> f64 {
        (i * self.hop) as f64 / self.sample_rate as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_counts_follow_opensmile() {
        // Counts measured with SMILExtract 3.0.0 (PyPI `opensmile` 1.0.1 wheel, ComParE-2016 config).
        assert_eq!(Geometry::new(16_000, 16_000).rows(), 96);
        assert_eq!(Geometry::new(22_050, 22_050).rows(), 95);
        assert_eq!(Geometry::new(40_000, 16_000).rows(), 246);
        assert_eq!(Geometry::new(959, 16_000).rows(), 0);
        assert_eq!(Geometry::new(22_050, 22_050).hop, 221);
    }

    #[test]
    fn bin_spacing_uses_padded_nominal_frame() {
        let g = Geometry::new(16_000, 16_000);
        assert_eq!(g.short_fft, 512);
        assert!((g.short_bin_hz - 31.25).abs() < 1e-12);
    }
}
