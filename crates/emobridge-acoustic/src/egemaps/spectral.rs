//! The spectral LLDs of eGeMAPS, computed from the 20 ms Hamming-windowed magnitude spectrum:
//! loudness, alpha ratio, Hammarberg index, spectral slopes 0–500 Hz and 500–1500 Hz, spectral
//! flux and MFCC 1–4 — with openSMILE's filter banks, floors and band-edge conventions
//! (`cMelspec`, `cPlp`, `cSpectral`, `cMfcc`).

/// Power floor (1e-7)² used where the log spectrum is needed (openSMILE `specFloor`).
const POWER_FLOOR: f64 = 1e-14;

/// Converts frequency to mel (HTK form, 1127 ln(1 + f/700)).
pub fn hz_to_mel(f: f64) -> f64 {
    if f > 0.0 {
        1127.0 * (1.0 + f / 700.0).ln()
    } else {
        0.0
    }
}

/// Converts mel back to frequency.
pub fn mel_to_hz(m: f64) -> f64 {
    700.0 * ((m / 1127.0).exp() - 1.0)
}

/// Triangular mel filter bank over power spectra, laid out as openSMILE's `cMelspec` does:
/// band edges equally spaced in mel between `lo_hz` and `hi_hz`, bins strictly between the
/// edge bins used, each bin split between the falling slope of one band and the rising slope
/// of the next.
#[derive(Debug, Clone)]
pub struct MelBank {
    n_bands: usize,
    lo_bin: usize,
    hi_bin: usize,
    /// Band receiving the falling-slope share of each bin (−1: none, −3: bin unused).
    chan: Vec<i64>,
    /// Falling-slope weight of each bin.
    weight: Vec<f64>,
    /// Centre frequency of each band in Hz.
    pub centres_hz: Vec<f64>,
}

impl MelBank {
    /// Bank of `n_bands` filters for `n_bins` magnitude bins spaced `bin_hz` apart.
    pub fn new(n_bands: usize, lo_hz: f64, hi_hz: f64, n_bins: usize, bin_hz: f64) -> MelBank {
        let nyquist = bin_hz * (n_bins - 1) as f64;
        let lo_hz = if lo_hz < 0.0 || lo_hz > nyquist || lo_hz > hi_hz {
            0.0
        } else {
            lo_hz
        };
        let hi_hz = if hi_hz < lo_hz || hi_hz > nyquist || hi_hz <= 0.0 {
            nyquist
        } else {
            hi_hz
        };
        let (lo_mel, hi_mel) = (hz_to_mel(lo_hz), hz_to_mel(hi_hz));
        let step = (hi_mel - lo_mel) / (n_bands as f64 + 1.0);
        let cfs: Vec<f64> = (0..=n_bands + 1)
            .map(|m| lo_mel + m as f64 * step)
            .collect();
        let lo_bin = ((lo_hz / bin_hz).round() as usize).min(n_bins);
        let hi_bin = ((hi_hz / bin_hz).round() as usize).min(n_bins);
        let bin_mel = |n: usize| hz_to_mel(n as f64 * bin_hz);
        let mut chan = vec![-3i64; n_bins];
        let mut m = 0usize;
        for (n, c) in chan.iter_mut().enumerate() {
            if n <= lo_bin || n >= hi_bin {
                continue;
            }
            while cfs[m] < bin_mel(n) {
                if m > n_bands {
                    break;
                }
                m += 1;
            }
            *c = m as i64 - 2;
        }
        let mut weight = vec![0.0; n_bins];
        let mut m = 0usize;
        for (n, w) in weight.iter_mut().enumerate().take(hi_bin).skip(lo_bin) {
            let nm = bin_mel(n);
            while nm > cfs[m + 1] && m <= n_bands {
                m += 1;
            }
            *w = (cfs[m + 1] - nm) / (cfs[m + 1] - cfs[m]);
        }
        let centres_hz = (1..=n_bands).map(|m| mel_to_hz(cfs[m])).collect();
        MelBank {
            n_bands,
            lo_bin,
            hi_bin,
            chan,
            weight,
            centres_hz,
        }
    }

    /// Band energies of one power spectrum.
    pub fn apply(&self, power: &[f64], out: &mut Vec<f64>) {
        out.clear();
        out.resize(self.n_bands, 0.0);
        for n in self.lo_bin..self.hi_bin.min(power.len()) {
            let m = self.chan[n];
            if m <= -2 {
                continue;
            }
            let falling = power[n] * self.weight[n];
            if m >= 0 {
                out[m as usize] += falling;
            }
            if m < self.n_bands as i64 - 1 {
                out[(m + 1) as usize] += power[n] - falling;
            }
        }
    }
}

/// Hermansky's (1990) equal-loudness weight, scaled to a maximum of 1 (openSMILE's non-HTK curve).
pub fn equal_loudness_weight(f: f64) -> f64 {
    let w2 = (2.0 * std::f64::consts::PI * f).powi(2);
    let c = w2 + 6.3e6;
    1e32 * ((w2 + 56.8e6) * w2 * w2) / (c * c * (w2 + 0.38e9) * (w2 * w2 * w2 * w2.sqrt() + 1.7e31))
}

/// Per-frame spectral analyser holding the filter banks and the previous spectrum (for flux).
pub struct SpectralLlds {
    bin_hz: f64,
    loud_bank: MelBank,
    loud_weights: Vec<f64>,
    dct: Vec<Vec<f64>>,
    lifter: Vec<f64>,
    flux_hi_bin: usize,
    prev_mags: Option<Vec<f64>>,
    slopes: Vec<SlopeBand>,
    power: Vec<f64>,
    bands: Vec<f64>,
    /// Band powers in dB, up to the last bin a slope band reads.
    db: Vec<f64>,
}

/// One frame of spectral LLDs (before smoothing).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SpectralFrame {
    pub loudness: f64,
    pub alpha_ratio: f64,
    pub hammarberg: f64,
    pub slope_0_500: f64,
    pub slope_500_1500: f64,
    pub flux: f64,
    pub mfcc: [f64; 4],
}

/// Regression band of `cSpectral` slopes: first/last bin with fractional edge weights.
#[derive(Debug, Clone, Copy)]
struct SlopeBand {
    lo: usize,
    hi: usize,
    w_lo: f64,
    w_hi: f64,
    n_ind: f64,
}

impl SlopeBand {
    fn new(lo_hz: f64, hi_hz: f64, n_bins: usize, bin_hz: f64) -> SlopeBand {
        let e = crate::dsp::BandEdges::new(lo_hz, hi_hz, n_bins, bin_hz);
        SlopeBand {
            lo: e.first,
            hi: e.last,
            w_lo: e.first_weight,
            w_hi: e.last_weight,
            n_ind: e.last as f64 - e.first as f64,
        }
    }

    /// Least-squares slope of `db` over frequency, openSMILE's weighted form (N = hi − lo).
    fn slope(&self, db: &[f64], bin_hz: f64) -> f64 {
        let f = |i: usize| i as f64 * bin_hz;
        let (lo, hi) = (self.lo, self.hi);
        let mut sf = f(lo) * self.w_lo;
        let mut s2f = sf * sf;
        let mut sum_a = f(lo) * self.w_lo * db[lo];
        let mut sum_b = self.w_lo * db[lo];
        for i in lo + 1..hi {
            s2f += f(i) * f(i);
            sf += f(i);
            sum_a += f(i) * db[i];
            sum_b += db[i];
        }
        let fh = f(hi) * self.w_hi;
        s2f += fh * fh;
        sf += fh;
        sum_a += fh * db[hi];
        sum_b += self.w_hi * db[hi];
        let deno = self.n_ind * s2f - sf * sf;
        if deno != 0.0 {
            (self.n_ind * sum_a - sf * sum_b) / deno
        } else {
            0.0
        }
    }
}

impl SpectralLlds {
    /// Analyser for magnitude spectra of `n_bins` bins spaced `bin_hz` apart.
    pub fn new(n_bins: usize, bin_hz: f64) -> SpectralLlds {
        let loud_bank = MelBank::new(26, 20.0, 8000.0, n_bins, bin_hz);
        let loud_weights = loud_bank
            .centres_hz
            .iter()
            .map(|&f| equal_loudness_weight(f))
            .collect();
        let n_mel = 26usize;
        let dct = (1..=4)
            .map(|i| {
                (0..n_mel)
                    .map(|m| {
                        (std::f64::consts::PI * i as f64 / n_mel as f64 * (m as f64 + 0.5)).cos()
                    })
                    .collect()
            })
            .collect();
        let lifter = (1..=4)
            .map(|i| 1.0 + 11.0 * (std::f64::consts::PI * i as f64 / 22.0).sin())
            .collect();
        // flux range 0–5000 Hz: the last bin strictly below 5000 Hz
        let flux_hi_bin = (0..n_bins)
            .rev()
            .find(|&i| (i as f64 * bin_hz) < 5000.0)
            .unwrap_or(0);
        let slopes = vec![
            SlopeBand::new(0.0, 500.0, n_bins, bin_hz),
            SlopeBand::new(500.0, 1500.0, n_bins, bin_hz),
        ];
        SpectralLlds {
            bin_hz,
            loud_bank,
            loud_weights,
            dct,
            lifter,
            flux_hi_bin,
            prev_mags: None,
            slopes,
            power: Vec::new(),
            bands: Vec::new(),
            db: Vec::new(),
        }
    }

    /// LLDs of one magnitude spectrum; frames must be fed in time order (flux needs the previous one).
    pub fn frame(&mut self, mags: &[f64]) -> SpectralFrame {
        self.power.clear();
        self.power.extend(mags.iter().map(|m| m * m));
        let mut out = SpectralFrame {
            loudness: self.loudness(),
            ..Default::default()
        };
        let (alpha, hammarberg) = self.alpha_hammarberg();
        out.alpha_ratio = alpha;
        out.hammarberg = hammarberg;
        // the slopes read bins up to their upper edges only: no dB value past them is needed
        let top = self.slopes.iter().map(|s| s.hi + 1).max().unwrap_or(0);
        let mut db = std::mem::take(&mut self.db);
        db.clear();
        db.extend(self.power.iter().take(top).map(|&p| {
            if p <= POWER_FLOOR {
                10.0 * POWER_FLOOR.log10()
            } else {
                10.0 * p.log10()
            }
        }));
        out.slope_0_500 = self.slopes[0].slope(&db, self.bin_hz);
        out.slope_500_1500 = self.slopes[1].slope(&db, self.bin_hz);
        self.db = db;
        out.flux = self.flux(mags);
        out.mfcc = self.mfcc();
        out
    }

    /// Mean over 26 mel bands of (band power · equal-loudness weight)^0.33: the `cPlp` auditory
    /// spectrum reduced by `cVectorOperation ll1` (which divides the L1 norm by the band count).
    fn loudness(&mut self) -> f64 {
        // the loudness and MFCC banks are the same 26-band 20–8000 Hz bank: compute it once
        self.loud_bank.apply(&self.power, &mut self.bands);
        let sum: f64 = self
            .bands
            .iter()
            .zip(&self.loud_weights)
            .map(|(&b, &w)| (b.max(9.3e-10) * w).powf(0.33))
            .sum();
        sum / self.bands.len() as f64
    }

    /// Alpha ratio (dB energy 1–5 kHz over 0–1 kHz) and Hammarberg index (dB peak 0–2 kHz over 2–5 kHz).
    fn alpha_hammarberg(&self) -> (f64, f64) {
        let (mut low, mut high, mut max02, mut max25) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for (j, &p) in self.power.iter().enumerate() {
            let f = j as f64 * self.bin_hz;
            if f > 5000.0 {
                break;
            }
            if f < 1000.0 {
                low += p;
            } else {
                high += p;
            }
            if f < 2000.0 {
                max02 = max02.max(p);
            } else {
                max25 = max25.max(p);
            }
        }
        let alpha = if low > 0.0 {
            10.0 * (high.max(POWER_FLOOR)).log10() - 10.0 * low.log10()
        } else {
            0.0
        };
        let hammarberg = if max25 > 0.0 {
            10.0 * (max02.max(POWER_FLOOR)).log10() - 10.0 * max25.log10()
        } else {
            0.0
        };
        (alpha, hammarberg)
    }

    /// Root mean squared magnitude difference to the previous frame over 0 Hz up to below 5 kHz.
    fn flux(&mut self, mags: &[f64]) -> f64 {
        let hi = self.flux_hi_bin;
        let flux = match &self.prev_mags {
            None => 0.0,
            Some(prev) => {
                let sum: f64 = (0..=hi).map(|j| (mags[j] - prev[j]).powi(2)).sum();
                let mean = sum / (hi + 1) as f64;
                if mean > 0.0 {
                    mean.sqrt()
                } else {
                    0.0
                }
            }
        };
        self.prev_mags = Some(mags[..=hi].to_vec());
        flux
    }

    /// HTK-style MFCC 1–4: mel power ×32767², floor 1, natural log, DCT-II √(2/26), lifter 22.
    fn mfcc(&mut self) -> [f64; 4] {
        // `self.bands` still holds this frame's bank output from `loudness`
        let scale = 32767.0f64 * 32767.0;
        let logs: Vec<f64> = self
            .bands
            .iter()
            .map(|&b| (b * scale).max(1.0).ln())
            .collect();
        let factor = (2.0 / logs.len() as f64).sqrt();
        let mut out = [0.0; 4];
        for (k, o) in out.iter_mut().enumerate() {
            let s: f64 = logs.iter().zip(&self.dct[k]).map(|(l, c)| l * c).sum();
            *o = s * factor * self.lifter[k];
        }
        out
    }
}

/// Mean power (mean of squared samples) of one un-windowed frame (`cEnergy energy2`).
pub fn mean_power(frame: &[f64]) -> f64 {
    if frame.is_empty() {
        0.0
    } else {
        frame.iter().map(|x| x * x).sum::<f64>() / frame.len() as f64
    }
}

/// Root-mean-square of a (windowed) frame (`cEnergy rms`).
pub fn rms(frame: &[f64]) -> f64 {
    mean_power(frame).sqrt()
}
