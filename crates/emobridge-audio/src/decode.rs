//! Decoding any supported container into planar `f32` with symphonia.

use std::fs::File;
use std::path::Path;

use symphonia::core::audio::sample::SampleFormat;
use symphonia::core::audio::GenericAudioBufferRef;
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymErr;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use crate::{resample, Audio, AudioError};

/// Keep every channel or average them to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mixdown {
    /// Average all channels into one (what openSMILE and the SSL feature extractors do).
    #[default]
    Mono,
    /// Keep the file's channels.
    Keep,
}

/// How integer PCM is scaled to [-1, 1].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IntScaling {
    /// Full-scale power of two: i16 / 32768, i24 / 8388608 (symphonia, soundfile, librosa).
    #[default]
    PowerOfTwo,
    /// openSMILE's convention: i16 / 32767 and i24 / (32767 · 256). Use it for descriptor parity.
    OpenSmile,
}

/// What [`load`] should deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecodeOptions {
    /// Resample to this rate (8–48 kHz); `None` keeps the file's rate.
    pub target_rate: Option<u32>,
    pub mixdown: Mixdown,
    pub int_scaling: IntScaling,
}

impl DecodeOptions {
    /// Mono at the file's own rate.
    pub fn mono() -> Self {
        Self::default()
    }

    /// Mono resampled to `rate`.
    pub fn mono_at(rate: u32) -> Self {
        DecodeOptions {
            target_rate: Some(rate),
            ..Self::default()
        }
    }
}

/// Container facts of a file, read without decoding the samples.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    pub sample_rate: u32,
    pub channels: usize,
    /// Frames per channel when the container states it.
    pub frames: Option<u64>,
    pub bits_per_sample: Option<u32>,
}

fn open(path: &Path) -> Result<Box<dyn symphonia::core::formats::FormatReader>, AudioError> {
    let file = File::open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => AudioError::NotFound {
            path: path.to_path_buf(),
        },
        _ => AudioError::Io {
            path: path.to_path_buf(),
            source,
        },
    })?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(AudioError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    if file.metadata().map(|m| m.len() == 0).unwrap_or(false) {
        return Err(AudioError::Empty {
            path: path.to_path_buf(),
        });
    }
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| classify(path, e))
}

fn classify(path: &Path, e: SymErr) -> AudioError {
    let path = path.to_path_buf();
    match e {
        SymErr::Unsupported(what) => AudioError::Unsupported {
            path,
            reason: what.to_string(),
        },
        SymErr::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            AudioError::Corrupt {
                path,
                reason: "unexpected end of file".into(),
            }
        }
        SymErr::IoError(source) => AudioError::Io { path, source },
        other => AudioError::Corrupt {
            path,
            reason: other.to_string(),
        },
    }
}

/// Reads rate, channel count and length from the container header.
pub fn probe_info(path: impl AsRef<Path>) -> Result<AudioInfo, AudioError> {
    let path = path.as_ref();
    let format = open(path)?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| AudioError::Unsupported {
            path: path.to_path_buf(),
            reason: "no audio track".into(),
        })?;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| AudioError::Unsupported {
            path: path.to_path_buf(),
            reason: "track has no audio codec parameters".into(),
        })?;
    let rate = params.sample_rate.unwrap_or(0);
    if !plausible_rate(rate) {
        return Err(AudioError::BadRate {
            path: path.to_path_buf(),
            rate,
        });
    }
    Ok(AudioInfo {
        sample_rate: rate,
        channels: params.channels.as_ref().map_or(1, |c| c.count()),
        frames: track.num_frames,
        bits_per_sample: params.bits_per_sample,
    })
}

/// What [`decode_each`] saw of a stream.
struct Decoded {
    rate: u32,
    format: Option<SampleFormat>,
}

/// Decodes `path` packet by packet, handing each decoded buffer (planar, one `Vec` per channel)
/// and its rate to `each`, and applies the container checks every decode shares: a plausible
/// rate, a constant channel count, the truncation rule and a non-empty stream.
fn decode_each(
    path: &Path,
    mut each: impl FnMut(&mut Vec<Vec<f32>>, u32, Option<SampleFormat>) -> Result<(), AudioError>,
) -> Result<Decoded, AudioError> {
    let mut format = open(path)?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| AudioError::Unsupported {
            path: path.to_path_buf(),
            reason: "no audio track".into(),
        })?;
    let track_id = track.id;
    let declared_frames = track.num_frames;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| AudioError::Unsupported {
            path: path.to_path_buf(),
            reason: "track has no audio codec parameters".into(),
        })?
        .clone();
    let declared_rate = params.sample_rate.unwrap_or(0);
    if !plausible_rate(declared_rate) {
        return Err(AudioError::BadRate {
            path: path.to_path_buf(),
            rate: declared_rate,
        });
    }
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| classify(path, e))?;

    let mut scratch: Vec<Vec<f32>> = Vec::new();
    let mut channels: Option<usize> = None;
    let mut decoded = 0u64;
    let mut rate = declared_rate;
    let mut format_seen: Option<SampleFormat> = params.sample_format;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => return Err(classify(path, e)),
        };
        if packet.track_id != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buf) => {
                rate = buf.spec().rate();
                if format_seen.is_none() {
                    format_seen = Some(buffer_format(&buf));
                }
                buf.copy_to_vecs_planar::<f32>(&mut scratch);
                if *channels.get_or_insert(scratch.len()) != scratch.len() {
                    return Err(AudioError::Corrupt {
                        path: path.to_path_buf(),
                        reason: "channel count changes mid-stream".into(),
                    });
                }
                decoded += scratch.first().map_or(0, Vec::len) as u64;
                if !plausible_rate(rate) {
                    return Err(AudioError::BadRate {
                        path: path.to_path_buf(),
                        rate,
                    });
                }
                each(&mut scratch, rate, format_seen)?;
            }
            // A damaged packet: skip it (symphonia's advice), the stream may recover.
            Err(SymErr::DecodeError(e)) => {
                tracing::debug!("{}: skipping undecodable packet: {e}", path.display())
            }
            Err(e) => return Err(classify(path, e)),
        }
    }
    if !plausible_rate(rate) {
        return Err(AudioError::BadRate {
            path: path.to_path_buf(),
            rate,
        });
    }
    // One truncation rule for every format (silently analysing a fragment would lose data
    // without anyone noticing): the file is cut short when its container says there is more
    // than it holds, i.e.
    // (a) a stated length is not reached — the PCM WAV/AIFF data size and FLAC's STREAMINFO
    //     sample count exactly, an MP3 Xing/Info/VBRI frame count within one MPEG frame
    //     (1152 samples: encoder delay and padding); or
    // (b) the last frame or page stops mid-way — MP3 by the frame walk of [`crate::mpeg`],
    //     Ogg pages by symphonia's Ogg reader (an error already).
    // A stream without a stated length that ends on a frame boundary is complete: nothing in
    // the file says otherwise.
    let truncated = |declared: u64| AudioError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("truncated: {decoded} of {declared} frames present"),
    };
    if let Some(declared) = declared_frames.filter(|_| exact_length_container(path)) {
        if decoded < declared {
            return Err(truncated(declared));
        }
    }
    if is_mp3(path) {
        let facts = crate::mpeg::walk(path);
        if let Some(reason) = facts.cut {
            return Err(AudioError::Corrupt {
                path: path.to_path_buf(),
                reason,
            });
        }
        if let Some(declared) = declared_frames.filter(|_| facts.length_tag) {
            if decoded + MP3_FRAME_SAMPLES < declared {
                return Err(truncated(declared));
            }
        }
    }
    if decoded == 0 {
        return Err(AudioError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(Decoded {
        rate,
        format: format_seen,
    })
}

/// openSMILE's integer scaling factor for a decoded sample format (none for float formats).
fn opensmile_factor(format: Option<SampleFormat>) -> Option<f32> {
    let f = match format {
        Some(SampleFormat::S16) => 32768.0_f64 / 32767.0,
        Some(SampleFormat::S24) => 8_388_608.0_f64 / (32767.0 * 256.0),
        _ => return None,
    };
    Some(f as f32)
}

/// Decodes a file into planar `f32` samples, down-mixed and resampled as `opts` asks.
///
/// Errors name the file: missing file, unsupported or corrupt container, zero-length audio,
/// NaN/Inf samples, a zero or absurd sample rate.
pub fn load(path: impl AsRef<Path>, opts: &DecodeOptions) -> Result<Audio, AudioError> {
    let path = path.as_ref();
    let mut planes: Vec<Vec<f32>> = Vec::new();
    let decoded = decode_each(path, |scratch, _, _| {
        if planes.is_empty() {
            planes = vec![Vec::new(); scratch.len()];
        }
        for (dst, src) in planes.iter_mut().zip(scratch.iter()) {
            dst.extend_from_slice(src);
        }
        Ok(())
    })?;
    let rate = decoded.rate;
    check_finite(path, &planes)?;
    if opts.int_scaling == IntScaling::OpenSmile {
        if let Some(f) = opensmile_factor(decoded.format) {
            planes.iter_mut().flatten().for_each(|x| *x *= f);
        }
    }
    let source_channels = planes.len();
    if opts.mixdown == Mixdown::Mono && planes.len() > 1 {
        let n = planes.len() as f32;
        let len = planes[0].len();
        let mono = (0..len)
            .map(|i| planes.iter().map(|p| p[i]).sum::<f32>() / n)
            .collect();
        planes = vec![mono];
    }
    let mut sample_rate = rate;
    if let Some(target) = opts.target_rate {
        if target != rate {
            planes = planes
                .iter()
                .map(|p| resample(p, rate, target))
                .collect::<Result<_, _>>()
                .map_err(|e| e.with_path(path))?;
            sample_rate = target;
        }
    }
    Ok(Audio {
        channels: planes,
        sample_rate,
        source_rate: rate,
        source_channels,
    })
}

/// What [`stream_mono`] decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamInfo {
    /// The file's sample rate (the blocks are at this rate).
    pub sample_rate: u32,
    /// Channels in the file (averaged into the blocks).
    pub source_channels: usize,
    /// Mono samples delivered.
    pub frames: u64,
}

/// Decodes a file block by block (one decoded packet at a time) as mono at its own rate, the
/// samples scaled as `int_scaling` says and channels averaged exactly as [`load`] does with
/// [`Mixdown::Mono`]: `each(block, rate)` sees the same samples, in order, that `load` returns,
/// while memory stays at one packet. The checks are [`load`]'s; those that need the whole
/// stream (truncation, non-finite samples, emptiness) are decided at the end, so on an error
/// the caller discards what it computed from the blocks. A rate that changes mid-stream is an
/// error (a block consumer cannot follow it).
pub fn stream_mono(
    path: impl AsRef<Path>,
    int_scaling: IntScaling,
    mut each: impl FnMut(&[f32], u32),
) -> Result<StreamInfo, AudioError> {
    let path = path.as_ref();
    let (mut first_rate, mut channels, mut frames) = (None::<u32>, 0usize, 0u64);
    let (mut bad, mut first_bad) = (0usize, usize::MAX);
    let mut mono: Vec<f32> = Vec::new();
    let decoded = decode_each(path, |scratch, rate, format| {
        if *first_rate.get_or_insert(rate) != rate {
            return Err(AudioError::Corrupt {
                path: path.to_path_buf(),
                reason: "sample rate changes mid-stream".into(),
            });
        }
        channels = scratch.len();
        for p in scratch.iter() {
            if let Some(i) = p.iter().position(|x| !x.is_finite()) {
                first_bad = first_bad.min(frames as usize + i);
                bad += p.iter().filter(|x| !x.is_finite()).count();
            }
        }
        if int_scaling == IntScaling::OpenSmile {
            if let Some(f) = opensmile_factor(format) {
                scratch.iter_mut().flatten().for_each(|x| *x *= f);
            }
        }
        let block: &[f32] = if scratch.len() == 1 {
            &scratch[0]
        } else {
            let n = scratch.len() as f32;
            mono.clear();
            mono.extend(
                (0..scratch[0].len()).map(|i| scratch.iter().map(|p| p[i]).sum::<f32>() / n),
            );
            &mono
        };
        frames += block.len() as u64;
        each(block, rate);
        Ok(())
    })?;
    if bad > 0 {
        return Err(AudioError::NonFinite {
            path: path.to_path_buf(),
            count: bad,
            first: first_bad,
        });
    }
    Ok(StreamInfo {
        sample_rate: decoded.rate,
        source_channels: channels,
        frames,
    })
}

/// What [`stream_mono_at`] delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResampledStream {
    /// The decode at the file's own rate.
    pub source: StreamInfo,
    /// Rate of the blocks.
    pub sample_rate: u32,
    /// Mono samples delivered at `sample_rate`.
    pub frames: u64,
}

/// Decodes a file as mono at `rate` block by block: the blocks handed to `each`, concatenated,
/// are exactly the samples `load(path, &DecodeOptions::mono_at(rate))` returns (one channel),
/// decoded one packet at a time and resampled in the same ~20 ms chunks by
/// [`crate::BlockResampler`], so memory stays at one packet and one chunk whatever the file's
/// length. Errors are [`stream_mono`]'s (those that need the whole stream are decided at the
/// end: on an error the caller discards what it computed from the blocks) and the resampler's.
pub fn stream_mono_at(
    path: impl AsRef<Path>,
    rate: u32,
    mut each: impl FnMut(&[f32]),
) -> Result<ResampledStream, AudioError> {
    let path = path.as_ref();
    let mut resampler: Option<crate::BlockResampler> = None;
    let mut failed: Option<AudioError> = None;
    let mut frames = 0u64;
    let mut sink = |block: &[f32]| {
        frames += block.len() as u64;
        each(block);
    };
    let source = stream_mono(path, IntScaling::PowerOfTwo, |block, source_rate| {
        if failed.is_some() {
            return;
        }
        if resampler.is_none() {
            match crate::BlockResampler::new(source_rate, rate) {
                Ok(rs) => resampler = Some(rs),
                Err(e) => {
                    failed = Some(e);
                    return;
                }
            }
        }
        let Some(rs) = resampler.as_mut() else {
            return;
        };
        if let Err(e) = rs.push(block, &mut sink) {
            failed = Some(e);
        }
    })?;
    if let Some(e) = failed {
        return Err(e.with_path(path));
    }
    if let Some(rs) = resampler {
        rs.finish(&mut sink).map_err(|e| e.with_path(path))?;
    }
    Ok(ResampledStream {
        source,
        sample_rate: rate,
        frames,
    })
}

fn check_finite(path: &Path, planes: &[Vec<f32>]) -> Result<(), AudioError> {
    let mut count = 0;
    let mut first = usize::MAX;
    for p in planes {
        for (i, x) in p.iter().enumerate() {
            if !x.is_finite() {
                count += 1;
                first = first.min(i);
            }
        }
    }
    if count > 0 {
        return Err(AudioError::NonFinite {
            path: path.to_path_buf(),
            count,
            first,
        });
    }
    Ok(())
}

fn buffer_format(buf: &GenericAudioBufferRef<'_>) -> SampleFormat {
    match buf {
        GenericAudioBufferRef::S16(_) => SampleFormat::S16,
        GenericAudioBufferRef::S24(_) => SampleFormat::S24,
        GenericAudioBufferRef::S32(_) => SampleFormat::S32,
        GenericAudioBufferRef::F64(_) => SampleFormat::F64,
        _ => SampleFormat::F32,
    }
}

/// A rate a real file can have (see [`crate::MIN_SOURCE_RATE`], [`crate::MAX_SOURCE_RATE`]).
fn plausible_rate(rate: u32) -> bool {
    (crate::MIN_SOURCE_RATE..=crate::MAX_SOURCE_RATE).contains(&rate)
}

/// Samples per channel of one MPEG-1 Layer III frame: the slack of rule (a) for MP3.
const MP3_FRAME_SAMPLES: u64 = 1152;

fn is_mp3(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("mp3"))
}

/// Containers whose headers give the exact number of frames (PCM WAV/AIFF, FLAC).
fn exact_length_container(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("wav" | "wave" | "aif" | "aiff" | "aifc" | "flac")
    )
}
