//! The wav2vec2-family encoder: conv feature encoder, feature projection, positional conv, and a
//! post-LN or pre-LN transformer (with WavLM's gated relative position bias), returning every
//! hidden state the way transformers' `output_hidden_states=True` does.

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{Init, VarBuilder};
use rayon::prelude::*;

use crate::attention::{multi_head_attention, AttentionInputs};
use crate::config::{Activation, EncoderConfig, PositionalEmbedding, RelativeBias};
use crate::dense::{layer_norm_last_dim, to_f32_vec, with_f32, Kernels, Linear};
use crate::features::{activate, FeatureEncoder, TORCH_NORM_EPS};
use crate::gemm::{GemmPrecision, PackedWeight};
use crate::weights::{weight_normed_conv, ConvKernel};

type CResult<T> = candle_core::Result<T>;

/// Which tensor sits at index L (the last entry) of a pre-LN model's hidden states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HiddenStateConvention {
    /// transformers ≤ 4.57: index L is the output of the final LayerNorm (= `last_hidden_state`).
    #[default]
    Transformers4,
    /// transformers 5.x: index L is layer L's raw residual output, before the final LayerNorm.
    Transformers5,
}

impl HiddenStateConvention {
    pub fn as_str(self) -> &'static str {
        match self {
            HiddenStateConvention::Transformers4 => "transformers4",
            HiddenStateConvention::Transformers5 => "transformers5",
        }
    }
}

/// LayerNorm over the last dimension (a non-affine one has unit weight and zero bias).
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
    kernels: Kernels,
}

impl LayerNorm {
    fn new(vb: VarBuilder, dim: usize, eps: f64, kernels: Kernels) -> CResult<Self> {
        Ok(LayerNorm {
            weight: vb.get_with_hints(dim, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(dim, "bias", Init::Const(0.0))?,
            eps: eps as f32,
            kernels,
        })
    }

    fn non_affine(
        dim: usize,
        dtype: DType,
        device: &Device,
        eps: f64,
        kernels: Kernels,
    ) -> CResult<Self> {
        Ok(LayerNorm {
            weight: Tensor::ones(dim, dtype, device)?,
            bias: Tensor::zeros(dim, dtype, device)?,
            eps: eps as f32,
            kernels,
        })
    }

    fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        layer_norm_last_dim(x, &self.weight, &self.bias, self.eps, self.kernels)
    }
}

/// (LayerNorm) → Linear from conv channels to the model width.
struct FeatureProjection {
    norm: Option<LayerNorm>,
    proj: Linear,
}

impl FeatureProjection {
    fn new(vb: VarBuilder, cfg: &EncoderConfig, kernels: Kernels) -> CResult<Self> {
        let Some(&c) = cfg.conv_dim.last() else {
            candle_core::bail!("config has no conv layers");
        };
        let norm = if cfg.feat_proj_layer_norm {
            Some(LayerNorm::new(
                vb.pp("layer_norm"),
                c,
                cfg.layer_norm_eps,
                kernels,
            )?)
        } else {
            None
        };
        Ok(FeatureProjection {
            norm,
            proj: Linear::new(vb.pp("projection"), c, cfg.hidden_size, kernels)?,
        })
    }

    fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        let x = match &self.norm {
            Some(n) => n.forward(x)?,
            None => x.clone(),
        };
        self.proj.forward(&x)
    }
}

/// A grouped "same" conv's weights in the layout of the path that uses them (held once).
enum SameConvWeights {
    /// weight [H, H/groups, k] and bias [H] for candle's conv1d.
    Candle { weight: ConvKernel, bias: Tensor },
    /// Per group: weight [C_g out, k·C_g in] (taps major) and bias, for the packed kernels.
    Packed(Vec<(PackedWeight, Vec<f32>)>),
}

/// A grouped "same" conv along time; even kernels drop the last output frame (SamePad).
struct SameConv {
    weights: SameConvWeights,
    kernel: usize,
    groups: usize,
}

impl SameConv {
    fn new(
        weight: ConvKernel,
        bias: Tensor,
        kernel: usize,
        groups: usize,
        kernels: Kernels,
    ) -> CResult<Self> {
        let weights = match kernels.packed() {
            // Autograd keeps weight norm's g and v; the inference paths form the weight once.
            None if kernels == Kernels::Autograd => SameConvWeights::Candle { weight, bias },
            None => SameConvWeights::Candle {
                weight: ConvKernel::Plain(weight.weight()?),
                bias,
            },
            Some(precision) => {
                let weight = weight.weight()?;
                let (h, cg, _) = weight.dims3()?;
                let per_group = h / groups;
                let taps_major = weight.permute((0, 2, 1))?.contiguous()?;
                let bias_all = to_f32_vec(&bias)?;
                let packs = (0..groups)
                    .map(|g| {
                        let w = to_f32_vec(&taps_major.narrow(0, g * per_group, per_group)?)?;
                        let b = bias_all[g * per_group..(g + 1) * per_group].to_vec();
                        Ok((PackedWeight::new(&w, per_group, kernel * cg, precision), b))
                    })
                    .collect::<CResult<Vec<_>>>()?;
                SameConvWeights::Packed(packs)
            }
        };
        Ok(SameConv {
            weights,
            kernel,
            groups,
        })
    }

    /// x: [B, T, H] → [B, T, H] ("same" padding, even kernels trimmed), optionally GELU.
    fn forward(&self, x: &Tensor, gelu: bool) -> CResult<Tensor> {
        let packs = match &self.weights {
            SameConvWeights::Packed(packs) => packs,
            SameConvWeights::Candle { weight, bias } => {
                return self.forward_candle(x, weight, bias, gelu)
            }
        };
        let (b, t, h) = x.dims3()?;
        let cg = h / self.groups;
        let pad = self.kernel / 2;
        let padded = t + 2 * pad;
        let mut out = vec![0f32; b * t * h];
        for item in 0..b {
            let rows = to_f32_vec(&x.get(item)?)?;
            for (g, (w, bias)) in packs.iter().enumerate() {
                // This group's channels as [padded T, C_g]: the im2col row of frame i is then the
                // contiguous k·C_g values starting at row i.
                let mut xg = vec![0f32; padded * cg];
                for (i, row) in rows.chunks_exact(h).enumerate() {
                    xg[(pad + i) * cg..(pad + i + 1) * cg]
                        .copy_from_slice(&row[g * cg..(g + 1) * cg]);
                }
                let y = w.matmul(&xg, t, cg, Some(bias), gelu);
                for (i, yr) in y.chunks_exact(cg).enumerate() {
                    let at = (item * t + i) * h + g * cg;
                    out[at..at + cg].copy_from_slice(yr);
                }
            }
        }
        Tensor::from_vec(out, (b, t, h), &Device::Cpu)
    }

    fn forward_candle(
        &self,
        x: &Tensor,
        weight: &ConvKernel,
        bias: &Tensor,
        gelu: bool,
    ) -> CResult<Tensor> {
        let weight = weight.weight()?;
        let tracked = x.track_op() || weight.track_op() || bias.track_op();
        if tracked && crate::fused::same_conv_applies(x, &weight, bias) {
            // Under autograd: one node with a hand-written backward.
            let y = crate::fused::same_conv(x, &weight, bias, self.groups)?;
            return if gelu {
                crate::fused::gelu_erf(&y)
            } else {
                Ok(y)
            };
        }
        let (_, t, _) = x.dims3()?;
        let xt = x.transpose(1, 2)?.contiguous()?;
        let y = crate::fused::conv1d_per_item(&xt, &weight, self.kernel / 2, 1, self.groups)?;
        let y = y
            .broadcast_add(&bias.reshape((1, (), 1))?)?
            .narrow(2, 0, t)?;
        let y = y.transpose(1, 2)?.contiguous()?;
        if gelu {
            y.gelu_erf()
        } else {
            Ok(y)
        }
    }
}

/// Inference-mode BatchNorm1d with running statistics (HuBERT `conv_pos_batch_norm`).
struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    mean: Tensor,
    var: Tensor,
}

impl BatchNorm {
    fn new(vb: VarBuilder, dim: usize) -> CResult<Self> {
        let g = vb.get_with_hints(dim, "weight", Init::Const(1.0))?;
        let b = vb.get(dim, "bias")?;
        let mean = vb.get(dim, "running_mean")?;
        let var = vb.get_with_hints(dim, "running_var", Init::Const(1.0))?;
        Ok(BatchNorm {
            weight: g,
            bias: b,
            mean,
            var,
        })
    }

    /// x·scale + shift with scale = g/√(var + eps), shift = b − mean·scale (formed here, from
    /// the current parameters).
    fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        let dim = self.weight.dim(0)?;
        let scale = self.weight.div(&(&self.var + TORCH_NORM_EPS)?.sqrt()?)?;
        let shift = self.bias.sub(&self.mean.mul(&scale)?)?;
        x.broadcast_mul(&scale.reshape((1, 1, dim))?)?
            .broadcast_add(&shift.reshape((1, 1, dim))?)
    }
}

enum Positional {
    Conv {
        batch_norm: Option<BatchNorm>,
        conv: SameConv,
    },
    Stack {
        convs: Vec<SameConv>,
        norm: LayerNorm,
    },
}

/// The convolutional relative positional embedding added to the projected features.
struct PositionalConv {
    kind: Positional,
    act: Activation,
}

impl PositionalConv {
    fn new(vb: VarBuilder, cfg: &EncoderConfig, kernels: Kernels) -> CResult<Self> {
        let h = cfg.hidden_size;
        let kind = match cfg.positional {
            PositionalEmbedding::Conv {
                kernel,
                groups,
                batch_norm,
            } => {
                let batch_norm = if batch_norm {
                    Some(BatchNorm::new(vb.pp("batch_norm"), h)?)
                } else {
                    None
                };
                let conv = vb.pp("conv");
                let weight = weight_normed_conv(&conv, [h, h / groups, kernel])?;
                let bias = conv.get(h, "bias")?;
                Positional::Conv {
                    batch_norm,
                    conv: SameConv::new(weight, bias, kernel, groups, kernels)?,
                }
            }
            PositionalEmbedding::ConvStack {
                layers,
                kernel,
                groups,
            } => {
                let convs = (0..layers)
                    .map(|i| {
                        let conv = vb.pp(format!("layers.{i}.conv"));
                        let weight = conv.get_with_hints(
                            (h, h / groups, kernel),
                            "weight",
                            candle_nn::init::DEFAULT_KAIMING_NORMAL,
                        )?;
                        let bias = conv.get(h, "bias")?;
                        SameConv::new(ConvKernel::Plain(weight), bias, kernel, groups, kernels)
                    })
                    .collect::<CResult<Vec<_>>>()?;
                Positional::Stack {
                    convs,
                    norm: LayerNorm::non_affine(
                        h,
                        DType::F32,
                        vb.device(),
                        TORCH_NORM_EPS,
                        kernels,
                    )?,
                }
            }
        };
        Ok(PositionalConv {
            kind,
            act: cfg.conv_act,
        })
    }

    /// x: [B, T, H] → the embedding to add, [B, T, H].
    fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        match &self.kind {
            Positional::Conv { batch_norm, conv } => {
                let input = match batch_norm {
                    Some(bn) => bn.forward(x)?,
                    None => x.clone(),
                };
                if self.act == Activation::Gelu {
                    conv.forward(&input, true)
                } else {
                    activate(&conv.forward(&input, false)?, self.act)
                }
            }
            Positional::Stack { convs, norm } => {
                let mut z = x.clone();
                for conv in convs {
                    z = activate(&norm.forward(&conv.forward(&z, false)?)?, self.act)?;
                }
                Ok(z)
            }
        }
    }
}

/// WavLM's gate parameters and (layer 0 only) its bucket embedding.
struct RelativeGate {
    linear: candle_nn::Linear,
    constant: Tensor,
    embedding: Option<Tensor>,
}

/// Multi-head self-attention with separate q/k/v/out projections.
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
    gate: Option<RelativeGate>,
    kernels: Kernels,
}

impl Attention {
    fn new(
        vb: VarBuilder,
        cfg: &EncoderConfig,
        first_layer: bool,
        kernels: Kernels,
    ) -> CResult<Self> {
        let h = cfg.hidden_size;
        let gate = match cfg.relative_bias {
            None => None,
            Some(rb) => Some(RelativeGate {
                linear: candle_nn::linear(h / cfg.num_heads, 8, vb.pp("gru_rel_pos_linear"))?,
                constant: vb.get_with_hints(
                    (1, cfg.num_heads, 1, 1),
                    "gru_rel_pos_const",
                    Init::Const(1.0),
                )?,
                embedding: if first_layer {
                    Some(vb.get_with_hints(
                        (rb.num_buckets, cfg.num_heads),
                        "rel_attn_embed.weight",
                        Init::Randn {
                            mean: 0.0,
                            stdev: 1.0,
                        },
                    )?)
                } else {
                    None
                },
            }),
        };
        Ok(Attention {
            q: Linear::new(vb.pp("q_proj"), h, h, kernels)?,
            k: Linear::new(vb.pp("k_proj"), h, h, kernels)?,
            v: Linear::new(vb.pp("v_proj"), h, h, kernels)?,
            out: Linear::new(vb.pp("out_proj"), h, h, kernels)?,
            heads: cfg.num_heads,
            gate,
            kernels,
        })
    }

    fn split_heads(&self, x: &Tensor) -> CResult<Tensor> {
        let (b, t, h) = x.dims3()?;
        x.reshape((b, t, self.heads, h / self.heads))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// GRU-style per-head, per-query gate of WavLM: [B, heads, T, 1].
    fn relative_gate(&self, gate: &RelativeGate, x_heads: &Tensor) -> CResult<Tensor> {
        let (b, nh, t, _) = x_heads.dims4()?;
        let proj = gate
            .linear
            .forward(x_heads)?
            .reshape((b, nh, t, 2, 4))?
            .sum(D::Minus1)?;
        let ab = candle_nn::ops::sigmoid(&proj)?;
        let a = ab.narrow(3, 0, 1)?;
        let bb = ab.narrow(3, 1, 1)?;
        a.mul(&(bb.broadcast_mul(&gate.constant)? - 1.0)?)? + 2.0
    }

    /// x: [B, T, H]; `additive_mask`: [B, 1, 1, T] or none; `bias`: ungated [heads, T, T].
    fn forward(
        &self,
        x: &Tensor,
        additive_mask: Option<&Tensor>,
        bias: Option<&Tensor>,
    ) -> CResult<Tensor> {
        if self.q.is_packed() {
            return self.forward_packed(x, additive_mask, bias);
        }
        let (q, k, v) = (self.q.forward(x)?, self.k.forward(x)?, self.v.forward(x)?);
        let fused = self.kernels == Kernels::Autograd
            && self.gate.is_none()
            && crate::fused::attention_applies(&q, &k, &v);
        if fused {
            // Under autograd on the CPU: the attention itself is one node with a hand-written
            // backward pass (see `fused::attention`).
            let key_mask = additive_mask.map(to_f32_vec).transpose()?;
            let ctx = crate::fused::attention(&q, &k, &v, self.heads, key_mask)?;
            return self.out.forward(&ctx);
        }
        self.forward_composed(q, k, v, x, additive_mask, bias)
    }

    /// Attention from the projected q, k, v with candle's ops (any device).
    fn forward_composed(
        &self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        x: &Tensor,
        additive_mask: Option<&Tensor>,
        bias: Option<&Tensor>,
    ) -> CResult<Tensor> {
        let (b, t, h) = x.dims3()?;
        let scale = ((h / self.heads) as f64).powf(-0.5);
        let q = self.split_heads(&(q * scale)?)?;
        let k = self.split_heads(&k)?;
        let v = self.split_heads(&v)?;
        let mut scores = q.matmul(&k.t()?)?;
        if let (Some(gate), Some(bias)) = (&self.gate, bias) {
            let g = self.relative_gate(gate, &self.split_heads(x)?)?;
            scores = (scores + g.broadcast_mul(&bias.unsqueeze(0)?)?)?;
        }
        if let Some(m) = additive_mask {
            scores = scores.broadcast_add(m)?;
        }
        let probs = if self.kernels == Kernels::Autograd {
            crate::fused::softmax_last_dim(&scores)?
        } else {
            candle_nn::ops::softmax_last_dim(&scores)?
        };
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, h))?;
        self.out.forward(&ctx)
    }
}

impl Attention {
    /// [`Attention::forward`] with the projections on the packed kernels and the attention
    /// itself in [`multi_head_attention`].
    fn forward_packed(
        &self,
        x: &Tensor,
        additive_mask: Option<&Tensor>,
        bias: Option<&Tensor>,
    ) -> CResult<Tensor> {
        let (b, t, h) = x.dims3()?;
        let (q, k, v) = (self.q.forward(x)?, self.k.forward(x)?, self.v.forward(x)?);
        let precision = self.kernels.packed().unwrap_or(GemmPrecision::F32);
        let key_mask = additive_mask.map(to_f32_vec).transpose()?;
        let gate = match (&self.gate, bias) {
            (Some(gate), Some(_)) => Some(to_f32_vec(
                &self.relative_gate(gate, &self.split_heads(x)?)?,
            )?),
            _ => None,
        };
        let attend = |relative: Option<(&[f32], &[f32])>| {
            with_f32(&q, |q| {
                with_f32(&k, |k| {
                    with_f32(&v, |v| {
                        multi_head_attention(
                            &AttentionInputs {
                                q,
                                k,
                                v,
                                batch: b,
                                frames: t,
                                hidden: h,
                                heads: self.heads,
                                scale: ((h / self.heads) as f32).powf(-0.5),
                                key_mask: key_mask.as_deref(),
                                relative,
                            },
                            precision,
                        )
                    })
                })
            })
        };
        // The bias [heads, T, T] is shared by every layer: read in place, not copied per layer.
        let ctx = match (gate.as_deref(), bias) {
            (Some(g), Some(bias)) => with_f32(bias, |bb| attend(Some((g, bb))))????,
            _ => attend(None)???,
        };
        self.out
            .forward(&Tensor::from_vec(ctx, (b, t, h), &Device::Cpu)?)
    }
}

/// One transformer block (post-LN or pre-LN).
struct Layer {
    attention: Attention,
    norm1: LayerNorm,
    ff_in: Linear,
    ff_out: Linear,
    norm2: LayerNorm,
    act: Activation,
    pre_ln: bool,
}

impl Layer {
    fn new(vb: VarBuilder, cfg: &EncoderConfig, i: usize, kernels: Kernels) -> CResult<Self> {
        let (h, f, eps) = (cfg.hidden_size, cfg.intermediate_size, cfg.layer_norm_eps);
        let ff = vb.pp("feed_forward");
        Ok(Layer {
            attention: Attention::new(vb.pp("attention"), cfg, i == 0, kernels)?,
            norm1: LayerNorm::new(vb.pp("layer_norm"), h, eps, kernels)?,
            ff_in: Linear::new(ff.pp("intermediate_dense"), h, f, kernels)?,
            ff_out: Linear::new(ff.pp("output_dense"), f, h, kernels)?,
            norm2: LayerNorm::new(vb.pp("final_layer_norm"), h, eps, kernels)?,
            act: cfg.hidden_act,
            pre_ln: cfg.pre_ln,
        })
    }

    fn feed_forward(&self, x: &Tensor) -> CResult<Tensor> {
        let hidden = if self.act == Activation::Gelu {
            self.ff_in.forward_gelu(x)?
        } else {
            activate(&self.ff_in.forward(x)?, self.act)?
        };
        self.ff_out.forward(&hidden)
    }

    fn forward(&self, x: &Tensor, mask: Option<&Tensor>, bias: Option<&Tensor>) -> CResult<Tensor> {
        if self.pre_ln {
            let x = (x + self
                .attention
                .forward(&self.norm1.forward(x)?, mask, bias)?)?;
            &x + self.feed_forward(&self.norm2.forward(&x)?)?
        } else {
            let x = self
                .norm1
                .forward(&(x + self.attention.forward(x, mask, bias)?)?)?;
            self.norm2.forward(&(&x + self.feed_forward(&x)?)?)
        }
    }
}

/// Bucket of a relative distance `d = key − query` (T5-style, bidirectional), computed in f32 as
/// transformers does so that boundary distances land in the same bucket.
pub(crate) fn relative_bucket(d: i64, rb: RelativeBias) -> u32 {
    let half = (rb.num_buckets / 2) as i64;
    let offset = if d > 0 { half } else { 0 };
    let dist = d.abs();
    let max_exact = half / 2;
    if dist < max_exact {
        return (offset + dist) as u32;
    }
    let scaled = ((dist as f32) / max_exact as f32).ln()
        / (rb.max_distance as f32 / max_exact as f32).ln()
        * (half - max_exact) as f32;
    let large = (max_exact + scaled as i64).min(half - 1);
    (offset + large) as u32
}

/// The ungated relative position bias [heads, T, T] from the bucket embedding [buckets, heads].
fn relative_bias(embedding: &Tensor, t: usize, rb: RelativeBias) -> CResult<Tensor> {
    let idx: Vec<u32> = (0..t)
        .flat_map(|q| (0..t).map(move |k| relative_bucket(k as i64 - q as i64, rb)))
        .collect();
    let idx = Tensor::from_vec(idx, t * t, embedding.device())?;
    let heads = embedding.dim(1)?;
    embedding
        .index_select(&idx, 0)?
        .reshape((t, t, heads))?
        .permute((2, 0, 1))?
        .contiguous()
}

/// A built encoder: the whole forward pass of one checkpoint.
pub struct Encoder {
    pub(crate) cfg: EncoderConfig,
    features: FeatureEncoder,
    projection: FeatureProjection,
    positional: PositionalConv,
    encoder_norm: LayerNorm,
    layers: Vec<Layer>,
    device: Device,
}

impl Encoder {
    /// Builds the encoder from the tensors `vb` hands out under transformers' names (without the
    /// `wav2vec2.`-style base prefix), in f32 on `vb`'s device.
    ///
    /// `vb` may read a checkpoint ([`crate::weights::WeightSource::var_builder`], which records
    /// every missing, mis-shaped and unused tensor) or create trainable variables
    /// (`VarBuilder::from_varmap`, with [`Kernels::Autograd`] so that gradients reach them).
    /// [`Kernels::Packed`] needs a CPU device and keeps only the packed weights.
    pub fn new(cfg: &EncoderConfig, vb: VarBuilder, kernels: Kernels) -> CResult<Self> {
        if kernels.packed().is_some() && !vb.device().is_cpu() {
            candle_core::bail!("the packed kernels run on the CPU only");
        }
        let enc = vb.pp("encoder");
        let layer = |i: usize| Layer::new(enc.pp(format!("layers.{i}")), cfg, i, kernels);
        let front = || -> CResult<_> {
            Ok((
                FeatureEncoder::new(vb.clone(), cfg, kernels)?,
                FeatureProjection::new(vb.pp("feature_projection"), cfg, kernels)?,
                PositionalConv::new(enc.pp("pos_conv_embed"), cfg, kernels)?,
            ))
        };
        // Packed layers are read and packed on every core (each drops its checkpoint tensors
        // once packed, so at most a few layers' worth are unpacked at a time). Other kernels
        // build in model order: a VarMap draws its random initial values in that order.
        let ((features, projection, positional), layers) = if kernels.packed().is_some() {
            let (front, layers) = rayon::join(front, || {
                (0..cfg.num_layers)
                    .into_par_iter()
                    .map(layer)
                    .collect::<CResult<Vec<_>>>()
            });
            (front?, layers?)
        } else {
            let front = front()?;
            (
                front,
                (0..cfg.num_layers).map(layer).collect::<CResult<_>>()?,
            )
        };
        Ok(Encoder {
            device: vb.device().clone(),
            features,
            projection,
            positional,
            encoder_norm: LayerNorm::new(
                enc.pp("layer_norm"),
                cfg.hidden_size,
                cfg.layer_norm_eps,
                kernels,
            )?,
            layers,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &EncoderConfig {
        &self.cfg
    }

    /// The device its weights live on (where [`Self::forward`] moves its input).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Runs the conv feature encoder on the packed f32 kernels from now on (CPU with AVX-512
    /// only; otherwise nothing changes). For training with a frozen feature encoder: its output
    /// carries no autograd graph either way, and the packed kernels read each conv's im2col
    /// matrix in place where candle's conv1d copies it out first.
    pub(crate) fn pack_feature_encoder(&mut self) -> CResult<()> {
        if self.device.is_cpu() {
            self.features.pack_f32()?;
        }
        Ok(())
    }

    /// Every [`Linear`] of the encoder under its module path (transformers' names), in model
    /// order: the feature projection, then per layer q/k/v/out projections and the two
    /// feed-forward layers. This is what LoRA and adapters target by name.
    pub fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let mut out: Vec<(String, &mut Linear)> = vec![(
            "feature_projection.projection".to_string(),
            &mut self.projection.proj,
        )];
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let p = format!("encoder.layers.{i}");
            let a = &mut layer.attention;
            out.push((format!("{p}.attention.q_proj"), &mut a.q));
            out.push((format!("{p}.attention.k_proj"), &mut a.k));
            out.push((format!("{p}.attention.v_proj"), &mut a.v));
            out.push((format!("{p}.attention.out_proj"), &mut a.out));
            out.push((
                format!("{p}.feed_forward.intermediate_dense"),
                &mut layer.ff_in,
            ));
            out.push((format!("{p}.feed_forward.output_dense"), &mut layer.ff_out));
        }
        out
    }

    /// Runs the encoder on prepared samples [B, N] (already normalised when the checkpoint asks
    /// for it). `lengths` gives each item's valid samples for a zero-padded batch; it builds the
    /// attention mask transformers derives from `attention_mask`. Returns L+1 tensors [B, T, H].
    pub fn forward(
        &self,
        samples: &Tensor,
        lengths: Option<&[usize]>,
        convention: HiddenStateConvention,
    ) -> CResult<Vec<Tensor>> {
        let x = self.forward_front(samples, lengths)?;
        self.forward_layers(x, lengths, convention)
    }

    /// The part of [`Self::forward`] below the first transformer layer: conv feature encoder,
    /// feature projection, positional conv (and the encoder's layer norm of a post-LN model),
    /// giving the first layer's input [B, T, H] (hidden state 0). Padded frames are zeroed
    /// before the positional conv, so an item's valid frames equal those of the item alone.
    pub(crate) fn forward_front(
        &self,
        samples: &Tensor,
        lengths: Option<&[usize]>,
    ) -> CResult<Tensor> {
        let samples = samples.to_dtype(DType::F32)?.to_device(&self.device)?;
        let frames = self.features.forward(&samples)?;
        let mut x = self.projection.forward(&frames)?;
        let (b, t, _) = x.dims3()?;
        if let Some(lengths) = lengths {
            let keep = self.frame_mask(lengths, b, t)?;
            x = x.broadcast_mul(&keep.unsqueeze(2)?)?;
        }
        x = (&x + self.positional.forward(&x)?)?;
        if !self.cfg.pre_ln {
            x = self.encoder_norm.forward(&x)?;
        }
        Ok(x)
    }

    /// The transformer layers of [`Self::forward`] on the first layer's input `x` [B, T, H]
    /// ([`Self::forward_front`]'s output); `lengths` (samples per item) masks the padded frames
    /// out of attention. Returns L+1 tensors [B, T, H], `x` first.
    pub(crate) fn forward_layers(
        &self,
        mut x: Tensor,
        lengths: Option<&[usize]>,
        convention: HiddenStateConvention,
    ) -> CResult<Vec<Tensor>> {
        let (b, t, _) = x.dims3()?;
        let additive = match lengths {
            Some(lengths) => {
                let keep = self.frame_mask(lengths, b, t)?;
                let neg = ((keep.ones_like()? - &keep)? * f32::MIN as f64)?;
                Some(neg.reshape((b, 1, 1, t))?)
            }
            None => None,
        };
        let bias = match self
            .layers
            .first()
            .and_then(|l| l.attention.gate.as_ref())
            .and_then(|g| g.embedding.as_ref())
        {
            Some(table) => Some(relative_bias(
                table,
                t,
                self.cfg.relative_bias.expect("gate implies bias"),
            )?),
            None => None,
        };
        let mut states = Vec::with_capacity(self.layers.len() + 1);
        for layer in &self.layers {
            states.push(x.clone());
            x = layer.forward(&x, additive.as_ref(), bias.as_ref())?;
        }
        if self.cfg.pre_ln && convention == HiddenStateConvention::Transformers4 {
            x = self.encoder_norm.forward(&x)?;
        }
        states.push(x);
        Ok(states)
    }

    /// 1 for frames inside each item's valid length, 0 for padding: [B, T].
    fn frame_mask(&self, lengths: &[usize], b: usize, t: usize) -> CResult<Tensor> {
        if lengths.len() != b {
            candle_core::bail!("{} lengths for a batch of {b}", lengths.len());
        }
        let mut mask = vec![0f32; b * t];
        for (i, &len) in lengths.iter().enumerate() {
            let valid = self.cfg.frames_for(len).min(t);
            mask[i * t..i * t + valid].fill(1.0);
        }
        Tensor::from_vec(mask, (b, t), &self.device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wavlm_buckets_match_the_reference_formula() {
        let rb = RelativeBias {
            num_buckets: 320,
            max_distance: 800,
        };
        assert_eq!(relative_bucket(0, rb), 0);
        assert_eq!(relative_bucket(-79, rb), 79);
        assert_eq!(relative_bucket(79, rb), 160 + 79);
        assert_eq!(relative_bucket(-80, rb), 80);
        // 80 + floor(ln(799/80)/ln(10)·80) = 80 + 79 = 159, the cap.
        assert_eq!(relative_bucket(-799, rb), 159);
        assert_eq!(relative_bucket(5000, rb), 319);
        // 80 + floor(ln(2)/ln(10)·80) = 80 + 24.
        assert_eq!(relative_bucket(-160, rb), 104);
    }
}
