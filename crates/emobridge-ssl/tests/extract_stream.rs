//! Bounded memory for long recordings (issue 17 item 9): `extract` decodes and resamples a long
//! clip block by block and streams each window of the encoder straight into the clip's entry.
//! The streamed entry equals the whole-file path's (`embed_entry`: the file decoded and
//! resampled whole, the windows concatenated in memory) byte for byte, for a clip held in
//! memory and for one streamed, at the model's rate and resampled from 44.1 kHz stereo; and
//! the largest block of hidden states held does not grow with the clip's length.

use std::path::{Path, PathBuf};

use emobridge_corpus::Manifest;
use emobridge_ssl::extract::{embed_entry, extract_manifest, fingerprint, stream_clip};
use emobridge_ssl::{ExtractConfig, LoadOptions, PretrainedEncoder};
use emobridge_store::{EmbeddingCache, Frames, LayerSelection};

fn model() -> PretrainedEncoder {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mert_like_24k");
    PretrainedEncoder::from_dir(&dir, LoadOptions::default()).unwrap()
}

/// A 44.1 kHz stereo file (decoded, averaged and resampled to the model's 24 kHz).
fn stereo_44k(dir: &Path, name: &str, seconds: f32) -> PathBuf {
    let n = (44_100.0 * seconds) as usize;
    let l = (0..n)
        .map(|k| 0.3 * (k as f32 * 0.031).sin() + 0.02 * ((k * 7919) % 97) as f32 / 97.0)
        .collect();
    let r = (0..n).map(|k| 0.2 * (k as f32 * 0.0173).cos()).collect();
    let p = dir.join(name);
    emobridge_audio::wav::write_wav(&p, &[l, r], 44_100, emobridge_audio::wav::WavFormat::Pcm16)
        .unwrap();
    p
}

fn wav(dir: &Path, name: &str, seconds: f32) -> PathBuf {
    let x: Vec<f32> = (0..(24_000.0 * seconds) as usize)
        .map(|k| {
            let t = k as f32 / 24_000.0;
            0.2 * (2.0 * std::f32::consts::PI * (220.0 + 30.0 * t) * t).sin()
                + 0.05 * ((k * 7919) % 113) as f32 / 113.0
        })
        .collect();
    let p = dir.join(name);
    emobridge_audio::wav::write_wav_mono16(&p, &x, 24_000).unwrap();
    p
}

#[test]
fn a_streamed_long_clip_equals_the_whole_file_entry_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let m = model();
    let weights = m.weights_sha256().unwrap();
    let files = [
        wav(dir.path(), "long.wav", 9.3),
        stereo_44k(dir.path(), "stereo44k.wav", 7.7),
    ];
    for (frames, layers) in [
        (Frames::F16, LayerSelection::All),
        (Frames::F32, LayerSelection::List(vec![2, 0])),
    ] {
        // hold_s 0: decoded, resampled and normalised in blocks, in three passes; 60: held.
        for (file, hold_s) in files.iter().flat_map(|f| [(f, 0.0), (f, 60.0)]) {
            let config = ExtractConfig {
                window_s: 1.0,
                frames,
                layers: layers.clone(),
                hold_s,
                ..ExtractConfig::default()
            };
            let fp = fingerprint(&m, &config, &weights).unwrap();
            let tag = format!("s-{frames}-{hold_s}");
            let cache = EmbeddingCache::open(dir.path(), &tag).unwrap();
            let id = file.file_stem().unwrap().to_str().unwrap();
            let streamed = stream_clip(&m, "tiny", &config, &fp, file, &cache, id).unwrap();
            let (whole, _) = embed_entry(&m, "tiny", &config, file, &weights).unwrap();
            assert_eq!(streamed.frames, whole.shape[1]);
            assert!(streamed.frames > 4 * 75, "several windows");
            let reference = EmbeddingCache::open(dir.path(), &format!("w-{tag}")).unwrap();
            let a = std::fs::read(cache.path_for(id).unwrap()).unwrap();
            let b = std::fs::read(reference.write(id, &whole).unwrap()).unwrap();
            assert!(
                a == b,
                "{frames} {id} hold_s {hold_s}: streamed entry differs from the whole-file entry"
            );
        }
    }
}

#[test]
fn the_largest_block_of_states_held_does_not_grow_with_the_clip() {
    let dir = tempfile::tempdir().unwrap();
    let m = model();
    let rows = ["id,path,domain,corpus,speaker,emotion,arousal,valence,split,annotation"]
        .into_iter()
        .map(String::from)
        .chain([(3.0, "short"), (24.0, "long")].map(|(s, id)| {
            wav(dir.path(), &format!("{id}.wav"), s);
            format!("{id},{id}.wav,speech,t,a,happy,,,,")
        }))
        .collect::<Vec<_>>();
    let peak = |ids: &[&str], tag: &str| {
        let lines: Vec<&String> = rows
            .iter()
            .enumerate()
            .filter(|(i, r)| *i == 0 || ids.iter().any(|id| r.starts_with(&format!("{id},"))))
            .map(|(_, r)| r)
            .collect();
        let path = dir.path().join(format!("{tag}.csv"));
        std::fs::write(
            &path,
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();
        let manifest = Manifest::read(&path).unwrap();
        let cache = EmbeddingCache::open(dir.path(), tag).unwrap();
        let config = ExtractConfig {
            window_s: 1.0,
            ..ExtractConfig::default()
        };
        let report = extract_manifest(&m, "tiny", &manifest, &cache, &config, &|_, _| ()).unwrap();
        assert_eq!(report.extracted, 1);
        let shape = cache.shape(ids[0]).unwrap();
        (report.peak_window_bytes, shape.frames)
    };
    let (short_peak, short_frames) = peak(&["short"], "a");
    let (long_peak, long_frames) = peak(&["long"], "b");
    assert!(
        long_frames >= 7 * short_frames,
        "{long_frames} vs {short_frames}"
    );
    // One window of 1 s: 3 states × 75 frames × 32 dims × 4 bytes + one state's f16 buffer.
    assert!(
        short_peak > 0 && short_peak <= 3 * 75 * 32 * 4 + 75 * 32 * 2 + 64,
        "{short_peak}"
    );
    assert_eq!(long_peak, short_peak);
}
