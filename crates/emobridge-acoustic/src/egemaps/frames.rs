//! Framing and FFT magnitudes as openSMILE's `cFramer` → `cWindower` → `cTransformFFT` →
//! `cFFTmagphase` chain computes them.
//!
//! Frame `i` starts at sample `i · hop` (`frameCenterSpecial = left`); frames that run past the
//! end of the signal are zero-padded (openSMILE emits one such frame at the end of input). The
//! FFT length is the next power of two of the frame length (zero padding does not change
//! magnitudes), and bin `k` lies at `k · sr / nfft` Hz.

/// Frame geometry in samples for one sample rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameGeometry {
    /// Frame length in samples, `round(frame_s · sr)`.
    pub frame: usize,
    /// Hop in samples, `round(hop_s · sr)`.
    pub hop: usize,
    /// FFT length: next power of two ≥ `frame` (at least 4).
    pub nfft: usize,
    /// Sample rate in Hz.
    pub sample_rate: u32,
}

impl FrameGeometry {
    /// Geometry for a frame and hop given in seconds (openSMILE rounds both to whole samples).
    pub fn new(frame_s: f64, hop_s: f64, sample_rate: u32) -> FrameGeometry {
        let frame = ((frame_s * sample_rate as f64).round() as usize).max(1);
        let hop = ((hop_s * sample_rate as f64).round() as usize).max(1);
        FrameGeometry {
            frame,
            hop,
            nfft: frame.next_power_of_two().max(4),
            sample_rate,
        }
    }

    /// Distance between FFT bins in Hz.
    pub fn bin_hz(&self) -> f64 {
        self.sample_rate as f64 / self.nfft as f64
    }

    /// Number of magnitude bins (`nfft/2 + 1`).
    pub fn n_bins(&self) -> usize {
        self.nfft / 2 + 1
    }
}

/// Number of LLD rows openSMILE writes for `n` samples: `⌊(n − W)/H⌋ + 2` for `n ≥ W`, else 0,
/// with `W` the longest (60 ms) analysis frame and `H` the hop.
pub fn lld_row_count(n: usize, longest_frame: usize, hop: usize) -> usize {
    match emobridge_audio::frames::frame_count(n, longest_frame, hop) {
        0 => 0,
        complete => complete + 1,
    }
}

/// Copies frame `index` (zero-padded past the end of `signal`) into `out`.
pub fn frame_at(signal: &[f32], index: usize, geo: &FrameGeometry, out: &mut Vec<f64>) {
    out.clear();
    let start = index * geo.hop;
    out.extend((start..start + geo.frame).map(|i| signal.get(i).copied().unwrap_or(0.0) as f64));
}

pub use emobridge_audio::frames::{gauss, hamming, MagnitudeFft};
