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

/// Local cost of `state` in a frame with candidates `c` (`n_states − 1` is "unvoiced").
fn local_cost(cfg: &ViterbiConfig, c: &Candidates, n_states: usize, state: usize) -> f64 {
    let thr = cfg.voicing_threshold;
    if state < n_states - 1 {
        let pv = c.voicing[state].clamp(0.01, 1.0);
        let penalty = if pv < thr { cfg.w_thr } else { 0.0 };
        (-pv.ln() + penalty) * cfg.w_local + range_weight(c.f0[state]) * cfg.w_range
    } else {
        let any_voiced = c.voicing.iter().any(|&v| v >= thr);
        cfg.w_local * if any_voiced { cfg.w_thr } else { 0.0 }
    }
}

/// The incremental smoother: [`ViterbiStream::push`] one frame of candidates at a time and
/// collect the frames it releases (in order, at most `buffer_len` frames behind the input);
/// [`ViterbiStream::finish`] flushes the rest. Memory is bounded by the buffer length.
#[derive(Debug, Clone)]
pub struct ViterbiStream {
    cfg: ViterbiConfig,
    buflen: usize,
    n_states: usize,
    costs: Vec<f64>,
    new_costs: Vec<f64>,
    paths: Vec<Vec<usize>>,
    new_paths: Vec<Vec<usize>>,
    /// Candidates of the frames not yet released, oldest (frame `conv`) first.
    pending: std::collections::VecDeque<Candidates>,
    /// A single running value of the last pitch change, as openSMILE keeps it.
    last_change: f64,
    /// Frames in the trellis.
    path_idx: usize,
    /// Frames already released.
    conv: usize,
}

impl ViterbiStream {
    /// A smoother with the given weights.
    pub fn new(cfg: &ViterbiConfig) -> ViterbiStream {
        ViterbiStream {
            cfg: cfg.clone(),
            buflen: cfg.buffer_len.max(1),
            n_states: 0,
            costs: Vec::new(),
            new_costs: Vec::new(),
            paths: Vec::new(),
            new_paths: Vec::new(),
            pending: std::collections::VecDeque::new(),
            last_change: 1.0,
            path_idx: 0,
            conv: 0,
        }
    }

    /// Frames pushed so far.
    pub fn frames_in(&self) -> usize {
        self.path_idx
    }

    /// Adds the next frame; the frames this decides are appended to `out`.
    pub fn push(&mut self, frame: Candidates, out: &mut Vec<SmoothedPitch>) {
        if self.path_idx == 0 {
            self.n_states = frame.f0.len() + 1;
            let n = self.n_states;
            self.costs = (0..n)
                .map(|s| local_cost(&self.cfg, &frame, n, s))
                .collect();
            self.new_costs = vec![0.0; n];
            self.paths = vec![vec![0usize; self.buflen]; n];
            self.new_paths = vec![vec![0usize; self.buflen]; n];
            for (s, p) in self.paths.iter_mut().enumerate() {
                p[0] = s;
            }
        } else {
            let n = self.n_states;
            let unvoiced = n - 1;
            let prev = self.pending.back().expect("the previous frame is pending");
            for s in 0..n {
                let (mut min_state, mut min_cost) = (0usize, 0.0f64);
                for j in 0..n {
                    // transition cost from state j at t−1 to state s at t
                    let tc = if s < unvoiced && j < unvoiced {
                        let (f_prev, f_now) = (prev.f0[j], frame.f0[s]);
                        if f_prev == 0.0 || f_now == 0.0 {
                            999.0
                        } else {
                            let r = (f_now / f_prev).ln();
                            let cost = self.cfg.w_tvv * r.abs()
                                + self.cfg.w_tvvd * (r - self.last_change).abs();
                            self.last_change = r;
                            cost
                        }
                    } else if s == unvoiced && j == unvoiced {
                        1.0
                    } else {
                        self.last_change = 0.0;
                        self.cfg.w_tvuv
                    };
                    let c = tc + self.costs[j];
                    if j == 0 || c < min_cost {
                        min_state = j;
                        min_cost = c;
                    }
                }
                self.new_costs[s] = min_cost + local_cost(&self.cfg, &frame, n, s);
                let (src, dst) = (&self.paths[min_state], &mut self.new_paths[s]);
                dst.copy_from_slice(src);
                dst[self.path_idx % self.buflen] = s;
            }
            std::mem::swap(&mut self.costs, &mut self.new_costs);
            std::mem::swap(&mut self.paths, &mut self.new_paths);
        }
        self.pending.push_back(frame);
        self.path_idx += 1;
        self.decide(out);
    }

    /// Releases every remaining frame from the best final path; returns how many frames were
    /// still undecided (see [`smooth_with_flush`]).
    pub fn finish(mut self, out: &mut Vec<SmoothedPitch>) -> usize {
        let pending = self.path_idx - self.conv;
        if self.path_idx == 0 {
            return 0;
        }
        let min_state = argmin(&self.costs);
        while self.conv < self.path_idx {
            let s = self.paths[min_state][self.conv % self.buflen];
            self.release(s, out);
        }
        pending
    }

    fn release(&mut self, state: usize, out: &mut Vec<SmoothedPitch>) {
        let c = self.pending.pop_front().expect("an undecided frame");
        out.push(if state < self.n_states - 1 {
            SmoothedPitch {
                f0: c.f0[state],
                voicing: c.voicing[state],
            }
        } else {
            SmoothedPitch {
                f0: 0.0,
                voicing: c.voicing[0],
            }
        });
        self.conv += 1;
    }

    /// Releases frames on which all paths agree, or forces the oldest one when the buffer is full.
    fn decide(&mut self, out: &mut Vec<SmoothedPitch>) {
        let buflen = self.buflen;
        if self.path_idx - self.conv + 1 > buflen {
            let min_state = argmin(&self.costs);
            let s = self.paths[min_state][self.conv % buflen];
            self.release(s, out);
        } else {
            while self.conv < self.path_idx {
                let k = self.conv % buflen;
                let x = self.paths[0][k];
                if self.paths.iter().any(|p| p[k] != x) {
                    break;
                }
                self.release(x, out);
            }
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
    let mut stream = ViterbiStream::new(cfg);
    let mut out = Vec::with_capacity(frames.len());
    for f in frames {
        stream.push(f.clone(), &mut out);
    }
    let pending = stream.finish(&mut out);
    (out, pending)
}

fn argmin(v: &[f64]) -> usize {
    (1..v.len()).fold(0, |b, i| if v[i] < v[b] { i } else { b })
}
