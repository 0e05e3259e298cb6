//! The windowed RMS the energy gate reads (`rms < energy_gate` → unvoiced).
//!
//! The reference sums `(x·w)²` over the frame in one running sum, a chain of a few thousand
//! dependent additions per 60 ms frame. The RMS is only ever compared with the gate, so it is
//! summed here in eight independent partial sums, and the in-order sum is taken only when the
//! two sums could fall on different sides of the gate: both are within `γ_{n−1} · Σ` of the
//! exact sum of the same non-negative terms (`γ_k = k·u/(1 − k·u)`, `u = 2⁻⁵³`), so when the
//! gate lies outside `fast ± 8·n·u·fast` (and `√(·/n)` is monotone), every RMS in that interval,
//! the in-order one included, decides the same. Every gating decision is therefore the one the
//! in-order sum gives.

/// RMS `√(Σ (x·w)² / frame_len)` of the windowed frame, for comparison with `gate` (`None`: no
/// gate, the fast sum). With a gate, `result < gate` equals `in-order RMS < gate`.
pub(crate) fn gated_rms(frame: &[f64], window: &[f64], frame_len: usize, gate: Option<f64>) -> f64 {
    let n = frame_len as f64;
    let rms = |e: f64| (e / n).sqrt();
    let fast = energy_lanes(frame, window);
    let Some(gate) = gate else {
        return rms(fast);
    };
    let terms = frame.len().min(window.len()) as f64;
    let bound = fast * (8.0 * terms * (f64::EPSILON / 2.0)) + f64::MIN_POSITIVE;
    let above = !(rms((fast - bound).max(0.0)) < gate);
    let below = rms(fast + bound) < gate;
    if above || below {
        rms(fast)
    } else {
        rms(energy_in_order(frame, window))
    }
}

/// `Σ (x·w)²` in increasing order from the empty sum (the reference).
fn energy_in_order(frame: &[f64], window: &[f64]) -> f64 {
    frame
        .iter()
        .zip(window)
        .map(|(x, w)| (x * w).powi(2))
        .sum::<f64>()
}

/// `Σ (x·w)²` in eight interleaved partial sums (vector lanes).
fn energy_lanes(frame: &[f64], window: &[f64]) -> f64 {
    emobridge_audio::dispatch_avx2!(energy_lanes_avx2, energy_lanes_body, (frame, window))
}

#[inline(always)]
fn energy_lanes_body(frame: &[f64], window: &[f64]) -> f64 {
    let m = frame.len().min(window.len());
    let (x, w) = (&frame[..m], &window[..m]);
    let mut acc = [0.0f64; 8];
    let (cx, cw) = (x.chunks_exact(8), w.chunks_exact(8));
    let (rx, rw) = (cx.remainder(), cw.remainder());
    for (a, b) in cx.zip(cw) {
        for l in 0..8 {
            let p = a[l] * b[l];
            acc[l] += p * p;
        }
    }
    for (a, b) in rx.iter().zip(rw) {
        let p = a * b;
        acc[0] += p * p;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn energy_lanes_avx2(frame: &[f64], window: &[f64]) -> f64 {
    energy_lanes_body(frame, window)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, scale: f64) -> Vec<f64> {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * scale
            })
            .collect()
    }

    /// Gates placed at, just around and far from the in-order RMS: the decision is always the
    /// in-order one, and the in-order RMS itself is returned where the sums could disagree.
    #[test]
    fn every_gating_decision_is_the_in_order_one() {
        for (n, scale) in [
            (2646usize, 0.01),
            (960, 1e-3),
            (7, 1.0),
            (0, 1.0),
            (1323, 1e-160),
        ] {
            let (x, w) = (data(n, scale), data(n + 3, 1.0));
            let exact = (energy_in_order(&x, &w) / n.max(1) as f64).sqrt();
            let mut gates = vec![0.0, f64::MIN_POSITIVE, 1e-3, 1.0, f64::INFINITY];
            for k in -40i64..=40 {
                gates.push(f64::from_bits((exact.to_bits() as i64 + k).max(0) as u64));
            }
            for g in gates {
                let got = gated_rms(&x, &w, n.max(1), Some(g));
                assert_eq!(got < g, exact < g, "n {n} gate {g:e} rms {exact:e}");
                if exact > 0.0 && (g - exact).abs() <= 1e-9 * exact {
                    assert_eq!(got.to_bits(), exact.to_bits(), "n {n} gate {g:e}");
                }
            }
            let fast = gated_rms(&x, &w, n.max(1), None);
            assert!(
                (fast - exact).abs() <= 1e-12 * exact.max(f64::MIN_POSITIVE),
                "{fast} {exact}"
            );
        }
    }

    #[test]
    fn non_finite_frames_decide_as_the_in_order_sum() {
        let (mut x, w) = (data(100, 1.0), data(100, 1.0));
        x[17] = f64::NAN;
        let got = gated_rms(&x, &w, 100, Some(1e-3));
        assert!(!(got < 1e-3));
        x[17] = f64::INFINITY;
        let got = gated_rms(&x, &w, 100, Some(1e-3));
        assert!(!(got < 1e-3));
    }
}
