//! The 26-band triangular Mel filterbank (20–8000 Hz) shared by the auditory spectra and MFCCs.
//!
//! Filters are HTK-style: centres equally spaced on `1127 ln(1 + f/700)`, each FFT bin split
//! between the two filters whose centres bracket it, the bin at the lower edge and everything
//! from the upper edge on left out. Inputs are power spectra (squared magnitudes).

/// Mel value of a frequency in Hz (0 at and below 0 Hz).
pub fn hz_to_mel(hz: f64) -> f64 {
    if hz > 0.0 { 1127.0 * (1.0 + hz / 700.0).ln() } else { 0.0 }
}

/// Frequency in Hz of a Mel value.
pub fn mel_to_hz(mel: f64) -> f64 {
    700.0 * ((mel / 1127.0).exp() - 1.0)
}

/// A precomputed filterbank for one FFT size.
#[derive(Debug, Clone)]
pub struct MelFilterbank {
    n_bands: usize,
    /// First and one-past-last bins visited.
    lo_bin: usize,
    hi_bin: usize,
    /// Band receiving the falling part of each bin (−1: none; −3: bin outside the bank).
    band_of_bin: Vec<i64>,
    /// Share of each bin's power that goes to `band_of_bin` (the rest goes to the next band).
    weight: Vec<f64>,
    /// Centre frequencies of the bands in Hz.
    centres_hz: Vec<f64>,
}

impl MelFilterbank {
    /// `n_bins` = FFT length / 2 + 1; `bin_hz` = bin spacing.
    pub fn new(n_bands: usize, lo_hz: f64, hi_hz: f64, n_bins: usize, bin_hz: f64) -> MelFilterbank {
        let nyquist = bin_hz * ((n_bins - 1) * 2) as f64 / 2.0;
        let lo_hz = if lo_hz < 0.0 || lo_hz > nyquist || lo_hz > hi_hz { 0.0 } else { lo_hz };
        let hi_hz = if hi_hz < lo_hz || hi_hz > nyquist || hi_hz <= 0.0 { nyquist } else { hi_hz };
        let lo_mel = hz_to_mel(lo_hz);
        let half_bw = (hz_to_mel(hi_hz) - lo_mel) / (n_bands as f64 + 1.0);
        let edges: Vec<f64> = (0..=n_bands + 1).map(|m| lo_mel + m as f64 * half_bw).collect();
        let lo_bin = ((lo_hz / bin_hz).round() as usize).min(n_bins);
        let hi_bin = ((hi_hz / bin_hz).round() as usize).min(n_bins);
        let bin_mel = |n: usize| hz_to_mel(n as f64 * bin_hz);

        let mut band_of_bin = vec![-3i64; n_bins];
        let mut m = 0usize;
        for (n, slot) in band_of_bin.iter_mut().enumerate() {
            if n <= lo_bin || n >= hi_bin {
                continue;
            }
            while edges[m] < bin_mel(n) {
                if m > n_bands {
                    break;
                }
                m += 1;
            }
            *slot = m as i64 - 2;
        }
        let mut weight = vec![0.0; n_bins];
        let mut m = 0usize;
        for (n, w) in weight.iter_mut().enumerate().take(hi_bin).skip(lo_bin) {
            let mel = bin_mel(n);
            while m <= n_bands && mel > edges[m + 1] {
                m += 1;
            }
            let upper = edges[(m + 1).min(n_bands + 1)];
            *w = (upper - mel) / (upper - edges[m.min(n_bands)]);
        }
        let centres_hz = (1..=n_bands).map(|m| mel_to_hz(edges[m])).collect();
        MelFilterbank { n_bands, lo_bin, hi_bin, band_of_bin, weight, centres_hz }
    }

    /// Band centre frequencies in Hz (the frequency axis the auditory weighting uses).
    pub fn centres_hz(&self) -> &[f64] {
        &self.centres_hz
    }

    /// Filter a power spectrum into `out` (length `n_bands`).
    pub fn apply(&self, power: &[f64], out: &mut [f64]) {
        out.iter_mut().for_each(|v| *v = 0.0);
        for n in self.lo_bin..self.hi_bin.min(power.len()) {
            let band = self.band_of_bin[n];
            if band <= -2 {
                continue;
            }
            let falling = power[n] * self.weight[n];
            if band >= 0 {
                out[band as usize] += falling;
            }
            if band < self.n_bands as i64 - 1 {
                out[(band + 1) as usize] += power[n] - falling;
            }
        }
    }
}

/// Hermansky's (1990) equal-loudness weight, scaled to a maximum near 1 as openSMILE scales it.
pub fn equal_loudness_weight(hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz;
    let w2 = w * w;
    let c = w2 + 6.3e6;
    if c <= 0.0 {
        return 0.0;
    }
    1e32 * ((w2 + 56.8e6) * w2 * w2) / (c * c * (w2 + 0.38e9) * (w2 * w2 * w2 * w + 1.7e31))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_spectrum_fills_every_band() {
        let fb = MelFilterbank::new(26, 20.0, 8000.0, 257, 31.25);
        let power = vec![1.0; 257];
        let mut out = vec![0.0; 26];
        fb.apply(&power, &mut out);
        assert!(out.iter().all(|&v| v > 0.0));
        // Bands widen with frequency on a Mel axis.
        assert!(out[25] > out[0]);
    }

    #[test]
    fn equal_loudness_peaks_in_the_speech_range() {
        assert!(equal_loudness_weight(100.0) < equal_loudness_weight(3000.0));
        assert!(equal_loudness_weight(3000.0) > equal_loudness_weight(7000.0));
    }
}
