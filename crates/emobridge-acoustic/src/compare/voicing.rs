//! The six ComParE voicing LLDs: `F0final` (SHS + Viterbi, 52–620 Hz, energy-gated),
//! `voicingFinalUnclipped`, `jitterLocal`, `jitterDDP`, `shimmerLocal` and `logHNR`.
//!
//! F0 and voicing come from the shared voicing chain (60 ms Gaussian frames → SHS candidates,
//! [`crate::pitch::shs`] → Viterbi smoothing, [`crate::pitch::viterbi`] → energy gate) with
//! ComParE's settings; it is run here without the shared jitter matcher, whose work the matcher
//! below repeats with the HNR added. Jitter, shimmer and the waveform HNR come from one period matcher that follows
//! openSMILE's `cPitchJitter` (relative search range 0.25, correlation threshold 0.5): for each
//! voiced frame the waveform after the last matched period boundary is cut into periods by the
//! cross-correlation peak; jitter and shimmer average over accepted periods (values held through
//! voiced frames without a period, reset in unvoiced ones), and the HNR is
//! 20·log10(RMS of the average period waveform / RMS of each period's deviation from it),
//! floored at −100 dB, −100 dB when unvoiced.

use super::Geometry;
use crate::egemaps::frames::FrameGeometry;
use crate::pitch::{jitter::JitterConfig, shs::quad_peak, viterbi, VoicingConfig};
use crate::AcousticError;

/// Floor of `logHNR` (dB), also its value in unvoiced frames.
const LOG_HNR_FLOOR: f64 = -100.0;
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
    let mut matcher = PeriodMatcher::new(samples, g.sample_rate as f64, &cfg.jitter);
    let vq: Vec<VoiceQuality> = f0
        .iter()
        .enumerate()
        .map(|(i, &f)| matcher.frame(i * g.hop, f, g.hop, g.long_len))
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
    let (candidates, rms) = crate::pitch::frame_candidates(samples, &geo, rows, cfg, |_| {});
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
pub fn delta_in_segments(x: &[f32]) -> Vec<f32> {
    let n = x.len() as isize;
    let at = |i: isize| x[i.clamp(0, n - 1) as usize] as f64;
    (0..n)
        .map(|t| {
            let (mut num, mut norm) = (0.0, 0.0);
            for k in 1..=2isize {
                let (a, b) = (at(t + k), at(t - k));
                if a != 0.0 && b != 0.0 {
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

/// Voice quality of one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
struct VoiceQuality {
    jitter_local: f64,
    jitter_ddp: f64,
    shimmer_local: f64,
    log_hnr: f64,
}

/// Period statistics gathered over one frame's waveform.
#[derive(Debug, Default)]
struct PeriodStats {
    n_periods: f64,
    n_local: f64,
    n_ddp: f64,
    sum_period: f64,
    sum_local: f64,
    sum_ddp: f64,
    sum_amp: f64,
    sum_amp_diff: f64,
}

/// Waveform period matcher with the state openSMILE carries from frame to frame.
struct PeriodMatcher<'a> {
    x: &'a [f32],
    rate: f64,
    search_range_rel: f64,
    min_num_periods: usize,
    min_cc: f64,
    last_idx: usize,
    last_mis: usize,
    last_t0: f64,
    last_diff: f64,
    last_jitter_local: f64,
    last_jitter_ddp: f64,
    last_shimmer: f64,
}

impl<'a> PeriodMatcher<'a> {
    fn new(x: &'a [f32], rate: f64, cfg: &JitterConfig) -> PeriodMatcher<'a> {
        PeriodMatcher {
            x,
            rate,
            search_range_rel: cfg.search_range_rel,
            min_num_periods: cfg.min_num_periods,
            min_cc: cfg.min_cc,
            last_idx: 0,
            last_mis: 0,
            last_t0: 0.0,
            last_diff: 0.0,
            last_jitter_local: 0.0,
            last_jitter_ddp: 0.0,
            last_shimmer: 0.0,
        }
    }

    /// Analyse the frame starting at sample `frame_start` with (gated) F0 `f0`.
    fn frame(&mut self, frame_start: usize, f0: f64, hop: usize, frame_len: usize) -> VoiceQuality {
        let to_read0 = hop + self.last_mis;
        let mut to_read = to_read0;
        let tf = if f0 > 0.0 { self.rate / f0 } else { 0.0 };
        let t0f = tf.round() as usize;
        let t0min = ((1.0 - self.search_range_rel) * tf).floor() as usize;
        let t0max = ((1.0 + self.search_range_rel) * tf).ceil() as usize;
        if f0 > 0.0 {
            to_read = to_read.max(self.min_num_periods * t0max + self.min_num_periods);
        }
        to_read = to_read.min(self.last_mis + frame_len);
        if frame_start as isize - self.last_mis as isize != self.last_idx as isize {
            self.last_idx = frame_start;
            to_read = to_read.min(frame_len);
        }
        let begin = self.last_idx.min(self.x.len());
        let end = (self.last_idx + to_read).min(self.x.len());
        let mat: Vec<f64> = self.x[begin..end].iter().map(|&v| v as f64).collect();

        if f0 <= 0.0 || t0min == 0 {
            self.last_mis = 0;
            self.last_t0 = 0.0;
            self.last_diff = 0.0;
            self.last_jitter_local = 0.0;
            self.last_jitter_ddp = 0.0;
            self.last_shimmer = 0.0;
            self.last_idx += to_read0;
            let log_hnr = if f0 > 0.0 {
                0.0f64.max(LOG_HNR_FLOOR)
            } else {
                LOG_HNR_FLOOR
            };
            return VoiceQuality {
                jitter_local: 0.0,
                jitter_ddp: 0.0,
                shimmer_local: 0.0,
                log_hnr,
            };
        }
        let (stats, log_hnr, last_period) = self.match_periods(&mat, t0f, t0min, t0max, to_read0);
        self.last_mis = to_read0 - last_period;
        self.last_idx += last_period;
        self.finish(stats, log_hnr)
    }

    /// Cut `mat` into periods; returns the statistics, the log HNR and the last period start
    /// before the hop (where the next frame resumes).
    fn match_periods(
        &mut self,
        mat: &[f64],
        t0f: usize,
        t0min: usize,
        t0max: usize,
        to_read0: usize,
    ) -> (PeriodStats, f64, usize) {
        let mut s = PeriodStats::default();
        let sums = PrefixSums::new(mat);
        let n_lags = t0max - t0min + 1;
        let mut cc = vec![0.0; n_lags];
        let mut starts: Vec<usize> = Vec::new();
        let mut average = vec![0.0f64; t0f + 1];
        let (mut start, mut last_period, mut pp) = (0usize, 0usize, 0usize);
        while (start as isize) < mat.len() as isize - 2 * t0max as isize - 1 {
            for lag in t0min..=t0max {
                cc[lag - t0min] = sums.cross_corr(mat, start, lag);
            }
            let peak = best_peak(&cc);
            let os = start;
            match peak {
                None => {
                    pp = t0f;
                    start += t0f;
                }
                Some(mi) => {
                    pp = t0min + mi;
                    start += pp;
                    let (a0, a1) = (
                        peak_to_peak(&mat[os..os + pp]),
                        peak_to_peak(&mat[start..start + pp]),
                    );
                    starts.push(os);
                    for (acc, &v) in average.iter_mut().zip(&mat[os..]).take(t0f) {
                        *acc += v;
                    }
                    let (vertex, cc_peak) = quad_peak(
                        mi as f64 - 1.0,
                        cc[mi - 1],
                        mi as f64,
                        cc[mi],
                        mi as f64 + 1.0,
                        cc[mi + 1],
                    );
                    if cc_peak > self.min_cc {
                        let period = (t0min as f64 + vertex).abs() / self.rate;
                        self.accept_period(&mut s, period, a0, a1);
                    }
                }
            }
            if start + 1 < to_read0 {
                last_period = start;
            }
        }
        starts.push(start);
        let log_hnr = log_hnr(mat, &mut average, &starts, start, pp, t0f);
        (s, log_hnr, last_period)
    }

    fn accept_period(&mut self, s: &mut PeriodStats, period: f64, a0: f64, a1: f64) {
        s.sum_period += period;
        s.n_periods += 1.0;
        if self.last_t0 > 0.0 {
            let diff = (self.last_t0 - period).abs();
            s.sum_local += diff;
            s.n_local += 1.0;
            if self.last_diff > 0.0 {
                s.sum_ddp += (self.last_diff - diff).abs();
                s.n_ddp += 1.0;
            }
            self.last_diff = diff;
        }
        self.last_t0 = period;
        s.sum_amp += (a0 + a1) / 2.0;
        s.sum_amp_diff += (a0 - a1).abs();
    }

    /// Frame values; a voiced frame without any accepted period repeats the last values.
    fn finish(&mut self, s: PeriodStats, log_hnr: f64) -> VoiceQuality {
        let held = s.n_periods == 0.0;
        let mean_period = if s.n_periods > 0.0 {
            s.sum_period / s.n_periods
        } else {
            0.0
        };
        if s.n_periods > 0.0 && s.n_local > 0.0 {
            self.last_jitter_local = s.sum_local / s.n_local / mean_period;
        }
        if s.n_periods > 0.0 && s.n_ddp > 0.0 {
            self.last_jitter_ddp = s.sum_ddp / s.n_ddp / mean_period;
        }
        if s.n_periods > 0.0 {
            self.last_shimmer = if s.sum_amp > 0.0 {
                s.sum_amp_diff / s.sum_amp
            } else {
                0.0
            };
        }
        self.last_jitter_local = self.last_jitter_local.min(1.0);
        self.last_jitter_ddp = self.last_jitter_ddp.min(1.0);
        self.last_shimmer = self.last_shimmer.min(1.0);
        VoiceQuality {
            jitter_local: if s.n_local > 0.0 || held {
                self.last_jitter_local
            } else {
                0.0
            },
            jitter_ddp: if s.n_ddp > 0.0 || held {
                self.last_jitter_ddp
            } else {
                0.0
            },
            shimmer_local: self.last_shimmer,
            log_hnr: log_hnr.max(LOG_HNR_FLOOR),
        }
    }
}

/// Highest interior local maximum of the correlation curve (`None` when there is none).
fn best_peak(cc: &[f64]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for i in 1..cc.len().saturating_sub(2) {
        if cc[i - 1] < cc[i] && cc[i] > cc[i + 1] && best.is_none_or(|b| cc[i] > cc[b]) {
            best = Some(i);
        }
    }
    best
}

/// Waveform HNR in dB: the average period (over the matched periods and the one after the last)
/// is the harmonic part, each period's deviation from it the noise; both as RMS over the period
/// without its first and last two samples.
fn log_hnr(
    mat: &[f64],
    average: &mut [f64],
    starts: &[usize],
    last_start: usize,
    last_len: usize,
    t0f: usize,
) -> f64 {
    let n_periods = starts.len() as f64;
    let mut harmonic = 0.0;
    for i in 0..t0f {
        if last_start + i >= mat.len() {
            break;
        }
        average[i] = (average[i] + mat[last_start + i]) / n_periods;
        if i > 2 && i + 2 < t0f {
            harmonic += average[i] * average[i];
        }
    }
    if t0f > 4 {
        harmonic /= (t0f - 4) as f64;
    }
    let harmonic = harmonic.sqrt();
    let mut bounds = starts.to_vec();
    bounds.push(if last_len > 0 {
        last_start + last_len
    } else {
        0
    });
    let (mut noise, mut count) = (0.0, 0usize);
    for w in bounds.windows(2) {
        let stop = w[1].min(w[0] + t0f).saturating_sub(2).min(mat.len());
        for (k, j) in (w[0] + 2..stop).enumerate() {
            let d = mat[j] - average[2 + k];
            noise += d * d;
            count += 1;
        }
    }
    if count > 0 {
        noise /= count as f64;
    }
    let noise = noise.sqrt();
    if noise > 0.0 {
        let ratio = harmonic / noise;
        if ratio > 0.0 {
            20.0 * ratio.log10()
        } else {
            LOG_HNR_FLOOR
        }
    } else {
        0.0
    }
}

/// Running sums of a frame's samples and squares, so that the means and energies of any two
/// adjacent windows cost O(1) and only the cross products are summed per lag.
struct PrefixSums {
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
}

impl PrefixSums {
    fn new(x: &[f64]) -> PrefixSums {
        let (mut sum, mut sum_sq) = (
            Vec::with_capacity(x.len() + 1),
            Vec::with_capacity(x.len() + 1),
        );
        let (mut a, mut b) = (0.0, 0.0);
        sum.push(0.0);
        sum_sq.push(0.0);
        for &v in x {
            a += v;
            b += v * v;
            sum.push(a);
            sum_sq.push(b);
        }
        PrefixSums { sum, sum_sq }
    }

    /// Normalised cross-correlation of `x[start..start+lag]` with `x[start+lag..start+2·lag]`
    /// (each window centred on its own mean).
    fn cross_corr(&self, x: &[f64], start: usize, lag: usize) -> f64 {
        let n = lag as f64;
        let (a, b, c) = (start, start + lag, start + 2 * lag);
        let (sx, sy) = (self.sum[b] - self.sum[a], self.sum[c] - self.sum[b]);
        let (mx, my) = (sx / n, sy / n);
        let nx = (self.sum_sq[b] - self.sum_sq[a]) - sx * mx;
        let ny = (self.sum_sq[c] - self.sum_sq[b]) - sy * my;
        let sxy: f64 = x[a..b].iter().zip(&x[b..c]).map(|(p, q)| p * q).sum();
        (sxy - n * mx * my) / (nx.max(0.0).sqrt() * ny.max(0.0).sqrt())
    }
}

/// Peak-to-peak amplitude over the interior samples of a period.
fn peak_to_peak(x: &[f64]) -> f64 {
    if x.len() < 3 {
        return 0.0;
    }
    let inner = &x[1..x.len() - 1];
    let max = inner.iter().cloned().fold(f64::MIN, f64::max);
    let min = inner.iter().cloned().fold(f64::MAX, f64::min);
    max - min
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_skip_pairs_that_touch_unvoiced_frames() {
        let d = delta_in_segments(&[0.0, 0.0, 100.0, 102.0, 104.0, 106.0, 0.0]);
        assert_eq!(d[1], 0.0);
        // Inside the segment both pairs are voiced: regression slope 2.
        assert!((d[3] - 2.0).abs() < 1e-6 && (d[4] - 2.0).abs() < 1e-6);
        // At the segment start only the ±1 pair is usable, at the very start none.
        assert_eq!(d[0], 0.0);
    }

    #[test]
    fn a_clean_periodic_signal_has_low_jitter_and_high_hnr() {
        let sr = 16_000.0;
        let x: Vec<f32> = (0..16_000)
            .map(|i| {
                let t = i as f64 / sr;
                (0.5 * (2.0 * std::f64::consts::PI * 125.0 * t).sin()
                    + 0.2 * (2.0 * std::f64::consts::PI * 250.0 * t).sin()) as f32
            })
            .collect();
        let cfg = compare_voicing_config();
        let mut m = PeriodMatcher::new(&x, sr, &cfg.jitter);
        let q: Vec<VoiceQuality> = (0..60).map(|i| m.frame(i * 160, 125.0, 160, 960)).collect();
        let late = &q[10..];
        assert!(late.iter().all(|v| v.jitter_local < 0.01), "{:?}", late[0]);
        assert!(late.iter().all(|v| v.log_hnr > 20.0), "{:?}", late[0]);
    }
}
