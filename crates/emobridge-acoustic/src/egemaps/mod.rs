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
mod stream;

pub use stream::EgemapsStream;

use crate::functionals as fx;
use crate::smooth::{sma, sma_nonzero};
use crate::{check_finite, AcousticError, FeatureFrames, FeatureVector};

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
    /// Sum of the mean powers of the un-windowed 20 ms frames, and their number (for the
    /// equivalent sound level).
    power_sum: f64,
    power_frames: usize,
    /// Voicing-level rows: F0 (semitones), jitter, shimmer dB, HNR, H1-H2, H1-A3, F1..F3 freq/bw/amp.
    voicing: Vec<[f32; 15]>,
    /// Frames the Viterbi smoother released only at the end of input.
    pending_at_end: usize,
}

fn validate_rate(sample_rate: u32) -> Result<(), AcousticError> {
    if sample_rate < 1000 {
        return Err(AcousticError::UnsupportedRate {
            rate: sample_rate,
            reason: "eGeMAPS needs at least 1 kHz",
        });
    }
    Ok(())
}

fn validate(samples: &[f32], sample_rate: u32) -> Result<(), AcousticError> {
    validate_rate(sample_rate)?;
    check_finite(samples)
}

/// Block size in which a whole signal is fed to [`EgemapsStream`] (one second at 48 kHz), so
/// the stream's sample buffer stays small.
const WHOLE_SIGNAL_BLOCK: usize = 48_000;

fn analyse(samples: &[f32], sample_rate: u32) -> Result<Analysis, AcousticError> {
    let mut stream = EgemapsStream::new(sample_rate)?;
    for block in samples.chunks(WHOLE_SIGNAL_BLOCK) {
        stream.push(block);
    }
    stream.finish_analysis()
}

fn column<const N: usize>(rows: &[[f32; N]], k: usize) -> Vec<f32> {
    rows.iter().map(|r| r[k]).collect()
}

/// The 25 eGeMAPS v02 LLDs of `samples` at `sample_rate` (openSMILE scaling, mono).
pub fn lld(samples: &[f32], sample_rate: u32) -> Result<FeatureFrames, AcousticError> {
    validate(samples, sample_rate)?;
    Ok(lld_of(&analyse(samples, sample_rate)?))
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
    check_length_n(samples.len(), sample_rate)
}

fn check_length_n(n: usize, sample_rate: u32) -> Result<(), AcousticError> {
    let needed = (MIN_FRAME_S * sample_rate as f64).round() as usize;
    if n < needed {
        return Err(AcousticError::TooShort {
            set: "eGeMAPS",
            samples: n,
            seconds: n as f64 / sample_rate.max(1) as f64,
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
    Ok(functionals_vector(&analyse(samples, sample_rate)?))
}

/// Both the LLDs and the functionals from one analysis pass (half the work of calling
/// [`lld`] and [`functionals`] separately).
pub fn lld_and_functionals(
    samples: &[f32],
    sample_rate: u32,
) -> Result<(FeatureFrames, FeatureVector), AcousticError> {
    validate(samples, sample_rate)?;
    check_length(samples, sample_rate)?;
    let a = analyse(samples, sample_rate)?;
    Ok((lld_of(&a), functionals_vector(&a)))
}

impl EgemapsStream {
    /// Ends the input and returns the 88 functionals (an input shorter than one 60 ms frame is
    /// [`AcousticError::TooShort`], as [`functionals`]).
    pub fn finish_functionals(self) -> Result<FeatureVector, AcousticError> {
        let (rate, seen) = (self.sample_rate(), self.samples_seen());
        let a = self.finish_analysis()?;
        check_length_n(seen, rate)?;
        Ok(functionals_vector(&a))
    }

    /// Ends the input and hands out the 25 LLDs row by row (`out(frame_time, row)`, as [`lld`]
    /// computes them; no rows for an input shorter than one 60 ms frame); returns the number
    /// of rows.
    pub fn finish_lld_rows(
        self,
        out: &mut impl FnMut(f64, &[f32]),
    ) -> Result<usize, AcousticError> {
        let a = self.finish_analysis()?;
        lld_rows(&a, out);
        Ok(a.voicing.len())
    }

    /// Ends the input and returns the 25 LLDs and the 88 functionals (as
    /// [`lld_and_functionals`]).
    pub fn finish_lld_and_functionals(
        self,
    ) -> Result<(FeatureFrames, FeatureVector), AcousticError> {
        let (rate, seen) = (self.sample_rate(), self.samples_seen());
        let a = self.finish_analysis()?;
        check_length_n(seen, rate)?;
        Ok((lld_of(&a), functionals_vector(&a)))
    }
}

fn lld_of(a: &Analysis) -> FeatureFrames {
    let mut frames = FeatureFrames {
        names: LLD_NAMES.iter().map(|s| s.to_string()).collect(),
        frame_times: Vec::with_capacity(a.voicing.len()),
        values: Vec::with_capacity(a.voicing.len()),
    };
    lld_rows(a, &mut |t, row| {
        frames.frame_times.push(t);
        frames.values.push(row.to_vec());
    });
    frames
}

/// Rows of LLDs handed out at a time by [`lld_rows`].
const LLD_CHUNK: usize = 1024;

/// The 25 LLDs row by row (`out(frame_time, row)`), smoothed chunk by chunk: a `_sma3` value
/// reads one frame either side (clamped at the ends of its stream), so each chunk is smoothed
/// from one frame before it to one frame after it and gives the whole-stream values. Spectral
/// rows past the end of the 20 ms stream are 0.
fn lld_rows(a: &Analysis, out: &mut impl FnMut(f64, &[f32])) {
    let rows = a.voicing.len();
    let n_spectral = a.spectral.len();
    let mut row = [0.0f32; 25];
    for from in (0..rows).step_by(LLD_CHUNK) {
        let to = (from + LLD_CHUNK).min(rows);
        let lo = from.saturating_sub(1);
        let spectral = &a.spectral[lo.min(n_spectral)..(to + 1).min(n_spectral)];
        let voicing = &a.voicing[lo..(to + 1).min(rows)];
        let mut cols: Vec<Vec<f32>> = (0..N_SPECTRAL)
            .map(|k| sma(&column(spectral, k), 3))
            .collect();
        cols.extend((0..15).map(|k| sma_nonzero(&column(voicing, k), 3)));
        for r in from..to {
            for (v, c) in row.iter_mut().zip(&cols) {
                *v = c.get(r - lo).copied().unwrap_or(0.0);
            }
            out((r * a.hop) as f64 / a.sample_rate as f64, &row);
        }
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
    let leq = if a.power_frames == 0 {
        0.0
    } else {
        a.power_sum / a.power_frames as f64
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
