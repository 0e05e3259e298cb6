//! Jitter, shimmer and the waveform HNR from waveform-matched pitch periods (openSMILE
//! `cPitchJitter`): the one period matcher of the crate, used by the eGeMAPS voicing chain
//! ([`jitter_shimmer`]) and by ComParE's voice-quality LLDs (with the HNR).
//!
//! For each voiced frame the waveform following the last matched period boundary is cut into
//! periods: the next period length is the lag in `[(1 − r) T0, (1 + r) T0]` (T0 = 1/F0 in
//! samples, r = `search_range_rel`) whose normalised cross-correlation between two adjacent
//! windows peaks highest. Periods with a correlation peak above `min_cc` count: local jitter is
//! the mean absolute difference of consecutive periods over the mean period, jitter DDP the mean
//! absolute difference of consecutive differences over the mean period, local shimmer the mean
//! absolute difference of peak-to-peak amplitudes over their mean (also reported in dB as
//! 20·log10(1 + shimmer)). The matching position carries over between frames exactly as in
//! openSMILE (`lastIdx` / `lastMis` bookkeeping); values are held through voiced frames that
//! yield no period and reset in unvoiced ones.
//!
//! With [`PeriodMatcher::with_hnr`] the matcher also reports the waveform HNR: 20·log10(RMS of
//! the average period waveform / RMS of each period's deviation from it) over the period without
//! its first and last two samples, floored at −100 dB (−100 dB when unvoiced).

use super::period_kernels;
use super::shs::quad_peak;

/// Settings of the period matcher (defaults: eGeMAPS `cPitchJitter` settings).
#[derive(Debug, Clone, PartialEq)]
pub struct JitterConfig {
    /// Relative search range around the expected period (default 0.1; ComParE 0.25).
    pub search_range_rel: f64,
    /// Periods needed before a frame is analysed (default 2).
    pub min_num_periods: usize,
    /// Minimum correlation for a period to count (default 0.5).
    pub min_cc: f64,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            search_range_rel: 0.1,
            min_num_periods: 2,
            min_cc: 0.5,
        }
    }
}

/// Floor of the waveform HNR (dB), also its value in unvoiced frames.
pub const LOG_HNR_FLOOR: f64 = -100.0;

/// Voice quality of one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterFrame {
    /// Local jitter (ratio, ≤ 1), 0 when unvoiced.
    pub jitter_local: f64,
    /// Jitter DDP (ratio, ≤ 1), 0 when unvoiced.
    pub jitter_ddp: f64,
    /// Local shimmer (ratio, ≤ 1), 0 when unvoiced.
    pub shimmer_local: f64,
    /// Local shimmer in dB, 0 when unvoiced.
    pub shimmer_local_db: f64,
    /// Waveform HNR in dB (only computed by a matcher made [`PeriodMatcher::with_hnr`];
    /// [`LOG_HNR_FLOOR`] otherwise and when unvoiced).
    pub log_hnr: f64,
}

impl Default for JitterFrame {
    fn default() -> Self {
        JitterFrame {
            jitter_local: 0.0,
            jitter_ddp: 0.0,
            shimmer_local: 0.0,
            shimmer_local_db: 0.0,
            log_hnr: LOG_HNR_FLOOR,
        }
    }
}

/// Computes jitter/shimmer for every frame; `f0[i]` is the (energy-gated) F0 of frame `i` in Hz,
/// frames start every `hop` samples and are `frame_len` samples long.
pub fn jitter_shimmer(
    signal: &[f32],
    sample_rate: u32,
    f0: &[f64],
    hop: usize,
    frame_len: usize,
    cfg: &JitterConfig,
) -> Vec<JitterFrame> {
    let mut matcher = PeriodMatcher::new(sample_rate as f64, cfg);
    f0.iter()
        .enumerate()
        .map(|(i, &f)| matcher.frame(signal, 0, i * hop, f, hop, frame_len))
        .collect()
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
#[derive(Debug, Clone)]
pub struct PeriodMatcher {
    rate: f64,
    cfg: JitterConfig,
    hnr: bool,
    last_idx: usize,
    last_mis: usize,
    last_t0: f64,
    last_diff: f64,
    last_jitter_local: f64,
    last_jitter_ddp: f64,
    last_shimmer: f64,
    mat: Vec<f64>,
    cc: Vec<f64>,
    sums: PrefixSums,
}

impl PeriodMatcher {
    /// A matcher for a signal at `rate` Hz (jitter and shimmer only).
    pub fn new(rate: f64, cfg: &JitterConfig) -> PeriodMatcher {
        PeriodMatcher {
            rate,
            cfg: cfg.clone(),
            hnr: false,
            last_idx: 0,
            last_mis: 0,
            last_t0: 0.0,
            last_diff: 0.0,
            last_jitter_local: 0.0,
            last_jitter_ddp: 0.0,
            last_shimmer: 0.0,
            mat: Vec::new(),
            cc: Vec::new(),
            sums: PrefixSums::default(),
        }
    }

    /// A matcher that also computes the waveform HNR.
    pub fn with_hnr(rate: f64, cfg: &JitterConfig) -> PeriodMatcher {
        PeriodMatcher {
            hnr: true,
            ..PeriodMatcher::new(rate, cfg)
        }
    }

    /// Earliest sample the next call may read, given that frame `frame_start` comes next: a
    /// streaming caller keeps its signal from here on.
    pub fn oldest_needed(&self, frame_start: usize) -> usize {
        self.last_idx.min(frame_start.saturating_sub(self.last_mis))
    }

    /// Analyses the frame starting at sample `frame_start` with (gated) F0 `f0` Hz; `x` holds
    /// the signal from sample `x_start` on (up to its end, or at least to the frame's end).
    pub fn frame(
        &mut self,
        x: &[f32],
        x_start: usize,
        frame_start: usize,
        f0: f64,
        hop: usize,
        frame_len: usize,
    ) -> JitterFrame {
        let to_read0 = hop + self.last_mis;
        let mut to_read = to_read0;
        let tf = if f0 > 0.0 { self.rate / f0 } else { 0.0 };
        let t0f = tf.round() as usize;
        let t0min = ((1.0 - self.cfg.search_range_rel) * tf).floor() as usize;
        let t0max = ((1.0 + self.cfg.search_range_rel) * tf).ceil() as usize;
        if f0 > 0.0 {
            to_read = to_read.max(self.cfg.min_num_periods * t0max + self.cfg.min_num_periods);
        }
        to_read = to_read.min(self.last_mis + frame_len);
        if frame_start as isize - self.last_mis as isize != self.last_idx as isize {
            self.last_idx = frame_start;
            to_read = to_read.min(frame_len);
        }
        if f0 <= 0.0 || t0min == 0 {
            self.last_mis = 0;
            self.last_t0 = 0.0;
            self.last_diff = 0.0;
            self.last_jitter_local = 0.0;
            self.last_jitter_ddp = 0.0;
            self.last_shimmer = 0.0;
            self.last_idx += to_read0;
            let log_hnr = if f0 > 0.0 && self.hnr {
                0.0
            } else {
                LOG_HNR_FLOOR
            };
            return JitterFrame {
                log_hnr,
                ..JitterFrame::default()
            };
        }
        let end_abs = x_start + x.len();
        let begin = self.last_idx.clamp(x_start, end_abs) - x_start;
        let end = (self.last_idx + to_read).clamp(x_start, end_abs) - x_start;
        let mut mat = std::mem::take(&mut self.mat);
        mat.clear();
        crate::dsp::extend_f64(&mut mat, &x[begin..end.max(begin)]);
        let (stats, log_hnr, last_period) = self.match_periods(&mat, t0f, t0min, t0max, to_read0);
        self.mat = mat;
        self.last_mis = to_read0 - last_period;
        self.last_idx += last_period;
        self.finish(stats, log_hnr)
    }

    /// Cuts `mat` into periods; returns the statistics, the log HNR and the last period start
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
        let mut sums = std::mem::take(&mut self.sums);
        sums.fill(mat);
        let n_lags = t0max - t0min + 1;
        let mut cc = std::mem::take(&mut self.cc);
        cc.clear();
        cc.resize(n_lags, 0.0);
        let mut starts: Vec<usize> = Vec::new();
        let mut average = if self.hnr {
            vec![0.0f64; t0f + 1]
        } else {
            Vec::new()
        };
        let (mut start, mut last_period, mut pp) = (0usize, 0usize, 0usize);
        while (start as isize) < mat.len() as isize - 2 * t0max as isize - 1 {
            sums.cross_corr_range(mat, start, t0min, &mut cc);
            let os = start;
            match best_peak(&cc) {
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
                    if self.hnr {
                        starts.push(os);
                        for (acc, &v) in average.iter_mut().zip(&mat[os..]).take(t0f) {
                            *acc += v;
                        }
                    }
                    let (vertex, cc_peak) = quad_peak(
                        mi as f64 - 1.0,
                        cc[mi - 1],
                        mi as f64,
                        cc[mi],
                        mi as f64 + 1.0,
                        cc[mi + 1],
                    );
                    if cc_peak > self.cfg.min_cc {
                        let period = (t0min as f64 + vertex).abs() / self.rate;
                        self.accept_period(&mut s, period, a0, a1);
                    }
                }
            }
            if start + 1 < to_read0 {
                last_period = start;
            }
        }
        self.cc = cc;
        self.sums = sums;
        let log_hnr = if self.hnr {
            starts.push(start);
            log_hnr(mat, &mut average, &starts, start, pp, t0f)
        } else {
            LOG_HNR_FLOOR
        };
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
    fn finish(&mut self, s: PeriodStats, log_hnr: f64) -> JitterFrame {
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
        let shimmer = self.last_shimmer;
        JitterFrame {
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
            shimmer_local: shimmer,
            shimmer_local_db: 20.0 * (1.0 + shimmer).log10(),
            log_hnr: log_hnr.max(LOG_HNR_FLOOR),
        }
    }
}

/// Highest interior local maximum of the correlation curve (`None` when there is none).
fn best_peak(cc: &[f64]) -> Option<usize> {
    // a peak lies above a neighbour, so it is never NaN or −∞: the first peak always beats −∞
    let interior = cc.get(..cc.len().saturating_sub(1)).unwrap_or(&[]);
    let (mut best, mut best_v) = (None, f64::NEG_INFINITY);
    for (k, w) in interior.windows(3).enumerate() {
        let (l, c, r) = (w[0], w[1], w[2]);
        if l < c && c > r && c > best_v {
            best = Some(k + 1);
            best_v = c;
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
    // the average over the samples the signal still has after the last start, then the
    // harmonic energy over i = 3 .. t0f − 2 (summed in increasing i)
    let lim = t0f.min(mat.len().saturating_sub(last_start));
    for (a, &m) in average[..lim]
        .iter_mut()
        .zip(mat.get(last_start..).unwrap_or(&[]))
    {
        *a = (*a + m) / n_periods;
    }
    let mut harmonic = 0.0;
    for &a in average
        .get(3..lim.min(t0f.saturating_sub(2)))
        .unwrap_or(&[])
    {
        harmonic += a * a;
    }
    if t0f > 4 {
        harmonic /= (t0f - 4) as f64;
    }
    let harmonic = harmonic.sqrt();
    // each period's deviation from the average, periods in order, samples in order
    let (mut noise, mut count) = (0.0, 0usize);
    let last_end = if last_len > 0 {
        last_start + last_len
    } else {
        0
    };
    let ends = starts[1..].iter().copied().chain(std::iter::once(last_end));
    for (&from, to) in starts.iter().zip(ends) {
        let stop = to.min(from + t0f).saturating_sub(2).min(mat.len());
        if stop <= from + 2 {
            continue;
        }
        for (&m, &a) in mat[from + 2..stop].iter().zip(&average[2..]) {
            let d = m - a;
            noise += d * d;
        }
        count += stop - from - 2;
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
#[derive(Debug, Clone, Default)]
struct PrefixSums {
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
}

impl PrefixSums {
    /// The sums of `x`, in the buffers of the last call (sized once, every value written).
    fn fill(&mut self, x: &[f64]) {
        let n = x.len() + 1;
        if self.sum.len() != n {
            self.sum.resize(n, 0.0);
            self.sum_sq.resize(n, 0.0);
        }
        let (mut a, mut b) = (0.0, 0.0);
        self.sum[0] = 0.0;
        self.sum_sq[0] = 0.0;
        let (sum, sum_sq) = (&mut self.sum[1..n], &mut self.sum_sq[1..n]);
        for ((&v, s), q) in x.iter().zip(sum).zip(sum_sq) {
            a += v;
            b += v * v;
            *s = a;
            *q = b;
        }
    }

    /// Normalised cross-correlations of `x[start..start+L]` with `x[start+L..start+2·L]`
    /// (each window centred on its own mean) for the lags `L = t0min..t0min + cc.len()`: the
    /// lagged products of all lags side by side, then their normalisation
    /// ([`super::period_kernels`]; the same bits as one lag at a time).
    fn cross_corr_range(&self, x: &[f64], start: usize, t0min: usize, cc: &mut [f64]) {
        period_kernels::lagged_dots(x, start, t0min, cc);
        period_kernels::normalise(&self.sum, &self.sum_sq, start, t0min, cc);
    }
}

/// Peak-to-peak amplitude over the interior samples of a period.
fn peak_to_peak(x: &[f64]) -> f64 {
    if x.len() < 3 {
        return 0.0;
    }
    period_kernels::peak_to_peak(&x[1..x.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(sr: f64, f0: f64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f64 / sr;
                (0.5 * (2.0 * std::f64::consts::PI * f0 * t).sin()
                    + 0.2 * (2.0 * std::f64::consts::PI * 2.0 * f0 * t).sin())
                    as f32
            })
            .collect()
    }

    #[test]
    fn a_clean_periodic_signal_has_low_jitter_and_high_hnr() {
        let x = tone(16_000.0, 125.0, 16_000);
        let cfg = JitterConfig {
            search_range_rel: 0.25,
            ..JitterConfig::default()
        };
        let mut m = PeriodMatcher::with_hnr(16_000.0, &cfg);
        let q: Vec<JitterFrame> = (0..60)
            .map(|i| m.frame(&x, 0, i * 160, 125.0, 160, 960))
            .collect();
        let late = &q[10..];
        assert!(late.iter().all(|v| v.jitter_local < 0.01), "{:?}", late[0]);
        assert!(late.iter().all(|v| v.log_hnr > 20.0), "{:?}", late[0]);
    }

    #[test]
    fn a_window_of_the_signal_gives_the_same_frames_as_the_whole_signal() {
        let x = tone(16_000.0, 140.0, 16_000);
        let cfg = JitterConfig::default();
        let (mut whole, mut part) = (
            PeriodMatcher::with_hnr(16_000.0, &cfg),
            PeriodMatcher::with_hnr(16_000.0, &cfg),
        );
        for i in 0..80 {
            let start = i * 160;
            let a = whole.frame(&x, 0, start, 140.0, 160, 960);
            let from = part.oldest_needed(start);
            let b = part.frame(&x[from..start + 960], from, start, 140.0, 160, 960);
            assert_eq!(a, b, "frame {i}");
        }
    }

    #[test]
    fn unvoiced_frames_reset_and_report_the_floor() {
        let x = tone(16_000.0, 125.0, 4_000);
        let mut m = PeriodMatcher::with_hnr(16_000.0, &JitterConfig::default());
        let q = m.frame(&x, 0, 0, 0.0, 160, 960);
        assert_eq!(q, JitterFrame::default());
        assert_eq!(q.log_hnr, LOG_HNR_FLOOR);
    }
}
