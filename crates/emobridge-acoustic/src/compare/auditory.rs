//! Auditory spectra (PLP front end without the LP part): equal-loudness weighting and cube-root
//! style compression of the Mel power bands, plain and RASTA-filtered.
//!
//! The RASTA variant takes the log of each band, runs it through the band-pass RASTA filter
//! (1–29 Hz at the 100 Hz frame rate; FIR numerator with an IIR pole that is switched on after the
//! first five frames, during which the output is held at zero), adds the log equal-loudness
//! weight, compresses in the log domain and exponentiates.

use super::melbands::equal_loudness_weight;

/// Floor applied to Mel band powers before weighting or taking logs.
const MEL_FLOOR: f64 = 9.3e-10;
/// Exponent of the power law of hearing.
const COMPRESSION: f64 = 0.33;
/// Frames that pass before the RASTA filter output and its feedback are enabled.
const RASTA_WARMUP: usize = 5;

/// Plain auditory spectrum of one frame of Mel powers.
pub fn auditory_spectrum(mel: &[f64], loudness: &[f64], out: &mut [f64]) {
    for ((o, &m), &w) in out.iter_mut().zip(mel).zip(loudness) {
        *o = (m.max(MEL_FLOOR) * w).powf(COMPRESSION);
    }
}

/// Equal-loudness weights at the band centres.
pub fn loudness_weights(centres_hz: &[f64]) -> Vec<f64> {
    centres_hz
        .iter()
        .map(|&f| equal_loudness_weight(f))
        .collect()
}

/// Stateful RASTA filter over consecutive frames of Mel powers.
#[derive(Debug, Clone)]
pub struct RastaFilter {
    fir: [f64; 5],
    pole: f64,
    /// Transposed-form delay line, four values per band.
    state: Vec<[f64; 4]>,
    frames_seen: usize,
    log_loudness: Vec<f64>,
}

impl RastaFilter {
    /// `frame_period_s`: time between frames (0.010 s); `loudness`: weights at the band centres.
    pub fn new(frame_period_s: f64, loudness: &[f64]) -> RastaFilter {
        let two_pi = 2.0 * std::f64::consts::PI;
        let (lower_hz, upper_hz) = (1.0, 29.0);
        let pole = 1.0 - (two_pi * lower_hz * frame_period_s).sin();
        let om = (two_pi * upper_hz * frame_period_s).cos();
        let norm = (10.0 * (32.0 * om * om + 8.0)).sqrt();
        let fir = [
            2.0 / norm,
            -4.0 * om / norm,
            0.0,
            4.0 * om / norm,
            -2.0 / norm,
        ];
        RastaFilter {
            fir,
            pole,
            state: vec![[0.0; 4]; loudness.len()],
            frames_seen: 0,
            log_loudness: loudness.iter().map(|w| w.ln()).collect(),
        }
    }

    /// Filter the next frame of Mel powers into its RASTA auditory spectrum.
    pub fn next_frame(&mut self, mel: &[f64], out: &mut [f64]) {
        let warm = self.frames_seen >= RASTA_WARMUP;
        let f = self.fir;
        for (band, (o, &m)) in out.iter_mut().zip(mel).enumerate() {
            let x = m.max(MEL_FLOOR).ln();
            let s = &mut self.state[band];
            let y = f[0] * x + s[0];
            let feedback = if warm { self.pole * y } else { 0.0 };
            s[0] = f[1] * x + s[1] + feedback;
            s[1] = f[2] * x + s[2];
            s[2] = f[3] * x + s[3];
            s[3] = f[4] * x;
            let filtered = if warm { y } else { 0.0 };
            *o = ((filtered + self.log_loudness[band]) * COMPRESSION).exp();
        }
        if !warm {
            self.frames_seen += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rasta_removes_a_constant_band_level() {
        let loud = vec![1.0; 2];
        let mut rasta = RastaFilter::new(0.01, &loud);
        let mut out = vec![0.0; 2];
        for _ in 0..400 {
            rasta.next_frame(&[3.0, 50.0], &mut out);
        }
        // A stationary log level is a DC input: the band-pass filter drives it to zero (exp → 1).
        assert!(
            (out[0] - 1.0).abs() < 1e-3 && (out[1] - 1.0).abs() < 1e-3,
            "{out:?}"
        );
    }
}
