//! RAVDESS (Livingstone & Russo 2018), audio-only speech and song releases.
//!
//! Layout: `Actor_01/ … Actor_24/` (from `Audio_Speech_Actors_01-24.zip` and
//! `Audio_Song_Actors_01-24.zip`, which may be unpacked into one tree or side by side under
//! ROOT), files `MM-VV-EE-II-SS-RR-AA.wav`:
//!
//! | field | codes |
//! |---|---|
//! | MM modality | 01 full-AV, 02 video-only, **03 audio-only** (only 03 is imported) |
//! | VV vocal channel | 01 speech → domain `speech`; 02 song → domain `music` |
//! | EE emotion | 01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust, 08 surprised (song: 01–06) |
//! | II intensity | 01 normal, 02 strong (neutral has no strong) |
//! | SS statement | 01 "Kids are talking by the door", 02 "Dogs are sitting by the door" |
//! | RR repetition | 01, 02 |
//! | AA actor | 01–24 (odd male, even female) |
//!
//! Group (`speaker`) = the actor as two digits (`01` … `24`), shared by speech and song rows so
//! actor folds cover both. Extra columns: `source_label` (the EE code), `vocal_channel`
//! (`speech`/`song`), `intensity`, `statement`, `repetition`, `gender`.

use std::path::Path;

use super::util::{self, list_files};
use super::{Corpus, ImportError, Imported, IssueKind};
use crate::manifest::{Domain, Record};
use crate::taxonomy::Emotion;

/// The canonical emotion of an EE code.
pub fn emotion_of(code: u32) -> Option<Emotion> {
    Some(match code {
        1 => Emotion::Neutral,
        2 => Emotion::Calm,
        3 => Emotion::Happy,
        4 => Emotion::Sad,
        5 => Emotion::Angry,
        6 => Emotion::Fearful,
        7 => Emotion::Disgust,
        8 => Emotion::Surprised,
        _ => return None,
    })
}

/// The fields of a RAVDESS file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RavdessName {
    pub modality: u32,
    pub channel: u32,
    pub emotion: u32,
    pub intensity: u32,
    pub statement: u32,
    pub repetition: u32,
    pub actor: u32,
}

/// Parses and validates a file stem such as `03-01-06-01-02-01-12`.
pub fn parse_name(stem: &str) -> Result<RavdessName, String> {
    let parts: Vec<&str> = stem.split('-').collect();
    if parts.len() != 7
        || parts
            .iter()
            .any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("not MM-VV-EE-II-SS-RR-AA (seven two-digit fields)".into());
    }
    let f: Vec<u32> = parts.iter().map(|p| p.parse().expect("digits")).collect();
    let n = RavdessName {
        modality: f[0],
        channel: f[1],
        emotion: f[2],
        intensity: f[3],
        statement: f[4],
        repetition: f[5],
        actor: f[6],
    };
    let check = |ok: bool, what: &str, v: u32| {
        if ok {
            Ok(())
        } else {
            Err(format!("{what} code {v:02} is not valid"))
        }
    };
    check((1..=3).contains(&n.modality), "modality", n.modality)?;
    check((1..=2).contains(&n.channel), "vocal channel", n.channel)?;
    check((1..=8).contains(&n.emotion), "emotion", n.emotion)?;
    check((1..=2).contains(&n.intensity), "intensity", n.intensity)?;
    check((1..=2).contains(&n.statement), "statement", n.statement)?;
    check((1..=2).contains(&n.repetition), "repetition", n.repetition)?;
    check((1..=24).contains(&n.actor), "actor", n.actor)?;
    if n.channel == 2 && n.emotion > 6 {
        return Err(format!(
            "emotion {:02} does not occur in song (01-06 only)",
            n.emotion
        ));
    }
    if n.emotion == 1 && n.intensity == 2 {
        return Err("neutral has no strong intensity".into());
    }
    Ok(n)
}

pub(crate) fn import(root: &Path) -> Result<Imported, ImportError> {
    let mut out = Imported::new(Corpus::Ravdess);
    for path in list_files(root)? {
        let ext = util::extension(&path).unwrap_or_default();
        if !(util::is_audio(&path) || ext == "mp4") {
            continue;
        }
        let stem = util::stem(&path);
        let name = match parse_name(&stem) {
            Ok(n) => n,
            Err(why) => {
                out.issue(IssueKind::BadName, &path, why);
                continue;
            }
        };
        if name.modality != 3 || ext != "wav" {
            out.issue(
                IssueKind::BadName,
                &path,
                "not an audio-only (03) WAV file; import the Audio_Speech/Audio_Song releases",
            );
            continue;
        }
        let folder = util::parent_name(&path);
        if let Some(n) = folder.strip_prefix("Actor_") {
            if n.parse::<u32>().ok() != Some(name.actor) {
                out.issue(
                    IssueKind::Conflict,
                    &path,
                    format!("file names actor {:02} but lies in {folder}", name.actor),
                );
                continue;
            }
        }
        out.records.push(record(&path, &stem, name));
    }
    Ok(out)
}

fn record(path: &Path, stem: &str, n: RavdessName) -> Record {
    let domain = if n.channel == 1 {
        Domain::Speech
    } else {
        Domain::Music
    };
    let mut r = Record::new(
        stem,
        util::path_string(path),
        domain,
        Corpus::Ravdess.as_str(),
        format!("{:02}", n.actor),
    );
    r.emotion = emotion_of(n.emotion);
    r.set_extra("source_label", format!("{:02}", n.emotion));
    r.set_extra(
        "vocal_channel",
        if n.channel == 1 { "speech" } else { "song" },
    );
    r.set_extra(
        "intensity",
        if n.intensity == 1 { "normal" } else { "strong" },
    );
    r.set_extra("statement", format!("{:02}", n.statement));
    r.set_extra("repetition", format!("{:02}", n.repetition));
    r.set_extra("gender", if n.actor % 2 == 1 { "male" } else { "female" });
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_validate() {
        let n = parse_name("03-01-06-01-02-01-12").unwrap();
        assert_eq!((n.channel, n.emotion, n.statement, n.actor), (1, 6, 2, 12));
        assert!(parse_name("03-02-07-01-01-01-01")
            .unwrap_err()
            .contains("song"));
        assert!(parse_name("03-01-01-02-01-01-01")
            .unwrap_err()
            .contains("neutral"));
        assert!(parse_name("03-01-06-01-02-01-25").is_err());
        assert!(parse_name("03-01-06-01-02-12").is_err());
        assert!(parse_name("03-01-6-01-02-01-12").is_err());
    }
}
