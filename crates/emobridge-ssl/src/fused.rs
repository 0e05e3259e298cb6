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
//! for a CPU f32 tensor and fall back. [`with_plain_ops`] makes them fall back on the CPU too
//! (`TrainConfig::ops = plain`), so that the route a GPU takes is the one tested on the CPU.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use crate::gemm::{erf, exp_nonpositive, gelu_in_place};

type CResult<T> = candle_core::Result<T>;

/// Rows per parallel task of the row-wise ops.
const ROWS: usize = 32;

thread_local! {
    /// Set while [`with_plain_ops`] runs on this thread.
    static PLAIN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every op of this module taking candle's composed route (the one it takes for
/// tensors off the CPU) when `plain` is set, else as usual. The ops decide on the thread that
/// calls them, which for training is the one that runs the forward and backward passes.
pub(crate) fn with_plain_ops<R>(plain: bool, f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            PLAIN.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(PLAIN.with(|p| p.replace(plain)));
    f()
}

/// Whether the fused CPU ops are switched off on this thread ([`with_plain_ops`]).
pub(crate) fn plain_ops() -> bool {
    PLAIN.with(|p| p.get())
}

/// Whether a fused op serves `x`: a CPU f32 tensor, outside [`with_plain_ops`].
fn cpu_f32(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32 && !plain_ops()
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
            Some(b) if b.track_op() => Some(column_sums(&g)?),
            _ => None,
        };
        Ok((dx, dw, db))
    }
}

/// Σ over rows of g [m, n] → [n] (CPU f32 in parallel row blocks; candle's `sum(0)` elsewhere).
/// The bias gradient of a linear layer: candle's reduction over the leading dimension walks
/// the rows one value at a time on one thread.
fn column_sums(g: &Tensor) -> CResult<Tensor> {
    let (m, n) = g.dims2()?;
    if !cpu_f32(g) || m < 2 * ROWS {
        return g.sum(0);
    }
    let sums = crate::dense::with_f32(g, |v| {
        v.par_chunks(n * ROWS * 4)
            .map(|rows| {
                vectorised(|| {
                    let mut acc = vec![0f32; n];
                    for row in rows.chunks_exact(n) {
                        acc.iter_mut().zip(row).for_each(|(a, &x)| *a += x);
                    }
                    acc
                })
            })
            .collect::<Vec<_>>()
    })?;
    // Partial sums added in order, so that the result does not depend on the thread schedule.
    let mut parts = sums.into_iter();
    let mut sums = parts.next().unwrap_or_else(|| vec![0f32; n]);
    for p in parts {
        sums.iter_mut().zip(&p).for_each(|(x, y)| *x += y);
    }
    Tensor::from_vec(sums, n, g.device())
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

/// The LoRA update scale·(dropout(x)·Aᵀ)·Bᵀ over the last dimension of `x` (A [r, in],
/// B [out, r]) as one node, `mask` being the dropout mask of x (None: no dropout). The backward
/// pass recomputes the rank-r activations (x·Aᵀ, [rows, r]) instead of keeping a masked copy
/// of x, the scaled update and the low-rank product as separate tensors.
pub fn lora_update(
    x: &Tensor,
    a: &Tensor,
    b: &Tensor,
    scale: f64,
    mask: Option<Vec<f32>>,
) -> CResult<Tensor> {
    if let Some(m) = &mask {
        if m.len() != x.elem_count() {
            candle_core::bail!("lora: mask of {} for {:?}", m.len(), x.dims());
        }
    }
    x.contiguous()?
        .apply_op3(&a.contiguous()?, &b.contiguous()?, LoraOp { scale, mask })
}

/// Whether [`lora_update`] serves these tensors.
pub fn lora_applies(x: &Tensor, a: &Tensor, b: &Tensor) -> bool {
    cpu_f32(x) && cpu_f32(a) && cpu_f32(b)
}

struct LoraOp {
    scale: f64,
    mask: Option<Vec<f32>>,
}

impl LoraOp {
    /// (rows, in, r, out), checked.
    fn dims(x: &[usize], a: &[usize], b: &[usize]) -> CResult<(usize, usize, usize, usize)> {
        let (&[r, k], &[n, r2]) = (a, b) else {
            candle_core::bail!("lora: A {a:?}, B {b:?}");
        };
        if r2 != r || x.last() != Some(&k) || k == 0 {
            candle_core::bail!("lora: input {x:?}, A {a:?}, B {b:?}");
        }
        Ok((x.iter().product::<usize>() / k, k, r, n))
    }
}

impl CustomOp3 for LoraOp {
    fn name(&self) -> &'static str {
        "emobridge-lora"
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
        use crate::gemm::{GemmPrecision::F32, PackedWeight};
        let (m, k, r, n) = Self::dims(l1.dims(), l2.dims(), l3.dims())?;
        let x = slice(s1, l1, "lora input")?;
        let a = slice(s2, l2, "lora A")?;
        let b = slice(s3, l3, "lora B")?;
        let masked: Vec<f32>;
        let xm = match &self.mask {
            Some(mask) => {
                masked = x.iter().zip(mask).map(|(v, w)| v * w).collect();
                &masked[..]
            }
            None => x,
        };
        let mut low = PackedWeight::new(a, r, k, F32).matmul(xm, m, k, None, false);
        let scale = self.scale as f32;
        low.iter_mut().for_each(|v| *v *= scale);
        let y = PackedWeight::new(b, n, r, F32).matmul(&low, m, r, None, false);
        let mut out = l1.dims().to_vec();
        *out.last_mut().expect("rank ≥ 1") = n;
        Ok((CpuStorage::F32(y), Shape::from(out)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (m, k, _, n) = Self::dims(x.dims(), a.dims(), b.dims())?;
        let need = [x.track_op(), a.track_op(), b.track_op()];
        let mask = match &self.mask {
            Some(v) => Some(Tensor::from_slice(v, (m, k), x.device())?),
            None => None,
        };
        let x2 = x.detach().reshape((m, k))?;
        let xm = match &mask {
            Some(mk) => x2.mul(mk)?,
            None => x2,
        };
        let (a, b) = (a.detach(), b.detach());
        // With gs = scale·dy: dB = gsᵀ·(xm·Aᵀ), dA = (gs·B)ᵀ·xm, dx = ((gs·B)·A) ⊙ mask.
        let gs = (grad.contiguous()?.reshape((m, n))? * self.scale)?;
        let gl = gs.matmul(&b)?;
        let db = if need[2] {
            Some(gs.t()?.matmul(&xm.matmul(&a.t()?)?)?)
        } else {
            None
        };
        let da = if need[1] {
            Some(gl.t()?.matmul(&xm)?)
        } else {
            None
        };
        let dx = if need[0] {
            let d = gl.matmul(&a)?;
            let d = match &mask {
                Some(mk) => d.mul(mk)?,
                None => d,
            };
            Some(d.reshape(x.shape())?)
        } else {
            None
        };
        Ok((dx, da, db))
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

/// Multi-head scaled dot-product attention, ctx = softmax(Q·Kᵀ/√d + mask)·V per head, over
/// q, k, v [B, T, H] (heads side by side in H) as one node: the forward pass is the inference
/// path's blocked attention ([`crate::attention::multi_head_attention`], f32), the backward pass
/// recomputes each head's probabilities and runs the five products per (item, head) on the
/// packed kernels, one task each. Nothing of size T × T is kept between the passes, and only
/// the gradients of arguments that depend on a trainable parameter are computed.
///
/// `key_mask` [B, T] is added to every score of a key (0 or a large negative number). The
/// caller checks [`attention_applies`]; elsewhere it keeps candle's composed ops.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    key_mask: Option<Vec<f32>>,
) -> CResult<Tensor> {
    q.contiguous()?.apply_op3(
        &k.contiguous()?,
        &v.contiguous()?,
        AttentionOp { heads, key_mask },
    )
}

/// Whether [`attention`] serves these tensors.
pub fn attention_applies(q: &Tensor, k: &Tensor, v: &Tensor) -> bool {
    cpu_f32(q) && cpu_f32(k) && cpu_f32(v)
}

struct AttentionOp {
    heads: usize,
    key_mask: Option<Vec<f32>>,
}

/// (batch, frames, hidden, head width) of q, k, v [B, T, H], checked.
fn attention_dims(
    l1: &[usize],
    l2: &[usize],
    l3: &[usize],
    heads: usize,
    mask: Option<&[f32]>,
) -> CResult<(usize, usize, usize, usize)> {
    let &[b, t, h] = l1 else {
        candle_core::bail!("attention: queries {l1:?}, expected [B, T, H]");
    };
    if l2 != l1 || l3 != l1 {
        candle_core::bail!("attention: queries {l1:?}, keys {l2:?}, values {l3:?}");
    }
    if heads == 0 || h % heads != 0 {
        candle_core::bail!("attention: width {h} is not a multiple of {heads} heads");
    }
    if let Some(m) = mask {
        if m.len() != b * t {
            candle_core::bail!("attention: key mask of {} for [{b}, {t}]", m.len());
        }
    }
    Ok((b, t, h, h / heads))
}

/// `rows` × `cols` row-major → `cols` × `rows`.
fn transposed(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for (i, row) in x.chunks_exact(cols).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            out[j * rows + i] = v;
        }
    }
    out
}

/// The [t, dh] block of one head of one item of x [B, T, H], contiguous (`transpose`: [dh, t]).
fn head_block(x: &[f32], base: usize, t: usize, h: usize, dh: usize, transpose: bool) -> Vec<f32> {
    let mut out = vec![0f32; t * dh];
    for j in 0..t {
        let row = &x[base + j * h..base + j * h + dh];
        if transpose {
            for (d, &v) in row.iter().enumerate() {
                out[d * t + j] = v;
            }
        } else {
            out[j * dh..(j + 1) * dh].copy_from_slice(row);
        }
    }
    out
}

/// Gradients of one (item, head): (dQ, dK, dV) as [t, dh] blocks, each only when asked for.
struct HeadGrads {
    dq: Option<Vec<f32>>,
    dk: Option<Vec<f32>>,
    dv: Option<Vec<f32>>,
}

impl AttentionOp {
    #[allow(clippy::too_many_arguments)]
    fn head_grads(
        &self,
        (q, k, v, dout): (&[f32], &[f32], &[f32], &[f32]),
        (t, h, dh): (usize, usize, usize),
        item: usize,
        head: usize,
        need: [bool; 3],
    ) -> HeadGrads {
        use crate::gemm::{GemmPrecision::F32, PackedWeight};
        let base = item * t * h + head * dh;
        let scale = (dh as f32).powf(-0.5);
        let mask = self
            .key_mask
            .as_deref()
            .map(|m| &m[item * t..(item + 1) * t]);
        // P = softmax(scale·Q·Kᵀ + mask), recomputed.
        let keys = head_block(k, base, t, h, dh, false);
        let mut p = PackedWeight::new_serial(&keys, t, dh, F32).matmul_serial(&q[base..], t, h);
        for row in p.chunks_exact_mut(t) {
            crate::attention::softmax_row(row, scale, None, mask);
        }
        // dV = Pᵀ·dO.
        let dv = need[2].then(|| {
            let dout_t = head_block(dout, base, t, h, dh, true);
            PackedWeight::new_serial(&dout_t, dh, t, F32).matmul_serial(&transposed(&p, t, t), t, t)
        });
        let (mut dq, mut dk) = (None, None);
        if need[0] || need[1] {
            // dS = P ⊙ (dP − Σ_j dP ⊙ P) with dP = dO·Vᵀ, in place of dP.
            let values = head_block(v, base, t, h, dh, false);
            let mut ds =
                PackedWeight::new_serial(&values, t, dh, F32).matmul_serial(&dout[base..], t, h);
            for (d, pr) in ds.chunks_exact_mut(t).zip(p.chunks_exact(t)) {
                vectorised(|| {
                    let dot: f32 = d.iter().zip(pr).map(|(a, b)| a * b).sum();
                    for (x, &pp) in d.iter_mut().zip(pr) {
                        *x = pp * (*x - dot) * scale;
                    }
                })
            }
            // dQ = scale·dS·K, dK = scale·dSᵀ·Q (the scale is folded into dS above).
            if need[0] {
                let keys_t = transposed(&keys, t, dh);
                dq = Some(PackedWeight::new_serial(&keys_t, dh, t, F32).matmul_serial(&ds, t, t));
            }
            if need[1] {
                let queries_t = head_block(q, base, t, h, dh, true);
                dk = Some(
                    PackedWeight::new_serial(&queries_t, dh, t, F32).matmul_serial(
                        &transposed(&ds, t, t),
                        t,
                        t,
                    ),
                );
            }
        }
        HeadGrads { dq, dk, dv }
    }
}

impl CustomOp3 for AttentionOp {
    fn name(&self) -> &'static str {
        "emobridge-attention"
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
        let mask = self.key_mask.as_deref();
        let (b, t, h, dh) = attention_dims(l1.dims(), l2.dims(), l3.dims(), self.heads, mask)?;
        let inp = crate::attention::AttentionInputs {
            q: slice(s1, l1, "attention queries")?,
            k: slice(s2, l2, "attention keys")?,
            v: slice(s3, l3, "attention values")?,
            batch: b,
            frames: t,
            hidden: h,
            heads: self.heads,
            scale: (dh as f32).powf(-0.5),
            key_mask: mask,
            relative: None,
        };
        let ctx = crate::attention::multi_head_attention(&inp, crate::gemm::GemmPrecision::F32);
        Ok((CpuStorage::F32(ctx), l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        use crate::dense::with_f32;
        let need = [q.track_op(), k.track_op(), v.track_op()];
        if !need.iter().any(|&n| n) {
            return Ok((None, None, None));
        }
        let mask = self.key_mask.as_deref();
        let (b, t, h, dh) = attention_dims(q.dims(), k.dims(), v.dims(), self.heads, mask)?;
        let nh = self.heads;
        let grad = grad.contiguous()?;
        let per_head: Vec<HeadGrads> = with_f32(q, |qs| {
            with_f32(k, |ks| {
                with_f32(v, |vs| {
                    with_f32(&grad, |gs| {
                        (0..b * nh)
                            .into_par_iter()
                            .map(|pair| {
                                self.head_grads(
                                    (qs, ks, vs, gs),
                                    (t, h, dh),
                                    pair / nh,
                                    pair % nh,
                                    need,
                                )
                            })
                            .collect()
                    })
                })
            })
        })????;
        // Heads side by side again: [B, T, H] per gradient.
        let gather = |pick: &dyn Fn(&HeadGrads) -> Option<&Vec<f32>>| -> CResult<Option<Tensor>> {
            if per_head.first().and_then(pick).is_none() {
                return Ok(None);
            }
            let mut out = vec![0f32; b * t * h];
            for (pair, g) in per_head.iter().enumerate() {
                let block = pick(g).expect("every head computes the same gradients");
                let (item, head) = (pair / nh, pair % nh);
                for (j, row) in block.chunks_exact(dh).enumerate() {
                    let at = (item * t + j) * h + head * dh;
                    out[at..at + dh].copy_from_slice(row);
                }
            }
            Ok(Some(Tensor::from_vec(out, (b, t, h), q.device())?))
        };
        Ok((
            gather(&|g| g.dq.as_ref())?,
            gather(&|g| g.dk.as_ref())?,
            gather(&|g| g.dv.as_ref())?,
        ))
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

/// Σ x² of a tensor (f64 accumulation; one pass, nothing allocated on the CPU).
pub(crate) fn sum_of_squares(x: &Tensor) -> CResult<f64> {
    if !(cpu_f32(x) && x.is_contiguous()) {
        return Ok(x
            .sqr()?
            .sum_all()?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?);
    }
    let (storage, layout) = x.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("sum of squares: CPU tensor expected");
    };
    let v = slice(cpu, layout, "sum of squares")?;
    Ok(v.par_chunks(ELEMS)
        .map(|c| {
            vectorised(|| {
                let mut lanes = [0f64; 8];
                for chunk in c.chunks(8) {
                    for (l, &x) in lanes.iter_mut().zip(chunk) {
                        *l += (x as f64) * (x as f64);
                    }
                }
                lanes.iter().sum::<f64>()
            })
        })
        .collect::<Vec<f64>>()
        .iter()
        .sum())
}

/// x ← c·x in place for a CPU f32 tensor (returns false, changing nothing, for others).
pub(crate) fn scale_in_place(x: &Tensor, c: f64) -> CResult<bool> {
    if !(cpu_f32(x) && x.is_contiguous()) {
        return Ok(false);
    }
    x.inplace_op1(&Scale(c as f32))?;
    Ok(true)
}

struct Scale(f32);

impl candle_core::InplaceOp1 for Scale {
    fn name(&self) -> &'static str {
        "emobridge-scale"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> CResult<()> {
        let c = self.0;
        slice_mut(s, l, "scale")?
            .par_chunks_mut(ELEMS)
            .for_each(|x| x.iter_mut().for_each(|v| *v *= c));
        Ok(())
    }
}

/// Grouped "same" convolution along time, x [B, T, H] → y [B, T, H]: `groups` groups of
/// H/groups channels, weight [H, H/groups, k], bias [H], padding k/2 on both sides and, for an
/// even k, the last output frame dropped (wav2vec 2.0's positional conv with its SamePad).
///
/// Forward and input gradient run on the packed kernels (the input gradient is the same conv
/// with the kernel flipped in time and transposed per group); the weight gradient is one product
/// per group of the output gradient with the input's im2col matrix. Candle's grouped conv1d
/// backward goes through a transposed conv per group instead. CPU with AVX-512 only
/// ([`same_conv_applies`]); elsewhere the caller keeps candle's conv.
pub fn same_conv(x: &Tensor, w: &Tensor, b: &Tensor, groups: usize) -> CResult<Tensor> {
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, SameConvOp { groups })
}

/// candle's `conv1d` (x [B, C_in, L], w [C_out, C_in/groups, k], no dilation) with a kernel
/// gradient that is right for any batch size: the composed route wherever a conv weight trains
/// (the positional conv under `full` off the fused route, the feature encoder when it trains).
///
/// candle 0.11 computes a conv1d's kernel gradient as a conv1d whose kernel is the output
/// gradient transposed to [C_out, B, L'], and its conv1d (CPU and CUDA alike) reads a
/// non-contiguous kernel as if it were contiguous, so for B > 1 that gradient is wrong (the
/// input gradient is right). One item at a time the transposed gradient is contiguous; the
/// items' kernel gradients add up in the backward pass. Without a trainable weight this is
/// candle's conv1d on the whole batch.
pub fn conv1d_per_item(
    x: &Tensor,
    w: &Tensor,
    padding: usize,
    stride: usize,
    groups: usize,
) -> CResult<Tensor> {
    let b = x.dim(0)?;
    if b <= 1 || !w.track_op() {
        return x.conv1d(w, padding, stride, 1, groups);
    }
    let items = (0..b)
        .map(|i| {
            x.narrow(0, i, 1)?
                .contiguous()?
                .conv1d(w, padding, stride, 1, groups)
        })
        .collect::<CResult<Vec<_>>>()?;
    Tensor::cat(&items, 0)
}

/// Whether [`same_conv`] serves these tensors.
pub fn same_conv_applies(x: &Tensor, w: &Tensor, b: &Tensor) -> bool {
    crate::gemm::has_avx512() && cpu_f32(x) && cpu_f32(w) && cpu_f32(b)
}

struct SameConvOp {
    groups: usize,
}

/// The shapes of one grouped same conv.
#[derive(Clone, Copy)]
struct ConvDims {
    batch: usize,
    frames: usize,
    hidden: usize,
    /// Channels per group.
    cg: usize,
    kernel: usize,
    groups: usize,
}

impl ConvDims {
    fn new(x: &[usize], w: &[usize], groups: usize) -> CResult<Self> {
        let (&[batch, frames, hidden], &[h2, cg, kernel]) = (x, w) else {
            candle_core::bail!("same conv: input {x:?}, weight {w:?}");
        };
        if groups == 0 || hidden % groups != 0 || h2 != hidden || cg != hidden / groups {
            candle_core::bail!("same conv: input {x:?}, weight {w:?}, {groups} groups");
        }
        Ok(ConvDims {
            batch,
            frames,
            hidden,
            cg,
            kernel,
            groups,
        })
    }

    /// Rows of group `g` of item `item` of `x` [B, T, H], padded with `before` zero rows in
    /// front and enough behind for every window of k rows that starts at 0..T: [(T + k − 1), cg].
    fn padded_group(&self, x: &[f32], item: usize, g: usize, before: usize) -> Vec<f32> {
        let (t, h, cg) = (self.frames, self.hidden, self.cg);
        let mut out = vec![0f32; (t + self.kernel - 1) * cg];
        for i in 0..t {
            let src = (item * t + i) * h + g * cg;
            let row = before + i;
            if row < t + self.kernel - 1 {
                out[row * cg..(row + 1) * cg].copy_from_slice(&x[src..src + cg]);
            }
        }
        out
    }

    /// Group g's kernel as [cg out, k·cg in] taps-major; `flip`: the input-gradient kernel
    /// [cg in, k·cg out] with the taps reversed.
    fn group_kernel(&self, w: &[f32], g: usize, flip: bool) -> Vec<f32> {
        let (cg, k) = (self.cg, self.kernel);
        let mut out = vec![0f32; cg * k * cg];
        for co in 0..cg {
            for ci in 0..cg {
                let src = ((g * cg + co) * cg + ci) * k;
                for tap in 0..k {
                    let v = w[src + tap];
                    if flip {
                        out[ci * k * cg + (k - 1 - tap) * cg + co] = v;
                    } else {
                        out[co * k * cg + tap * cg + ci] = v;
                    }
                }
            }
        }
        out
    }

    /// y [B, T, H] = conv of `x` with per-group kernels `kernel(g)` (k·cg wide), `before` zero
    /// rows in front of each input, plus `bias` [H].
    fn conv(
        &self,
        x: &[f32],
        before: usize,
        kernel: impl Fn(usize) -> Vec<f32>,
        bias: Option<&[f32]>,
    ) -> Vec<f32> {
        let (t, h, cg, k) = (self.frames, self.hidden, self.cg, self.kernel);
        let mut y = vec![0f32; self.batch * t * h];
        for g in 0..self.groups {
            let packed = crate::gemm::PackedWeight::new(
                &kernel(g),
                cg,
                k * cg,
                crate::gemm::GemmPrecision::F32,
            );
            let bias = bias.map(|b| &b[g * cg..(g + 1) * cg]);
            for item in 0..self.batch {
                let xp = self.padded_group(x, item, g, before);
                let out = packed.matmul(&xp, t, cg, bias, false);
                for (i, row) in out.chunks_exact(cg).enumerate() {
                    let at = (item * t + i) * h + g * cg;
                    y[at..at + cg].copy_from_slice(row);
                }
            }
        }
        y
    }
}

impl CustomOp3 for SameConvOp {
    fn name(&self) -> &'static str {
        "emobridge-same-conv"
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
        let d = ConvDims::new(l1.dims(), l2.dims(), self.groups)?;
        let x = slice(s1, l1, "same conv")?;
        let w = slice(s2, l2, "same conv weight")?;
        let b = slice(s3, l3, "same conv bias")?;
        if b.len() != d.hidden {
            candle_core::bail!("same conv: bias of {} for width {}", b.len(), d.hidden);
        }
        let y = d.conv(x, d.kernel / 2, |g| d.group_kernel(w, g, false), Some(b));
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        use crate::dense::with_f32;
        let d = ConvDims::new(x.dims(), w.dims(), self.groups)?;
        let (t, h, cg, k) = (d.frames, d.hidden, d.cg, d.kernel);
        let grad = grad.contiguous()?;
        let dev = x.device();
        let dx = if x.track_op() {
            // dx[j] = Σ_tap' W[:, :, k−1−tap']ᵀ · dy[j + tap' − (k − 1 − k/2)].
            let wv = with_f32(w, |w| w.to_vec())?;
            let dx = with_f32(&grad, |dy| {
                d.conv(dy, k - 1 - k / 2, |g| d.group_kernel(&wv, g, true), None)
            })?;
            Some(Tensor::from_vec(dx, x.shape(), dev)?)
        } else {
            None
        };
        let dw = if w.track_op() {
            // Per group: dW [cg out, k·cg in] = Σ over items and frames of dyᵀ · im2col(x).
            let mut dw = vec![0f32; h * cg * k];
            for g in 0..d.groups {
                let (cols, dys) = with_f32(x, |xs| {
                    with_f32(&grad, |dy| {
                        let mut cols = vec![0f32; d.batch * t * k * cg];
                        let mut dys = vec![0f32; d.batch * t * cg];
                        for item in 0..d.batch {
                            let xp = d.padded_group(xs, item, g, k / 2);
                            for i in 0..t {
                                let row = item * t + i;
                                cols[row * k * cg..(row + 1) * k * cg]
                                    .copy_from_slice(&xp[i * cg..i * cg + k * cg]);
                                let src = row * h + g * cg;
                                dys[row * cg..(row + 1) * cg].copy_from_slice(&dy[src..src + cg]);
                            }
                        }
                        (cols, dys)
                    })
                })??;
                let rows = d.batch * t;
                let cols = Tensor::from_vec(cols, (rows, k * cg), dev)?;
                let dys = Tensor::from_vec(dys, (rows, cg), dev)?;
                let dwg: Vec<f32> = dys.t()?.matmul(&cols)?.flatten_all()?.to_vec1()?;
                for co in 0..cg {
                    for tap in 0..k {
                        for ci in 0..cg {
                            dw[((g * cg + co) * cg + ci) * k + tap] =
                                dwg[co * k * cg + tap * cg + ci];
                        }
                    }
                }
            }
            Some(Tensor::from_vec(dw, w.shape(), dev)?)
        } else {
            None
        };
        let db = if b.track_op() {
            Some(grad.reshape((d.batch * t, h))?.sum(0)?)
        } else {
            None
        };
        Ok((dx, dw, db))
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

    /// Attention as the composed candle ops compute it (scaled queries, batched products).
    fn composed_attention(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        heads: usize,
        mask: Option<&Tensor>,
    ) -> Tensor {
        let (b, t, h) = q.dims3().unwrap();
        let split = |x: &Tensor| {
            x.reshape((b, t, heads, h / heads))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let scale = ((h / heads) as f64).powf(-0.5);
        let qh = split(&(q * scale).unwrap());
        let mut s = qh.matmul(&split(k).t().unwrap()).unwrap();
        if let Some(m) = mask {
            s = s.broadcast_add(&m.reshape((b, 1, 1, t)).unwrap()).unwrap();
        }
        let p = candle_nn::ops::softmax(&s, D::Minus1).unwrap();
        p.matmul(&split(v))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((b, t, h))
            .unwrap()
    }

    #[test]
    fn attention_matches_the_composed_ops_with_and_without_a_key_mask() {
        // 53 frames: one full query block and a partial one; 3 heads of width 8.
        let (b, t, h, heads) = (2, 53, 24, 3);
        let q = Var::from_tensor(&data(&[b, t, h], 11)).unwrap();
        let k = Var::from_tensor(&data(&[b, t, h], 12)).unwrap();
        let v = Var::from_tensor(&data(&[b, t, h], 13)).unwrap();
        let mut mask = vec![0f32; b * t];
        mask[t + 40..].fill(f32::MIN);
        let mask_t = Tensor::from_vec(mask.clone(), (b, t), &Device::Cpu).unwrap();
        for key_mask in [None, Some(mask)] {
            let m = key_mask.as_ref().map(|_| &mask_t);
            check(
                &[q.clone(), k.clone(), v.clone()],
                || attention(&q, &k, &v, heads, key_mask.clone()).unwrap(),
                || composed_attention(&q, &k, &v, heads, m),
                2e-5,
                "attention",
            );
        }
        // Frozen keys: no gradient is computed for them, the others still are.
        let kf = data(&[b, t, h], 12);
        let y = attention(&q, &kf, &v, heads, None).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert!(grads.get(&kf).is_none());
        assert!(grads.get(q.as_tensor()).is_some() && grads.get(v.as_tensor()).is_some());
    }

    #[test]
    fn lora_update_matches_the_composed_ops_with_and_without_dropout() {
        let x = Var::from_tensor(&data(&[2, 37, 19], 21)).unwrap();
        let a = Var::from_tensor(&data(&[4, 19], 22)).unwrap();
        let b = Var::from_tensor(&data(&[11, 4], 23)).unwrap();
        let mask: Vec<f32> = (0..2 * 37 * 19)
            .map(|i| if i % 7 == 3 { 0.0 } else { 1.0 / 0.9 })
            .collect();
        let mask_t = Tensor::from_vec(mask.clone(), (2, 37, 19), &Device::Cpu).unwrap();
        for m in [None, Some(mask)] {
            let composed = || {
                let d = match &m {
                    Some(_) => (x.as_tensor() * &mask_t).unwrap(),
                    None => x.as_tensor().clone(),
                };
                let low = d.broadcast_matmul(&a.t().unwrap()).unwrap();
                (low.broadcast_matmul(&b.t().unwrap()).unwrap() * 2.0).unwrap()
            };
            check(
                &[x.clone(), a.clone(), b.clone()],
                || lora_update(&x, &a, &b, 2.0, m.clone()).unwrap(),
                composed,
                2e-5,
                "lora",
            );
        }
        // A frozen input gets no gradient; A and B still do.
        let xf = data(&[2, 37, 19], 21);
        let grads = lora_update(&xf, &a, &b, 2.0, None)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(grads.get(&xf).is_none());
        assert!(grads.get(a.as_tensor()).is_some() && grads.get(b.as_tensor()).is_some());
    }

    #[test]
    fn in_place_adamw_and_clipping_match_candle_ops() {
        // More values than one parallel chunk holds.
        let n = 3 * ELEMS + 17;
        let g = data(&[n], 1);
        let ss = sum_of_squares(&g).unwrap();
        let want = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64;
        assert!((ss - want).abs() <= 1e-5 * want, "{ss} vs {want}");
        let scaled = g.copy().unwrap();
        assert!(scale_in_place(&scaled, 0.25).unwrap());
        assert!(max_diff(&scaled, &(&g * 0.25).unwrap()) == 0.0);

        let theta = data(&[n], 2);
        let (m, v) = (data(&[n], 3), data(&[n], 4).sqr().unwrap());
        let (beta1, beta2, lr, wd, eps) = (0.9, 0.999, 1e-2, 0.01, 1e-8);
        let (sm, sv) = (1.0 / (1.0 - beta1 * beta1), 1.0 / (1.0 - beta2 * beta2));
        // The composed update (as candle's ops compute it).
        let next_m = ((&m * beta1).unwrap() + (&g * (1.0 - beta1)).unwrap()).unwrap();
        let next_v = ((&v * beta2).unwrap() + (g.sqr().unwrap() * (1.0 - beta2)).unwrap()).unwrap();
        let adjusted = ((&next_m * sm).unwrap()
            / ((&next_v * sv).unwrap().sqrt().unwrap() + eps).unwrap())
        .unwrap();
        let next_theta = ((&theta * (1.0 - lr * wd)).unwrap() - (adjusted * lr).unwrap()).unwrap();
        let (t2, m2, v2) = (theta.copy().unwrap(), m.copy().unwrap(), v.copy().unwrap());
        let step = AdamStep {
            lr,
            weight_decay: wd,
            beta1,
            beta2,
            eps,
            scale_m: sm,
            scale_v: sv,
        };
        assert!(adamw_in_place(&t2, &m2, &v2, &g, &step).unwrap());
        assert!(max_diff(&m2, &next_m) <= 1e-7);
        assert!(max_diff(&v2, &next_v) <= 1e-7);
        assert!(max_diff(&t2, &next_theta) <= 1e-6);
    }

    /// y, dx, dW, db of a grouped same conv by the textbook sums (f64), for the loss Σ y ⊙ r.
    #[allow(clippy::type_complexity)]
    fn conv_reference(
        x: &[f32],
        w: &[f32],
        bias: &[f32],
        r: &[f32],
        (b, t, h, k, groups): (usize, usize, usize, usize, usize),
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let (cg, pad) = (h / groups, k / 2);
        let mut y = vec![0f64; b * t * h];
        let (mut dx, mut dw, mut db) = (vec![0f64; x.len()], vec![0f64; w.len()], vec![0f64; h]);
        for item in 0..b {
            for i in 0..t {
                for o in 0..h {
                    let g = o / cg;
                    let ro = r[(item * t + i) * h + o] as f64;
                    let mut acc = bias[o] as f64;
                    db[o] += ro;
                    for ci in 0..cg {
                        for tap in 0..k {
                            let j = i as i64 + tap as i64 - pad as i64;
                            if j < 0 || j >= t as i64 {
                                continue;
                            }
                            let xi = (item * t + j as usize) * h + g * cg + ci;
                            let wi = (o * cg + ci) * k + tap;
                            acc += w[wi] as f64 * x[xi] as f64;
                            dx[xi] += ro * w[wi] as f64;
                            dw[wi] += ro * x[xi] as f64;
                        }
                    }
                    y[(item * t + i) * h + o] = acc;
                }
            }
        }
        (y, dx, dw, db)
    }

    #[test]
    fn grouped_same_conv_matches_the_textbook_sums() {
        // Even and odd kernels (even: the last frame is dropped, as SamePad does), batch > 1,
        // and kernels longer than the input (a tiny model's positional conv). The fused op
        // needs AVX-512; the composed route runs everywhere.
        for (k, groups, t) in [(4, 2, 9), (5, 3, 9), (2, 1, 9), (16, 2, 3), (7, 3, 2)] {
            let (b, h) = (3, 6);
            let x = Var::from_tensor(&data(&[b, t, h], 7)).unwrap();
            let w = Var::from_tensor(&data(&[h, h / groups, k], 8)).unwrap();
            let bias = Var::from_tensor(&data(&[h], 9)).unwrap();
            // The fused op, and candle's composed conv (the plain route of the encoder).
            let composed = || {
                let xt = x.transpose(1, 2).unwrap().contiguous().unwrap();
                conv1d_per_item(&xt, &w, k / 2, 1, groups)
                    .unwrap()
                    .broadcast_add(&bias.reshape((1, (), 1)).unwrap())
                    .unwrap()
                    .narrow(2, 0, t)
                    .unwrap()
                    .transpose(1, 2)
                    .unwrap()
            };
            let mut routes = vec![("composed", composed())];
            if crate::gemm::has_avx512() {
                routes.push(("fused", same_conv(&x, &w, &bias, groups).unwrap()));
            }
            for (route, y) in routes {
                let r = data(y.dims(), 99);
                let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
                let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let want = conv_reference(
                    &flat(&x),
                    &flat(&w),
                    &flat(&bias),
                    &flat(&r),
                    (b, t, h, k, groups),
                );
                let got = [
                    flat(&y),
                    flat(grads.get(&x).unwrap()),
                    flat(grads.get(&w).unwrap()),
                    flat(grads.get(&bias).unwrap()),
                ];
                let want = [want.0, want.1, want.2, want.3];
                for (what, (g, w)) in ["y", "dx", "dw", "db"].iter().zip(got.iter().zip(&want)) {
                    assert_eq!(g.len(), w.len(), "{route} {what}");
                    for (a, b) in g.iter().zip(w) {
                        assert!(
                            (*a as f64 - b).abs() <= 1e-4,
                            "{route}, k {k}, t {t}, {what}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    /// The feature encoder's strided "valid" convs through [`conv1d_per_item`]: output, input
    /// and kernel gradients against the textbook sums (f64), batch > 1.
    #[test]
    fn strided_conv_per_item_matches_the_textbook_sums() {
        for (b, c_in, c_out, l, k, stride) in [
            (3, 2, 3, 23, 5, 2),
            (2, 1, 4, 40, 10, 5),
            (4, 3, 2, 7, 3, 1),
        ] {
            let x = Var::from_tensor(&data(&[b, c_in, l], 1)).unwrap();
            let w = Var::from_tensor(&data(&[c_out, c_in, k], 2)).unwrap();
            let y = conv1d_per_item(&x, &w, 0, stride, 1).unwrap();
            let l_out = (l - k) / stride + 1;
            assert_eq!(y.dims(), &[b, c_out, l_out]);
            let r = data(y.dims(), 3);
            let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let (xs, ws, rs) = (flat(&x), flat(&w), flat(&r));
            let mut want_y = vec![0f64; b * c_out * l_out];
            let mut want_dx = vec![0f64; xs.len()];
            let mut want_dw = vec![0f64; ws.len()];
            for item in 0..b {
                for o in 0..c_out {
                    for i in 0..l_out {
                        let at = (item * c_out + o) * l_out + i;
                        for ci in 0..c_in {
                            for j in 0..k {
                                let xi = (item * c_in + ci) * l + i * stride + j;
                                let wi = (o * c_in + ci) * k + j;
                                want_y[at] += ws[wi] as f64 * xs[xi] as f64;
                                want_dx[xi] += rs[at] as f64 * ws[wi] as f64;
                                want_dw[wi] += rs[at] as f64 * xs[xi] as f64;
                            }
                        }
                    }
                }
            }
            let got = [
                flat(&y),
                flat(grads.get(&x).unwrap()),
                flat(grads.get(&w).unwrap()),
            ];
            for (what, (g, want)) in ["y", "dx", "dw"]
                .iter()
                .zip(got.iter().zip([&want_y, &want_dx, &want_dw]))
            {
                assert_eq!(g.len(), want.len(), "{what}");
                for (a, e) in g.iter().zip(want) {
                    assert!(
                        (*a as f64 - e).abs() <= 1e-4,
                        "k {k}, stride {stride}, {what}: {a} vs {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn plain_ops_switch_the_fused_ops_off_on_this_thread_only_while_set() {
        let g = data(&[64], 5);
        assert!(!plain_ops());
        with_plain_ops(true, || {
            assert!(plain_ops());
            assert!(!scale_in_place(&g.copy().unwrap(), 0.5).unwrap());
            // Nested and restored.
            with_plain_ops(false, || {
                assert!(!plain_ops() && scale_in_place(&g.copy().unwrap(), 0.5).unwrap())
            });
            assert!(plain_ops());
            // Another thread keeps the fused ops.
            std::thread::spawn(|| assert!(!plain_ops())).join().unwrap();
        });
        assert!(!plain_ops());
    }
}
