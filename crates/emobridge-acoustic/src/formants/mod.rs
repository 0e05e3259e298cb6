//! Formant frequencies and bandwidths from LPC roots, reproducing openSMILE's `cSpecResample` →
//! `cLpc` → `cFormantLpc` chain on the 20 ms Hamming-windowed frame:
//!
//! 1. **resampling by inverse DFT** (`cSpecResample`, `targetFs = 11000`): the FFT of the
//!    frame, zero-padded symmetrically to the FFT length N, is evaluated back in time on the
//!    grid `i·N/nd`, `nd = N · round(L·fs'/fs)/L` (L the frame length), for the first
//!    `I = round(L·fs'/fs)` points, keeping only bins below `min(N, I)/2` (its anti-alias
//!    limit). Because only `I` points of the padded buffer's span are synthesised, the analysed
//!    segment starts with the padding — a property of the reference that the formant values
//!    depend on;
//! 2. order-`p` autocorrelation LPC (Levinson–Durbin) without further windowing (`cLpc acf`);
//! 3. roots of the polynomial openSMILE builds from the coefficients, `z^p − Σ a_k z^(p−k)`
//!    (its sign convention, kept for parity), reflected into the unit circle; every root with a
//!    non-negative imaginary part gives `f = |arg z|·fs'/2π` and `b = −ln|z|·fs'/π`; those with
//!    `min_hz ≤ f ≤ max_hz` are kept in ascending frequency (`cFormantLpc`).
//!
//! Formant tracks are fragile in openSMILE itself (root picking flips between candidates when
//! the input changes by 3e-5, measured with SMILExtract 3.0.0 from the PyPI `opensmile` 1.0.1
//! wheel); see PARITY.md for the agreement reached.

mod kernels;

use realfft::num_complex::Complex;

/// Settings of the LPC formant tracker (defaults: eGeMAPS `gemapsv01b_formantLpc`).
#[derive(Debug, Clone, PartialEq)]
pub struct FormantConfig {
    /// Sampling rate of the LPC analysis in Hz (default 11000).
    pub target_rate: f64,
    /// LPC order (default 11).
    pub order: usize,
    /// Lowest formant frequency in Hz (default 50).
    pub min_hz: f64,
    /// Highest formant frequency in Hz (default 5450).
    pub max_hz: f64,
    /// Number of formants reported (default 5; eGeMAPS uses the first 3).
    pub n_formants: usize,
}

impl Default for FormantConfig {
    fn default() -> Self {
        FormantConfig {
            target_rate: 11000.0,
            order: 11,
            min_hz: 50.0,
            max_hz: 5450.0,
            n_formants: 5,
        }
    }
}

/// Formants of one frame, ascending; missing ones are 0.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Formants {
    pub frequency: Vec<f64>,
    pub bandwidth: Vec<f64>,
}

/// Formant tracker for frames of a fixed geometry.
pub struct FormantTracker {
    cfg: FormantConfig,
    /// Effective target rate after openSMILE's rounding to a whole number of output samples.
    rate: f64,
    nfft: usize,
    /// Highest bin used (exclusive).
    k_max: usize,
    /// Chirp-z evaluation of the synthesis when `nd` is not a whole number.
    czt: Option<ChirpZ>,
    /// Inverse FFT of length `nd` when `nd` is a whole number (then used instead of the chirp-z).
    ifft: Option<std::sync::Arc<dyn rustfft::Fft<f64>>>,
    ifft_buf: Vec<Complex<f64>>,
    ifft_scratch: Vec<Complex<f64>>,
    /// `e^{-2πi k·pad/N}` for k < `k_max`: moves the frame from buffer offset 0 to `pad`.
    shift: Vec<Complex<f64>>,
    /// The frame spectrum times [`FormantTracker::shift`] (reused between frames).
    shifted: Vec<Complex<f64>>,
    resampled: Vec<f64>,
    /// Roots of the previous frame, the starting point of the next root search.
    last_roots: Option<Vec<Complex<f64>>>,
}

impl FormantTracker {
    /// Tracker for frames of `frame_len` samples in FFTs of `nfft` points at `sample_rate`.
    pub fn new(
        cfg: FormantConfig,
        frame_len: usize,
        nfft: usize,
        sample_rate: u32,
    ) -> FormantTracker {
        let ratio = cfg.target_rate / sample_rate as f64;
        let n_out = ((frame_len as f64 * ratio).round() as usize).max(1);
        let new_ratio = n_out as f64 / frame_len as f64;
        let nd = nfft as f64 * new_ratio;
        let mut k_max = nfft.min(n_out);
        if k_max % 2 == 1 {
            k_max -= 1;
        }
        let k_max = k_max / 2;
        let nd_int = nd.round() as usize;
        let (ifft, czt) = if (nd - nd_int as f64).abs() < 1e-9 && nd_int >= n_out && nd_int > k_max
        {
            let plan = rustfft::FftPlanner::<f64>::new().plan_fft_inverse(nd_int);
            (Some(plan), None)
        } else {
            (None, Some(ChirpZ::new(k_max.max(1), n_out, nd)))
        };
        let ifft_buf = vec![Complex::new(0.0, 0.0); if ifft.is_some() { nd_int } else { 0 }];
        let ifft_scratch =
            vec![Complex::new(0.0, 0.0); ifft.as_ref().map_or(0, |f| f.get_inplace_scratch_len())];
        let pad = (nfft - frame_len) / 2;
        let shift = (0..k_max)
            .map(|k| {
                let ph = -2.0 * std::f64::consts::PI * (k * pad % nfft) as f64 / nfft as f64;
                Complex::new(ph.cos(), ph.sin())
            })
            .collect();
        FormantTracker {
            rate: sample_rate as f64 * new_ratio,
            nfft,
            k_max,
            czt,
            ifft,
            ifft_buf,
            ifft_scratch,
            shift,
            shifted: Vec::with_capacity(k_max),
            resampled: vec![0.0; n_out],
            last_roots: None,
            cfg,
        }
    }

    /// Formants from the complex FFT (`nfft/2 + 1` bins) of a windowed frame placed at the start
    /// of the FFT buffer.
    pub fn frame(&mut self, spectrum: &[Complex<f64>]) -> Formants {
        self.resample(spectrum);
        let r = autocorrelation(&self.resampled, self.cfg.order + 1);
        let mut out = Formants {
            frequency: vec![0.0; self.cfg.n_formants],
            bandwidth: vec![0.0; self.cfg.n_formants],
        };
        let Some(a) = levinson(&r, self.cfg.order) else {
            return out;
        };
        // openSMILE negates the coefficients when it builds the polynomial
        let mut poly = vec![1.0];
        poly.extend(a.iter().map(|c| -c));
        let fs = self.rate;
        let roots = polynomial_roots_from(&poly, self.last_roots.as_deref());
        let converged = roots.iter().all(|z| z.is_finite());
        self.last_roots = if converged { Some(roots.clone()) } else { None };
        let mut found: Vec<(f64, f64)> = roots
            .into_iter()
            .map(|z| {
                if z.norm_sqr() > 1.0 {
                    1.0 / z.conj()
                } else {
                    z
                }
            })
            .filter(|z| z.im >= 0.0)
            .filter_map(|z| {
                let f = z.im.atan2(z.re).abs() * fs / (2.0 * std::f64::consts::PI);
                let b = -z.norm().ln() * fs / std::f64::consts::PI;
                (f >= self.cfg.min_hz && f <= self.cfg.max_hz).then_some((f, b))
            })
            .collect();
        found.truncate(self.cfg.n_formants);
        found.sort_by(|x, y| x.0.total_cmp(&y.0));
        for (k, (f, b)) in found.into_iter().enumerate() {
            out.frequency[k] = f;
            out.bandwidth[k] = b;
        }
        out
    }

    /// Inverse DFT of the (symmetrically padded) frame spectrum onto the target-rate grid.
    fn resample(&mut self, spectrum: &[Complex<f64>]) {
        // shifting the frame from buffer offset 0 to offset `pad` multiplies bin k by e^{-2πi k pad/N}
        self.shifted.clear();
        self.shifted
            .extend(spectrum.iter().zip(&self.shift).map(|(&c, &w)| c * w));
        let shifted = &self.shifted;
        let norm = (self.nfft / 2) as f64;
        if let Some(ifft) = &self.ifft {
            // Σ_k c_k e^{+2πi k i/nd}: the real part is the same synthesis as the table path
            self.ifft_buf[0] = Complex::new(shifted[0].re, 0.0);
            self.ifft_buf[1..self.k_max].copy_from_slice(&shifted[1..self.k_max]);
            self.ifft_buf[self.k_max..].fill(Complex::new(0.0, 0.0));
            ifft.process_with_scratch(&mut self.ifft_buf, &mut self.ifft_scratch);
            for (y, c) in self.resampled.iter_mut().zip(&self.ifft_buf) {
                *y = c.re / norm;
            }
            return;
        }
        if let Some(czt) = &mut self.czt {
            czt.synthesise(shifted, self.k_max, &mut self.resampled);
            for y in &mut self.resampled {
                *y /= norm;
            }
        }
    }
}

/// The synthesis `y[i] = Re Σ_{k<K} c_k e^{2πi k i / nd}` (`c_0` taken real) for `i < I` and a
/// non-integer `nd`, by Bluestein's chirp-z transform: with `k·i = (k² + i² − (i − k)²)/2` it is
/// a convolution of `c_k e^{iπk²/nd}` with `e^{−iπm²/nd}`, taken by FFTs of the shortest
/// length ≥ `K + I − 1` with no prime factor above 5 — two such FFTs and no tables, against
/// `K·I` complex multiply-adds from a `K × I` cosine and sine table (about 380 KB at 44.1 kHz).
/// Same values up to rounding (the test `chirp_z_equals_the_direct_synthesis` bounds the
/// difference at 1e-12 of the largest sample for 22.05, 44.1 and 48 kHz frames).
struct ChirpZ {
    fwd: std::sync::Arc<dyn rustfft::Fft<f64>>,
    inv: std::sync::Arc<dyn rustfft::Fft<f64>>,
    /// `e^{iπk²/nd}`, k < K.
    pre: Vec<Complex<f64>>,
    /// `e^{iπi²/nd} / L`, i < I.
    post: Vec<Complex<f64>>,
    /// FFT of the kernel `e^{−iπm²/nd}`, m from −(K − 1) to I − 1 laid out circularly.
    kernel: Vec<Complex<f64>>,
    buf: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
}

impl ChirpZ {
    fn new(k: usize, n_out: usize, nd: f64) -> ChirpZ {
        let len = five_smooth_at_least(k + n_out - 1);
        let mut planner = rustfft::FftPlanner::<f64>::new();
        let (fwd, inv) = (planner.plan_fft_forward(len), planner.plan_fft_inverse(len));
        // e^{±iπm²/nd} with m² reduced modulo 2·nd first (exact for these integers)
        let chirp = |m: usize, sign: f64| {
            let ph = std::f64::consts::PI * ((m * m) as f64 % (2.0 * nd)) / nd;
            Complex::new(ph.cos(), sign * ph.sin())
        };
        let mut kernel = vec![Complex::new(0.0, 0.0); len];
        for m in 0..n_out {
            kernel[m] = chirp(m, -1.0);
        }
        for m in 1..k {
            kernel[len - m] = chirp(m, -1.0);
        }
        let scratch_len = fwd
            .get_inplace_scratch_len()
            .max(inv.get_inplace_scratch_len());
        let mut scratch = vec![Complex::new(0.0, 0.0); scratch_len];
        fwd.process_with_scratch(&mut kernel, &mut scratch);
        ChirpZ {
            pre: (0..k).map(|m| chirp(m, 1.0)).collect(),
            post: (0..n_out).map(|m| chirp(m, 1.0) / len as f64).collect(),
            kernel,
            buf: vec![Complex::new(0.0, 0.0); len],
            scratch,
            fwd,
            inv,
        }
    }

    /// `out[i] = Re Σ_{k<K} c_k e^{2πi k i / nd}`, `c = spectrum[..K]` with `c_0` taken real.
    fn synthesise(&mut self, spectrum: &[Complex<f64>], k: usize, out: &mut [f64]) {
        // the first k values are written below, the rest is the zero padding
        let k = k.min(self.pre.len()).min(self.buf.len());
        self.buf[k..].fill(Complex::new(0.0, 0.0));
        for (m, (b, &p)) in self.buf.iter_mut().zip(&self.pre).enumerate().take(k) {
            let c = spectrum.get(m).copied().unwrap_or_default();
            let c = if m == 0 { Complex::new(c.re, 0.0) } else { c };
            *b = c * p;
        }
        self.fwd
            .process_with_scratch(&mut self.buf, &mut self.scratch);
        for (b, &h) in self.buf.iter_mut().zip(&self.kernel) {
            *b *= h;
        }
        self.inv
            .process_with_scratch(&mut self.buf, &mut self.scratch);
        for ((y, &b), &p) in out.iter_mut().zip(&self.buf).zip(&self.post) {
            *y = (b * p).re;
        }
    }
}

/// Smallest `n' ≥ n` whose prime factors are 2, 3 and 5 (lengths rustfft transforms fastest).
fn five_smooth_at_least(n: usize) -> usize {
    let smooth = |mut m: usize| {
        for p in [2, 3, 5] {
            while m % p == 0 {
                m /= p;
            }
        }
        m == 1
    };
    (n.max(1)..).find(|&m| smooth(m)).unwrap_or(n)
}

/// Autocorrelation r[0..lags) of `x` (no window, no normalisation), each lag summed in
/// increasing sample order (the lags side by side in vector lanes, same bits).
pub fn autocorrelation(x: &[f64], lags: usize) -> Vec<f64> {
    kernels::autocorrelation(x, lags)
}

/// Levinson–Durbin recursion: predictor coefficients a1..ap (x[n] + Σ a_k x[n−k] = e[n]).
pub fn levinson(r: &[f64], order: usize) -> Option<Vec<f64>> {
    if r.is_empty() || r[0] <= 0.0 {
        return None;
    }
    let mut a = vec![0.0; order];
    let mut prev = vec![0.0; order];
    let mut err = r[0];
    for m in 1..=order {
        let mut acc = r[m];
        for i in 1..m {
            acc += a[i - 1] * r[m - i];
        }
        let k = -acc / err;
        prev[..m].copy_from_slice(&a[..m]);
        a[m - 1] = k;
        for i in 1..m {
            a[i - 1] = prev[i - 1] + k * prev[m - i - 1];
        }
        err *= 1.0 - k * k;
        if err <= 0.0 {
            break;
        }
    }
    Some(a)
}

/// Roots of a real polynomial (coefficients highest power first, leading 1) by
/// Durand–Kerner iteration.
pub fn polynomial_roots(poly: &[f64]) -> Vec<Complex<f64>> {
    polynomial_roots_from(poly, None)
}

/// [`polynomial_roots`] starting from `start` (e.g. the previous frame's roots, which makes
/// consecutive frames converge in a few iterations); falls back to the standard seeds.
pub fn polynomial_roots_from(poly: &[f64], start: Option<&[Complex<f64>]>) -> Vec<Complex<f64>> {
    let n = poly.len() - 1;
    if n == 0 {
        return Vec::new();
    }
    let eval = |z: Complex<f64>| {
        poly.iter()
            .fold(Complex::new(0.0, 0.0), |acc, &c| acc * z + c)
    };
    let seed = Complex::new(0.4, 0.9);
    let distinct = |r: &[Complex<f64>]| {
        r.iter()
            .enumerate()
            .all(|(i, a)| r[i + 1..].iter().all(|b| (a - b).norm_sqr() > 1e-12) && a.is_finite())
    };
    let mut roots: Vec<Complex<f64>> = match start {
        Some(r) if r.len() == n && distinct(r) => r.to_vec(),
        _ => (0..n).map(|i| seed.powu(i as u32)).collect(),
    };
    for _ in 0..500 {
        let mut delta = 0.0f64;
        for i in 0..n {
            let zi = roots[i];
            let mut denom = Complex::new(1.0, 0.0);
            for (j, &zj) in roots.iter().enumerate() {
                if j != i {
                    denom *= zi - zj;
                }
            }
            if denom.norm_sqr() == 0.0 {
                continue;
            }
            let step = eval(zi) / denom;
            roots[i] = zi - step;
            delta = delta.max(step.norm_sqr());
        }
        if delta < 1e-24 {
            break;
        }
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chirp_z_equals_the_direct_synthesis() {
        // the geometries of 20 ms frames at 22.05, 44.1 and 48 kHz (k_max, n_out, nd)
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        for (frame, nfft, rate) in [
            (441usize, 512usize, 22050u32),
            (882, 1024, 44100),
            (960, 1024, 48000),
        ] {
            let t = FormantTracker::new(FormantConfig::default(), frame, nfft, rate);
            let (k_max, n_out) = (t.k_max, t.resampled.len());
            let nd = nfft as f64 * n_out as f64 / frame as f64;
            let mut czt = t.czt.expect("a non-integer nd");
            let c: Vec<Complex<f64>> = (0..k_max).map(|_| Complex::new(next(), next())).collect();
            let mut got = vec![0.0; n_out];
            czt.synthesise(&c, k_max, &mut got);
            let want: Vec<f64> = (0..n_out)
                .map(|i| {
                    c[0].re
                        + (1..k_max)
                            .map(|k| {
                                let ph = 2.0 * std::f64::consts::PI * (k * i) as f64 / nd;
                                c[k].re * ph.cos() - c[k].im * ph.sin()
                            })
                            .sum::<f64>()
                })
                .collect();
            let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-12 * scale,
                    "{rate} Hz sample {i}: {g} vs {w}"
                );
            }
        }
    }

    #[test]
    fn roots_of_a_known_quadratic() {
        let r = polynomial_roots(&[1.0, -3.0, 2.0]);
        let mut re: Vec<f64> = r.iter().map(|z| z.re).collect();
        re.sort_by(f64::total_cmp);
        assert!((re[0] - 1.0).abs() < 1e-9 && (re[1] - 2.0).abs() < 1e-9);
    }

    #[test]
    fn levinson_recovers_an_ar1_process() {
        // r[k] = 0.9^k is the ACF of x[n] = 0.9 x[n-1] + e[n]
        let r: Vec<f64> = (0..4).map(|k| 0.9f64.powi(k)).collect();
        let a = levinson(&r, 3).unwrap();
        assert!((a[0] + 0.9).abs() < 1e-9 && a[1].abs() < 1e-9);
    }
}
