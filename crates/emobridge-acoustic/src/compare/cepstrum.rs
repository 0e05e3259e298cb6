//! HTK-style MFCCs 1–14 from the 26 Mel band powers: log (floored at 1 on the 16-bit sample
//! scale), DCT-II with √(2/26) scaling, sinusoidal lifter with L = 22.

/// First and last cepstral coefficient computed.
pub const FIRST_MFCC: usize = 1;
pub const LAST_MFCC: usize = 14;
const LIFTER: f64 = 22.0;
/// HTK works on integer sample values: band powers are scaled by 32767² before the log.
const HTK_POWER_SCALE: f64 = 32767.0 * 32767.0;
/// Floor of the scaled band powers before the log.
const MEL_FLOOR: f64 = 1.0;

/// Precomputed DCT basis and lifter for a fixed number of bands.
#[derive(Debug, Clone)]
pub struct Mfcc {
    n_bands: usize,
    /// Row-major [coefficient][band] DCT basis, already scaled by lifter and √(2/n).
    basis: Vec<f64>,
    log_bands: Vec<f64>,
}

impl Mfcc {
    pub fn new(n_bands: usize) -> Mfcc {
        let nb = n_bands as f64;
        let scale = (2.0 / nb).sqrt();
        let mut basis = Vec::with_capacity((LAST_MFCC - FIRST_MFCC + 1) * n_bands);
        for i in FIRST_MFCC..=LAST_MFCC {
            let fi = i as f64;
            let lifter = 1.0 + LIFTER / 2.0 * (std::f64::consts::PI * fi / LIFTER).sin();
            for m in 0..n_bands {
                let c = (std::f64::consts::PI * fi / nb * (m as f64 + 0.5)).cos();
                basis.push(c * lifter * scale);
            }
        }
        Mfcc {
            n_bands,
            basis,
            log_bands: vec![0.0; n_bands],
        }
    }

    /// Coefficients 1..=14 of one frame of Mel powers (on the [-1, 1] sample scale).
    pub fn compute(&mut self, mel: &[f64], out: &mut [f64]) {
        for (l, &m) in self.log_bands.iter_mut().zip(mel) {
            *l = (m * HTK_POWER_SCALE).max(MEL_FLOOR).ln();
        }
        for (o, row) in out.iter_mut().zip(self.basis.chunks_exact(self.n_bands)) {
            *o = row.iter().zip(&self.log_bands).map(|(b, l)| b * l).sum();
        }
    }
}
