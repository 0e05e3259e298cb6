//! CREMA-D, EmoDB, TESS and SAVEE importers on fake trees in each publisher's layout.

use std::collections::BTreeMap;
use std::path::Path;

use emobridge_corpus::import::{self, Corpus, ImportOptions, Imported, IssueKind};
use emobridge_corpus::{Domain, Emotion};

fn tone(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let samples: Vec<f32> = (0..800).map(|i| 0.3 * (i as f32 * 0.3).sin()).collect();
    emobridge_audio::wav::write_wav_mono16(path, &samples, 8000).unwrap();
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn per_label(m: &Imported) -> BTreeMap<Emotion, usize> {
    let mut out = BTreeMap::new();
    m.records
        .iter()
        .for_each(|r| *out.entry(r.emotion.unwrap()).or_insert(0) += 1);
    out
}

fn reported(m: &Imported, kind: IssueKind) -> Vec<String> {
    m.issues_of(kind)
        .map(|i| i.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn crema_d_reads_names_ratings_and_demographics() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let emotions = ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"];
    let mut summary = String::from("\"\",\"FileName\",\"VoiceVote\",\"VoiceLevel\",\"FaceVote\",\"FaceLevel\",\"MultiModalVote\",\"MultiModalLevel\"\n");
    let mut n = 0;
    for actor in 1001..=1003 {
        for sentence in ["IEO", "DFA", "TSI"] {
            for emo in emotions {
                let levels: &[&str] = if sentence == "IEO" && emo != "NEU" {
                    &["LO", "MD", "HI"]
                } else {
                    &["XX"]
                };
                for level in levels {
                    let stem = format!("{actor}_{sentence}_{emo}_{level}");
                    tone(&root.join(format!("AudioWAV/{stem}.wav")));
                    n += 1;
                    summary.push_str(&format!(
                        "{n},{stem},{},55.5,N,50,N,50\n",
                        if n % 7 == 0 { "A:D" } else { &emo[..1] }
                    ));
                }
            }
        }
    }
    summary.push_str("999,1091_TIE_SAD_XX,S,60,S,60,S,60\n");
    write(&root.join("processedResults/summaryTable.csv"), &summary);
    write(&root.join("VideoDemographics.csv"), "ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n1002,21,Female,Caucasian,Not Hispanic\n");
    tone(&root.join("AudioWAV/1001_DFA_XXX_XX.wav"));
    tone(&root.join("AudioWAV/1100_DFA_ANG_XX.wav"));
    tone(&root.join("AudioWAV/1001_FOO_ANG_XX.wav"));

    let m = import::import(Corpus::CremaD, root, &ImportOptions::default()).unwrap();
    // Per actor: IEO 5 emotions × 3 levels + NEU = 16; DFA and TSI 6 each.
    assert_eq!(m.records.len(), 3 * (16 + 6 + 6));
    assert_eq!(n, 84);
    let labels = per_label(&m);
    assert_eq!(labels[&Emotion::Neutral], 9);
    assert_eq!(labels[&Emotion::Fearful], 15);
    assert_eq!(
        m.records
            .iter()
            .map(|r| r.speaker.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        3
    );
    assert!(m
        .records
        .iter()
        .all(|r| r.domain == Domain::Speech && r.corpus == "crema-d"));
    let r = m
        .records
        .iter()
        .find(|r| r.id == "1002_IEO_FEA_HI")
        .unwrap();
    assert_eq!(
        (r.speaker.as_str(), r.emotion),
        ("1002", Some(Emotion::Fearful))
    );
    assert_eq!(r.extra("source_label"), Some("FEA"));
    assert_eq!(r.extra("intensity"), Some("high"));
    assert_eq!(r.extra("sentence"), Some("IEO"));
    assert_eq!(r.extra("voice_level"), Some("55.5"));
    assert_eq!(r.extra("gender"), Some("female"));
    assert_eq!(r.extra("age"), Some("21"));
    assert!(m
        .records
        .iter()
        .any(|r| r.extra("voice_vote") == Some("A:D")));
    let unrated = m.records.iter().find(|r| r.speaker == "1003").unwrap();
    assert_eq!(unrated.extra("gender"), None);

    let bad = reported(&m, IssueKind::BadName);
    assert_eq!(bad.len(), 3, "{bad:?}");
    assert!(bad.contains(&"1100_DFA_ANG_XX.wav".to_string()));
    let missing: Vec<_> = m.issues_of(IssueKind::MissingAudio).collect();
    assert_eq!(missing.len(), 1);
    assert!(missing[0].message.contains("1091_TIE_SAD_XX"));
}

#[test]
fn emodb_letter_codes_map_to_seven_labels_with_boredom() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let speakers = ["03", "08", "09", "10", "11", "12", "13", "14", "15", "16"];
    for spk in speakers {
        for (text, emo) in [
            ("a01", 'W'),
            ("a02", 'L'),
            ("a04", 'E'),
            ("a05", 'A'),
            ("a07", 'F'),
            ("b01", 'T'),
            ("b02", 'N'),
            ("b03", 'W'),
        ] {
            tone(&root.join(format!("wav/{spk}{text}{emo}a.wav")));
        }
    }
    tone(&root.join("wav/03a01Xa.wav")); // unknown emotion letter
    tone(&root.join("wav/99a01Fa.wav")); // unknown speaker
    tone(&root.join("wav/03a03Fa.wav")); // text a03 does not exist
    write(&root.join("lablaut/03a01Fa.lab"), "not audio");

    let m = import::import(Corpus::EmoDb, root, &ImportOptions::default()).unwrap();
    assert_eq!(m.records.len(), 80);
    let labels = per_label(&m);
    assert_eq!(labels.len(), 7);
    assert_eq!(labels[&Emotion::Angry], 20);
    assert_eq!(labels[&Emotion::Boredom], 10);
    let r = m.records.iter().find(|r| r.id == "16b01Ta").unwrap();
    assert_eq!((r.speaker.as_str(), r.emotion), ("16", Some(Emotion::Sad)));
    assert_eq!(
        (
            r.extra("source_label"),
            r.extra("text"),
            r.extra("version"),
            r.extra("gender")
        ),
        (Some("T"), Some("b01"), Some("a"), Some("female"))
    );
    assert_eq!(
        m.records
            .iter()
            .find(|r| r.id == "10a01Wa")
            .unwrap()
            .extra("gender"),
        Some("male")
    );
    assert_eq!(reported(&m, IssueKind::BadName).len(), 3);
}

#[test]
fn tess_folders_and_flat_files_with_the_release_erratum() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("TESS Toronto emotional speech set data");
    let folders = [
        ("OAF", "angry", "angry"),
        ("OAF", "disgust", "disgust"),
        ("OAF", "Fear", "fear"),
        ("OAF", "happy", "happy"),
        ("OAF", "neutral", "neutral"),
        ("OAF", "Pleasant_surprise", "ps"),
        ("OAF", "Sad", "sad"),
        ("YAF", "angry", "angry"),
        ("YAF", "disgust", "disgust"),
        ("YAF", "fear", "fear"),
        ("YAF", "happy", "happy"),
        ("YAF", "neutral", "neutral"),
        ("YAF", "pleasant_surprised", "ps"),
        ("YAF", "sad", "sad"),
    ];
    for (spk, folder, suffix) in folders {
        for word in ["back", "bar", "base"] {
            tone(&root.join(format!("{spk}_{folder}/{spk}_{word}_{suffix}.wav")));
        }
    }
    tone(&root.join("OAF_neutral/OA_bite_neutral.wav")); // the release's misnamed file
    tone(&root.join("YAF_happy/YAF_germ_sad.wav")); // folder and file disagree
    tone(&root.join("YAF_happy/YAF_germ_joy.wav")); // not a TESS emotion
    tone(&root.join("YAF_happy/YAF_germ.wav")); // too few fields

    let m = import::import(Corpus::Tess, &root, &ImportOptions::default()).unwrap();
    assert_eq!(m.records.len(), 14 * 3 + 1);
    let labels = per_label(&m);
    assert_eq!(labels[&Emotion::Surprised], 6);
    assert_eq!(labels[&Emotion::Neutral], 7);
    assert_eq!(m.records.iter().filter(|r| r.speaker == "OAF").count(), 22);
    let oa = m
        .records
        .iter()
        .find(|r| r.id == "OA_bite_neutral")
        .unwrap();
    assert_eq!(oa.speaker, "OAF");
    assert!(oa.extra("naming_note").unwrap().contains("OA"));
    let ps = m.records.iter().find(|r| r.id == "YAF_bar_ps").unwrap();
    assert_eq!(
        (ps.emotion, ps.extra("source_label"), ps.extra("word")),
        (Some(Emotion::Surprised), Some("ps"), Some("bar"))
    );
    assert_eq!(
        reported(&m, IssueKind::Conflict),
        vec!["YAF_germ_sad.wav".to_string()]
    );
    assert_eq!(reported(&m, IssueKind::BadName).len(), 2);

    // The flat Dataverse listing: speaker from the file name.
    let flat = dir.path().join("flat");
    tone(&flat.join("OAF_back_angry.wav"));
    tone(&flat.join("YAF_back_ps.wav"));
    tone(&flat.join("XAF_back_ps.wav"));
    let m = import::import(Corpus::Tess, &flat, &ImportOptions::default()).unwrap();
    assert_eq!(
        m.records
            .iter()
            .map(|r| r.speaker.as_str())
            .collect::<Vec<_>>(),
        vec!["OAF", "YAF"]
    );
    assert_eq!(
        reported(&m, IssueKind::BadName),
        vec!["XAF_back_ps.wav".to_string()]
    );
}

#[test]
fn savee_publisher_and_flat_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("SAVEE");
    let clips = |spk_dir: &dyn Fn(&str, &str) -> std::path::PathBuf| {
        for spk in ["DC", "JE", "JK", "KL"] {
            for n in 1..=30 {
                tone(&spk_dir(spk, &format!("n{n:02}")));
            }
            for code in ["a", "d", "f", "h", "sa", "su"] {
                for n in 1..=15 {
                    tone(&spk_dir(spk, &format!("{code}{n:02}")));
                }
            }
        }
    };
    clips(&|spk, clip| root.join(format!("AudioData/{spk}/{clip}.wav")));
    tone(&root.join("AudioData/XX/a01.wav"));
    tone(&root.join("AudioData/DC/z01.wav"));
    tone(&root.join("AudioData/DC/a1.wav"));

    let m = import::import(Corpus::Savee, &root, &ImportOptions::default()).unwrap();
    assert_eq!(m.records.len(), 480);
    let labels = per_label(&m);
    assert_eq!(labels.len(), 7);
    assert_eq!(labels[&Emotion::Neutral], 120);
    assert_eq!(labels[&Emotion::Surprised], 60);
    let r = m.records.iter().find(|r| r.id == "KL_sa03").unwrap();
    assert_eq!(
        (
            r.speaker.as_str(),
            r.emotion,
            r.extra("source_label"),
            r.extra("sentence")
        ),
        ("KL", Some(Emotion::Sad), Some("sa"), Some("03"))
    );
    assert_eq!(reported(&m, IssueKind::BadName).len(), 3);

    let flat = dir.path().join("kaggle");
    clips(&|spk, clip| flat.join(format!("ALL/{spk}_{clip}.wav")));
    let f = import::import(Corpus::Savee, &flat, &ImportOptions::default()).unwrap();
    assert_eq!(f.records.len(), 480);
    assert_eq!(
        f.records
            .iter()
            .map(|r| r.id.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        480
    );
    assert!(f.issues.is_empty());
    assert_eq!(per_label(&f), labels);
}
