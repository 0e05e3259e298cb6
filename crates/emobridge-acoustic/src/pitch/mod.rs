//! Voicing analysis shared by eGeMAPS and ComParE: F0 by subharmonic summation with Viterbi
//! smoothing ([`shs`], [`viterbi`]), an energy gate, jitter and shimmer from waveform-matched
//! periods ([`jitter`]) and harmonic descriptors from the voicing spectrum ([`harmonics`]).
//!
//! [`analyse`] runs the chain of openSMILE's `gemapsv01b` voicing components on a whole signal:
//! 60 ms Gaussian (σ = 0.4) frames every 10 ms → FFT magnitudes → SHS candidates → Viterbi
//! smoothing → F0 set to 0 where the RMS of the windowed frame is below `energy_gate` →
//! jitter/shimmer. Frame and hop sizes are in seconds, so any sample rate works; the number of
//! frames is openSMILE's LLD row count `⌊(N − W)/H⌋ + 2` (the last frame zero-padded).

mod gate;
pub mod harmonics;
pub mod jitter;
mod period_kernels;
pub mod shs;
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
/// ([`analyse`]), ComParE's and the streaming eGeMAPS extractor.
pub(crate) struct CandidateAnalyser {
    window: Vec<f64>,
    fft: MagnitudeFft,
    detector: shs::ShsPitch,
    frame_len: usize,
    /// The gate the RMS is compared with ([`gate::gated_rms`]: every decision as the in-order
    /// sum's).
    energy_gate: Option<f64>,
    /// Magnitude spectrum of the last frame.
    pub(crate) mags: Vec<f64>,
}

impl CandidateAnalyser {
    pub(crate) fn new(geo: &FrameGeometry, cfg: &VoicingConfig) -> CandidateAnalyser {
        CandidateAnalyser {
            window: gauss(geo.frame, cfg.gauss_sigma),
            fft: MagnitudeFft::new(geo.nfft),
            detector: shs::ShsPitch::new(cfg.shs.clone(), geo.n_bins(), geo.bin_hz()),
            frame_len: geo.frame,
            energy_gate: cfg.energy_gate,
            mags: Vec::with_capacity(geo.n_bins()),
        }
    }

    /// Candidates and windowed RMS of one frame (`frame_len` samples, zero-padded by the caller);
    /// the RMS is for comparison with the configured energy gate only (see [`gate`]).
    pub(crate) fn frame(&mut self, frame: &[f64]) -> (shs::Candidates, f64) {
        let rms = gate::gated_rms(frame, &self.window, self.frame_len, self.energy_gate);
        self.fft.magnitudes(frame, &self.window, &mut self.mags);
        (self.detector.candidates(&self.mags), rms)
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
    let mut frame = Vec::with_capacity(geo.frame);
    let mut candidates = Vec::with_capacity(n_frames);
    let mut rms = Vec::with_capacity(n_frames);
    for i in 0..n_frames {
        frame_at(samples, i, geo, &mut frame);
        let (c, r) = analyser.frame(&frame);
        candidates.push(c);
        rms.push(r);
        each_spectrum(&analyser.mags);
    }
    (candidates, rms)
}

/// [`frame_candidates`] on rayon's pool, split over frames: a frame's candidates and RMS depend
/// on its own samples only, so the result equals the one-thread result exactly.
pub(crate) fn frame_candidates_parallel(
    samples: &[f32],
    geo: &FrameGeometry,
    n_frames: usize,
    cfg: &VoicingConfig,
) -> (Vec<shs::Candidates>, Vec<f64>) {
    use rayon::prelude::*;
    (0..n_frames)
        .into_par_iter()
        .with_min_len(64)
        .map_init(
            || {
                (
                    CandidateAnalyser::new(geo, cfg),
                    Vec::with_capacity(geo.frame),
                )
            },
            |(analyser, frame), i| {
                frame_at(samples, i, geo, frame);
                analyser.frame(frame)
            },
        )
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
