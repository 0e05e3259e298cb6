//! The shared acoustic code: one cue vector drives both the voice and the instrument.
//!
//! Juslin & Laukka (2003, Psychological Bulletin 129(5), Table 7) list the cues that vocal
//! expression and music performance use alike for each emotion: speech rate / tempo, voice
//! intensity / sound level and its variability, F0 / pitch level and its variability,
//! high-frequency energy (timbre brightness), articulation (legato–staccato), attack sharpness
//! and micro-structural irregularity. Each value below is on a −1…+1 scale relative to a
//! neutral rendition; signs follow their table (e.g. anger: fast, loud, high HF energy, sharp
//! attacks; sadness: slow, soft, low and flat pitch, legato, dull timbre; fear: fast, high
//! and irregular pitch, low-to-moderate intensity). Magnitudes are emobridge's choice.
//! `mode` (major/minor) is a music-only valence cue; its speech counterpart is left out, as
//! in the source table.

use crate::taxonomy::Emotion;

/// One point in cue space. Every field is on a −1…+1 scale (0 = neutral).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Cues {
    /// Speech rate / tempo.
    pub rate: f32,
    /// Intensity / sound level.
    pub loudness: f32,
    /// Intensity variability.
    pub loudness_var: f32,
    /// F0 / pitch level.
    pub pitch: f32,
    /// F0 / pitch variability (range of the contour or melody).
    pub pitch_var: f32,
    /// High-frequency energy / timbre brightness.
    pub brightness: f32,
    /// Articulation: −1 legato … +1 staccato.
    pub articulation: f32,
    /// Attack sharpness.
    pub attack: f32,
    /// Micro-structural irregularity (jitter, shimmer, pitch and timing noise).
    pub irregularity: f32,
    /// Major (+1) vs minor (−1) mode tendency (music only).
    pub mode: f32,
}

impl Cues {
    /// The nominal profile of an emotion (see the module table).
    pub fn of(emotion: Emotion) -> Cues {
        let c = |rate,
                 loudness,
                 loudness_var,
                 pitch,
                 pitch_var,
                 brightness,
                 articulation,
                 attack,
                 irregularity,
                 mode| Cues {
            rate,
            loudness,
            loudness_var,
            pitch,
            pitch_var,
            brightness,
            articulation,
            attack,
            irregularity,
            mode,
        };
        match emotion {
            Emotion::Calm => c(-0.5, -0.5, -0.5, -0.3, -0.4, -0.5, -0.6, -0.6, -0.3, 0.6),
            Emotion::Happy => c(0.6, 0.5, 0.5, 0.6, 0.7, 0.4, 0.5, 0.4, -0.2, 1.0),
            Emotion::Sad => c(-0.8, -0.7, -0.4, -0.5, -0.7, -0.7, -0.8, -0.7, 0.3, -1.0),
            Emotion::Angry => c(0.6, 0.9, 0.6, 0.3, 0.5, 0.9, 0.6, 0.9, 0.5, -0.5),
            Emotion::Fearful => c(0.8, 0.2, 0.7, 0.8, 0.3, 0.2, 0.3, 0.3, 0.9, -0.8),
            Emotion::Tender => c(-0.4, -0.4, -0.3, -0.1, -0.2, -0.4, -0.7, -0.6, -0.3, 0.8),
            Emotion::Surprised => c(0.5, 0.5, 0.6, 0.7, 0.8, 0.4, 0.3, 0.6, 0.1, 0.4),
            Emotion::Disgust => c(-0.2, 0.2, 0.1, -0.2, -0.3, 0.3, 0.1, 0.2, 0.4, -0.7),
            Emotion::Boredom => c(-0.6, -0.6, -0.6, -0.4, -0.8, -0.5, -0.3, -0.5, -0.2, 0.0),
            Emotion::Excited => c(0.8, 0.7, 0.6, 0.6, 0.7, 0.6, 0.5, 0.6, 0.0, 0.9),
            Emotion::Frustrated => c(0.2, 0.4, 0.4, 0.1, 0.2, 0.5, 0.3, 0.5, 0.4, -0.6),
            Emotion::Neutral => Cues::default(),
        }
    }

    pub(crate) fn fields(&self) -> [f32; 10] {
        [
            self.rate,
            self.loudness,
            self.loudness_var,
            self.pitch,
            self.pitch_var,
            self.brightness,
            self.articulation,
            self.attack,
            self.irregularity,
            self.mode,
        ]
    }

    pub(crate) fn from_fields(f: [f32; 10]) -> Cues {
        Cues {
            rate: f[0],
            loudness: f[1],
            loudness_var: f[2],
            pitch: f[3],
            pitch_var: f[4],
            brightness: f[5],
            articulation: f[6],
            attack: f[7],
            irregularity: f[8],
            mode: f[9],
        }
    }

    /// Every cue multiplied by `k` (expression intensity).
    pub fn scaled(&self, k: f32) -> Cues {
        Cues::from_fields(self.fields().map(|v| v * k))
    }

    /// Linear blend `(1 − t)·self + t·other`.
    pub fn lerp(&self, other: &Cues, t: f32) -> Cues {
        let (a, b) = (self.fields(), other.fields());
        let mut out = [0.0; 10];
        for i in 0..10 {
            out[i] = a[i] + (b[i] - a[i]) * t;
        }
        Cues::from_fields(out)
    }

    /// Adds per-cue offsets (speaker habits, random spread), clamping to −1.5…1.5.
    pub fn plus(&self, offsets: &[f32; 10]) -> Cues {
        let a = self.fields();
        let mut out = [0.0; 10];
        for i in 0..10 {
            out[i] = (a[i] + offsets[i]).clamp(-1.5, 1.5);
        }
        Cues::from_fields(out)
    }
}

/// A cue vector as a function of time (constant for clip-level items, drifting for the
/// continuous subset).
pub trait CueTrack {
    fn at(&self, t: f32) -> Cues;
}

impl CueTrack for Cues {
    fn at(&self, _t: f32) -> Cues {
        *self
    }
}

/// Piecewise-constant emotion segments joined by linear cross-fades.
#[derive(Debug, Clone)]
pub struct Drift {
    /// (start time s, cues) of each segment, in time order.
    pub segments: Vec<(f32, Cues)>,
    /// Cross-fade length in seconds, centred on each boundary.
    pub fade: f32,
}

impl CueTrack for Drift {
    fn at(&self, t: f32) -> Cues {
        let i = self
            .segments
            .iter()
            .rposition(|(s, _)| *s <= t)
            .unwrap_or(0);
        let here = self.segments[i].1;
        let half = self.fade / 2.0;
        if let Some((next_start, next)) = self.segments.get(i + 1) {
            if t > next_start - half {
                return here.lerp(
                    next,
                    ((t - (next_start - half)) / self.fade).clamp(0.0, 1.0),
                );
            }
        }
        if i > 0 {
            let (start, _) = self.segments[i];
            if t < start + half {
                let prev = self.segments[i - 1].1;
                return prev.lerp(&here, ((t - (start - half)) / self.fade).clamp(0.0, 1.0));
            }
        }
        here
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_is_continuous_across_boundaries() {
        let d = Drift {
            segments: vec![
                (0.0, Cues::of(Emotion::Sad)),
                (10.0, Cues::of(Emotion::Angry)),
            ],
            fade: 2.0,
        };
        assert_eq!(d.at(5.0), Cues::of(Emotion::Sad));
        assert_eq!(d.at(15.0), Cues::of(Emotion::Angry));
        let mid = d.at(10.0);
        assert!(
            (mid.loudness
                - (Cues::of(Emotion::Sad).loudness + Cues::of(Emotion::Angry).loudness) / 2.0)
                .abs()
                < 1e-6
        );
        let (a, b) = (d.at(9.999), d.at(10.001));
        assert!((a.loudness - b.loudness).abs() < 1e-2);
    }
}
