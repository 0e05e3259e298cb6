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

    #[test]
    fn alternating_signal_crosses_almost_every_sample() {
        let x: Vec<f32> = (0..100)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        assert!((zero_crossing_rate(&x) - 98.0 / 100.0).abs() < 1e-12);
        assert!((rms_energy(&x) - 1.0).abs() < 1e-12);
    }
}
