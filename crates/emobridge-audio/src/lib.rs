//! # emobridge-audio
//!
//! Owns everything between a file on disk and a clean `f32` signal: decoding (symphonia: WAV of
//! every common bit depth, FLAC, OGG/Vorbis, MP3, AIFF), down-mixing, resampling (rubato),
//! and the framing / window / STFT primitives the descriptor and encoder crates share.
//!
//! Every failure is an [`AudioError`] that names the file and the reason, so batch tools can
//! print one line per bad file and carry on.

/// Runs `$generic(args)`, or the same kernel compiled with AVX2 (`$avx2`, an `unsafe fn` with
/// `#[target_feature(enable = "avx2")]`) when the CPU has it, checked at run time; returns from
/// the calling function with its value. The descriptor kernels that use it perform the same IEEE
/// operations in the same order in both versions and never fuse a multiply and an add, so both
/// give the same bits.
#[macro_export]
macro_rules! dispatch_avx2 {
    ($avx2:ident, $generic:ident, ($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked just above).
                return unsafe { $avx2($($arg),*) };
            }
        }
        $generic($($arg),*)
    }};
}

mod decode;
mod error;
pub mod frames;
mod mpeg;
mod resample;
pub mod wav;

pub use decode::{
    load, probe_info, stream_mono, stream_mono_at, AudioInfo, DecodeOptions, IntScaling, Mixdown,
    ResampledStream, StreamInfo,
};
pub use error::AudioError;
pub use resample::{
    resample, BlockResampler, MAX_RATE, MAX_SOURCE_RATE, MIN_RATE, MIN_SOURCE_RATE,
};

/// A decoded clip: one `Vec<f32>` per channel (a single one after a mono down-mix).
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Planar samples, one vector per channel, all of equal length.
    pub channels: Vec<Vec<f32>>,
    /// Rate of `channels` (the target rate when resampling was requested).
    pub sample_rate: u32,
    /// Rate stored in the file.
    pub source_rate: u32,
    /// Channel count stored in the file.
    pub source_channels: usize,
}

impl Audio {
    /// Number of samples per channel.
    pub fn len(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    /// True when the clip holds no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Duration in seconds at `sample_rate`.
    pub fn duration_s(&self) -> f64 {
        self.len() as f64 / self.sample_rate as f64
    }

    /// The mono signal: the first channel when there is one, else the channel average.
    pub fn mono(&self) -> Vec<f32> {
        match self.channels.len() {
            0 => Vec::new(),
            1 => self.channels[0].clone(),
            n => {
                let scale = 1.0 / n as f32;
                (0..self.len())
                    .map(|i| self.channels.iter().map(|c| c[i]).sum::<f32>() * scale)
                    .collect()
            }
        }
    }

    /// Consumes the clip and returns its mono signal without copying when already mono.
    pub fn into_mono(mut self) -> Vec<f32> {
        if self.channels.len() == 1 {
            self.channels.pop().unwrap_or_default()
        } else {
            self.mono()
        }
    }
}
