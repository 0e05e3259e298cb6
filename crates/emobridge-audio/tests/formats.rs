//! Every supported format and bit depth decodes a known signal; resampling keeps pitch, level
//! and length; bad files give typed errors, never panics.

use std::f32::consts::PI;
use std::io::Write;
use std::path::{Path, PathBuf};

use emobridge_audio::{
    frames::rms, load, resample, AudioError, DecodeOptions, IntScaling, Mixdown,
};

fn sine(freq: f32, sr: u32, seconds: f32, amp: f32) -> Vec<f32> {
    (0..(sr as f32 * seconds) as usize)
        .map(|i| amp * (2.0 * PI * freq * i as f32 / sr as f32).sin())
        .collect()
}

/// Frequency of the largest FFT bin, refined by parabolic interpolation on log magnitudes.
fn peak_hz(x: &[f32], sr: u32) -> f32 {
    let n = x.len().next_power_of_two() * 4;
    let mut spec = emobridge_audio::frames::MagnitudeFft::new(n);
    let win = emobridge_audio::frames::hann(x.len());
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let mut mag = Vec::new();
    spec.magnitudes(&x64, &win, &mut mag);
    let k = (1..mag.len() - 1)
        .max_by(|&a, &b| mag[a].total_cmp(&mag[b]))
        .unwrap();
    let (a, b, c) = (mag[k - 1].ln(), mag[k].ln(), mag[k + 1].ln());
    let delta = 0.5 * (a - c) / (a - 2.0 * b + c);
    ((k as f64 + delta) * sr as f64 / n as f64) as f32
}

fn db_ratio(a: f32, b: f32) -> f32 {
    20.0 * (a / b).log10()
}

fn write_hound(path: &Path, x: &[f32], sr: u32, channels: u16, bits: u16, float: bool) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: sr,
        bits_per_sample: bits,
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in x {
        for _ in 0..channels {
            match (float, bits) {
                (true, _) => w.write_sample(s).unwrap(),
                (false, 8) => w.write_sample((s * 127.0).round() as i8).unwrap(),
                (false, 16) => w.write_sample((s * 32767.0).round() as i16).unwrap(),
                (false, 24) => w.write_sample((s * 8_388_607.0).round() as i32).unwrap(),
                (false, 32) => w
                    .write_sample((s as f64 * 2_147_483_647.0).round() as i32)
                    .unwrap(),
                _ => unreachable!(),
            }
        }
    }
    w.finalize().unwrap();
}

/// hound cannot write 64-bit float; a RIFF/WAVE_FORMAT_IEEE_FLOAT header is 44 bytes.
fn write_f64_wav(path: &Path, x: &[f32], sr: u32) {
    let data: Vec<u8> = x.iter().flat_map(|&s| (s as f64).to_le_bytes()).collect();
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(b"RIFF").unwrap();
    f.write_all(&(36 + data.len() as u32).to_le_bytes())
        .unwrap();
    f.write_all(b"WAVEfmt ").unwrap();
    f.write_all(&16u32.to_le_bytes()).unwrap();
    f.write_all(&3u16.to_le_bytes()).unwrap();
    f.write_all(&1u16.to_le_bytes()).unwrap();
    f.write_all(&sr.to_le_bytes()).unwrap();
    f.write_all(&(sr * 8).to_le_bytes()).unwrap();
    f.write_all(&8u16.to_le_bytes()).unwrap();
    f.write_all(&64u16.to_le_bytes()).unwrap();
    f.write_all(b"data").unwrap();
    f.write_all(&(data.len() as u32).to_le_bytes()).unwrap();
    f.write_all(&data).unwrap();
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn every_wav_depth_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let x = sine(440.0, 16_000, 0.5, 0.5);
    let cases: [(u16, bool, f32); 5] = [
        (8, false, 1.0 / 100.0),
        (16, false, 1e-4),
        (24, false, 1e-6),
        (32, false, 1e-7),
        (32, true, 1e-7),
    ];
    for (bits, float, tol) in cases {
        let p = dir.path().join(format!("s{bits}{float}.wav"));
        write_hound(&p, &x, 16_000, 1, bits, float);
        let a = load(&p, &DecodeOptions::mono()).unwrap();
        assert_eq!(
            (a.sample_rate, a.source_channels, a.len()),
            (16_000, 1, x.len()),
            "{bits} bit"
        );
        let err = a.channels[0]
            .iter()
            .zip(&x)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err <= tol, "{bits}-bit float={float}: max error {err}");
    }
    let p = dir.path().join("f64.wav");
    write_f64_wav(&p, &x, 16_000);
    let a = load(&p, &DecodeOptions::mono()).unwrap();
    let err = a.channels[0]
        .iter()
        .zip(&x)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(err < 1e-7, "f64: {err}");
}

#[test]
fn channels_are_mixed_or_kept() {
    let dir = tempfile::tempdir().unwrap();
    let x = sine(440.0, 16_000, 0.25, 0.5);
    let p = dir.path().join("stereo.wav");
    write_hound(&p, &x, 16_000, 2, 16, false);
    let keep = load(
        &p,
        &DecodeOptions {
            mixdown: Mixdown::Keep,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(keep.channels.len(), 2);
    let mono = load(&p, &DecodeOptions::mono()).unwrap();
    assert_eq!((mono.channels.len(), mono.source_channels), (1, 2));
    assert!((mono.channels[0][100] - keep.channels[0][100]).abs() < 1e-6);
}

#[test]
fn opensmile_scaling_reads_16_bit_as_32767ths() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.wav");
    emobridge_audio::wav::write_wav_mono16(&p, &[0.5, -1.0, 0.25], 16_000).unwrap();
    let a = load(
        &p,
        &DecodeOptions {
            int_scaling: IntScaling::OpenSmile,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        a.channels[0],
        vec![16384.0 / 32767.0, -1.0, 8192.0 / 32767.0]
    );
}

#[test]
fn compressed_formats_decode_a_440_hz_sine() {
    // Made by tools/fixtures/audio_formats.sh: 1 s, 440 Hz, amplitude 0.5, 44.1 kHz stereo.
    let reference_rms = 0.5 / 2f32.sqrt();
    for (name, level_tol_db) in [
        ("sine440.flac", 0.05),
        ("sine440.ogg", 0.5),
        ("sine440.mp3", 0.5),
        ("sine440.wav", 0.05),
    ] {
        let a = load(fixture(name), &DecodeOptions::mono()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((a.sample_rate, a.source_channels), (44_100, 2), "{name}");
        assert!(
            (a.duration_s() - 1.0).abs() < 0.06,
            "{name}: {} s",
            a.duration_s()
        );
        let mid = &a.channels[0][4410..a.len() - 4410];
        assert!((peak_hz(mid, 44_100) - 440.0).abs() < 1.0, "{name}");
        let d = db_ratio(rms(mid), reference_rms).abs();
        assert!(d < level_tol_db, "{name}: level off by {d} dB");
    }
}

#[test]
fn resampling_keeps_pitch_level_and_length() {
    for (from, to) in [
        (44_100u32, 16_000u32),
        (48_000, 24_000),
        (16_000, 48_000),
        (22_050, 8_000),
    ] {
        let x = sine(440.0, from, 2.0, 0.5);
        let y = resample(&x, from, to).unwrap();
        let exact = x.len() as f64 * to as f64 / from as f64;
        assert!(
            (y.len() as f64 - exact).abs() <= 1.0,
            "{from}->{to}: {} vs {exact}",
            y.len()
        );
        let trim = to as usize / 10;
        let mid = &y[trim..y.len() - trim];
        assert!(
            (peak_hz(mid, to) - 440.0).abs() < 1.0,
            "{from}->{to}: {} Hz",
            peak_hz(mid, to)
        );
        let d = db_ratio(
            rms(mid),
            rms(&x[from as usize / 10..x.len() - from as usize / 10]),
        )
        .abs();
        assert!(d < 0.2, "{from}->{to}: RMS off by {d} dB");
    }
    assert!(matches!(
        resample(&[0.0; 10], 0, 16_000),
        Err(AudioError::BadRate { .. })
    ));
    assert!(matches!(
        resample(&[0.0; 10], 16_000, 96_000),
        Err(AudioError::BadTargetRate { .. })
    ));
}

#[test]
fn load_resamples_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.wav");
    write_hound(&p, &sine(440.0, 44_100, 1.0, 0.5), 44_100, 1, 16, false);
    let a = load(&p, &DecodeOptions::mono_at(16_000)).unwrap();
    assert_eq!((a.sample_rate, a.source_rate), (16_000, 44_100));
    assert!((a.len() as i64 - 16_000).abs() <= 1);
}

#[test]
fn bad_files_give_typed_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = d.join("missing.wav");
    assert!(matches!(
        load(&missing, &DecodeOptions::mono()),
        Err(AudioError::NotFound { .. })
    ));

    let empty = d.join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(
        load(&empty, &DecodeOptions::mono()),
        Err(AudioError::Empty { .. })
    ));

    let zero_frames = d.join("zero.wav");
    write_hound(&zero_frames, &[], 16_000, 1, 16, false);
    assert!(matches!(
        load(&zero_frames, &DecodeOptions::mono()),
        Err(AudioError::Empty { .. })
    ));

    let garbage = d.join("garbage.wav");
    std::fs::write(
        &garbage,
        (0..4000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let e = load(&garbage, &DecodeOptions::mono()).unwrap_err();
    assert!(
        matches!(
            e,
            AudioError::Unsupported { .. } | AudioError::Corrupt { .. }
        ),
        "{e}"
    );

    let text = d.join("notes.mp3");
    std::fs::write(&text, "this is not audio at all\n".repeat(50)).unwrap();
    assert!(load(&text, &DecodeOptions::mono()).is_err());

    let good = d.join("good.wav");
    write_hound(&good, &sine(440.0, 16_000, 0.5, 0.5), 16_000, 1, 16, false);
    let bytes = std::fs::read(&good).unwrap();
    let truncated = d.join("truncated.wav");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let e = load(&truncated, &DecodeOptions::mono()).unwrap_err();
    assert!(matches!(e, AudioError::Corrupt { .. }), "{e}");
    let header_only = d.join("header.wav");
    std::fs::write(&header_only, &bytes[..20]).unwrap();
    assert!(load(&header_only, &DecodeOptions::mono()).is_err());

    let nan = d.join("nan.wav");
    let mut x = sine(440.0, 16_000, 0.1, 0.5);
    x[10] = f32::NAN;
    x[20] = f32::INFINITY;
    write_hound(&nan, &x, 16_000, 1, 32, true);
    match load(&nan, &DecodeOptions::mono()) {
        Err(AudioError::NonFinite { count, first, .. }) => assert_eq!((count, first), (2, 10)),
        other => panic!("{other:?}"),
    }

    let zero_rate = d.join("rate0.wav");
    let mut b = bytes.clone();
    b[24..28].copy_from_slice(&0u32.to_le_bytes());
    std::fs::write(&zero_rate, &b).unwrap();
    assert!(load(&zero_rate, &DecodeOptions::mono()).is_err());

    for p in [&missing, &empty, &garbage, &truncated, &nan] {
        let e = load(p, &DecodeOptions::mono()).unwrap_err();
        assert_eq!(e.path(), p.as_path());
        assert!(e
            .to_string()
            .contains(p.file_name().unwrap().to_str().unwrap()));
    }
}

/// Issue 17: a truncated MP3 used to decode to its first part silently while a truncated
/// WAV/FLAC/OGG was an error. One rule now (see `decode.rs`): every format cut short is an error.
#[test]
fn a_file_cut_short_is_an_error_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["sine440.wav", "sine440.flac", "sine440.ogg", "sine440.mp3"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        for fraction in [0.5, 0.9] {
            let cut = dir.path().join(format!("cut-{fraction}-{name}"));
            std::fs::write(&cut, &bytes[..(bytes.len() as f64 * fraction) as usize]).unwrap();
            match load(&cut, &DecodeOptions::mono()) {
                Err(AudioError::Corrupt { reason, .. }) => {
                    assert!(
                        reason.contains("truncated") || reason.contains("end of file"),
                        "{name}: {reason}"
                    )
                }
                other => panic!("{name} cut at {fraction}: {other:?}"),
            }
        }
    }
}

#[test]
fn an_mp3_cut_on_a_frame_boundary_is_caught_by_its_info_frame_count() {
    // The fixture starts with an ID3v2 tag and a LAME Info frame; cut after whole frames so that
    // only the stated frame count can tell.
    let bytes = std::fs::read(fixture("sine440.mp3")).unwrap();
    let id3 = 10
        + bytes[6..10]
            .iter()
            .fold(0usize, |acc, &b| (acc << 7) | (b & 0x7F) as usize);
    assert_eq!(
        &bytes[id3..id3 + 2],
        &[0xFF, 0xFB],
        "an MPEG-1 Layer III frame follows the tag"
    );
    // 128 kbit/s at 44.1 kHz: 417 or 418 bytes a frame; walk the headers to a frame boundary.
    let mut pos = id3;
    for _ in 0..20 {
        let pad = ((bytes[pos + 2] >> 1) & 1) as usize;
        let kbps = [
            0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0,
        ][(bytes[pos + 2] >> 4) as usize];
        pos += 144 * kbps * 1000 / 44_100 + pad;
    }
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("boundary.mp3");
    std::fs::write(&cut, &bytes[..pos]).unwrap();
    let e = load(&cut, &DecodeOptions::mono()).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
    // The whole file is fine.
    assert!(load(fixture("sine440.mp3"), &DecodeOptions::mono()).is_ok());
}

#[test]
fn a_directory_is_named_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("clips.wav");
    std::fs::create_dir(&d).unwrap();
    let e = load(&d, &DecodeOptions::mono()).unwrap_err();
    assert!(matches!(e, AudioError::IsDirectory { .. }), "{e}");
    assert!(
        e.to_string().ends_with("is a directory, not an audio file"),
        "{e}"
    );
    assert!(emobridge_audio::probe_info(&d).is_err());
}

#[test]
fn an_absurd_declared_rate_is_an_error_not_a_minutes_long_resample() {
    // Found by the fuzz tests: a WAV header mutated to declare ~4.3 GHz sent the resampler into
    // an FFT of that size.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("fast.wav");
    write_hound(&p, &sine(440.0, 16_000, 0.1, 0.5), 16_000, 1, 16, false);
    let mut b = std::fs::read(&p).unwrap();
    b[25..29].copy_from_slice(&0x7FFF_FFFFu32.to_le_bytes());
    std::fs::write(&p, &b).unwrap();
    let started = std::time::Instant::now();
    for opts in [DecodeOptions::mono(), DecodeOptions::mono_at(16_000)] {
        let e = load(&p, &opts).unwrap_err();
        assert!(matches!(e, AudioError::BadRate { .. }), "{e}");
    }
    assert!(started.elapsed().as_secs() < 5);
    assert!(matches!(
        resample(&[0.0; 10], 4_000_000_000, 16_000),
        Err(AudioError::BadRate { .. })
    ));
}
