//! Viterbi smoothing of pitch candidates (openSMILE `cPitchSmootherViterbi`, after Luengo et al.
//! ICASSP 2007), reproduced with its incremental trellis: paths are kept for `buffer_len` frames,
//! output is released where all paths merge or, when the buffer is full, forced from the
//! currently best path; the remainder is flushed from the best path at the end of input.
//!
//! States 0..n are the candidates of a frame, state n is "unvoiced". Costs:
//! * local, candidate k: `(−ln clamp(v_k, 0.01, 1) + [v_k < thr]·w_thr)·w_local + range(f_k)·w_range`;
//! * local, unvoiced: `w_local · w_thr` if any candidate has `v ≥ thr`, else 0;
//! * voiced→voiced: `w_tvv |r| + w_tvvd |r − r_last|`, r = ln(f_now/f_prev), 999 for an empty
//!   candidate; `r_last` is a single running value updated on every evaluation (as in openSMILE);
//! * voiced↔unvoiced: `w_tvuv` (and `r_last` reset to 0); unvoiced→unvoiced: 1.

use super::shs::Candidates;

/// Weights of the Viterbi smoother (defaults: eGeMAPS / ComParE settings).
#[derive(Debug, Clone, PartialEq)]
pub struct ViterbiConfig {
    /// Trellis / delay buffer length in frames (default 40).
    pub buffer_len: usize,
    /// Weight of the local voicing cost (default 2).
    pub w_local: f64,
    /// Weight of voiced-voiced pitch jumps (default 10).
    pub w_tvv: f64,
    /// Weight of the change of pitch jumps. openSMILE's setter copies `w_tvv` here, so the
    /// effective default is 10 whatever the configuration says.
    pub w_tvvd: f64,
    /// Cost of a voiced↔unvoiced transition (default 10).
    pub w_tvuv: f64,
    /// Penalty for candidates below the voicing threshold (default 4).
    pub w_thr: f64,
    /// Weight of the pitch-range prior (default 1).
    pub w_range: f64,
    /// Voicing threshold (default 0.7, the detector's cut-off).
    pub voicing_threshold: f64,
}

impl Default for ViterbiConfig {
    fn default() -> Self {
        ViterbiConfig {
            buffer_len: 40,
            w_local: 2.0,
            w_tvv: 10.0,
            w_tvvd: 10.0,
            w_tvuv: 10.0,
            w_thr: 4.0,
            w_range: 1.0,
            voicing_threshold: 0.7,
        }
    }
}

/// Smoothed pitch of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SmoothedPitch {
    /// F0 in Hz, 0 when unvoiced.
    pub f0: f64,
    /// Voicing probability of the chosen candidate (of the first candidate when unvoiced).
    pub voicing: f64,
}

/// Piecewise-linear prior favouring 100–350 Hz.
fn range_weight(f: f64) -> f64 {
    if f > 0.0 && f < 100.0 {
        1.0 - f / 100.0
    } else if (100.0..350.0).contains(&f) {
        0.0
    } else if (350.0..600.0).contains(&f) {
        (f - 350.0) / 250.0
    } else if f >= 600.0 {
        1.2
    } else {
        2.0
    }
}

struct Trellis<'a> {
    cfg: &'a ViterbiConfig,
    frames: &'a [Candidates],
    n_states: usize,
    last_change: f64,
}

impl Trellis<'_> {
    fn local_cost(&self, state: usize, t: usize) -> f64 {
        let c = &self.frames[t];
        let thr = self.cfg.voicing_threshold;
        if state < self.n_states - 1 {
            let pv = c.voicing[state].clamp(0.01, 1.0);
            let penalty = if pv < thr { self.cfg.w_thr } else { 0.0 };
            (-pv.ln() + penalty) * self.cfg.w_local + range_weight(c.f0[state]) * self.cfg.w_range
        } else {
            let any_voiced = c.voicing.iter().any(|&v| v >= thr);
            self.cfg.w_local * if any_voiced { self.cfg.w_thr } else { 0.0 }
        }
    }

    /// Cost of moving from state `from` at t−1 to state `to` at t.
    fn transition_cost(&mut self, to: usize, from: usize, t: usize) -> f64 {
        let unvoiced = self.n_states - 1;
        if to < unvoiced && from < unvoiced {
            let f_prev = self.frames[t - 1].f0[from];
            let f_now = self.frames[t].f0[to];
            if f_prev == 0.0 || f_now == 0.0 {
                return 999.0;
            }
            let r = (f_now / f_prev).ln();
            let cost = self.cfg.w_tvv * r.abs() + self.cfg.w_tvvd * (r - self.last_change).abs();
            self.last_change = r;
            cost
        } else if to == unvoiced && from == unvoiced {
            1.0
        } else {
            self.last_change = 0.0;
            self.cfg.w_tvuv
        }
    }
}

/// Smooths a sequence of candidate frames into one pitch value per frame.
pub fn smooth(frames: &[Candidates], cfg: &ViterbiConfig) -> Vec<SmoothedPitch> {
    smooth_with_flush(frames, cfg).0
}

/// Like [`smooth`], also returning how many trailing frames were still undecided when the input
/// ended (released by the final flush). openSMILE's functionals run before those frames have
/// travelled through the rest of its pipeline, so this number tells how many frames its
/// voicing-level functionals miss (see `egemaps::functionals`).
pub fn smooth_with_flush(
    frames: &[Candidates],
    cfg: &ViterbiConfig,
) -> (Vec<SmoothedPitch>, usize) {
    if frames.is_empty() {
        return (Vec::new(), 0);
    }
    let n_cand = frames[0].f0.len();
    let n_states = n_cand + 1;
    let buflen = cfg.buffer_len.max(1);
    let mut trellis = Trellis {
        cfg,
        frames,
        n_states,
        last_change: 1.0,
    };
    let mut costs: Vec<f64> = (0..n_states).map(|s| trellis.local_cost(s, 0)).collect();
    let mut paths = vec![vec![0usize; buflen]; n_states];
    for (s, p) in paths.iter_mut().enumerate() {
        p[0] = s;
    }
    let mut best = vec![0usize; frames.len()];
    let mut path_idx = 1usize; // frames in the trellis
    let mut conv = 0usize; // frames already decided
    decide(&paths, &costs, &mut best, &mut conv, path_idx, buflen);
    for t in 1..frames.len() {
        let mut new_costs = vec![0.0; n_states];
        let mut new_paths = vec![vec![0usize; buflen]; n_states];
        for s in 0..n_states {
            let mut min_state = 0;
            let mut min_cost = trellis.transition_cost(s, 0, t) + costs[0];
            for j in 1..n_states {
                let c = trellis.transition_cost(s, j, t) + costs[j];
                if c < min_cost {
                    min_state = j;
                    min_cost = c;
                }
            }
            new_costs[s] = min_cost + trellis.local_cost(s, t);
            new_paths[s].copy_from_slice(&paths[min_state]);
            new_paths[s][path_idx % buflen] = s;
        }
        costs = new_costs;
        paths = new_paths;
        path_idx += 1;
        decide(&paths, &costs, &mut best, &mut conv, path_idx, buflen);
    }
    // flush from the best final path
    let pending = path_idx - conv;
    let min_state = argmin(&costs);
    while conv < path_idx {
        best[conv] = paths[min_state][conv % buflen];
        conv += 1;
    }
    let out = best
        .iter()
        .zip(frames)
        .map(|(&s, c)| {
            if s < n_cand {
                SmoothedPitch {
                    f0: c.f0[s],
                    voicing: c.voicing[s],
                }
            } else {
                SmoothedPitch {
                    f0: 0.0,
                    voicing: c.voicing[0],
                }
            }
        })
        .collect();
    (out, pending)
}

/// Releases frames on which all paths agree, or forces the oldest one when the buffer is full.
fn decide(
    paths: &[Vec<usize>],
    costs: &[f64],
    best: &mut [usize],
    conv: &mut usize,
    path_idx: usize,
    buflen: usize,
) {
    if path_idx - *conv + 1 > buflen {
        let min_state = argmin(costs);
        best[*conv] = paths[min_state][*conv % buflen];
        *conv += 1;
    } else {
        while *conv < path_idx {
            let x = paths[0][*conv % buflen];
            if paths.iter().any(|p| p[*conv % buflen] != x) {
                break;
            }
            best[*conv] = x;
            *conv += 1;
        }
    }
}

fn argmin(v: &[f64]) -> usize {
    (1..v.len()).fold(0, |b, i| if v[i] < v[b] { i } else { b })
}
