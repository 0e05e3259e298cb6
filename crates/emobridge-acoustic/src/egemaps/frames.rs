//! Framing and FFT magnitudes as openSMILE's `cFramer` → `cWindower` → `cTransformFFT` →
//! `cFFTmagphase` chain computes them.
//!
//! Frame `i` starts at sample `i · hop` (`frameCenterSpecial = left`); frames that run past the
//! end of the signal are zero-padded (openSMILE emits one such frame at the end of input). The
//! FFT length is the next power of two of the frame length (zero padding does not change
//! magnitudes), and bin `k` lies at `k · sr / nfft` Hz.

/// Frame geometry in samples for one sample rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameGeometry {
    /// Frame length in samples, `round(frame_s · sr)`.
    pub frame: usize,
    /// Hop in samples, `round(hop_s · sr)`.
    pub hop: usize,
    /// FFT length: next power of two ≥ `frame` (at least 4).
    pub nfft: usize,
    /// Sample rate in Hz.
    pub sample_rate: u32,
}

impl FrameGeometry {
    /// Geometry for a frame and hop given in seconds (openSMILE rounds both to whole samples).
    pub fn new(frame_s: f64, hop_s: f64, sample_rate: u32) -> FrameGeometry {
        let frame = ((frame_s * sample_rate as f64).round() as usize).max(1);
        let hop = ((hop_s * sample_rate as f64).round() as usize).max(1);
        FrameGeometry {
            frame,
            hop,
            nfft: frame.next_power_of_two().max(4),
            sample_rate,
        }
    }

    /// Distance between FFT bins in Hz.
    pub fn bin_hz(&self) -> f64 {
        self.sample_rate as f64 / self.nfft as f64
    }

    /// Number of magnitude bins (`nfft/2 + 1`).
    pub fn n_bins(&self) -> usize {
        self.nfft / 2 + 1
    }
}

/// Number of LLD rows openSMILE writes for `n` samples: `⌊(n − W)/H⌋ + 2` for `n ≥ W`, else 0,
/// with `W` the longest (60 ms) analysis frame and `H` the hop.
pub fn lld_row_count(n: usize, longest_frame: usize, hop: usize) -> usize {
    match emobridge_audio::frames::frame_count(n, longest_frame, hop) {
        0 => 0,
        complete => complete + 1,
    }
}

/// Copies frame `index` (zero-padded past the end of `signal`) into `out`.
pub fn frame_at(signal: &[f32], index: usize, geo: &FrameGeometry, out: &mut Vec<f64>) {
    copy_padded(signal, 0, index * geo.hop, geo.frame, out);
}

/// Copies samples `start..start + len` of a signal of which `buf` holds the part from sample
/// `base` on into `out` as f64, with 0 for every sample outside `buf` (one slice conversion
/// and zero fills instead of a bounds test per sample).
pub fn copy_padded(buf: &[f32], base: usize, start: usize, len: usize, out: &mut Vec<f64>) {
    out.clear();
    let end = start + len;
    let (lo, hi) = (start.max(base), end.min(base + buf.len()));
    if lo < hi {
        out.resize(lo - start, 0.0);
        crate::dsp::extend_f64(out, &buf[lo - base..hi - base]);
    }
    out.resize(len, 0.0);
}

pub use emobridge_audio::frames::{gauss, hamming, MagnitudeFft};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_padded_equals_the_per_sample_rule() {
        let buf: Vec<f32> = (0..20).map(|i| i as f32 * 0.5 - 3.0).collect();
        for base in [0usize, 5] {
            for start in [0usize, 3, 5, 18, 22, 30] {
                for len in [0usize, 1, 7, 40] {
                    let mut got = vec![9.0];
                    copy_padded(&buf, base, start, len, &mut got);
                    let want: Vec<f64> = (start..start + len)
                        .map(|i| {
                            i.checked_sub(base)
                                .and_then(|j| buf.get(j))
                                .map_or(0.0, |&v| v as f64)
                        })
                        .collect();
                    assert_eq!(got, want, "base {base} start {start} len {len}");
                }
            }
        }
    }
}
