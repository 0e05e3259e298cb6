//! The continuous study end to end on a small synthetic corpus, with damaged annotation files
//! (missing, unsorted, NaN rows, a gap, another rate, shorter / later / longer than the audio)
//! handled by the stated rules and counted in `run.json`.

use emobridge_corpus::synth::{generate, SynthConfig};
use emobridge_corpus::Manifest;
use emobridge_learn::dae::DaeConfig;
use emobridge_learn::seqtrain::SeqTrainConfig;
use emobridge_studies::continuous::{self, ContinuousConfig, FeatureKind};

fn tiny_config() -> ContinuousConfig {
    ContinuousConfig {
        features: FeatureKind::Egemaps,
        folds: 2,
        dae_all_rows: false,
        lag_sweep: vec![3.0],
        lstm: SeqTrainConfig {
            hidden: vec![12],
            restarts: 2,
            keep_best: 1,
            max_epochs: 8,
            patience: 4,
            batch_size: 2,
            ..SeqTrainConfig::default()
        },
        dae: DaeConfig {
            hidden: vec![16],
            epochs: 3,
            ..DaeConfig::default()
        },
        ..ContinuousConfig::default()
    }
}

#[test]
fn writes_the_full_table_and_counts_repairs() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    let synth = SynthConfig {
        clips_per_cell: 1,
        speakers: 4,
        performers: 4,
        clip_seconds: (1.0, 1.2),
        continuous_per_domain: 5,
        continuous_seconds: (16.0, 18.0),
        ..SynthConfig::default()
    };
    let summary = generate(&corpus, &synth, &|_, _| {}).unwrap();
    let m = Manifest::read(&summary.manifest_path).unwrap();
    let annotated: Vec<_> = m
        .records
        .iter()
        .filter(|r| !r.annotation.is_empty())
        .collect();
    assert_eq!(annotated.len(), 10);
    // Damage: one file missing, one unsorted with a NaN row and a duplicated time.
    std::fs::remove_file(m.annotation_path(annotated[0]).unwrap()).unwrap();
    let p = m.annotation_path(annotated[6]).unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.swap(3, 4);
    let dup = lines[10].to_string();
    lines.insert(11, &dup);
    lines[20] = "10.0,nan,0.1";
    std::fs::write(&p, lines.join("\n")).unwrap();
    // A gap of 3 s, a trace shorter than its audio (10 s of 16–18 s), one starting 3 s late,
    // one at 1 Hz, and one running 20 s past its audio.
    let edit = |i: usize, f: &dyn Fn(Vec<String>) -> Vec<String>| {
        let p = m.annotation_path(annotated[i]).unwrap();
        let lines: Vec<String> = std::fs::read_to_string(&p)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        std::fs::write(&p, f(lines).join("\n")).unwrap();
    };
    edit(7, &|mut l| {
        l.drain(12..18);
        l
    });
    edit(8, &|mut l| {
        l.truncate(21);
        l
    });
    edit(1, &|mut l| {
        l.drain(1..7);
        l
    });
    edit(9, &|l| {
        l.into_iter()
            .enumerate()
            .filter(|(k, _)| *k == 0 || k % 2 == 1)
            .map(|(_, x)| x)
            .collect()
    });
    edit(2, &|mut l| {
        for k in 0..40 {
            l.push(format!("{:.1},0.1,0.1", 20.0 + 0.5 * k as f64));
        }
        l
    });

    let out = dir.path().join("run");
    let outcome = continuous::run(&tiny_config(), &m, &out, &|_, _| {}).unwrap();
    let labels: Vec<String> = outcome.settings.iter().map(|s| s.label()).collect();
    assert_eq!(
        labels,
        [
            "intra music→music",
            "intra speech→speech",
            "cross music→speech",
            "cross speech→music",
            "cross_dae music→speech",
            "cross_dae speech→music"
        ]
    );
    for s in &outcome.settings {
        for t in [&s.arousal, &s.valence] {
            assert!(
                t.pooled.ccc.is_finite() && t.pooled.rmse > 0.0,
                "{}",
                s.label()
            );
        }
    }
    // Arousal is carried by loudness and rate in both domains: learnable even by this tiny net.
    let intra_speech = &outcome.settings[1];
    assert!(
        intra_speech.arousal.pooled.pearson > 0.2,
        "{:?}",
        intra_speech.arousal
    );
    let r = &outcome.repairs;
    assert_eq!((r.files_read, r.files_skipped), (9, 1));
    assert_eq!(
        (
            r.unsorted_files,
            r.bad_rows_dropped,
            r.duplicate_times_dropped
        ),
        (1, 1, 1)
    );
    assert!(r.gaps_interpolated >= 2, "{r:?}"); // the 3 s gap and the dropped NaN row
    assert_eq!(r.annotation_rates_hz.get("1.00"), Some(&1), "{r:?}");
    assert_eq!(r.annotation_rates_hz.get("2.00"), Some(&8), "{r:?}");
    assert!(r.frames_trimmed_start >= 5, "{r:?}"); // the trace starting 3 s late
    assert!(r.frames_trimmed_end >= 10, "{r:?}"); // the trace ending at 10 s
    assert_eq!(outcome.lag_sweep.len(), 2);
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["notes"]["annotation_repairs"]["files_skipped"], 1);
    assert!(run["failures"][0]["path"]
        .as_str()
        .unwrap()
        .ends_with(".csv"));
    assert_eq!(run["config"]["features"], "egemaps");
    let table = std::fs::read_to_string(out.join("results_table.csv")).unwrap();
    assert_eq!(table.lines().count(), 7);
    assert!(table.starts_with("setting,A r,A CCC,A RMSE,V r,V CCC,V RMSE"));
    for f in [
        "results.csv",
        "curves.csv",
        "lag_sweep.csv",
        "results_table.md",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let model = std::fs::read(out.join("models/cross_music_to_speech.safetensors")).unwrap();
    let spec = emobridge_learn::lstm::LstmSpec {
        input: 50,
        hidden: vec![12],
        bidirectional: false,
        outputs: 2,
    };
    emobridge_learn::lstm::LstmNet::from_safetensors(spec, &model).unwrap();
}

#[test]
fn refuses_a_manifest_without_annotations_and_bad_options() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manifest::new(dir.path(), Vec::new());
    let err = continuous::run(&tiny_config(), &m, &dir.path().join("r"), &|_, _| {}).unwrap_err();
    assert!(err.to_string().contains("annotation"), "{err}");
    let bad = ContinuousConfig {
        hop_s: 0.0,
        ..tiny_config()
    };
    let err = continuous::run(&bad, &m, &dir.path().join("r"), &|_, _| {}).unwrap_err();
    assert!(err.to_string().contains("hop_s"), "{err}");
    let ssl = ContinuousConfig {
        features: FeatureKind::Ssl,
        ..tiny_config()
    };
    assert!(ssl.validate().unwrap_err().to_string().contains("cache"));
}
