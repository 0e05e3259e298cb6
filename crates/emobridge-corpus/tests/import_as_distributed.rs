//! Importers against the corpora as their publishers ship them (issue 17, items 2, 10 and 11):
//! label-file spellings of real releases, ROOT one level above the corpus folder, nested zip
//! folders, Git LFS pointer stubs, empty files, non-UTF-8 bytes in optional tables, the PMEmo
//! 2018 layout, DEAM's overlapping static files, and symbolic-link loops. Each on a small fake
//! tree.

use std::path::Path;

use emobridge_corpus::import::{self, Corpus, ImportOptions, Imported, IssueKind};
use emobridge_corpus::{Domain, Emotion};

fn tone(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let samples: Vec<f32> = (0..800).map(|i| 0.3 * (i as f32 * 0.1).sin()).collect();
    emobridge_audio::wav::write_wav_mono16(path, &samples, 8000).unwrap();
}

fn mp3(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        path,
        include_bytes!("../../emobridge-audio/tests/fixtures/sine440.mp3"),
    )
    .unwrap();
}

fn write(path: &Path, text: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn issues(m: &Imported, kind: IssueKind) -> Vec<String> {
    m.issues_of(kind)
        .map(|i| format!("{}: {}", i.path.display(), i.message))
        .collect()
}

fn ids(m: &Imported) -> Vec<&str> {
    let mut v: Vec<&str> = m.records.iter().map(|r| r.id.as_str()).collect();
    v.sort();
    v
}

const LFS_POINTER: &str = "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n";

#[test]
fn msp_podcast_1_8_spelling_and_old_labels_txt() {
    for (file, text) in [
        (
            "Labels/labels_concensus.csv",
            "FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set\nMSP-PODCAST_0001_0008.wav,N,4.0,4.0,4.0,127,Female,Train\nMSP-PODCAST_0002_0001.wav,A,7.0,1.0,6.0,Unknown,Male,Development\n",
        ),
        (
            "Labels/labels.txt",
            "MSP-PODCAST_0001_0008.wav; N; A:4.000000; V:4.000000; D:4.000000;\nWORKER00000001; Neutral; Neutral; A:3.000000; V:3.000000; D:4.000000;\nWORKER00000018; Angry; Angry; A:1.000000; V:4.000000; D:2.000000;\n\nMSP-PODCAST_0002_0001.wav; A; A:7.000000; V:1.000000; D:6.000000;\nWORKER00000021; Angry; Angry; A:7.000000; V:1.000000; D:6.000000;\n\n",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(&root.join(file), text);
        tone(&root.join("Audios/MSP-PODCAST_0001_0008.wav"));
        tone(&root.join("Audios/MSP-PODCAST_0002_0001.wav"));
        let m = import::import(Corpus::MspPodcast, root, &ImportOptions::default())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            ids(&m),
            ["MSP-PODCAST_0001_0008", "MSP-PODCAST_0002_0001"],
            "{file}"
        );
        let angry = m.records.iter().find(|r| r.id.ends_with("0001")).unwrap();
        assert_eq!(angry.emotion, Some(Emotion::Angry), "{file}");
        assert_eq!((angry.arousal, angry.valence), (Some(1.0), Some(-1.0)), "{file}");
        assert_eq!(angry.speaker, "podcast_0002", "{file}");
        assert!(m.issues.is_empty(), "{file}: {:?}", m.issues);
    }
    let dir = tempfile::tempdir().unwrap();
    tone(&dir.path().join("Audios/MSP-PODCAST_0001_0008.wav"));
    let e = import::import(Corpus::MspPodcast, dir.path(), &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("labels_concensus.csv") && e.contains("labels.txt"),
        "{e}"
    );
}

#[test]
fn crema_d_root_one_level_up_reads_wavs_and_tables_and_rejects_lfs_stubs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let home = root.join("CREMA-D");
    for stem in ["1001_DFA_ANG_XX", "1001_IEO_HAP_HI", "1002_TSI_SAD_XX"] {
        tone(&home.join(format!("AudioWAV/{stem}.wav")));
        mp3(&home.join(format!("AudioMP3/{stem}.mp3")));
    }
    // What a clone without `git lfs pull` holds, and an empty file.
    write(&home.join("AudioWAV/1002_DFA_NEU_XX.wav"), LFS_POINTER);
    write(&home.join("AudioWAV/1002_IEO_NEU_XX.wav"), "");
    write(
        &home.join("processedResults/summaryTable.csv"),
        "\"\",\"FileName\",\"VoiceVote\",\"VoiceLevel\"\n1,1001_DFA_ANG_XX,A,60\n2,1001_IEO_HAP_HI,H:N,70\n3,1002_TSI_SAD_XX,S,50\n",
    );
    write(
        &home.join("VideoDemographics.csv"),
        "ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n1002,21,Female,Asian,Not Hispanic\n",
    );
    let m = import::import(Corpus::CremaD, root, &ImportOptions::default()).unwrap();
    assert_eq!(
        ids(&m),
        ["1001_DFA_ANG_XX", "1001_IEO_HAP_HI", "1002_TSI_SAD_XX"]
    );
    assert!(m.records.iter().all(|r| r.path.ends_with(".wav")));
    assert!(issues(&m, IssueKind::Duplicate).is_empty());
    let r = m
        .records
        .iter()
        .find(|r| r.id == "1001_IEO_HAP_HI")
        .unwrap();
    assert_eq!(
        (r.extra("voice_vote"), r.extra("gender"), r.extra("age")),
        (Some("H:N"), Some("male"), Some("51"))
    );
    let bad = issues(&m, IssueKind::BadAudio);
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(
        bad.iter()
            .any(|b| b.contains("1002_DFA_NEU_XX.wav") && b.contains("Git LFS pointer")),
        "{bad:?}"
    );
    assert!(
        bad.iter()
            .any(|b| b.contains("1002_IEO_NEU_XX.wav") && b.contains("empty file")),
        "{bad:?}"
    );
}

#[test]
fn a_tree_of_only_lfs_stubs_fails_and_the_issues_file_it_names_exists() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("CREMA-D");
    for stem in ["1001_DFA_ANG_XX", "1002_TSI_SAD_XX"] {
        write(&root.join(format!("AudioWAV/{stem}.wav")), LFS_POINTER);
    }
    let e = import::import(Corpus::CremaD, &root, &ImportOptions::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("no crema-d clips found (2 file(s) reported)"),
        "{e}"
    );
    let listed = e.issues().expect("the issues travel with the error");
    let out = dir.path().join("out/m.csv");
    let written = import::write_issues_file(listed, &out).unwrap();
    assert_eq!(written, dir.path().join("out/m_issues.csv"));
    let text = std::fs::read_to_string(&written).unwrap();
    assert_eq!(text.matches("bad-audio").count(), 2, "{text}");
}

#[test]
fn emopia_root_above_the_release_folder_reads_labels_and_splits() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("EMOPIA_1.0");
    for name in ["Q1_abc_0", "Q2_def_1", "Q3_ghi_2"] {
        tone(&home.join(format!("audios/seg/{name}.wav")));
    }
    write(
        &home.join("label.csv"),
        "ID,4Q,annotator\nQ1_abc_0,1,a\nQ2_def_1,2,a\nQ3_ghi_2,3,a\nQ4_missing_0,4,a\n",
    );
    write(
        &home.join("split/train_SL.csv"),
        "songID,DominantQ\nabc,1\ndef,2\n",
    );
    write(&home.join("split/test_SL.csv"), "songID,DominantQ\nghi,3\n");
    let m = import::import(Corpus::Emopia, dir.path(), &ImportOptions::default()).unwrap();
    let split = |id: &str| m.records.iter().find(|r| r.id == id).unwrap().split.clone();
    assert_eq!(split("Q1_abc_0"), "train");
    assert_eq!(split("Q3_ghi_2"), "test");
    let missing = issues(&m, IssueKind::MissingAudio);
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(missing[0].contains("Q4_missing_0"));
}

#[test]
fn emomusic_clips_in_the_nested_zip_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        &root.join("annotations/static_annotations.csv"),
        "song_id,mean_arousal,std_arousal,mean_valence,std_valence\n2,3,1,7,2\n3,5,1,5,1\n",
    );
    mp3(&root.join("clips_45sec/clips_45seconds/2.mp3"));
    mp3(&root.join("clips_45sec/clips_45seconds/3.mp3"));
    let m = import::import(Corpus::EmoMusic, root, &ImportOptions::default()).unwrap();
    assert_eq!(ids(&m), ["emomusic_2", "emomusic_3"]);
}

#[test]
fn pmemo_metadata_with_a_latin1_byte_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("PMEmo2019");
    write(
        &root.join("annotations/static_annotations.csv"),
        "musicId,Arousal(mean),Valence(mean)\n1,0.5,0.75\n4,0.25,0.5\n",
    );
    mp3(&root.join("chorus/1.mp3"));
    mp3(&root.join("chorus/4.mp3"));
    let mut meta = b"musicId,fileName,title,artist\n1,1.mp3,Caf".to_vec();
    meta.push(0xE9); // Latin-1 e-acute: not UTF-8
    meta.extend_from_slice(b",Someone\n4,4.mp3,Song,Other\n");
    write(&root.join("metadata.csv"), meta);
    let m = import::import(Corpus::Pmemo, dir.path(), &ImportOptions::default()).unwrap();
    assert_eq!(ids(&m), ["pmemo_1", "pmemo_4"]);
    let r = m.records.iter().find(|r| r.id == "pmemo_1").unwrap();
    assert_eq!(r.extra("title"), Some("Caf\u{FFFD}"));
    let bad = issues(&m, IssueKind::BadAnnotation);
    assert!(
        bad.iter()
            .any(|b| b.contains("metadata.csv:2") && b.contains("UTF-8")),
        "{bad:?}"
    );
}

#[test]
fn pmemo_2018_layout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("PMEmo");
    write(
        &root.join("A_static.csv"),
        "musicId,mean,std\n1,0.75,0.1\n13,0.25,0.2\n20,0.5,0.1\n",
    );
    write(
        &root.join("V_static.csv"),
        "musicId,mean,std\n1,0.5,0.05\n13,0.0,0.1\n20,0.5,0.1\n",
    );
    write(
        &root.join("metadata.csv"),
        "musicId,fileName,title,artist\n1,1.mp3,A,B\n13,13.mp3,C,D\n",
    );
    write(
        &root.join("Annotations/Arousal/1-A.csv"),
        "time,rater1\n15.0,0.5\n",
    );
    let wide = |vals: [&str; 2]| {
        format!(
            "musicId,sample_15000ms,sample_15500ms\n1,{},{}\n13,0.5,0.5\n",
            vals[0], vals[1]
        )
    };
    write(&root.join("A_dynamic_mean.csv"), wide(["0.5", "1.0"]));
    write(&root.join("V_dynamic_mean.csv"), wide(["0.25", "0.75"]));
    mp3(&root.join("Chorus/1.mp3"));
    mp3(&root.join("Chorus/13.mp3"));
    let m = import::import(Corpus::Pmemo, dir.path(), &ImportOptions::default()).unwrap();
    assert_eq!(ids(&m), ["pmemo_1", "pmemo_13"]);
    let r = m.records.iter().find(|r| r.id == "pmemo_1").unwrap();
    assert_eq!((r.arousal, r.valence), (Some(0.5), Some(0.0)));
    assert_eq!(r.extra("arousal_std"), Some("0.2"));
    let trace = &m.dynamics["pmemo_1"];
    assert_eq!(trace.len(), 2);
    assert_eq!(
        (trace[1].time, trace[1].arousal, trace[1].valence),
        (15.5, 1.0, 0.5)
    );
    // Song 20 is annotated but has no audio.
    assert_eq!(issues(&m, IssueKind::MissingAudio).len(), 1);
}

#[test]
fn deam_song_in_both_static_files_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let ann = dir
        .path()
        .join("DEAM_Annotations/annotations/annotations averaged per song/song_level");
    write(
        &ann.join("static_annotations_averaged_songs_1_2000.csv"),
        "song_id, valence_mean, valence_std, arousal_mean, arousal_std\n2,5,1,5,1\n2000,3,1,7,1\n",
    );
    write(
        &ann.join("static_annotations_averaged_songs_2000_2058.csv"),
        "song_id,valence_mean,valence_std,arousal_mean,arousal_std\n2000,4,1,6,1\n2001,5,1,5,1\n",
    );
    for id in [2, 2000, 2001] {
        mp3(&dir.path().join(format!("DEAM_audio/MEMD_audio/{id}.mp3")));
    }
    let m = import::import(Corpus::Deam, dir.path(), &ImportOptions::default()).unwrap();
    assert_eq!(ids(&m), ["deam_2", "deam_2000", "deam_2001"]);
    let r = m.records.iter().find(|r| r.id == "deam_2000").unwrap();
    assert_eq!(r.arousal, Some(0.5)); // the first file's line wins
    let dup = issues(&m, IssueKind::Duplicate);
    assert_eq!(dup.len(), 1, "{dup:?}");
    assert!(
        dup[0].contains("song `2000`") && dup[0].contains("_1_2000.csv:3"),
        "{dup:?}"
    );
}

#[cfg(unix)]
#[test]
fn symlink_loops_and_links_out_of_the_root() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    for (label, speaker, n) in [("happy", "a", 5), ("sad", "b", 5)] {
        for k in 0..n {
            tone(&root.join(format!("{label}/{speaker}/take{k}.wav")));
        }
    }
    // A link from inside the tree to its root (once: 10 clips became 490 rows, relabelled).
    symlink(&root, root.join("sad/b/loop")).unwrap();
    symlink(root.join("happy"), root.join("sad/again")).unwrap();
    // A file link inside the tree is a name like any other.
    symlink(
        root.join("happy/a/take0.wav"),
        root.join("happy/a/alias.wav"),
    )
    .unwrap();
    // Audio kept elsewhere, linked in.
    let outside = dir.path().join("disk");
    for k in 0..3 {
        tone(&outside.join(format!("c/x{k}.wav")));
    }
    symlink(outside.join("c"), root.join("happy/c")).unwrap();
    symlink(&root, outside.join("c/back")).unwrap(); // a loop through the outside folder
    let opts = |follow_links| ImportOptions {
        domain: Some(Domain::Speech),
        follow_links,
        ..Default::default()
    };
    let m = import::import(Corpus::FolderPerLabel, &root, &opts(false)).unwrap();
    assert_eq!(m.records.len(), 11, "{:?}", ids(&m));
    assert_eq!(
        m.records
            .iter()
            .filter(|r| r.emotion == Some(Emotion::Sad))
            .count(),
        5
    );
    let links = issues(&m, IssueKind::Link);
    assert_eq!(links.len(), 3, "{links:?}");
    assert!(
        links
            .iter()
            .any(|l| l.contains("loop") && l.contains("makes a loop")),
        "{links:?}"
    );
    assert!(
        links
            .iter()
            .any(|l| l.contains("happy/c") && l.contains("--follow-links")),
        "{links:?}"
    );

    let m = import::import(Corpus::FolderPerLabel, &root, &opts(true)).unwrap();
    assert_eq!(m.records.len(), 14, "{:?}", ids(&m));
    assert!(m.records.iter().any(|r| r.id == "happy/c/x2"));
    let links = issues(&m, IssueKind::Link);
    assert_eq!(links.len(), 3, "{links:?}"); // loop, sad/again, and c/back
}
