//! Spectral shape descriptors of one short-frame power spectrum, as openSMILE's ComParE set
//! defines them: two band energies, four roll-off points, flux, centroid, entropy, the second to
//! fourth central moments, slope, psychoacoustic sharpness and harmonicity.
//!
//! All statistics run over bins 1..=N/2 (DC excluded, Nyquist included) of the power spectrum;
//! only the flux uses magnitudes. The slope keeps openSMILE's historic scaling by (bins − 1).

/// Number of values [`SpectralAnalyser::describe`] writes.
pub const N_SPECTRAL: usize = 15;

/// Band edges (Hz) of the two band energies.
const BANDS_HZ: [(f64, f64); 2] = [(250.0, 650.0), (1000.0, 4000.0)];
/// Roll-off fractions.
const ROLL_OFFS: [f64; 4] = [0.25, 0.50, 0.75, 0.90];
/// Floor of each normalised power in the entropy.
const ENTROPY_FLOOR: f64 = 1e-7;

/// Per-FFT-size tables plus the previous frame's magnitudes (for the flux).
#[derive(Debug, Clone)]
pub struct SpectralAnalyser {
    freqs: Vec<f64>,
    band_spans: Vec<BandSpan>,
    sharpness_weights: Vec<f64>,
    /// Σ f and Σ f² over bins 1.. (the slope's constant sums, summed in bin order).
    sum_f: f64,
    sum_f2: f64,
    prev_magnitudes: Vec<f64>,
    /// False until the first frame (which has no flux).
    has_prev: bool,
}

/// A rectangular band with fractional first and last bins (openSMILE's band edges).
type BandSpan = crate::dsp::BandEdges;

impl SpectralAnalyser {
    pub fn new(n_bins: usize, bin_hz: f64) -> SpectralAnalyser {
        let freqs: Vec<f64> = (0..n_bins).map(|i| i as f64 * bin_hz).collect();
        let band_spans = BANDS_HZ
            .iter()
            .map(|&(lo, hi)| band_span(n_bins, bin_hz, lo, hi))
            .collect();
        let sharpness_weights = freqs
            .iter()
            .map(|&f| {
                let z = hz_to_bark(f);
                z * zwicker_g(z)
            })
            .collect();
        let sum_f = freqs.iter().skip(1).sum();
        let sum_f2 = freqs.iter().skip(1).map(|f| f * f).sum();
        SpectralAnalyser {
            freqs,
            band_spans,
            sharpness_weights,
            sum_f,
            sum_f2,
            prev_magnitudes: Vec::with_capacity(n_bins),
            has_prev: false,
        }
    }

    /// Describe the next frame; `power` = squared magnitudes, `magnitudes` their roots.
    ///
    /// Two passes over the bins instead of one per statistic; every sum still adds its terms in
    /// bin order, so the values are those of the one-statistic-per-pass definitions below
    /// (`roll_offs`, `entropy`, `moments`, `slope`) bit for bit.
    pub fn describe(&mut self, power: &[f64], magnitudes: &[f64], out: &mut [f64; N_SPECTRAL]) {
        let n = power.len();
        let n_bins = (n - 1) as f64;
        let (p, f, sw) = (
            &power[1..],
            &self.freqs[1..n],
            &self.sharpness_weights[1..n],
        );
        // pass 1: total, first moment, sharpness
        let (mut total, mut weighted, mut sharp) = (0.0f64, 0.0f64, 0.0f64);
        for ((&pj, &fj), &wj) in p.iter().zip(f).zip(sw) {
            total += pj;
            weighted += fj * pj;
            sharp += wj * pj;
        }
        for (k, span) in self.band_spans.iter().enumerate() {
            out[k] = band_energy(span, power) / n_bins;
        }
        let centroid = if total != 0.0 { weighted / total } else { 0.0 };
        // pass 2: roll-offs, entropy, central moments
        let mut found = [0.0f64; 4];
        let thresholds = ROLL_OFFS.map(|r| r * total);
        let mut next_roll_off = 0usize;
        let mut cumulative = 0.0;
        let entropy_sum = total.max(ENTROPY_FLOOR);
        let mut entropy = 0.0f64;
        let (mut m2, mut m3, mut m4) = (0.0, 0.0, 0.0);
        for (&pj, &fj) in p.iter().zip(f) {
            cumulative += pj;
            // thresholds rise and the cumulative sum never falls: slots fill in order
            while next_roll_off < 4 && cumulative >= thresholds[next_roll_off] {
                found[next_roll_off] = fj;
                next_roll_off += 1;
            }
            let q = pj.max(ENTROPY_FLOOR) / entropy_sum;
            entropy += q * q.log2();
            let d = fj - centroid;
            let w = d * d * pj;
            m2 += w;
            m3 += w * d;
            m4 += w * d * d;
        }
        out[2..6].copy_from_slice(&found);
        out[6] = self.flux(magnitudes);
        out[7] = centroid;
        out[8] = -entropy;
        let (variance, skewness, kurtosis) = finish_moments(m2, m3, m4, total);
        out[9] = variance;
        out[10] = skewness;
        out[11] = kurtosis;
        out[12] = slope_from_sums(n - 1, self.sum_f, self.sum_f2, weighted, total);
        out[13] = if total != 0.0 {
            0.11 * sharp / total
        } else {
            0.0
        };
        out[14] = harmonicity(power) / n_bins;
    }

    /// Root-mean-square magnitude difference to the previous frame (0 for the first frame).
    fn flux(&mut self, magnitudes: &[f64]) -> f64 {
        let current = &magnitudes[1..];
        let value = if self.has_prev {
            let sum: f64 = current
                .iter()
                .zip(&self.prev_magnitudes)
                .map(|(a, b)| (a - b) * (a - b))
                .sum();
            let mean = sum / current.len() as f64;
            if mean > 0.0 {
                mean.sqrt()
            } else {
                0.0
            }
        } else {
            0.0
        };
        self.prev_magnitudes.clear();
        self.prev_magnitudes.extend_from_slice(current);
        self.has_prev = true;
        value
    }
}

/// Energy of a band: the edge bins weighted, the bins between them summed.
fn band_energy(b: &BandSpan, power: &[f64]) -> f64 {
    let mut sum = power[b.first] * b.first_weight;
    for p in &power[(b.first + 1).min(b.last)..b.last] {
        sum += p;
    }
    sum + power[b.last] * b.last_weight
}

/// openSMILE's band edges ([`crate::dsp::BandEdges`]); the last bin never precedes the first.
fn band_span(n_bins: usize, bin_hz: f64, lo: f64, hi: f64) -> BandSpan {
    let mut b = BandSpan::new(lo, hi, n_bins, bin_hz);
    b.last = b.last.max(b.first);
    b
}

/// Variance, skewness and kurtosis from the power-weighted central sums `m2..m4`.
fn finish_moments(m2: f64, m3: f64, m4: f64, total: f64) -> (f64, f64, f64) {
    let variance = if total != 0.0 { m2 / total } else { 0.0 };
    let skewness = if variance > 0.0 {
        m3 / (total * variance * variance.sqrt())
    } else {
        0.0
    };
    let kurtosis = if variance != 0.0 {
        m4 / (total * variance * variance)
    } else {
        0.0
    };
    (variance, skewness, kurtosis)
}

/// Least-squares slope of power over frequency, times (bins − 1) as openSMILE scales it, from
/// Σ f and Σ f² over its `bins` frequencies.
fn slope_from_sums(bins: usize, sf: f64, s2f: f64, weighted: f64, total: f64) -> f64 {
    let n = bins as f64;
    let denominator = n * s2f - sf * sf;
    let slope = if denominator != 0.0 {
        (n * weighted - sf * total) / denominator
    } else {
        0.0
    };
    slope * (n - 1.0)
}

/// Half the summed jumps between successive local extrema (±2-bin neighbourhoods).
fn harmonicity(power: &[f64]) -> f64 {
    let upper = power.len() - 1;
    let mut sum = 0.0;
    let mut last_extremum: Option<f64> = None;
    for j in 3..upper.saturating_sub(1) {
        let v = power[j];
        let is_max = power[j - 2] < v && power[j - 1] < v && v > power[j + 1] && v > power[j + 2];
        let is_min = power[j - 2] > v && power[j - 1] > v && v < power[j + 1] && v < power[j + 2];
        if is_max || is_min {
            if let Some(prev) = last_extremum {
                sum += (v - prev).abs();
            }
            last_extremum = Some(v);
        }
    }
    sum / 2.0
}

/// Critical-band rate (Traunmüller 1990, with his low and high corrections).
fn hz_to_bark(hz: f64) -> f64 {
    if hz <= 0.0 {
        return 0.0;
    }
    let z = 26.81 / (1.0 + 1960.0 / hz) - 0.53;
    if z < 2.0 {
        0.85 * z + 0.3
    } else if z > 20.1 {
        1.22 * z - 0.22 * 20.1
    } else {
        z
    }
}

/// Zwicker's sharpness weighting g(z).
fn zwicker_g(z: f64) -> f64 {
    if z <= 16.0 {
        1.0
    } else {
        ((z - 16.0) / 4.0).powf(1.5849625) + 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pure_tone_centroid_and_rolloff_sit_on_the_tone() {
        let mut a = SpectralAnalyser::new(257, 31.25);
        let mut power = vec![0.0; 257];
        power[32] = 1.0; // 1000 Hz
        let mags: Vec<f64> = power.iter().map(|p: &f64| p.sqrt()).collect();
        let mut out = [0.0; N_SPECTRAL];
        a.describe(&power, &mags, &mut out);
        assert!((out[7] - 1000.0).abs() < 1e-9);
        assert!(out[2..6].iter().all(|&r| (r - 1000.0).abs() < 1e-9));
        assert_eq!(out[6], 0.0, "first frame has no flux");
        assert!(out[9].abs() < 1e-9, "a single line has no spread");
    }
}
