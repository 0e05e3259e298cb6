//! Linear layers with two kernels: packed CPU GEMM (default on CPU) or candle's matmul
//! (any device), plus helpers to move f32 data between candle tensors and slices.

use candle_core::{Device, Module, Tensor};
use candle_nn::Linear;

use crate::gemm::{GemmPrecision, PackedWeight};
use crate::weights::WeightSource;

type CResult<T> = candle_core::Result<T>;

/// Which code computes the matrix products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// Weights packed at load, AVX-512 micro-kernels (portable fallback without AVX-512).
    Packed(GemmPrecision),
    /// candle's own ops throughout (reference path; the one a GPU device would use).
    Candle,
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

/// y = x·Wᵀ + b over the last dimension.
pub(crate) struct Dense {
    linear: Linear,
    packed: Option<(PackedWeight, Vec<f32>)>,
}

impl Dense {
    pub(crate) fn load(
        w: &mut WeightSource,
        prefix: &str,
        inp: usize,
        out: usize,
        kernels: Kernels,
    ) -> CResult<Self> {
        let weight = w.get(&format!("{prefix}.weight"), &[out, inp]);
        let bias = w.get(&format!("{prefix}.bias"), &[out]);
        let packed = match kernels {
            Kernels::Packed(p) => Some((
                PackedWeight::new(&to_f32_vec(&weight)?, out, inp, p),
                to_f32_vec(&bias)?,
            )),
            Kernels::Candle => None,
        };
        Ok(Dense {
            linear: Linear::new(weight, Some(bias)),
            packed,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        self.run(x, false)
    }

    /// Whether products run on the packed CPU kernels.
    pub(crate) fn is_packed(&self) -> bool {
        self.packed.is_some()
    }

    /// x·Wᵀ + b followed by the exact GELU (fused into the packed kernel's epilogue).
    pub(crate) fn forward_gelu(&self, x: &Tensor) -> CResult<Tensor> {
        self.run(x, true)
    }

    fn run(&self, x: &Tensor, gelu: bool) -> CResult<Tensor> {
        let Some((w, b)) = &self.packed else {
            let y = self.linear.forward(x)?;
            return if gelu { y.gelu_erf() } else { Ok(y) };
        };
        let dims = x.dims().to_vec();
        let k = *dims.last().expect("rank ≥ 1");
        let m = x.elem_count() / k;
        let y = with_f32(x, |a| w.matmul(a, m, k, Some(b), gelu))?;
        let mut out_dims = dims;
        *out_dims.last_mut().expect("rank ≥ 1") = w.n();
        Tensor::from_vec(y, out_dims, &Device::Cpu)
    }
}
