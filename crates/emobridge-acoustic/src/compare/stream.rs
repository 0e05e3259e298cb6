//! The ComParE-2016 LLDs and deltas as one pass over the signal in blocks of any size, with
//! memory bounded by the analysis windows rather than the signal length.
//!
//! [`CompareStream::push`] takes the next block of samples; every 20 ms and 60 ms frame is
//! analysed as soon as it is complete, the Viterbi smoother releases F0 at most its buffer length
//! (30 frames) later, and each released frame gets its jitter, shimmer and HNR at once. Rows
//! (65 smoothed LLDs then their 65 deltas) are handed to the caller as soon as no later frame
//! can change them: the `_sma` smoother reads one frame ahead and the `_de` regression two more,
//! so a row is final three frames after the slowest of its raw streams (the voicing one, behind
//! the smoother). What is kept:
//!
//! * the samples from the oldest one a pending frame or the period matcher still reads (about
//!   0.4 s: the Viterbi delay plus one 60 ms frame);
//! * the raw values of the 65 streams from three frames before the first row not yet handed
//!   out, in batches of [`BATCH_ROWS`] rows.
//!
//! The rows are bit-identical to [`super::lld_with_deltas`] on the whole signal whatever the
//! block sizes: every frame sees the same samples, every stateful part (RASTA filter, spectral
//! flux, Viterbi trellis, period matcher) runs in frame order, and the smoothing and deltas are
//! computed by the same functions on slices that hold every frame a row depends on (see
//! `contour`); the voicing deltas' running normaliser (openSMILE's, shared by the six voicing
//! columns and never reset) is carried from batch to batch, rows in order.
//!
//! Both cores on one long file: when a block completes at least [`PARALLEL_MIN_FRAMES`] 60 ms
//! frames, their SHS candidates and RMS are computed on rayon's pool, split over frames, while
//! the 20 ms chain runs beside them; everything stateful then runs in frame order, so the
//! output equals the one-thread output exactly. On a one-thread pool the same code runs on one
//! thread.

use std::collections::VecDeque;

use super::voicing::SharedSegmentDeltas;
use super::{
    check_input, contour, energy, Geometry, ShortChain, N_LLD, N_SHORT, SPECTRAL, VOICING,
};
use crate::dsp::{frame_count, lld_row_count, FrameGeometry};
use crate::pitch::jitter::PeriodMatcher;
use crate::pitch::shs::{Candidates, LANES};
use crate::pitch::viterbi::{SmoothedPitch, ViterbiStream};
use crate::pitch::{CandidateAnalyser, VoicingConfig};
use crate::AcousticError;

/// Rows handed out at a time mid-stream (the smoothing of each batch re-reads 7 frames).
pub const BATCH_ROWS: usize = 256;
/// Fewest complete 60 ms frames for which candidates are computed on the thread pool.
const PARALLEL_MIN_FRAMES: usize = 32;

/// Incremental ComParE-2016 LLD + delta analysis of one mono signal (openSMILE scaling).
pub struct CompareStream {
    g: Geometry,
    geo60: FrameGeometry,
    cfg: VoicingConfig,
    gate: f64,
    /// Samples from absolute index `buf_start` on.
    buf: Vec<f32>,
    buf_start: usize,
    seen: usize,
    /// The first non-finite sample seen (absolute index).
    non_finite: Option<usize>,
    short: ShortChain,
    next_short: usize,
    next_zcr: usize,
    next60: usize,
    candidates: CandidateAnalyser,
    viterbi: ViterbiStream,
    pending_rms: VecDeque<f64>,
    released: Vec<SmoothedPitch>,
    next_release: usize,
    matcher: PeriodMatcher,
    /// Raw values of the 65 streams in LLD order, from frame `raw_base` on.
    raw: Vec<Vec<f32>>,
    raw_base: usize,
    /// Rows handed out so far.
    emitted: usize,
    row: Vec<f32>,
    voicing_deltas: SharedSegmentDeltas,
}

/// Copies frame `index` (`len` samples every `hop`) from `buf` (holding the signal from sample
/// `base` on) into `out`, zero-padded past the end of the input.
fn copy_frame(buf: &[f32], base: usize, index: usize, hop: usize, len: usize, out: &mut Vec<f64>) {
    crate::egemaps::frames::copy_padded(buf, base, index * hop, len, out);
}

/// SHS candidates and windowed RMS of 60 ms frames `range` on the thread pool, in batches of
/// [`LANES`] (they depend on the frame's samples only, so any split gives the same values).
fn candidates_parallel(
    buf: &[f32],
    base: usize,
    geo: &FrameGeometry,
    cfg: &VoicingConfig,
    range: std::ops::Range<usize>,
) -> Vec<(Candidates, f64)> {
    crate::pitch::candidate_batches_parallel(
        geo,
        cfg,
        range,
        PARALLEL_MIN_FRAMES / 2 / LANES,
        |analyser, first, count| {
            analyser.frames(count, |k, frame| {
                copy_frame(buf, base, first + k, geo.hop, geo.frame, frame)
            })
        },
    )
}

/// The 20 ms chain and the ZCR of the long frames, up to the given frame counts.
struct ShortPart<'a> {
    short: &'a mut ShortChain,
    next_short: &'a mut usize,
    next_zcr: &'a mut usize,
    raw: &'a mut [Vec<f32>],
}

impl ShortPart<'_> {
    fn run(self, buf: &[f32], base: usize, g: &Geometry, n_short: usize, n_long: usize) {
        let mut values = [0.0f32; N_SHORT];
        while *self.next_short < n_short {
            let start = *self.next_short * g.hop - base;
            self.short
                .frame(&buf[start..start + g.short_len], &mut values);
            // LLD order: columns 6..9 are the first three short values, 10.. the rest
            for (k, &v) in values.iter().enumerate() {
                let col = if k < 3 { 6 + k } else { SPECTRAL.start + k - 3 };
                self.raw[col].push(v);
            }
            *self.next_short += 1;
        }
        while *self.next_zcr < n_long {
            let start = *self.next_zcr * g.hop - base;
            let z = energy::zero_crossing_rate(&buf[start..start + g.long_len]);
            self.raw[9].push(z as f32);
            *self.next_zcr += 1;
        }
    }
}

impl CompareStream {
    /// A stream for a signal at `sample_rate` Hz (at least 1 kHz).
    pub fn new(sample_rate: u32) -> Result<CompareStream, AcousticError> {
        check_input(&[], sample_rate)?;
        let g = Geometry::new(0, sample_rate);
        let cfg = super::voicing::compare_voicing_config();
        let geo60 = FrameGeometry::new(cfg.frame_s, cfg.hop_s, sample_rate);
        Ok(CompareStream {
            short: ShortChain::new(&g),
            gate: cfg.energy_gate.unwrap_or(f64::NEG_INFINITY),
            candidates: CandidateAnalyser::new(&geo60, &cfg),
            viterbi: ViterbiStream::new(&cfg.viterbi),
            matcher: PeriodMatcher::with_hnr(sample_rate as f64, &cfg.jitter),
            g,
            geo60,
            cfg,
            buf: Vec::new(),
            buf_start: 0,
            seen: 0,
            non_finite: None,
            next_short: 0,
            next_zcr: 0,
            next60: 0,
            pending_rms: VecDeque::new(),
            released: Vec::new(),
            next_release: 0,
            raw: vec![Vec::new(); N_LLD],
            raw_base: 0,
            emitted: 0,
            row: vec![0.0; 2 * N_LLD],
            voicing_deltas: SharedSegmentDeltas::new(),
        })
    }

    /// Samples held in the stream's buffer now (bounded by the analysis windows).
    pub fn buffered_samples(&self) -> usize {
        self.buf.len()
    }

    /// Raw frames held now (bounded by the batch size and the smoother's delay).
    pub fn buffered_frames(&self) -> usize {
        self.raw.iter().map(Vec::len).max().unwrap_or(0)
    }

    /// Rows handed out so far.
    pub fn rows_emitted(&self) -> usize {
        self.emitted
    }

    /// Analyses the next block; `out(frame_time, row)` receives every row that became final
    /// (130 values: the 65 LLDs then their 65 deltas). A non-finite sample is an error (naming
    /// its index in the whole input), and so is every later call.
    pub fn push(
        &mut self,
        block: &[f32],
        out: &mut impl FnMut(f64, &[f32]),
    ) -> Result<(), AcousticError> {
        if let Some(index) = self.non_finite {
            return Err(AcousticError::NonFinite { index });
        }
        if let Some(i) = block.iter().position(|x| !x.is_finite()) {
            let index = self.seen + i;
            self.non_finite = Some(index);
            return Err(AcousticError::NonFinite { index });
        }
        self.seen += block.len();
        self.buf.extend_from_slice(block);
        let g = self.g;
        let n_short = frame_count(self.seen, g.short_len, g.hop);
        let n_long = frame_count(self.seen, g.long_len, g.hop);
        let short = ShortPart {
            short: &mut self.short,
            next_short: &mut self.next_short,
            next_zcr: &mut self.next_zcr,
            raw: &mut self.raw,
        };
        if n_long - self.next60 >= PARALLEL_MIN_FRAMES {
            let (buf, base) = (&self.buf, self.buf_start);
            let (geo60, cfg, from) = (&self.geo60, &self.cfg, self.next60);
            let ((), frames) = rayon::join(
                || short.run(buf, base, &g, n_short, n_long),
                || candidates_parallel(buf, base, geo60, cfg, from..n_long),
            );
            for (candidates, rms) in frames {
                self.next60 += 1;
                self.smooth(candidates, rms);
            }
        } else {
            short.run(&self.buf, self.buf_start, &g, n_short, n_long);
            // whole batches of frames; the rest waits for the next block or the end of input
            while n_long - self.next60 >= LANES {
                self.frames60(LANES);
            }
        }
        let ready = self
            .next_short
            .min(self.next_zcr)
            .min(self.next_release)
            .saturating_sub(3);
        if ready >= self.emitted + BATCH_ROWS {
            self.emit(ready, None, out);
        }
        self.trim();
        Ok(())
    }

    /// Ends the input: analyses openSMILE's last (zero-padded) 60 ms frame, flushes the smoother
    /// and hands out the remaining rows; returns the number of rows in all (none for an input
    /// shorter than one 60 ms frame).
    pub fn finish(mut self, out: &mut impl FnMut(f64, &[f32])) -> Result<usize, AcousticError> {
        if let Some(index) = self.non_finite {
            return Err(AcousticError::NonFinite { index });
        }
        let rows = lld_row_count(self.seen, self.g.long_len, self.g.hop);
        if rows == 0 {
            return Ok(0);
        }
        while self.next60 < rows {
            self.frames60((rows - self.next60).min(LANES));
        }
        let viterbi = std::mem::replace(&mut self.viterbi, ViterbiStream::new(&self.cfg.viterbi));
        let mut released = std::mem::take(&mut self.released);
        viterbi.finish(&mut released);
        self.released = released;
        self.release_all();
        let n_short = frame_count(self.seen, self.g.short_len, self.g.hop);
        self.emit(rows, Some((rows, n_short + 1)), out);
        Ok(rows)
    }

    /// The next `count` 60 ms frames (at most [`LANES`]) on this thread.
    fn frames60(&mut self, count: usize) {
        let (buf, base, geo, first) = (&self.buf, self.buf_start, &self.geo60, self.next60);
        let batch = self.candidates.frames(count, |k, frame| {
            copy_frame(buf, base, first + k, geo.hop, geo.frame, frame)
        });
        for (candidates, rms) in batch {
            self.next60 += 1;
            self.smooth(candidates, rms);
        }
    }

    /// Hands the next 60 ms frame to the smoother and analyses the frames it releases.
    fn smooth(&mut self, candidates: Candidates, rms: f64) {
        self.pending_rms.push_back(rms);
        self.viterbi.push(candidates, &mut self.released);
        self.release_all();
    }

    fn release_all(&mut self) {
        let released = std::mem::take(&mut self.released);
        for p in &released {
            self.release(p);
        }
        self.released = released;
        self.released.clear();
    }

    /// The six raw voicing values of the next released frame.
    fn release(&mut self, p: &SmoothedPitch) {
        let i = self.next_release;
        let rms = self.pending_rms.pop_front().expect("a pending 60 ms frame");
        let (f0, voicing) = if rms < self.gate {
            (0.0, 0.0)
        } else {
            (p.f0, p.voicing)
        };
        let (hop, len) = (self.g.hop, self.g.long_len);
        let end = (i * hop + len).min(self.seen);
        let from = self.matcher.oldest_needed(i * hop).max(self.buf_start);
        let x = &self.buf[from - self.buf_start..end.max(from) - self.buf_start];
        let q = self.matcher.frame(x, from, i * hop, f0, hop, len);
        let values = [
            f0,
            voicing,
            q.jitter_local,
            q.jitter_ddp,
            q.shimmer_local,
            q.log_hnr,
        ];
        for (col, v) in VOICING.zip(values) {
            self.raw[col].push(v as f32);
        }
        self.next_release += 1;
    }

    /// Hands out rows `emitted..ready`; `end` as `contour` takes it, counted from frame 0.
    fn emit(
        &mut self,
        ready: usize,
        end: Option<(usize, usize)>,
        out: &mut impl FnMut(f64, &[f32]),
    ) {
        let a = self.raw_base;
        let rel_end = end.map(|(rows, short_rows)| (rows - a, short_rows - a));
        let from = self.emitted - a;
        let n = ready - self.emitted;
        let mut smoothed = Vec::with_capacity(N_LLD);
        let mut deltas = Vec::with_capacity(N_LLD);
        for (col, raw) in self.raw.iter().enumerate() {
            let (s, d) = contour(raw, col, rel_end);
            smoothed.push(s);
            deltas.push(d);
        }
        // voicing deltas: rows in order with the running normaliser (row t's values read
        // smoothed rows t ± 2, all inside the slice)
        let voiced: Vec<&[f32]> = smoothed[VOICING].iter().map(Vec::as_slice).collect();
        let mut voiced_deltas = vec![Vec::with_capacity(n); VOICING.len()];
        self.voicing_deltas
            .rows(&voiced, a, self.emitted..ready, &mut voiced_deltas);
        for t in from..from + n {
            for col in 0..N_LLD {
                self.row[col] = smoothed[col][t];
                self.row[N_LLD + col] = if VOICING.contains(&col) {
                    voiced_deltas[col - VOICING.start][t - from]
                } else {
                    deltas[col][t]
                };
            }
            out(self.g.frame_time(a + t), &self.row);
        }
        self.emitted = ready;
        // keep three frames before the next row to hand out
        let keep_from = ready.saturating_sub(3);
        let drop = keep_from - a;
        for raw in &mut self.raw {
            raw.drain(..drop.min(raw.len()));
        }
        self.raw_base = keep_from;
    }

    /// Drops the samples no pending frame or the period matcher can read any more.
    fn trim(&mut self) {
        let hop = self.g.hop;
        let keep_from = (self.next_short * hop)
            .min(self.next_zcr * hop)
            .min(self.next60 * hop)
            .min(self.next_release * hop)
            .min(self.matcher.oldest_needed(self.next_release * hop));
        let drop = keep_from.saturating_sub(self.buf_start);
        // amortised: move the tail down only when it saves at least as much as it keeps
        if drop > 0 && drop >= self.buf.len() / 2 {
            self.buf.drain(..drop);
            self.buf_start += drop;
        }
    }
}
