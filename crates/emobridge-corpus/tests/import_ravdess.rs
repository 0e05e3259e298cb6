//! RAVDESS importer on a full-size fake tree: the publisher's two zips unpacked side by side,
//! every file name of the real release (1440 speech + 1012 song, no song for actor 18).

use std::collections::BTreeMap;
use std::path::Path;

use emobridge_corpus::folds::ravdess_actor_folds;
use emobridge_corpus::import::{self, Corpus, ImportOptions, IssueKind};
use emobridge_corpus::{Domain, Emotion, Manifest};

/// 0.1 s of a 440 Hz sine at 8 kHz.
fn tone(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let samples: Vec<f32> = (0..800)
        .map(|i| 0.3 * (i as f32 * 440.0 * std::f32::consts::TAU / 8000.0).sin())
        .collect();
    emobridge_audio::wav::write_wav_mono16(path, &samples, 8000).unwrap();
}

fn name(
    channel: u32,
    emotion: u32,
    intensity: u32,
    statement: u32,
    rep: u32,
    actor: u32,
) -> String {
    format!("03-{channel:02}-{emotion:02}-{intensity:02}-{statement:02}-{rep:02}-{actor:02}.wav")
}

/// Writes the published tree; returns the root.
fn ravdess_tree(root: &Path) {
    for (channel, folder, emotions) in [
        (1, "Audio_Speech_Actors_01-24", 8),
        (2, "Audio_Song_Actors_01-24", 6),
    ] {
        for actor in 1..=24 {
            if channel == 2 && actor == 18 {
                continue; // "There are no song files for Actor_18."
            }
            for emotion in 1..=emotions {
                for intensity in 1..=2 {
                    if emotion == 1 && intensity == 2 {
                        continue;
                    }
                    for statement in 1..=2 {
                        for rep in 1..=2 {
                            tone(
                                &root
                                    .join(folder)
                                    .join(format!("Actor_{actor:02}"))
                                    .join(name(channel, emotion, intensity, statement, rep, actor)),
                            );
                        }
                    }
                }
            }
        }
    }
    let speech = root.join("Audio_Speech_Actors_01-24");
    tone(&speech.join("Actor_01/03-01-09-01-01-01-01.wav")); // emotion 09 does not exist
    tone(&speech.join("Actor_02/recording.wav")); // not the naming at all
    tone(&speech.join("Actor_03/03-01-05-01-01-01-04.wav")); // actor 04 inside Actor_03
    tone(&root.join("Audio_Song_Actors_01-24/Actor_04/03-02-07-01-01-01-04.wav")); // disgust is not sung
    std::fs::write(speech.join("README.txt"), "not audio").unwrap();
}

#[test]
fn ravdess_full_tree_gives_one_manifest_with_speech_and_song() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("RAVDESS");
    ravdess_tree(&root);
    let imported = import::import(Corpus::Ravdess, &root, &ImportOptions::default()).unwrap();

    let speech: Vec<_> = imported
        .records
        .iter()
        .filter(|r| r.domain == Domain::Speech)
        .collect();
    let song: Vec<_> = imported
        .records
        .iter()
        .filter(|r| r.domain == Domain::Music)
        .collect();
    assert_eq!((speech.len(), song.len()), (1440, 1012));

    let per_label = |rs: &[&emobridge_corpus::Record]| {
        let mut m = BTreeMap::new();
        rs.iter()
            .for_each(|r| *m.entry(r.emotion.unwrap()).or_insert(0) += 1);
        m
    };
    let s = per_label(&speech);
    assert_eq!(s.len(), 8);
    assert_eq!(s[&Emotion::Neutral], 96);
    assert!(Emotion::ALL[1..8].iter().all(|e| s[e] == 192));
    let g = per_label(&song);
    assert_eq!(
        g.keys().copied().collect::<Vec<_>>(),
        Emotion::RAVDESS_SHARED.to_vec()
    );
    assert_eq!(g[&Emotion::Neutral], 92);
    assert!(Emotion::RAVDESS_SHARED[1..].iter().all(|e| g[e] == 184));

    let groups = |rs: &[&emobridge_corpus::Record]| {
        rs.iter()
            .map(|r| r.speaker.clone())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(groups(&speech).len(), 24);
    assert_eq!(groups(&song).len(), 23);
    assert!(!groups(&song).contains("18"));
    // The groups are the keys of the published actor folds, for speech and song alike.
    let folds = ravdess_actor_folds();
    assert!(imported
        .records
        .iter()
        .all(|r| folds.contains_key(&r.speaker)));

    let r = imported
        .records
        .iter()
        .find(|r| r.id == "03-02-06-02-01-02-12")
        .unwrap();
    assert_eq!(
        (r.domain, r.emotion, r.speaker.as_str()),
        (Domain::Music, Some(Emotion::Fearful), "12")
    );
    assert_eq!(r.extra("vocal_channel"), Some("song"));
    assert_eq!(r.extra("source_label"), Some("06"));
    assert_eq!(r.extra("intensity"), Some("strong"));
    assert_eq!(r.extra("statement"), Some("01"));
    assert_eq!(r.extra("repetition"), Some("02"));
    assert_eq!(r.extra("gender"), Some("female"));
    assert_eq!((r.arousal, r.valence), (None, None));

    // Four bad files, each reported with its path; the README is not audio and is ignored.
    let bad: Vec<String> = imported
        .issues
        .iter()
        .map(|i| i.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(imported.issues.len(), 4, "{:?}", imported.issues);
    for f in [
        "03-01-09-01-01-01-01.wav",
        "recording.wav",
        "03-01-05-01-01-01-04.wav",
        "03-02-07-01-01-01-04.wav",
    ] {
        assert!(bad.contains(&f.to_string()), "{f} not reported: {bad:?}");
    }
    assert_eq!(imported.issues_of(IssueKind::Conflict).count(), 1);
    assert_eq!(imported.issues_of(IssueKind::BadName).count(), 3);
}

#[test]
fn ravdess_written_manifest_reads_back_and_song_restricts_speech_to_six_labels() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("corpora/RAVDESS");
    ravdess_tree(&root);
    let imported = import::import(Corpus::Ravdess, &root, &ImportOptions::default()).unwrap();
    let out = dir.path().join("manifests/ravdess.csv");
    let written = import::write_outputs(&imported, &out).unwrap();

    let m = Manifest::read(&out).unwrap();
    assert_eq!(m.records.len(), 2452);
    assert!(
        m.records[0].path.starts_with("../corpora/RAVDESS/"),
        "{}",
        m.records[0].path
    );
    assert!(m.records.iter().take(50).all(|r| m.audio_path(r).is_file()));
    let song = m
        .records
        .iter()
        .find(|r| r.domain == Domain::Music)
        .unwrap();
    assert_eq!(song.extra("vocal_channel"), Some("song"));

    let counts = std::fs::read_to_string(&written.counts).unwrap();
    for line in [
        "speech,emotion,neutral,96",
        "speech,emotion,surprised,192",
        "music,emotion,calm,184",
        "music,speaker,17,44",
        "speech,speaker,18,60",
    ] {
        assert!(
            counts.lines().any(|l| l == line),
            "`{line}` missing from counts:\n{counts}"
        );
    }
    assert!(!counts.contains("music,speaker,18,"));
    let issues = std::fs::read_to_string(&written.issues).unwrap();
    assert_eq!(issues.lines().count(), 5);
    assert!(issues.contains("recording.wav"));
    assert_eq!(written.annotations, None);

    // Song alone, then the speech side restricted to the labels song has: 6 labels.
    let song_only = Manifest::new(
        m.root.clone(),
        m.records
            .iter()
            .filter(|r| r.domain == Domain::Music)
            .cloned()
            .collect(),
    );
    let song_path = dir.path().join("manifests/song.csv");
    song_only.write(&song_path).unwrap();
    let other = Manifest::read(&song_path).unwrap();
    let mut speech = imported.clone();
    speech.records.retain(|r| r.domain == Domain::Speech);
    let shared = speech.restrict_to_labels_of(&other);
    assert_eq!(shared, Emotion::RAVDESS_SHARED.to_vec());
    assert_eq!(speech.records.len(), 1440 - 2 * 192);
    assert_eq!(speech.labels().len(), 6);
}
