//! SAVEE, Surrey Audio-Visual Expressed Emotion (Haq & Jackson 2009).
//!
//! Layout: the publisher's `AudioData/<SPK>/<code><nn>.wav` (e.g. `AudioData/DC/sa03.wav`), or
//! the flat re-distribution `<SPK>_<code><nn>.wav` (e.g. `ALL/DC_sa03.wav`). Speakers DC, JE,
//! JK, KL (all male); 120 clips each: neutral n01–n30, other emotions 15 each.
//!
//! | code | canonical |
//! |---|---|
//! | a | angry |
//! | d | disgust |
//! | f | fearful |
//! | h | happy |
//! | n | neutral |
//! | sa | sad |
//! | su | surprised |
//!
//! Id = `<SPK>_<code><nn>` (the bare `a01` repeats across speakers). Group = speaker. Extra
//! columns: `source_label`, `sentence` (the two-digit number).

use std::path::Path;

use super::util::{self, list_audio};
use super::{Corpus, ImportError, Imported, IssueKind};
use crate::manifest::{Domain, Record};
use crate::taxonomy::Emotion;

pub const SPEAKERS: [&str; 4] = ["DC", "JE", "JK", "KL"];

pub fn emotion_of(code: &str) -> Option<Emotion> {
    Some(match code {
        "a" => Emotion::Angry,
        "d" => Emotion::Disgust,
        "f" => Emotion::Fearful,
        "h" => Emotion::Happy,
        "n" => Emotion::Neutral,
        "sa" => Emotion::Sad,
        "su" => Emotion::Surprised,
        _ => return None,
    })
}

/// (code, number) of `sa03`.
fn parse_clip(s: &str) -> Result<(&str, &str), String> {
    let split = s
        .find(|c: char| c.is_ascii_digit())
        .ok_or("no clip number")?;
    let (code, num) = s.split_at(split);
    if num.len() != 2 || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("clip number `{num}` is not two digits"));
    }
    emotion_of(code).ok_or_else(|| format!("emotion code `{code}` is not a/d/f/h/n/sa/su"))?;
    Ok((code, num))
}

pub(crate) fn import(root: &Path) -> Result<Imported, ImportError> {
    let mut out = Imported::new(Corpus::Savee);
    for path in list_audio(root)? {
        let stem = util::stem(&path);
        let folder = util::parent_name(&path);
        let (speaker, clip) = match stem.split_once('_') {
            Some((s, c)) => (s.to_string(), c.to_string()),
            None => (folder.clone(), stem.clone()),
        };
        if !SPEAKERS.contains(&speaker.as_str()) {
            out.issue(IssueKind::BadName, &path, format!("speaker `{speaker}` is not DC/JE/JK/KL (expected AudioData/<SPK>/<code><nn>.wav or <SPK>_<code><nn>.wav)"));
            continue;
        }
        if SPEAKERS.contains(&folder.as_str()) && folder != speaker {
            out.issue(
                IssueKind::Conflict,
                &path,
                format!("file names speaker {speaker} but lies in {folder}/"),
            );
            continue;
        }
        let (code, num) = match parse_clip(&clip) {
            Ok(c) => c,
            Err(why) => {
                out.issue(IssueKind::BadName, &path, why);
                continue;
            }
        };
        let id = format!("{speaker}_{code}{num}");
        let mut r = Record::new(
            id,
            util::path_string(&path),
            Domain::Speech,
            Corpus::Savee.as_str(),
            speaker.as_str(),
        );
        r.emotion = emotion_of(code);
        r.set_extra("source_label", code);
        r.set_extra("sentence", num);
        out.records.push(r);
    }
    Ok(out)
}
