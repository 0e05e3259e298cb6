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
    /// Per-bin entropy terms `q · log2 q` of the current frame (computed in a loop that
    /// vectorises, summed in bin order).
    entropy_terms: Vec<f64>,
    /// Per-bin flags of the current frame: the bin is a local extremum (harmonicity).
    extrema: Vec<bool>,
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
            entropy_terms: vec![0.0; n_bins],
            extrema: vec![false; n_bins],
        }
    }

    /// Describe the next frame; `power` = squared magnitudes, `magnitudes` their roots.
    ///
    /// Two passes over the bins instead of one per statistic; every sum adds its terms in bin
    /// order. The entropy's per-bin terms `q · log2 q` come first from a branch-free loop that
    /// vectorises ([`log2_positive`], within a few units in the last place of the libm value),
    /// and the harmonicity's local extrema from another; both are then summed in bin order.
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
        let terms = &mut self.entropy_terms[..p.len()];
        entropy_terms(p, entropy_sum, terms);
        let mut entropy = 0.0f64;
        let (mut m2, mut m3, mut m4) = (0.0, 0.0, 0.0);
        for ((&pj, &fj), &term) in p.iter().zip(f).zip(terms.iter()) {
            cumulative += pj;
            // thresholds rise and the cumulative sum never falls: slots fill in order
            while next_roll_off < 4 && cumulative >= thresholds[next_roll_off] {
                found[next_roll_off] = fj;
                next_roll_off += 1;
            }
            entropy += term;
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
        out[14] = harmonicity(power, &mut self.extrema) / n_bins;
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

/// Half the summed jumps between successive local extrema (±2-bin neighbourhoods). The
/// extrema are flagged first in a branch-free loop (it vectorises), then the jumps are summed in
/// bin order. `flags`: scratch, at least as long as `power`.
fn harmonicity(power: &[f64], flags: &mut [bool]) -> f64 {
    let upper = power.len() - 1;
    let end = upper.saturating_sub(1);
    if end <= 3 {
        return 0.0;
    }
    // bins 3..end, each against its neighbours j-2, j-1, j+1, j+2
    let centre = &power[3..end];
    let (a, b) = (&power[1..end - 2], &power[2..end - 1]);
    let (c, d) = (&power[4..end + 1], &power[5..end + 2]);
    let flags = &mut flags[3..end];
    flag_extrema(centre, [a, b, c, d], flags);
    let mut sum = 0.0;
    let mut last_extremum: Option<f64> = None;
    for (&v, _) in centre.iter().zip(flags.iter()).filter(|&(_, &f)| f) {
        if let Some(prev) = last_extremum {
            sum += (v - prev).abs();
        }
        last_extremum = Some(v);
    }
    sum / 2.0
}

/// `terms[j] = q · log2 q` with `q = max(p[j], floor) / sum` (`sum` ≥ the floor, so q ∈ (0, 1]).
fn entropy_terms(p: &[f64], sum: f64, terms: &mut [f64]) {
    emobridge_audio::dispatch_avx2!(entropy_terms_avx2, entropy_terms_body, (p, sum, terms))
}

#[inline(always)]
fn entropy_terms_body(p: &[f64], sum: f64, terms: &mut [f64]) {
    for (t, &pj) in terms.iter_mut().zip(p) {
        let q = pj.max(ENTROPY_FLOOR) / sum;
        *t = q * log2_positive(q);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn entropy_terms_avx2(p: &[f64], sum: f64, terms: &mut [f64]) {
    entropy_terms_body(p, sum, terms)
}

/// `flags[i]`: `centre[i]` is above all four or below all four of its neighbours
/// `[j − 2, j − 1, j + 1, j + 2]` (`around`, aligned with `centre`).
fn flag_extrema(centre: &[f64], around: [&[f64]; 4], flags: &mut [bool]) {
    emobridge_audio::dispatch_avx2!(
        flag_extrema_avx2,
        flag_extrema_body,
        (centre, around, flags)
    )
}

#[inline(always)]
fn flag_extrema_body(centre: &[f64], [a, b, c, d]: [&[f64]; 4], flags: &mut [bool]) {
    let n = flags.len();
    let (centre, a, b, c, d) = (&centre[..n], &a[..n], &b[..n], &c[..n], &d[..n]);
    for (i, flag) in flags.iter_mut().enumerate() {
        let v = centre[i];
        let is_max = (a[i] < v) & (b[i] < v) & (v > c[i]) & (v > d[i]);
        let is_min = (a[i] > v) & (b[i] > v) & (v < c[i]) & (v < d[i]);
        *flag = is_max | is_min;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn flag_extrema_avx2(centre: &[f64], around: [&[f64]; 4], flags: &mut [bool]) {
    flag_extrema_body(centre, around, flags)
}

/// `log2 x` of a positive normal `x`, branch-free so that a loop over many values vectorises
/// (the libm call does not, and costs several times more): `x = 2^k · m` with `m` in
/// [√½, √2), `ln m = 2 atanh s` with `s = (m − 1)/(m + 1)`, `|s| ≤ 0.1716`, summed as its odd
/// power series to `s^21` (the next term is below 10⁻¹⁸ of the sum). Within a few units in the
/// last place of the correctly rounded value (tested against `f64::log2`).
#[inline(always)]
fn log2_positive(x: f64) -> f64 {
    const MANTISSA: u64 = (1 << 52) - 1;
    const ONE: u64 = 0x3ff0_0000_0000_0000;
    /// `2^52` as bits: `from_bits(TWO52 | n) = 2^52 + n` for `n < 2^52`.
    const TWO52: u64 = 0x4330_0000_0000_0000;
    let bits = x.to_bits();
    let m = f64::from_bits((bits & MANTISSA) | ONE);
    let big = m > std::f64::consts::SQRT_2;
    let m = if big { 0.5 * m } else { m };
    // biased exponent (+1 when m was halved), as an exact f64 without an int-to-float
    // conversion (which baseline x86-64 has no vector form of)
    let e = (bits >> 52) + u64::from(big);
    let k = f64::from_bits(TWO52 | e) - (4_503_599_627_370_496.0 + 1023.0);
    let s = (m - 1.0) / (m + 1.0);
    let z = s * s;
    let mut poly = 1.0 / 21.0;
    for c in [
        1.0 / 19.0,
        1.0 / 17.0,
        1.0 / 15.0,
        1.0 / 13.0,
        1.0 / 11.0,
        1.0 / 9.0,
        1.0 / 7.0,
        1.0 / 5.0,
        1.0 / 3.0,
    ] {
        poly = poly * z + c;
    }
    let ln_m = 2.0 * s + 2.0 * s * z * poly;
    k + ln_m * std::f64::consts::LOG2_E
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
    fn fast_log2_matches_libm() {
        let mut worst = 0.0f64;
        let mut x = 1e-300f64;
        while x < 1e300 {
            for y in [
                x,
                x * 1.000_000_1,
                x * 0.707_106_78,
                x * 0.707_106_79,
                x * 1.414_213_56,
            ] {
                let (fast, exact) = (log2_positive(y), y.log2());
                let err = (fast - exact).abs() / exact.abs().max(1.0);
                worst = worst.max(err);
            }
            x *= 1.37;
        }
        for i in 1..=100_000 {
            let y = i as f64 / 100_000.0;
            let (fast, exact) = (log2_positive(y), y.log2());
            let err = (fast - exact).abs() / exact.abs().max(1e-300);
            worst = worst.max(if exact.abs() < 1.0 {
                (fast - exact).abs()
            } else {
                err
            });
        }
        assert_eq!(log2_positive(1.0), 0.0);
        assert_eq!(log2_positive(0.5), -1.0);
        assert_eq!(log2_positive(1024.0), 10.0);
        assert!(worst < 1e-15, "worst deviation {worst:e}");
    }

    #[test]
    fn harmonicity_sums_jumps_between_extrema() {
        // extrema at 4 (max, 5) and 7 (min, 1) and 10 (max, 4): (|1-5| + |4-1|) / 2
        let p = [
            0.0, 1.0, 2.0, 3.0, 5.0, 3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 2.0, 2.0,
        ];
        let mut flags = vec![false; p.len()];
        assert_eq!(harmonicity(&p, &mut flags), 3.5);
        assert_eq!(harmonicity(&p[..5], &mut flags), 0.0);
    }

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
