//! Framing and FFT magnitudes as openSMILE's `cFramer` → `cWindower` → `cTransformFFT` →
//! `cFFTmagphase` chain computes them.
//!
//! Frame `i` starts at sample `i · hop` (`frameCenterSpecial = left`); frames that run past the
//! end of the signal are zero-padded (openSMILE emits one such frame at the end of input). The
//! FFT length is the next power of two of the frame length (zero padding does not change
//! magnitudes), and bin `k` lies at `k · sr / nfft` Hz.

use realfft::{num_complex::Complex, RealFftPlanner, RealToComplex};
use std::sync::Arc;

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
        FrameGeometry { frame, hop, nfft: frame.next_power_of_two().max(4), sample_rate }
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
    if n < longest_frame || hop == 0 {
        0
    } else {
        (n - longest_frame) / hop + 2
    }
}

/// Copies frame `index` (zero-padded past the end of `signal`) into `out`.
pub fn frame_at(signal: &[f32], index: usize, geo: &FrameGeometry, out: &mut Vec<f64>) {
    out.clear();
    let start = index * geo.hop;
    out.extend((start..start + geo.frame).map(|i| signal.get(i).copied().unwrap_or(0.0) as f64));
}

/// openSMILE's symmetric Hamming window, 0.54 − 0.46 cos(2πi/(N−1)).
pub fn hamming(n: usize) -> Vec<f64> {
    if n <= 1 {
        return vec![1.0; n];
    }
    let d = (n - 1) as f64;
    (0..n).map(|i| 0.54 - 0.46 * (2.0 * std::f64::consts::PI * i as f64 / d).cos()).collect()
}

/// openSMILE's Gaussian window exp(−½ ((i − (N−1)/2) / (σ (N−1)/2))²), σ clamped to (0, 0.5].
pub fn gauss(n: usize, sigma: f64) -> Vec<f64> {
    if n <= 1 {
        return vec![1.0; n];
    }
    let sigma = if sigma <= 0.0 { 0.01 } else { sigma.min(0.5) };
    let half = (n - 1) as f64 / 2.0;
    (0..n).map(|i| (-0.5 * ((i as f64 - half) / (sigma * half)).powi(2)).exp()).collect()
}

/// Reusable real FFT producing magnitudes |X_k|, k = 0..=nfft/2 (no normalisation).
pub struct MagnitudeFft {
    fft: Arc<dyn RealToComplex<f64>>,
    input: Vec<f64>,
    output: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
}

impl MagnitudeFft {
    /// Plans an FFT of length `nfft`.
    pub fn new(nfft: usize) -> MagnitudeFft {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(nfft);
        MagnitudeFft { input: fft.make_input_vec(), output: fft.make_output_vec(), scratch: fft.make_scratch_vec(), fft }
    }

    /// Magnitudes of `frame · window`, zero-padded to the FFT length, written into `mags`.
    pub fn magnitudes(&mut self, frame: &[f64], window: &[f64], mags: &mut Vec<f64>) {
        self.input.iter_mut().for_each(|x| *x = 0.0);
        for ((dst, &x), &w) in self.input.iter_mut().zip(frame).zip(window) {
            *dst = x * w;
        }
        self.fft
            .process_with_scratch(&mut self.input, &mut self.output, &mut self.scratch)
            .expect("buffers come from the same plan");
        mags.clear();
        mags.extend(self.output.iter().map(|c| (c.re * c.re + c.im * c.im).sqrt()));
    }

    /// Complex spectrum of the last call to [`MagnitudeFft::magnitudes`].
    pub fn last_complex(&self) -> &[Complex<f64>] {
        &self.output
    }
}
