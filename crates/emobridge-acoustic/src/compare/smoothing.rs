//! The ComParE contours' 3-frame moving average (`_sma`) and ±2-frame regression delta (`_de`),
//! equal bit for bit to the general [`crate::smooth::sma`] (window 3) and
//! [`crate::smooth::delta`] (half window 2): each value sums the same terms in the same order
//! from the same start, but the interior, which needs no clamping at the ends, runs as a
//! straight loop over shifted slices that vectorises (the general versions clamp every index,
//! about ten times the instructions; the stream smooths 118 columns of every row this way).

use crate::smooth;

/// `smooth::sma(x, 3)`.
pub(super) fn sma3(x: &[f32]) -> Vec<f32> {
    let n = x.len();
    if n < 3 {
        return smooth::sma(x, 3);
    }
    let mut out = vec![0.0f32; n];
    out[0] = mean3(x[0], x[0], x[1]);
    let (a, b, c) = (&x[..n - 2], &x[1..n - 1], &x[2..]);
    for (i, o) in out[1..n - 1].iter_mut().enumerate() {
        *o = mean3(a[i], b[i], c[i]);
    }
    out[n - 1] = mean3(x[n - 2], x[n - 1], x[n - 1]);
    out
}

/// `(a + b + c) / 3` summed as `smooth::sma` sums a window (an `f64` iterator sum, in order).
#[inline(always)]
fn mean3(a: f32, b: f32, c: f32) -> f32 {
    let sum: f64 = [a as f64, b as f64, c as f64].into_iter().sum();
    (sum / 3.0) as f32
}

/// `smooth::delta(x, 2)`.
pub(super) fn delta2(x: &[f32]) -> Vec<f32> {
    let n = x.len();
    if n < 5 {
        return smooth::delta(x, 2);
    }
    let at = |i: isize| x[i.clamp(0, n as isize - 1) as usize];
    let clamped = |t: usize| {
        let t = t as isize;
        regression2(at(t - 2), at(t - 1), at(t + 1), at(t + 2))
    };
    let mut out = vec![0.0f32; n];
    for t in [0, 1, n - 2, n - 1] {
        out[t] = clamped(t);
    }
    let (m2, m1) = (&x[..n - 4], &x[1..n - 3]);
    let (p1, p2) = (&x[3..n - 1], &x[4..]);
    for (i, o) in out[2..n - 2].iter_mut().enumerate() {
        *o = regression2(m2[i], m1[i], p1[i], p2[i]);
    }
    out
}

/// `Σ_k k (x_{t+k} − x_{t−k}) / (2 Σ_k k²)` for k = 1, 2, as `smooth::delta` computes it.
#[inline(always)]
fn regression2(m2: f32, m1: f32, p1: f32, p2: f32) -> f32 {
    let num: f64 = [1.0 * (p1 as f64 - m1 as f64), 2.0 * (p2 as f64 - m2 as f64)]
        .into_iter()
        .sum();
    (num / 10.0) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values with zeros of both signs, repeats and a wide range of magnitudes.
    fn signal(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                match (s >> 60) % 8 {
                    0 => 0.0,
                    1 => -0.0,
                    2 => 1e-30,
                    _ => ((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5) as f32 * 1e3,
                }
            })
            .collect()
    }

    #[test]
    fn equal_to_the_general_smoother_and_delta_bit_for_bit() {
        for n in (0..12).chain([100, 1001]) {
            for seed in 0..20 {
                let x = signal(n, seed);
                let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
                assert_eq!(bits(sma3(&x)), bits(smooth::sma(&x, 3)), "sma n={n}");
                assert_eq!(bits(delta2(&x)), bits(smooth::delta(&x, 2)), "delta n={n}");
            }
        }
        let zeros = [-0.0f32; 7];
        assert_eq!(
            sma3(&zeros).iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            smooth::sma(&zeros, 3)
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        );
    }
}
