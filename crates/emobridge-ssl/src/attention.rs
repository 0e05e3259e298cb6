//! Scaled dot-product attention over all heads on the CPU, for the packed-kernel path.
//!
//! candle's route (split heads into copies, batched matmul, separate bias, mask and softmax
//! passes) took about 13 % of a base model's time on 10 s of audio (perf profile). Here every
//! (item, head) pair is one task: the head's keys and values are packed once, scores for all
//! queries come from the packed f32 kernel, and scaling, WavLM's gated relative bias, the padding
//! mask and the softmax happen in one pass over each score row while it is in cache. Products
//! stay f32 in both precisions.

use rayon::prelude::*;

use crate::gemm::{exp_nonpositive, has_avx512, GemmPrecision, PackedWeight};

/// The projected inputs of one attention call; all row-major.
pub(crate) struct AttentionInputs<'a> {
    /// Queries, keys and values [batch, frames, hidden] (heads side by side in `hidden`).
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub batch: usize,
    pub frames: usize,
    pub hidden: usize,
    pub heads: usize,
    /// Multiplies every score (head_dim^-0.5).
    pub scale: f32,
    /// Added to every score of a key: [batch, frames] (0 or a large negative number).
    pub key_mask: Option<&'a [f32]>,
    /// WavLM: gate [batch, heads, frames] (per query) times bias [heads, frames, frames].
    pub relative: Option<(&'a [f32], &'a [f32])>,
}

/// softmax(scale·Q·Kᵀ + gate·bias + mask)·V per head, heads concatenated: [batch, frames, hidden].
pub(crate) fn multi_head_attention(inp: &AttentionInputs) -> Vec<f32> {
    let (b, t, h, nh) = (inp.batch, inp.frames, inp.hidden, inp.heads);
    let dh = h / nh;
    assert_eq!(inp.q.len(), b * t * h, "queries");
    assert_eq!(inp.k.len(), b * t * h, "keys");
    assert_eq!(inp.v.len(), b * t * h, "values");
    let per_head: Vec<Vec<f32>> = (0..b * nh)
        .into_par_iter()
        .map(|task| one_head(inp, task / nh, task % nh, dh))
        .collect();
    let mut out = vec![0f32; b * t * h];
    for (task, ctx) in per_head.iter().enumerate() {
        let (item, head) = (task / nh, task % nh);
        for (i, row) in ctx.chunks_exact(dh).enumerate() {
            let at = (item * t + i) * h + head * dh;
            out[at..at + dh].copy_from_slice(row);
        }
    }
    out
}

/// Context vectors [frames, head_dim] of one head of one batch item.
fn one_head(inp: &AttentionInputs, item: usize, head: usize, dh: usize) -> Vec<f32> {
    let (t, h) = (inp.frames, inp.hidden);
    let base = item * t * h + head * dh;
    // Keys as W [t, dh] and values transposed as W [dh, t], so both products are A·Wᵀ.
    let mut keys = vec![0f32; t * dh];
    let mut values_t = vec![0f32; dh * t];
    for j in 0..t {
        let row = base + j * h;
        keys[j * dh..(j + 1) * dh].copy_from_slice(&inp.k[row..row + dh]);
        for (d, &x) in inp.v[row..row + dh].iter().enumerate() {
            values_t[d * t + j] = x;
        }
    }
    let keys = PackedWeight::new(&keys, t, dh, GemmPrecision::F32);
    let mut scores = keys.matmul_serial(&inp.q[base..], t, h);
    let mask = inp.key_mask.map(|m| &m[item * t..(item + 1) * t]);
    for (i, row) in scores.chunks_exact_mut(t).enumerate() {
        let relative = inp.relative.map(|(gate, bias)| {
            let g = gate[(item * inp.heads + head) * t + i];
            (g, &bias[(head * t + i) * t..(head * t + i + 1) * t])
        });
        softmax_row(row, inp.scale, relative, mask);
    }
    let values = PackedWeight::new(&values_t, dh, t, GemmPrecision::F32);
    values.matmul_serial(&scores, t, t)
}

/// In place: softmax(scale·s + g·bias + mask) of one score row.
fn softmax_row(row: &mut [f32], scale: f32, relative: Option<(f32, &[f32])>, mask: Option<&[f32]>) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU supports AVX-512F (checked just above).
        return unsafe { softmax_row_avx512(row, scale, relative, mask) };
    }
    softmax_row_portable(row, scale, relative, mask);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn softmax_row_avx512(
    row: &mut [f32],
    scale: f32,
    relative: Option<(f32, &[f32])>,
    mask: Option<&[f32]>,
) {
    softmax_row_portable(row, scale, relative, mask);
}

/// Lanes of the partial maxima and sums: reductions written so that they vectorise.
const LANES: usize = 16;

/// Each pass is a plain loop over the row (or over LANES partial results), which the compiler
/// turns into vector code.
#[inline(always)]
fn softmax_row_portable(
    row: &mut [f32],
    scale: f32,
    relative: Option<(f32, &[f32])>,
    mask: Option<&[f32]>,
) {
    for x in row.iter_mut() {
        *x *= scale;
    }
    if let Some((g, bias)) = relative {
        for (x, &bb) in row.iter_mut().zip(bias) {
            *x += g * bb;
        }
    }
    if let Some(mask) = mask {
        for (x, &m) in row.iter_mut().zip(mask) {
            *x += m;
        }
    }
    let mut maxima = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (m, &x) in maxima.iter_mut().zip(chunk) {
            *m = if x > *m { x } else { *m };
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&maxima)
        .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    for x in row.iter_mut() {
        *x = exp_nonpositive(*x - max);
    }
    let mut sums = [0f32; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (s, &x) in sums.iter_mut().zip(chunk) {
            *s += x;
        }
    }
    let sum: f32 = chunks.remainder().iter().sum::<f32>() + sums.iter().sum::<f32>();
    let inv = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::tests::data;

    /// The textbook computation in f64.
    fn reference(inp: &AttentionInputs) -> Vec<f32> {
        let (b, t, h, nh) = (inp.batch, inp.frames, inp.hidden, inp.heads);
        let dh = h / nh;
        let mut out = vec![0f32; b * t * h];
        for item in 0..b {
            for head in 0..nh {
                for i in 0..t {
                    let at = |x: &[f32], j: usize, d: usize| {
                        x[(item * t + j) * h + head * dh + d] as f64
                    };
                    let mut s: Vec<f64> = (0..t)
                        .map(|j| {
                            let mut v = (0..dh)
                                .map(|d| at(inp.q, i, d) * at(inp.k, j, d))
                                .sum::<f64>()
                                * inp.scale as f64;
                            if let Some((gate, bias)) = inp.relative {
                                v += gate[(item * nh + head) * t + i] as f64
                                    * bias[(head * t + i) * t + j] as f64;
                            }
                            if let Some(m) = inp.key_mask {
                                v += m[item * t + j] as f64;
                            }
                            v
                        })
                        .collect();
                    let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let sum: f64 = s
                        .iter_mut()
                        .map(|x| {
                            *x = (*x - max).exp();
                            *x
                        })
                        .sum();
                    for d in 0..dh {
                        let ctx: f64 = (0..t).map(|j| s[j] / sum * at(inp.v, j, d)).sum();
                        out[(item * t + i) * h + head * dh + d] = ctx as f32;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_textbook_formula_with_mask_and_relative_bias() {
        let (b, t, h, nh) = (2, 37, 24, 3);
        let q = data(b * t * h, 1);
        let k = data(b * t * h, 2);
        let v = data(b * t * h, 3);
        let gate = data(b * nh * t, 4);
        let bias = data(nh * t * t, 5);
        let mut mask = vec![0f32; b * t];
        mask[t + 30..].fill(f32::MIN);
        for (relative, key_mask) in [
            (None, None),
            (Some((&gate[..], &bias[..])), Some(&mask[..])),
        ] {
            let inp = AttentionInputs {
                q: &q,
                k: &k,
                v: &v,
                batch: b,
                frames: t,
                hidden: h,
                heads: nh,
                scale: 0.35,
                key_mask,
                relative,
            };
            let got = multi_head_attention(&inp);
            let want = reference(&inp);
            let err = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(err < 1e-6, "{err}");
        }
    }
}
