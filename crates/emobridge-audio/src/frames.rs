//! Framing and spectral primitives shared by the descriptor code.

use realfft::RealFftPlanner;

/// Number of complete frames of `frame` samples every `hop` samples in `len` samples.
pub fn frame_count(len: usize, frame: usize, hop: usize) -> usize {
    if len < frame || hop == 0 { 0 } else { (len - frame) / hop + 1 }
}

/// Iterator over complete frames.
pub fn frames(signal: &[f32], frame: usize, hop: usize) -> impl Iterator<Item = &[f32]> {
    (0..frame_count(signal.len(), frame, hop)).map(move |i| &signal[i * hop..i * hop + frame])
}

/// Hamming window (0.54 − 0.46 cos), symmetric over `n` points.
pub fn hamming(n: usize) -> Vec<f32> {
    cosine_window(n, 0.54, 0.46)
}

/// Hann window (0.5 − 0.5 cos), symmetric over `n` points.
pub fn hann(n: usize) -> Vec<f32> {
    cosine_window(n, 0.5, 0.5)
}

fn cosine_window(n: usize, a: f64, b: f64) -> Vec<f32> {
    if n <= 1 {
        return vec![1.0; n];
    }
    let d = (n - 1) as f64;
    (0..n).map(|i| (a - b * (2.0 * std::f64::consts::PI * i as f64 / d).cos()) as f32).collect()
}

/// Gaussian window exp(−½ ((i − (n−1)/2) / (σ (n−1)/2))²), the shape openSMILE's voicing frames use.
pub fn gauss(n: usize, sigma: f64) -> Vec<f32> {
    if n <= 1 {
        return vec![1.0; n];
    }
    let half = (n - 1) as f64 / 2.0;
    (0..n).map(|i| (-0.5 * ((i as f64 - half) / (sigma * half)).powi(2)).exp() as f32).collect()
}

/// Reusable magnitude-spectrum computer for frames of a fixed FFT size.
pub struct Spectrum {
    fft: std::sync::Arc<dyn realfft::RealToComplex<f32>>,
    input: Vec<f32>,
    output: Vec<realfft::num_complex::Complex<f32>>,
    scratch: Vec<realfft::num_complex::Complex<f32>>,
}

impl Spectrum {
    pub fn new(fft_size: usize) -> Spectrum {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(fft_size);
        let input = fft.make_input_vec();
        let output = fft.make_output_vec();
        let scratch = fft.make_scratch_vec();
        Spectrum { fft, input, output, scratch }
    }

    pub fn fft_size(&self) -> usize {
        self.input.len()
    }

    /// Magnitudes |X_k|, k = 0..=N/2, of `frame` (zero-padded to the FFT size) times `window`.
    pub fn magnitudes(&mut self, frame: &[f32], window: &[f32], out: &mut Vec<f32>) {
        self.input.iter_mut().for_each(|x| *x = 0.0);
        for ((dst, &x), &w) in self.input.iter_mut().zip(frame).zip(window) {
            *dst = x * w;
        }
        self.fft
            .process_with_scratch(&mut self.input, &mut self.output, &mut self.scratch)
            .expect("buffer sizes come from the plan");
        out.clear();
        out.extend(self.output.iter().map(|c| c.norm()));
    }
}

/// Root-mean-square of a signal.
pub fn rms(x: &[f32]) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt() as f32
}
