//! EMOPIA, emoMusic, DEAM, PMEmo and folder-per-label importers on fake trees in the
//! publishers' layouts, including the 2 Hz arousal/valence traces written beside the manifest.

use std::path::Path;

use emobridge_corpus::import::{self, Corpus, ImportOptions, Imported, IssueKind, Preset};
use emobridge_corpus::{Domain, Emotion, Manifest};

fn tone(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let samples: Vec<f32> = (0..800).map(|i| 0.3 * (i as f32 * 0.1).sin()).collect();
    emobridge_audio::wav::write_wav_mono16(path, &samples, 8000).unwrap();
}

/// A real (1 s) MP3 clip: imports check each audio header.
fn clip(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        path,
        include_bytes!("../../emobridge-audio/tests/fixtures/sine440.mp3"),
    )
    .unwrap();
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn close(a: Option<f32>, b: f32) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-6)
}

fn get<'a>(m: &'a Imported, id: &str) -> &'a emobridge_corpus::Record {
    m.records
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no record {id}"))
}

#[test]
fn emopia_quadrants_songs_and_splits() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("EMOPIA_2.2");
    let clips = [
        "Q1__0vLPYiPN7qY_0",
        "Q1__0vLPYiPN7qY_1",
        "Q3__0vLPYiPN7qY_3",
        "Q2_dtS02mrDMsM_0",
        "Q4_Ie5koh4qvJc_20",
        "Q4_Ie5koh4qvJc_21",
        "Q3_wxXpvnmq_-E_1",
    ];
    for c in clips {
        tone(&root.join(format!("audios/seg/{c}.wav")));
        write(&root.join(format!("midis/{c}.mid")), "MThd");
    }
    tone(&root.join("audios/seg/Q5_abc_0.wav"));
    tone(&root.join("audios/seg/Q1_abc.wav"));
    tone(&root.join("audios/seg/Q2_conflict_0.wav"));
    let mut labels = String::from("ID,4Q,annotator\n");
    for c in clips {
        labels.push_str(&format!("{c},{},a\n", &c[1..2]));
    }
    labels.push_str("Q2_conflict_0,3,b\nQ1_nosound_0,1,c\n");
    write(&root.join("label.csv"), &labels);
    write(
        &root.join("split/train_SL.csv"),
        "songID,num_Q1,num_Q2,num_Q3,num_Q4,DominantQ\n_0vLPYiPN7qY,2,0,1,0,1\n",
    );
    write(
        &root.join("split/val.csv"),
        "fname,label\nQ2_dtS02mrDMsM_0,Q2\n",
    );
    write(
        &root.join("split/test.csv"),
        "fname,label\nQ4_Ie5koh4qvJc_20,Q4\nQ4_Ie5koh4qvJc_21,Q4\n",
    );

    let m = import::import(Corpus::Emopia, &root, &ImportOptions::default()).unwrap();
    assert_eq!(m.records.len(), 7);
    assert!(m
        .records
        .iter()
        .all(|r| r.domain == Domain::Music && r.emotion.is_none()));
    let r = get(&m, "Q1__0vLPYiPN7qY_1");
    assert_eq!(
        (r.speaker.as_str(), r.split.as_str(), r.arousal, r.valence),
        ("_0vLPYiPN7qY", "train", Some(1.0), Some(1.0))
    );
    assert_eq!(
        (r.extra("quadrant"), r.extra("clip"), r.extra("av_scale")),
        (Some("Q1"), Some("1"), Some("quadrant sign"))
    );
    let q3 = get(&m, "Q3_wxXpvnmq_-E_1");
    assert_eq!(
        (
            q3.speaker.as_str(),
            q3.arousal,
            q3.valence,
            q3.split.as_str()
        ),
        ("wxXpvnmq_-E", Some(-1.0), Some(-1.0), "")
    );
    assert_eq!(get(&m, "Q4_Ie5koh4qvJc_21").split, "test");
    assert_eq!(get(&m, "Q2_dtS02mrDMsM_0").split, "val");
    let songs: std::collections::BTreeSet<_> =
        m.records.iter().map(|r| r.speaker.as_str()).collect();
    assert_eq!(songs.len(), 4);
    assert_eq!(m.issues_of(IssueKind::BadName).count(), 2);
    assert_eq!(m.issues_of(IssueKind::Conflict).count(), 1);
    let missing: Vec<_> = m.issues_of(IssueKind::MissingAudio).collect();
    assert_eq!(missing.len(), 1);
    assert!(missing[0].message.contains("Q1_nosound_0"));

    let q = import::import(
        Corpus::Emopia,
        &root,
        &ImportOptions {
            preset: Preset::Quadrant4,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        q.labels(),
        vec![Emotion::Calm, Emotion::Happy, Emotion::Sad, Emotion::Angry]
    );
    assert_eq!(get(&q, "Q4_Ie5koh4qvJc_20").emotion, Some(Emotion::Calm));
    assert_eq!(get(&q, "Q2_dtS02mrDMsM_0").emotion, Some(Emotion::Angry));
}

fn wide(ids: &[u32], from_ms: u32, values: &dyn Fn(u32, usize) -> Option<f32>, n: usize) -> String {
    let mut s = String::from("song_id");
    for k in 0..n {
        s.push_str(&format!(",sample_{}ms", from_ms + 500 * k as u32));
    }
    s.push('\n');
    for &id in ids {
        s.push_str(&id.to_string());
        for k in 0..n {
            s.push(',');
            if let Some(v) = values(id, k) {
                s.push_str(&format!("{v}"));
            }
        }
        s.push('\n');
    }
    s
}

#[test]
fn emomusic_static_and_dynamic_annotations() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("emoMusic");
    for id in [2, 3, 5, 7] {
        clip(&root.join(format!("clips_45seconds/{id}.mp3")));
    }
    write(
        &root.join("annotations/static_annotations.csv"),
        "song_id,mean_arousal,std_arousal,mean_valence,std_valence\n2,3.1,0.94,3,0.63\n3,7,2,5,1\n5,9,1,1,1\n11,5,1,5,1\n13,10,1,5,1\n",
    );
    let values = |id: u32, k: usize| Some(if id == 3 { 0.01 * k as f32 } else { -0.5 });
    write(
        &root.join("annotations/arousal_cont_average.csv"),
        &wide(&[2, 3], 15000, &values, 60),
    );
    write(
        &root.join("annotations/valence_cont_average.csv"),
        &wide(&[2, 3], 15000, &|id, k| values(id, k).map(|v| -v), 60),
    );
    write(
        &root.join("annotations/songs_info.csv"),
        "song_id,file_name,Artist,Song title,start of the segment (min.sec),end of the segment (min.sec),Genre,Mediaeval 2013 set\n\
         2,2.mp3,Kevin MacLeod,Song A,0.35,1.2,Blues,development\n3,3.mp3,Other,Song B,1,1.45,Rock,evaluation\n",
    );

    let m = import::import(Corpus::EmoMusic, &root, &ImportOptions::default()).unwrap();
    assert_eq!(m.records.len(), 3);
    let r = get(&m, "emomusic_3");
    assert_eq!(
        (r.speaker.as_str(), r.emotion, r.split.as_str()),
        ("3", None, "test")
    );
    assert!(close(r.arousal, 0.5) && close(r.valence, 0.0));
    assert_eq!(
        (r.extra("arousal_std"), r.extra("valence_std")),
        (Some("0.5"), Some("0.25"))
    );
    assert_eq!(
        (r.extra("genre"), r.extra("artist"), r.extra("av_scale")),
        (Some("Rock"), Some("Other"), Some("1-9 -> (x-5)/4"))
    );
    assert!(close(get(&m, "emomusic_2").arousal, (3.1 - 5.0) / 4.0));
    assert_eq!(get(&m, "emomusic_2").split, "dev");
    let five = get(&m, "emomusic_5");
    assert!(close(five.arousal, 1.0) && close(five.valence, -1.0));
    assert_eq!(m.dynamics.len(), 2);
    let trace = &m.dynamics["emomusic_3"];
    assert_eq!(trace.len(), 60);
    assert_eq!((trace[0].time, trace[59].time), (15.0, 44.5));
    assert!((trace[10].arousal - 0.1).abs() < 1e-6 && (trace[10].valence + 0.1).abs() < 1e-6);
    assert_eq!(m.issues_of(IssueKind::MissingAudio).count(), 1); // song 11
    assert_eq!(m.issues_of(IssueKind::BadAnnotation).count(), 1); // song 13: arousal 10
    assert_eq!(m.issues_of(IssueKind::NoAnnotation).count(), 1); // clip 7

    // Written: one time,arousal,valence file per traced clip, named in the manifest.
    let out = dir.path().join("out/emomusic.csv");
    let written = import::write_outputs(&m, &out).unwrap();
    assert_eq!(
        written.annotations.as_deref(),
        Some(dir.path().join("out/emomusic_annotations").as_path())
    );
    let manifest = Manifest::read(&out).unwrap();
    let row = manifest
        .records
        .iter()
        .find(|r| r.id == "emomusic_3")
        .unwrap();
    assert_eq!(row.annotation, "emomusic_annotations/emomusic_3.csv");
    let text = std::fs::read_to_string(manifest.annotation_path(row).unwrap()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "time,arousal,valence");
    assert_eq!(lines.len(), 61);
    assert_eq!(lines[1], "15,0,0");
    let last: Vec<f32> = lines[60].split(',').map(|x| x.parse().unwrap()).collect();
    assert!(
        last[0] == 44.5 && (last[1] - 0.59).abs() < 1e-6 && (last[2] + 0.59).abs() < 1e-6,
        "{}",
        lines[60]
    );
    assert_eq!(
        manifest
            .records
            .iter()
            .find(|r| r.id == "emomusic_5")
            .unwrap()
            .annotation,
        ""
    );
}

#[test]
fn deam_layout_with_padded_headers_and_ragged_traces() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("DEAM");
    for id in [2, 3, 2001] {
        clip(&root.join(format!("DEAM_audio/MEMD_audio/{id}.mp3")));
    }
    clip(&root.join("DEAM_audio/MEMD_audio/4.mp3"));
    let avg = root.join("DEAM_Annotations/annotations/annotations averaged per song");
    write(
        &avg.join("song_level/static_annotations_averaged_songs_1_2000.csv"),
        "song_id, valence_mean, valence_std, arousal_mean, arousal_std\n2,3.1,0.94,3,0.63\n3,5,1,7,2\n",
    );
    write(
        &avg.join("song_level/static_annotations_averaged_songs_2000_2058.csv"),
        "song_id,valence_mean,valence_std,arousal_mean,arousal_std\n2001,9,0,1,0\n2002,5,1,5,1\n",
    );
    // Song 2 has 60 points, song 3 only 40 (the rest empty), song 2001 is a long full song.
    let a = |id: u32, k: usize| match id {
        3 if k >= 40 => None,
        2001 => Some(0.2),
        _ => Some(0.1 * (k % 10) as f32),
    };
    let dynamic = avg.join("dynamic (per second annotations)");
    write(
        &dynamic.join("arousal.csv"),
        &wide(&[2, 3, 2001], 15000, &a, 90),
    );
    write(
        &dynamic.join("valence.csv"),
        &wide(&[2, 3, 2001], 15000, &|id, k| a(id, k).map(|v| v / 2.0), 90),
    );

    let m = import::import(Corpus::Deam, &root, &ImportOptions::default()).unwrap();
    assert_eq!(m.records.len(), 3);
    let r = get(&m, "deam_3");
    assert!(close(r.arousal, 0.5) && close(r.valence, 0.0));
    assert_eq!(
        (r.extra("arousal_std"), r.extra("valence_std")),
        (Some("0.5"), Some("0.25"))
    );
    let full = get(&m, "deam_2001");
    assert!(close(full.arousal, -1.0) && close(full.valence, 1.0));
    assert_eq!(m.dynamics["deam_3"].len(), 40);
    assert_eq!(m.dynamics["deam_2001"].len(), 90);
    let p = m.dynamics["deam_2"][13];
    assert_eq!(p.time, 21.5);
    assert!((p.arousal - 0.3).abs() < 1e-6 && (p.valence - 0.15).abs() < 1e-6);
    assert_eq!(m.issues_of(IssueKind::MissingAudio).count(), 1); // 2002
    assert_eq!(m.issues_of(IssueKind::NoAnnotation).count(), 1); // 4.mp3
    assert_eq!(m.issues.len(), 2, "{:?}", m.issues);
}

#[test]
fn pmemo_maps_unit_interval_and_long_dynamic_table() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("PMEmo2019");
    for id in [1, 4, 5] {
        clip(&root.join(format!("chorus/{id}.mp3")));
    }
    write(
        &root.join("annotations/static_annotations.csv"),
        "musicId,Arousal(mean),Valence(mean)\n1,0.4,0.575\n4,0.75,0.25\n5,1.3,0.5\n9,0.5,0.5\n",
    );
    write(
        &root.join("annotations/static_annotations_std.csv"),
        "musicId,Arousal(std),Valence(std)\n1,0.1,0.2\n",
    );
    let mut dynamic = String::from("musicId,frameTime,Arousal(mean),Valence(mean)\n");
    for k in (0..6).rev() {
        dynamic.push_str(&format!(
            "1,{},{},0.5\n",
            15.5 + 0.5 * k as f32,
            0.1 * k as f32
        ));
    }
    dynamic.push_str("4,15.5,0.75,x\n4,16.0,0.75,0.25\n");
    write(&root.join("annotations/dynamic_annotations.csv"), &dynamic);
    write(&root.join("metadata.csv"), "musicId,fileName,title,artist,album,duration,chorus_start_time,chorus_end_time\n1,1.mp3,Title One,Artist One,A,200,60,90\n");

    // ROOT may be the folder holding PMEmo2019/.
    let m = import::import(Corpus::Pmemo, dir.path(), &ImportOptions::default()).unwrap();
    assert_eq!(m.records.len(), 2);
    let r = get(&m, "pmemo_1");
    assert!(close(r.arousal, -0.2) && close(r.valence, 0.15));
    assert_eq!(
        (r.extra("arousal_std"), r.extra("valence_std")),
        (Some("0.2"), Some("0.4"))
    );
    assert_eq!(
        (r.extra("title"), r.extra("artist"), r.extra("av_scale")),
        (
            Some("Title One"),
            Some("Artist One"),
            Some("[0,1] -> 2(x-0)-1")
        )
    );
    let t = &m.dynamics["pmemo_1"];
    assert_eq!(
        t.iter().map(|p| p.time).collect::<Vec<_>>(),
        vec![15.5, 16.0, 16.5, 17.0, 17.5, 18.0]
    );
    assert!(
        (t[5].arousal - 0.0).abs() < 1e-6
            && (t[0].arousal + 1.0).abs() < 1e-6
            && t[0].valence == 0.0
    );
    assert_eq!(m.dynamics["pmemo_4"].len(), 1);
    assert_eq!(m.issues_of(IssueKind::BadAnnotation).count(), 2); // song 5 arousal 1.3, one bad trace row
    assert_eq!(m.issues_of(IssueKind::MissingAudio).count(), 1); // song 9
}

#[test]
fn folder_per_label_reads_labels_and_groups() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mine");
    tone(&root.join("Happiness/singer1/take1.wav"));
    tone(&root.join("Happiness/singer2/take1.wav"));
    tone(&root.join("sad/singer1/take2.wav"));
    tone(&root.join("ANGER/solo.wav"));
    tone(&root.join("elated/singer1/x.wav"));
    tone(&root.join("loose.wav"));
    write(&root.join("sad/notes.txt"), "text");

    let err = import::import(Corpus::FolderPerLabel, &root, &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("domain"), "{err}");
    let m = import::import(
        Corpus::FolderPerLabel,
        &root,
        &ImportOptions {
            domain: Some(Domain::Music),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(m.records.len(), 4);
    assert!(m.records.iter().all(|r| r.domain == Domain::Music));
    let r = get(&m, "Happiness/singer2/take1");
    assert_eq!(
        (r.emotion, r.speaker.as_str(), r.extra("source_label")),
        (Some(Emotion::Happy), "singer2", Some("Happiness"))
    );
    assert_eq!(get(&m, "ANGER/solo").speaker, "solo");
    assert_eq!(get(&m, "sad/singer1/take2").emotion, Some(Emotion::Sad));
    assert_eq!(m.issues_of(IssueKind::BadName).count(), 2);
}
