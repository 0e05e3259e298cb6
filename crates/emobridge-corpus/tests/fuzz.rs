//! Fuzzing on stable Rust (issue 17 item 12): mutated manifests (CSV and JSON Lines) and mutated
//! annotation tables of an import (emoMusic static/dynamic CSVs, PMEmo's long table, MSP's
//! labels) read to records or a one-line error naming the file, within the time and memory
//! bounds; never a panic. Budget: `PROPTEST_CASES`; findings in `docs/fuzzing.md`.

#[path = "../../emobridge-audio/tests/support/mutate.rs"]
mod mutate;

use std::path::Path;

use emobridge_corpus::import::{self, Corpus, ImportOptions};
use emobridge_corpus::Manifest;
use mutate::{apply, bounded, config, mutations, Mutation};
use proptest::prelude::*;

const CSV: &str = "id,path,domain,corpus,speaker,emotion,arousal,valence,split,annotation,extra\n\
a1,a1.wav,speech,x,s1,happy,0.5,-0.25,train,,k\n\
a2,sub/a2.wav,music,x,s2,,,,,ann/a2.csv,\n\
\"a,3\",\"q\"\"uote.wav\",speech,x,s3,sad,-1,1,test,,v\n";

const JSONL: &str = "{\"id\":\"a1\",\"path\":\"a1.wav\",\"domain\":\"speech\",\"emotion\":\"happy\",\"arousal\":0.5}\n\
{\"id\":\"a2\",\"path\":\"a2.wav\",\"domain\":\"music\",\"valence\":null,\"extra\":[1,2]}\n\n";

fn check_manifest(name: &str, seed: &str, edits: &[Mutation]) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, apply(seed.as_bytes(), edits)).unwrap();
    let name = name.to_string();
    bounded("manifest", &edits.to_vec(), move || {
        let _dir = dir;
        match Manifest::read(&p) {
            Ok(m) => {
                assert!(!m.records.is_empty());
                // What was read writes and reads back to the same records.
                let again = p.with_file_name(format!("again-{name}"));
                m.write(&again).unwrap();
                assert_eq!(Manifest::read(&again).unwrap().records, m.records);
            }
            Err(e) => {
                let text = e.to_string();
                assert!(text.contains(&name) && !text.contains('\n'), "{text}");
            }
        }
    });
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// An emoMusic tree whose annotation tables are mutated (one table per case).
fn check_emomusic(table: usize, edits: &[Mutation]) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let wav = {
        let p = root.join("tone.wav");
        let x: Vec<f32> = (0..800).map(|i| 0.3 * (i as f32 * 0.1).sin()).collect();
        emobridge_audio::wav::write_wav_mono16(&p, &x, 8000).unwrap();
        std::fs::read(&p).unwrap()
    };
    for id in [2, 3, 5] {
        write(&root.join(format!("clips_45seconds/{id}.mp3")), &wav);
    }
    let tables = [
        (
            "annotations/static_annotations.csv",
            "song_id,mean_arousal,std_arousal,mean_valence,std_valence\n2,3.1,0.9,7,2\n3,5,1,5,1\n5,9,0,1,0\n",
        ),
        (
            "annotations/arousal_cont_average.csv",
            "song_id,sample_15000ms,sample_15500ms,sample_16000ms\n2,0.1,-0.2,0.3\n3,0.5,,NaN\n",
        ),
        (
            "annotations/valence_cont_average.csv",
            "song_id,sample_15000ms,sample_15500ms,sample_16000ms\n2,0.1,0.2,0.3\n3,-0.5,0.5,0\n",
        ),
        (
            "annotations/songs_info.csv",
            "song_id,Artist,Genre,Mediaeval 2013 set\n2,A,Rock,development\n3,B,Pop,evaluation\n",
        ),
    ];
    for (k, (path, text)) in tables.iter().enumerate() {
        let bytes = if k == table {
            apply(text.as_bytes(), edits)
        } else {
            text.as_bytes().to_vec()
        };
        write(&root.join(path), &bytes);
    }
    let root = root.to_path_buf();
    bounded("annotations", &(table, edits.to_vec()), move || {
        let _dir = dir;
        match import::import(Corpus::EmoMusic, &root, &ImportOptions::default()) {
            Ok(m) => {
                for r in &m.records {
                    for v in [r.arousal, r.valence].into_iter().flatten() {
                        assert!((-1.0..=1.0).contains(&v), "{v}");
                    }
                }
                for points in m.dynamics.values() {
                    assert!(points.iter().all(|p| p.time.is_finite()
                        && p.arousal.abs() <= 1.0
                        && p.valence.abs() <= 1.0));
                }
            }
            Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
        }
    });
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_csv_manifest(edits in mutations()) {
        check_manifest("m.csv", CSV, &edits);
    }

    #[test]
    fn mutated_jsonl_manifest(edits in mutations()) {
        check_manifest("m.jsonl", JSONL, &edits);
    }

    #[test]
    fn random_text_manifest(text in "(?s).{0,300}", jsonl in any::<bool>()) {
        check_manifest(if jsonl { "r.jsonl" } else { "r.csv" }, &text, &[]);
    }

    #[test]
    fn mutated_annotation_tables(table in 0usize..4, edits in mutations()) {
        check_emomusic(table, &edits);
    }
}
