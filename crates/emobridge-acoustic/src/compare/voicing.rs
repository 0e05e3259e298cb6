//! The six ComParE voicing LLDs: `F0final` (SHS + Viterbi, 52–620 Hz, energy-gated),
//! `voicingFinalUnclipped`, `jitterLocal`, `jitterDDP`, `shimmerLocal` and `logHNR`.
//!
//! F0 and voicing come from the shared voicing chain (60 ms Gaussian frames → SHS candidates,
//! [`crate::pitch::shs`] → Viterbi smoothing, [`crate::pitch::viterbi`] → energy gate) with
//! ComParE's settings. Jitter, shimmer and the waveform HNR come from the crate's one period
//! matcher ([`crate::pitch::jitter::PeriodMatcher`], openSMILE's `cPitchJitter`) with ComParE's
//! relative search range 0.25 and the HNR enabled.

use super::Geometry;
use crate::egemaps::frames::FrameGeometry;
use crate::pitch::jitter::{JitterConfig, JitterFrame, PeriodMatcher};
use crate::pitch::{viterbi, VoicingConfig};
use crate::AcousticError;

/// Viterbi trellis length of the ComParE pitch smoother.
const VITERBI_BUFFER: usize = 30;
const MIN_PITCH_HZ: f64 = 52.0;
const MAX_PITCH_HZ: f64 = 620.0;
/// Relative period search range of the ComParE jitter component.
const SEARCH_RANGE_REL: f64 = 0.25;

/// The voicing-chain settings of `ComParE_2016_core.lld.conf.inc`.
pub fn compare_voicing_config() -> VoicingConfig {
    let mut cfg = VoicingConfig::default();
    cfg.shs.min_pitch = MIN_PITCH_HZ;
    cfg.shs.max_pitch = MAX_PITCH_HZ;
    cfg.viterbi.buffer_len = VITERBI_BUFFER;
    cfg.jitter = JitterConfig {
        search_range_rel: SEARCH_RANGE_REL,
        ..JitterConfig::default()
    };
    cfg
}

/// Raw (unsmoothed) voicing streams, one value per LLD row:
/// [F0 Hz, voicing probability, jitter local, jitter DDP, shimmer local, log HNR dB].
pub fn voicing_streams(samples: &[f32], g: &Geometry) -> Result<Vec<Vec<f32>>, AcousticError> {
    let rows = g.rows();
    let cfg = compare_voicing_config();
    let (f0, voicing) = pitch_track(samples, g.sample_rate, rows, &cfg);
    let mut matcher = PeriodMatcher::with_hnr(g.sample_rate as f64, &cfg.jitter);
    let vq: Vec<JitterFrame> = f0
        .iter()
        .enumerate()
        .map(|(i, &f)| matcher.frame(samples, 0, i * g.hop, f, g.hop, g.long_len))
        .collect();
    let to32 = |x: &[f64]| x.iter().map(|&v| v as f32).collect::<Vec<f32>>();
    Ok(vec![
        to32(&f0),
        to32(&voicing),
        vq.iter().map(|q| q.jitter_local as f32).collect(),
        vq.iter().map(|q| q.jitter_ddp as f32).collect(),
        vq.iter().map(|q| q.shimmer_local as f32).collect(),
        vq.iter().map(|q| q.log_hnr as f32).collect(),
    ])
}

/// Energy-gated F0 (Hz, 0 = unvoiced) and voicing probability for `rows` frames (frames past the
/// end of the signal are zero-padded, as openSMILE's last frame is).
fn pitch_track(
    samples: &[f32],
    sample_rate: u32,
    rows: usize,
    cfg: &VoicingConfig,
) -> (Vec<f64>, Vec<f64>) {
    let geo = FrameGeometry::new(cfg.frame_s, cfg.hop_s, sample_rate);
    let (candidates, rms) = crate::pitch::frame_candidates_parallel(samples, &geo, rows, cfg);
    let smoothed = viterbi::smooth(&candidates, &cfg.viterbi);
    let gate = cfg.energy_gate.unwrap_or(f64::NEG_INFINITY);
    smoothed
        .iter()
        .zip(&rms)
        .map(|(p, &e)| {
            if e < gate {
                (0.0, 0.0)
            } else {
                (p.f0, p.voicing)
            }
        })
        .unzip()
}

/// `_de` of a voicing contour: the ±2-frame regression slope using only pairs whose two ends are
/// both voiced (non-zero), normalised by the pairs used (openSMILE `onlyInSegments`); 0 when no
/// pair is usable. Ends are padded by repetition.
///
/// openSMILE 3.0 divides instead by a normaliser that is never reset and grows over the whole
/// input (and across the six columns), so its voicing deltas shrink roughly as 1/t; that
/// scheduling-dependent artefact is not reproduced (see PARITY.md).
/// The voicing deltas as SMILExtract computes them (`cDeltaRegression`, `onlyInSegments = 1`):
/// a ±2-frame regression over pairs of voiced (non-zero) neighbours, ends padded by repetition,
/// `out_rows` rows. The divisor is openSMILE's running normaliser: it starts at 10 (2 · Σk²) and
/// grows by k² for every voiced pair ever used, frame by frame and, within a frame, column by
/// column (the component never resets it), so the deltas shrink along the file. Single
/// precision, as openSMILE computes it.
pub fn deltas_in_segments_shared(cols: &[Vec<f32>], out_rows: usize) -> Vec<Vec<f32>> {
    let mut out = vec![Vec::with_capacity(out_rows); cols.len()];
    let cols: Vec<&[f32]> = cols.iter().map(Vec::as_slice).collect();
    SharedSegmentDeltas::new().rows(&cols, 0, 0..out_rows, &mut out);
    out
}

/// [`deltas_in_segments_shared`] a batch of rows at a time, for a stream: the running
/// normaliser is carried from batch to batch, so batches in order give the same values.
#[derive(Debug, Clone)]
pub struct SharedSegmentDeltas {
    norm: f32,
}

impl SharedSegmentDeltas {
    /// The normaliser at the start of the input.
    pub fn new() -> SharedSegmentDeltas {
        SharedSegmentDeltas { norm: 10.0 }
    }

    /// Appends the deltas of rows `rows` (in order, after every earlier row) to `out`;
    /// `cols[c][i]` is row `base + i` of column `c`, which is taken to end there (rows past it
    /// see its last value). Rows `t` with `t - 2 < base` need `base == 0`.
    pub fn rows(
        &mut self,
        cols: &[&[f32]],
        base: usize,
        rows: std::ops::Range<usize>,
        out: &mut [Vec<f32>],
    ) {
        let base = base as isize;
        for t in rows.start as isize..rows.end as isize {
            for (x, y) in cols.iter().zip(out.iter_mut()) {
                let n = base + x.len() as isize;
                if x.is_empty() {
                    y.push(0.0);
                    continue;
                }
                let at = |i: isize| x[(i.clamp(0, n - 1) - base) as usize];
                let mut num = 0.0f32;
                for k in 1..=2isize {
                    let (a, b) = (at(t + k), at(t - k));
                    if a != 0.0 && b != 0.0 {
                        num += k as f32 * (a - b);
                        self.norm += (k * k) as f32;
                    }
                }
                y.push(num / self.norm);
            }
        }
    }
}

impl Default for SharedSegmentDeltas {
    fn default() -> Self {
        SharedSegmentDeltas::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_skip_unvoiced_pairs_and_share_a_growing_normaliser() {
        let x = vec![0.0, 0.0, 100.0, 102.0, 104.0, 106.0, 0.0];
        let d = deltas_in_segments_shared(&[x], 7);
        // no voiced pair at the start
        assert_eq!(d[0][0], 0.0);
        assert_eq!(d[0][1], 0.0);
        // t = 2: both pairs touch an unvoiced frame; t = 3: only ±1 (104 − 100) → norm 11
        assert!((d[0][3] - 4.0 / 11.0).abs() < 1e-6, "{:?}", d[0]);
        // t = 4: ±1 (106 − 102) and ±2 (0 − 100: skipped) → norm 12, num 4.
        assert!((d[0][4] - 4.0 / 12.0).abs() < 1e-6, "{:?}", d[0]);
    }
}
