//! The wav2vec2-family encoder: conv feature encoder, feature projection, positional conv, and a
//! post-LN or pre-LN transformer (with WavLM's gated relative position bias), returning every
//! hidden state the way transformers' `output_hidden_states=True` does.

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::Linear;

use crate::attention::{multi_head_attention, AttentionInputs};
use crate::config::{Activation, EncoderConfig, PositionalEmbedding, RelativeBias};
use crate::dense::{to_f32_vec, with_f32, Dense, Kernels};
use crate::features::{activate, FeatureEncoder, TORCH_NORM_EPS};
use crate::gemm::PackedWeight;
use crate::weights::WeightSource;

type CResult<T> = candle_core::Result<T>;

/// Which tensor sits at index L (the last entry) of a pre-LN model's hidden states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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

/// LayerNorm over the last dimension; `None` weights mean a non-affine norm.
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    fn load(w: &mut WeightSource, prefix: &str, dim: usize, eps: f64) -> Self {
        LayerNorm {
            weight: w.get(&format!("{prefix}.weight"), &[dim]),
            bias: w.get(&format!("{prefix}.bias"), &[dim]),
            eps: eps as f32,
        }
    }

    fn non_affine(dim: usize, dtype: DType, device: &Device, eps: f64) -> CResult<Self> {
        Ok(LayerNorm {
            weight: Tensor::ones(dim, dtype, device)?,
            bias: Tensor::zeros(dim, dtype, device)?,
            eps: eps as f32,
        })
    }

    fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        candle_nn::ops::layer_norm(&x.contiguous()?, &self.weight, &self.bias, self.eps)
    }
}

/// (LayerNorm) → Linear from conv channels to the model width.
struct FeatureProjection {
    norm: Option<LayerNorm>,
    proj: Dense,
}

impl FeatureProjection {
    fn load(w: &mut WeightSource, cfg: &EncoderConfig, kernels: Kernels) -> CResult<Self> {
        let c = *cfg.conv_dim.last().expect("validated non-empty");
        let norm = cfg
            .feat_proj_layer_norm
            .then(|| LayerNorm::load(w, "feature_projection.layer_norm", c, cfg.layer_norm_eps));
        Ok(FeatureProjection {
            norm,
            proj: Dense::load(
                w,
                "feature_projection.projection",
                c,
                cfg.hidden_size,
                kernels,
            )?,
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

/// A grouped "same" conv along time; even kernels drop the last output frame (SamePad).
struct SameConv {
    weight: Tensor,
    bias: Tensor,
    kernel: usize,
    groups: usize,
    /// Per group: weight [C_g out, k·C_g in] (taps major) and bias, for the packed kernels.
    packed: Option<Vec<(PackedWeight, Vec<f32>)>>,
}

impl SameConv {
    fn new(
        weight: Tensor,
        bias: Tensor,
        kernel: usize,
        groups: usize,
        kernels: Kernels,
    ) -> CResult<Self> {
        let packed = match kernels {
            Kernels::Candle => None,
            Kernels::Packed(precision) => {
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
                Some(packs)
            }
        };
        Ok(SameConv {
            weight,
            bias,
            kernel,
            groups,
            packed,
        })
    }

    /// x: [B, T, H] → [B, T, H] ("same" padding, even kernels trimmed), optionally GELU.
    fn forward(&self, x: &Tensor, gelu: bool) -> CResult<Tensor> {
        let Some(packs) = &self.packed else {
            let (_, t, _) = x.dims3()?;
            let xt = x.transpose(1, 2)?.contiguous()?;
            let y = xt.conv1d(&self.weight, self.kernel / 2, 1, 1, self.groups)?;
            let y = y
                .broadcast_add(&self.bias.reshape((1, (), 1))?)?
                .narrow(2, 0, t)?;
            let y = y.transpose(1, 2)?.contiguous()?;
            return if gelu { y.gelu_erf() } else { Ok(y) };
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
}

/// Inference-mode BatchNorm1d with running statistics (HuBERT `conv_pos_batch_norm`).
struct BatchNorm {
    scale: Tensor,
    shift: Tensor,
}

impl BatchNorm {
    fn load(w: &mut WeightSource, prefix: &str, dim: usize) -> CResult<Self> {
        let g = w.get(&format!("{prefix}.weight"), &[dim]);
        let b = w.get(&format!("{prefix}.bias"), &[dim]);
        let mean = w.get(&format!("{prefix}.running_mean"), &[dim]);
        let var = w.get(&format!("{prefix}.running_var"), &[dim]);
        let scale = g.div(&(var + TORCH_NORM_EPS)?.sqrt()?)?;
        let shift = b.sub(&mean.mul(&scale)?)?;
        Ok(BatchNorm {
            scale: scale.reshape((1, 1, dim))?,
            shift: shift.reshape((1, 1, dim))?,
        })
    }

    fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        x.broadcast_mul(&self.scale)?.broadcast_add(&self.shift)
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
    fn load(
        w: &mut WeightSource,
        cfg: &EncoderConfig,
        dtype: DType,
        device: &Device,
        kernels: Kernels,
    ) -> CResult<Self> {
        let h = cfg.hidden_size;
        let kind = match cfg.positional {
            PositionalEmbedding::Conv {
                kernel,
                groups,
                batch_norm,
            } => {
                let batch_norm = if batch_norm {
                    Some(BatchNorm::load(w, "encoder.pos_conv_embed.batch_norm", h)?)
                } else {
                    None
                };
                let weight =
                    w.weight_normed_conv("encoder.pos_conv_embed.conv", &[h, h / groups, kernel]);
                let bias = w.get("encoder.pos_conv_embed.conv.bias", &[h]);
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
                        let p = format!("encoder.pos_conv_embed.layers.{i}.conv");
                        let weight = w.get(&format!("{p}.weight"), &[h, h / groups, kernel]);
                        let bias = w.get(&format!("{p}.bias"), &[h]);
                        SameConv::new(weight, bias, kernel, groups, kernels)
                    })
                    .collect::<CResult<Vec<_>>>()?;
                Positional::Stack {
                    convs,
                    norm: LayerNorm::non_affine(h, dtype, device, TORCH_NORM_EPS)?,
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
    linear: Linear,
    constant: Tensor,
    embedding: Option<Tensor>,
}

/// Multi-head self-attention with separate q/k/v/out projections.
struct Attention {
    q: Dense,
    k: Dense,
    v: Dense,
    out: Dense,
    heads: usize,
    gate: Option<RelativeGate>,
}

impl Attention {
    fn load(
        w: &mut WeightSource,
        p: &str,
        cfg: &EncoderConfig,
        first_layer: bool,
        kernels: Kernels,
    ) -> CResult<Self> {
        let h = cfg.hidden_size;
        let gate = cfg.relative_bias.map(|rb| {
            let dh = h / cfg.num_heads;
            let lw = w.get(&format!("{p}.gru_rel_pos_linear.weight"), &[8, dh]);
            let lb = w.get(&format!("{p}.gru_rel_pos_linear.bias"), &[8]);
            RelativeGate {
                linear: Linear::new(lw, Some(lb)),
                constant: w.get(&format!("{p}.gru_rel_pos_const"), &[1, cfg.num_heads, 1, 1]),
                embedding: first_layer.then(|| {
                    w.get(
                        &format!("{p}.rel_attn_embed.weight"),
                        &[rb.num_buckets, cfg.num_heads],
                    )
                }),
            }
        });
        Ok(Attention {
            q: Dense::load(w, &format!("{p}.q_proj"), h, h, kernels)?,
            k: Dense::load(w, &format!("{p}.k_proj"), h, h, kernels)?,
            v: Dense::load(w, &format!("{p}.v_proj"), h, h, kernels)?,
            out: Dense::load(w, &format!("{p}.out_proj"), h, h, kernels)?,
            heads: cfg.num_heads,
            gate,
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
        let (b, t, h) = x.dims3()?;
        let scale = ((h / self.heads) as f64).powf(-0.5);
        let q = self.split_heads(&(self.q.forward(x)? * scale)?)?;
        let k = self.split_heads(&self.k.forward(x)?)?;
        let v = self.split_heads(&self.v.forward(x)?)?;
        let mut scores = q.matmul(&k.t()?)?;
        if let (Some(gate), Some(bias)) = (&self.gate, bias) {
            let g = self.relative_gate(gate, &self.split_heads(x)?)?;
            scores = (scores + g.broadcast_mul(&bias.unsqueeze(0)?)?)?;
        }
        if let Some(m) = additive_mask {
            scores = scores.broadcast_add(m)?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
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
                        multi_head_attention(&AttentionInputs {
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
                        })
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
    ff_in: Dense,
    ff_out: Dense,
    norm2: LayerNorm,
    act: Activation,
    pre_ln: bool,
}

impl Layer {
    fn load(
        w: &mut WeightSource,
        cfg: &EncoderConfig,
        i: usize,
        kernels: Kernels,
    ) -> CResult<Self> {
        let p = format!("encoder.layers.{i}");
        let (h, f, eps) = (cfg.hidden_size, cfg.intermediate_size, cfg.layer_norm_eps);
        Ok(Layer {
            attention: Attention::load(w, &format!("{p}.attention"), cfg, i == 0, kernels)?,
            norm1: LayerNorm::load(w, &format!("{p}.layer_norm"), h, eps),
            ff_in: Dense::load(
                w,
                &format!("{p}.feed_forward.intermediate_dense"),
                h,
                f,
                kernels,
            )?,
            ff_out: Dense::load(w, &format!("{p}.feed_forward.output_dense"), f, h, kernels)?,
            norm2: LayerNorm::load(w, &format!("{p}.final_layer_norm"), h, eps),
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

/// A loaded encoder: the whole forward pass of one checkpoint.
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
    /// Builds the encoder pulling every tensor from `w` (problems are collected there).
    pub(crate) fn load(
        cfg: &EncoderConfig,
        w: &mut WeightSource,
        kernels: Kernels,
        device: &Device,
    ) -> CResult<Self> {
        Ok(Encoder {
            device: device.clone(),
            features: FeatureEncoder::load(w, cfg, kernels)?,
            projection: FeatureProjection::load(w, cfg, kernels)?,
            positional: PositionalConv::load(w, cfg, DType::F32, device, kernels)?,
            encoder_norm: LayerNorm::load(
                w,
                "encoder.layer_norm",
                cfg.hidden_size,
                cfg.layer_norm_eps,
            ),
            layers: (0..cfg.num_layers)
                .map(|i| Layer::load(w, cfg, i, kernels))
                .collect::<CResult<_>>()?,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &EncoderConfig {
        &self.cfg
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
        let samples = samples.to_dtype(DType::F32)?.to_device(&self.device)?;
        let frames = self.features.forward(&samples)?;
        let mut x = self.projection.forward(&frames)?;
        let (b, t, _) = x.dims3()?;
        let mut additive = None;
        if let Some(lengths) = lengths {
            let keep = self.frame_mask(lengths, b, t)?;
            x = x.broadcast_mul(&keep.unsqueeze(2)?)?;
            let neg = ((keep.ones_like()? - &keep)? * f32::MIN as f64)?;
            additive = Some(neg.reshape((b, 1, 1, t))?);
        }
        x = (&x + self.positional.forward(&x)?)?;
        if !self.cfg.pre_ln {
            x = self.encoder_norm.forward(&x)?;
        }
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
