//! The canonical emotion taxonomy.
//!
//! Every label has a nominal point on Russell's circumplex (arousal, valence in [-1, 1]) and a
//! quadrant numbered as EMOPIA does: Q1 = +A+V, Q2 = +A−V, Q3 = −A−V, Q4 = −A+V.
//!
//! The nominal points are emobridge's documented convention (not measured values): they place
//! each category where the circumplex literature puts it (Russell 1980; Juslin & Laukka 2003,
//! Table 1's arousal/valence groupings), so clip-level A/V can be filled for corpora that only
//! carry categories. Neutral sits at the origin and is assigned Q4/Q3 by convention only when
//! a quadrant is forced (see [`Emotion::quadrant`]).
//!
//! | label | arousal | valence | quadrant |
//! |---|---|---|---|
//! | neutral | 0.0 | 0.0 | none |
//! | calm | −0.6 | 0.4 | Q4 |
//! | happy | 0.5 | 0.8 | Q1 |
//! | sad | −0.5 | −0.7 | Q3 |
//! | angry | 0.8 | −0.6 | Q2 |
//! | fearful | 0.7 | −0.7 | Q2 |
//! | disgust | 0.3 | −0.7 | Q2 |
//! | surprised | 0.7 | 0.2 | Q1 |
//! | tender | −0.4 | 0.7 | Q4 |
//! | boredom | −0.7 | −0.3 | Q3 |
//! | excited | 0.8 | 0.6 | Q1 |
//! | frustrated | 0.4 | −0.5 | Q2 |

use std::fmt;

/// A canonical emotion label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Emotion {
    Neutral,
    Calm,
    Happy,
    Sad,
    Angry,
    Fearful,
    Disgust,
    Surprised,
    Tender,
    Boredom,
    Excited,
    Frustrated,
}

/// A quadrant of the arousal/valence plane, numbered as EMOPIA does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Quadrant {
    /// High arousal, positive valence.
    Q1,
    /// High arousal, negative valence.
    Q2,
    /// Low arousal, negative valence.
    Q3,
    /// Low arousal, positive valence.
    Q4,
}

impl Quadrant {
    pub const ALL: [Quadrant; 4] = [Quadrant::Q1, Quadrant::Q2, Quadrant::Q3, Quadrant::Q4];

    /// The quadrant of an (arousal, valence) point; `None` at the origin axes.
    pub fn of(arousal: f32, valence: f32) -> Option<Quadrant> {
        match (arousal, valence) {
            (a, v) if a > 0.0 && v > 0.0 => Some(Quadrant::Q1),
            (a, v) if a > 0.0 && v < 0.0 => Some(Quadrant::Q2),
            (a, v) if a < 0.0 && v < 0.0 => Some(Quadrant::Q3),
            (a, v) if a < 0.0 && v > 0.0 => Some(Quadrant::Q4),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Quadrant::Q1 => "Q1",
            Quadrant::Q2 => "Q2",
            Quadrant::Q3 => "Q3",
            Quadrant::Q4 => "Q4",
        }
    }

    /// Signs (arousal, valence) of the quadrant.
    pub fn signs(self) -> (f32, f32) {
        match self {
            Quadrant::Q1 => (1.0, 1.0),
            Quadrant::Q2 => (1.0, -1.0),
            Quadrant::Q3 => (-1.0, -1.0),
            Quadrant::Q4 => (-1.0, 1.0),
        }
    }

    pub fn parse(s: &str) -> Option<Quadrant> {
        match s.trim().to_ascii_uppercase().as_str() {
            "Q1" | "1" => Some(Quadrant::Q1),
            "Q2" | "2" => Some(Quadrant::Q2),
            "Q3" | "3" => Some(Quadrant::Q3),
            "Q4" | "4" => Some(Quadrant::Q4),
            _ => None,
        }
    }
}

impl fmt::Display for Quadrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Emotion {
    pub const ALL: [Emotion; 12] = [
        Emotion::Neutral,
        Emotion::Calm,
        Emotion::Happy,
        Emotion::Sad,
        Emotion::Angry,
        Emotion::Fearful,
        Emotion::Disgust,
        Emotion::Surprised,
        Emotion::Tender,
        Emotion::Boredom,
        Emotion::Excited,
        Emotion::Frustrated,
    ];

    /// The six labels RAVDESS speech and song share (and the synthetic corpus uses).
    pub const RAVDESS_SHARED: [Emotion; 6] = [
        Emotion::Neutral,
        Emotion::Calm,
        Emotion::Happy,
        Emotion::Sad,
        Emotion::Angry,
        Emotion::Fearful,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Emotion::Neutral => "neutral",
            Emotion::Calm => "calm",
            Emotion::Happy => "happy",
            Emotion::Sad => "sad",
            Emotion::Angry => "angry",
            Emotion::Fearful => "fearful",
            Emotion::Disgust => "disgust",
            Emotion::Surprised => "surprised",
            Emotion::Tender => "tender",
            Emotion::Boredom => "boredom",
            Emotion::Excited => "excited",
            Emotion::Frustrated => "frustrated",
        }
    }

    /// Parses a canonical label (case-insensitive; a few common spellings accepted).
    pub fn parse(s: &str) -> Option<Emotion> {
        let s = s.trim().to_ascii_lowercase();
        Some(match s.as_str() {
            "neutral" => Emotion::Neutral,
            "calm" => Emotion::Calm,
            "happy" | "happiness" | "joy" => Emotion::Happy,
            "sad" | "sadness" => Emotion::Sad,
            "angry" | "anger" => Emotion::Angry,
            "fearful" | "fear" => Emotion::Fearful,
            "disgust" | "disgusted" => Emotion::Disgust,
            "surprised" | "surprise" => Emotion::Surprised,
            "tender" | "tenderness" => Emotion::Tender,
            "boredom" | "bored" => Emotion::Boredom,
            "excited" | "excitement" => Emotion::Excited,
            "frustrated" | "frustration" => Emotion::Frustrated,
            _ => return None,
        })
    }

    /// Nominal (arousal, valence) on the circumplex; see the module table.
    pub fn circumplex(self) -> (f32, f32) {
        match self {
            Emotion::Neutral => (0.0, 0.0),
            Emotion::Calm => (-0.6, 0.4),
            Emotion::Happy => (0.5, 0.8),
            Emotion::Sad => (-0.5, -0.7),
            Emotion::Angry => (0.8, -0.6),
            Emotion::Fearful => (0.7, -0.7),
            Emotion::Disgust => (0.3, -0.7),
            Emotion::Surprised => (0.7, 0.2),
            Emotion::Tender => (-0.4, 0.7),
            Emotion::Boredom => (-0.7, -0.3),
            Emotion::Excited => (0.8, 0.6),
            Emotion::Frustrated => (0.4, -0.5),
        }
    }

    pub fn arousal(self) -> f32 {
        self.circumplex().0
    }

    pub fn valence(self) -> f32 {
        self.circumplex().1
    }

    /// The quadrant of the nominal point; neutral has none.
    pub fn quadrant(self) -> Option<Quadrant> {
        let (a, v) = self.circumplex();
        Quadrant::of(a, v)
    }
}

impl fmt::Display for Emotion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The labels present in both sets, in canonical order.
pub fn shared_labels(a: &[Emotion], b: &[Emotion]) -> Vec<Emotion> {
    let mut out: Vec<Emotion> = Emotion::ALL
        .iter()
        .copied()
        .filter(|e| a.contains(e) && b.contains(e))
        .collect();
    out.dedup();
    out
}

/// Distinct labels of an iterator, in canonical order.
pub fn label_set<I: IntoIterator<Item = Option<Emotion>>>(labels: I) -> Vec<Emotion> {
    let mut v: Vec<Emotion> = labels.into_iter().flatten().collect();
    v.sort();
    v.dedup();
    v
}

/// Restricts two manifests' records to the labels they share (records without a label are dropped).
pub fn restrict_to_shared(a: &mut crate::Manifest, b: &mut crate::Manifest) -> Vec<Emotion> {
    let shared = shared_labels(
        &label_set(a.records.iter().map(|r| r.emotion)),
        &label_set(b.records.iter().map(|r| r.emotion)),
    );
    for m in [a, b] {
        m.records
            .retain(|r| r.emotion.is_some_and(|e| shared.contains(&e)));
    }
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_round_trips_and_has_a_consistent_quadrant() {
        for e in Emotion::ALL {
            assert_eq!(Emotion::parse(e.as_str()), Some(e));
            let (a, v) = e.circumplex();
            assert!((-1.0..=1.0).contains(&a) && (-1.0..=1.0).contains(&v));
            if let Some(q) = e.quadrant() {
                let (sa, sv) = q.signs();
                assert!(a * sa > 0.0 && v * sv > 0.0, "{e}");
            }
        }
        assert_eq!(Emotion::Neutral.quadrant(), None);
        assert_eq!(Emotion::Happy.quadrant(), Some(Quadrant::Q1));
        assert_eq!(Emotion::Angry.quadrant(), Some(Quadrant::Q2));
        assert_eq!(Emotion::Sad.quadrant(), Some(Quadrant::Q3));
        assert_eq!(Emotion::Calm.quadrant(), Some(Quadrant::Q4));
    }

    #[test]
    fn ravdess_speech_and_song_share_six_labels() {
        use Emotion::*;
        let speech = [
            Neutral, Calm, Happy, Sad, Angry, Fearful, Disgust, Surprised,
        ];
        let song = [Neutral, Calm, Happy, Sad, Angry, Fearful];
        assert_eq!(
            shared_labels(&speech, &song),
            Emotion::RAVDESS_SHARED.to_vec()
        );
    }
}
