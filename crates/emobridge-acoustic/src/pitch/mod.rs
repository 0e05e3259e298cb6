//! Voicing analysis shared by eGeMAPS and ComParE: F0 by subharmonic summation with Viterbi
//! smoothing ([`shs`], [`viterbi`]), an energy gate, jitter and shimmer from waveform-matched
//! periods ([`jitter`]) and harmonic descriptors from the voicing spectrum ([`harmonics`]).
//!
//! [`analyse`] runs the chain of openSMILE's `gemapsv01b` voicing components on a whole signal:
//! 60 ms Gaussian (σ = 0.4) frames every 10 ms → FFT magnitudes → SHS candidates → Viterbi
//! smoothing → F0 set to 0 where the RMS of the windowed frame is below `energy_gate` →
//! jitter/shimmer. Frame and hop sizes are in seconds, so any sample rate works; the number of
//! frames is openSMILE's LLD row count `⌊(N − W)/H⌋ + 2` (the last frame zero-padded).

pub mod harmonics;
pub mod jitter;
mod period_kernels;
pub mod shs;
mod shs_kernels;
pub mod viterbi;

use crate::egemaps::frames::{frame_at, gauss, lld_row_count, FrameGeometry, MagnitudeFft};

/// Settings of the voicing chain (defaults: eGeMAPS v02).
#[derive(Debug, Clone, PartialEq)]
pub struct VoicingConfig {
    /// Analysis frame length in seconds (default 0.060).
    pub frame_s: f64,
    /// Hop in seconds (default 0.010).
    pub hop_s: f64,
    /// σ of the Gaussian window relative to half the frame (default 0.4).
    pub gauss_sigma: f64,
    /// Frames whose windowed RMS is below this are unvoiced (default 0.001; `None` disables).
    pub energy_gate: Option<f64>,
    /// Candidate detector settings.
    pub shs: shs::ShsConfig,
    /// Viterbi smoother settings.
    pub viterbi: viterbi::ViterbiConfig,
    /// Period matcher settings.
    pub jitter: jitter::JitterConfig,
}

impl Default for VoicingConfig {
    fn default() -> Self {
        VoicingConfig {
            frame_s: 0.060,
            hop_s: 0.010,
            gauss_sigma: 0.4,
            energy_gate: Some(0.001),
            shs: shs::ShsConfig::default(),
            viterbi: viterbi::ViterbiConfig::default(),
            jitter: jitter::JitterConfig::default(),
        }
    }
}

/// Frame-wise results of [`analyse`].
#[derive(Debug, Clone, Default)]
pub struct Voicing {
    /// Frame geometry used.
    pub geometry: Option<FrameGeometry>,
    /// Final F0 in Hz (0 = unvoiced).
    pub f0_hz: Vec<f64>,
    /// Voicing probability of the chosen candidate (openSMILE `voicingFinalUnclipped`).
    pub voicing: Vec<f64>,
    /// Jitter / shimmer per frame.
    pub jitter: Vec<jitter::JitterFrame>,
    /// Magnitude spectrum of each Gaussian-windowed frame (kept for harmonic descriptors).
    pub spectra: Vec<Vec<f64>>,
    /// Trailing frames the Viterbi smoother still held undecided at the end of input.
    pub pending_at_end: usize,
}

/// F0 on openSMILE's semitone scale relative to 27.5 Hz (`F0finalLog`): 0 when unvoiced,
/// clipped to 1 at or below 29.136 Hz.
pub fn semitones_from_27_5(f0: f64) -> f64 {
    if f0 > 29.136 {
        12.0 * (f0 / 27.5).log2()
    } else if f0 > 0.0 {
        1.0
    } else {
        0.0
    }
}

/// One voicing frame's analysis up to the Viterbi smoother: Gaussian window, FFT magnitudes,
/// SHS candidates and the windowed RMS the energy gate reads. Shared by the whole-signal chain
/// ([`analyse`]), ComParE's and the streaming eGeMAPS extractor. [`CandidateAnalyser::frames`]
/// analyses up to [`shs::LANES`] frames together (the SHS stage and the RMS sums one frame per
/// vector lane), each frame's result bit-identical to analysing it alone: windowed RMS summed
/// in sample order, [`MagnitudeFft::magnitudes`], [`shs::ShsPitch::candidates`].
pub(crate) struct CandidateAnalyser {
    window: Vec<f64>,
    fft: MagnitudeFft,
    detector: shs::ShsPitch,
    frame_len: usize,
    n_bins: usize,
    /// Samples of each lane's frame (made on the first call of [`CandidateAnalyser::frames`]).
    lane_frames: Vec<Vec<f64>>,
    /// Magnitude spectrum of each lane's frame after [`CandidateAnalyser::frames`].
    pub(crate) lane_mags: Vec<Vec<f64>>,
}

/// Windowed mean square of one frame, summed in sample order.
fn windowed_rms(frame: &[f64], window: &[f64], frame_len: usize) -> f64 {
    let energy: f64 = frame
        .iter()
        .zip(window)
        .map(|(x, w)| (x * w).powi(2))
        .sum::<f64>()
        / frame_len as f64;
    energy.sqrt()
}

impl CandidateAnalyser {
    pub(crate) fn new(geo: &FrameGeometry, cfg: &VoicingConfig) -> CandidateAnalyser {
        CandidateAnalyser {
            window: gauss(geo.frame, cfg.gauss_sigma),
            fft: MagnitudeFft::new(geo.nfft),
            detector: shs::ShsPitch::new(cfg.shs.clone(), geo.n_bins(), geo.bin_hz()),
            frame_len: geo.frame,
            n_bins: geo.n_bins(),
            lane_frames: Vec::new(),
            lane_mags: Vec::new(),
        }
    }

    /// Candidates and windowed RMS of `count` frames (1 ..= [`shs::LANES`]): `fill(k, buf)`
    /// writes frame `k`'s
    /// `frame_len` samples (zero-padded) into `buf`. Afterwards `lane_mags[k]` holds frame
    /// `k`'s magnitude spectrum (a caller may swap it out).
    pub(crate) fn frames(
        &mut self,
        count: usize,
        mut fill: impl FnMut(usize, &mut Vec<f64>),
    ) -> Vec<(shs::Candidates, f64)> {
        use shs::LANES;
        assert!((1..=LANES).contains(&count), "1 to {LANES} frames");
        if self.lane_frames.is_empty() {
            self.lane_frames = vec![vec![0.0; self.frame_len]; LANES];
            self.lane_mags = vec![vec![0.0; self.n_bins]; LANES];
        }
        for k in 0..count {
            fill(k, &mut self.lane_frames[k]);
            self.fft
                .magnitudes(&self.lane_frames[k], &self.window, &mut self.lane_mags[k]);
        }
        if count == 1 {
            let rms = windowed_rms(&self.lane_frames[0], &self.window, self.frame_len);
            return vec![(self.detector.candidates(&self.lane_mags[0]), rms)];
        }
        // lanes past `count` keep an earlier frame (or zeros); a spectrum swapped out by the
        // caller is replaced by zeros of the right size
        for (frame, mags) in self.lane_frames.iter_mut().zip(&mut self.lane_mags) {
            if frame.len() != self.frame_len {
                frame.resize(self.frame_len, 0.0);
            }
            if mags.len() != self.n_bins {
                mags.clear();
                mags.resize(self.n_bins, 0.0);
            }
        }
        let energies = shs_kernels::energies(&self.lane_frames, &self.window);
        self.detector
            .candidates_lanes(&self.lane_mags, count)
            .into_iter()
            .zip(energies)
            .map(|(c, e)| (c, (e / self.frame_len as f64).sqrt()))
            .collect()
    }
}

/// SHS pitch candidates and frame RMS (Gaussian-windowed, as the energy gate reads it) for
/// `n_frames` frames; frames past the end of the signal are zero-padded. `each_spectrum` sees
/// every frame's magnitude spectrum (for callers that keep them).
pub(crate) fn frame_candidates(
    samples: &[f32],
    geo: &FrameGeometry,
    n_frames: usize,
    cfg: &VoicingConfig,
    mut each_spectrum: impl FnMut(&[f64]),
) -> (Vec<shs::Candidates>, Vec<f64>) {
    let mut analyser = CandidateAnalyser::new(geo, cfg);
    let mut candidates = Vec::with_capacity(n_frames);
    let mut rms = Vec::with_capacity(n_frames);
    let mut first = 0;
    while first < n_frames {
        let count = (n_frames - first).min(shs::LANES);
        let batch = analyser.frames(count, |k, frame| frame_at(samples, first + k, geo, frame));
        for (k, (c, r)) in batch.into_iter().enumerate() {
            candidates.push(c);
            rms.push(r);
            each_spectrum(&analyser.lane_mags[k]);
        }
        first += count;
    }
    (candidates, rms)
}

/// Frames `range` on rayon's pool in batches of [`shs::LANES`] (at least `min_batches` per
/// task), each batch handed to `batch(analyser, first, count)` with a per-task analyser; the
/// batches' results in frame order. A frame's analysis depends on its own samples only, so any
/// split gives the one-thread result exactly.
pub(crate) fn candidate_batches_parallel<T: Send>(
    geo: &FrameGeometry,
    cfg: &VoicingConfig,
    range: std::ops::Range<usize>,
    min_batches: usize,
    batch: impl Fn(&mut CandidateAnalyser, usize, usize) -> Vec<T> + Sync + Send,
) -> Vec<T> {
    use rayon::prelude::*;
    let end = range.end;
    let firsts: Vec<usize> = range.step_by(shs::LANES).collect();
    let per_batch: Vec<Vec<T>> = firsts
        .into_par_iter()
        .with_min_len(min_batches)
        .map_init(
            || CandidateAnalyser::new(geo, cfg),
            |analyser, first| batch(analyser, first, (end - first).min(shs::LANES)),
        )
        .collect();
    per_batch.into_iter().flatten().collect()
}

/// [`frame_candidates`] on rayon's pool, split over batches of frames: a frame's candidates and
/// RMS depend on its own samples only, so the result equals the one-thread result exactly.
pub(crate) fn frame_candidates_parallel(
    samples: &[f32],
    geo: &FrameGeometry,
    n_frames: usize,
    cfg: &VoicingConfig,
) -> (Vec<shs::Candidates>, Vec<f64>) {
    candidate_batches_parallel(
        geo,
        cfg,
        0..n_frames,
        64 / shs::LANES,
        |analyser, first, count| {
            analyser.frames(count, |k, frame| frame_at(samples, first + k, geo, frame))
        },
    )
    .into_iter()
    .unzip()
}

/// Runs the voicing chain on `samples` at `sample_rate`.
pub fn analyse(samples: &[f32], sample_rate: u32, cfg: &VoicingConfig) -> Voicing {
    let geo = FrameGeometry::new(cfg.frame_s, cfg.hop_s, sample_rate);
    let n_frames = lld_row_count(samples.len(), geo.frame, geo.hop);
    let mut spectra = Vec::with_capacity(n_frames);
    let (candidates, rms) = frame_candidates(samples, &geo, n_frames, cfg, |mags| {
        spectra.push(mags.to_vec())
    });
    let (smoothed, pending_at_end) = viterbi::smooth_with_flush(&candidates, &cfg.viterbi);
    let f0_hz: Vec<f64> = smoothed
        .iter()
        .zip(&rms)
        .map(|(p, &e)| match cfg.energy_gate {
            Some(gate) if e < gate => 0.0,
            _ => p.f0,
        })
        .collect();
    let voicing = smoothed
        .iter()
        .zip(&rms)
        .map(|(p, &e)| match cfg.energy_gate {
            Some(gate) if e < gate => 0.0,
            _ => p.voicing,
        })
        .collect();
    let jitter = jitter::jitter_shimmer(
        samples,
        sample_rate,
        &f0_hz,
        geo.hop,
        geo.frame,
        &cfg.jitter,
    );
    Voicing {
        geometry: Some(geo),
        f0_hz,
        voicing,
        jitter,
        spectra,
        pending_at_end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A voiced signal with a gliding F0, noise and a silent stretch.
    fn signal(rate: u32, seconds: f64) -> Vec<f32> {
        let n = (rate as f64 * seconds) as usize;
        // the shared generator started from state 0x2545f4914f6cdd1d
        let noise =
            crate::test_signal::xorshift(n, 0x9e37_79b9_7f4a_7c15 ^ 0x2545_f491_4f6c_dd1d, 0.5);
        let mut phase = 0.0f64;
        (0..n)
            .map(|i| {
                let noise = noise[i];
                let t = i as f64 / rate as f64;
                let f0 = 110.0 + 90.0 * (t * 3.0).sin();
                phase += std::f64::consts::TAU * f0 / rate as f64;
                let voiced: f64 = (1..=8).map(|h| (h as f64 * phase).sin() / h as f64).sum();
                let gate = if (0.30..0.45).contains(&t) { 0.0 } else { 1.0 };
                (0.3 * gate * voiced + 0.02 * noise) as f32
            })
            .collect()
    }

    #[test]
    fn frames_in_lanes_equal_frames_alone_bit_for_bit() {
        let cfg = VoicingConfig::default();
        for rate in [8_000u32, 44_100] {
            let x = signal(rate, 0.7);
            let geo = FrameGeometry::new(cfg.frame_s, cfg.hop_s, rate);
            let n_frames = lld_row_count(x.len(), geo.frame, geo.hop);
            // each frame alone: windowed RMS, FFT magnitudes and SHS candidates
            let window = gauss(geo.frame, cfg.gauss_sigma);
            let mut fft = MagnitudeFft::new(geo.nfft);
            let mut shs = shs::ShsPitch::new(cfg.shs.clone(), geo.n_bins(), geo.bin_hz());
            let (mut frame, mut mags) = (Vec::new(), Vec::new());
            let alone: Vec<(shs::Candidates, f64, Vec<f64>)> = (0..n_frames)
                .map(|i| {
                    frame_at(&x, i, &geo, &mut frame);
                    let rms = windowed_rms(&frame, &window, geo.frame);
                    fft.magnitudes(&frame, &window, &mut mags);
                    (shs.candidates(&mags), rms, mags.clone())
                })
                .collect();
            let voiced = alone.iter().filter(|(c, _, _)| c.voicing[0] > 0.7).count();
            assert!(
                voiced > n_frames / 3,
                "{voiced} of {n_frames} frames voiced"
            );
            // batches of every size, also with spectra swapped out between calls
            let mut analyser = CandidateAnalyser::new(&geo, &cfg);
            let mut first = 0;
            let mut count = 1;
            while first < n_frames {
                let c = count.min(n_frames - first);
                let got = analyser.frames(c, |k, f| frame_at(&x, first + k, &geo, f));
                assert_eq!(got.len(), c);
                for (k, (cand, rms)) in got.iter().enumerate() {
                    let (want, want_rms, want_mags) = &alone[first + k];
                    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&cand.f0),
                        bits(&want.f0),
                        "{rate} Hz frame {}",
                        first + k
                    );
                    assert_eq!(bits(&cand.voicing), bits(&want.voicing));
                    assert_eq!(bits(&cand.score), bits(&want.score));
                    assert_eq!(rms.to_bits(), want_rms.to_bits());
                    assert_eq!(bits(&analyser.lane_mags[k]), bits(want_mags));
                }
                if count % 3 == 0 {
                    std::mem::take(&mut analyser.lane_mags[0]);
                }
                first += c;
                count = count % shs::LANES + 1;
            }
            // the whole-signal helpers agree with it
            let (cands, rms) = frame_candidates(&x, &geo, n_frames, &cfg, |_| {});
            let (pc, pr) = frame_candidates_parallel(&x, &geo, n_frames, &cfg);
            for i in 0..n_frames {
                assert_eq!(cands[i], alone[i].0);
                assert_eq!(pc[i], alone[i].0);
                assert_eq!(rms[i].to_bits(), alone[i].1.to_bits());
                assert_eq!(pr[i].to_bits(), alone[i].1.to_bits());
            }
        }
    }
}
