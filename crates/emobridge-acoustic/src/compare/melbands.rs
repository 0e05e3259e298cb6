//! The 26-band triangular Mel filterbank (20–8000 Hz) shared by the auditory spectra and MFCCs.
//!
//! ComParE's `cMelspec` is the same component eGeMAPS uses for loudness and MFCCs (HTK-style
//! centres on `1127 ln(1 + f/700)`, each bin split between the two filters that bracket it), so
//! both sets share one implementation: [`crate::egemaps::spectral::MelBank`].

pub use crate::egemaps::spectral::{equal_loudness_weight, MelBank as MelFilterbank};

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
