//! The encoder's one linear-layer type, [`Linear`], with a packed CPU GEMM variant (inference)
//! and a candle variant (any device; trainable with autograd, and the layer LoRA wraps), plus
//! helpers to move f32 data between candle tensors and slices.

use candle_core::{Device, Module, Tensor};
use candle_nn::VarBuilder;

use crate::gemm::{GemmPrecision, PackedWeight};
use crate::pretrained::Precision;

type CResult<T> = candle_core::Result<T>;

/// Which code computes the encoder's products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// Weights packed at load, AVX-512 micro-kernels (portable fallback without AVX-512); CPU
    /// inference only. The checkpoint's tensors are not kept once packed.
    Packed(Precision),
    /// candle's ops with its fused inference kernels (layer norm, softmax): the reference path,
    /// and the one a GPU device uses.
    Candle,
    /// candle's differentiable ops only, so that gradients reach every weight handed out by the
    /// `VarBuilder` (e.g. a `VarMap` for fine-tuning). Same arithmetic as [`Kernels::Candle`].
    Autograd,
}

impl Kernels {
    pub(crate) fn packed(self) -> Option<GemmPrecision> {
        match self {
            Kernels::Packed(Precision::F32) => Some(GemmPrecision::F32),
            Kernels::Packed(Precision::Bf16) => Some(GemmPrecision::Bf16),
            Kernels::Candle | Kernels::Autograd => None,
        }
    }
}

/// Runs `f` on the contiguous f32 data of a CPU tensor without copying it.
pub(crate) fn with_f32<R>(x: &Tensor, f: impl FnOnce(&[f32]) -> R) -> CResult<R> {
    let x = x.contiguous()?;
    let (storage, layout) = x.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(cpu) => {
            let data = cpu.as_slice::<f32>()?;
            let n = layout.shape().elem_count();
            Ok(f(&data[layout.start_offset()..layout.start_offset() + n]))
        }
        _ => candle_core::bail!("packed kernels need a CPU tensor"),
    }
}

pub(crate) fn to_f32_vec(x: &Tensor) -> CResult<Vec<f32>> {
    x.flatten_all()?.to_vec1::<f32>()
}

/// A weight packed for the CPU kernels with its bias: the inference-only form of a linear layer.
pub struct PackedLinear {
    weight: PackedWeight,
    bias: Vec<f32>,
}

/// y = x·Wᵀ + b over the last dimension, with the weight held once in one of two forms.
pub enum Linear {
    /// Packed CPU GEMM (inference).
    Packed(PackedLinear),
    /// candle's matmul on the tensors the `VarBuilder` handed out (any device; trainable).
    Candle(candle_nn::Linear),
    /// A LoRA-wrapped layer (see [`crate::peft`]).
    Lora(Box<crate::peft::LoraLinear>),
    /// A layer followed by a bottleneck adapter (see [`crate::peft`]).
    Adapter(Box<crate::peft::AdapterLinear>),
}

impl Linear {
    /// `weight` [out, inp] and `bias` [out] under `vb`, in the form `kernels` asks for.
    pub fn new(vb: VarBuilder, inp: usize, out: usize, kernels: Kernels) -> CResult<Self> {
        let linear = candle_nn::linear(inp, out, vb)?;
        Ok(match kernels.packed() {
            // Packed straight from the tensor's buffer, which is dropped with `linear`.
            Some(precision) => Linear::Packed(PackedLinear {
                weight: with_f32(linear.weight(), |w| {
                    PackedWeight::new(w, out, inp, precision)
                })?,
                bias: match linear.bias() {
                    Some(b) => to_f32_vec(b)?,
                    None => vec![0.0; out],
                },
            }),
            None => Linear::Candle(linear),
        })
    }

    /// Whether products run on the packed CPU kernels.
    pub fn is_packed(&self) -> bool {
        matches!(self, Linear::Packed(_))
    }

    /// The candle layer (weight and bias tensors) of the candle variant.
    pub fn as_candle(&self) -> Option<&candle_nn::Linear> {
        match self {
            Linear::Candle(l) => Some(l),
            Linear::Packed(_) | Linear::Lora(_) | Linear::Adapter(_) => None,
        }
    }

    /// x·Wᵀ + b followed by the exact GELU (fused into the packed kernel's epilogue).
    pub fn forward_gelu(&self, x: &Tensor) -> CResult<Tensor> {
        self.run(x, true)
    }

    fn run(&self, x: &Tensor, gelu: bool) -> CResult<Tensor> {
        let packed = match self {
            Linear::Candle(linear) => {
                let (w, b) = (linear.weight(), linear.bias());
                if x.track_op() || w.track_op() || b.is_some_and(|b| b.track_op()) {
                    // Under autograd: one node whose backward computes only the gradients
                    // that a trainable parameter needs.
                    let y = crate::fused::linear(x, w, b)?;
                    return if gelu {
                        crate::fused::gelu_erf(&y)
                    } else {
                        Ok(y)
                    };
                }
                let y = linear.forward(x)?;
                return if gelu { y.gelu_erf() } else { Ok(y) };
            }
            Linear::Lora(l) => {
                let y = l.forward(x)?;
                return if gelu { y.gelu_erf() } else { Ok(y) };
            }
            Linear::Adapter(a) => {
                let y = a.forward(x)?;
                return if gelu { y.gelu_erf() } else { Ok(y) };
            }
            Linear::Packed(p) => p,
        };
        let dims = x.dims().to_vec();
        let Some(&k) = dims.last() else {
            candle_core::bail!("a linear layer needs an input of rank ≥ 1");
        };
        let m = x.elem_count() / k.max(1);
        let y = with_f32(x, |a| {
            packed.weight.matmul(a, m, k, Some(&packed.bias), gelu)
        })?;
        let mut out_dims = dims;
        *out_dims.last_mut().expect("rank ≥ 1 checked above") = packed.weight.n();
        Tensor::from_vec(y, out_dims, &Device::Cpu)
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        self.run(x, false)
    }
}

/// LayerNorm over the last dimension: candle's fused kernel, or (for [`Kernels::Autograd`]) the
/// same formula as one differentiable op ([`crate::fused::layer_norm`]).
pub(crate) fn layer_norm_last_dim(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f32,
    kernels: Kernels,
) -> CResult<Tensor> {
    if kernels == Kernels::Autograd {
        crate::fused::layer_norm(x, weight, bias, eps)
    } else {
        candle_nn::ops::layer_norm(&x.contiguous()?, weight, bias, eps)
    }
}
