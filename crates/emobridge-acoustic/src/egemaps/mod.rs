//! eGeMAPS v02 (Eyben et al. 2016), as openSMILE 3.0's `egemaps/v02/eGeMAPSv02.conf` computes it.
//!
//! * [`lld`] — the 25 LLDs every 10 ms ([`LLD_NAMES`]): spectral ones from 20 ms Hamming frames
//!   ([`spectral`]), voicing ones from 60 ms Gaussian frames ([`crate::pitch`]), formants from
//!   LPC ([`crate::formants`]), all smoothed by a 3-frame moving average (`_sma3`; voicing ones
//!   ignoring unvoiced frames, `_sma3nz`).
//! * [`functionals`] — the 88 functionals ([`FUNCTIONAL_NAMES`]).
//!
//! Frame bookkeeping follows openSMILE: LLD rows = `⌊(N − W60)/H⌋ + 2` (the last 60 ms frame
//! zero-padded); the functionals of 20 ms-frame descriptors (loudness, flux, MFCC, equivalent
//! sound level) run over all `⌊(N − W20)/H⌋ + 1` 20 ms frames, those of voicing descriptors
//! over the LLD rows. A clip shorter than 60 ms yields no LLD rows (SMILExtract writes none) and
//! functionals that are all 0.

pub mod frames;
pub mod spectral;

use crate::formants::{FormantConfig, FormantTracker};
use crate::functionals as fx;
use crate::pitch::{self, harmonics::HarmonicsAnalyser, VoicingConfig};
use crate::smooth::{sma, sma_nonzero};
use crate::{check_finite, AcousticError, FeatureFrames, FeatureVector};
use frames::{frame_at, hamming, FrameGeometry, MagnitudeFft};
use spectral::{mean_power, SpectralLlds};

/// The 25 LLD column names, in openSMILE's order.
pub const LLD_NAMES: [&str; 25] = [
    "Loudness_sma3",
    "alphaRatio_sma3",
    "hammarbergIndex_sma3",
    "slope0-500_sma3",
    "slope500-1500_sma3",
    "spectralFlux_sma3",
    "mfcc1_sma3",
    "mfcc2_sma3",
    "mfcc3_sma3",
    "mfcc4_sma3",
    "F0semitoneFrom27.5Hz_sma3nz",
    "jitterLocal_sma3nz",
    "shimmerLocaldB_sma3nz",
    "HNRdBACF_sma3nz",
    "logRelF0-H1-H2_sma3nz",
    "logRelF0-H1-A3_sma3nz",
    "F1frequency_sma3nz",
    "F1bandwidth_sma3nz",
    "F1amplitudeLogRelF0_sma3nz",
    "F2frequency_sma3nz",
    "F2bandwidth_sma3nz",
    "F2amplitudeLogRelF0_sma3nz",
    "F3frequency_sma3nz",
    "F3bandwidth_sma3nz",
    "F3amplitudeLogRelF0_sma3nz",
];

/// The 88 functional names, in openSMILE's order.
pub const FUNCTIONAL_NAMES: [&str; 88] = [
    "F0semitoneFrom27.5Hz_sma3nz_amean",
    "F0semitoneFrom27.5Hz_sma3nz_stddevNorm",
    "F0semitoneFrom27.5Hz_sma3nz_percentile20.0",
    "F0semitoneFrom27.5Hz_sma3nz_percentile50.0",
    "F0semitoneFrom27.5Hz_sma3nz_percentile80.0",
    "F0semitoneFrom27.5Hz_sma3nz_pctlrange0-2",
    "F0semitoneFrom27.5Hz_sma3nz_meanRisingSlope",
    "F0semitoneFrom27.5Hz_sma3nz_stddevRisingSlope",
    "F0semitoneFrom27.5Hz_sma3nz_meanFallingSlope",
    "F0semitoneFrom27.5Hz_sma3nz_stddevFallingSlope",
    "loudness_sma3_amean",
    "loudness_sma3_stddevNorm",
    "loudness_sma3_percentile20.0",
    "loudness_sma3_percentile50.0",
    "loudness_sma3_percentile80.0",
    "loudness_sma3_pctlrange0-2",
    "loudness_sma3_meanRisingSlope",
    "loudness_sma3_stddevRisingSlope",
    "loudness_sma3_meanFallingSlope",
    "loudness_sma3_stddevFallingSlope",
    "spectralFlux_sma3_amean",
    "spectralFlux_sma3_stddevNorm",
    "mfcc1_sma3_amean",
    "mfcc1_sma3_stddevNorm",
    "mfcc2_sma3_amean",
    "mfcc2_sma3_stddevNorm",
    "mfcc3_sma3_amean",
    "mfcc3_sma3_stddevNorm",
    "mfcc4_sma3_amean",
    "mfcc4_sma3_stddevNorm",
    "jitterLocal_sma3nz_amean",
    "jitterLocal_sma3nz_stddevNorm",
    "shimmerLocaldB_sma3nz_amean",
    "shimmerLocaldB_sma3nz_stddevNorm",
    "HNRdBACF_sma3nz_amean",
    "HNRdBACF_sma3nz_stddevNorm",
    "logRelF0-H1-H2_sma3nz_amean",
    "logRelF0-H1-H2_sma3nz_stddevNorm",
    "logRelF0-H1-A3_sma3nz_amean",
    "logRelF0-H1-A3_sma3nz_stddevNorm",
    "F1frequency_sma3nz_amean",
    "F1frequency_sma3nz_stddevNorm",
    "F1bandwidth_sma3nz_amean",
    "F1bandwidth_sma3nz_stddevNorm",
    "F1amplitudeLogRelF0_sma3nz_amean",
    "F1amplitudeLogRelF0_sma3nz_stddevNorm",
    "F2frequency_sma3nz_amean",
    "F2frequency_sma3nz_stddevNorm",
    "F2bandwidth_sma3nz_amean",
    "F2bandwidth_sma3nz_stddevNorm",
    "F2amplitudeLogRelF0_sma3nz_amean",
    "F2amplitudeLogRelF0_sma3nz_stddevNorm",
    "F3frequency_sma3nz_amean",
    "F3frequency_sma3nz_stddevNorm",
    "F3bandwidth_sma3nz_amean",
    "F3bandwidth_sma3nz_stddevNorm",
    "F3amplitudeLogRelF0_sma3nz_amean",
    "F3amplitudeLogRelF0_sma3nz_stddevNorm",
    "alphaRatioV_sma3nz_amean",
    "alphaRatioV_sma3nz_stddevNorm",
    "hammarbergIndexV_sma3nz_amean",
    "hammarbergIndexV_sma3nz_stddevNorm",
    "slopeV0-500_sma3nz_amean",
    "slopeV0-500_sma3nz_stddevNorm",
    "slopeV500-1500_sma3nz_amean",
    "slopeV500-1500_sma3nz_stddevNorm",
    "spectralFluxV_sma3nz_amean",
    "spectralFluxV_sma3nz_stddevNorm",
    "mfcc1V_sma3nz_amean",
    "mfcc1V_sma3nz_stddevNorm",
    "mfcc2V_sma3nz_amean",
    "mfcc2V_sma3nz_stddevNorm",
    "mfcc3V_sma3nz_amean",
    "mfcc3V_sma3nz_stddevNorm",
    "mfcc4V_sma3nz_amean",
    "mfcc4V_sma3nz_stddevNorm",
    "alphaRatioUV_sma3nz_amean",
    "hammarbergIndexUV_sma3nz_amean",
    "slopeUV0-500_sma3nz_amean",
    "slopeUV500-1500_sma3nz_amean",
    "spectralFluxUV_sma3nz_amean",
    "loudnessPeaksPerSec",
    "VoicedSegmentsPerSec",
    "MeanVoicedSegmentLengthSec",
    "StddevVoicedSegmentLengthSec",
    "MeanUnvoicedSegmentLength",
    "StddevUnvoicedSegmentLength",
    "equivalentSoundLevel_dBp",
];

/// Number of spectral columns (20 ms frames) in [`Analysis::spectral`].
const N_SPECTRAL: usize = 10;

/// Raw (unsmoothed) contours of one clip, before LLD smoothing and functionals.
struct Analysis {
    /// Hop in seconds as a time step (`hop / sr`).
    period_s: f64,
    /// Hop in samples.
    hop: usize,
    sample_rate: u32,
    /// 20 ms-frame columns: loudness, alpha, hammarberg, slope0-500, slope500-1500, flux, mfcc1-4.
    spectral: Vec<[f32; N_SPECTRAL]>,
    /// Mean power of each un-windowed 20 ms frame (for the equivalent sound level).
    frame_power: Vec<f64>,
    /// Voicing-level rows: F0 (semitones), jitter, shimmer dB, HNR, H1-H2, H1-A3, F1..F3 freq/bw/amp.
    voicing: Vec<[f32; 15]>,
    /// Frames the Viterbi smoother released only at the end of input.
    pending_at_end: usize,
}

fn validate(samples: &[f32], sample_rate: u32) -> Result<(), AcousticError> {
    if sample_rate < 1000 {
        return Err(AcousticError::UnsupportedRate {
            rate: sample_rate,
            reason: "eGeMAPS needs at least 1 kHz",
        });
    }
    check_finite(samples)
}

fn analyse(samples: &[f32], sample_rate: u32) -> Analysis {
    let geo20 = FrameGeometry::new(0.020, 0.010, sample_rate);
    let n20 = frames::lld_row_count(samples.len(), geo20.frame, geo20.hop).saturating_sub(1);
    let window = hamming(geo20.frame);
    let mut fft = MagnitudeFft::new(geo20.nfft);
    let mut spec = SpectralLlds::new(geo20.n_bins(), geo20.bin_hz());
    let (mut frame, mut mags) = (Vec::new(), Vec::new());
    let mut spectral = Vec::with_capacity(n20);
    let mut frame_power = Vec::with_capacity(n20);
    let mut formant_tracks = Vec::with_capacity(n20);
    let mut formant_tracker = FormantTracker::new(
        FormantConfig::default(),
        geo20.frame,
        geo20.nfft,
        sample_rate,
    );
    for i in 0..n20 {
        frame_at(samples, i, &geo20, &mut frame);
        frame_power.push(mean_power(&frame));
        fft.magnitudes(&frame, &window, &mut mags);
        let s = spec.frame(&mags);
        spectral.push([
            s.loudness as f32,
            s.alpha_ratio as f32,
            s.hammarberg as f32,
            s.slope_0_500 as f32,
            s.slope_500_1500 as f32,
            s.flux as f32,
            s.mfcc[0] as f32,
            s.mfcc[1] as f32,
            s.mfcc[2] as f32,
            s.mfcc[3] as f32,
        ]);
        formant_tracks.push(formant_tracker.frame(fft.last_complex()));
    }
    let voicing_result = pitch::analyse(samples, sample_rate, &VoicingConfig::default());
    let voicing = voicing_rows(&voicing_result, &formant_tracks);
    Analysis {
        // openSMILE normalises times by the configured frame step, not by hop/sample rate
        period_s: 0.010,
        hop: geo20.hop,
        sample_rate,
        spectral,
        frame_power,
        voicing,
        pending_at_end: voicing_result.pending_at_end,
    }
}

/// Combines pitch, jitter, harmonics and formants into the voicing-level rows.
fn voicing_rows(v: &pitch::Voicing, formants: &[crate::formants::Formants]) -> Vec<[f32; 15]> {
    let Some(geo) = v.geometry else {
        return Vec::new();
    };
    let mut harm = HarmonicsAnalyser::new(geo.n_bins(), geo.bin_hz());
    (0..v.f0_hz.len())
        .map(|i| {
            let f0 = v.f0_hz[i];
            let fm = formants.get(i);
            let freq = |k: usize| fm.map_or(0.0, |f| f.frequency[k]);
            let bw = |k: usize| fm.map_or(0.0, |f| f.bandwidth[k]);
            let h = harm.frame(&v.spectra[i], f0, &[freq(0), freq(1), freq(2)]);
            let j = v.jitter[i];
            [
                pitch::semitones_from_27_5(f0) as f32,
                j.jitter_local as f32,
                j.shimmer_local_db as f32,
                h.hnr_acf_db as f32,
                h.h1_h2_db as f32,
                h.h1_a3_db as f32,
                freq(0) as f32,
                bw(0) as f32,
                h.formant_amplitude_db[0] as f32,
                freq(1) as f32,
                bw(1) as f32,
                h.formant_amplitude_db[1] as f32,
                freq(2) as f32,
                bw(2) as f32,
                h.formant_amplitude_db[2] as f32,
            ]
        })
        .collect()
}

fn column<const N: usize>(rows: &[[f32; N]], k: usize) -> Vec<f32> {
    rows.iter().map(|r| r[k]).collect()
}

/// The 25 eGeMAPS v02 LLDs of `samples` at `sample_rate` (openSMILE scaling, mono).
pub fn lld(samples: &[f32], sample_rate: u32) -> Result<FeatureFrames, AcousticError> {
    validate(samples, sample_rate)?;
    Ok(lld_of(&analyse(samples, sample_rate)))
}

/// Shortest clip whose functionals are computed: one 60 ms pitch frame.
const MIN_FRAME_S: f64 = 0.060;

/// The length rule for functionals: a clip shorter than one 60 ms frame (the pitch frame, the
/// longest of the set) has no LLD frame at all. SMILExtract writes no functionals row for it
/// (the `synth_too_short` parity fixture); emobridge used to write a row of placeholders (0, and
/// −120 dB for the sound level) that looked like measurements, and now refuses with
/// [`AcousticError::TooShort`], so a batch lists the clip as failed with its reason. [`lld`] of
/// such a clip is an empty table (no rows), as SMILExtract's.
pub fn check_length(samples: &[f32], sample_rate: u32) -> Result<(), AcousticError> {
    let needed = (MIN_FRAME_S * sample_rate as f64).round() as usize;
    if samples.len() < needed {
        return Err(AcousticError::TooShort {
            set: "eGeMAPS",
            samples: samples.len(),
            seconds: samples.len() as f64 / sample_rate.max(1) as f64,
            frame_ms: (MIN_FRAME_S * 1000.0).round() as u32,
            needed,
        });
    }
    Ok(())
}

/// The 88 eGeMAPS v02 functionals of `samples` at `sample_rate`; a clip shorter than one 60 ms
/// frame is an error (see [`check_length`]).
pub fn functionals(samples: &[f32], sample_rate: u32) -> Result<FeatureVector, AcousticError> {
    validate(samples, sample_rate)?;
    check_length(samples, sample_rate)?;
    Ok(functionals_vector(&analyse(samples, sample_rate)))
}

/// Both the LLDs and the functionals from one analysis pass (half the work of calling
/// [`lld`] and [`functionals`] separately).
pub fn lld_and_functionals(
    samples: &[f32],
    sample_rate: u32,
) -> Result<(FeatureFrames, FeatureVector), AcousticError> {
    validate(samples, sample_rate)?;
    check_length(samples, sample_rate)?;
    let a = analyse(samples, sample_rate);
    Ok((lld_of(&a), functionals_vector(&a)))
}

fn lld_of(a: &Analysis) -> FeatureFrames {
    let rows = a.voicing.len();
    let mut cols: Vec<Vec<f32>> = (0..N_SPECTRAL)
        .map(|k| sma(&column(&a.spectral, k), 3))
        .collect();
    cols.extend((0..15).map(|k| sma_nonzero(&column(&a.voicing, k), 3)));
    let values = (0..rows)
        .map(|r| {
            cols.iter()
                .map(|c| c.get(r).copied().unwrap_or(0.0))
                .collect()
        })
        .collect();
    let frame_times = (0..rows)
        .map(|r| (r * a.hop) as f64 / a.sample_rate as f64)
        .collect();
    FeatureFrames {
        names: LLD_NAMES.iter().map(|s| s.to_string()).collect(),
        frame_times,
        values,
    }
}

fn functionals_vector(a: &Analysis) -> FeatureVector {
    let values = functionals_of(a)
        .into_iter()
        .map(|v| if v.is_finite() { v as f32 } else { 0.0 })
        .collect();
    FeatureVector {
        names: FUNCTIONAL_NAMES.iter().map(|s| s.to_string()).collect(),
        values,
    }
}

fn functionals_of(a: &Analysis) -> Vec<f64> {
    let t = a.period_s;
    let rows = a.voicing.len();
    let mut out = Vec::with_capacity(88);
    // SMILExtract computes its voicing-level functionals before the frames its Viterbi smoother
    // releases at the end of input (and one more) have reached them
    let seen = rows.saturating_sub(a.pending_at_end + 1);
    let f0_raw = column(&a.voicing, 0);
    let f0 = sma_nonzero(&f0_raw[..seen], 3);
    let f0_nz = fx::non_zero(&f0);
    push_distribution(&mut out, &f0_nz, t);
    let loud = sma(&column(&a.spectral, 0), 3);
    push_distribution(&mut out, &loud, t);
    for k in [5, 6, 7, 8, 9] {
        let c = sma(&column(&a.spectral, k), 3);
        out.push(fx::mean(&c));
        out.push(fx::stddev_norm(&c));
    }
    for k in 1..15 {
        // formant frequencies and bandwidths count on voiced frames only (`formantVoiced`)
        let mut c = column(&a.voicing[..seen], k);
        if matches!(k, 6 | 7 | 9 | 10 | 12 | 13) {
            c.iter_mut().zip(&f0_raw).for_each(|(v, &f)| {
                if f == 0.0 {
                    *v = 0.0
                }
            });
        }
        let c = fx::non_zero(&sma_nonzero(&c, 3));
        out.push(fx::mean(&c));
        out.push(fx::stddev_norm(&c));
    }
    // spectral descriptors restricted to voiced / unvoiced frames (by the unsmoothed F0)
    let gated = |k: usize, voiced: bool| -> Vec<f32> {
        let c: Vec<f32> = (0..seen)
            .map(|r| {
                let v = a.spectral.get(r).map_or(0.0, |s| s[k]);
                let f = f0_raw.get(r).copied().unwrap_or(0.0);
                if (f != 0.0) == voiced {
                    v
                } else {
                    0.0
                }
            })
            .collect();
        fx::non_zero(&sma_nonzero(&c, 3))
    };
    for k in [1, 2, 3, 4, 5, 6, 7, 8, 9] {
        let c = gated(k, true);
        out.push(fx::mean(&c));
        out.push(fx::stddev_norm(&c));
    }
    for k in [1, 2, 3, 4, 5] {
        out.push(fx::mean(&gated(k, false)));
    }
    out.push(fx::peaks(&loud, t, 0.1).peaks_per_sec);
    let voiced = fx::segments(&f0, t, 3, 2, |v| v != 0.0);
    out.extend([
        voiced.segments_per_sec,
        voiced.mean_length_s,
        voiced.stddev_length_s,
    ]);
    let pauses = fx::segments(&f0, t, 3, 2, |v| v == 0.0);
    out.extend([pauses.mean_length_s, pauses.stddev_length_s]);
    let leq = if a.frame_power.is_empty() {
        0.0
    } else {
        a.frame_power.iter().sum::<f64>() / a.frame_power.len() as f64
    };
    out.push(10.0 * leq.max(1e-12).log10());
    out
}

/// amean, stddevNorm, percentiles 20/50/80, range 20–80, rising/falling slope mean and stddev.
fn push_distribution(out: &mut Vec<f64>, x: &[f32], t: f64) {
    let s = fx::sorted(x);
    let (p20, p50, p80) = (
        fx::percentile(&s, 0.2),
        fx::percentile(&s, 0.5),
        fx::percentile(&s, 0.8),
    );
    let p = fx::peaks(x, t, 0.1);
    out.extend([
        fx::mean(x),
        fx::stddev_norm(x),
        p20,
        p50,
        p80,
        p80 - p20,
        p.mean_rising_slope,
        p.stddev_rising_slope,
        p.mean_falling_slope,
        p.stddev_falling_slope,
    ]);
}
