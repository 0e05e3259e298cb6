//! IEMOCAP (Busso et al. 2008), the USC dyadic corpus.
//!
//! Layout (ROOT = `IEMOCAP_full_release/` or its parent): `SessionN/dialog/EmoEvaluation/
//! <dialog>.txt`, whose summary lines read
//! `[start - end]<TAB><utterance><TAB><cat><TAB>[V, A, D]`, and audio
//! `SessionN/sentences/wav/<dialog>/<utterance>.wav`. Utterance ids look like
//! `Ses01F_impro01_F000` or `Ses01F_script01_1_M012`: session, the dialogue's lead gender, the
//! dialogue, and the **speaker's** gender with a turn index.
//!
//! | cat | canonical (raw) | `superb4` preset |
//! |---|---|---|
//! | neu | neutral | neutral |
//! | hap | happy | happy |
//! | exc | excited | **happy** |
//! | ang | angry | angry |
//! | sad | sad | sad |
//! | fru | frustrated | dropped |
//! | fea | fearful | dropped |
//! | sur | surprised | dropped |
//! | dis | disgust | dropped |
//! | oth | (none) | dropped |
//! | xxx | (none: no majority) | dropped |
//!
//! V/A/D are 1–5 ratings mapped by (x − 3)/2. Group = session + speaker gender (`Ses01F`),
//! the speaker-independent unit; the usual folds are leave-one-session-out over the `session`
//! column. Extra columns: `source_label`, `session`, `dialog`, `mode` (`improvised`/`scripted`),
//! `gender`, `start`, `end`, `dominance` (mapped), `av_scale`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::util::{self, list_files, Scale};
use super::{Corpus, ImportError, Imported, IssueKind, Preset};
use crate::manifest::{Domain, Record};
use crate::taxonomy::Emotion;

/// The canonical label of a category under a preset: `Some(label)` keeps the utterance (with no
/// canonical label for `oth`/`xxx`), `None` drops it (an unknown code, or outside the preset).
pub fn emotion_of(cat: &str, preset: Preset) -> Option<Option<Emotion>> {
    let raw = match cat {
        "neu" => Some(Emotion::Neutral),
        "hap" => Some(Emotion::Happy),
        "exc" => Some(Emotion::Excited),
        "ang" => Some(Emotion::Angry),
        "sad" => Some(Emotion::Sad),
        "fru" => Some(Emotion::Frustrated),
        "fea" => Some(Emotion::Fearful),
        "sur" => Some(Emotion::Surprised),
        "dis" => Some(Emotion::Disgust),
        "oth" | "xxx" => None,
        _ => return None,
    };
    match preset {
        Preset::Superb4 => match cat {
            "neu" | "hap" | "ang" | "sad" => Some(raw),
            "exc" => Some(Some(Emotion::Happy)),
            _ => None,
        },
        _ => Some(raw),
    }
}

/// One summary line of an EmoEvaluation file.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub start: f32,
    pub end: f32,
    pub utterance: String,
    pub category: String,
    /// Valence, arousal, dominance as rated (1–5).
    pub vad: [f32; 3],
}

/// Parses `[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]`.
pub fn parse_line(line: &str) -> Result<Evaluation, String> {
    let fields: Vec<&str> = line
        .split('\t')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect();
    if fields.len() != 4 {
        return Err(format!(
            "expected 4 tab-separated fields, found {}",
            fields.len()
        ));
    }
    let times = fields[0].trim_start_matches('[').trim_end_matches(']');
    let (s, e) = times
        .split_once(" - ")
        .ok_or("time span is not `[start - end]`")?;
    let start = s
        .trim()
        .parse()
        .map_err(|_| format!("start `{s}` is not a number"))?;
    let end = e
        .trim()
        .parse()
        .map_err(|_| format!("end `{e}` is not a number"))?;
    let nums: Vec<f32> = fields[3]
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|v| {
            v.trim()
                .parse::<f32>()
                .map_err(|_| format!("V/A/D value `{}` is not a number", v.trim()))
        })
        .collect::<Result<_, _>>()?;
    let vad: [f32; 3] = nums
        .try_into()
        .map_err(|_| "V/A/D is not three numbers".to_string())?;
    Ok(Evaluation {
        start,
        end,
        utterance: fields[1].to_string(),
        category: fields[2].to_string(),
        vad,
    })
}

/// (session number, dialog, speaker gender) of an utterance id.
pub fn parse_utterance(utt: &str) -> Result<(u32, &str, char), String> {
    let (dialog, turn) = utt.rsplit_once('_').ok_or("no `_<gender><index>` suffix")?;
    let session: u32 = utt
        .strip_prefix("Ses")
        .and_then(|r| r.get(0..2))
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=5).contains(n))
        .ok_or("does not start with Ses01..Ses05")?;
    let gender = turn
        .chars()
        .next()
        .filter(|g| *g == 'F' || *g == 'M')
        .ok_or("speaker turn does not start with F or M")?;
    if !dialog.contains("_impro") && !dialog.contains("_script") {
        return Err("dialog is neither impro nor script".into());
    }
    Ok((session, dialog, gender))
}

/// `SessionN` folders, under ROOT or `ROOT/IEMOCAP_full_release`.
fn sessions(root: &Path) -> Result<Vec<(u32, PathBuf)>, ImportError> {
    let base = [root.to_path_buf(), root.join("IEMOCAP_full_release")]
        .into_iter()
        .find(|b| (1..=5).any(|n| b.join(format!("Session{n}")).is_dir()))
        .ok_or_else(|| ImportError::Layout {
            path: root.to_path_buf(),
            message: "no Session1..Session5 folders (IEMOCAP_full_release layout expected)".into(),
        })?;
    Ok((1..=5)
        .map(|n| (n, base.join(format!("Session{n}"))))
        .filter(|(_, p)| p.is_dir())
        .collect())
}

pub(crate) fn import(root: &Path, preset: Preset) -> Result<Imported, ImportError> {
    let mut out = Imported::new(Corpus::Iemocap);
    let mut mentioned = HashSet::new();
    for (n, session) in sessions(root)? {
        let eval_dir = session.join("dialog/EmoEvaluation");
        if !eval_dir.is_dir() {
            out.issue(
                IssueKind::NoAnnotation,
                &eval_dir,
                "session has no dialog/EmoEvaluation folder; skipped",
            );
            continue;
        }
        let files = std::fs::read_dir(&eval_dir).map_err(|source| ImportError::Io {
            path: eval_dir.clone(),
            source,
        })?;
        let mut files: Vec<PathBuf> = files
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && util::extension(p).as_deref() == Some("txt"))
            .collect();
        files.retain(|p| !util::stem(p).starts_with('.'));
        files.sort();
        for file in files {
            read_evaluation(&file, &session, n, preset, &mut out, &mut mentioned)?;
        }
    }
    // IEMOCAP labels every utterance; a wav that no summary line names is reported.
    if preset == Preset::Raw {
        for (_, session) in sessions(root)? {
            let wav_dir = session.join("sentences/wav");
            if !wav_dir.is_dir() {
                continue;
            }
            for wav in list_files(&wav_dir)?
                .into_iter()
                .filter(|p| util::extension(p).as_deref() == Some("wav"))
            {
                if !mentioned.contains(&util::stem(&wav)) {
                    out.issue(
                        IssueKind::NoAnnotation,
                        &wav,
                        "no EmoEvaluation line names this utterance",
                    );
                }
            }
        }
    }
    Ok(out)
}

fn read_evaluation(
    file: &Path,
    session: &Path,
    n: u32,
    preset: Preset,
    out: &mut Imported,
    mentioned: &mut HashSet<String>,
) -> Result<(), ImportError> {
    let text = std::fs::read(file).map_err(|source| ImportError::Io {
        path: file.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8_lossy(&text);
    for (i, line) in text.lines().enumerate() {
        if !line.starts_with('[') {
            continue;
        }
        let at = PathBuf::from(format!("{}:{}", file.display(), i + 1));
        let ev = match parse_line(line) {
            Ok(ev) => ev,
            Err(why) => {
                out.issue(IssueKind::BadAnnotation, &at, why);
                continue;
            }
        };
        mentioned.insert(ev.utterance.clone());
        let (sess, dialog, gender) = match parse_utterance(&ev.utterance) {
            Ok(p) => p,
            Err(why) => {
                out.issue(
                    IssueKind::BadName,
                    &at,
                    format!("utterance `{}`: {why}", ev.utterance),
                );
                continue;
            }
        };
        if sess != n {
            out.issue(
                IssueKind::Conflict,
                &at,
                format!("utterance `{}` is listed under Session{n}", ev.utterance),
            );
            continue;
        }
        let emotion = match emotion_of(&ev.category, preset) {
            Some(e) => e,
            None if preset == Preset::Raw => {
                out.issue(
                    IssueKind::BadAnnotation,
                    &at,
                    format!("unknown category `{}`", ev.category),
                );
                continue;
            }
            None => continue, // outside the preset's classes: dropped by design, not a problem
        };
        let wav = session
            .join("sentences/wav")
            .join(dialog)
            .join(format!("{}.wav", ev.utterance));
        if !wav.is_file() {
            out.issue(
                IssueKind::MissingAudio,
                &wav,
                format!("annotated in {} but the audio is missing", file.display()),
            );
            continue;
        }
        let speaker = format!("Ses{sess:02}{gender}");
        let mut r = Record::new(
            &ev.utterance,
            util::path_string(&wav),
            Domain::Speech,
            Corpus::Iemocap.as_str(),
            speaker,
        );
        r.emotion = emotion;
        r.set_extra("source_label", ev.category.as_str());
        r.set_extra("session", sess.to_string());
        r.set_extra("dialog", dialog);
        r.set_extra(
            "mode",
            if dialog.contains("_impro") {
                "improvised"
            } else {
                "scripted"
            },
        );
        r.set_extra("gender", if gender == 'F' { "female" } else { "male" });
        r.set_extra("start", format!("{}", ev.start));
        r.set_extra("end", format!("{}", ev.end));
        let [v, a, d] = ev.vad.map(|x| Scale::ONE_TO_FIVE.map(x));
        if let (Some(v), Some(a)) = (v, a) {
            r.valence = Some(v);
            r.arousal = Some(a);
            r.set_extra("av_scale", Scale::ONE_TO_FIVE.describe());
        } else {
            out.issue(
                IssueKind::BadAnnotation,
                &at,
                format!("V/A {:?} outside 1-5; kept without A/V", ev.vad),
            );
        }
        r.set_extra("dominance", d.map(|d| format!("{d}")).unwrap_or_default());
        out.records.push(r);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_ids_parse() {
        let ev =
            parse_line("[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]")
                .unwrap();
        assert_eq!(ev.utterance, "Ses01F_impro01_F000");
        assert_eq!(ev.vad, [2.5, 2.5, 2.5]);
        assert!((ev.start - 6.2901).abs() < 1e-6);
        assert_eq!(
            parse_utterance("Ses01F_script01_1_M012").unwrap(),
            (1, "Ses01F_script01_1", 'M')
        );
        assert_eq!(
            parse_utterance("Ses05M_impro03_F021").unwrap(),
            (5, "Ses05M_impro03", 'F')
        );
        assert!(parse_utterance("Ses06F_impro01_F000").is_err());
        assert_eq!(emotion_of("exc", Preset::Raw), Some(Some(Emotion::Excited)));
        assert_eq!(
            emotion_of("exc", Preset::Superb4),
            Some(Some(Emotion::Happy))
        );
        assert_eq!(emotion_of("fru", Preset::Superb4), None);
        assert_eq!(emotion_of("xxx", Preset::Raw), Some(None));
    }
}
