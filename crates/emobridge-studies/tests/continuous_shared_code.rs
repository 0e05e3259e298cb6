//! The continuous corpus can say no: sweeping `--shared-code` S over 0 and 1, LSTMs learn arousal
//! within each domain at both, arousal better than valence, and arousal transfers across domains
//! at S = 1 but not at S = 0.
//!
//! Small corpus (6 speakers, 6 performers, 12 drifting sequences of 30–36 s per domain), eGeMAPS
//! windows, a 16-unit LSTM, 3 group folds, lag 3 s, seed 7. Measured pooled CCC (arousal music /
//! speech, valence mean of both; cross-domain arousal music→speech / speech→music):
//! S = 0: intra A 0.36 / 0.53, intra V 0.11, cross A −0.15 / −0.26;
//! S = 1: intra A 0.40 / 0.53, intra V 0.12, cross A 0.53 / 0.52.
//! At S = 0 the cue codes are orthogonal, but the renderers map cues to descriptors differently
//! per domain, so one seed's draw still leaves a small feature-space alignment, so far mostly
//! negative (with half this residual, seeds 1, 2, 7 gave a mean cross A of −0.21, 0.03, −0.18).

use emobridge_corpus::synth::{generate, SynthConfig};
use emobridge_corpus::Manifest;
use emobridge_learn::seqtrain::SeqTrainConfig;
use emobridge_studies::continuous::{self, ContinuousConfig, FeatureKind};

fn point(dir: &std::path::Path, shared_code: f32, seed: u64) -> [f64; 6] {
    let synth = SynthConfig {
        seed,
        clips_per_cell: 1,
        speakers: 6,
        performers: 6,
        clip_seconds: (0.5, 0.6),
        continuous_per_domain: 12,
        continuous_seconds: (30.0, 36.0),
        shared_code,
        ..SynthConfig::default()
    };
    let corpus = dir.join(format!("c{shared_code}_{seed}"));
    let summary = generate(&corpus, &synth, &|_, _| {}).unwrap();
    let mut m = Manifest::read(&summary.manifest_path).unwrap();
    m.records.retain(|r| !r.annotation.is_empty());
    let cfg = ContinuousConfig {
        features: FeatureKind::Egemaps,
        folds: 3,
        lag_s: 3.0,
        dae_enabled: false,
        plots: 0,
        lstm: SeqTrainConfig {
            hidden: vec![16],
            restarts: 2,
            keep_best: 1,
            max_epochs: 20,
            patience: 5,
            batch_size: 2,
            seed,
            ..SeqTrainConfig::default()
        },
        seed,
        ..ContinuousConfig::default()
    };
    let out = continuous::run(&cfg, &m, &corpus.join("run"), &|_, _| {}).unwrap();
    let get = |label: &str| out.settings.iter().find(|s| s.label() == label).unwrap();
    let im = get("intra music→music");
    let is = get("intra speech→speech");
    let ms = get("cross music→speech");
    let sm = get("cross speech→music");
    let p = [
        im.arousal.pooled.ccc,
        is.arousal.pooled.ccc,
        (im.valence.pooled.ccc + is.valence.pooled.ccc) / 2.0,
        ms.arousal.pooled.ccc,
        sm.arousal.pooled.ccc,
        (ms.valence.pooled.ccc + sm.valence.pooled.ccc) / 2.0,
    ];
    eprintln!("S = {shared_code} seed {seed}: intra A music {:.3} speech {:.3}, intra V {:.3}; cross A m→s {:.3} s→m {:.3}, cross V {:.3}", p[0], p[1], p[2], p[3], p[4], p[5]);
    p
}

#[test]
fn arousal_transfers_with_the_shared_code_and_not_without() {
    let tmp = tempfile::tempdir().unwrap();
    let [none, full] = [0.0, 1.0].map(|s| point(tmp.path(), s, 7));
    for (p, s) in [(&none, "0"), (&full, "1")] {
        let [music, speech, valence] = [p[0], p[1], p[2]];
        assert!(
            music > 0.25 && speech > 0.25,
            "S = {s}: in-domain arousal CCC music {music:.3}, speech {speech:.3}"
        );
        assert!(
            music.min(speech) > valence + 0.1,
            "S = {s}: in-domain arousal {music:.3} / {speech:.3} vs valence {valence:.3}"
        );
    }
    let cross = |p: &[f64; 6]| (p[3] + p[4]) / 2.0;
    assert!(
        cross(&full) > 0.35,
        "S = 1: cross-domain arousal CCC {:.3}",
        cross(&full)
    );
    // The S = 0 figure moves with the seed by about ±0.15 (see the header).
    assert!(
        cross(&none).abs() < 0.25 && cross(&full) > cross(&none) + 0.3,
        "cross-domain arousal CCC S = 0 {:.3}, S = 1 {:.3}",
        cross(&none),
        cross(&full)
    );
}
