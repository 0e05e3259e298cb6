//! `stream_mono` delivers, block by block, exactly the samples `load` returns as mono.

use emobridge_audio::wav::{write_wav, WavFormat};
use emobridge_audio::{load, stream_mono, stream_mono_at, AudioError, DecodeOptions, IntScaling};

fn stereo(n: usize) -> Vec<Vec<f32>> {
    let l = (0..n).map(|i| (i as f32 * 0.013).sin() * 0.7).collect();
    let r = (0..n).map(|i| (i as f32 * 0.0071).cos() * 0.4).collect();
    vec![l, r]
}

#[test]
fn blocks_equal_the_loaded_mono_signal_for_every_format_and_scaling() {
    let dir = tempfile::tempdir().unwrap();
    for (k, format) in [WavFormat::Pcm16, WavFormat::Pcm24, WavFormat::Float32]
        .into_iter()
        .enumerate()
    {
        let path = dir.path().join(format!("s{k}.wav"));
        write_wav(&path, &stereo(50_001), 22_050, format).unwrap();
        for scaling in [IntScaling::PowerOfTwo, IntScaling::OpenSmile] {
            let whole = load(
                &path,
                &DecodeOptions {
                    int_scaling: scaling,
                    ..DecodeOptions::mono()
                },
            )
            .unwrap()
            .into_mono();
            let (mut got, mut blocks) = (Vec::new(), 0);
            let info = stream_mono(&path, scaling, |b, rate| {
                assert_eq!(rate, 22_050);
                got.extend_from_slice(b);
                blocks += 1;
            })
            .unwrap();
            assert!(blocks > 1, "one block: nothing was streamed");
            assert_eq!(info.frames, 50_001);
            assert_eq!(info.source_channels, 2);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&whole), "{format:?} {scaling:?}");
        }
    }
}

#[test]
fn stream_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.wav");
    assert!(matches!(
        stream_mono(&missing, IntScaling::OpenSmile, |_, _| {}),
        Err(AudioError::NotFound { .. })
    ));
    let path = dir.path().join("nan.wav");
    let mut ch = stereo(1000);
    ch[1][500] = f32::NAN;
    // hound writes the NaN as a float sample
    write_wav(&path, &ch, 16_000, WavFormat::Float32).unwrap();
    let e = stream_mono(&path, IntScaling::OpenSmile, |_, _| {}).unwrap_err();
    assert!(matches!(e, AudioError::NonFinite { first: 500, .. }), "{e}");
}

/// `stream_mono_at`: decoded, averaged and resampled block by block, the same samples, bit for
/// bit, as `load` with `mono_at` (the whole file decoded and resampled at once).
#[test]
fn resampled_blocks_equal_the_loaded_resampled_signal() {
    let dir = tempfile::tempdir().unwrap();
    for (k, (rate, target)) in [
        (44_100, 16_000),
        (48_000, 24_000),
        (16_000, 24_000),
        (16_000, 16_000),
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.path().join(format!("r{k}.wav"));
        write_wav(
            &path,
            &stereo(rate as usize * 3 + 17),
            rate,
            WavFormat::Pcm16,
        )
        .unwrap();
        let whole = load(&path, &DecodeOptions::mono_at(target))
            .unwrap()
            .into_mono();
        let (mut got, mut blocks) = (Vec::new(), 0);
        let info = stream_mono_at(&path, target, |b| {
            got.extend_from_slice(b);
            blocks += 1;
        })
        .unwrap();
        assert!(blocks > 1, "one block: nothing was streamed");
        assert_eq!(info.frames as usize, whole.len());
        assert_eq!(info.sample_rate, target);
        assert_eq!(info.source.sample_rate, rate);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&whole), "{rate} -> {target}");
    }
    let missing = dir.path().join("missing.wav");
    assert!(matches!(
        stream_mono_at(&missing, 16_000, |_| {}),
        Err(AudioError::NotFound { .. })
    ));
}
