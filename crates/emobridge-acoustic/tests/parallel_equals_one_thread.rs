//! Both cores on one long file: the LLDs computed on a multi-thread rayon pool equal the
//! one-thread LLDs exactly (bit for bit), for ComParE (LLDs + deltas) and eGeMAPS (LLDs and
//! functionals), including the stateful parts (smoothing, Viterbi pitch continuity, period
//! matcher, formant root tracking, RASTA filter, spectral flux).

mod common;

use common::on_pool;

use emobridge_acoustic::{compare, egemaps, FeatureFrames};

/// A voiced tone with a gliding F0 and harmonics, pauses every second, and a little noise.
fn signal(rate: u32, seconds: f64) -> Vec<f32> {
    let n = (seconds * rate as f64) as usize;
    let tau = 2.0 * std::f64::consts::PI;
    let (mut phase, mut seed) = (0.0f64, 0x9e37_79b9_7f4a_7c15u64);
    (0..n)
        .map(|i| {
            let t = i as f64 / rate as f64;
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let noise = ((seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 0.01;
            phase += tau * (130.0 + 50.0 * (tau * 0.4 * t).sin()) / rate as f64;
            let v: f64 = if t % 1.0 < 0.75 {
                (1..=6)
                    .map(|h| (0.3 / h as f64) * (phase * h as f64).sin())
                    .sum()
            } else {
                0.0
            };
            (v + noise) as f32
        })
        .collect()
}

fn bits(f: &FeatureFrames) -> Vec<Vec<u32>> {
    f.values
        .iter()
        .map(|r| r.iter().map(|v| v.to_bits()).collect())
        .collect()
}

#[test]
fn compare_lld_on_four_threads_equals_one_thread() {
    let (rate, x) = (22_050, signal(22_050, 20.0));
    let one = on_pool(1, || compare::lld_with_deltas(&x, rate).unwrap());
    let four = on_pool(4, || compare::lld_with_deltas(&x, rate).unwrap());
    // ⌊(441 000 − 1 323)/221⌋ + 2 rows
    assert_eq!(one.len(), 1_991);
    assert_eq!(bits(&one), bits(&four));
}

#[test]
fn egemaps_on_four_threads_equals_one_thread() {
    let (rate, x) = (44_100, signal(44_100, 20.0));
    let one = on_pool(1, || egemaps::lld_and_functionals(&x, rate).unwrap());
    let four = on_pool(4, || egemaps::lld_and_functionals(&x, rate).unwrap());
    assert_eq!(bits(&one.0), bits(&four.0));
    let fb = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(fb(&one.1.values), fb(&four.1.values));
    assert!(one.1.get("F0semitoneFrom27.5Hz_sma3nz_amean").unwrap() > 20.0);
}
