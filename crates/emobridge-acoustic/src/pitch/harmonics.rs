//! Harmonic descriptors from the voicing (60 ms Gaussian) magnitude spectrum, as openSMILE's
//! `cHarmonics` computes them: ACF harmonics-to-noise ratio, harmonic peaks with parabolic
//! interpolation, H1−H2, H1−A3 and the formant amplitudes relative to H1.

use realfft::{num_complex::Complex, RealFftPlanner};

/// Log-relative value written for unvoiced frames and missing harmonics.
pub const LOG_REL_FLOOR: f64 = -201.0;

/// Harmonic descriptors of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HarmonicFrame {
    /// HNR from the autocorrelation in dB (0 when unvoiced), within [−90, 110].
    pub hnr_acf_db: f64,
    /// openSMILE's "H1−H2" in dB (0 when unvoiced): log-relative level of harmonic slot 1 minus
    /// slot 2, where slot 0 is the fundamental (the config's "H1" indexes slot 1).
    pub h1_h2_db: f64,
    /// openSMILE's "H1−A3" in dB (0 when unvoiced): slot 1 minus the strongest harmonic within
    /// ±20 % of F3.
    pub h1_a3_db: f64,
    /// Amplitude of the strongest harmonic within ±20 % of F1..F3 relative to H1, dB
    /// (−201 when unvoiced, 0 when no harmonic is near the formant).
    pub formant_amplitude_db: [f64; 3],
}

#[derive(Debug, Clone, Copy, Default)]
struct Harmonic {
    bin: i64,
    freq: f64,
    magnitude: f64,
    magnitude_interp: f64,
    log_rel: f64,
}

/// Computes harmonic descriptors for magnitude spectra of `n_bins` bins spaced `bin_hz` apart.
pub struct HarmonicsAnalyser {
    bin_hz: f64,
    n_bins: usize,
    n_harmonics: usize,
    inverse: std::sync::Arc<dyn realfft::ComplexToReal<f64>>,
    spec: Vec<Complex<f64>>,
    acf: Vec<f64>,
    acf_abs: Vec<f64>,
    scratch: Vec<Complex<f64>>,
}

impl HarmonicsAnalyser {
    /// Analyser looking for up to 100 harmonics (eGeMAPS setting).
    pub fn new(n_bins: usize, bin_hz: f64) -> HarmonicsAnalyser {
        let n = (n_bins - 1) * 2;
        let inverse = RealFftPlanner::<f64>::new().plan_fft_inverse(n);
        HarmonicsAnalyser {
            bin_hz,
            n_bins,
            n_harmonics: 100,
            spec: inverse.make_input_vec(),
            acf: inverse.make_output_vec(),
            acf_abs: Vec::with_capacity(n_bins),
            scratch: inverse.make_scratch_vec(),
            inverse,
        }
    }

    fn freq(&self, bin: usize) -> f64 {
        bin as f64 * self.bin_hz
    }

    /// Nearest bin to `f` among the bins from `start` on: the first bin above `f` (at or
    /// after `start`, at least 1) or the one before it, whichever is nearer (0 if no bin from
    /// `start` on lies above `f`). The first bin above `f` is ⌊f / bin_hz⌋ + 1 up to rounding,
    /// checked against the bin frequencies (with a scan where the check fails), so the result
    /// is the scan's without a loop over the bins between.
    fn freq_to_bin(&self, f: f64, start: usize) -> usize {
        let (s, n) = (start.max(1), self.n_bins);
        let estimate = if f.is_nan() {
            s
        } else {
            ((f / self.bin_hz).max(0.0) as usize).saturating_add(1)
        };
        let mut b = estimate.max(s);
        if b > s && self.freq(b - 1) > f {
            b -= 1;
        }
        if b < n && self.freq(b) <= f {
            b += 1;
        }
        let first_above = (b == s || self.freq(b - 1) <= f) && (b >= n || self.freq(b) > f);
        if !first_above {
            return self.freq_to_bin_scan(f, start);
        }
        if b >= n {
            return 0;
        }
        if self.freq(b) - f > f - self.freq(b - 1) {
            b - 1
        } else {
            b
        }
    }

    /// [`HarmonicsAnalyser::freq_to_bin`] by scanning upwards from `start`.
    fn freq_to_bin_scan(&self, f: f64, start: usize) -> usize {
        for b in start.max(1)..self.n_bins {
            if self.freq(b) > f {
                return if self.freq(b) - f > f - self.freq(b - 1) {
                    b - 1
                } else {
                    b
                };
            }
        }
        0
    }

    /// HNR in dB from the autocorrelation (inverse FFT of the power spectrum) at the lag of F0.
    pub fn acf_hnr_db(&mut self, mags: &[f64], f0: f64) -> f64 {
        if f0 <= 0.0 {
            return 0.0;
        }
        for (c, &m) in self.spec.iter_mut().zip(mags) {
            *c = Complex::new(m * m, 0.0);
        }
        if let Some(last) = self.spec.last_mut() {
            last.im = 0.0;
        }
        self.spec[0].im = 0.0;
        if self
            .inverse
            .process_with_scratch(&mut self.spec, &mut self.acf, &mut self.scratch)
            .is_err()
        {
            return 0.0;
        }
        self.acf_abs.clear();
        self.acf_abs
            .extend(self.acf[..self.n_bins].iter().map(|v| v.abs()));
        let acf = &self.acf_abs;
        let fs = self.freq(self.n_bins - 1) * 2.0;
        let lag = (fs / f0).floor() as usize;
        if lag == 0 {
            return 0.0;
        }
        let peak = closest_peak(acf, lag.min(acf.len() - 1));
        if peak == 0 {
            return 0.0;
        }
        let d = acf[0] - acf[peak];
        let ratio = if d == 0.0 { 1e11 } else { acf[peak] / d };
        10.0 * ratio.clamp(1e-9, 1e11).log10()
    }

    /// All descriptors of one frame given F0 (Hz, 0 = unvoiced) and formant frequencies F1..F3.
    pub fn frame(&mut self, mags: &[f64], f0: f64, formants: &[f64; 3]) -> HarmonicFrame {
        let hnr = self.acf_hnr_db(mags, f0);
        if f0 <= 0.0 {
            return HarmonicFrame {
                hnr_acf_db: hnr,
                formant_amplitude_db: [LOG_REL_FLOOR; 3],
                ..Default::default()
            };
        }
        let harmonics = self.find_harmonics(mags, f0);
        let formant_idx: Vec<Option<usize>> = formants
            .iter()
            .map(|&fc| strongest_near(&harmonics, fc))
            .collect();
        // openSMILE parses "H1-H2" / "H1-A3" as harmonic slots 1 and 2 (slot 0 is F0 itself) and
        // the harmonic nearest formant 3, so these are differences of the 2nd harmonic.
        let h1_h2 = (harmonics[1].log_rel - harmonics[2].log_rel).clamp(-201.0, 201.0);
        let h1_a3 = match formant_idx[2] {
            Some(i) => (harmonics[1].log_rel - harmonics[i].log_rel).clamp(-201.0, 201.0),
            None => (harmonics[1].log_rel - 201.0).clamp(-201.0, 201.0),
        };
        let mut amp = [0.0; 3];
        for (a, idx) in amp.iter_mut().zip(&formant_idx) {
            *a = idx.map_or(0.0, |i| harmonics[i].log_rel);
        }
        HarmonicFrame {
            hnr_acf_db: hnr,
            h1_h2_db: h1_h2,
            h1_a3_db: h1_a3,
            formant_amplitude_db: amp,
        }
    }

    fn find_harmonics(&self, mags: &[f64], f0: f64) -> Vec<Harmonic> {
        let n = self.n_bins;
        let mut last_bin = self.freq_to_bin(0.5 * f0, 1);
        let first_bin = self.freq_to_bin(0.5 * f0, last_bin);
        let mut hs = vec![Harmonic::default(); self.n_harmonics];
        for (i, h) in hs.iter_mut().enumerate() {
            if (i as f64 + 0.5) * f0 > self.freq(n - 1) {
                // past the Nyquist frequency every harmonic maps to bin 0 and is removed as a
                // duplicate; none of them can reach a descriptor
                h.bin = 0;
                h.log_rel = LOG_REL_FLOOR;
                continue;
            }
            let cand = self.freq_to_bin((i + 1) as f64 * f0, last_bin);
            h.log_rel = LOG_REL_FLOOR;
            if cand >= n {
                h.bin = -1;
                continue;
            }
            let mut peak: Option<usize> = if is_peak(mags, cand) {
                Some(cand)
            } else {
                None
            };
            if peak.is_none() {
                let lower = self.freq_to_bin((i as f64 + 0.5) * f0, last_bin) as i64;
                let upper = self.freq_to_bin((i as f64 + 1.5) * f0, cand) as i64;
                let (mut l, mut r) = (cand as i64 - 1, cand as i64 + 1);
                while (l >= lower || r <= upper) && peak.is_none() {
                    if r <= upper {
                        if r >= 0 && is_peak(mags, r as usize) {
                            peak = Some(r as usize);
                            break;
                        }
                        r += 1;
                    }
                    if l >= lower {
                        if l >= 0 && is_peak(mags, l as usize) {
                            peak = Some(l as usize);
                            break;
                        }
                        l -= 1;
                    }
                }
            }
            match peak {
                Some(p) if p >= first_bin && p + 1 < n && p >= 1 => {
                    let (fx, my) = super::shs::quad_peak(
                        self.freq(p - 1),
                        mags[p - 1],
                        self.freq(p),
                        mags[p],
                        self.freq(p + 1),
                        mags[p + 1],
                    );
                    *h = Harmonic {
                        bin: p as i64,
                        freq: fx,
                        magnitude: mags[p],
                        magnitude_interp: my as f32 as f64,
                        log_rel: LOG_REL_FLOOR,
                    };
                }
                _ => {
                    h.bin = cand as i64;
                }
            }
            last_bin = cand;
        }
        // magnitudes relative to the first harmonic, duplicates removed
        let h1 = hs[0].magnitude as f32 as f64;
        let rel = h1 != 0.0;
        let h1_log = if rel { h1.log10() } else { 0.0 };
        hs[0].log_rel = 0.0;
        for i in 1..hs.len() {
            hs[i].log_rel = if !rel {
                LOG_REL_FLOOR
            } else if hs[i].magnitude_interp > 0.0 {
                (20.0 * (hs[i].magnitude_interp.log10() - h1_log)).max(-200.0)
            } else {
                -200.0
            };
            if hs[i].bin == hs[i - 1].bin {
                hs[i] = Harmonic {
                    bin: 0,
                    log_rel: LOG_REL_FLOOR,
                    ..Default::default()
                };
            }
        }
        hs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_bin_equals_the_scan() {
        for (n_bins, bin_hz) in [
            (2049usize, 44100.0 / 4096.0),
            (257, 8000.0 / 512.0),
            (9, 0.1),
        ] {
            let h = HarmonicsAnalyser::new(n_bins, bin_hz);
            let top = bin_hz * n_bins as f64 * 1.1;
            let mut fs: Vec<f64> = (0..4000).map(|i| top * i as f64 / 3999.0).collect();
            // exactly on bins and half-way between them, negative, huge, NaN
            fs.extend((0..n_bins + 2).map(|b| b as f64 * bin_hz));
            fs.extend((0..n_bins).map(|b| (b as f64 + 0.5) * bin_hz));
            fs.extend([-5.0, 1e300, f64::INFINITY, f64::NAN]);
            for &f in &fs {
                for start in [0usize, 1, 2, 7, n_bins / 2, n_bins - 1, n_bins, n_bins + 3] {
                    assert_eq!(
                        h.freq_to_bin(f, start),
                        h.freq_to_bin_scan(f, start),
                        "f {f} start {start} bins {n_bins}"
                    );
                }
            }
        }
    }
}

/// Index of the harmonic with the largest magnitude within [0.8, 1.2] × `fc`.
fn strongest_near(hs: &[Harmonic], fc: f64) -> Option<usize> {
    let (lo, hi) = ((0.8 * fc) as f32 as f64, (1.2 * fc) as f32 as f64);
    let mut best: Option<usize> = None;
    let mut max = 0.0;
    for (i, h) in hs.iter().enumerate() {
        if h.freq >= lo && h.freq <= hi && h.magnitude > max {
            best = Some(i);
            max = h.magnitude;
        }
    }
    best
}

fn is_peak(x: &[f64], n: usize) -> bool {
    let len = x.len();
    if n >= len {
        return false;
    }
    if n + 1 < len {
        if n > 0 {
            x[n] > x[n - 1] && x[n] > x[n + 1]
        } else {
            x[0] > x[1]
        }
    } else {
        n > 0 && x[n] > x[n - 1]
    }
}

/// Nearest local maximum to `idx`, searching outwards (left first at equal distance).
fn closest_peak(x: &[f64], idx: usize) -> usize {
    if is_peak(x, idx) {
        return idx;
    }
    let n = x.len();
    let mut o = 1usize;
    while idx > o || idx + o < n - 1 {
        if idx > o && is_peak(x, idx - o) {
            return idx - o;
        }
        if idx + o < n - 1 && is_peak(x, idx + o) {
            return idx + o;
        }
        o += 1;
    }
    let (first, last) = (x[0], x[n - 1]);
    if first > x[idx] && last <= x[idx] {
        0
    } else if first <= x[idx] && last > x[idx] {
        n - 1
    } else if first > x[idx] && last > x[idx] {
        if idx < n / 2 {
            0
        } else {
            n - 1
        }
    } else {
        idx
    }
}
