//! Scaled dot-product attention over all heads on the CPU, for the packed-kernel path.
//!
//! candle's route (split heads into copies, batched matmul, separate bias, mask and softmax
//! passes) took about 13 % of a base model's time on 10 s of audio (perf profile). Here every
//! head's keys and values are packed once, then every block of queries of a head is one task:
//! its scores come from the packed kernel, scaling, WavLM's gated relative bias, the padding mask
//! and the softmax happen in one pass over each score row, and the probabilities meet the values
//! while the block is still in cache. The products run in the encoder's precision.

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

/// Queries per task: a block's score rows (48 × 1,499 f32 = 288 KB at 30 s) stay in the core's
/// L2 cache from the Q·Kᵀ product through the softmax to the P·V product.
const QUERY_BLOCK: usize = 48;

/// softmax(scale·Q·Kᵀ + gate·bias + mask)·V per head, heads concatenated: [batch, frames, hidden].
///
/// Each head's keys and values are packed once; then every (item, head, block of
/// [`QUERY_BLOCK`] queries) is one task, so that the score block stays in cache and the threads
/// share the work evenly at any length. `precision` is that of both products (bf16: queries,
/// keys, probabilities and values rounded to bf16, f32 accumulation; scores and softmax in f32).
pub(crate) fn multi_head_attention(inp: &AttentionInputs, precision: GemmPrecision) -> Vec<f32> {
    let (b, t, h, nh) = (inp.batch, inp.frames, inp.hidden, inp.heads);
    let dh = h / nh;
    assert_eq!(inp.q.len(), b * t * h, "queries");
    assert_eq!(inp.k.len(), b * t * h, "keys");
    assert_eq!(inp.v.len(), b * t * h, "values");
    let packed: Vec<(PackedWeight, PackedWeight)> = (0..b * nh)
        .into_par_iter()
        .map(|task| pack_head(inp, task / nh, task % nh, dh, precision))
        .collect();
    let blocks = t.div_ceil(QUERY_BLOCK);
    let contexts: Vec<Vec<f32>> = (0..b * nh * blocks)
        .into_par_iter()
        .map(|task| {
            let (pair, block) = (task / blocks, task % blocks);
            let (keys, values) = &packed[pair];
            query_block(
                inp,
                pair / nh,
                pair % nh,
                dh,
                block * QUERY_BLOCK,
                keys,
                values,
            )
        })
        .collect();
    let mut out = vec![0f32; b * t * h];
    for (task, ctx) in contexts.iter().enumerate() {
        let (pair, block) = (task / blocks, task % blocks);
        let (item, head) = (pair / nh, pair % nh);
        for (r, row) in ctx.chunks_exact(dh).enumerate() {
            let at = (item * t + block * QUERY_BLOCK + r) * h + head * dh;
            out[at..at + dh].copy_from_slice(row);
        }
    }
    out
}

/// One head's keys as W [t, dh] and values transposed as W [dh, t], packed, so that both
/// products are A·Wᵀ.
fn pack_head(
    inp: &AttentionInputs,
    item: usize,
    head: usize,
    dh: usize,
    precision: GemmPrecision,
) -> (PackedWeight, PackedWeight) {
    let (t, h) = (inp.frames, inp.hidden);
    let base = item * t * h + head * dh;
    let mut keys = vec![0f32; t * dh];
    let mut values_t = vec![0f32; dh * t];
    for j in 0..t {
        let row = base + j * h;
        keys[j * dh..(j + 1) * dh].copy_from_slice(&inp.k[row..row + dh]);
        for (d, &x) in inp.v[row..row + dh].iter().enumerate() {
            values_t[d * t + j] = x;
        }
    }
    (
        PackedWeight::new_serial(&keys, t, dh, precision),
        PackedWeight::new_serial(&values_t, dh, t, precision),
    )
}

/// Context vectors [rows, head_dim] of the queries `first..first + QUERY_BLOCK` (fewer at the
/// end) of one head of one batch item.
fn query_block(
    inp: &AttentionInputs,
    item: usize,
    head: usize,
    dh: usize,
    first: usize,
    keys: &PackedWeight,
    values: &PackedWeight,
) -> Vec<f32> {
    let (t, h) = (inp.frames, inp.hidden);
    let rows = QUERY_BLOCK.min(t - first);
    let base = (item * t + first) * h + head * dh;
    let mut scores = keys.matmul_serial(&inp.q[base..], rows, h);
    let mask = inp.key_mask.map(|m| &m[item * t..(item + 1) * t]);
    for (r, row) in scores.chunks_exact_mut(t).enumerate() {
        let i = first + r;
        let relative = inp.relative.map(|(gate, bias)| {
            let g = gate[(item * inp.heads + head) * t + i];
            (g, &bias[(head * t + i) * t..(head * t + i + 1) * t])
        });
        softmax_row(row, inp.scale, relative, mask);
    }
    values.matmul_serial(&scores, rows, t)
}

/// In place: softmax(scale·s + g·bias + mask) of one score row.
pub(crate) fn softmax_row(
    row: &mut [f32],
    scale: f32,
    relative: Option<(f32, &[f32])>,
    mask: Option<&[f32]>,
) {
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
        // 101 frames: two full query blocks and a partial one.
        let (b, t, h, nh) = (2, 101, 24, 3);
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
            let want = reference(&inp);
            let err = |got: Vec<f32>| {
                got.iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max)
            };
            let f32_err = err(multi_head_attention(&inp, GemmPrecision::F32));
            assert!(f32_err < 1e-6, "f32: {f32_err}");
            // bf16 inputs to both products (relative rounding 2^-9); values are within ±0.5.
            let bf16_err = err(multi_head_attention(&inp, GemmPrecision::Bf16));
            assert!(bf16_err < 1e-2, "bf16: {bf16_err}");
        }
    }
}
