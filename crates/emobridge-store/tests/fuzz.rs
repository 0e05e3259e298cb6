//! Fuzzing on stable Rust (issue 17 item 12): mutated cache entries read back as an entry or a
//! typed error naming the file, within the time and memory bounds; never a panic. Budget:
//! `PROPTEST_CASES`; findings in `docs/fuzzing.md`.

#[path = "../../emobridge-audio/tests/support/mutate.rs"]
mod mutate;

use emobridge_store::{id_from_key, key_for_id, ClipEntry, EntryMetadata, StoredDtype};
use mutate::{apply, bounded, config, mutations};
use proptest::prelude::*;

fn seed(dtype: StoredDtype) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let meta = EntryMetadata {
        model: "tiny".into(),
        sample_rate: 16_000,
        frame_rate_hz: 50.0,
        hidden_state_convention: "transformers4".into(),
        source_file: "a.wav".into(),
        audio_sha256: "00".repeat(32),
        extra: Default::default(),
    };
    let values: Vec<f32> = (0..24).map(|i| i as f32 * 0.25).collect();
    let e = ClipEntry::from_frames(values, [3, 4, 2], dtype, meta).unwrap();
    let p = dir.path().join("e.safetensors");
    e.save(&p).unwrap();
    std::fs::read(p).unwrap()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_entries(edits in mutations(), f32_frames in any::<bool>()) {
        let dtype = if f32_frames { StoredDtype::F32 } else { StoredDtype::F16 };
        let bytes = apply(&seed(dtype), &edits);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.safetensors");
        std::fs::write(&p, bytes).unwrap();
        bounded("entry", &edits.clone(), move || {
            let _dir = dir;
            match ClipEntry::read(&p) {
                Ok(e) => {
                    let [s, t, d] = e.shape;
                    assert_eq!(e.hidden_states.len(), s * t * d);
                    assert_eq!(e.mean.len(), s * d);
                }
                Err(err) => assert!(err.to_string().contains("e.safetensors"), "{err}"),
            }
        });
    }

    /// Every id is either rejected or stored under a key that decodes back to it.
    #[test]
    fn keys_round_trip(id in ".{0,80}") {
        if let Ok(key) = key_for_id(&id) {
            prop_assert_eq!(id_from_key(&key), Some(id.clone()));
            prop_assert!(!key.contains(['/', '\\', ':', '\0']) && !key.starts_with('.'));
            prop_assert!(key.is_ascii());
        }
    }
}
