//! The streaming eGeMAPS path (`EgemapsStream`, blocks of any size) against the whole-signal
//! path on a long input: bit-identical LLDs and functionals, and a sample buffer bounded by the
//! analysis windows. The whole-signal side feeds one-second blocks, whose 60 ms candidates are
//! computed on the thread pool; blocks of 1, 7, 160 and 333 samples take the one-thread path, so
//! the test also checks that the parallel split equals the sequential order exactly.

mod common;

use common::Noise;

use emobridge_acoustic::egemaps::{self, EgemapsStream};

/// Five minutes of speech-like synthetic audio at `rate`: a voiced tone with a gliding F0 and
/// eight harmonics for 0.7 s of every second (pauses between), amplitude-modulated, plus a
/// little deterministic noise.
fn speech_like(rate: u32, seconds: f64) -> Vec<f32> {
    let n = (seconds * rate as f64) as usize;
    let mut noise_source = Noise::new();
    let tau = 2.0 * std::f64::consts::PI;
    let mut phase = 0.0f64;
    (0..n)
        .map(|i| {
            let t = i as f64 / rate as f64;
            let noise = noise_source.next_centred() * 0.004;
            let f0 = 110.0 + 40.0 * (tau * 0.3 * t).sin() + 15.0 * (tau * 2.1 * t).sin();
            phase += tau * f0 / rate as f64;
            let voiced = (t % 1.0) < 0.7;
            let env = 0.6 + 0.4 * (tau * 3.0 * t).sin();
            let mut v = 0.0;
            if voiced {
                for h in 1..=8 {
                    v += (0.25 / h as f64) * (phase * h as f64).sin();
                }
            }
            (env * v + noise) as f32
        })
        .collect()
}

#[test]
fn streaming_equals_the_whole_signal_on_five_minutes() {
    let rate = 16_000;
    let x = speech_like(rate, 300.0);
    let (lld, func) = egemaps::lld_and_functionals(&x, rate).unwrap();

    // irregular block sizes, from single samples to several seconds
    let sizes = [1usize, 7, 333, 4096, 160, 65_537, 12_345];
    let mut stream = EgemapsStream::new(rate).unwrap();
    let (mut at, mut k, mut max_buffered) = (0usize, 0usize, 0usize);
    while at < x.len() {
        let end = (at + sizes[k % sizes.len()]).min(x.len());
        stream.push(&x[at..end]);
        max_buffered = max_buffered.max(stream.buffered_samples());
        at = end;
        k += 1;
    }
    let (lld_s, func_s) = stream.finish_lld_and_functionals().unwrap();

    assert_eq!(lld_s.len(), lld.len());
    assert_eq!(lld_s.frame_times, lld.frame_times);
    for (r, (a, b)) in lld.values.iter().zip(&lld_s.values).enumerate() {
        let (a, b): (Vec<u32>, Vec<u32>) = (
            a.iter().map(|v| v.to_bits()).collect(),
            b.iter().map(|v| v.to_bits()).collect(),
        );
        assert_eq!(a, b, "LLD row {r}");
    }
    assert_eq!(func_s.names, func.names);
    for (name, (a, b)) in func
        .names
        .iter()
        .zip(func.values.iter().zip(&func_s.values))
    {
        assert_eq!(a.to_bits(), b.to_bits(), "{name}: {a} vs {b}");
    }
    // the signal is voiced and has pauses: the functionals are real measurements
    assert!(func.get("F0semitoneFrom27.5Hz_sma3nz_amean").unwrap() > 20.0);
    assert!(func.get("VoicedSegmentsPerSec").unwrap() > 0.5);
    // memory: the sample buffer holds about the Viterbi delay plus a frame, not the signal
    // (largest block 65 537 samples; 2 s = 32 000 samples of analysis context at most)
    assert!(
        max_buffered < 65_537 + 2 * 32_000,
        "buffered {max_buffered} samples"
    );
}

#[test]
fn streaming_reports_non_finite_samples_and_short_inputs() {
    let rate = 16_000;
    let mut x = speech_like(rate, 1.0);
    x[9_000] = f32::NAN;
    let mut s = EgemapsStream::new(rate).unwrap();
    s.push(&x[..8_000]);
    s.push(&x[8_000..]);
    let e = s.finish_functionals().unwrap_err();
    assert!(
        matches!(
            e,
            emobridge_acoustic::AcousticError::NonFinite { index: 9_000 }
        ),
        "{e}"
    );

    let mut s = EgemapsStream::new(rate).unwrap();
    s.push(&[0.1; 500]);
    assert!(matches!(
        s.finish_functionals(),
        Err(emobridge_acoustic::AcousticError::TooShort { .. })
    ));
    assert!(EgemapsStream::new(500).is_err());
}
