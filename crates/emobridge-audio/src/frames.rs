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
    fft: RealForward,
    input: Vec<f64>,
    output: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
}

/// A forward real FFT: for lengths divisible by 4 (every power of two from 4 on) `realfft`'s
/// even-length algorithm spelled out here — the same complex FFT of half the length from the
/// same planner, then the same post-processing sums with its twiddles, but run two bins per
/// AVX2 step (each value the same operations in the same order, so the same bits as `realfft`;
/// tested) — and `realfft` itself for other lengths.
enum RealForward {
    Even {
        fft: Arc<dyn rustfft::Fft<f64>>,
        /// `realfft`'s twiddles: `½ · e^{−2πik/n}`, k = 1..n/4.
        twiddles: Vec<Complex<f64>>,
    },
    Other(Arc<dyn RealToComplex<f64>>),
}

impl RealForward {
    fn new(n: usize) -> RealForward {
        if n % 4 != 0 {
            return RealForward::Other(RealFftPlanner::<f64>::new().plan_fft_forward(n));
        }
        let twiddles = (1..n / 4)
            .map(|i| {
                let angle = -2f64 * std::f64::consts::PI / n as f64 * i as f64;
                Complex::new(angle.cos(), angle.sin()) * 0.5
            })
            .collect();
        RealForward::Even {
            fft: rustfft::FftPlanner::<f64>::new().plan_fft_forward(n / 2),
            twiddles,
        }
    }

    fn scratch_len(&self) -> usize {
        match self {
            RealForward::Even { fft, .. } => fft.get_outofplace_scratch_len(),
            RealForward::Other(fft) => fft.get_scratch_len(),
        }
    }

    /// Spectrum of `input` (`n` values, used as scratch) into `output` (`n/2 + 1` bins).
    fn process(
        &self,
        input: &mut [f64],
        output: &mut [Complex<f64>],
        scratch: &mut [Complex<f64>],
    ) {
        match self {
            RealForward::Other(fft) => fft
                .process_with_scratch(input, output, scratch)
                .expect("buffers come from the same plan"),
            RealForward::Even { fft, twiddles } => {
                let half = input.len() / 2;
                assert_eq!(
                    output.len(),
                    half + 1,
                    "an FFT of n values has n/2 + 1 bins"
                );
                // SAFETY: Complex<f64> is repr(C) { re, im }, so n f64 are n/2 complex values
                // (the reinterpretation realfft makes).
                let buf_in = unsafe {
                    std::slice::from_raw_parts_mut(input.as_mut_ptr() as *mut Complex<f64>, half)
                };
                fft.process_outofplace_with_scratch(buf_in, &mut output[..half], scratch);
                even_post_process(output, twiddles);
            }
        }
    }
}

/// `realfft`'s post-processing of an even-length forward transform, in its order: bin 0 and
/// bin n/2 from the first value, then the pairs (1 + j, len − 2 − j) with twiddle j, then the
/// conjugated centre bin when the bin count is odd.
fn even_post_process(output: &mut [Complex<f64>], twiddles: &[Complex<f64>]) {
    let len = output.len();
    if len < 2 {
        return;
    }
    let first = output[0];
    output[0] = Complex::new(first.re + first.im, 0.0);
    output[len - 1] = Complex::new(first.re - first.im, 0.0);
    let left = len / 2;
    let pairs = twiddles.len().min(left - 1).min(len - 1 - left);
    twiddle_pairs(output, &twiddles[..pairs]);
    if len % 2 == 1 {
        output[len / 2].im = -output[len / 2].im;
    }
}

/// The pairs (1 + j, len − 2 − j), j < `twiddles.len()`, of [`even_post_process`].
fn twiddle_pairs(output: &mut [Complex<f64>], twiddles: &[Complex<f64>]) {
    crate::dispatch_avx2!(twiddle_pairs_avx2, twiddle_pairs_body, (output, twiddles))
}

#[inline(always)]
fn twiddle_pairs_body(output: &mut [Complex<f64>], twiddles: &[Complex<f64>]) {
    let len = output.len();
    for (j, tw) in twiddles.iter().enumerate() {
        let (out, out_rev) = (output[1 + j], output[len - 2 - j]);
        let sum = out + out_rev;
        let diff = out - out_rev;
        let twiddled_re_sum = sum * tw.re;
        let twiddled_im_sum = sum * tw.im;
        let twiddled_re_diff = diff * tw.re;
        let twiddled_im_diff = diff * tw.im;
        let half_sum_re = 0.5 * sum.re;
        let half_diff_im = 0.5 * diff.im;
        let output_twiddled_real = twiddled_re_sum.im + twiddled_im_diff.re;
        let output_twiddled_im = twiddled_im_sum.im - twiddled_re_diff.re;
        output[1 + j] = Complex::new(
            half_sum_re + output_twiddled_real,
            half_diff_im + output_twiddled_im,
        );
        output[len - 2 - j] = Complex::new(
            half_sum_re - output_twiddled_real,
            output_twiddled_im - half_diff_im,
        );
    }
}

/// [`twiddle_pairs_body`] two pairs per step: lanes hold (re, im) of two bins, each value
/// computed by the scalar body's operations (`a − b` as `a + (−b)`, which IEEE defines equal).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn twiddle_pairs_avx2(output: &mut [Complex<f64>], twiddles: &[Complex<f64>]) {
    use std::arch::x86_64::*;
    let len = output.len();
    let n_pairs = twiddles.len();
    // the pairs' left bins 1..=n_pairs lie below their right bins len − 1 − n_pairs..len − 1
    assert!(2 * n_pairs + 2 <= len, "twiddle pairs overlap");
    let out = output.as_mut_ptr() as *mut f64;
    let tw = twiddles.as_ptr() as *const f64;
    let half = _mm256_set1_pd(0.5);
    let neg_im = _mm256_setr_pd(0.0, -0.0, 0.0, -0.0);
    let mut j = 0;
    while j + 2 <= n_pairs {
        // SAFETY: bins 1 + j, 2 + j and len − 3 − j, len − 2 − j lie inside `output`
        // (checked above), twiddles j, j + 1 inside `twiddles`.
        let (lo, hi) = (out.add(2 * (1 + j)), out.add(2 * (len - 3 - j)));
        let a = _mm256_loadu_pd(lo);
        // bins len − 3 − j, len − 2 − j, swapped into pair order
        let b = _mm256_permute2f128_pd::<0x01>(_mm256_loadu_pd(hi), _mm256_loadu_pd(hi));
        let t = _mm256_loadu_pd(tw.add(2 * j));
        let sum = _mm256_add_pd(a, b);
        let diff = _mm256_sub_pd(a, b);
        let sum_im = _mm256_permute_pd::<0b1111>(sum);
        let diff_re = _mm256_permute_pd::<0b0000>(diff);
        let t_swap = _mm256_permute_pd::<0b0101>(t);
        // (sum.im·tw.re + diff.re·tw.im, sum.im·tw.im − diff.re·tw.re)
        let twiddled = _mm256_add_pd(
            _mm256_mul_pd(sum_im, t),
            _mm256_xor_pd(_mm256_mul_pd(diff_re, t_swap), neg_im),
        );
        // (½ sum.re, ½ diff.im)
        let halves = _mm256_mul_pd(half, _mm256_blend_pd::<0b1010>(sum, diff));
        let left = _mm256_add_pd(halves, twiddled);
        let right = _mm256_sub_pd(
            _mm256_blend_pd::<0b1010>(halves, twiddled),
            _mm256_blend_pd::<0b1010>(twiddled, halves),
        );
        _mm256_storeu_pd(lo, left);
        _mm256_storeu_pd(hi, _mm256_permute2f128_pd::<0x01>(right, right));
        j += 2;
    }
    if j < n_pairs {
        // the last odd pair: the scalar body on a view that maps its j = 0 onto this pair
        let view = &mut output[j..len - j];
        twiddle_pairs_body(view, &twiddles[j..j + 1]);
    }
}

impl MagnitudeFft {
    /// Plans an FFT of length `nfft`.
    pub fn new(nfft: usize) -> MagnitudeFft {
        let fft = RealForward::new(nfft);
        MagnitudeFft {
            input: vec![0.0; nfft],
            output: vec![Complex::new(0.0, 0.0); nfft / 2 + 1],
            scratch: vec![Complex::new(0.0, 0.0); fft.scratch_len()],
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
            .process(&mut self.input, &mut self.output, &mut self.scratch);
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

/// `dst[i] = x[i] · w[i]` over the shortest of the three (compiled for AVX2 too and chosen at
/// run time; the same bits either way).
pub fn windowed(dst: &mut [f64], x: &[f64], w: &[f64]) {
    crate::dispatch_avx2!(windowed_avx2, windowed_body, (dst, x, w))
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
    crate::dispatch_avx2!(magnitudes_of_avx2, magnitudes_of_body, (mags, spec))
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
        let x: Vec<f64> = (0..37)
            .map(|i| ((i * 7919) % 101) as f64 / 50.0 - 1.0)
            .collect();
        let w = gauss(37, 0.4);
        let (mut got, mut want) = (vec![0.0; 37], vec![0.0; 37]);
        windowed(&mut got, &x, &w);
        windowed_body(&mut want, &x, &w);
        assert_eq!(got, want);
        let spec: Vec<Complex<f64>> = x
            .iter()
            .zip(&w)
            .map(|(&a, &b)| Complex::new(a, b))
            .collect();
        magnitudes_of(&mut got, &spec);
        magnitudes_of_body(&mut want, &spec);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want));
        // the spelled-out even-length FFT equals realfft's bit for bit
        for n in [4usize, 6, 8, 12, 16, 20, 64, 1024, 4096] {
            let x: Vec<f64> = (0..n)
                .map(|i| ((i * 7919 + 13) % 97) as f64 / 48.0 - 1.0)
                .collect();
            let reference = RealFftPlanner::<f64>::new().plan_fft_forward(n);
            let mut want = reference.make_output_vec();
            reference
                .process(&mut x.clone(), &mut want)
                .expect("sizes from the plan");
            let mut fft = MagnitudeFft::new(n);
            let mut mags = Vec::new();
            fft.magnitudes(&x, &vec![1.0; n], &mut mags);
            let got = fft.last_complex();
            assert_eq!(got.len(), want.len());
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(
                    (g.re.to_bits(), g.im.to_bits()),
                    (w.re.to_bits(), w.im.to_bits()),
                    "n {n} bin {k}"
                );
            }
        }
        // and the FFT's magnitudes of an impulse are flat
        let mut fft = MagnitudeFft::new(16);
        let mut mags = vec![5.0; 3];
        fft.magnitudes(&[0.0, 2.0], &[1.0, 1.0], &mut mags);
        assert_eq!(mags.len(), 9);
        assert!(mags.iter().all(|&m| (m - 2.0).abs() < 1e-12));
    }
}
