//! Fuzzing on stable Rust (issue 17 item 12): mutated WAV, FLAC, MP3 and OGG files decode to a
//! result or a typed error naming the file, within the time and memory bounds; never a panic.
//! Findings are recorded in `docs/fuzzing.md`. Budget: `PROPTEST_CASES` (see `support/mutate.rs`).

mod support {
    pub mod mutate;
}

use std::path::{Path, PathBuf};

use emobridge_audio::{load, probe_info, DecodeOptions};
use proptest::prelude::*;
use support::mutate::{apply, bounded, config, mutations};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

/// A short 16-bit WAV (the fixture WAV is 1 s of stereo; this keeps cases fast).
fn small_wav() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.wav");
    let x: Vec<f32> = (0..1600).map(|i| 0.4 * (i as f32 * 0.07).sin()).collect();
    emobridge_audio::wav::write_wav_mono16(&p, &x, 16_000).unwrap();
    std::fs::read(p).unwrap()
}

fn check(name: &str, seed: &[u8], edits: &[support::mutate::Mutation]) {
    let bytes = apply(seed, edits);
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join(name);
    std::fs::write(&path, &bytes).unwrap();
    bounded(name, &edits.to_vec(), move || {
        let _dir = dir;
        let _ = probe_info(&path);
        for opts in [DecodeOptions::mono(), DecodeOptions::mono_at(16_000)] {
            match load(&path, &opts) {
                Ok(a) => {
                    assert!(!a.channels.is_empty() && !a.channels[0].is_empty());
                    assert!(a.channels.iter().flatten().all(|x| x.is_finite()));
                }
                Err(e) => assert_eq!(e.path(), path.as_path(), "{e}"),
            }
        }
    });
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_wav(edits in mutations()) {
        check("x.wav", &small_wav(), &edits);
    }

    #[test]
    fn mutated_flac(edits in mutations()) {
        check("x.flac", &fixture("sine440.flac"), &edits);
    }

    #[test]
    fn mutated_mp3(edits in mutations()) {
        check("x.mp3", &fixture("sine440.mp3"), &edits);
    }

    #[test]
    fn mutated_ogg(edits in mutations()) {
        check("x.ogg", &fixture("sine440.ogg"), &edits);
    }

    /// Arbitrary bytes under every audio extension.
    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048), ext in prop::sample::select(vec!["wav", "flac", "mp3", "ogg", "aiff"])) {
        check(&format!("r.{ext}"), &bytes, &[]);
    }
}
