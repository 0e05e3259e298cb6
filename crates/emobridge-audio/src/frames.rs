//! Framing, analysis windows and FFT magnitudes shared by the descriptor and test code.
//! Windows and spectra are f64: descriptor parity with openSMILE needs the precision.

use std::sync::Arc;

use realfft::{num_complex::Complex, RealFftPlanner, RealToComplex};

/// Number of complete frames of `frame` samples every `hop` samples in `len` samples.
pub fn frame_count(len: usize, frame: usize, hop: usize) -> usize {
    if len < frame || hop == 0 {
        0
    } else {
        (len - frame) / hop + 1
    }
}

/// Iterator over complete frames.
pub fn frames(signal: &[f32], frame: usize, hop: usize) -> impl Iterator<Item = &[f32]> {
    (0..frame_count(signal.len(), frame, hop)).map(move |i| &signal[i * hop..i * hop + frame])
}

/// openSMILE's symmetric Hamming window, 0.54 − 0.46 cos(2πi/(N−1)).
pub fn hamming(n: usize) -> Vec<f64> {
    if n <= 1 {
        return vec![1.0; n];
    }
    let d = (n - 1) as f64;
    (0..n)
        .map(|i| 0.54 - 0.46 * (2.0 * std::f64::consts::PI * i as f64 / d).cos())
        .collect()
}

/// openSMILE's Gaussian window exp(−½ ((i − (N−1)/2) / (σ (N−1)/2))²), σ clamped to (0, 0.5].
pub fn gauss(n: usize, sigma: f64) -> Vec<f64> {
    if n <= 1 {
        return vec![1.0; n];
    }
    let sigma = if sigma <= 0.0 { 0.01 } else { sigma.min(0.5) };
    let half = (n - 1) as f64 / 2.0;
    (0..n)
        .map(|i| (-0.5 * ((i as f64 - half) / (sigma * half)).powi(2)).exp())
        .collect()
}

/// Hann window, 0.5 − 0.5 cos(2πi/(N−1)), symmetric over `n` points.
pub fn hann(n: usize) -> Vec<f64> {
    if n <= 1 {
        return vec![1.0; n];
    }
    let d = (n - 1) as f64;
    (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / d).cos())
        .collect()
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
        MagnitudeFft {
            input: fft.make_input_vec(),
            output: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
        }
    }

    /// Magnitudes of `frame · window`, zero-padded to the FFT length, written into `mags`.
    pub fn magnitudes(&mut self, frame: &[f64], window: &[f64], mags: &mut Vec<f64>) {
        // the FFT uses its input as scratch: every value is written again, the padding as 0
        let m = frame.len().min(window.len()).min(self.input.len());
        windowed(&mut self.input[..m], frame, window);
        self.input[m..].fill(0.0);
        self.fft
            .process_with_scratch(&mut self.input, &mut self.output, &mut self.scratch)
            .expect("buffers come from the same plan");
        // sized once: every value is written below
        if mags.len() != self.output.len() {
            mags.clear();
            mags.resize(self.output.len(), 0.0);
        }
        magnitudes_of(mags, &self.output);
    }

    /// Complex spectrum of the last call to [`MagnitudeFft::magnitudes`].
    pub fn last_complex(&self) -> &[Complex<f64>] {
        &self.output
    }
}

/// Runs `$generic` compiled for AVX2 when the CPU has it (the same operations per value in both
/// versions, and no fused multiply-add, so the same bits).
macro_rules! dispatch {
    ($avx2:ident, $generic:ident, ($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked just above).
                return unsafe { $avx2($($arg),*) };
            }
        }
        $generic($($arg),*)
    }};
}

/// `dst[i] = x[i] · w[i]`.
fn windowed(dst: &mut [f64], x: &[f64], w: &[f64]) {
    dispatch!(windowed_avx2, windowed_body, (dst, x, w))
}

#[inline(always)]
fn windowed_body(dst: &mut [f64], x: &[f64], w: &[f64]) {
    for ((dst, &x), &w) in dst.iter_mut().zip(x).zip(w) {
        *dst = x * w;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn windowed_avx2(dst: &mut [f64], x: &[f64], w: &[f64]) {
    windowed_body(dst, x, w)
}

/// `mags[k] = √(re² + im²)` of `spec[k]`.
fn magnitudes_of(mags: &mut [f64], spec: &[Complex<f64>]) {
    dispatch!(magnitudes_of_avx2, magnitudes_of_body, (mags, spec))
}

#[inline(always)]
fn magnitudes_of_body(mags: &mut [f64], spec: &[Complex<f64>]) {
    for (m, c) in mags.iter_mut().zip(spec) {
        *m = (c.re * c.re + c.im * c.im).sqrt();
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn magnitudes_of_avx2(mags: &mut [f64], spec: &[Complex<f64>]) {
    magnitudes_of_body(mags, spec)
}

/// Root-mean-square of a signal.
pub fn rms(x: &[f32]) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt() as f32
}

#[cfg(test)]
mod kernel_tests {
    use super::*;

    #[test]
    fn dispatched_kernels_equal_their_scalar_loops_bit_for_bit() {
        let x: Vec<f64> = (0..37).map(|i| ((i * 7919) % 101) as f64 / 50.0 - 1.0).collect();
        let w = gauss(37, 0.4);
        let (mut got, mut want) = (vec![0.0; 37], vec![0.0; 37]);
        windowed(&mut got, &x, &w);
        windowed_body(&mut want, &x, &w);
        assert_eq!(got, want);
        let spec: Vec<Complex<f64>> = x.iter().zip(&w).map(|(&a, &b)| Complex::new(a, b)).collect();
        magnitudes_of(&mut got, &spec);
        magnitudes_of_body(&mut want, &spec);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want));
        // and the FFT's magnitudes of an impulse are flat
        let mut fft = MagnitudeFft::new(16);
        let mut mags = vec![5.0; 3];
        fft.magnitudes(&[0.0, 2.0], &[1.0, 1.0], &mut mags);
        assert_eq!(mags.len(), 9);
        assert!(mags.iter().all(|&m| (m - 2.0).abs() < 1e-12));
    }
}
