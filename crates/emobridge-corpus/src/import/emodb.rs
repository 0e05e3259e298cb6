//! EmoDB, the Berlin Database of Emotional Speech (Burkhardt et al. 2005).
//!
//! Layout: `wav/SSTTTEV.wav` (else any WAV under ROOT), e.g. `03a01Fa.wav`: speaker SS (03, 08–16
//! as listed below), text TTT (a01, a02, a04, a05, a07, b01, b02, b03, b09, b10), emotion letter E
//! (German initial), version V (a, b, c…).
//!
//! | E | German | canonical |
//! |---|---|---|
//! | W | Ärger (Wut) | angry |
//! | L | Langeweile | boredom |
//! | E | Ekel | disgust |
//! | A | Angst | fearful |
//! | F | Freude | happy |
//! | T | Trauer | sad |
//! | N | neutral | neutral |
//!
//! Speakers 03, 10, 11, 12, 15 are male; 08, 09, 13, 14, 16 female. Group = speaker. Extra
//! columns: `source_label`, `text`, `version`, `gender`.

use std::path::Path;

use super::util::{self, list_audio};
use super::{Corpus, ImportError, Imported, IssueKind};
use crate::manifest::{Domain, Record};
use crate::taxonomy::Emotion;

pub const MALE: [&str; 5] = ["03", "10", "11", "12", "15"];
pub const FEMALE: [&str; 5] = ["08", "09", "13", "14", "16"];
pub const TEXTS: [&str; 10] = [
    "a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10",
];

pub fn emotion_of(letter: char) -> Option<Emotion> {
    Some(match letter {
        'W' => Emotion::Angry,
        'L' => Emotion::Boredom,
        'E' => Emotion::Disgust,
        'A' => Emotion::Fearful,
        'F' => Emotion::Happy,
        'T' => Emotion::Sad,
        'N' => Emotion::Neutral,
        _ => return None,
    })
}

/// (speaker, text, emotion letter, version) of a stem such as `03a01Fa`.
pub fn parse_name(stem: &str) -> Result<(&str, &str, char, char), String> {
    if stem.len() != 7 || !stem.is_ascii() {
        return Err("not SSTTTEV (7 characters, e.g. 03a01Fa)".into());
    }
    let (spk, text) = (&stem[0..2], &stem[2..5]);
    let emo = stem.as_bytes()[5] as char;
    let version = stem.as_bytes()[6] as char;
    if !MALE.contains(&spk) && !FEMALE.contains(&spk) {
        return Err(format!(
            "speaker `{spk}` is not one of the ten EmoDB speakers"
        ));
    }
    if !TEXTS.contains(&text) {
        return Err(format!("text `{text}` is not one of the ten EmoDB texts"));
    }
    emotion_of(emo).ok_or_else(|| format!("emotion letter `{emo}` is not W/L/E/A/F/T/N"))?;
    if !version.is_ascii_lowercase() {
        return Err(format!("version `{version}` is not a lower-case letter"));
    }
    Ok((spk, text, emo, version))
}

pub(crate) fn import(root: &Path) -> Result<Imported, ImportError> {
    let mut out = Imported::new(Corpus::EmoDb);
    let dir = util::first_dir(root, &["wav"]).unwrap_or_else(|| root.to_path_buf());
    for path in list_audio(&dir)? {
        let stem = util::stem(&path);
        let (spk, text, emo, version) = match parse_name(&stem) {
            Ok(f) => f,
            Err(why) => {
                out.issue(IssueKind::BadName, &path, why);
                continue;
            }
        };
        let mut r = Record::new(
            &stem,
            util::path_string(&path),
            Domain::Speech,
            Corpus::EmoDb.as_str(),
            spk,
        );
        r.emotion = emotion_of(emo);
        r.set_extra("source_label", emo.to_string());
        r.set_extra("text", text);
        r.set_extra("version", version.to_string());
        r.set_extra(
            "gender",
            if MALE.contains(&spk) {
                "male"
            } else {
                "female"
            },
        );
        out.records.push(r);
    }
    Ok(out)
}
