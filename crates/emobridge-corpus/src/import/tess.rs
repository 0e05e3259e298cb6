//! TESS, the Toronto Emotional Speech Set (Dupuis & Pichora-Fuller 2010).
//!
//! Layout: files `<SPK>_<word>_<emotion>.wav`, e.g. `OAF_back_angry.wav`, either flat (as the
//! Dataverse release lists them) or in folders `<SPK>_<emotion>` (`OAF_angry`, `OAF_Fear`,
//! `OAF_Pleasant_surprise`, `YAF_pleasant_surprised`, …; the folder's case varies). SPK is OAF
//! (older adult female, ~64 y) or YAF (younger, ~26 y).
//!
//! | file suffix | folder suffix | canonical |
//! |---|---|---|
//! | angry | angry | angry |
//! | disgust | disgust | disgust |
//! | fear | fear | fearful |
//! | happy | happy | happy |
//! | neutral | neutral | neutral |
//! | ps | pleasant_surprise(d) | surprised |
//! | sad | sad | sad |
//!
//! Group = speaker (so at most two speaker folds exist). The release's one misnamed file,
//! `OA_bite_neutral.wav` inside `OAF_neutral/`, is taken as OAF (the folder decides) and noted in
//! the extra column `naming_note`. A file whose folder disagrees with its name otherwise is
//! reported. Extra columns: `source_label` (the file suffix), `word`, `naming_note`.

use std::path::Path;

use super::util::{self, list_audio};
use super::{Corpus, ImportError, Imported, IssueKind};
use crate::manifest::{Domain, Record};
use crate::taxonomy::Emotion;

pub fn emotion_of(suffix: &str) -> Option<Emotion> {
    Some(match suffix.to_ascii_lowercase().as_str() {
        "angry" => Emotion::Angry,
        "disgust" => Emotion::Disgust,
        "fear" => Emotion::Fearful,
        "happy" => Emotion::Happy,
        "neutral" => Emotion::Neutral,
        "ps" | "pleasant_surprise" | "pleasant_surprised" => Emotion::Surprised,
        "sad" => Emotion::Sad,
        _ => return None,
    })
}

/// (speaker, emotion) of a folder such as `OAF_Pleasant_surprise`, if it is a TESS folder.
fn parse_folder(name: &str) -> Option<(&str, Emotion)> {
    let (spk, emo) = name.split_once('_')?;
    let spk = ["OAF", "YAF"]
        .into_iter()
        .find(|s| s.eq_ignore_ascii_case(spk))?;
    Some((spk, emotion_of(emo)?))
}

pub(crate) fn import(root: &Path) -> Result<Imported, ImportError> {
    let mut out = Imported::new(Corpus::Tess);
    for path in list_audio(root)? {
        let stem = util::stem(&path);
        let parts: Vec<&str> = stem.split('_').collect();
        let (file_spk, word, suffix) = match parts.as_slice() {
            [s, w, e] => (*s, *w, *e),
            _ => {
                out.issue(IssueKind::BadName, &path, "not <speaker>_<word>_<emotion>");
                continue;
            }
        };
        let Some(emotion) = emotion_of(suffix) else {
            out.issue(
                IssueKind::BadName,
                &path,
                format!("emotion `{suffix}` is not angry/disgust/fear/happy/neutral/ps/sad"),
            );
            continue;
        };
        let folder_name = util::parent_name(&path);
        let folder = parse_folder(&folder_name);
        let mut note = String::new();
        let speaker = match (file_spk, folder) {
            (s, Some((f, _))) if s == f => f,
            // The release's misnamed OA_bite_neutral.wav: its folder says OAF.
            ("OA", Some(("OAF", _))) => {
                note = "file names speaker `OA`; taken as OAF from its folder".to_string();
                "OAF"
            }
            (s, None) if s == "OAF" || s == "YAF" => s,
            (s, Some((f, _))) => {
                out.issue(
                    IssueKind::Conflict,
                    &path,
                    format!("file names speaker `{s}` but lies in a {f} folder"),
                );
                continue;
            }
            (s, None) => {
                out.issue(
                    IssueKind::BadName,
                    &path,
                    format!("speaker `{s}` is not OAF or YAF"),
                );
                continue;
            }
        };
        if let Some((_, folder_emotion)) = folder {
            if folder_emotion != emotion {
                out.issue(
                    IssueKind::Conflict,
                    &path,
                    format!("file says {emotion} but its folder says {folder_emotion}"),
                );
                continue;
            }
        }
        let mut r = Record::new(
            &stem,
            util::path_string(&path),
            Domain::Speech,
            Corpus::Tess.as_str(),
            speaker,
        );
        r.emotion = Some(emotion);
        r.set_extra("source_label", suffix);
        r.set_extra("word", word);
        r.set_extra("naming_note", note);
        out.records.push(r);
    }
    Ok(out)
}
