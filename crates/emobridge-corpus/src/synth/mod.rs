//! The synthetic shared-code corpus: emotional speech-like and music-like clips rendered from
//! one set of acoustic cues, so every study of emobridge can run end to end without a
//! licensed corpus.
//!
//! * Six emotions (neutral, calm, happy, sad, angry, fearful — RAVDESS's shared set) in both
//!   domains, each a [`Cues`] profile after Juslin & Laukka (2003), scaled by an expression
//!   intensity (normal / strong, as in RAVDESS), shifted by each speaker's or performer's
//!   habits and scattered by random spread so that classes overlap.
//! * Speech: [`speech::render`] (source–filter). Music: [`music::render`] (melody + chords).
//! * Clip-level arousal/valence for every clip; a *continuous subset* of long clips whose
//!   emotion drifts, with 2 Hz annotation traces that lag the truth by 2–4 s and carry noise,
//!   as human raters' traces do.
//! * Deterministic: every clip draws from its own ChaCha stream seeded by (seed, clip index),
//!   and WAVs are 16-bit PCM, so the same seed gives byte-identical files.

pub mod cues;
mod dsp;
pub mod music;
pub mod speech;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use cues::{CueTrack, Cues, Drift};
use dsp::{gauss, uniform};
pub use music::{Instrument, Performer};
pub use speech::Speaker;

use crate::manifest::{Domain, Manifest, Record};
use crate::taxonomy::Emotion;

/// What to synthesise. Defaults are the full demo corpus.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SynthConfig {
    pub seed: u64,
    /// Clips per (domain, emotion, speaker-or-performer) cell.
    pub clips_per_cell: usize,
    /// Virtual speakers (speech); default 6.
    pub speakers: usize,
    /// Virtual performers (music); default 6.
    pub performers: usize,
    /// Speech sample rate; default 16 kHz.
    pub speech_rate: u32,
    /// Music sample rate; default 24 kHz.
    pub music_rate: u32,
    /// Clip-level durations are drawn uniformly from this range (seconds).
    pub clip_seconds: (f32, f32),
    /// Long drifting clips per domain in the continuous subset.
    pub continuous_per_domain: usize,
    /// Their durations (seconds), drawn uniformly.
    pub continuous_seconds: (f32, f32),
    /// Standard deviation of the per-clip random cue spread (class overlap).
    pub cue_spread: f32,
    /// Annotator lag range (seconds) of the continuous traces.
    pub annotation_lag: (f32, f32),
    /// Standard deviation of the annotation noise.
    pub annotation_noise: f32,
    /// Rate of the annotation traces (Hz).
    pub annotation_rate: f32,
    /// How much of the acoustic code the two domains share, in [0, 1] (default 1, the corpus as
    /// it always was: music uses speech's cue profile for every emotion). Music's profile for an
    /// emotion is `S·speech + √(1−S²)·own`, where `own` is music's own affect code drawn from
    /// the seed and orthogonal to everything speech's code expresses; so S sets the cosine
    /// between the two domains' cue directions (0 at S = 0). At 0 nothing transfers while each
    /// domain stays internally consistent (within-domain accuracy stays). See [`profile`].
    pub shared_code: f32,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 7,
            clips_per_cell: 3,
            speakers: 6,
            performers: 6,
            speech_rate: 16_000,
            music_rate: 24_000,
            clip_seconds: (2.5, 3.5),
            // The continuous study needs ≥ 12 sequences per domain from all speakers/performers.
            continuous_per_domain: 12,
            continuous_seconds: (60.0, 120.0),
            cue_spread: 0.35,
            annotation_lag: (2.0, 4.0),
            annotation_noise: 0.08,
            annotation_rate: 2.0,
            shared_code: 1.0,
        }
    }
}

/// Most clips the people × clips-per-cell product of one domain may ask for (the default corpus
/// has 18 per domain and emotion; `--clips-per-cell 100000000` once started writing for ever).
pub const MAX_CELL_CLIPS: usize = 20_000;

impl SynthConfig {
    /// Checks every numeric setting against its range (issue 17: absurd values end with a
    /// message naming the setting, before anything is written).
    pub fn validate(&self) -> Result<(), SynthError> {
        let bad = |m: String| Err(SynthError::Config(m));
        for (name, n) in [
            ("speakers", self.speakers),
            ("performers", self.performers),
            ("clips-per-cell", self.clips_per_cell),
        ] {
            if n == 0 {
                return bad("speakers, performers and clips-per-cell must be ≥ 1".into());
            }
            if n > MAX_CELL_CLIPS {
                return bad(format!("{name} {n} is above {MAX_CELL_CLIPS}"));
            }
        }
        for (name, people) in [("speakers", self.speakers), ("performers", self.performers)] {
            if people * self.clips_per_cell > MAX_CELL_CLIPS {
                return bad(format!(
                    "{name} × clips-per-cell = {} is above {MAX_CELL_CLIPS} clips per emotion",
                    people * self.clips_per_cell
                ));
            }
        }
        if self.continuous_per_domain > 1000 {
            return bad(format!(
                "continuous clips per domain {} is above 1000",
                self.continuous_per_domain
            ));
        }
        for (name, rate) in [
            ("speech rate", self.speech_rate),
            ("music rate", self.music_rate),
        ] {
            if !(8_000..=48_000).contains(&rate) {
                return bad(format!("{name} {rate} Hz is outside 8000..=48000"));
            }
        }
        for (name, (lo, hi), max) in [
            ("clip seconds", self.clip_seconds, 600.0),
            ("continuous seconds", self.continuous_seconds, 3600.0),
        ] {
            if !(lo.is_finite() && hi.is_finite() && lo >= 0.1 && lo <= hi && hi <= max) {
                return bad(format!(
                    "{name} ({lo}, {hi}) must satisfy 0.1 ≤ min ≤ max ≤ {max}"
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.shared_code) {
            return bad(format!(
                "shared-code must be in [0, 1], got {}",
                self.shared_code
            ));
        }
        let (lag_lo, lag_hi) = self.annotation_lag;
        if !(lag_lo.is_finite()
            && lag_hi.is_finite()
            && 0.0 <= lag_lo
            && lag_lo <= lag_hi
            && lag_hi <= 30.0)
        {
            return bad(format!(
                "annotation lag ({lag_lo}, {lag_hi}) must satisfy 0 ≤ min ≤ max ≤ 30 s"
            ));
        }
        for (name, v) in [
            ("cue spread", self.cue_spread),
            ("annotation noise", self.annotation_noise),
        ] {
            if !(v.is_finite() && (0.0..=10.0).contains(&v)) {
                return bad(format!("{name} {v} is outside [0, 10]"));
            }
        }
        if !(self.annotation_rate.is_finite()
            && self.annotation_rate > 0.0
            && self.annotation_rate <= 100.0)
        {
            return bad(format!(
                "annotation rate {} Hz is outside (0, 100]",
                self.annotation_rate
            ));
        }
        Ok(())
    }

    /// A small corpus for `demo --quick`.
    pub fn quick(seed: u64) -> Self {
        SynthConfig {
            seed,
            clips_per_cell: 2,
            speakers: 4,
            performers: 4,
            // Enough groups for 3 group folds with a development group in the continuous study.
            continuous_per_domain: 4,
            continuous_seconds: (30.0, 36.0),
            ..SynthConfig::default()
        }
    }
}

/// Why synthesis failed.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("{path}: {message}")]
    Write { path: PathBuf, message: String },
    #[error("invalid synth config: {0}")]
    Config(String),
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
}

/// The emotions of the synthetic corpus.
pub const EMOTIONS: [Emotion; 6] = Emotion::RAVDESS_SHARED;

fn habit<R: Rng>(rng: &mut R, scale: f32) -> [f32; 10] {
    let mut h = [0.0; 10];
    for v in &mut h {
        *v = scale * gauss(rng);
    }
    h
}

/// The virtual speakers: alternating male/female voices with their own F0, tract length and rate.
pub fn speakers(seed: u64, n: usize) -> Vec<Speaker> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5350_4541_4B45_5253);
    (0..n)
        .map(|i| {
            let female = i % 2 == 1;
            Speaker {
                name: format!("spk{:02}", i + 1),
                gender: if female { "female" } else { "male" },
                f0: if female {
                    uniform(&mut rng, 185.0, 235.0)
                } else {
                    uniform(&mut rng, 95.0, 135.0)
                },
                formant_scale: if female {
                    uniform(&mut rng, 1.12, 1.22)
                } else {
                    uniform(&mut rng, 0.94, 1.04)
                },
                rate: uniform(&mut rng, 3.8, 5.0),
                breathiness: uniform(&mut rng, 0.02, 0.08),
                habit: habit(&mut rng, 0.15),
            }
        })
        .collect()
}

/// The virtual performers: instruments cycle through the four families.
pub fn performers(seed: u64, n: usize) -> Vec<Performer> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5045_5246_4F52_4D52);
    let families = [
        Instrument::Strings,
        Instrument::Fm,
        Instrument::Reed,
        Instrument::Pluck,
    ];
    (0..n)
        .map(|i| Performer {
            name: format!("perf{:02}", i + 1),
            instrument: families[i % families.len()],
            register: uniform(&mut rng, 62.0, 74.0),
            tempo: uniform(&mut rng, 92.0, 120.0),
            brightness: uniform(&mut rng, -0.3, 0.3),
            habit: habit(&mut rng, 0.15),
        })
        .collect()
}

/// What one synthesis run produced.
#[derive(Debug, Clone)]
pub struct SynthSummary {
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
    pub audio_seconds: f64,
}

/// One planned clip (everything decided before rendering, so progress is countable).
struct Plan {
    index: u64,
    domain: Domain,
    who: usize,
    emotion: Option<Emotion>,
    intensity: &'static str,
    continuous: bool,
}

fn plan(cfg: &SynthConfig) -> Vec<Plan> {
    let mut plans = Vec::new();
    let mut index = 0u64;
    for (domain, people) in [
        (Domain::Speech, cfg.speakers),
        (Domain::Music, cfg.performers),
    ] {
        for who in 0..people {
            for emotion in EMOTIONS {
                for k in 0..cfg.clips_per_cell {
                    // RAVDESS has no strong neutral; others alternate normal / strong.
                    let intensity = if emotion == Emotion::Neutral || k % 2 == 0 {
                        "normal"
                    } else {
                        "strong"
                    };
                    plans.push(Plan {
                        index,
                        domain,
                        who,
                        emotion: Some(emotion),
                        intensity,
                        continuous: false,
                    });
                    index += 1;
                }
            }
        }
    }
    for domain in [Domain::Speech, Domain::Music] {
        let people = if domain == Domain::Speech {
            cfg.speakers
        } else {
            cfg.performers
        };
        for k in 0..cfg.continuous_per_domain {
            plans.push(Plan {
                index,
                domain,
                who: k % people.max(1),
                emotion: None,
                intensity: "",
                continuous: true,
            });
            index += 1;
        }
    }
    plans
}

/// Writes the corpus under `out`: `speech/*.wav`, `music/*.wav`, `annotations/*.csv`,
/// `manifest.csv` and `synth.json`. `progress(done, total)` is called after each clip.
pub fn generate(
    out: &Path,
    cfg: &SynthConfig,
    progress: &dyn Fn(usize, usize),
) -> Result<SynthSummary, SynthError> {
    cfg.validate()?;
    for dir in ["speech", "music", "annotations"] {
        let d = out.join(dir);
        std::fs::create_dir_all(&d).map_err(|e| SynthError::Write {
            path: d.clone(),
            message: e.to_string(),
        })?;
    }
    let spk = speakers(cfg.seed, cfg.speakers);
    let perf = performers(cfg.seed, cfg.performers);
    let plans = plan(cfg);
    let mut records = Vec::with_capacity(plans.len());
    let mut seconds = 0.0;
    for (done, p) in plans.iter().enumerate() {
        let mut rng =
            ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ p.index);
        let record = if p.continuous {
            continuous_clip(&mut rng, out, cfg, p, &spk, &perf)?
        } else {
            clip(&mut rng, out, cfg, p, &spk, &perf)?
        };
        seconds += record.1;
        records.push(record.0);
        progress(done + 1, plans.len());
    }
    let manifest = Manifest::new(out, records);
    let manifest_path = out.join("manifest.csv");
    manifest.write(&manifest_path)?;
    let cfg_path = out.join("synth.json");
    let cfg_json = serde_json::to_string_pretty(cfg).expect("config serialises");
    std::fs::write(&cfg_path, cfg_json).map_err(|e| SynthError::Write {
        path: cfg_path,
        message: e.to_string(),
    })?;
    Ok(SynthSummary {
        manifest_path,
        manifest,
        audio_seconds: seconds,
    })
}

fn spread<R: Rng>(rng: &mut R, sd: f32) -> [f32; 10] {
    habit(rng, sd)
}

fn write_audio(path: &Path, samples: &[f32], sr: u32) -> Result<(), SynthError> {
    emobridge_audio::wav::write_wav_mono16(path, samples, sr).map_err(|e| SynthError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn clip<R: Rng>(
    rng: &mut R,
    out: &Path,
    cfg: &SynthConfig,
    p: &Plan,
    spk: &[Speaker],
    perf: &[Performer],
) -> Result<(Record, f64), SynthError> {
    let emotion = p.emotion.expect("clip-level plans carry an emotion");
    let k = if p.intensity == "strong" { 1.0 } else { 0.75 };
    // Music needs a few more notes than speech needs syllables to show its tempo and mode.
    let stretch = if p.domain == Domain::Music { 1.3 } else { 1.0 };
    let seconds = stretch * uniform(rng, cfg.clip_seconds.0, cfg.clip_seconds.1);
    let (a0, v0) = emotion.circumplex();
    // Clip-level ratings: the nominal point scaled by intensity, with rater-like scatter.
    let arousal = (a0 * k + 0.1 * gauss(rng)).clamp(-1.0, 1.0);
    let valence = (v0 * k + 0.1 * gauss(rng)).clamp(-1.0, 1.0);
    let (rel, record) = match p.domain {
        Domain::Speech => {
            let s = &spk[p.who];
            let cues = profile(cfg, Domain::Speech, emotion)
                .scaled(k)
                .plus(&s.habit)
                .plus(&spread(rng, cfg.cue_spread));
            let audio = speech::render(rng, s, &cues, seconds, cfg.speech_rate);
            let id = format!("sp_{}_{}_{:03}", s.name, emotion.as_str(), p.index);
            let rel = format!("speech/{id}.wav");
            write_audio(&out.join(&rel), &audio, cfg.speech_rate)?;
            let mut r = Record::new(id, rel.clone(), Domain::Speech, "synthetic", s.name.clone());
            r.set_extra("gender", s.gender);
            r.set_extra("instrument", "");
            r.set_extra("mode", "");
            (rel, r)
        }
        Domain::Music => {
            let pf = &perf[p.who];
            // Performers differ more among themselves (instrument, register) than speakers do, so
            // the per-clip scatter is smaller to keep music's classes about as separable as speech's.
            let cues = profile(cfg, Domain::Music, emotion)
                .scaled(k)
                .plus(&pf.habit)
                .plus(&spread(rng, 0.7 * cfg.cue_spread));
            let (audio, facts) = music::render(rng, pf, &cues, seconds, cfg.music_rate);
            let id = format!("mu_{}_{}_{:03}", pf.name, emotion.as_str(), p.index);
            let rel = format!("music/{id}.wav");
            write_audio(&out.join(&rel), &audio, cfg.music_rate)?;
            let mut r = Record::new(id, rel.clone(), Domain::Music, "synthetic", pf.name.clone());
            r.set_extra("gender", "");
            r.set_extra("instrument", pf.instrument.as_str());
            r.set_extra("mode", if facts.major { "major" } else { "minor" });
            (rel, r)
        }
    };
    let _ = rel;
    let mut r = record;
    r.emotion = Some(emotion);
    r.arousal = Some(round3(arousal));
    r.valence = Some(round3(valence));
    r.set_extra("intensity", p.intensity);
    r.set_extra("subset", "clip");
    r.set_extra("emotion_path", "");
    Ok((r, seconds as f64))
}

fn round3(x: f32) -> f32 {
    (x * 1000.0).round() / 1000.0
}

fn continuous_clip<R: Rng>(
    rng: &mut R,
    out: &Path,
    cfg: &SynthConfig,
    p: &Plan,
    spk: &[Speaker],
    perf: &[Performer],
) -> Result<(Record, f64), SynthError> {
    let seconds = uniform(rng, cfg.continuous_seconds.0, cfg.continuous_seconds.1);
    // Emotion segments of 8–15 s, each different from the last, joined by 3 s cross-fades.
    let mut segments: Vec<(f32, Emotion, f32)> = Vec::new();
    let mut t = 0.0;
    while t < seconds {
        let mut e = EMOTIONS[rng.random_range(0..EMOTIONS.len())];
        while segments.last().is_some_and(|s| s.1 == e) {
            e = EMOTIONS[rng.random_range(0..EMOTIONS.len())];
        }
        segments.push((t, e, uniform(rng, 0.65, 1.0)));
        t += uniform(rng, 8.0, 15.0);
    }
    let fade = 3.0;
    let (habit, name) = match p.domain {
        Domain::Speech => (spk[p.who].habit, spk[p.who].name.clone()),
        Domain::Music => (perf[p.who].habit, perf[p.who].name.clone()),
    };
    let drift = Drift {
        segments: segments
            .iter()
            .map(|(s, e, k)| (*s, profile(cfg, p.domain, *e).scaled(*k).plus(&habit)))
            .collect(),
        fade,
    };
    // The truth trace uses the same blend as the cues.
    let truth_drift = Drift {
        segments: segments
            .iter()
            .map(|(s, e, k)| (*s, av_as_cues(*e, *k)))
            .collect(),
        fade,
    };
    let truth = |t: f32| {
        let c = truth_drift.at(t);
        (c.rate, c.loudness)
    };
    let (kind, sr, audio, extra_inst) = match p.domain {
        Domain::Speech => (
            "speech",
            cfg.speech_rate,
            speech::render(rng, &spk[p.who], &drift, seconds, cfg.speech_rate),
            String::new(),
        ),
        Domain::Music => {
            let (a, _) = music::render(rng, &perf[p.who], &drift, seconds, cfg.music_rate);
            (
                "music",
                cfg.music_rate,
                a,
                perf[p.who].instrument.as_str().to_string(),
            )
        }
    };
    let id = format!("cont_{}_{}_{:03}", kind, name, p.index);
    let rel = format!("{kind}/{id}.wav");
    write_audio(&out.join(&rel), &audio, sr)?;

    // Annotation: truth delayed by the annotator's lag, plus slowly varying AR(1) noise.
    let lag = uniform(rng, cfg.annotation_lag.0, cfg.annotation_lag.1);
    let step = 1.0 / cfg.annotation_rate;
    let frames = (seconds / step).floor() as usize;
    let mut csv_text = String::from("time,arousal,valence\n");
    let (mut na, mut nv) = (0.0f32, 0.0f32);
    let rho = 0.85f32;
    let innov = cfg.annotation_noise * (1.0 - rho * rho).sqrt();
    let (mut sum_a, mut sum_v) = (0.0f32, 0.0f32);
    for i in 0..frames {
        let time = i as f32 * step;
        let (a, v) = truth((time - lag).max(0.0));
        na = rho * na + innov * gauss(rng);
        nv = rho * nv + innov * gauss(rng);
        let (ra, rv) = ((a + na).clamp(-1.0, 1.0), (v + nv).clamp(-1.0, 1.0));
        let (ta, tv) = truth(time);
        sum_a += ta;
        sum_v += tv;
        let _ = writeln!(csv_text, "{time:.1},{ra:.4},{rv:.4}");
    }
    let ann_rel = format!("annotations/{id}.csv");
    let ann_path = out.join(&ann_rel);
    std::fs::write(&ann_path, csv_text).map_err(|e| SynthError::Write {
        path: ann_path,
        message: e.to_string(),
    })?;

    let mut r = Record::new(id, rel, p.domain, "synthetic", name);
    r.arousal = Some(round3(sum_a / frames.max(1) as f32));
    r.valence = Some(round3(sum_v / frames.max(1) as f32));
    r.annotation = ann_rel;
    r.set_extra(
        "gender",
        if p.domain == Domain::Speech {
            spk[p.who].gender
        } else {
            ""
        },
    );
    r.set_extra("instrument", &extra_inst);
    r.set_extra("mode", "");
    r.set_extra("intensity", "");
    r.set_extra("subset", "continuous");
    let path: Vec<String> = segments
        .iter()
        .map(|(s, e, _)| format!("{}@{:.1}", e.as_str(), s))
        .collect();
    r.set_extra("emotion_path", path.join(" "));
    Ok((r, seconds as f64))
}

/// The cue profile `domain` uses for `emotion`, the one place where the shared code is set:
/// speech always uses [`Cues::of`]; music uses `S·Cues::of(e) + √(1−S²)·own(e)` with
/// S = `cfg.shared_code`. `own(e)` is a Gaussian cue vector drawn from `cfg.seed` and the emotion
/// alone (never from speech), built from an arousal and a valence direction of music's own plus a
/// per-emotion residual ([`own_profiles`]), each orthogonal to everything speech's code can
/// express: their nine acoustic cues (all but `mode`, which speech does not render) are projected
/// out of the span of speech's profiles of the six emotions. So at S = 0 no linear read-out of the cues learnt in one domain carries
/// any emotion, arousal or valence information into the other (a single random draw of `own`
/// could otherwise align with speech's arousal direction by chance: seed 7's drew a cosine of
/// −0.43); at S = 1 this is exactly `Cues::of(e)`, so the default corpus is unchanged.
pub fn profile(cfg: &SynthConfig, domain: Domain, emotion: Emotion) -> Cues {
    let shared = Cues::of(emotion);
    let s = cfg.shared_code.clamp(0.0, 1.0);
    if domain == Domain::Speech || s >= 1.0 {
        return shared;
    }
    let own = own_profiles(cfg.seed);
    let i = EMOTIONS
        .iter()
        .position(|&e| e == emotion)
        .expect("the synthetic corpus renders its six emotions only");
    let own_weight = (1.0 - s * s).sqrt();
    Cues::from_fields(std::array::from_fn(|c| {
        s * shared.fields()[c] + own_weight * own[i][c]
    }))
}

/// Music's own cue vectors for the six emotions (see [`profile`]). Music keeps an affect code
/// of its own: `own(e) = (a_e − ā)·w_A + (v_e − v̄)·w_V + ε_e` with the emotion's circumplex
/// arousal and valence. `w_A`, `w_V` and each `ε_e` are Gaussian draws from the seed whose nine
/// rendered-by-speech cues are projected out of the span of speech's six profiles; `w_V` is also
/// made orthogonal to `w_A`. Their norms are those of speech's own code: the least-squares
/// gradients of the nominal profiles on (1, arousal, valence) and the RMS residual of that fit.
/// So arousal and valence stay as learnable within music as within speech, along cue directions
/// independent of speech's.
fn own_profiles(seed: u64) -> [[f32; 10]; 6] {
    const MODE: usize = 9;
    type V = [f64; 10];
    let dot = |a: &V, b: &V| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let norm = |a: &V| dot(a, a).sqrt();
    let nominal: Vec<V> = EMOTIONS
        .iter()
        .map(|&e| Cues::of(e).fields().map(f64::from))
        .collect();
    let affect: Vec<(f64, f64)> = EMOTIONS
        .iter()
        .map(|e| (e.circumplex().0 as f64, e.circumplex().1 as f64))
        .collect();
    let n = EMOTIONS.len() as f64;
    let (ma, mv) = (
        affect.iter().map(|p| p.0).sum::<f64>() / n,
        affect.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let centred: Vec<(f64, f64)> = affect.iter().map(|&(a, v)| (a - ma, v - mv)).collect();
    // Speech's gradients: per cue, least squares of the centred profiles on centred (a, v).
    let (saa, svv, sav) = centred.iter().fold((0.0, 0.0, 0.0), |s, &(a, v)| {
        (s.0 + a * a, s.1 + v * v, s.2 + a * v)
    });
    let det = saa * svv - sav * sav;
    let mut mean_profile: V = [0.0; 10];
    for row in &nominal {
        mean_profile
            .iter_mut()
            .zip(row)
            .for_each(|(m, x)| *m += x / n);
    }
    let (mut g_a, mut g_v): (V, V) = ([0.0; 10], [0.0; 10]);
    for c in 0..10 {
        let (mut ya, mut yv) = (0.0, 0.0);
        for (row, &(a, v)) in nominal.iter().zip(&centred) {
            ya += a * (row[c] - mean_profile[c]);
            yv += v * (row[c] - mean_profile[c]);
        }
        g_a[c] = (svv * ya - sav * yv) / det;
        g_v[c] = (saa * yv - sav * ya) / det;
    }
    let residual_rms = (nominal
        .iter()
        .zip(&centred)
        .map(|(row, &(a, v))| {
            (0..10)
                .map(|c| (row[c] - mean_profile[c] - a * g_a[c] - v * g_v[c]).powi(2))
                .sum::<f64>()
        })
        .sum::<f64>()
        / n)
        .sqrt();
    // Orthonormal basis of speech's code over the cues speech renders.
    let mut basis: Vec<V> = Vec::new();
    let project_out = |v: &mut V, basis: &[V]| {
        for b in basis {
            let d = dot(v, b);
            v.iter_mut().zip(b).for_each(|(x, y)| *x -= d * y);
        }
    };
    // Loudness, its variability and brightness reach the features alike in both domains (level
    // and spectral tilt): music's own code leaves them to speech's.
    let axes = [1usize, 2, 5].map(|c| {
        let mut v: V = [0.0; 10];
        v[c] = 1.0;
        v
    });
    for row in nominal.iter().chain(&axes) {
        let mut v = *row;
        v[MODE] = 0.0;
        project_out(&mut v, &basis);
        let l = norm(&v);
        if l > 1e-9 {
            basis.push(v.map(|x| x / l));
        }
    }
    let draw = |rng: &mut ChaCha8Rng, extra: &[V], length: f64| -> V {
        let mut v: V = std::array::from_fn(|_| gauss(rng) as f64);
        project_out(&mut v, &basis);
        project_out(&mut v, extra);
        let l = norm(&v).max(1e-12);
        v.map(|x| x * length / l)
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x4D55_5349_435F_4146);
    // The cues left to music reach the features more weakly than level and tilt do, so its
    // affect directions are 1.5 times as long as speech's.
    let w_a = draw(&mut rng, &[], 1.5 * norm(&g_a));
    let w_v = draw(&mut rng, &[w_a.map(|x| x / norm(&w_a))], 1.5 * norm(&g_v));
    let mut own = [[0.0f32; 10]; 6];
    for ((row, &emotion), &(a, v)) in own.iter_mut().zip(&EMOTIONS).zip(&centred) {
        let mut rng = ChaCha8Rng::seed_from_u64(
            seed ^ 0x4F57_4E5F_4355_4553 ^ (emotion as u64).wrapping_mul(0x9E37_79B9),
        );
        let eps = draw(&mut rng, &[], residual_rms);
        *row = std::array::from_fn(|c| (a * w_a[c] + v * w_v[c] + eps[c]) as f32);
    }
    own
}

/// Packs an emotion's scaled (arousal, valence) into a `Cues` (rate = arousal, loudness =
/// valence) so [`Drift`] can blend truth traces with the same cross-fades as the audio cues.
fn av_as_cues(e: Emotion, k: f32) -> Cues {
    let (a, v) = e.circumplex();
    Cues {
        rate: a * k,
        loudness: v * k,
        ..Cues::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> SynthConfig {
        SynthConfig {
            clips_per_cell: 1,
            speakers: 4,
            performers: 4,
            continuous_per_domain: 1,
            continuous_seconds: (30.0, 31.0),
            clip_seconds: (1.0, 1.2),
            ..SynthConfig::default()
        }
    }

    fn hash_dir(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for sub in ["speech", "music", "annotations"] {
            let mut names: Vec<_> = std::fs::read_dir(dir.join(sub))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            names.sort();
            for p in names {
                out.push((
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
        out.push((
            "manifest.csv".into(),
            std::fs::read(dir.join("manifest.csv")).unwrap(),
        ));
        out
    }

    #[test]
    fn same_seed_same_bytes_and_complete_manifest() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let s = generate(a.path(), &tiny(), &|_, _| {}).unwrap();
        generate(b.path(), &tiny(), &|_, _| {}).unwrap();
        assert_eq!(hash_dir(a.path()), hash_dir(b.path()));
        let m = Manifest::read(&s.manifest_path).unwrap();
        assert_eq!(m.records.len(), 2 * 4 * 6 + 2);
        for d in [Domain::Speech, Domain::Music] {
            let labels: std::collections::BTreeSet<_> =
                m.of_domain(d).filter_map(|r| r.emotion).collect();
            assert_eq!(labels.len(), 6, "{d}");
            let groups: std::collections::BTreeSet<_> =
                m.of_domain(d).map(|r| r.speaker.clone()).collect();
            assert!(groups.len() >= 4);
        }
        let cont: Vec<_> = m
            .records
            .iter()
            .filter(|r| !r.annotation.is_empty())
            .collect();
        assert_eq!(cont.len(), 2);
        for r in cont {
            let text = std::fs::read_to_string(m.annotation_path(r).unwrap()).unwrap();
            let rows = text.lines().count() - 1;
            assert!(
                (60..=62).contains(&rows),
                "{rows} annotation rows for ~30 s at 2 Hz"
            );
            let audio =
                emobridge_audio::load(m.audio_path(r), &emobridge_audio::DecodeOptions::mono())
                    .unwrap();
            assert!(audio.duration_s() >= 30.0);
        }
        let other = tempfile::tempdir().unwrap();
        let c = generate(other.path(), &SynthConfig { seed: 8, ..tiny() }, &|_, _| {}).unwrap();
        assert_ne!(
            std::fs::read(c.manifest_path).unwrap(),
            std::fs::read(&s.manifest_path).unwrap()
        );
    }

    #[test]
    fn shared_code_sets_the_cosine_between_the_domains_cue_profiles() {
        let cos = |a: Cues, b: Cues| {
            let (a, b) = (a.fields(), b.fields());
            let dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let n = |v: &[f32; 10]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
            dot / (n(&a) * n(&b))
        };
        let at = |s: f32| SynthConfig {
            shared_code: s,
            ..SynthConfig::default()
        };
        for e in EMOTIONS {
            assert_eq!(profile(&at(1.0), Domain::Music, e), Cues::of(e));
            assert_eq!(profile(&at(0.0), Domain::Speech, e), Cues::of(e));
        }
        // Mean cosine over the five non-neutral emotions (neutral's speech profile is zero).
        let mean_cos = |s: f32| {
            let cfg = at(s);
            let v: Vec<f32> = EMOTIONS[1..]
                .iter()
                .map(|&e| cos(profile(&cfg, Domain::Music, e), Cues::of(e)))
                .collect();
            v.iter().sum::<f32>() / v.len() as f32
        };
        let (c0, c5) = (mean_cos(0.0), mean_cos(0.5));
        assert!(c0.abs() < 0.45, "S = 0: mean cosine {c0}");
        assert!(c5 > c0 + 0.2 && c5 < 0.95, "S = 0.5: {c5}, S = 0: {c0}");
        let err = generate(
            tempfile::tempdir().unwrap().path(),
            &SynthConfig {
                shared_code: 1.5,
                ..tiny()
            },
            &|_, _| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("shared-code"), "{err}");
    }

    #[test]
    fn no_shared_code_leaves_nothing_for_a_linear_read_out() {
        // Over the nine cues speech renders, every music profile at S = 0 is orthogonal to every
        // speech profile, so music's arousal and valence directions (Σ_e (x_e − x̄)·profile(e))
        // are orthogonal to speech's; at S = 1 they coincide.
        let direction = |cfg: &SynthConfig, domain: Domain, dim: usize| {
            let xs: Vec<f32> = EMOTIONS
                .iter()
                .map(|e| [e.circumplex().0, e.circumplex().1][dim])
                .collect();
            let mean = xs.iter().sum::<f32>() / xs.len() as f32;
            let mut d = [0.0f32; 9];
            for (&e, x) in EMOTIONS.iter().zip(&xs) {
                let f = profile(cfg, domain, e).fields();
                for (di, fi) in d.iter_mut().zip(f) {
                    *di += (x - mean) * fi;
                }
            }
            d
        };
        let cos = |a: [f32; 9], b: [f32; 9]| {
            let dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let n = |v: &[f32; 9]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
            dot / (n(&a) * n(&b))
        };
        for seed in [1, 7, 8, 9] {
            let cfg = |s: f32| SynthConfig {
                seed,
                shared_code: s,
                ..SynthConfig::default()
            };
            for m in EMOTIONS {
                let mf = profile(&cfg(0.0), Domain::Music, m).fields();
                assert!(mf.iter().map(|v| v.abs()).sum::<f32>() > 0.5, "{m:?}");
                for e in EMOTIONS {
                    let dot: f32 = (0..9).map(|c| mf[c] * Cues::of(e).fields()[c]).sum();
                    assert!(dot.abs() < 1e-5, "seed {seed} {m:?}·{e:?} = {dot}");
                }
            }
            for dim in 0..2 {
                let speech = direction(&cfg(0.0), Domain::Speech, dim);
                assert!(cos(direction(&cfg(0.0), Domain::Music, dim), speech).abs() < 1e-5);
                assert!(cos(direction(&cfg(1.0), Domain::Music, dim), speech) > 0.9999);
                let half = cos(direction(&cfg(0.5), Domain::Music, dim), speech);
                assert!(
                    half > 0.1 && half < 0.9999,
                    "seed {seed}: S = 0.5 cosine {half}"
                );
            }
        }
    }

    #[test]
    fn emotions_move_the_cues_they_should() {
        // Loudness and rate cues must show in the audio: angry speech louder than sad speech.
        let spk = speakers(1, 2);
        let sr = 16_000;
        let rms = |x: &[f32]| (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let angry = speech::render(&mut rng, &spk[0], &Cues::of(Emotion::Angry), 2.0, sr);
        let sad = speech::render(&mut rng, &spk[0], &Cues::of(Emotion::Sad), 2.0, sr);
        assert!(
            rms(&angry) > 2.0 * rms(&sad),
            "angry {} sad {}",
            rms(&angry),
            rms(&sad)
        );
        let perf = performers(1, 1);
        let (loud, _) = music::render(&mut rng, &perf[0], &Cues::of(Emotion::Angry), 2.0, 24_000);
        let (soft, _) = music::render(&mut rng, &perf[0], &Cues::of(Emotion::Sad), 2.0, 24_000);
        assert!(rms(&loud) > 2.0 * rms(&soft));
        for x in angry.iter().chain(&loud) {
            assert!(x.is_finite() && x.abs() <= 1.0);
        }
    }

    #[test]
    fn absurd_settings_are_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        for (what, cfg) in [
            (
                "clips-per-cell",
                SynthConfig {
                    clips_per_cell: 100_000_000,
                    ..tiny()
                },
            ),
            (
                "speakers",
                SynthConfig {
                    speakers: 0,
                    ..tiny()
                },
            ),
            (
                "clips per emotion",
                SynthConfig {
                    speakers: 1000,
                    clips_per_cell: 100,
                    ..tiny()
                },
            ),
            (
                "speech rate",
                SynthConfig {
                    speech_rate: 0,
                    ..tiny()
                },
            ),
            (
                "clip seconds",
                SynthConfig {
                    clip_seconds: (f32::NAN, 1.0),
                    ..tiny()
                },
            ),
            (
                "continuous seconds",
                SynthConfig {
                    continuous_seconds: (40.0, 1e9),
                    ..tiny()
                },
            ),
            (
                "annotation rate",
                SynthConfig {
                    annotation_rate: 0.0,
                    ..tiny()
                },
            ),
            (
                "annotation lag",
                SynthConfig {
                    annotation_lag: (3.0, 1.0),
                    ..tiny()
                },
            ),
            (
                "cue spread",
                SynthConfig {
                    cue_spread: -1.0,
                    ..tiny()
                },
            ),
        ] {
            let out = dir.path().join(what.replace(' ', "_"));
            let e = generate(&out, &cfg, &|_, _| {}).unwrap_err().to_string();
            assert!(e.contains("invalid synth config"), "{what}: {e}");
            assert!(!out.exists(), "{what}: nothing is written");
        }
        assert!(tiny().validate().is_ok());
        assert!(SynthConfig::default().validate().is_ok());
        assert!(SynthConfig::quick(1).validate().is_ok());
    }
}
