//! Jitter and shimmer from waveform-matched pitch periods (openSMILE `cPitchJitter`).
//!
//! For each voiced frame the waveform following the last matched period boundary is cut into
//! periods: the next period length is the lag in `[(1 − r) T0, (1 + r) T0]` (T0 = 1/F0 in
//! samples, r = `search_range_rel`) whose normalised cross-correlation between two adjacent
//! windows peaks highest. Periods with a correlation peak above `min_cc` count: local jitter is
//! the mean absolute difference of consecutive periods over the mean period, local shimmer the
//! mean absolute difference of peak-to-peak amplitudes over their mean (reported in dB as
//! 20·log10(1 + shimmer)). The matching position carries over between frames exactly as in
//! openSMILE (`lastIdx` / `lastMis` bookkeeping), and the previous value is held when a voiced
//! frame yields no period.

use super::shs::quad_peak;

/// Settings of the period matcher (defaults: eGeMAPS `cPitchJitter` settings).
#[derive(Debug, Clone, PartialEq)]
pub struct JitterConfig {
    /// Relative search range around the expected period (default 0.1).
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

/// Jitter and shimmer of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct JitterFrame {
    /// Local jitter (ratio, ≤ 1), 0 when unvoiced.
    pub jitter_local: f64,
    /// Jitter DDP (ratio, ≤ 1), 0 when unvoiced.
    pub jitter_ddp: f64,
    /// Local shimmer (ratio, ≤ 1), 0 when unvoiced.
    pub shimmer_local: f64,
    /// Local shimmer in dB, 0 when unvoiced.
    pub shimmer_local_db: f64,
}

/// Pearson correlation of two equally long windows (single pass over the samples).
fn cross_corr(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    if n == 0 {
        return 0.0;
    }
    let (mut sx, mut sy, mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (&a, &b) in x[..n].iter().zip(&y[..n]) {
        sx += a;
        sy += b;
        sxy += a * b;
        sxx += a * a;
        syy += b * b;
    }
    let nf = n as f64;
    let (mx, my) = (sx / nf, sy / nf);
    let cc = sxy - nf * mx * my;
    let (nx, ny) = ((sxx - nf * mx * mx).max(0.0), (syy - nf * my * my).max(0.0));
    cc / (nx.sqrt() * ny.sqrt())
}

/// Peak-to-peak amplitudes of two periods (max and min over samples 1..n−1).
fn peak_to_peak(x: &[f64]) -> f64 {
    if x.len() < 3 {
        return 0.0;
    }
    let inner = &x[1..x.len() - 1];
    let max = inner.iter().cloned().fold(x[1], f64::max);
    let min = inner.iter().cloned().fold(x[1], f64::min);
    max - min
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
    let x: Vec<f64> = signal.iter().map(|&v| v as f64).collect();
    let mut state = MatcherState {
        rate: sample_rate as f64,
        ..Default::default()
    };
    f0.iter()
        .enumerate()
        .map(|(i, &f)| state.frame(&x, i * hop, f, hop, frame_len, cfg))
        .collect()
}

#[derive(Default)]
struct MatcherState {
    rate: f64,
    last_idx: usize,
    last_mis: usize,
    last_t0: f64,
    last_diff: f64,
    last_jitter_local: f64,
    last_jitter_ddp: f64,
    last_shimmer: f64,
}

impl MatcherState {
    fn frame(
        &mut self,
        x: &[f64],
        start_sample: usize,
        f0: f64,
        hop: usize,
        frame_len: usize,
        cfg: &JitterConfig,
    ) -> JitterFrame {
        let to_read0 = hop + self.last_mis;
        let mut to_read = to_read0;
        let (mut t0f, mut t0min_f, mut t0max_f) = (0usize, 0usize, 0usize);
        let rate = self.rate;
        if f0 > 0.0 {
            let tf = rate / f0;
            t0f = tf.round() as usize;
            t0min_f = ((1.0 - cfg.search_range_rel) * tf).floor() as usize;
            t0max_f = ((1.0 + cfg.search_range_rel) * tf).ceil() as usize;
            let two_pp = cfg.min_num_periods * t0max_f + cfg.min_num_periods;
            to_read = to_read.max(two_pp);
        }
        let mut max_read = self.last_mis + frame_len;
        to_read = to_read.min(max_read);
        if start_sample as isize - self.last_mis as isize != self.last_idx as isize {
            self.last_idx = start_sample;
            to_read = to_read.min(frame_len);
            max_read = max_read.min(frame_len);
        }
        let _ = max_read;
        let begin = self.last_idx.min(x.len());
        let end = (self.last_idx + to_read).min(x.len());
        let mat = &x[begin..end];

        let (mut n_periods, mut n_local, mut n_ddp) = (0.0f64, 0.0f64, 0.0f64);
        let (mut avg_period, mut jit_local, mut jit_ddp, mut avg_amp, mut avg_amp_diff) =
            (0.0, 0.0, 0.0, 0.0, 0.0);
        let last_period;
        if f0 > 0.0 && t0min_f > 0 {
            let mut start = 0usize;
            let mut lp = 0usize;
            let n_lags = t0max_f - t0min_f + 1;
            let mut cc = vec![0.0; n_lags];
            while (start as isize) < mat.len() as isize - 2 * t0max_f as isize - 1 {
                for lag in t0min_f..=t0max_f {
                    cc[lag - t0min_f] =
                        cross_corr(&mat[start..start + lag], &mat[start + lag..start + 2 * lag]);
                }
                let mut max_i: isize = -1;
                let mut max = 0.0;
                for i in 1..n_lags.saturating_sub(2) {
                    if cc[i - 1] < cc[i] && cc[i] > cc[i + 1] && (max_i == -1 || cc[i] > max) {
                        max_i = i as isize;
                        max = cc[i];
                    }
                }
                if max_i >= 0 {
                    let mi = max_i as usize;
                    let pp = t0min_f + mi;
                    let os = start;
                    start += pp;
                    let a0 = peak_to_peak(&mat[os..os + pp]);
                    let a1 = peak_to_peak(&mat[start..(start + pp).min(mat.len())]);
                    let (vertex, cc_i) = quad_peak(
                        mi as f64 - 1.0,
                        cc[mi - 1],
                        mi as f64,
                        cc[mi],
                        mi as f64 + 1.0,
                        cc[mi + 1],
                    );
                    let period = (t0min_f as f64 + vertex).abs() / rate;
                    if cc_i > cfg.min_cc {
                        avg_period += period;
                        n_periods += 1.0;
                        if self.last_t0 > 0.0 {
                            let diff = (self.last_t0 - period).abs();
                            jit_local += diff;
                            n_local += 1.0;
                            if self.last_diff > 0.0 {
                                jit_ddp += (self.last_diff - diff).abs();
                                n_ddp += 1.0;
                            }
                            self.last_diff = diff;
                        }
                        self.last_t0 = period;
                        avg_amp += (a0 + a1) / 2.0;
                        avg_amp_diff += (a0 - a1).abs();
                    }
                } else {
                    start += t0f;
                }
                if start + 1 < to_read0 {
                    lp = start;
                }
            }
            last_period = lp;
            self.last_mis = to_read0 - lp;
        } else {
            last_period = to_read0;
            self.last_mis = 0;
            self.last_t0 = 0.0;
            self.last_diff = 0.0;
            self.last_jitter_local = 0.0;
            self.last_jitter_ddp = 0.0;
            self.last_shimmer = 0.0;
        }
        self.last_idx += last_period;
        self.output(
            f0,
            n_periods,
            n_local,
            n_ddp,
            avg_period,
            jit_local,
            jit_ddp,
            avg_amp,
            avg_amp_diff,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn output(
        &mut self,
        f0: f64,
        n_periods: f64,
        n_local: f64,
        n_ddp: f64,
        avg_period: f64,
        jit_local: f64,
        jit_ddp: f64,
        avg_amp: f64,
        avg_amp_diff: f64,
    ) -> JitterFrame {
        if f0 <= 0.0 {
            return JitterFrame::default();
        }
        let mean_period = if n_periods > 0.0 {
            avg_period / n_periods
        } else {
            0.0
        };
        if n_periods > 0.0 && n_local > 0.0 {
            self.last_jitter_local = jit_local / n_local / mean_period;
        }
        if n_periods > 0.0 && n_ddp > 0.0 {
            self.last_jitter_ddp = jit_ddp / n_ddp / mean_period;
        }
        if n_periods > 0.0 {
            self.last_shimmer = if avg_amp > 0.0 {
                avg_amp_diff / avg_amp
            } else {
                0.0
            };
        }
        let held = n_periods == 0.0;
        let jitter_local = if n_local > 0.0 || held {
            self.last_jitter_local.min(1.0)
        } else {
            0.0
        };
        let jitter_ddp = if n_ddp > 0.0 || held {
            self.last_jitter_ddp.min(1.0)
        } else {
            0.0
        };
        self.last_jitter_local = self.last_jitter_local.min(1.0);
        self.last_shimmer = self.last_shimmer.min(1.0);
        let shimmer = self.last_shimmer;
        JitterFrame {
            jitter_local,
            jitter_ddp,
            shimmer_local: shimmer,
            shimmer_local_db: 20.0 * (1.0 + shimmer).log10(),
        }
    }
}
