//! The streaming ComParE path (`CompareStream`, blocks of any size) against the whole-signal
//! path (`compare::lld_with_deltas`) on a three-minute input: bit-identical rows (65 LLDs and
//! 65 deltas) and frame times, with the sample buffer and the raw frames held bounded by the
//! analysis windows and the batch size. Blocks of one second take the parallel candidate path,
//! blocks of 1–333 samples the one-thread path; the windowed summary streams too.

mod common;

use common::{on_pool, Noise};

use emobridge_acoustic::compare::{self, CompareStream, WindowConfig, WindowSummariser};
use emobridge_acoustic::{AcousticError, FeatureFrames};

/// Speech-like synthetic audio: a voiced tone with a gliding F0 and harmonics for 0.7 s of
/// every second, amplitude-modulated, a noise burst every 4 s, and a little noise throughout.
fn speech_like(rate: u32, seconds: f64) -> Vec<f32> {
    let n = (seconds * rate as f64) as usize;
    let mut noise_source = Noise::new();
    let tau = 2.0 * std::f64::consts::PI;
    let mut phase = 0.0f64;
    (0..n)
        .map(|i| {
            let t = i as f64 / rate as f64;
            let noise = noise_source.next_centred();
            let f0 = 120.0 + 50.0 * (tau * 0.25 * t).sin() + 10.0 * (tau * 2.3 * t).sin();
            phase += tau * f0 / rate as f64;
            let env = 0.6 + 0.4 * (tau * 3.0 * t).sin();
            let mut v = 0.0;
            if (t % 1.0) < 0.7 {
                for h in 1..=10 {
                    v += (0.2 / h as f64) * (phase * h as f64).sin();
                }
            }
            let burst = if (t % 4.0) > 3.8 { 0.2 * noise } else { 0.0 };
            (env * v + burst + 0.004 * noise) as f32
        })
        .collect()
}

/// Streams `x` in blocks cycling through `sizes`; returns the rows and the largest sample and
/// frame buffers seen.
fn stream(x: &[f32], rate: u32, sizes: &[usize]) -> (FeatureFrames, usize, usize) {
    let mut s = CompareStream::new(rate).unwrap();
    let mut out = FeatureFrames::default();
    let mut take = |t: f64, row: &[f32]| {
        out.frame_times.push(t);
        out.values.push(row.to_vec());
    };
    let (mut at, mut k, mut max_samples, mut max_frames) = (0usize, 0usize, 0usize, 0usize);
    while at < x.len() {
        let end = (at + sizes[k % sizes.len()]).min(x.len());
        s.push(&x[at..end], &mut take).unwrap();
        max_samples = max_samples.max(s.buffered_samples());
        max_frames = max_frames.max(s.buffered_frames());
        at = end;
        k += 1;
    }
    let rows = s.finish(&mut take).unwrap();
    assert_eq!(rows, out.values.len());
    (out, max_samples, max_frames)
}

fn assert_bits_equal(a: &FeatureFrames, b: &FeatureFrames) {
    assert_eq!(a.len(), b.len());
    assert_eq!(a.frame_times, b.frame_times);
    for (r, (x, y)) in a.values.iter().zip(&b.values).enumerate() {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        assert_eq!(bits(x), bits(y), "row {r}");
    }
}

#[test]
fn streaming_equals_the_whole_signal_on_three_minutes() {
    let rate = 16_000;
    let x = speech_like(rate, 180.0);
    let whole = compare::lld_with_deltas(&x, rate).unwrap();
    assert_eq!(whole.len(), (x.len() - 960) / 160 + 2);

    // one-second blocks on two threads: the parallel candidate path
    let (big, max_samples, max_frames) = on_pool(2, || stream(&x, rate, &[16_000]));
    assert_bits_equal(&whole, &big);
    // memory: about the Viterbi delay plus a frame and one block of samples; the raw frames of
    // one batch plus the smoother's delay, not the signal
    assert!(max_samples < 16_000 + 2 * 16_000, "{max_samples} samples");
    assert!(max_frames < 2 * compare::BATCH_ROWS, "{max_frames} frames");

    // irregular small blocks on one thread
    let (small, _, _) = on_pool(1, || {
        stream(&x, rate, &[1, 7, 333, 160, 4096, 65_537, 12_345])
    });
    assert_bits_equal(&whole, &small);

    // the signal is voiced with pauses: F0 and its deltas are real measurements
    let f0: Vec<f32> = whole.column("F0final_sma").unwrap();
    assert!(f0.iter().filter(|&&v| v > 60.0).count() > whole.len() / 3);
    assert!(f0.iter().filter(|&&v| v == 0.0).count() > whole.len() / 10);

    // windows: streamed row by row equal the whole contour's summary
    let cfg = WindowConfig::default();
    let expected = compare::summarise_windows(&whole, &cfg).unwrap();
    let mut w = WindowSummariser::new(&cfg).unwrap();
    let mut got = FeatureFrames::default();
    let mut take = |t: f64, v: &[f32]| {
        got.frame_times.push(t);
        got.values.push(v.to_vec());
    };
    for (&t, v) in big.frame_times.iter().zip(&big.values) {
        w.push(t, v, &mut take);
    }
    w.finish(&mut take).unwrap();
    assert_bits_equal(&expected, &got);
    assert_eq!(got.len(), 360);
}

#[test]
fn short_inputs_and_bad_samples() {
    let rate = 16_000;
    let x = speech_like(rate, 2.0);
    // shorter than a few batches and than the delta context: equal too
    for n in [959, 960, 1_000, 1_200, 2_000, 16_000, 32_000] {
        let whole = compare::lld_with_deltas(&x[..n], rate).unwrap();
        let (s, _, _) = stream(&x[..n], rate, &[100]);
        assert_bits_equal(&whole, &s);
    }
    let mut y = x.clone();
    y[9_000] = f32::NAN;
    let mut s = CompareStream::new(rate).unwrap();
    let mut sink = |_: f64, _: &[f32]| {};
    s.push(&y[..8_000], &mut sink).unwrap();
    let e = s.push(&y[8_000..], &mut sink).unwrap_err();
    assert!(
        matches!(e, AcousticError::NonFinite { index: 9_000 }),
        "{e}"
    );
    assert!(matches!(
        s.finish(&mut sink),
        Err(AcousticError::NonFinite { index: 9_000 })
    ));
    assert!(CompareStream::new(500).is_err());
}
