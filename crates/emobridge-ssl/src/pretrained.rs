//! A checkpoint folder turned into a ready encoder: config, feature-extractor settings, weights,
//! and the clip-level entry points (input preparation, chunking of long audio, batching).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::config::{ConvNorm, EncoderConfig, PreprocessConfig};
use crate::dense::Kernels;
use crate::embedding::ClipEmbedding;
use crate::error::{InputError, Result};
use crate::model::{Encoder, HiddenStateConvention};
use crate::weights::{read_tensors, weight_files, WeightSource};

/// Precision of the matrix products (everything else runs in f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 throughout: the parity path (≤ 1e-4 from transformers on the fixtures).
    #[default]
    F32,
    /// Linear layers and feature-encoder convs with bfloat16 inputs and f32 accumulation
    /// (AVX-512 BF16); see BENCHMARKS.md for the per-layer deviation. Falls back to f32 on
    /// CPUs without AVX-512 BF16.
    Bf16,
}

/// How to load a checkpoint.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Default f32.
    pub precision: Precision,
    /// Use candle's ops for every product instead of the packed CPU kernels (default false).
    /// The reference path; slower on CPU.
    pub candle_kernels: bool,
    /// Where weights and activations live (default CPU). A CUDA device (crate feature `cuda`)
    /// runs candle's ops in f32 whatever `precision` says.
    pub device: candle_core::Device,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            precision: Precision::F32,
            candle_kernels: false,
            device: candle_core::Device::Cpu,
        }
    }
}

impl LoadOptions {
    /// The kernels these options select: candle's on request or off the CPU, packed otherwise.
    pub fn kernels(&self) -> Kernels {
        if self.candle_kernels || !self.device.is_cpu() {
            return Kernels::Candle;
        }
        Kernels::Packed(self.precision)
    }
}

/// How to run clips through the encoder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmbedOptions {
    /// Longest stretch of audio run through the transformer at once, in seconds (default 30).
    /// Longer clips are cut into windows on the model's frame grid, so the frame count and frame
    /// times equal those of a single pass; attention does not cross window borders.
    pub window_s: f64,
    /// Which tensor sits at the last index of pre-LN models (default: transformers 4.x).
    pub convention: HiddenStateConvention,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions {
            window_s: 30.0,
            convention: HiddenStateConvention::Transformers4,
        }
    }
}

/// A loaded checkpoint with its feature-extractor settings.
pub struct PretrainedEncoder {
    encoder: Encoder,
    preprocess: PreprocessConfig,
    dir: PathBuf,
    /// The fine-tuned checkpoint folded into the weights, if any.
    adapter: Option<PathBuf>,
}

impl PretrainedEncoder {
    /// Loads `spec`: a model folder, or `ORG/NAME[@REVISION]` from the HuggingFace cache,
    /// downloaded into it first when missing (see [`crate::hub`]; settings from the environment).
    pub fn load(spec: &str, opts: LoadOptions) -> Result<Self> {
        Self::load_with_hub(spec, opts, &crate::hub::HubOptions::from_env())
    }

    /// [`Self::load`] with explicit hub settings.
    pub fn load_with_hub(
        spec: &str,
        opts: LoadOptions,
        hub: &crate::hub::HubOptions,
    ) -> Result<Self> {
        let dir = crate::hub::resolve_model_dir(spec, hub)?;
        Self::from_dir(&dir, opts)
    }

    /// Loads a HuggingFace model folder as saved by `save_pretrained` (or downloaded from the hub).
    pub fn from_dir(dir: &Path, opts: LoadOptions) -> Result<Self> {
        Self::from_dir_with_adapter(dir, None, opts)
    }

    /// [`Self::from_dir`] with a fine-tuned checkpoint of `emobridge finetune` folded into the
    /// weights before they are packed: LoRA updates merged (`W + (α/r)·B·A`), trained base
    /// tensors (full, BitFit) replacing the checkpoint's. Bottleneck adapters add layers and
    /// cannot be folded; they are refused with that reason.
    pub fn from_dir_with_adapter(
        dir: &Path,
        adapter: Option<&Path>,
        opts: LoadOptions,
    ) -> Result<Self> {
        let cfg = EncoderConfig::from_file(&dir.join("config.json"))?;
        let pre_path = dir.join("preprocessor_config.json");
        let preprocess = if pre_path.is_file() {
            PreprocessConfig::from_file(&pre_path, cfg.family)?
        } else {
            tracing::warn!(
                "{}: no preprocessor_config.json; assuming {:?}",
                dir.display(),
                PreprocessConfig::default_for(cfg.family)
            );
            PreprocessConfig::default_for(cfg.family)
        };
        let files = weight_files(dir)?;
        // Without an adapter each tensor is read when the builder asks for it and packed layers
        // drop theirs at once: one copy of the weights in memory. Folding needs them all first.
        let source = match adapter {
            None => WeightSource::open(&files)?,
            Some(adapter) => {
                let mut tensors = read_tensors(&files)?;
                crate::peft::fold_checkpoint(&mut tensors, adapter)?;
                WeightSource::new(tensors)
            }
        };
        let built = Encoder::new(
            &cfg,
            source.var_builder(DType::F32, &opts.device),
            opts.kernels(),
        );
        // Every missing or mis-shaped tensor first (the build went on past them), then any
        // error of the build itself.
        let unused = source.finish(dir)?;
        let encoder = built?;
        if !unused.is_empty() {
            tracing::debug!(
                "{}: {} checkpoint tensors not used by the encoder (heads, quantizer, …): {:?}",
                dir.display(),
                unused.len(),
                unused
            );
        }
        Ok(PretrainedEncoder {
            encoder,
            preprocess,
            dir: dir.to_path_buf(),
            adapter: adapter.map(Path::to_path_buf),
        })
    }

    pub fn config(&self) -> &EncoderConfig {
        self.encoder.config()
    }

    pub fn preprocess(&self) -> PreprocessConfig {
        self.preprocess
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Hex SHA-256 of the checkpoint's weights: the weight file's digest, or for a sharded
    /// checkpoint the digest of the lines `<file name>\t<file digest>` in file order. Recorded
    /// in every cache entry so that a run can tell which weights made its embeddings. With a
    /// fine-tuned checkpoint folded in: the digest of `<base digest>\tadapter\t<digest of its
    /// adapter_model.safetensors>`.
    pub fn weights_sha256(&self) -> Result<String> {
        let base = self.base_weights_sha256()?;
        match &self.adapter {
            // A fine-tuned encoder: the base digest and the trained tensors' digest together.
            Some(adapter) => Ok(emobridge_store::sha256_hex(
                format!(
                    "{base}\tadapter\t{}\n",
                    emobridge_store::sha256_file(&adapter.join("adapter_model.safetensors"))?
                )
                .as_bytes(),
            )),
            None => Ok(base),
        }
    }

    /// The fine-tuned checkpoint folded into the weights ([`Self::from_dir_with_adapter`]).
    pub fn adapter(&self) -> Option<&Path> {
        self.adapter.as_deref()
    }

    fn base_weights_sha256(&self) -> Result<String> {
        crate::weights::weights_sha256(&self.dir)
    }

    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// Number of hidden states per clip (layers + 1).
    pub fn num_states(&self) -> usize {
        self.config().num_layers + 1
    }

    /// Frames per second of the hidden states (sampling rate / total conv stride).
    pub fn frame_rate_hz(&self) -> f64 {
        self.preprocess.sampling_rate as f64 / self.config().hop() as f64
    }

    /// Resamples to the model's rate and applies the feature extractor's normalisation.
    /// Non-finite samples (NaN, infinity) are refused (in [`Self::prepare_owned`]).
    pub fn prepare(&self, samples: &[f32], sample_rate: u32) -> Result<Vec<f32>> {
        let x = if sample_rate == self.preprocess.sampling_rate {
            samples.to_vec()
        } else {
            emobridge_audio::resample(samples, sample_rate, self.preprocess.sampling_rate)?
        };
        self.prepare_owned(x, self.preprocess.sampling_rate)
    }

    /// [`Self::prepare`] taking the samples by value: at the model's rate no copy is made.
    pub fn prepare_owned(&self, samples: Vec<f32>, sample_rate: u32) -> Result<Vec<f32>> {
        if let Some(i) = samples.iter().position(|x| !x.is_finite()) {
            return Err(InputError::NonFiniteSample { index: i }.into());
        }
        let mut x = if sample_rate == self.preprocess.sampling_rate {
            samples
        } else {
            emobridge_audio::resample(&samples, sample_rate, self.preprocess.sampling_rate)?
        };
        if self.preprocess.do_normalize {
            normalize_utterance(&mut x);
        }
        Ok(x)
    }

    /// All hidden states of one clip given at `sample_rate` (prepared here).
    pub fn embed(
        &self,
        samples: &[f32],
        sample_rate: u32,
        opts: &EmbedOptions,
    ) -> Result<ClipEmbedding> {
        let prepared = self.prepare(samples, sample_rate)?;
        self.embed_prepared(&prepared, opts)
    }

    /// All hidden states of one prepared clip, in windows of `opts.window_s` on the frame grid.
    pub fn embed_prepared(&self, samples: &[f32], opts: &EmbedOptions) -> Result<ClipEmbedding> {
        let mut pieces = Vec::new();
        self.embed_prepared_windows(samples, opts, &mut |_, states| {
            pieces.push(states);
            Ok(())
        })?;
        let hidden = if pieces.len() == 1 {
            pieces.pop().expect("one piece")
        } else {
            Tensor::cat(&pieces, 1)?
        };
        ClipEmbedding::new(hidden.to_dtype(DType::F32)?)
    }

    /// Frames the encoder gives for a prepared clip of `samples` samples.
    pub fn frames_for(&self, samples: usize) -> usize {
        self.config().frames_for(samples)
    }

    /// Runs one prepared clip through the encoder window by window (the windows of
    /// [`Self::embed_prepared`]), handing each window's hidden states [states, n, hidden] to
    /// `sink` with the index of its first frame, so that only one window's states exist at a
    /// time. Returns the clip's frame count. Concatenated, the windows are exactly
    /// [`Self::embed_prepared`]'s result.
    pub fn embed_prepared_windows(
        &self,
        samples: &[f32],
        opts: &EmbedOptions,
        sink: &mut dyn FnMut(usize, Tensor) -> Result<()>,
    ) -> Result<usize> {
        let plan = self.windows_for(samples.len(), opts)?;
        for w in &plan {
            sink(w.start, self.run_window(&samples[w.from..w.to], opts)?)?;
        }
        Ok(self.frames_for(samples.len()))
    }

    /// The windows of a prepared clip of `len` samples (see [`Self::embed_prepared_windows`]);
    /// an error when the clip is shorter than the encoder's receptive field.
    pub fn windows_for(&self, len: usize, opts: &EmbedOptions) -> Result<Vec<Window>> {
        let cfg = self.config();
        let total = cfg.frames_for(len);
        if total == 0 {
            return Err(InputError::ClipTooShort {
                samples: len,
                receptive_field: cfg.receptive_field(),
            }
            .into());
        }
        let per_window = self.frames_per_window(opts.window_s);
        let mut plan = Vec::new();
        let mut start = 0;
        while start < total {
            let n = per_window.min(total - start);
            let from = start * cfg.hop();
            // The last window keeps the trailing samples: they reach no further frame, but
            // GroupNorm statistics (group-norm models) are taken over the whole conv output.
            let to = if start + n == total {
                len
            } else {
                (start + n - 1) * cfg.hop() + cfg.receptive_field()
            };
            plan.push(Window {
                start,
                frames: n,
                from,
                to,
            });
            start += n;
        }
        Ok(plan)
    }

    /// One window's hidden states [states, n, hidden].
    fn run_window(&self, samples: &[f32], opts: &EmbedOptions) -> Result<Tensor> {
        let input = Tensor::from_slice(samples, (1, samples.len()), &Device::Cpu)?;
        let states = self.encoder.forward(&input, None, opts.convention)?;
        Ok(stack_states(&states)?.squeeze(1)?)
    }

    /// The windows of a prepared clip of `len` samples that arrives block by block (see
    /// [`WindowStream`]).
    pub fn window_stream(&self, len: usize, opts: &EmbedOptions) -> Result<WindowStream<'_>> {
        Ok(WindowStream {
            model: self,
            opts: *opts,
            plan: self.windows_for(len, opts)?,
            next: 0,
            buf: Vec::new(),
            buf_from: 0,
            received: 0,
            len,
        })
    }

    fn frames_per_window(&self, window_s: f64) -> usize {
        let samples = (window_s.max(0.0) * self.preprocess.sampling_rate as f64) as usize;
        (samples / self.config().hop()).max(1)
    }

    /// Hidden states of several prepared clips. Layer-norm models run as one zero-padded batch
    /// with an attention mask (transformers' batched path); group-norm models, trained without
    /// masks and sensitive to padding, run equal-length clips together and the rest one by one,
    /// so each result equals the single-clip result. Clips longer than the window run alone.
    pub fn embed_batch(
        &self,
        clips: &[Vec<f32>],
        opts: &EmbedOptions,
    ) -> Result<Vec<ClipEmbedding>> {
        let window = self.frames_per_window(opts.window_s) * self.config().hop()
            + self.config().receptive_field();
        let mut out: Vec<Option<ClipEmbedding>> = (0..clips.len()).map(|_| None).collect();
        let mut batchable: Vec<usize> = Vec::new();
        for (i, clip) in clips.iter().enumerate() {
            if clip.len() > window {
                out[i] = Some(self.embed_prepared(clip, opts)?);
            } else {
                batchable.push(i);
            }
        }
        for group in self.batch_groups(clips, &batchable) {
            let members: Vec<&[f32]> = group.iter().map(|&i| clips[i].as_slice()).collect();
            for (i, emb) in group.iter().zip(self.run_padded(&members, opts)?) {
                out[*i] = Some(emb);
            }
        }
        Ok(out
            .into_iter()
            .map(|e| e.expect("every clip embedded"))
            .collect())
    }

    fn batch_groups(&self, clips: &[Vec<f32>], idx: &[usize]) -> Vec<Vec<usize>> {
        if self.config().conv_norm == ConvNorm::Layer {
            return if idx.is_empty() {
                vec![]
            } else {
                vec![idx.to_vec()]
            };
        }
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for &i in idx {
            match groups
                .iter_mut()
                .find(|g| clips[g[0]].len() == clips[i].len())
            {
                Some(g) => g.push(i),
                None => groups.push(vec![i]),
            }
        }
        groups
    }

    /// One zero-padded forward pass; each result is cropped to its clip's own frame count.
    fn run_padded(&self, clips: &[&[f32]], opts: &EmbedOptions) -> Result<Vec<ClipEmbedding>> {
        let cfg = self.config();
        let longest = clips.iter().map(|c| c.len()).max().unwrap_or(0);
        if let Some(short) = clips.iter().find(|c| cfg.frames_for(c.len()) == 0) {
            return Err(InputError::BatchClipTooShort {
                samples: short.len(),
                receptive_field: cfg.receptive_field(),
            }
            .into());
        }
        let mut flat = vec![0f32; clips.len() * longest];
        for (row, clip) in flat.chunks_mut(longest).zip(clips) {
            row[..clip.len()].copy_from_slice(clip);
        }
        let input = Tensor::from_vec(flat, (clips.len(), longest), &Device::Cpu)?;
        let lengths: Vec<usize> = clips.iter().map(|c| c.len()).collect();
        let all_equal = lengths.iter().all(|&l| l == longest);
        let states = self.encoder.forward(
            &input,
            (!all_equal).then_some(lengths.as_slice()),
            opts.convention,
        )?;
        let stacked = stack_states(&states)?.to_dtype(DType::F32)?;
        clips
            .iter()
            .enumerate()
            .map(|(i, clip)| {
                ClipEmbedding::new(
                    stacked
                        .narrow(1, i, 1)?
                        .squeeze(1)?
                        .narrow(1, 0, cfg.frames_for(clip.len()))?
                        .contiguous()?,
                )
            })
            .collect()
    }
}

/// L+1 tensors [B, T, H] → [L+1, B, T, H].
fn stack_states(states: &[Tensor]) -> candle_core::Result<Tensor> {
    Tensor::stack(states, 0)
}

/// Per-utterance zero mean, unit variance as `Wav2Vec2FeatureExtractor` does:
/// (x − μ) / √(σ² + 1e-7), population variance, statistics in f64.
pub fn normalize_utterance(x: &mut [f32]) {
    if x.is_empty() {
        return;
    }
    let mut sum = UtteranceSums::default();
    sum.add(x);
    let mut dev = sum.deviations();
    dev.add(x);
    let norm = dev.norm();
    for v in x.iter_mut() {
        *v = norm.apply(*v);
    }
}

/// The first pass of [`normalize_utterance`] over a clip given block by block: the sum of the
/// samples, in order, so that a streamed clip gets the numbers of the whole-clip path exactly.
#[derive(Debug, Clone, Copy, Default)]
pub struct UtteranceSums {
    n: usize,
    sum: f64,
}

impl UtteranceSums {
    pub fn add(&mut self, block: &[f32]) {
        self.n += block.len();
        for &v in block {
            self.sum += v as f64;
        }
    }

    /// Samples seen.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The second pass: squared deviations from the mean.
    pub fn deviations(&self) -> UtteranceDeviations {
        UtteranceDeviations {
            n: self.n,
            mean: self.sum / self.n.max(1) as f64,
            squares: 0.0,
        }
    }
}

/// The second pass of [`normalize_utterance`] (see [`UtteranceSums`]).
#[derive(Debug, Clone, Copy)]
pub struct UtteranceDeviations {
    n: usize,
    mean: f64,
    squares: f64,
}

impl UtteranceDeviations {
    pub fn add(&mut self, block: &[f32]) {
        for &v in block {
            self.squares += (v as f64 - self.mean).powi(2);
        }
    }

    /// The map of every sample: (x − mean) / sqrt(var + 1e-7).
    pub fn norm(&self) -> UtteranceNorm {
        let var = self.squares / self.n.max(1) as f64;
        UtteranceNorm {
            mean: self.mean,
            inv: 1.0 / (var + 1e-7).sqrt(),
        }
    }
}

/// Zero mean, unit variance with a clip's statistics (see [`UtteranceDeviations::norm`]).
#[derive(Debug, Clone, Copy)]
pub struct UtteranceNorm {
    mean: f64,
    inv: f64,
}

impl UtteranceNorm {
    pub fn apply(&self, v: f32) -> f32 {
        ((v as f64 - self.mean) * self.inv) as f32
    }
}

/// One encoder window of a clip: its first frame, its frame count, and the prepared samples
/// `from..to` it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: usize,
    pub frames: usize,
    pub from: usize,
    pub to: usize,
}

/// The windows of [`PretrainedEncoder::embed_prepared_windows`] for a prepared clip that
/// arrives in blocks: [`WindowStream::push`] runs every window its samples complete and keeps
/// only the samples a later window still reads (at most one window and one block), so a clip
/// of any length is embedded in bounded memory, with exactly the states of the whole-clip path.
pub struct WindowStream<'a> {
    model: &'a PretrainedEncoder,
    opts: EmbedOptions,
    plan: Vec<Window>,
    next: usize,
    buf: Vec<f32>,
    /// Clip index of `buf[0]`.
    buf_from: usize,
    received: usize,
    len: usize,
}

impl WindowStream<'_> {
    /// Frames of the whole clip.
    pub fn total_frames(&self) -> usize {
        self.plan.last().map_or(0, |w| w.start + w.frames)
    }

    /// Feeds the next prepared samples; each window they complete goes to `sink` as in
    /// [`PretrainedEncoder::embed_prepared_windows`].
    pub fn push(
        &mut self,
        block: &[f32],
        sink: &mut dyn FnMut(usize, Tensor) -> Result<()>,
    ) -> Result<()> {
        if self.received + block.len() > self.len {
            return Err(InputError::StreamOverrun {
                announced: self.len,
            }
            .into());
        }
        self.received += block.len();
        // Samples before the next window's start are never read again.
        let keep_from = self.plan.get(self.next).map_or(self.len, |w| w.from);
        let skip = keep_from.saturating_sub(self.buf_from + self.buf.len());
        let block = &block[skip.min(block.len())..];
        self.buf.extend_from_slice(block);
        while let Some(w) = self.plan.get(self.next).copied() {
            if self.received < w.to {
                break;
            }
            let states = self.model.run_window(
                &self.buf[w.from - self.buf_from..w.to - self.buf_from],
                &self.opts,
            )?;
            sink(w.start, states)?;
            self.next += 1;
            let keep_from = self.plan.get(self.next).map_or(self.received, |w| w.from);
            let drop = (keep_from - self.buf_from).min(self.buf.len());
            self.buf.drain(..drop);
            self.buf_from += drop;
        }
        Ok(())
    }

    /// Checks that every window ran (the stream held the samples announced); returns the
    /// clip's frame count.
    pub fn finish(self) -> Result<usize> {
        if self.next < self.plan.len() {
            return Err(InputError::StreamEndedEarly {
                received: self.received,
                announced: self.len,
            }
            .into());
        }
        Ok(self.total_frames())
    }
}
