//! Music-like synthesis: a melody over a chordal accompaniment.
//!
//! Mode (major/minor), tempo, articulation, register, loudness and its variability, timbre
//! brightness, attack sharpness and micro-irregularity (pitch scatter, vibrato and amplitude
//! wobble) all follow the [`CueTrack`], sampled at each note onset. Performers differ in
//! instrument (additive string/reed-like or FM), register, habitual tempo and brightness.

use rand::Rng;

use super::cues::CueTrack;
use super::dsp::{db, gauss, soft_limit, uniform};

/// Synthetic instrument families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instrument {
    /// Additive, all harmonics (bowed-string-like).
    Strings,
    /// Additive, odd harmonics stronger (clarinet-like).
    Reed,
    /// Two-operator FM (electric-piano-like).
    Fm,
    /// Additive with fast decay (plucked).
    Pluck,
}

impl Instrument {
    pub fn as_str(self) -> &'static str {
        match self {
            Instrument::Strings => "strings",
            Instrument::Reed => "reed",
            Instrument::Fm => "fm",
            Instrument::Pluck => "pluck",
        }
    }
}

/// A virtual performer.
#[derive(Debug, Clone)]
pub struct Performer {
    pub name: String,
    pub instrument: Instrument,
    /// MIDI note at the centre of the melody register.
    pub register: f32,
    /// Habitual tempo, beats per minute.
    pub tempo: f32,
    /// Habitual brightness offset (−1…1).
    pub brightness: f32,
    /// Personal cue habits added to every clip.
    pub habit: [f32; 10],
}

const MAJOR: [i32; 7] = [0, 2, 4, 5, 7, 9, 11];
const MINOR: [i32; 7] = [0, 2, 3, 5, 7, 8, 10];

struct Note {
    start: f32,
    dur: f32,
    midi: f32,
    gain: f32,
    attack: f32,
    brightness: f32,
    irregularity: f32,
}

/// What the renderer decided, for the manifest.
#[derive(Debug, Clone, Copy)]
pub struct MusicFacts {
    pub major: bool,
    pub tempo_bpm: f32,
}

/// Renders `seconds` of music by `performer` following `cues`.
pub fn render<R: Rng>(
    rng: &mut R,
    performer: &Performer,
    cues: &dyn CueTrack,
    seconds: f32,
    sr: u32,
) -> (Vec<f32>, MusicFacts) {
    let tonic = performer.register - 7.0 + rng.random_range(0..7) as f32;
    let (melody, chords, facts) = compose(rng, performer, cues, seconds, tonic);
    let n = (seconds * sr as f32) as usize;
    let mut out = vec![0.0f32; n];
    for note in melody.iter().chain(chords.iter()) {
        add_note(rng, &mut out, note, performer.instrument, sr as f32);
    }
    for x in &mut out {
        *x = soft_limit(*x);
    }
    (out, facts)
}

fn compose<R: Rng>(
    rng: &mut R,
    p: &Performer,
    cues: &dyn CueTrack,
    seconds: f32,
    tonic: f32,
) -> (Vec<Note>, Vec<Note>, MusicFacts) {
    let mut melody = Vec::new();
    let mut chords = Vec::new();
    let mut t = 0.05f32;
    let mut degree: i32 = 7; // scale step relative to the tonic an octave below the register centre
    let c0 = cues.at(0.0);
    let facts = MusicFacts {
        major: c0.mode + 0.35 * gauss(rng) > 0.0,
        tempo_bpm: p.tempo * 2f32.powf(0.8 * c0.rate),
    };
    let mut bar_start = 0.0f32;
    let mut bar_major = facts.major;
    while t < seconds - 0.05 {
        let c = cues.at(t);
        let beat = 60.0 / (p.tempo * 2f32.powf(0.8 * c.rate));
        if t >= bar_start {
            // A new bar: re-decide the mode when cues drift, and lay a chord under it.
            if bar_start > 0.0 {
                bar_major = c.mode + 0.25 * gauss(rng) > 0.0;
            }
            let scale = if bar_major { MAJOR } else { MINOR };
            let root_deg = [0, 3, 4, 5][rng.random_range(0..4)];
            for k in [0, 2, 4] {
                let d = root_deg + k;
                let midi = tonic - 12.0 + (scale[(d % 7) as usize] + 12 * (d / 7)) as f32;
                chords.push(Note {
                    start: bar_start,
                    dur: 4.0 * beat * 0.98,
                    midi,
                    gain: db(10.0 * c.loudness - 17.0),
                    attack: 0.03,
                    brightness: c.brightness - 0.5,
                    irregularity: c.irregularity,
                });
            }
            bar_start += 4.0 * beat;
        }
        let scale = if bar_major { MAJOR } else { MINOR };
        // Pitch variability widens the melodic steps; pitch level shifts the register.
        let max_step = (1.0 + 2.5 * (c.pitch_var + 1.0)).round() as i32;
        degree = (degree + rng.random_range(-max_step..=max_step)).clamp(0, 16);
        let octave_shift = 7.0 * c.pitch;
        let midi = tonic + (scale[(degree % 7) as usize] + 12 * (degree / 7)) as f32 - 12.0
            + octave_shift
            + c.irregularity.max(0.0) * 0.15 * gauss(rng);
        let len_beats = [0.5, 0.5, 1.0, 1.0, 1.5, 2.0][rng.random_range(0..6)];
        let ioi =
            len_beats * beat * (1.0 + 0.04 * (c.irregularity + 1.0) * gauss(rng)).clamp(0.7, 1.3);
        // Legato holds ~95 % of the inter-onset interval, staccato ~35 %.
        let ratio = (0.62 - 0.35 * c.articulation).clamp(0.2, 0.98);
        let gain = db(11.0 * c.loudness + (0.8 + 1.6 * (c.loudness_var + 1.0)) * gauss(rng) - 10.0);
        let attack = 0.002 * 40f32.powf(((1.0 - c.attack) / 2.0).clamp(0.0, 1.0));
        melody.push(Note {
            start: t,
            dur: ioi * ratio,
            midi,
            gain,
            attack,
            brightness: c.brightness + p.brightness,
            irregularity: c.irregularity,
        });
        t += ioi;
    }
    (melody, chords, facts)
}

fn add_note<R: Rng>(rng: &mut R, out: &mut [f32], note: &Note, inst: Instrument, sr: f32) {
    let start = (note.start * sr) as usize;
    let release = 0.06f32;
    let len = ((note.dur + release) * sr) as usize;
    let f0 = 440.0 * 2f32.powf((note.midi - 69.0) / 12.0);
    let irr = (note.irregularity + 1.0).max(0.0);
    let vib_rate = 5.0 + uniform(rng, -0.5, 0.5) + 0.8 * irr;
    let vib_depth = 0.002 + 0.004 * irr;
    let wobble_rate = uniform(rng, 3.0, 9.0);
    let wobble_depth = 0.04 * irr;
    let slope = (2.0 - 1.2 * note.brightness).clamp(0.5, 3.8);
    let nyquist = 0.45 * sr;
    let partials: Vec<(f32, f32)> = match inst {
        Instrument::Strings | Instrument::Pluck => (1..=24)
            .map(|k| (k as f32, (k as f32).powf(-slope)))
            .collect(),
        Instrument::Reed => (1..=24)
            .map(|k| {
                (
                    k as f32,
                    (k as f32).powf(-slope) * if k % 2 == 0 { 0.3 } else { 1.0 },
                )
            })
            .collect(),
        Instrument::Fm => vec![(1.0, 1.0)],
    };
    let fm_index = (1.2 + 1.5 * note.brightness).clamp(0.2, 4.0);
    let norm: f32 = partials.iter().map(|p| p.1).sum::<f32>().max(1e-3);
    let mut phases = vec![0.0f32; partials.len()];
    let mut mod_phase = 0.0f32;
    let two_pi = 2.0 * std::f32::consts::PI;
    for k in 0..len {
        let idx = start + k;
        if idx >= out.len() {
            break;
        }
        let t = k as f32 / sr;
        let attack = (t / note.attack).min(1.0);
        let body = match inst {
            Instrument::Pluck => (-t * 3.5).exp(),
            Instrument::Fm => (-t * 1.2).exp(),
            _ => 1.0,
        };
        let rel = if t > note.dur {
            (1.0 - (t - note.dur) / release).max(0.0)
        } else {
            1.0
        };
        let amp = note.gain
            * attack
            * body
            * rel
            * (1.0 + wobble_depth * (two_pi * wobble_rate * t).sin());
        let f = f0 * (1.0 + vib_depth * (two_pi * vib_rate * t).sin() * (t / 0.3).min(1.0));
        let sample = if inst == Instrument::Fm {
            mod_phase = (mod_phase + f / sr) % 1.0;
            phases[0] = (phases[0] + f / sr) % 1.0;
            let index = fm_index * (0.4 + 0.6 * body);
            (two_pi * phases[0] + index * (two_pi * mod_phase).sin()).sin()
        } else {
            let mut s = 0.0;
            for (j, (mult, a)) in partials.iter().enumerate() {
                let fk = f * mult;
                if fk >= nyquist {
                    break;
                }
                phases[j] = (phases[j] + fk / sr) % 1.0;
                s += a * (two_pi * phases[j]).sin();
            }
            s / norm
        };
        out[idx] += 0.25 * amp * sample;
    }
}
