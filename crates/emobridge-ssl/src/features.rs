//! The convolutional feature encoder: samples → frames [B, T, C].
//!
//! Two implementations of the same arithmetic: candle's conv1d on [B, C, L] (reference, any
//! device), and a CPU path on [L, C] rows where each strided conv is one packed GEMM whose im2col
//! matrix is a strided view of the input (row i starts at i·stride·C_in and spans k·C_in values),
//! followed by fused norm + activation passes.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::config::{Activation, ConvNorm, EncoderConfig};
use candle_nn::VarBuilder;

use crate::dense::{layer_norm_last_dim, to_f32_vec, with_f32, Kernels};
use crate::gemm::{gelu_in_place, PackedWeight};

type CResult<T> = candle_core::Result<T>;

/// torch's default eps for the GroupNorm / LayerNorm inside the conv stack.
pub(crate) const TORCH_NORM_EPS: f64 = 1e-5;

pub(crate) fn activate(x: &Tensor, act: Activation) -> CResult<Tensor> {
    match act {
        Activation::Gelu => x.gelu_erf(),
        Activation::GeluTanh => x.gelu(),
        Activation::Relu => x.relu(),
        Activation::Silu => x.silu(),
    }
}

fn activate_slice(x: &mut [f32], act: Activation) {
    match act {
        Activation::Gelu => gelu_in_place(x),
        Activation::GeluTanh => {
            for v in x.iter_mut() {
                let u = 0.797_884_6 * (*v + 0.044_715 * *v * *v * *v);
                *v = 0.5 * *v * (1.0 + u.tanh());
            }
        }
        Activation::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
        Activation::Silu => x.iter_mut().for_each(|v| *v /= 1.0 + (-*v).exp()),
    }
}

/// A conv weight in the layout of the path that uses it (held once).
enum ConvWeight {
    /// [C_out, C_in, k] for candle's conv1d.
    Candle(Tensor),
    /// [C_out, k·C_in] (taps major) packed for the CPU kernels.
    Packed(PackedWeight),
}

/// One conv layer's parameters.
struct ConvLayer {
    weight: ConvWeight,
    bias: Option<Tensor>,
    kernel: usize,
    stride: usize,
    c_in: usize,
    norm: Option<(ConvNorm, Tensor, Tensor)>,
    kernels: Kernels,
}

impl ConvLayer {
    /// Candle path. x: [B, C_in, L] → [B, C_out, L'].
    fn forward_candle(&self, x: &Tensor, act: Activation) -> CResult<Tensor> {
        let ConvWeight::Candle(weight) = &self.weight else {
            candle_core::bail!("conv layer was built for the packed kernels");
        };
        let mut y = crate::fused::conv1d_per_item(x, weight, 0, self.stride, 1)?;
        if let Some(b) = &self.bias {
            y = y.broadcast_add(&b.reshape((1, (), 1))?)?;
        }
        y = match &self.norm {
            None => y,
            Some((ConvNorm::Group, g, b)) => {
                let mean = y.mean_keepdim(2)?;
                let centred = y.broadcast_sub(&mean)?;
                let var = centred.sqr()?.mean_keepdim(2)?;
                let normed = centred.broadcast_div(&(var + TORCH_NORM_EPS)?.sqrt()?)?;
                normed
                    .broadcast_mul(&g.reshape((1, (), 1))?)?
                    .broadcast_add(&b.reshape((1, (), 1))?)?
            }
            Some((ConvNorm::Layer, g, b)) => {
                let t = y.transpose(1, 2)?.contiguous()?;
                layer_norm_last_dim(&t, g, b, TORCH_NORM_EPS as f32, self.kernels)?
                    .transpose(1, 2)?
            }
        };
        activate(&y, act)
    }

    /// Packed path. x: [L, C_in] rows → [L', C_out] rows.
    fn forward_rows(&self, x: &[f32], len: usize, act: Activation) -> CResult<(Vec<f32>, usize)> {
        let ConvWeight::Packed(packed) = &self.weight else {
            candle_core::bail!("conv layer was built for candle's kernels");
        };
        if len < self.kernel {
            candle_core::bail!(
                "input of {len} frames is shorter than the conv kernel {}",
                self.kernel
            );
        }
        let out_len = (len - self.kernel) / self.stride + 1;
        let bias = match &self.bias {
            Some(b) => Some(to_f32_vec(b)?),
            None => None,
        };
        let fuse_gelu = self.norm.is_none() && act == Activation::Gelu;
        let mut y = packed.matmul(
            x,
            out_len,
            self.stride * self.c_in,
            bias.as_deref(),
            fuse_gelu,
        );
        let c = packed.n();
        match &self.norm {
            Some((ConvNorm::Group, g, b)) => {
                channel_norm_rows(&mut y, c, &to_f32_vec(g)?, &to_f32_vec(b)?, act)
            }
            Some((ConvNorm::Layer, g, b)) => {
                layer_norm_rows(&mut y, c, &to_f32_vec(g)?, &to_f32_vec(b)?, act)
            }
            None if !fuse_gelu => activate_slice(&mut y, act),
            None => {}
        }
        Ok((y, out_len))
    }
}

/// Rows per parallel task in the norm passes.
const ROW_CHUNK: usize = 256;

/// GroupNorm with one group per channel on [L, C] rows: each channel normalised over all rows
/// (two-pass mean and variance in f64), then affine and activation.
fn channel_norm_rows(y: &mut [f32], c: usize, gamma: &[f32], beta: &[f32], act: Activation) {
    let rows = y.len() / c;
    let sums = y
        .par_chunks(ROW_CHUNK * c)
        .map(|chunk| column_sums(chunk, c, None))
        .reduce(
            || vec![0f64; c],
            |a, b| a.iter().zip(&b).map(|(x, y)| x + y).collect(),
        );
    let mean: Vec<f64> = sums.iter().map(|s| s / rows as f64).collect();
    let sq = y
        .par_chunks(ROW_CHUNK * c)
        .map(|chunk| column_sums(chunk, c, Some(&mean)))
        .reduce(
            || vec![0f64; c],
            |a, b| a.iter().zip(&b).map(|(x, y)| x + y).collect(),
        );
    let scale: Vec<f32> = sq
        .iter()
        .zip(gamma)
        .map(|(s, g)| (*g as f64 / (s / rows as f64 + TORCH_NORM_EPS).sqrt()) as f32)
        .collect();
    let shift: Vec<f32> = mean
        .iter()
        .zip(&scale)
        .zip(beta)
        .map(|((m, s), b)| b - (*m as f32) * s)
        .collect();
    y.par_chunks_mut(ROW_CHUNK * c).for_each(|chunk| {
        for row in chunk.chunks_exact_mut(c) {
            for ((v, s), t) in row.iter_mut().zip(&scale).zip(&shift) {
                *v = *v * s + t;
            }
        }
        activate_slice(chunk, act);
    });
}

/// Per-column sums of values (or of squared deviations from `mean`).
fn column_sums(chunk: &[f32], c: usize, mean: Option<&[f64]>) -> Vec<f64> {
    let mut acc = vec![0f64; c];
    for row in chunk.chunks_exact(c) {
        match mean {
            None => acc.iter_mut().zip(row).for_each(|(a, v)| *a += *v as f64),
            Some(m) => acc
                .iter_mut()
                .zip(row)
                .zip(m)
                .for_each(|((a, v), mu)| *a += (*v as f64 - mu).powi(2)),
        }
    }
    acc
}

/// LayerNorm over channels of each row, then activation.
fn layer_norm_rows(y: &mut [f32], c: usize, gamma: &[f32], beta: &[f32], act: Activation) {
    y.par_chunks_mut(ROW_CHUNK * c).for_each(|chunk| {
        for row in chunk.chunks_exact_mut(c) {
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / c as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / c as f64;
            let inv = (1.0 / (var + TORCH_NORM_EPS).sqrt()) as f32;
            let mean = mean as f32;
            for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
                *v = (*v - mean) * inv * g + b;
            }
        }
        activate_slice(chunk, act);
    });
}

/// The strided conv stack that turns samples into frames.
pub(crate) struct FeatureEncoder {
    layers: Vec<ConvLayer>,
    act: Activation,
}

impl FeatureEncoder {
    pub(crate) fn new(vb: VarBuilder, cfg: &EncoderConfig, kernels: Kernels) -> CResult<Self> {
        let mut layers = Vec::new();
        let mut c_in = 1;
        for (i, ((&c_out, &k), &stride)) in cfg
            .conv_dim
            .iter()
            .zip(&cfg.conv_kernel)
            .zip(&cfg.conv_stride)
            .enumerate()
        {
            let vb = vb.pp(format!("feature_extractor.conv_layers.{i}"));
            let conv = vb.pp("conv");
            let weight = conv.get_with_hints(
                (c_out, c_in, k),
                "weight",
                candle_nn::init::DEFAULT_KAIMING_NORMAL,
            )?;
            let bias = if cfg.conv_bias {
                Some(conv.get(c_out, "bias")?)
            } else {
                None
            };
            let has_norm = cfg.conv_norm == ConvNorm::Layer || i == 0;
            let norm = if has_norm {
                let n = vb.pp("layer_norm");
                Some((
                    cfg.conv_norm,
                    n.get_with_hints(c_out, "weight", candle_nn::Init::Const(1.0))?,
                    n.get(c_out, "bias")?,
                ))
            } else {
                None
            };
            let weight = match kernels.packed() {
                // [C_out, C_in, k] → [C_out, k, C_in] so that one GEMM row reads k·C_in contiguous values.
                Some(precision) => {
                    let taps_last = to_f32_vec(&weight.permute((0, 2, 1))?.contiguous()?)?;
                    ConvWeight::Packed(PackedWeight::new(&taps_last, c_out, k * c_in, precision))
                }
                None => ConvWeight::Candle(weight),
            };
            layers.push(ConvLayer {
                weight,
                bias,
                kernel: k,
                stride,
                c_in,
                norm,
                kernels,
            });
            c_in = c_out;
        }
        Ok(FeatureEncoder {
            layers,
            act: cfg.conv_act,
        })
    }

    /// Moves every conv weight onto the packed f32 kernels (where the CPU has AVX-512; the
    /// portable fallback would be slower than candle's conv). For a frozen feature encoder under
    /// training: its output is then computed without an autograd graph, and equals candle's
    /// conv to rounding (the packed inference path's agreement).
    pub(crate) fn pack_f32(&mut self) -> CResult<()> {
        if !crate::gemm::has_avx512() {
            return Ok(());
        }
        for layer in &mut self.layers {
            if let ConvWeight::Candle(weight) = &layer.weight {
                let (c_out, c_in, k) = weight.dims3()?;
                let taps_last = to_f32_vec(&weight.permute((0, 2, 1))?.contiguous()?)?;
                layer.weight = ConvWeight::Packed(PackedWeight::new(
                    &taps_last,
                    c_out,
                    k * c_in,
                    crate::gemm::GemmPrecision::F32,
                ));
            }
        }
        Ok(())
    }

    /// samples [B, N] → frames [B, T, C].
    pub(crate) fn forward(&self, samples: &Tensor) -> CResult<Tensor> {
        if self
            .layers
            .first()
            .is_some_and(|l| matches!(l.weight, ConvWeight::Packed(_)))
        {
            return self.forward_packed(samples);
        }
        let mut x = samples.unsqueeze(1)?;
        for layer in &self.layers {
            x = layer.forward_candle(&x, self.act)?;
        }
        x.transpose(1, 2)?.contiguous()
    }

    fn forward_packed(&self, samples: &Tensor) -> CResult<Tensor> {
        let (b, n) = samples.dims2()?;
        let mut items = Vec::with_capacity(b);
        for i in 0..b {
            let row = samples.get(i)?;
            let (frames, t) = with_f32(&row, |x| self.rows(x, n))??;
            let c = frames.len() / t;
            items.push(Tensor::from_vec(frames, (t, c), &Device::Cpu)?);
        }
        Tensor::stack(&items, 0)
    }

    fn rows(&self, samples: &[f32], n: usize) -> CResult<(Vec<f32>, usize)> {
        let mut x = samples.to_vec();
        let mut len = n;
        for layer in &self.layers {
            let (y, l) = layer.forward_rows(&x, len, self.act)?;
            x = y;
            len = l;
        }
        Ok((x, len))
    }
}
