//! Formant frequencies and bandwidths from LPC roots, after openSMILE's `cSpecResample` →
//! `cLpc` → `cFormantLpc` chain: the 20 ms Hamming-windowed spectrum is band-limited to
//! `target_rate / 2`, its autocorrelation at the `target_rate` sampling grid feeds an order-`p`
//! Levinson–Durbin recursion, the roots of the prediction polynomial (reflected into the unit
//! circle) give formants `f = arg(z)·fs/2π` with bandwidth `b = −ln|z|·fs/π`; roots between
//! `min_hz` and `max_hz` are kept in ascending frequency.
//!
//! openSMILE resamples the time signal before its LPC; this module takes the autocorrelation
//! directly from the band-limited power spectrum, which is the same quantity up to window-edge
//! effects. Formant tracks are fragile in both (root picking flips between candidates), see
//! PARITY.md.

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
        FormantConfig { target_rate: 11000.0, order: 11, min_hz: 50.0, max_hz: 5450.0, n_formants: 5 }
    }
}

/// Formants of one frame, ascending; missing ones are 0.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Formants {
    pub frequency: Vec<f64>,
    pub bandwidth: Vec<f64>,
}

/// Formants of one magnitude spectrum with bins spaced `bin_hz` apart.
pub fn formants_from_spectrum(mags: &[f64], bin_hz: f64, cfg: &FormantConfig) -> Formants {
    let acf = band_limited_acf(mags, bin_hz, cfg.target_rate, cfg.order);
    let lpc = levinson(&acf, cfg.order);
    let mut out = Formants { frequency: vec![0.0; cfg.n_formants], bandwidth: vec![0.0; cfg.n_formants] };
    let Some(a) = lpc else { return out };
    // polynomial z^p + a1 z^(p-1) + ... + ap, coefficients highest power first
    let mut poly = vec![1.0];
    poly.extend_from_slice(&a);
    let roots = polynomial_roots(&poly);
    let mut found: Vec<(f64, f64)> = roots
        .into_iter()
        .map(|z| if z.norm() > 1.0 { 1.0 / z.conj() } else { z })
        .filter(|z| z.im >= 0.0)
        .filter_map(|z| {
            let f = z.im.atan2(z.re) * cfg.target_rate / (2.0 * std::f64::consts::PI);
            let b = -z.norm().ln() * cfg.target_rate / std::f64::consts::PI;
            (f > cfg.min_hz && f < cfg.max_hz).then_some((f, b))
        })
        .collect();
    found.sort_by(|x, y| x.0.total_cmp(&y.0));
    for (k, (f, b)) in found.into_iter().take(cfg.n_formants).enumerate() {
        out.frequency[k] = f;
        out.bandwidth[k] = b;
    }
    out
}

/// Autocorrelation r[0..=order] of the signal band-limited to `rate/2`, sampled at `rate`.
fn band_limited_acf(mags: &[f64], bin_hz: f64, rate: f64, order: usize) -> Vec<f64> {
    let nyq = rate / 2.0;
    let mut r = vec![0.0; order + 1];
    for (k, &m) in mags.iter().enumerate() {
        let f = k as f64 * bin_hz;
        if f >= nyq {
            break;
        }
        let p = m * m * if k == 0 { 1.0 } else { 2.0 };
        // cos(w·lag) by the Chebyshev recurrence c_{l+1} = 2 cos(w) c_l − c_{l−1}
        let c1 = (2.0 * std::f64::consts::PI * f / rate).cos();
        let (mut prev, mut cur) = (c1, 1.0);
        for rv in r.iter_mut() {
            *rv += p * cur;
            let next = 2.0 * c1 * cur - prev;
            prev = cur;
            cur = next;
        }
    }
    r
}

/// Levinson–Durbin recursion: predictor coefficients a1..ap (x[n] + Σ a_k x[n−k] = e[n]).
pub fn levinson(r: &[f64], order: usize) -> Option<Vec<f64>> {
    if r.is_empty() || r[0] <= 0.0 {
        return None;
    }
    let mut a = vec![0.0; order];
    let mut err = r[0];
    for m in 1..=order {
        let mut acc = r[m];
        for i in 1..m {
            acc += a[i - 1] * r[m - i];
        }
        let k = -acc / err;
        let prev = a.clone();
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
    let n = poly.len() - 1;
    if n == 0 {
        return Vec::new();
    }
    let eval = |z: Complex<f64>| poly.iter().fold(Complex::new(0.0, 0.0), |acc, &c| acc * z + c);
    let seed = Complex::new(0.4, 0.9);
    let mut roots: Vec<Complex<f64>> = (0..n).map(|i| seed.powu(i as u32)).collect();
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
            if denom.norm() == 0.0 {
                continue;
            }
            let step = eval(zi) / denom;
            roots[i] = zi - step;
            delta = delta.max(step.norm());
        }
        if delta < 1e-12 {
            break;
        }
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

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
