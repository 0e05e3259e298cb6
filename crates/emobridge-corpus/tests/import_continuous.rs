//! Time-continuous corpora: the RECOLA reader on a fake tree in the AVEC 2016 layout, and the
//! annotation CSVs the importers write (RECOLA, PMEmo) read back through `trace::read_trace`.

use std::path::Path;

use emobridge_corpus::import::{self, Corpus, ImportOptions, IssueKind, Preset};
use emobridge_corpus::trace::{align, read_trace};
use emobridge_corpus::{Domain, Manifest};

fn tone(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let samples: Vec<f32> = (0..800).map(|i| 0.3 * (i as f32 * 0.1).sin()).collect();
    emobridge_audio::wav::write_wav_mono16(path, &samples, 8000).unwrap();
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Six raters at 40 ms; rater FF3 disagrees (inverted) with the others.
fn ratings(n: usize, sep: char, f: &dyn Fn(usize) -> f64) -> String {
    let cols = ["time", "FM1", "FM2", "FM3", "FF1", "FF2", "FF3"];
    let mut s = cols.join(&sep.to_string()) + "\n";
    for k in 0..n {
        let v = f(k);
        let row = [
            format!("{:.2}", k as f64 * 0.04),
            format!("{v:.4}"),
            format!("{:.4}", v * 0.9),
            format!("{:.4}", v + 0.05),
            format!("{:.4}", v * 1.1),
            format!("{v:.4}"),
            format!("{:.4}", -v),
        ];
        s += &(row.join(&sep.to_string()) + "\n");
    }
    s
}

#[test]
fn recola_layout_gold_standards_and_written_traces() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("AVEC_2016");
    let ind = root.join("ratings_individual");
    let f = |k: usize| (k as f64 * 0.05).sin() * 0.6;
    for name in ["train_1", "dev_1"] {
        tone(&root.join(format!("recordings_audio/{name}.wav")));
        write(
            &ind.join(format!("arousal/{name}.csv")),
            &ratings(100, ';', &f),
        );
        write(
            &ind.join(format!("valence/{name}.csv")),
            &ratings(100, ',', &|k| f(k) * 0.5),
        );
    }
    // Audio without valence ratings; ratings without audio; an out-of-range rating.
    tone(&root.join("recordings_audio/train_2.wav"));
    write(&ind.join("arousal/train_2.csv"), &ratings(10, ';', &f));
    write(&ind.join("arousal/test_9.csv"), &ratings(10, ';', &f));
    write(&ind.join("valence/test_9.csv"), &ratings(10, ';', &f));
    tone(&root.join("recordings_audio/dev_2.wav"));
    write(&ind.join("arousal/dev_2.csv"), &ratings(10, ';', &|_| 1.5));
    write(&ind.join("valence/dev_2.csv"), &ratings(10, ';', &f));

    let mean = import::import(Corpus::Recola, &root, &ImportOptions::default()).unwrap();
    assert_eq!(mean.records.len(), 2);
    let r = mean
        .records
        .iter()
        .find(|r| r.id == "recola_train_1")
        .unwrap();
    assert_eq!((r.domain, r.split.as_str()), (Domain::Speech, "train"));
    assert_eq!(r.extra("raters"), Some("FM1 FM2 FM3 FF1 FF2 FF3"));
    assert_eq!(mean.issues_of(IssueKind::NoAnnotation).count(), 1); // train_2
    assert_eq!(mean.issues_of(IssueKind::MissingAudio).count(), 1); // test_9
    assert_eq!(mean.issues_of(IssueKind::BadAnnotation).count(), 1); // dev_2
                                                                     // Rater mean at k = 10: (1 + 0.9 + 1 + 1.1 + 1 − 1) v / 6 + 0.05 / 6.
    let v10 = f(10);
    let t = &mean.dynamics["recola_train_1"];
    assert_eq!(t.len(), 100);
    assert!((t[10].time - 0.4).abs() < 1e-6);
    let want = (v10 * 4.0 + 0.05) / 6.0;
    assert!(
        (t[10].arousal as f64 - want).abs() < 2e-4,
        "{} vs {want}",
        t[10].arousal
    );

    let opts = ImportOptions {
        preset: Preset::CccWeighted,
        ..ImportOptions::default()
    };
    let ewe = import::import(Corpus::Recola, &root, &opts).unwrap();
    let t = &ewe.dynamics["recola_train_1"];
    // The inverted rater gets weight 0: the fusion sits near the agreeing raters' level.
    assert!(
        t[10].arousal as f64 > 0.9 * v10,
        "{} vs {v10}",
        t[10].arousal
    );
    assert_eq!(ewe.records[0].extra("gold_standard"), Some("ccc-weighted"));
    assert!(import::import(Corpus::Pmemo, &root, &opts).is_err());

    // The written annotation CSVs read back as traces at 25 Hz.
    let out = dir.path().join("out/recola.csv");
    import::write_outputs(&ewe, &out).unwrap();
    let m = Manifest::read(&out).unwrap();
    for r in &m.records {
        let (trace, report) = read_trace(&m.annotation_path(r).unwrap()).unwrap();
        assert_eq!(trace.time.len(), 100);
        assert!((trace.median_step() - 0.04).abs() < 1e-6);
        assert_eq!(report.bad_rows + report.gaps, 0);
    }
}

#[test]
fn pmemo_dynamic_labels_become_usable_traces() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("PMEmo2019");
    std::fs::create_dir_all(root.join("chorus")).unwrap();
    // A real MP3: the importer checks every clip's audio header.
    std::fs::write(
        root.join("chorus/1.mp3"),
        include_bytes!("../../emobridge-audio/tests/fixtures/sine440.mp3"),
    )
    .unwrap();
    write(
        &root.join("annotations/static_annotations.csv"),
        "musicId,Arousal(mean),Valence(mean)\n1,0.4,0.575\n",
    );
    let mut dynamic = String::from("musicId,frameTime,Arousal(mean),Valence(mean)\n");
    for k in 0..20 {
        dynamic.push_str(&format!(
            "1,{},{},0.5\n",
            15.0 + 0.5 * k as f32,
            0.05 * k as f32
        ));
    }
    write(&root.join("annotations/dynamic_annotations.csv"), &dynamic);
    let m = import::import(Corpus::Pmemo, &root, &ImportOptions::default()).unwrap();
    let out = dir.path().join("pmemo.csv");
    import::write_outputs(&m, &out).unwrap();
    let manifest = Manifest::read(&out).unwrap();
    let (trace, _) = read_trace(&manifest.annotation_path(&manifest.records[0]).unwrap()).unwrap();
    assert_eq!(trace.time[0], 15.0);
    assert!((trace.median_step() - 0.5).abs() < 1e-9);
    assert!((trace.arousal[19] - (2.0 * 0.95 - 1.0)).abs() < 1e-6);
}

fn mp3(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        path,
        include_bytes!("../../emobridge-audio/tests/fixtures/sine440.mp3"),
    )
    .unwrap();
}

/// emoMusic / DEAM wide tables: `song_id,sample_15000ms,…` every 500 ms.
fn wide(id: u32, n: usize, f: &dyn Fn(usize) -> f32) -> String {
    let mut s = String::from("song_id");
    for k in 0..n {
        s.push_str(&format!(",sample_{}ms", 15000 + 500 * k));
    }
    s.push_str(&format!("\n{id}"));
    for k in 0..n {
        s.push_str(&format!(",{}", f(k)));
    }
    s + "\n"
}

/// The 2 Hz dynamic labels of DEAM, emoMusic and PMEmo, imported from fake trees, written beside
/// the manifest and read back the way `emobridge continuous` reads them (`read_trace`, then
/// `align` at the 1 s / 0.5 s windows' centres plus a lag): 2 Hz, starting at 15 s, the frames
/// before the annotated span trimmed, values interpolated between annotation points.
#[test]
fn music_dynamic_labels_align_to_the_continuous_windows() {
    let dir = tempfile::tempdir().unwrap();
    let f = |k: usize| 0.02 * k as f32 - 0.5;
    // emoMusic: 60 points from 15 s.
    let emo = dir.path().join("emoMusic");
    mp3(&emo.join("clips_45seconds/3.mp3"));
    write(
        &emo.join("annotations/static_annotations.csv"),
        "song_id,mean_arousal,std_arousal,mean_valence,std_valence\n3,7,2,5,1\n",
    );
    write(
        &emo.join("annotations/arousal_cont_average.csv"),
        &wide(3, 60, &f),
    );
    write(
        &emo.join("annotations/valence_cont_average.csv"),
        &wide(3, 60, &|k| -f(k)),
    );
    // DEAM: the same values in its own layout.
    let deam = dir.path().join("DEAM");
    mp3(&deam.join("DEAM_audio/MEMD_audio/3.mp3"));
    let avg = deam.join("DEAM_Annotations/annotations/annotations averaged per song");
    write(
        &avg.join("song_level/static_annotations_averaged_songs_1_2000.csv"),
        "song_id,valence_mean,valence_std,arousal_mean,arousal_std\n3,5,1,7,2\n",
    );
    let dynamic = avg.join("dynamic (per second annotations)");
    write(&dynamic.join("arousal.csv"), &wide(3, 60, &f));
    write(&dynamic.join("valence.csv"), &wide(3, 60, &|k| -f(k)));
    // PMEmo: long table on [0, 1], mapped to 2x − 1 (so the same values after mapping).
    let pmemo = dir.path().join("PMEmo2019");
    mp3(&pmemo.join("chorus/3.mp3"));
    write(
        &pmemo.join("annotations/static_annotations.csv"),
        "musicId,Arousal(mean),Valence(mean)\n3,0.5,0.5\n",
    );
    let mut long = String::from("musicId,frameTime,Arousal(mean),Valence(mean)\n");
    for k in 0..60 {
        long.push_str(&format!(
            "3,{},{},{}\n",
            15.0 + 0.5 * k as f32,
            (f(k) + 1.0) / 2.0,
            (1.0 - f(k)) / 2.0
        ));
    }
    write(&pmemo.join("annotations/dynamic_annotations.csv"), &long);

    // Window centres of a 45 s clip at 1 s / 0.5 s, as the study labels them.
    let centres: Vec<f64> = (0..89).map(|k| 0.5 * k as f64 + 0.5).collect();
    for (corpus, root, id) in [
        (Corpus::EmoMusic, &emo, "emomusic_3"),
        (Corpus::Deam, &deam, "deam_3"),
        (Corpus::Pmemo, &pmemo, "pmemo_3"),
    ] {
        let imported = import::import(corpus, root, &ImportOptions::default()).unwrap();
        let out = dir.path().join(format!("out/{id}.csv"));
        import::write_outputs(&imported, &out).unwrap();
        let m = Manifest::read(&out).unwrap();
        let r = m.records.iter().find(|r| r.id == id).unwrap();
        assert_eq!(r.domain, Domain::Music, "{id}");
        let (trace, report) = read_trace(&m.annotation_path(r).unwrap()).unwrap();
        assert_eq!(
            report.bad_rows + report.gaps + report.duplicate_times,
            0,
            "{id}"
        );
        assert!(!report.unsorted, "{id}");
        assert_eq!(trace.time.len(), 60, "{id}");
        assert!((trace.median_step() - 0.5).abs() < 1e-9, "{id}: 2 Hz");
        assert!((trace.time[0] - 15.0).abs() < 1e-9, "{id}");
        let (start, labels) = align(&trace, &centres).unwrap();
        // Centres 15.0 … 44.5 s: frame 29 onwards, 60 labels, the trace's own values.
        assert_eq!((start, labels.len()), (29, 60), "{id}");
        for (k, (a, v)) in labels.iter().enumerate() {
            assert!((a - f(k) as f64).abs() < 1e-5, "{id} frame {k}: {a}");
            assert!((v + f(k) as f64).abs() < 1e-5, "{id} frame {k}: {v}");
        }
        // A lag of 0.25 s: frame 28 (14.75 s) is within half a step of the first point and holds
        // its value; frame 29 (15.25 s) lands between points and is interpolated linearly.
        let lagged: Vec<f64> = centres.iter().map(|t| t + 0.25).collect();
        let (s2, l2) = align(&trace, &lagged).unwrap();
        assert_eq!(s2, 28, "{id}");
        assert!((l2[0].0 - f(0) as f64).abs() < 1e-5, "{id}");
        assert!((l2[1].0 - (f(0) + f(1)) as f64 / 2.0).abs() < 1e-5, "{id}");
    }
}
