//! ComParE-2016 low-level descriptors (65 LLDs and their 65 deltas) as openSMILE's
//! `ComParE_2016` configuration defines them, and the windowed mean/std summary of the
//! continuous-emotion paper.
//!
//! Layout of one call (all at the file's own sample rate, hop `round(0.010 · sr)`):
//! - 20 ms frames: RMS energy of the raw frame; Hamming window → power spectrum → 26 Mel bands
//!   (20–8000 Hz) → auditory spectrum (sum: `audspec_lengthL1norm`), RASTA auditory spectrum
//!   (26 bands `audSpec_Rfilt[i]` and their sum), MFCC 1–14; spectral shape descriptors.
//! - 60 ms frames: zero-crossing rate of the raw frame; Gaussian-windowed (σ = 0.4) spectra for
//!   SHS pitch with Viterbi smoothing, voicing probability, jitter, shimmer and HNR.
//! - every stream smoothed by a 3-frame moving average (`_sma`), deltas by ±2-frame regression
//!   (`_de`). Rows: one per complete 60 ms frame plus one (openSMILE's convention).

mod auditory;
mod cepstrum;
mod energy;
pub mod functionals;
mod geometry;
mod melbands;
mod smoothing;
mod spectral;
mod stream;
mod voicing;
pub mod windows;

pub use functionals::{functional_names, Levels, N_FUNCTIONALS};
pub use geometry::Geometry;
pub use stream::{CompareStream, BATCH_ROWS};
pub use windows::{summarise_windows, windows, WindowConfig, WindowSummariser};

use crate::{check_finite, smooth, AcousticError, FeatureFrames, FeatureVector};
use auditory::{auditory_spectrum, loudness_weights, RastaFilter};
use cepstrum::Mfcc;
use emobridge_audio::frames::{hamming, MagnitudeFft};
use melbands::MelFilterbank;
use spectral::{SpectralAnalyser, N_SPECTRAL};

/// Number of LLDs (and of deltas).
pub const N_LLD: usize = 65;
const N_BANDS: usize = 26;
const N_MFCC: usize = 14;
const MEL_LO_HZ: f64 = 20.0;
const MEL_HI_HZ: f64 = 8000.0;
const SMA_WINDOW: usize = 3;
const DELTA_HALF_WINDOW: usize = 2;
// `smoothing::sma3` and `smoothing::delta2` are these two windows
const _: () = assert!(SMA_WINDOW == 3 && DELTA_HALF_WINDOW == 2);
const MIN_RATE: u32 = 1000;

/// The 65 LLD column names in openSMILE's order.
pub const LLD_NAMES: [&str; N_LLD] = [
    "F0final_sma",
    "voicingFinalUnclipped_sma",
    "jitterLocal_sma",
    "jitterDDP_sma",
    "shimmerLocal_sma",
    "logHNR_sma",
    "audspec_lengthL1norm_sma",
    "audspecRasta_lengthL1norm_sma",
    "pcm_RMSenergy_sma",
    "pcm_zcr_sma",
    "audSpec_Rfilt_sma[0]",
    "audSpec_Rfilt_sma[1]",
    "audSpec_Rfilt_sma[2]",
    "audSpec_Rfilt_sma[3]",
    "audSpec_Rfilt_sma[4]",
    "audSpec_Rfilt_sma[5]",
    "audSpec_Rfilt_sma[6]",
    "audSpec_Rfilt_sma[7]",
    "audSpec_Rfilt_sma[8]",
    "audSpec_Rfilt_sma[9]",
    "audSpec_Rfilt_sma[10]",
    "audSpec_Rfilt_sma[11]",
    "audSpec_Rfilt_sma[12]",
    "audSpec_Rfilt_sma[13]",
    "audSpec_Rfilt_sma[14]",
    "audSpec_Rfilt_sma[15]",
    "audSpec_Rfilt_sma[16]",
    "audSpec_Rfilt_sma[17]",
    "audSpec_Rfilt_sma[18]",
    "audSpec_Rfilt_sma[19]",
    "audSpec_Rfilt_sma[20]",
    "audSpec_Rfilt_sma[21]",
    "audSpec_Rfilt_sma[22]",
    "audSpec_Rfilt_sma[23]",
    "audSpec_Rfilt_sma[24]",
    "audSpec_Rfilt_sma[25]",
    "pcm_fftMag_fband250-650_sma",
    "pcm_fftMag_fband1000-4000_sma",
    "pcm_fftMag_spectralRollOff25.0_sma",
    "pcm_fftMag_spectralRollOff50.0_sma",
    "pcm_fftMag_spectralRollOff75.0_sma",
    "pcm_fftMag_spectralRollOff90.0_sma",
    "pcm_fftMag_spectralFlux_sma",
    "pcm_fftMag_spectralCentroid_sma",
    "pcm_fftMag_spectralEntropy_sma",
    "pcm_fftMag_spectralVariance_sma",
    "pcm_fftMag_spectralSkewness_sma",
    "pcm_fftMag_spectralKurtosis_sma",
    "pcm_fftMag_spectralSlope_sma",
    "pcm_fftMag_psySharpness_sma",
    "pcm_fftMag_spectralHarmonicity_sma",
    "mfcc_sma[1]",
    "mfcc_sma[2]",
    "mfcc_sma[3]",
    "mfcc_sma[4]",
    "mfcc_sma[5]",
    "mfcc_sma[6]",
    "mfcc_sma[7]",
    "mfcc_sma[8]",
    "mfcc_sma[9]",
    "mfcc_sma[10]",
    "mfcc_sma[11]",
    "mfcc_sma[12]",
    "mfcc_sma[13]",
    "mfcc_sma[14]",
];

/// Column indices of the groups openSMILE smooths and differentiates together.
const VOICING: std::ops::Range<usize> = 0..6;
const ENERGY: std::ops::Range<usize> = 6..10;
const SPECTRAL: std::ops::Range<usize> = 10..65;

/// The delta column name of an LLD name: `_de` goes before an array index (`mfcc_sma_de[1]`).
pub fn delta_name(lld: &str) -> String {
    match lld.find('[') {
        Some(i) => format!("{}_de{}", &lld[..i], &lld[i..]),
        None => format!("{lld}_de"),
    }
}

/// The 65 delta column names in openSMILE's order.
pub fn delta_names() -> Vec<String> {
    LLD_NAMES.iter().map(|n| delta_name(n)).collect()
}

/// The 65 smoothed LLDs of a mono signal (rows every 10 ms; none when shorter than 60 ms).
pub fn lld(samples: &[f32], sample_rate: u32) -> Result<FeatureFrames, AcousticError> {
    let contours = Contours::compute(samples, sample_rate)?;
    Ok(contours.frames(false))
}

/// The 65 LLDs followed by their 65 deltas (130 columns).
pub fn lld_with_deltas(samples: &[f32], sample_rate: u32) -> Result<FeatureFrames, AcousticError> {
    let contours = Contours::compute(samples, sample_rate)?;
    Ok(contours.frames(true))
}

/// The 65 deltas alone as openSMILE's delta level holds them: two rows more than the LLDs,
/// because its delta filter flushes two rows past the last LLD row (the contour padded by
/// repeating its last value). openSMILE's `LowLevelDescriptors_Deltas` output has these rows.
pub fn deltas(samples: &[f32], sample_rate: u32) -> Result<FeatureFrames, AcousticError> {
    let contours = Contours::compute(samples, sample_rate)?;
    let rows = contours.geometry.rows();
    let de_rows = if rows == 0 { 0 } else { rows + 2 };
    let columns: Vec<Vec<f32>> = (0..N_LLD)
        .map(|c| {
            let mut d = contours.deltas[c].clone();
            if d.len() < de_rows {
                let tail = delta_tail(&contours.smoothed[c], de_rows, VOICING.contains(&c));
                d.extend_from_slice(&tail[d.len()..]);
            }
            d.truncate(de_rows);
            d
        })
        .collect();
    Ok(FeatureFrames {
        names: delta_names(),
        frame_times: (0..de_rows)
            .map(|i| contours.geometry.frame_time(i))
            .collect(),
        values: (0..de_rows)
            .map(|r| columns.iter().map(|c| c[r]).collect())
            .collect(),
    })
}

/// The ±2-frame regression delta of `x` at rows `0..rows` (rows past the end see the last value
/// repeated); `in_segments`: only pairs of non-zero (voiced) neighbours count.
fn delta_tail(x: &[f32], rows: usize, in_segments: bool) -> Vec<f32> {
    let n = x.len() as isize;
    let at = |i: isize| x[i.clamp(0, n - 1) as usize] as f64;
    (0..rows as isize)
        .map(|t| {
            let (mut num, mut norm) = (0.0, 0.0);
            for k in 1..=DELTA_HALF_WINDOW as isize {
                let (a, b) = (at(t + k), at(t - k));
                if !in_segments || (a != 0.0 && b != 0.0) {
                    num += k as f64 * (a - b);
                    norm += 2.0 * (k * k) as f64;
                }
            }
            if norm > 0.0 {
                (num / norm) as f32
            } else {
                0.0
            }
        })
        .collect()
}

/// The contours the ComParE functionals read: every LLD and delta column at its own level
/// length (the spectral ones run to the end of the 20 ms stream, past the LLD row count).
pub fn levels(samples: &[f32], sample_rate: u32) -> Result<Levels, AcousticError> {
    let contours = Contours::compute(samples, sample_rate)?;
    Ok(Levels {
        period_s: geometry::HOP_S,
        lld: contours.smoothed,
        deltas: contours.deltas,
    })
}

/// The 6,373 ComParE-2016 functionals of a mono signal (see the [`functionals`](mod@functionals) module).
/// A signal shorter than one 60 ms frame has no contour and is an error
/// ([`AcousticError::TooShort`]; SMILExtract writes no row for it).
pub fn functionals(samples: &[f32], sample_rate: u32) -> Result<FeatureVector, AcousticError> {
    let levels = levels(samples, sample_rate)?;
    if levels.lld[0].is_empty() {
        let needed = (geometry::LONG_FRAME_S * sample_rate as f64).round() as usize;
        return Err(AcousticError::TooShort {
            set: "ComParE",
            samples: samples.len(),
            seconds: samples.len() as f64 / sample_rate as f64,
            frame_ms: 60,
            needed,
        });
    }
    Ok(functionals::functionals(&levels))
}

/// Smoothed LLD columns and their deltas, column-major: `rows` long each, except the spectral
/// columns, which keep the full length of the 20 ms stream (the LLD matrix cuts them to `rows`;
/// the functionals read them whole).
struct Contours {
    geometry: Geometry,
    smoothed: Vec<Vec<f32>>,
    deltas: Vec<Vec<f32>>,
}

impl Contours {
    fn compute(samples: &[f32], sample_rate: u32) -> Result<Contours, AcousticError> {
        check_input(samples, sample_rate)?;
        let geometry = Geometry::new(samples.len(), sample_rate);
        let rows = geometry.rows();
        let mut smoothed = vec![Vec::new(); N_LLD];
        let mut deltas = vec![Vec::new(); N_LLD];
        if rows == 0 {
            return Ok(Contours {
                geometry,
                smoothed,
                deltas,
            });
        }
        // Both cores on one file: the short-frame chain and the voicing chain share no state, so
        // they run side by side (and the voicing chain splits its per-frame candidates over the
        // pool); every stateful part (RASTA filter, flux, Viterbi, period matcher, smoothing)
        // still runs in frame order, so the output equals the one-thread output exactly.
        let ((raw_short, zcr), voicing) = rayon::join(
            || {
                (
                    short_frame_streams(samples, &geometry),
                    long_frame_zcr(samples, &geometry),
                )
            },
            || voicing::voicing_streams(samples, &geometry),
        );
        let voicing = voicing?;

        // Voicing group: openSMILE smooths only over voiced frames (zeros stay zero) and takes
        // deltas only inside voiced segments.
        // openSMILE's delta filter of this group shares one running normaliser over its six
        // columns (see `deltas_in_segments_shared`); two rows past the LLDs are its flush rows.
        for (k, col) in VOICING.enumerate() {
            smoothed[col] = smooth_to_rows(&voicing[k], rows, true);
        }
        let voiced_deltas = voicing::deltas_in_segments_shared(&smoothed[VOICING], rows + 2);
        for (col, d) in VOICING.zip(voiced_deltas) {
            deltas[col] = d;
        }
        // Energy group: three short-frame streams and the long-frame ZCR share one smoother whose
        // output ends with the ZCR stream, so deltas replicate past row `rows - 1`.
        let energy_raw = [&raw_short[0], &raw_short[1], &raw_short[2], &zcr];
        for (col, raw) in ENERGY.zip(energy_raw) {
            smoothed[col] = smooth_to_rows(raw, rows, false);
            deltas[col] = smoothing::delta2(&smoothed[col]);
        }
        // Spectral group: short frames only; smoothed and differentiated over the full short
        // stream, then cut to the common row count.
        let short_rows = geometry.n_short + 1;
        for (k, col) in SPECTRAL.enumerate() {
            let s = smooth_to_rows(&raw_short[3 + k], short_rows, false);
            deltas[col] = smoothing::delta2(&s);
            smoothed[col] = s;
        }
        Ok(Contours {
            geometry,
            smoothed,
            deltas,
        })
    }

    fn frames(&self, with_deltas: bool) -> FeatureFrames {
        let rows = self.geometry.rows();
        let mut names: Vec<String> = LLD_NAMES.iter().map(|s| s.to_string()).collect();
        if with_deltas {
            names.extend(delta_names());
        }
        let frame_times = (0..rows).map(|i| self.geometry.frame_time(i)).collect();
        let values = (0..rows)
            .map(|r| {
                let mut row: Vec<f32> = self.smoothed.iter().map(|c| c[r]).collect();
                if with_deltas {
                    row.extend(self.deltas.iter().map(|c| c[r]));
                }
                row
            })
            .collect();
        FeatureFrames {
            names,
            frame_times,
            values,
        }
    }
}

/// `_sma` and (but for the voicing group, whose deltas share one running normaliser, see
/// [`voicing::SharedSegmentDeltas`]) `_de` of LLD column `col` from its raw values `raw` (frame 0
/// of `raw` being any frame of the stream), as [`Contours::compute`] computes them on the whole
/// signal. `end`: `Some((rows, short_rows))` when `raw` runs to the end of input, with the LLD
/// row count and the short-frame count plus one, both counted from `raw[0]`; then the ends are
/// treated as the whole-signal path treats them (voicing and energy columns `rows` long, the
/// energy smoother's output ending with the ZCR stream; spectral columns smoothed and
/// differentiated over the full short stream), and the values are cut to `rows`.
///
/// With `end` `None` (mid-stream) no end rule applies. Either way a value at index `t` depends
/// only on `raw[t - 3..=t + 3]` (clamped at the ends), so a slice that starts 3 frames early and
/// ends 4 frames late gives the whole-signal values in between, bit for bit.
fn contour(raw: &[f32], col: usize, end: Option<(usize, usize)>) -> (Vec<f32>, Vec<f32>) {
    let voicing = VOICING.contains(&col);
    let mut s = match end {
        Some((rows, short_rows)) => {
            let len = if SPECTRAL.contains(&col) {
                short_rows
            } else {
                rows
            };
            smooth_to_rows(raw, len, voicing)
        }
        None if voicing => smooth::sma_nonzero(raw, SMA_WINDOW),
        None => smoothing::sma3(raw),
    };
    let mut d = if voicing {
        Vec::new()
    } else {
        smoothing::delta2(&s)
    };
    if let Some((rows, _)) = end {
        s.truncate(rows);
        d.truncate(rows);
    }
    (s, d)
}

fn check_input(samples: &[f32], sample_rate: u32) -> Result<(), AcousticError> {
    if sample_rate < MIN_RATE {
        return Err(AcousticError::UnsupportedRate {
            rate: sample_rate,
            reason: "ComParE needs at least 1 kHz",
        });
    }
    check_finite(samples)
}

/// `_sma` of a raw stream, extended to `rows` rows: openSMILE's smoother emits one row past the
/// stream's last frame, which (with the ends padded by repetition) equals the last frame.
/// `nonzero`: average only over non-zero neighbours and keep zeros (voicing contours).
fn smooth_to_rows(raw: &[f32], rows: usize, nonzero: bool) -> Vec<f32> {
    let mut s = if nonzero {
        smooth::sma_nonzero(raw, SMA_WINDOW)
    } else {
        smoothing::sma3(raw)
    };
    let last = raw.last().copied().unwrap_or(0.0);
    s.resize(rows, last);
    s
}

/// Raw short-frame values per frame: [audspec sum, RASTA sum, RMS energy, 26 RASTA bands, 15
/// spectral descriptors, 14 MFCCs].
pub(crate) const N_SHORT: usize = 3 + N_BANDS + N_SPECTRAL + N_MFCC;

/// The 20 ms chain, one frame at a time in order (the RASTA filter and the spectral flux carry
/// state from frame to frame). Shared by the whole-signal path and [`CompareStream`].
pub(crate) struct ShortChain {
    window: Vec<f64>,
    fft: MagnitudeFft,
    bank: MelFilterbank,
    loudness: Vec<f64>,
    rasta: RastaFilter,
    spectral: SpectralAnalyser,
    mfcc: Mfcc,
    frame64: Vec<f64>,
    mags: Vec<f64>,
    power: Vec<f64>,
    mel: Vec<f64>,
    aud: Vec<f64>,
    aud_rasta: Vec<f64>,
}

impl ShortChain {
    pub(crate) fn new(g: &Geometry) -> ShortChain {
        let n_bins = g.short_fft / 2 + 1;
        let bank = MelFilterbank::new(N_BANDS, MEL_LO_HZ, MEL_HI_HZ, n_bins, g.short_bin_hz);
        let loudness = loudness_weights(&bank.centres_hz);
        ShortChain {
            window: hamming(g.short_len),
            fft: MagnitudeFft::new(g.short_fft),
            rasta: RastaFilter::new(geometry::HOP_S, &loudness),
            bank,
            loudness,
            spectral: SpectralAnalyser::new(n_bins, g.short_bin_hz),
            mfcc: Mfcc::new(N_BANDS),
            frame64: Vec::with_capacity(g.short_len),
            mags: Vec::with_capacity(n_bins),
            power: vec![0.0; n_bins],
            mel: vec![0.0; N_BANDS],
            aud: vec![0.0; N_BANDS],
            aud_rasta: vec![0.0; N_BANDS],
        }
    }

    /// The raw values of the next short frame (`short_len` samples).
    pub(crate) fn frame(&mut self, frame: &[f32], out: &mut [f32; N_SHORT]) {
        self.frame64.clear();
        crate::dsp::extend_f64(&mut self.frame64, frame);
        self.fft
            .magnitudes(&self.frame64, &self.window, &mut self.mags);
        for (p, &m) in self.power.iter_mut().zip(&self.mags) {
            *p = m * m;
        }
        self.bank.apply(&self.power, &mut self.mel);
        auditory_spectrum(&self.mel, &self.loudness, &mut self.aud);
        self.rasta.next_frame(&self.mel, &mut self.aud_rasta);
        let mut spec = [0.0; N_SPECTRAL];
        let mut ceps = [0.0; N_MFCC];
        self.spectral.describe(&self.power, &self.mags, &mut spec);
        self.mfcc.compute(&self.mel, &mut ceps);
        out[0] = mean_abs(&self.aud) as f32;
        out[1] = mean_abs(&self.aud_rasta) as f32;
        out[2] = energy::rms_energy_f32(frame);
        let rest = self.aud_rasta.iter().chain(spec.iter()).chain(ceps.iter());
        for (o, &v) in out[3..].iter_mut().zip(rest) {
            *o = v as f32;
        }
    }
}

/// Raw (unsmoothed) short-frame streams, column-major, in [`ShortChain::frame`]'s order.
fn short_frame_streams(samples: &[f32], g: &Geometry) -> Vec<Vec<f32>> {
    let mut cols = vec![Vec::with_capacity(g.n_short); N_SHORT];
    let mut chain = ShortChain::new(g);
    let mut row = [0.0f32; N_SHORT];
    for i in 0..g.n_short {
        chain.frame(&samples[i * g.hop..i * g.hop + g.short_len], &mut row);
        for (col, &v) in cols.iter_mut().zip(&row) {
            col.push(v);
        }
    }
    cols
}

/// openSMILE's `lengthL1norm`: the L1 norm divided by the vector length.
fn mean_abs(v: &[f64]) -> f64 {
    v.iter().map(|x| x.abs()).sum::<f64>() / v.len() as f64
}

/// Zero-crossing rate of every complete raw long frame.
fn long_frame_zcr(samples: &[f32], g: &Geometry) -> Vec<f32> {
    (0..g.n_long)
        .map(|i| energy::zero_crossing_rate(&samples[i * g.hop..i * g.hop + g.long_len]) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_complete_and_delta_names_follow_opensmile() {
        assert_eq!(LLD_NAMES.len(), 65);
        assert_eq!(delta_name("mfcc_sma[3]"), "mfcc_sma_de[3]");
        assert_eq!(delta_name("pcm_zcr_sma"), "pcm_zcr_sma_de");
    }
}
