//! Writing WAV files (hound): the synthetic corpus, test signals and converted copies.

use std::path::Path;

use crate::AudioError;

/// Sample encoding of a written WAV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WavFormat {
    /// 16-bit PCM, scaled by 32767 and rounded (so openSMILE's 1/32767 reading is exact).
    Pcm16,
    /// 24-bit PCM.
    Pcm24,
    /// 32-bit IEEE float.
    Float32,
}

/// Writes planar channels to a WAV file, atomically (temporary file, then rename).
///
/// Samples are clipped to [-1, 1] for integer formats.
pub fn write_wav(
    path: impl AsRef<Path>,
    channels: &[Vec<f32>],
    sample_rate: u32,
    format: WavFormat,
) -> Result<(), AudioError> {
    let path = path.as_ref();
    let fail = |reason: String| AudioError::Write {
        path: path.to_path_buf(),
        reason,
    };
    if channels.is_empty() {
        return Err(fail("no channels".into()));
    }
    let len = channels[0].len();
    if channels.iter().any(|c| c.len() != len) {
        return Err(fail("channels differ in length".into()));
    }
    let (bits, sample_format) = match format {
        WavFormat::Pcm16 => (16, hound::SampleFormat::Int),
        WavFormat::Pcm24 => (24, hound::SampleFormat::Int),
        WavFormat::Float32 => (32, hound::SampleFormat::Float),
    };
    let spec = hound::WavSpec {
        channels: channels.len() as u16,
        sample_rate,
        bits_per_sample: bits,
        sample_format,
    };
    let tmp = path.with_extension("wav.partial");
    {
        let mut w = hound::WavWriter::create(&tmp, spec).map_err(|e| fail(e.to_string()))?;
        for i in 0..len {
            for c in channels {
                let x = c[i];
                match format {
                    WavFormat::Pcm16 => {
                        w.write_sample((x.clamp(-1.0, 1.0) * 32767.0).round() as i16)
                    }
                    WavFormat::Pcm24 => {
                        w.write_sample((x.clamp(-1.0, 1.0) * 8_388_607.0).round() as i32)
                    }
                    WavFormat::Float32 => w.write_sample(x),
                }
                .map_err(|e| fail(e.to_string()))?;
            }
        }
        w.finalize().map_err(|e| fail(e.to_string()))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| fail(e.to_string()))
}

/// Writes a mono 16-bit WAV.
pub fn write_wav_mono16(
    path: impl AsRef<Path>,
    samples: &[f32],
    sample_rate: u32,
) -> Result<(), AudioError> {
    write_wav(path, &[samples.to_vec()], sample_rate, WavFormat::Pcm16)
}
