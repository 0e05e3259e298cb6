//! Source–filter speech-like synthesis.
//!
//! A Rosenberg glottal pulse train follows an F0 contour (declination over each phrase, an
//! accent per syllable) with per-period jitter and shimmer; aspiration noise is gated by the
//! glottal opening; a cascade of formant resonators glides through a vowel sequence scaled by
//! the speaker's vocal-tract length; consonant-like noise bursts open each syllable; a
//! syllable envelope carries intensity, its variability and attack sharpness. Every cue comes
//! from a [`CueTrack`], sampled at each syllable onset, so the same code renders a fixed
//! emotion or a drifting one.

use rand::Rng;

use super::cues::CueTrack;
use super::dsp::{db, gauss, soft_limit, uniform, OnePole, Resonator};

/// A virtual speaker.
#[derive(Debug, Clone)]
pub struct Speaker {
    pub name: String,
    pub gender: &'static str,
    /// Habitual F0 in Hz.
    pub f0: f32,
    /// Formant scale (vocal-tract length: >1 shorter tract, higher formants).
    pub formant_scale: f32,
    /// Habitual syllables per second.
    pub rate: f32,
    /// Aspiration-noise level (breathiness).
    pub breathiness: f32,
    /// Personal cue habits added to every clip.
    pub habit: [f32; 10],
}

/// Vowel formants (F1, F2, F3) of an adult male voice (Peterson & Barney 1952 averages).
const VOWELS: [(f32, f32, f32); 6] = [
    (730.0, 1090.0, 2440.0),
    (270.0, 2290.0, 3010.0),
    (300.0, 870.0, 2240.0),
    (530.0, 1840.0, 2480.0),
    (570.0, 840.0, 2410.0),
    (660.0, 1720.0, 2410.0),
];

/// Rosenberg glottal flow over one period, phase in [0, 1).
fn glottal_flow(phase: f32, open_quotient: f32) -> f32 {
    let tp = 0.6 * open_quotient;
    let tn = 0.4 * open_quotient;
    if phase < tp {
        0.5 * (1.0 - (std::f32::consts::PI * phase / tp).cos())
    } else if phase < tp + tn {
        (std::f32::consts::FRAC_PI_2 * (phase - tp) / tn).cos()
    } else {
        0.0
    }
}

struct Syllable {
    start: usize,
    len: usize,
    consonant_len: usize,
    vowel: (f32, f32, f32),
    gain: f32,
    accent_st: f32,
    attack_s: f32,
    fricative_hz: f32,
}

/// Renders `seconds` of speech by `speaker` following `cues`.
pub fn render<R: Rng>(
    rng: &mut R,
    speaker: &Speaker,
    cues: &dyn CueTrack,
    seconds: f32,
    sr: u32,
) -> Vec<f32> {
    let sr_f = sr as f32;
    let n = (seconds * sr_f) as usize;
    let syllables = plan_syllables(rng, speaker, cues, n, sr_f);
    let mut out = vec![0.0f32; n];

    // Per-sample contours, filled syllable by syllable.
    let mut f0 = vec![0.0f32; n];
    let mut env = vec![0.0f32; n];
    let mut voiced = vec![0.0f32; n];
    let mut frication = vec![0.0f32; n];
    let mut formants = vec![(0.0f32, 0.0f32, 0.0f32); n];
    let mut phrase_pos = 0usize;
    for (i, s) in syllables.iter().enumerate() {
        let c = cues.at(s.start as f32 / sr_f);
        // Declination: about −2 semitones over a phrase of ~6 syllables.
        phrase_pos = if i > 0
            && s.start > syllables[i - 1].start + syllables[i - 1].len + (0.1 * sr_f) as usize
        {
            0
        } else {
            phrase_pos + 1
        };
        let declination = -0.35 * phrase_pos as f32;
        let base_st = 4.0 * c.pitch + declination + s.accent_st;
        let next_vowel = syllables.get(i + 1).map_or(s.vowel, |x| x.vowel);
        let attack = (s.attack_s * sr_f).max(1.0);
        for k in 0..s.len {
            let idx = s.start + k;
            if idx >= n {
                break;
            }
            let u = k as f32 / s.len as f32;
            // The accent peaks mid-syllable; F0 glides back toward the phrase line.
            let st = base_st - s.accent_st * (1.0 - (std::f32::consts::PI * u).sin());
            f0[idx] = speaker.f0 * 2f32.powf(st / 12.0);
            let rise = (k as f32 / attack).min(1.0);
            let fall = ((s.len - k) as f32 / (0.25 * s.len as f32)).min(1.0);
            env[idx] = s.gain * rise * fall.powf(1.5);
            if k < s.consonant_len {
                frication[idx] = 1.0;
                voiced[idx] = 0.15;
            } else {
                voiced[idx] = 1.0;
            }
            // Formants glide linearly into the next vowel over the syllable's last third.
            let g = ((u - 0.66) / 0.34).clamp(0.0, 1.0);
            let lerp = |a: f32, b: f32| a + (b - a) * g;
            let arousal_f1 = 1.0 + 0.08 * c.loudness.max(0.0);
            formants[idx] = (
                lerp(s.vowel.0, next_vowel.0) * speaker.formant_scale * arousal_f1,
                lerp(s.vowel.1, next_vowel.1) * speaker.formant_scale,
                lerp(s.vowel.2, next_vowel.2) * speaker.formant_scale,
            );
        }
    }

    // Source: glottal pulses with jitter and shimmer, plus gated aspiration noise.
    let mut phase = 0.0f32;
    let mut period_jitter = 0.0f32;
    let mut period_shimmer = 1.0f32;
    let mut prev_flow = 0.0f32;
    let mut f1 = Resonator::default();
    let mut f2 = Resonator::default();
    let mut f3 = Resonator::default();
    let mut f4 = Resonator::default();
    let mut fric = Resonator::default();
    let mut tilt = OnePole::new(0.5);
    let mut syl_idx = 0;
    for idx in 0..n {
        while syl_idx + 1 < syllables.len() && syllables[syl_idx + 1].start <= idx {
            syl_idx += 1;
        }
        let c = cues.at(idx as f32 / sr_f);
        if idx % 32 == 0 {
            let (a, b, cc) = formants[idx];
            if a > 0.0 {
                f1.tune(a, 80.0, sr_f);
                f2.tune(b.min(0.45 * sr_f), 100.0, sr_f);
                f3.tune(cc.min(0.45 * sr_f), 140.0, sr_f);
                f4.tune(
                    (3500.0 * speaker.formant_scale).min(0.45 * sr_f),
                    250.0,
                    sr_f,
                );
            }
            // Brighter voices (pressed phonation) keep more high-frequency energy.
            tilt.k = (0.35 + 0.3 * c.brightness).clamp(0.08, 0.95);
            fric.tune(
                syllables
                    .get(syl_idx)
                    .map_or(4000.0, |s| s.fricative_hz)
                    .min(0.42 * sr_f),
                900.0,
                sr_f,
            );
        }
        let hz = f0[idx].max(40.0);
        phase += hz * (1.0 + period_jitter) / sr_f;
        if phase >= 1.0 {
            phase -= 1.0;
            let irr = 0.3 + 0.7 * (c.irregularity + 1.0).max(0.0);
            period_jitter = 0.006 * irr * gauss(rng);
            period_shimmer = (1.0 + 0.05 * irr * gauss(rng)).max(0.2);
        }
        let oq = (0.6 - 0.12 * c.brightness).clamp(0.35, 0.8);
        let flow = glottal_flow(phase, oq) * period_shimmer;
        // Lip radiation ≈ differentiation; the one-pole then sets spectral tilt.
        let source = tilt.tick((flow - prev_flow) * 8.0);
        prev_flow = flow;
        let open = if phase < oq { 1.0 } else { 0.3 };
        let breath =
            (speaker.breathiness + 0.04 * c.irregularity.max(0.0)) * open * gauss(rng) * 0.3;
        let excitation = voiced[idx] * (source + breath);
        let mut y = f4.tick(f3.tick(f2.tick(f1.tick(excitation))));
        y += frication[idx] * fric.tick(gauss(rng) * 0.25);
        out[idx] = y * env[idx];
    }
    for x in &mut out {
        *x = soft_limit(*x * 0.12);
    }
    out
}

fn plan_syllables<R: Rng>(
    rng: &mut R,
    speaker: &Speaker,
    cues: &dyn CueTrack,
    n: usize,
    sr: f32,
) -> Vec<Syllable> {
    let mut out = Vec::new();
    let mut t = uniform(rng, 0.08, 0.2) * sr;
    let mut until_pause = rng.random_range(4..8);
    while (t as usize) < n {
        let c = cues.at(t / sr);
        let rate = speaker.rate * 2f32.powf(0.55 * c.rate);
        let dur = (1.0 / rate) * uniform(rng, 0.8, 1.2);
        let len = (dur * sr) as usize;
        let vowel = VOWELS[rng.random_range(0..VOWELS.len())];
        let gain_db = 7.0 * c.loudness + (1.5 + 2.5 * (c.loudness_var + 1.0)) * gauss(rng);
        let accent_st = (1.2 + 1.6 * (c.pitch_var + 1.0))
            * gauss(rng).abs()
            * if rng.random::<f32>() < 0.35 { 1.0 } else { 0.4 };
        // Sharp attacks: ~5 ms; soft: ~70 ms.
        let attack_s = 0.005 * 14f32.powf(((1.0 - c.attack) / 2.0).clamp(0.0, 1.0));
        let consonant_len = (len as f32 * uniform(rng, 0.18, 0.32)) as usize;
        out.push(Syllable {
            start: t as usize,
            len,
            consonant_len,
            vowel,
            gain: db(gain_db),
            accent_st,
            attack_s,
            fricative_hz: uniform(rng, 2500.0, 6000.0),
        });
        // Staccato delivery leaves short gaps between syllables; legato runs them together.
        t += len as f32 * (1.0 + 0.15 * (c.articulation.clamp(-1.0, 1.0) + 1.0));
        until_pause -= 1;
        if until_pause == 0 {
            // Slower, sadder speech pauses longer.
            t += uniform(rng, 0.12, 0.3) * 2f32.powf(-0.8 * c.rate) * sr;
            until_pause = rng.random_range(4..8);
        }
    }
    out
}
