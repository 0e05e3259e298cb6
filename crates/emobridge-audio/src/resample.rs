//! Sample-rate conversion with rubato's synchronous FFT resampler.
//!
//! The rates this toolkit meets (8–48 kHz, e.g. 44.1 k → 16 k, 48 k → 24 k) are fixed integer
//! ratios, which rubato's `Fft` resampler handles exactly with a steep anti-aliasing filter;
//! `process_all_into_buffer` resamples a whole clip and trims the filter delay, so output
//! length is the exact ratio (±1 sample) and aligned in time with the input.

use std::path::{Path, PathBuf};

use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Fft, FixedSync, Indexing, Resampler};

use crate::AudioError;

/// Lowest target rate accepted.
pub const MIN_RATE: u32 = 8_000;
/// Highest target rate accepted.
pub const MAX_RATE: u32 = 48_000;

/// Lowest rate a file may declare (below it nothing audible is left to analyse).
pub const MIN_SOURCE_RATE: u32 = 1_000;
/// Highest rate a file may declare (768 kHz, the top of studio PCM). A mutated header once
/// declared ~4.3 GHz, and the resampler's FFT of that size ran for minutes (found by fuzzing).
pub const MAX_SOURCE_RATE: u32 = 768_000;

/// Checks a conversion's rates (the rules of [`resample`]).
fn check_rates(from: u32, to: u32) -> Result<(), AudioError> {
    let nowhere = PathBuf::from("<signal>");
    if !(MIN_SOURCE_RATE..=MAX_SOURCE_RATE).contains(&from) {
        return Err(AudioError::BadRate {
            path: nowhere,
            rate: from,
        });
    }
    if !(MIN_RATE..=MAX_RATE).contains(&to) {
        return Err(AudioError::BadTargetRate {
            path: nowhere,
            rate: to,
            min: MIN_RATE,
            max: MAX_RATE,
        });
    }
    Ok(())
}

/// The resampler both paths build: ~20 ms input chunks keep the filter delay small for short
/// clips and the FFTs cheap.
fn fft_resampler(from: u32, to: u32) -> Result<(Fft<f32>, usize), AudioError> {
    let chunk = (from as usize / 50).max(64);
    let rs = Fft::<f32>::new(from as usize, to as usize, chunk, 1, FixedSync::Input)
        .map_err(|e| resample_error(e.to_string()))?;
    Ok((rs, chunk))
}

fn resample_error(reason: String) -> AudioError {
    AudioError::Resample {
        path: PathBuf::from("<signal>"),
        reason,
    }
}

/// Resamples one channel from `from` Hz (within [`MIN_SOURCE_RATE`], [`MAX_SOURCE_RATE`]) to
/// `to` Hz (within [`MIN_RATE`], [`MAX_RATE`]).
pub fn resample(signal: &[f32], from: u32, to: u32) -> Result<Vec<f32>, AudioError> {
    check_rates(from, to)?;
    if from == to || signal.is_empty() {
        return Ok(signal.to_vec());
    }
    let fail = resample_error;
    let (mut rs, _) = fft_resampler(from, to)?;
    let input = vec![signal.to_vec()];
    let adapter_in =
        SequentialSliceOfVecs::new(&input, 1, signal.len()).map_err(|e| fail(e.to_string()))?;
    let out_cap = rs.process_all_needed_output_len(signal.len());
    let mut output = vec![vec![0.0f32; out_cap]];
    let mut adapter_out =
        SequentialSliceOfVecs::new_mut(&mut output, 1, out_cap).map_err(|e| fail(e.to_string()))?;
    let (_, produced) = rs
        .process_all_into_buffer(&adapter_in, &mut adapter_out, signal.len(), None)
        .map_err(|e| fail(e.to_string()))?;
    let mut out = output.pop().unwrap_or_default();
    out.truncate(produced);
    Ok(out)
}

/// Resamples one channel block by block: the blocks handed out, concatenated, are exactly
/// [`resample`] of the blocks pushed, concatenated (the same resampler, fed the same ~20 ms
/// input chunks whatever the block boundaries, the same delay trimmed and the same length
/// kept), while memory stays at one chunk. Rates as [`resample`]; equal rates pass through.
pub struct BlockResampler {
    inner: Option<Chunked>,
}

struct Chunked {
    rs: Fft<f32>,
    chunk: usize,
    ratio: f64,
    /// Input not processed yet: a full chunk is processed only once a later frame exists, as
    /// rubato's `process_all` keeps the last (possibly full) chunk for its final partial call.
    pending: Vec<f32>,
    out: Vec<Vec<f32>>,
    /// Output frames of the filter delay still to drop.
    skip: usize,
    fed: usize,
    emitted: usize,
}

impl BlockResampler {
    pub fn new(from: u32, to: u32) -> Result<BlockResampler, AudioError> {
        check_rates(from, to)?;
        if from == to {
            return Ok(BlockResampler { inner: None });
        }
        let (rs, chunk) = fft_resampler(from, to)?;
        let out = vec![vec![0.0f32; rs.output_frames_max()]];
        Ok(BlockResampler {
            inner: Some(Chunked {
                skip: rs.output_delay(),
                ratio: rs.resample_ratio(),
                rs,
                chunk,
                pending: Vec::new(),
                out,
                fed: 0,
                emitted: 0,
            }),
        })
    }

    /// Feeds `block`; `sink` receives the output frames now ready (possibly none).
    pub fn push(&mut self, block: &[f32], sink: &mut dyn FnMut(&[f32])) -> Result<(), AudioError> {
        let Some(c) = &mut self.inner else {
            if !block.is_empty() {
                sink(block);
            }
            return Ok(());
        };
        c.fed += block.len();
        let mut pending = std::mem::take(&mut c.pending);
        pending.extend_from_slice(block);
        let mut used = 0;
        let mut result = Ok(());
        while pending.len() - used > c.chunk {
            result = c.process(&pending[used..used + c.chunk], None, sink);
            if result.is_err() {
                break;
            }
            used += c.chunk;
        }
        pending.drain(..used);
        c.pending = pending;
        result
    }

    /// Ends the signal: the last partial chunk and the filter's tail; `sink` receives the rest.
    pub fn finish(mut self, sink: &mut dyn FnMut(&[f32])) -> Result<(), AudioError> {
        let Some(c) = &mut self.inner else {
            return Ok(());
        };
        if c.fed == 0 {
            return Ok(());
        }
        let expected = (c.ratio * c.fed as f64).ceil() as usize;
        let pending = std::mem::take(&mut c.pending);
        if !pending.is_empty() {
            c.process(&pending, Some(pending.len()), sink)?;
        }
        // `process_all`: pump zeros until the trimmed output reaches the expected length.
        while c.emitted < expected {
            c.process(&[], Some(0), sink)?;
        }
        Ok(())
    }
}

impl Chunked {
    /// One resampler call on `input` (a full chunk, or `partial` frames); hands on the output
    /// after the delay, never beyond the expected length once the input has ended.
    fn process(
        &mut self,
        input: &[f32],
        partial: Option<usize>,
        sink: &mut dyn FnMut(&[f32]),
    ) -> Result<(), AudioError> {
        let fail = |e: &dyn std::fmt::Display| resample_error(e.to_string());
        let frames = input.len();
        let input: [&[f32]; 1] = [input];
        let adapter_in =
            rubato::audioadapter_buffers::direct::SequentialSliceOfSlices::new(&input, 1, frames)
                .map_err(|e| fail(&e))?;
        let cap = self.out[0].len();
        let mut adapter_out =
            SequentialSliceOfVecs::new_mut(&mut self.out, 1, cap).map_err(|e| fail(&e))?;
        let indexing = Indexing {
            input_offset: 0,
            output_offset: 0,
            active_channels_mask: None,
            partial_len: partial,
        };
        let (_, produced) = self
            .rs
            .process_into_buffer(&adapter_in, &mut adapter_out, Some(&indexing))
            .map_err(|e| fail(&e))?;
        let mut ready = &self.out[0][..produced];
        let dropped = self.skip.min(ready.len());
        ready = &ready[dropped..];
        self.skip -= dropped;
        if partial.is_some() {
            // The input has ended: keep only up to the expected length.
            let expected = (self.ratio * self.fed as f64).ceil() as usize;
            ready = &ready[..ready.len().min(expected.saturating_sub(self.emitted))];
        }
        self.emitted += ready.len();
        if !ready.is_empty() {
            sink(ready);
        }
        Ok(())
    }
}

impl AudioError {
    /// Re-labels an error raised on an anonymous signal with the file it came from.
    pub(crate) fn with_path(self, path: &Path) -> AudioError {
        let path = path.to_path_buf();
        match self {
            AudioError::BadRate { rate, .. } => AudioError::BadRate { path, rate },
            AudioError::BadTargetRate { rate, min, max, .. } => AudioError::BadTargetRate {
                path,
                rate,
                min,
                max,
            },
            AudioError::Resample { reason, .. } => AudioError::Resample { path, reason },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (i as f32 * 0.013).sin() * 0.5 + ((i * 7919) % 101) as f32 * 1e-3)
            .collect()
    }

    /// Block by block, whatever the block sizes, equals the whole-clip conversion bit for bit.
    #[test]
    fn blocks_give_exactly_the_whole_clip_result() {
        for (from, to) in [
            (44_100, 16_000),
            (48_000, 24_000),
            (16_000, 24_000),
            (22_050, 16_000),
        ] {
            let chunk = (from as usize / 50).max(64);
            for n in [
                1,
                chunk - 1,
                chunk,
                chunk + 1,
                2 * chunk,
                2 * chunk + 1,
                7 * chunk + 13,
                from as usize * 3 + 5,
            ] {
                let x = signal(n);
                let whole = resample(&x, from, to).unwrap();
                for block in [1usize, 37, 1152, chunk, chunk + 1, 100_000] {
                    let mut rs = BlockResampler::new(from, to).unwrap();
                    let mut got = Vec::new();
                    for b in x.chunks(block) {
                        rs.push(b, &mut |o| got.extend_from_slice(o)).unwrap();
                    }
                    rs.finish(&mut |o| got.extend_from_slice(o)).unwrap();
                    assert_eq!(got.len(), whole.len(), "{from}->{to} n {n} block {block}");
                    assert!(
                        got.iter()
                            .zip(&whole)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{from}->{to} n {n} block {block}: samples differ"
                    );
                }
            }
        }
    }

    #[test]
    fn equal_rates_pass_through_and_bad_rates_are_refused() {
        let x = signal(1000);
        let mut rs = BlockResampler::new(16_000, 16_000).unwrap();
        let mut got = Vec::new();
        rs.push(&x, &mut |o| got.extend_from_slice(o)).unwrap();
        rs.finish(&mut |o| got.extend_from_slice(o)).unwrap();
        assert_eq!(got, x);
        assert!(BlockResampler::new(0, 16_000).is_err());
        assert!(BlockResampler::new(16_000, 96_000).is_err());
    }
}
