//! DSP conventions shared by eGeMAPS and ComParE, in one place: frame counting and framing
//! ([`frame_count`], [`lld_row_count`], [`FrameGeometry`], [`frame_at`]), windows and FFT
//! magnitudes (from `emobridge_audio::frames`), the mel filter bank ([`MelBank`]) and
//! openSMILE's mapping of band edges in Hz onto FFT bins ([`BandEdges`]).

pub use crate::egemaps::frames::{frame_at, lld_row_count, FrameGeometry};
pub use crate::egemaps::spectral::{equal_loudness_weight, hz_to_mel, mel_to_hz, MelBank};
pub use emobridge_audio::frames::{frame_count, gauss, hamming, MagnitudeFft};

/// A frequency band `[lo_hz, hi_hz]` on the bins `k · bin_hz` of a spectrum, as openSMILE's
/// `cSpectral` maps it: the lower edge goes to the last bin at or below it, weighted by the share
/// of the bin interval above the edge; the upper edge to the bin on it, or else the last bin below
/// it, weighted by its distance from that bin over the bin spacing. A weight that comes out 0 is
/// taken as 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BandEdges {
    /// First bin of the band.
    pub first: usize,
    /// Weight of the first bin.
    pub first_weight: f64,
    /// Last bin of the band.
    pub last: usize,
    /// Weight of the last bin.
    pub last_weight: f64,
}

impl BandEdges {
    /// The band `[lo_hz, hi_hz]` over `n_bins` bins spaced `bin_hz` apart.
    pub fn new(lo_hz: f64, hi_hz: f64, n_bins: usize, bin_hz: f64) -> BandEdges {
        let frq = |i: usize| i as f64 * bin_hz;
        let i = (0..n_bins).find(|&i| frq(i) > lo_hz).unwrap_or(n_bins);
        let mut first_weight = if i < n_bins && i > 0 {
            (frq(i) - lo_hz) / bin_hz
        } else {
            1.0
        };
        let first = i.saturating_sub(1).min(n_bins - 1);
        let k = (0..n_bins).find(|&i| frq(i) >= hi_hz).unwrap_or(n_bins);
        let mut last_weight = if k < n_bins && k > 0 {
            (hi_hz - frq(k - 1)) / bin_hz
        } else {
            1.0
        };
        let last = if k < n_bins && frq(k) == hi_hz {
            k
        } else {
            k.saturating_sub(1)
        }
        .min(n_bins - 1);
        if first_weight == 0.0 {
            first_weight = 1.0;
        }
        if last_weight == 0.0 {
            last_weight = 1.0;
        }
        BandEdges {
            first,
            first_weight,
            last,
            last_weight,
        }
    }
}

/// Appends `src` to `dst` as f64 (the same values as `v as f64`; the conversion loop compiled
/// for AVX2 too and chosen at run time).
pub(crate) fn extend_f64(dst: &mut Vec<f64>, src: &[f32]) {
    emobridge_audio::dispatch_avx2!(extend_f64_avx2, extend_f64_body, (dst, src))
}

#[inline(always)]
fn extend_f64_body(dst: &mut Vec<f64>, src: &[f32]) {
    dst.extend(src.iter().map(|&v| v as f64));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn extend_f64_avx2(dst: &mut Vec<f64>, src: &[f32]) {
    extend_f64_body(dst, src)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_edges_match_opensmile_bins_at_16k() {
        // 512-point FFT at 16 kHz: 31.25 Hz bins; 250 Hz is bin 8 exactly, 650 Hz lies 0.8 of
        // the way from bin 20 to bin 21
        let b = BandEdges::new(250.0, 650.0, 257, 31.25);
        assert_eq!((b.first, b.last), (8, 20));
        assert!((b.first_weight - 1.0).abs() < 1e-12 && (b.last_weight - 0.8).abs() < 1e-12);
        // 0 Hz: the first bin with full weight; an edge on a bin keeps that bin
        let b = BandEdges::new(0.0, 500.0, 257, 31.25);
        assert_eq!((b.first, b.last), (0, 16));
        assert_eq!((b.first_weight, b.last_weight), (1.0, 1.0));
    }

    #[test]
    fn frame_counts_agree() {
        // complete frames, and openSMILE's LLD rows (one more, none below one frame)
        assert_eq!(frame_count(16_000, 960, 160), 95);
        assert_eq!(lld_row_count(16_000, 960, 160), 96);
        assert_eq!(lld_row_count(959, 960, 160), 0);
    }
}
