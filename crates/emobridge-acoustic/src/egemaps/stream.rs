//! The eGeMAPS analysis as one pass over the signal in blocks of any size, with memory bounded
//! by the analysis windows rather than the signal length.
//!
//! [`EgemapsStream::push`] takes the next block of samples; every 20 ms and 60 ms frame is
//! analysed as soon as it is complete, the Viterbi smoother ([`crate::pitch::viterbi::ViterbiStream`])
//! releases F0 at most `buffer_len` frames later, and each released frame gets its jitter,
//! shimmer, harmonic and formant descriptors at once. What is kept:
//!
//! * the samples from the oldest one a pending frame or the period matcher still reads (about
//!   half a second: the Viterbi delay plus one 60 ms frame);
//! * the magnitude spectra and formants of frames the smoother has not released yet;
//! * per frame, the 10 spectral and 15 voicing values as f32 (the functionals need their
//!   percentiles, peaks and segments: 100 rows/s × 25 × 4 bytes ≈ 36 MB per hour) and a running
//!   sum of frame powers.
//!
//! The results are bit-identical to analysing the whole signal at once whatever the block
//! sizes: every frame sees the same samples, and every stateful part (spectral flux, formant
//! root search, Viterbi trellis, period matcher) runs in frame order exactly as on the whole
//! signal — the blocks only decide when a frame is computed, not what it sees.
//!
//! Both cores on one long file: when a block completes at least [`PARALLEL_MIN_FRAMES`] 60 ms
//! frames, their SHS candidates, RMS and spectra (about half the work at 44.1 kHz) are computed
//! on rayon's pool, split over frames, while the 20 ms chain runs beside them. The split rule is
//! that only work depending on nothing but the frame's own samples is split; every part that
//! carries state from frame to frame runs afterwards, in frame order, on the joined per-frame
//! values, so the output equals the one-thread output exactly (no overlap or state hand-over is
//! needed). On a one-thread pool (`--threads 1`) the same code runs on one thread.

use std::collections::VecDeque;

use super::spectral::{mean_power, SpectralLlds};
use super::{Analysis, N_SPECTRAL};
use crate::dsp::{frame_count, hamming, FrameGeometry, MagnitudeFft};
use crate::formants::{FormantConfig, FormantTracker, Formants};
use crate::pitch::harmonics::HarmonicsAnalyser;
use crate::pitch::jitter::PeriodMatcher;
use crate::pitch::shs::{Candidates, LANES};
use crate::pitch::viterbi::{SmoothedPitch, ViterbiStream};
use crate::pitch::{self, CandidateAnalyser, VoicingConfig};
use crate::AcousticError;

/// Incremental eGeMAPS v02 analysis of one mono signal (openSMILE scaling).
pub struct EgemapsStream {
    sample_rate: u32,
    cfg: VoicingConfig,
    geo20: FrameGeometry,
    geo60: FrameGeometry,
    /// Samples from absolute index `buf_start` on.
    buf: Vec<f32>,
    buf_start: usize,
    /// Samples pushed so far.
    seen: usize,
    /// A non-finite sample seen (absolute index), reported by [`EgemapsStream::finish`].
    non_finite: Option<usize>,
    chain20: Chain20,
    // 60 ms chain
    next60: usize,
    candidates: CandidateAnalyser,
    viterbi: ViterbiStream,
    /// Windowed RMS and magnitude spectrum of the 60 ms frames not released yet.
    pending: VecDeque<(f64, Vec<f64>)>,
    spare_spectra: Vec<Vec<f64>>,
    released: Vec<SmoothedPitch>,
    next_release: usize,
    matcher: PeriodMatcher,
    harmonics: HarmonicsAnalyser,
    /// Samples of the 60 ms frame being released (for the HNR's ACF lags).
    hnr_frame: Vec<f64>,
    voicing: Vec<[f32; 15]>,
}

/// The 20 ms chain: spectral LLDs, frame power and formants, frame by frame in order.
struct Chain20 {
    geo: FrameGeometry,
    next: usize,
    frame: Vec<f64>,
    window: Vec<f64>,
    fft: MagnitudeFft,
    mags: Vec<f64>,
    spectral_llds: SpectralLlds,
    formant_tracker: FormantTracker,
    /// Formants of 20 ms frames `formants_start..`, until their voicing frame is released.
    formants: VecDeque<Formants>,
    formants_start: usize,
    spectral: Vec<[f32; N_SPECTRAL]>,
    power_sum: f64,
    power_frames: usize,
}

/// Fewest complete 60 ms frames for which candidates are computed on the thread pool (below it
/// the stream's own analyser is cheaper than one per worker).
const PARALLEL_MIN_FRAMES: usize = 32;

/// Copies frame `index` of `geo` from `buf` (holding the signal from sample `base` on) into
/// `out`, zero-padded past the end of the input.
fn copy_frame(buf: &[f32], base: usize, index: usize, geo: &FrameGeometry, out: &mut Vec<f64>) {
    let start = index * geo.hop;
    super::frames::copy_padded(buf, base, start, geo.frame, out);
}

impl Chain20 {
    /// Analyses frames up to (not including) `until`.
    fn run(&mut self, buf: &[f32], base: usize, until: usize) {
        while self.next < until {
            copy_frame(buf, base, self.next, &self.geo, &mut self.frame);
            self.power_sum += mean_power(&self.frame);
            self.power_frames += 1;
            self.fft
                .magnitudes(&self.frame, &self.window, &mut self.mags);
            let s = self.spectral_llds.frame(&self.mags);
            self.spectral.push([
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
            self.formants
                .push_back(self.formant_tracker.frame(self.fft.last_complex()));
            self.next += 1;
        }
    }
}

/// SHS candidates, windowed RMS and magnitude spectrum of 60 ms frames `range`, computed on the
/// thread pool in batches of [`LANES`]: they depend on the frame's samples only, so any split
/// gives the same values.
fn candidates_parallel(
    buf: &[f32],
    base: usize,
    geo: &FrameGeometry,
    cfg: &VoicingConfig,
    range: std::ops::Range<usize>,
) -> Vec<(Candidates, f64, Vec<f64>)> {
    pitch::candidate_batches_parallel(
        geo,
        cfg,
        range,
        PARALLEL_MIN_FRAMES / 2 / LANES,
        |analyser, first, count| {
            let out = analyser.frames(count, |k, frame| {
                copy_frame(buf, base, first + k, geo, frame)
            });
            out.into_iter()
                .enumerate()
                .map(|(k, (c, rms))| (c, rms, std::mem::take(&mut analyser.lane_mags[k])))
                .collect()
        },
    )
}

impl EgemapsStream {
    /// A stream for a signal at `sample_rate` Hz (at least 1 kHz).
    pub fn new(sample_rate: u32) -> Result<EgemapsStream, AcousticError> {
        super::validate_rate(sample_rate)?;
        let cfg = VoicingConfig::default();
        let geo20 = FrameGeometry::new(0.020, 0.010, sample_rate);
        let geo60 = FrameGeometry::new(cfg.frame_s, cfg.hop_s, sample_rate);
        Ok(EgemapsStream {
            sample_rate,
            geo20,
            geo60,
            buf: Vec::new(),
            buf_start: 0,
            seen: 0,
            non_finite: None,
            chain20: Chain20 {
                geo: geo20,
                next: 0,
                frame: Vec::with_capacity(geo20.frame),
                window: hamming(geo20.frame),
                fft: MagnitudeFft::new(geo20.nfft),
                mags: Vec::new(),
                spectral_llds: SpectralLlds::new(geo20.n_bins(), geo20.bin_hz()),
                formant_tracker: FormantTracker::new(
                    FormantConfig::default(),
                    geo20.frame,
                    geo20.nfft,
                    sample_rate,
                ),
                formants: VecDeque::new(),
                formants_start: 0,
                spectral: Vec::new(),
                power_sum: 0.0,
                power_frames: 0,
            },
            next60: 0,
            candidates: CandidateAnalyser::new(&geo60, &cfg),
            viterbi: ViterbiStream::new(&cfg.viterbi),
            pending: VecDeque::new(),
            spare_spectra: Vec::new(),
            released: Vec::new(),
            next_release: 0,
            matcher: PeriodMatcher::new(sample_rate as f64, &cfg.jitter),
            harmonics: HarmonicsAnalyser::new(geo60.n_bins(), geo60.bin_hz())
                .with_window(crate::egemaps::frames::gauss(geo60.frame, cfg.gauss_sigma)),
            hnr_frame: Vec::with_capacity(geo60.frame),
            voicing: Vec::new(),
            cfg,
        })
    }

    /// Sample rate of the input in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Samples held in the stream's buffer now (bounded by the analysis windows, not by the
    /// input length).
    pub fn buffered_samples(&self) -> usize {
        self.buf.len()
    }

    /// Samples pushed so far.
    pub fn samples_seen(&self) -> usize {
        self.seen
    }

    /// Analyses the next block of samples.
    pub fn push(&mut self, block: &[f32]) {
        if self.non_finite.is_none() {
            if let Some(i) = block.iter().position(|x| !x.is_finite()) {
                self.non_finite = Some(self.seen + i);
            }
        }
        self.seen += block.len();
        if self.non_finite.is_some() {
            return;
        }
        self.buf.extend_from_slice(block);
        let n20 = frame_count(self.seen, self.geo20.frame, self.geo20.hop);
        let n60 = frame_count(self.seen, self.geo60.frame, self.geo60.hop);
        if n60 - self.next60 >= PARALLEL_MIN_FRAMES {
            // the 20 ms chain and the 60 ms candidates run side by side; everything stateful
            // stays in frame order
            let (buf, base, chain20) = (&self.buf, self.buf_start, &mut self.chain20);
            let (geo60, cfg, from) = (&self.geo60, &self.cfg, self.next60);
            let ((), frames) = rayon::join(
                || chain20.run(buf, base, n20),
                || candidates_parallel(buf, base, geo60, cfg, from..n60),
            );
            for (candidates, rms, mags) in frames {
                self.next60 += 1;
                self.smooth(candidates, rms, mags);
            }
        } else {
            self.chain20.run(&self.buf, self.buf_start, n20);
            // whole batches of frames; the rest waits for the next block or the end of input
            while n60 - self.next60 >= LANES {
                self.frames60(LANES);
            }
        }
        self.trim();
    }

    /// Ends the input: analyses openSMILE's last (zero-padded) 60 ms frame and flushes the
    /// smoother.
    pub(super) fn finish_analysis(mut self) -> Result<Analysis, AcousticError> {
        if let Some(index) = self.non_finite {
            return Err(AcousticError::NonFinite { index });
        }
        let n60 = super::frames::lld_row_count(self.seen, self.geo60.frame, self.geo60.hop);
        while self.next60 < n60 {
            self.frames60((n60 - self.next60).min(LANES));
        }
        let viterbi = std::mem::replace(&mut self.viterbi, ViterbiStream::new(&self.cfg.viterbi));
        let mut released = std::mem::take(&mut self.released);
        let pending_at_end = viterbi.finish(&mut released);
        self.released = released;
        self.release_all();
        Ok(Analysis {
            period_s: 0.010,
            hop: self.geo20.hop,
            sample_rate: self.sample_rate,
            spectral: self.chain20.spectral,
            power_sum: self.chain20.power_sum,
            power_frames: self.chain20.power_frames,
            voicing: self.voicing,
            pending_at_end,
        })
    }

    /// The next `count` 60 ms frames (at most [`LANES`]) on this thread.
    fn frames60(&mut self, count: usize) {
        let (buf, base, geo, first) = (&self.buf, self.buf_start, &self.geo60, self.next60);
        let batch = self.candidates.frames(count, |k, frame| {
            copy_frame(buf, base, first + k, geo, frame)
        });
        for (k, (candidates, rms)) in batch.into_iter().enumerate() {
            // hand the spectrum over and give the analyser a spare buffer for the next frame
            let mut spectrum = self.spare_spectra.pop().unwrap_or_default();
            std::mem::swap(&mut spectrum, &mut self.candidates.lane_mags[k]);
            self.next60 += 1;
            self.smooth(candidates, rms, spectrum);
        }
    }

    /// Hands the next 60 ms frame to the smoother and analyses the frames it releases.
    fn smooth(&mut self, candidates: Candidates, rms: f64, spectrum: Vec<f64>) {
        self.pending.push_back((rms, spectrum));
        self.viterbi.push(candidates, &mut self.released);
        self.release_all();
    }

    /// Voicing rows of the frames the smoother has released.
    fn release_all(&mut self) {
        let released = std::mem::take(&mut self.released);
        for p in &released {
            self.release(p);
        }
        self.released = released;
        self.released.clear();
    }

    fn release(&mut self, p: &SmoothedPitch) {
        let i = self.next_release;
        let (rms, spectrum) = self.pending.pop_front().expect("a pending 60 ms frame");
        let f0 = match self.cfg.energy_gate {
            Some(gate) if rms < gate => 0.0,
            _ => p.f0,
        };
        let hop = self.geo60.hop;
        let j = {
            let end = (i * hop + self.geo60.frame).min(self.seen);
            let from = self.matcher.oldest_needed(i * hop).max(self.buf_start);
            let x = &self.buf[from - self.buf_start..end.max(from) - self.buf_start];
            self.matcher
                .frame(x, from, i * hop, f0, hop, self.geo60.frame)
        };
        // formants of 20 ms frame i, if that frame exists
        let c20 = &mut self.chain20;
        while c20.formants_start < i && !c20.formants.is_empty() {
            c20.formants.pop_front();
            c20.formants_start += 1;
        }
        let fm = if c20.formants_start == i {
            c20.formants.front()
        } else {
            None
        };
        let freq = |k: usize| fm.map_or(0.0, |f| f.frequency[k]);
        let bw = |k: usize| fm.map_or(0.0, |f| f.bandwidth[k]);
        // the frame's samples are still buffered (nothing before the released frame is dropped)
        self.hnr_frame.clear();
        if f0 > 0.0 {
            copy_frame(
                &self.buf,
                self.buf_start,
                i,
                &self.geo60,
                &mut self.hnr_frame,
            );
        }
        let h = self
            .harmonics
            .frame(&spectrum, &self.hnr_frame, f0, &[freq(0), freq(1), freq(2)]);
        self.voicing.push([
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
        ]);
        self.spare_spectra.push(spectrum);
        self.next_release += 1;
    }

    /// Drops the samples no pending frame or the period matcher can read any more.
    fn trim(&mut self) {
        let hop = self.geo20.hop;
        let keep_from = (self.chain20.next * hop)
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
