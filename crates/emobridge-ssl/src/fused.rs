//! Fused training ops with hand-written backward passes (candle `CustomOp`s, CPU f32).
//!
//! candle composes a linear layer's backward as both products whatever needs a gradient (the
//! frozen weight's too, which autograd then keeps), and a softmax, layer norm or GELU from many
//! small elementwise ops, each allocating a tensor that the graph keeps until the backward pass.
//! Here each of them is one node: the forward writes one output, and the backward computes only
//! the gradients that some trainable parameter needs (an argument that neither is a variable nor
//! depends on one carries no autograd op, see `Tensor::track_op`).
//!
//! Other devices (CUDA) and dtypes keep candle's composed ops: [`linear`] and the others check
//! for a CPU f32 tensor and fall back.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use crate::gemm::{erf, exp_nonpositive, gelu_in_place};

type CResult<T> = candle_core::Result<T>;

/// Rows per parallel task of the row-wise ops.
const ROWS: usize = 32;

fn cpu_f32(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// The f32 values of a contiguous CPU storage under `layout`.
fn slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> CResult<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("{what}: f32 expected");
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{what}: contiguous input expected"),
    }
}

/// y = x·Wᵀ + b over the last dimension of `x` (W [out, in], b [out]).
///
/// The backward pass computes dx only when `x` depends on a trainable parameter, dW only when W
/// does, db only when b does, so a frozen layer under LoRA, adapters or BitFit costs one product
/// in the backward pass (not two) and leaves no weight-sized gradient behind.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> CResult<Tensor> {
    if !(cpu_f32(x) && cpu_f32(w)) {
        let y = x.broadcast_matmul(&w.t()?)?;
        return match b {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        };
    }
    let x = x.contiguous()?;
    let w = w.contiguous()?;
    match b {
        Some(b) => x.apply_op3(&w, &b.contiguous()?, LinearOp),
        None => x.apply_op2(&w, LinearOp),
    }
}

struct LinearOp;

impl LinearOp {
    fn forward(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        bias: Option<&[f32]>,
    ) -> CResult<(CpuStorage, Shape)> {
        let dims = l1.dims();
        let Some(&k) = dims.last() else {
            candle_core::bail!("linear: input of rank 0");
        };
        let (n, wk) = l2.shape().dims2()?;
        if wk != k {
            candle_core::bail!("linear: input width {k}, weight [{n}, {wk}]");
        }
        let m = l1.shape().elem_count() / k.max(1);
        let (Some((a0, _)), Some((w0, _))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("linear: contiguous inputs expected");
        };
        let lhs = Layout::contiguous_with_offset((m, k), a0);
        let rhs = Layout::contiguous_with_offset((n, k), w0).transpose(0, 1)?;
        let mut y = s1.matmul(s2, (1, m, n, k), &lhs, &rhs)?;
        if let (Some(bias), CpuStorage::F32(v)) = (bias, &mut y) {
            v.par_chunks_mut(n * ROWS).for_each(|rows| {
                for row in rows.chunks_exact_mut(n) {
                    for (o, bb) in row.iter_mut().zip(bias) {
                        *o += bb;
                    }
                }
            });
        }
        let mut out = dims.to_vec();
        *out.last_mut().expect("rank ≥ 1") = n;
        Ok((y, Shape::from(out)))
    }

    /// (dx, dW, db) of the gradients that are needed.
    fn backward(
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, k) = w.dims2()?;
        let m = x.elem_count() / k.max(1);
        let g = grad.contiguous()?.reshape((m, n))?;
        let dx = if x.track_op() {
            Some(g.matmul(&w.detach())?.reshape(x.shape())?)
        } else {
            None
        };
        let dw = if w.track_op() {
            let x2 = x.detach().reshape((m, k))?;
            Some(g.t()?.matmul(&x2)?)
        } else {
            None
        };
        let db = match b {
            Some(b) if b.track_op() => Some(g.sum(0)?),
            _ => None,
        };
        Ok((dx, dw, db))
    }
}

impl CustomOp2 for LinearOp {
    fn name(&self) -> &'static str {
        "emobridge-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        self.forward(s1, l1, s2, l2, None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = Self::backward(x, w, None, grad)?;
        Ok((dx, dw))
    }
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "emobridge-linear-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let bias = slice(s3, l3, "linear bias")?;
        self.forward(s1, l1, s2, l2, Some(bias))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        Self::backward(x, w, Some(b), grad)
    }
}

/// Runs `f` on `x` compiled for AVX-512 where the CPU has it (the loops in `f` are written to
/// vectorise), else as is.
#[inline(always)]
fn vectorised<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if crate::gemm::has_avx512() {
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: the CPU supports AVX-512F (checked just above).
        return unsafe { avx512(f) };
    }
    f()
}

/// Softmax over the last dimension; backward dx = y ⊙ (dy − Σ dy ⊙ y) from the output alone.
pub fn softmax_last_dim(x: &Tensor) -> CResult<Tensor> {
    if !cpu_f32(x) {
        return candle_nn::ops::softmax(x, D::Minus1);
    }
    x.contiguous()?.apply_op1(SoftmaxOp)
}

struct SoftmaxOp;

impl CustomOp1 for SoftmaxOp {
    fn name(&self) -> &'static str {
        "emobridge-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let x = slice(s, l, "softmax")?;
        let d = l.dims().last().copied().unwrap_or(1).max(1);
        let mut y = x.to_vec();
        y.par_chunks_mut(d * ROWS).for_each(|rows| {
            vectorised(|| {
                for row in rows.chunks_exact_mut(d) {
                    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                    let mut sum = 0f32;
                    for v in row.iter_mut() {
                        *v = exp_nonpositive(*v - max);
                        sum += *v;
                    }
                    let inv = 1.0 / sum;
                    row.iter_mut().for_each(|v| *v *= inv);
                }
            })
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, res: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        Ok(Some(
            res.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxGrad)?,
        ))
    }
}

/// (y, dy) → y ⊙ (dy − Σ dy ⊙ y) per row.
struct SoftmaxGrad;

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "emobridge-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let y = slice(s1, l1, "softmax grad")?;
        let dy = slice(s2, l2, "softmax grad")?;
        let d = l1.dims().last().copied().unwrap_or(1).max(1);
        let mut dx = vec![0f32; y.len()];
        dx.par_chunks_mut(d * ROWS)
            .enumerate()
            .for_each(|(c, out)| {
                let at = c * d * ROWS;
                vectorised(|| {
                    for (r, o) in out.chunks_exact_mut(d).enumerate() {
                        let yr = &y[at + r * d..at + (r + 1) * d];
                        let gr = &dy[at + r * d..at + (r + 1) * d];
                        let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
                        for ((o, &a), &g) in o.iter_mut().zip(yr).zip(gr) {
                            *o = a * (g - dot);
                        }
                    }
                })
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// LayerNorm over the last dimension with weight and bias (statistics in f64); the backward
/// pass recomputes the row statistics from `x` instead of keeping normalised copies.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32) -> CResult<Tensor> {
    if !(cpu_f32(x) && cpu_f32(weight) && cpu_f32(bias)) {
        return candle_nn::ops::layer_norm_slow(x, weight, bias, eps);
    }
    x.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        LayerNormOp { eps },
    )
}

struct LayerNormOp {
    eps: f32,
}

/// Mean and 1/√(var + eps) of a row.
#[inline(always)]
fn row_stats(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f64;
    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean as f32, (1.0 / (var + eps as f64).sqrt()) as f32)
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "emobridge-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let x = slice(s1, l1, "layer norm")?;
        let g = slice(s2, l2, "layer norm weight")?;
        let b = slice(s3, l3, "layer norm bias")?;
        let d = g.len();
        if l1.dims().last() != Some(&d) || b.len() != d {
            candle_core::bail!("layer norm: input {:?}, weight {d}", l1.dims());
        }
        let mut y = x.to_vec();
        y.par_chunks_mut(d * ROWS).for_each(|rows| {
            for row in rows.chunks_exact_mut(d) {
                let (mean, rstd) = row_stats(row, self.eps);
                for ((v, gg), bb) in row.iter_mut().zip(g).zip(b) {
                    *v = (*v - mean) * rstd * gg + bb;
                }
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        g: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = g.elem_count();
        let m = x.elem_count() / d.max(1);
        // Rows 0..m: dx; row m: dweight; row m + 1: dbias.
        let all = x.apply_op3_no_bwd(g, &grad.contiguous()?, &LayerNormGrad { eps: self.eps })?;
        let dx = if x.track_op() {
            Some(all.narrow(0, 0, m)?.reshape(x.shape())?)
        } else {
            None
        };
        let dg = if g.track_op() {
            Some(all.get(m)?)
        } else {
            None
        };
        let db = if b.track_op() {
            Some(all.get(m + 1)?)
        } else {
            None
        };
        Ok((dx, dg, db))
    }
}

/// (x, weight, dy) → [m + 2, d]: dx, then dweight and dbias summed over rows.
struct LayerNormGrad {
    eps: f32,
}

impl CustomOp3 for LayerNormGrad {
    fn name(&self) -> &'static str {
        "emobridge-layer-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let x = slice(s1, l1, "layer norm grad")?;
        let g = slice(s2, l2, "layer norm grad")?;
        let dy = slice(s3, l3, "layer norm grad")?;
        let d = g.len();
        let m = x.len() / d.max(1);
        let mut out = vec![0f32; (m + 2) * d];
        let (dx, _) = out.split_at_mut(m * d);
        let partial: Vec<(Vec<f32>, Vec<f32>)> = dx
            .par_chunks_mut(d * ROWS)
            .enumerate()
            .map(|(c, chunk)| {
                let at = c * d * ROWS;
                let mut dg = vec![0f32; d];
                let mut db = vec![0f32; d];
                let mut xhat = vec![0f32; d];
                for (r, o) in chunk.chunks_exact_mut(d).enumerate() {
                    let xr = &x[at + r * d..at + (r + 1) * d];
                    let gr = &dy[at + r * d..at + (r + 1) * d];
                    let (mean, rstd) = row_stats(xr, self.eps);
                    let (mut s1, mut s2) = (0f32, 0f32);
                    for i in 0..d {
                        let h = (xr[i] - mean) * rstd;
                        xhat[i] = h;
                        dg[i] += gr[i] * h;
                        db[i] += gr[i];
                        let t = gr[i] * g[i];
                        s1 += t;
                        s2 += t * h;
                    }
                    let (m1, m2) = (s1 / d as f32, s2 / d as f32);
                    for i in 0..d {
                        o[i] = rstd * (gr[i] * g[i] - m1 - xhat[i] * m2);
                    }
                }
                (dg, db)
            })
            .collect();
        let (dg, db) = out[m * d..].split_at_mut(d);
        for (pg, pb) in &partial {
            dg.iter_mut().zip(pg).for_each(|(a, b)| *a += b);
            db.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
        }
        Ok((CpuStorage::F32(out), Shape::from((m + 2, d))))
    }
}

/// The exact (erf) GELU, x·Φ(x); backward dy·(Φ(x) + x·φ(x)).
pub fn gelu_erf(x: &Tensor) -> CResult<Tensor> {
    if !cpu_f32(x) {
        return x.gelu_erf();
    }
    x.contiguous()?.apply_op1(GeluOp)
}

struct GeluOp;

impl CustomOp1 for GeluOp {
    fn name(&self) -> &'static str {
        "emobridge-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let mut y = slice(s, l, "gelu")?.to_vec();
        y.par_chunks_mut(1 << 14).for_each(gelu_in_place);
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&grad.contiguous()?, &GeluGrad)?))
    }
}

struct GeluGrad;

impl CustomOp2 for GeluGrad {
    fn name(&self) -> &'static str {
        "emobridge-gelu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let x = slice(s1, l1, "gelu grad")?;
        let dy = slice(s2, l2, "gelu grad")?;
        let mut dx = dy.to_vec();
        const CHUNK: usize = 1 << 14;
        dx.par_chunks_mut(CHUNK).enumerate().for_each(|(c, out)| {
            let xs = &x[c * CHUNK..c * CHUNK + out.len()];
            vectorised(|| {
                for (o, &v) in out.iter_mut().zip(xs) {
                    let cdf = 0.5 * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2));
                    let pdf = exp_nonpositive(-0.5 * v * v) * 0.398_942_3;
                    *o *= cdf + v * pdf;
                }
            })
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// x ⊙ mask for a dropout mask that is a constant: the backward pass gives x its gradient
/// (grad ⊙ mask) and computes none for the mask.
pub fn mul_by_constant(x: &Tensor, mask: &Tensor) -> CResult<Tensor> {
    if !(cpu_f32(x) && cpu_f32(mask)) || x.shape() != mask.shape() {
        return x.mul(mask);
    }
    x.contiguous()?
        .apply_op2(&mask.detach().contiguous()?, MaskOp)
}

struct MaskOp;

impl CustomOp2 for MaskOp {
    fn name(&self) -> &'static str {
        "emobridge-mask"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let x = slice(s1, l1, "mask")?;
        let m = slice(s2, l2, "mask")?;
        let y: Vec<f32> = x.iter().zip(m).map(|(a, b)| a * b).collect();
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        mask: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        Ok((
            if x.track_op() {
                Some(grad.mul(mask)?)
            } else {
                None
            },
            None,
        ))
    }
}

/// One AdamW update of a parameter in place (decoupled weight decay, bias-corrected moments,
/// the arithmetic of `torch.optim.AdamW`): three passes over the parameter, its moments and its
/// gradient, with no temporary tensors. Returns false (nothing changed) for tensors that are
/// not CPU f32, which the caller then updates with candle's ops.
pub(crate) fn adamw_in_place(
    theta: &Tensor,
    m: &Tensor,
    v: &Tensor,
    g: &Tensor,
    step: &AdamStep,
) -> CResult<bool> {
    if ![theta, m, v, g]
        .iter()
        .all(|t| cpu_f32(t) && t.is_contiguous())
    {
        return Ok(false);
    }
    m.inplace_op2(
        g,
        &Moment {
            decay: step.beta1,
            square: false,
        },
    )?;
    v.inplace_op2(
        g,
        &Moment {
            decay: step.beta2,
            square: true,
        },
    )?;
    theta.inplace_op3(m, v, step)?;
    Ok(true)
}

/// The scalars of one AdamW update.
pub(crate) struct AdamStep {
    pub lr: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// 1 / (1 − β₁ᵗ) and 1 / (1 − β₂ᵗ).
    pub scale_m: f64,
    pub scale_v: f64,
}

/// m ← decay·m + (1 − decay)·g (or g² for the second moment).
struct Moment {
    decay: f64,
    square: bool,
}

fn slice_mut<'a>(s: &'a mut CpuStorage, l: &Layout, what: &str) -> CResult<&'a mut [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("{what}: f32 expected");
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&mut v[a..b]),
        None => candle_core::bail!("{what}: contiguous input expected"),
    }
}

const ELEMS: usize = 1 << 15;

impl candle_core::InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "emobridge-adam-moment"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<()> {
        let m = slice_mut(s1, l1, "adam moment")?;
        let g = slice(s2, l2, "adam gradient")?;
        if m.len() != g.len() {
            candle_core::bail!(
                "adam: moment of {} values, gradient of {}",
                m.len(),
                g.len()
            );
        }
        let (a, b) = (self.decay as f32, (1.0 - self.decay) as f32);
        let square = self.square;
        m.par_chunks_mut(ELEMS)
            .zip(g.par_chunks(ELEMS))
            .for_each(|(m, g)| {
                vectorised(|| {
                    for (m, &g) in m.iter_mut().zip(g) {
                        let g = if square { g * g } else { g };
                        *m = *m * a + g * b;
                    }
                })
            });
        Ok(())
    }
}

impl candle_core::InplaceOp3 for AdamStep {
    fn name(&self) -> &'static str {
        "emobridge-adamw"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> CResult<()> {
        let theta = slice_mut(s1, l1, "adam parameter")?;
        let m = slice(s2, l2, "adam moment")?;
        let v = slice(s3, l3, "adam moment")?;
        if theta.len() != m.len() || theta.len() != v.len() {
            candle_core::bail!("adam: parameter and moments differ in size");
        }
        let decay = (1.0 - self.lr * self.weight_decay) as f32;
        let (sm, sv) = (self.scale_m as f32, self.scale_v as f32);
        let (lr, eps) = (self.lr as f32, self.eps as f32);
        theta
            .par_chunks_mut(ELEMS)
            .zip(m.par_chunks(ELEMS).zip(v.par_chunks(ELEMS)))
            .for_each(|(t, (m, v))| {
                vectorised(|| {
                    for ((t, &m), &v) in t.iter_mut().zip(m).zip(v) {
                        let adjusted = (m * sm) / ((v * sv).sqrt() + eps);
                        *t = *t * decay - adjusted * lr;
                    }
                })
            });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn data(shape: &[usize], seed: u32) -> Tensor {
        let n: usize = shape.iter().product();
        let v = crate::gemm::tests::data(n, seed)
            .into_iter()
            .map(|x| x * 3.0)
            .collect::<Vec<_>>();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    /// Forward values and the gradients of every variable of `fused` vs `composed`, with the
    /// loss Σ y ⊙ r for a fixed random r.
    fn check(
        vars: &[Var],
        fused: impl Fn() -> Tensor,
        composed: impl Fn() -> Tensor,
        tol: f32,
        what: &str,
    ) {
        let (a, b) = (fused(), composed());
        assert!(max_diff(&a, &b) <= tol, "{what}: forward");
        let r = data(a.dims(), 99);
        let ga = (&a * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (&b * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for (i, v) in vars.iter().enumerate() {
            let (x, y) = (
                ga.get(v.as_tensor()).unwrap(),
                gb.get(v.as_tensor()).unwrap(),
            );
            let d = max_diff(x, y);
            assert!(d <= tol, "{what}: gradient of argument {i} differs by {d}");
        }
    }

    #[test]
    fn linear_matches_candle_and_skips_frozen_gradients() {
        let x = Var::from_tensor(&data(&[2, 5, 7], 1)).unwrap();
        let w = Var::from_tensor(&data(&[3, 7], 2)).unwrap();
        let b = Var::from_tensor(&data(&[3], 3)).unwrap();
        check(
            &[x.clone(), w.clone(), b.clone()],
            || linear(&x, &w, Some(&b)).unwrap(),
            || {
                x.broadcast_matmul(&w.t().unwrap())
                    .unwrap()
                    .broadcast_add(&b)
                    .unwrap()
            },
            1e-5,
            "linear",
        );
        // Frozen weight and bias: the backward pass leaves no gradient for them.
        let wf = data(&[3, 7], 2);
        let grads = linear(&x, &wf, None)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(grads.get(&wf).is_none());
        assert!(grads.get(x.as_tensor()).is_some());
    }

    #[test]
    fn softmax_layer_norm_and_gelu_match_the_composed_ops() {
        let x = Var::from_tensor(&data(&[3, 4, 19], 4)).unwrap();
        check(
            std::slice::from_ref(&x),
            || softmax_last_dim(&x).unwrap(),
            || candle_nn::ops::softmax(&x, D::Minus1).unwrap(),
            1e-6,
            "softmax",
        );
        let g = Var::from_tensor(&data(&[19], 5)).unwrap();
        let b = Var::from_tensor(&data(&[19], 6)).unwrap();
        check(
            &[x.clone(), g.clone(), b.clone()],
            || layer_norm(&x, &g, &b, 1e-5).unwrap(),
            || candle_nn::ops::layer_norm_slow(&x, &g, &b, 1e-5).unwrap(),
            2e-5,
            "layer norm",
        );
        check(
            std::slice::from_ref(&x),
            || gelu_erf(&x).unwrap(),
            || x.gelu_erf().unwrap(),
            2e-6,
            "gelu",
        );
    }
}
