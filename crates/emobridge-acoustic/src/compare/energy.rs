//! Time-domain descriptors: RMS energy of the raw short frame and zero-crossing rate of the raw
//! long frame.

/// Root-mean-square of a frame.
pub fn rms_energy(frame: &[f32]) -> f64 {
    if frame.is_empty() {
        return 0.0;
    }
    let sum: f64 = frame.iter().map(|&x| (x as f64) * (x as f64)).sum();
    (sum / frame.len() as f64).sqrt()
}

/// `rms_energy(frame) as f32`, bit for bit, without its chain of dependent additions: the sum
/// of squares (each exact in f64) is taken in eight partial sums, which lie within
/// `2·γ_{n−1}·Σ` of the in-order sum (`γ_k = k·u/(1 − k·u)`, `u = 2⁻⁵³`); the map from the sum
/// to the f32 RMS is monotone, so when both ends of `fast ± 8·n·u·fast` give the same f32, so
/// does the in-order sum, and otherwise the in-order sum is taken.
pub fn rms_energy_f32(frame: &[f32]) -> f32 {
    if frame.is_empty() {
        return 0.0;
    }
    let n = frame.len() as f64;
    let rms = |sum: f64| (sum / n).sqrt() as f32;
    let fast = squares_lanes(frame);
    let bound = fast * (8.0 * n * (f64::EPSILON / 2.0)) + f64::MIN_POSITIVE;
    let (lo, hi) = (rms((fast - bound).max(0.0)), rms(fast + bound));
    if lo == hi && lo.to_bits() == hi.to_bits() {
        lo
    } else {
        rms_energy(frame) as f32
    }
}

/// `Σ x²` in eight interleaved partial sums (vector lanes).
fn squares_lanes(frame: &[f32]) -> f64 {
    emobridge_audio::dispatch_avx2!(squares_lanes_avx2, squares_lanes_body, (frame))
}

#[inline(always)]
fn squares_lanes_body(frame: &[f32]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = frame.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            let v = c[l] as f64;
            acc[l] += v * v;
        }
    }
    for &x in rest {
        let v = x as f64;
        acc[0] += v * v;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn squares_lanes_avx2(frame: &[f32]) -> f64 {
    squares_lanes_body(frame)
}

/// Zero crossings per sample: a sign change between neighbours, or an exact zero between values
/// of opposite sign (or zeros), counted over the interior samples and divided by the frame length.
pub fn zero_crossing_rate(frame: &[f32]) -> f64 {
    let n = frame.len();
    if n < 3 {
        return 0.0;
    }
    // branch-free over three shifted views, so the loop vectorises
    let crossings: u32 = frame[..n - 2]
        .iter()
        .zip(&frame[1..n - 1])
        .zip(&frame[2..])
        .map(|((&a, &x), &b)| u32::from(((a * b <= 0.0) & (x == 0.0)) | (a * x < 0.0)))
        .sum();
    crossings as f64 / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The f32 RMS equals the in-order one on random frames at many scales and lengths, and on
    /// frames built so that the RMS sits on an f32 rounding boundary.
    #[test]
    fn the_f32_rms_is_the_in_order_one() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        for len in [1usize, 2, 7, 8, 9, 441, 1103, 2646] {
            for scale in [1.0f64, 1e-3, 1e-20, 1e-40] {
                for _ in 0..50 {
                    let x: Vec<f32> = (0..len).map(|_| (next() * scale) as f32).collect();
                    assert_eq!(
                        rms_energy_f32(&x).to_bits(),
                        (rms_energy(&x) as f32).to_bits(),
                        "len {len} scale {scale}"
                    );
                }
            }
        }
        // constant frames: the RMS is the value itself, an f32 (the boundary case for lo/hi)
        for v in [0.1f32, 0.3, 1.0, 3e-5, 0.0] {
            let x = vec![v; 1103];
            assert_eq!(
                rms_energy_f32(&x).to_bits(),
                (rms_energy(&x) as f32).to_bits()
            );
        }
        assert_eq!(rms_energy_f32(&[]), 0.0);
        assert!(rms_energy_f32(&[f32::NAN, 1.0]).is_nan());
    }

    #[test]
    fn alternating_signal_crosses_almost_every_sample() {
        let x: Vec<f32> = (0..100)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        assert!((zero_crossing_rate(&x) - 98.0 / 100.0).abs() < 1e-12);
        assert!((rms_energy(&x) - 1.0).abs() < 1e-12);
    }
}
