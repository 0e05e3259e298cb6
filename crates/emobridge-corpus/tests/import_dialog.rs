//! IEMOCAP and MSP-Podcast importers on fake trees in the publishers' layouts.

use std::path::Path;

use emobridge_corpus::import::{self, Corpus, ImportOptions, Imported, IssueKind, Preset};
use emobridge_corpus::{Domain, Emotion};

fn tone(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let samples: Vec<f32> = (0..800).map(|i| 0.3 * (i as f32 * 0.2).sin()).collect();
    emobridge_audio::wav::write_wav_mono16(path, &samples, 8000).unwrap();
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn count(m: &Imported, e: Emotion) -> usize {
    m.records.iter().filter(|r| r.emotion == Some(e)).count()
}

/// Two sessions; every utterance gets a wav except one.
fn iemocap_tree(root: &Path) {
    let base = root.join("IEMOCAP_full_release");
    // (session, dialog, [(speaker turn, category, [V, A, D])])
    type Turns<'a> = &'a [(&'a str, &'a str, &'a str)];
    let dialogs: [(u32, &str, Turns); 3] = [
        (
            1,
            "Ses01F_impro01",
            &[
                ("F000", "neu", "[2.5000, 2.5000, 2.5000]"),
                ("M000", "exc", "[4.0000, 4.5000, 3.0000]"),
                ("F001", "fru", "[2.0000, 3.5000, 3.5000]"),
                ("M001", "xxx", "[3.0000, 3.0000, 3.0000]"),
            ],
        ),
        (
            1,
            "Ses01M_script01_1",
            &[
                ("F000", "hap", "[4.5000, 3.5000, 3.0000]"),
                ("M000", "ang", "[1.5000, 4.5000, 4.5000]"),
                ("M001", "sad", "[1.5000, 1.5000, 2.0000]"),
                ("F001", "oth", "[3.0000, 3.0000, 3.0000]"),
            ],
        ),
        (
            2,
            "Ses02F_impro05",
            &[
                ("F000", "sad", "[2.0000, 2.0000, 2.0000]"),
                ("M000", "sur", "[3.5000, 4.0000, 3.0000]"),
                ("F001", "exc", "[4.0000, 4.0000, 3.5000]"),
                ("M001", "neu", "[3.0000, 2.5000, 3.0000]"),
            ],
        ),
    ];
    for (session, dialog, turns) in dialogs {
        let s = base.join(format!("Session{session}"));
        let mut text = String::from("% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n");
        for (i, (turn, cat, vad)) in turns.iter().enumerate() {
            let utt = format!("{dialog}_{turn}");
            text.push_str(&format!(
                "[{:.4} - {:.4}]\t{utt}\t{cat}\t{vad}\n",
                i as f32 * 3.0 + 0.5,
                i as f32 * 3.0 + 2.75
            ));
            text.push_str("C-E2:\tNeutral;\t()\nA-E3:\tval 3; act 2; dom  2;\t()\n\n");
            if utt != "Ses02F_impro05_M000" {
                tone(&s.join(format!("sentences/wav/{dialog}/{utt}.wav")));
            }
        }
        write(&s.join(format!("dialog/EmoEvaluation/{dialog}.txt")), &text);
        // macOS debris and the per-evaluator sub-folders are not summary files.
        write(
            &s.join(format!("dialog/EmoEvaluation/._{dialog}.txt")),
            "\0\0binary",
        );
        write(
            &s.join(format!(
                "dialog/EmoEvaluation/Categorical/{dialog}_e1_cat.txt"
            )),
            "[1 - 2]\tbogus\n",
        );
    }
    tone(&base.join("Session2/sentences/wav/Ses02F_impro05/Ses02F_impro05_F009.wav"));
    // never evaluated
}

#[test]
fn iemocap_keeps_raw_categories_and_maps_dimensions() {
    let dir = tempfile::tempdir().unwrap();
    iemocap_tree(dir.path());
    let m = import::import(Corpus::Iemocap, dir.path(), &ImportOptions::default()).unwrap();
    assert_eq!(m.records.len(), 11); // 12 evaluated, one without audio
    assert_eq!(count(&m, Emotion::Excited), 2);
    assert_eq!(count(&m, Emotion::Happy), 1);
    assert_eq!(count(&m, Emotion::Frustrated), 1);
    assert_eq!(count(&m, Emotion::Surprised), 0);
    assert_eq!(m.records.iter().filter(|r| r.emotion.is_none()).count(), 2); // xxx, oth

    let r = m
        .records
        .iter()
        .find(|r| r.id == "Ses01F_impro01_M000")
        .unwrap();
    assert_eq!(
        (r.speaker.as_str(), r.emotion, r.domain),
        ("Ses01M", Some(Emotion::Excited), Domain::Speech)
    );
    assert_eq!((r.valence, r.arousal), (Some(0.5), Some(0.75)));
    assert_eq!(r.extra("dominance"), Some("0"));
    assert_eq!(r.extra("source_label"), Some("exc"));
    assert_eq!(r.extra("mode"), Some("improvised"));
    assert_eq!(r.extra("session"), Some("1"));
    assert_eq!(r.extra("dialog"), Some("Ses01F_impro01"));
    assert_eq!(r.extra("start"), Some("3.5"));
    assert_eq!(r.extra("av_scale"), Some("1-5 -> (x-3)/2"));
    let s = m
        .records
        .iter()
        .find(|r| r.id == "Ses01M_script01_1_F000")
        .unwrap();
    assert_eq!(
        (s.speaker.as_str(), s.extra("mode")),
        ("Ses01F", Some("scripted"))
    );
    let speakers: std::collections::BTreeSet<_> =
        m.records.iter().map(|r| r.speaker.as_str()).collect();
    assert_eq!(
        speakers.into_iter().collect::<Vec<_>>(),
        vec!["Ses01F", "Ses01M", "Ses02F", "Ses02M"]
    );

    let missing: Vec<_> = m.issues_of(IssueKind::MissingAudio).collect();
    assert_eq!(missing.len(), 1);
    assert!(missing[0]
        .path
        .ends_with("Ses02F_impro05/Ses02F_impro05_M000.wav"));
    let stray: Vec<_> = m.issues_of(IssueKind::NoAnnotation).collect();
    assert_eq!(stray.len(), 1);
    assert!(stray[0].path.ends_with("Ses02F_impro05_F009.wav"));
    assert_eq!(m.issues.len(), 2, "{:?}", m.issues);
}

#[test]
fn iemocap_superb4_merges_excited_into_happy_and_drops_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    iemocap_tree(dir.path());
    let opts = ImportOptions {
        preset: Preset::Superb4,
        ..Default::default()
    };
    let m = import::import(
        Corpus::Iemocap,
        &dir.path().join("IEMOCAP_full_release"),
        &opts,
    )
    .unwrap();
    // neu 2, hap 1 + exc 2, ang 1, sad 2; sur (the missing wav) is out of the 4 classes anyway.
    assert_eq!(m.records.len(), 8);
    assert_eq!(count(&m, Emotion::Happy), 3);
    assert_eq!(count(&m, Emotion::Neutral), 2);
    assert_eq!(count(&m, Emotion::Angry), 1);
    assert_eq!(count(&m, Emotion::Sad), 2);
    assert_eq!(
        m.labels(),
        vec![
            Emotion::Neutral,
            Emotion::Happy,
            Emotion::Sad,
            Emotion::Angry
        ]
    );
    let r = m
        .records
        .iter()
        .find(|r| r.id == "Ses02F_impro05_F001")
        .unwrap();
    assert_eq!(
        (r.emotion, r.extra("source_label")),
        (Some(Emotion::Happy), Some("exc"))
    );
    assert!(m.issues.is_empty(), "{:?}", m.issues);

    // A preset belongs to its corpus.
    let err = import::import(Corpus::Ravdess, dir.path(), &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("superb4") && err.contains("iemocap"), "{err}");
}

#[test]
fn iemocap_without_sessions_is_a_layout_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = import::import(Corpus::Iemocap, dir.path(), &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("Session1"), "{err}");
}

#[test]
fn msp_podcast_consensus_labels() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let rows = [
        (
            "MSP-PODCAST_0001_0008.wav",
            "N",
            "4.0",
            "4.0",
            "4.0",
            "127",
            "Female",
            "Train",
        ),
        (
            "MSP-PODCAST_0001_0009.wav",
            "H",
            "5.5",
            "6.5",
            "4.0",
            "127",
            "Female",
            "Train",
        ),
        (
            "MSP-PODCAST_0002_0001.wav",
            "A",
            "7.0",
            "1.0",
            "6.0",
            "Unknown",
            "Male",
            "Development",
        ),
        (
            "MSP-PODCAST_0002_0002.wav",
            "C",
            "3.0",
            "2.5",
            "4.0",
            "Unknown",
            "Male",
            "Test1",
        ),
        (
            "MSP-PODCAST_0003_0001.wav",
            "X",
            "4.0",
            "4.0",
            "4.0",
            "200",
            "Male",
            "Test2",
        ),
        (
            "MSP-PODCAST_0003_0002.wav",
            "U",
            "9.0",
            "4.0",
            "4.0",
            "200",
            "Male",
            "Test2",
        ),
        (
            "MSP-PODCAST_0004_0001.wav",
            "S",
            "2.0",
            "2.0",
            "2.0",
            "300",
            "Female",
            "Train",
        ),
        (
            "MSP-PODCAST_0005_0001.wav",
            "Q",
            "2.0",
            "2.0",
            "2.0",
            "300",
            "Female",
            "Train",
        ),
    ];
    let mut csv = String::from("FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set\n");
    for (i, r) in rows.iter().enumerate() {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7
        ));
        if i != 6 {
            tone(&root.join("Audios").join(r.0));
        }
    }
    write(&root.join("Labels/labels_consensus.csv"), &csv);
    tone(&root.join("Audios/MSP-PODCAST_0009_0001.wav"));

    let m = import::import(Corpus::MspPodcast, root, &ImportOptions::default()).unwrap();
    assert_eq!(m.records.len(), 6);
    let get = |id: &str| m.records.iter().find(|r| r.id == id).unwrap();
    let h = get("MSP-PODCAST_0001_0009");
    assert_eq!(
        (h.emotion, h.arousal, h.speaker.as_str(), h.split.as_str()),
        (Some(Emotion::Happy), Some(0.5), "127", "train")
    );
    assert!((h.valence.unwrap() - 5.0 / 6.0).abs() < 1e-6);
    assert_eq!(h.extra("dominance"), Some("0"));
    assert_eq!(h.extra("av_scale"), Some("1-7 -> (x-4)/3"));
    let a = get("MSP-PODCAST_0002_0001");
    assert_eq!(
        (a.speaker.as_str(), a.split.as_str(), a.arousal, a.valence),
        ("podcast_0002", "dev", Some(1.0), Some(-1.0))
    );
    let c = get("MSP-PODCAST_0002_0002");
    assert_eq!(
        (c.emotion, c.extra("source_label"), c.split.as_str()),
        (None, Some("C"), "test1")
    );
    // EmoAct 9 is off the 1-7 scale: kept, without A/V, and reported.
    let u = get("MSP-PODCAST_0003_0002");
    assert_eq!((u.emotion, u.arousal), (Some(Emotion::Surprised), None));
    assert_eq!(m.issues_of(IssueKind::BadAnnotation).count(), 2); // EmoAct 9, EmoClass Q
    assert_eq!(m.issues_of(IssueKind::MissingAudio).count(), 1);
    let stray: Vec<_> = m.issues_of(IssueKind::NoAnnotation).collect();
    assert_eq!(stray.len(), 1);
    assert!(stray[0].path.ends_with("MSP-PODCAST_0009_0001.wav"));
}
