//! CREMA-D (Cao et al. 2014; github.com/CheyneyComputerScience/CREMA-D).
//!
//! Layout: `AudioWAV/AAAA_SSS_EEE_LL.wav` (else `AudioMP3/`, else ROOT itself), optional
//! `processedResults/summaryTable.csv` (crowd ratings: `FileName`, `VoiceVote`, `VoiceLevel`)
//! and optional `VideoDemographics.csv` (`ActorID`, `Age`, `Sex`).
//!
//! | EEE | canonical |
//! |---|---|
//! | ANG | angry |
//! | DIS | disgust |
//! | FEA | fearful |
//! | HAP | happy |
//! | NEU | neutral |
//! | SAD | sad |
//!
//! AAAA actor 1001–1091 (the group); SSS one of the 12 sentences; LL intensity LO/MD/HI/XX
//! (`low`/`medium`/`high`/`unspecified`). Extra columns: `source_label`, `sentence`,
//! `intensity`, and when the tables exist `voice_vote` (the voice-only crowd majority, `:`-joined
//! on ties, codes A D F H N S), `voice_level` (its mean rated intensity), `gender`, `age`.
//!
//! ROOT may be the repository folder itself or a folder up to two levels above it (e.g. the
//! folder holding `CREMA-D/`): the corpus's home is the first folder with `AudioWAV/` or
//! `AudioMP3/`, and the tables are read there. Only one audio folder is read (WAV first), so
//! the MP3 copies never shadow the WAVs as duplicates. A git clone without `git lfs pull`
//! holds pointer stubs instead of audio: each is reported (`bad-audio`) and skipped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::util::{self, cell, list_audio, Table};
use super::{Corpus, ImportError, Imported, IssueKind};
use crate::manifest::{Domain, Record};
use crate::taxonomy::Emotion;

/// The 12 sentence codes.
pub const SENTENCES: [&str; 12] = [
    "IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI",
];

pub fn emotion_of(code: &str) -> Option<Emotion> {
    Some(match code {
        "ANG" => Emotion::Angry,
        "DIS" => Emotion::Disgust,
        "FEA" => Emotion::Fearful,
        "HAP" => Emotion::Happy,
        "NEU" => Emotion::Neutral,
        "SAD" => Emotion::Sad,
        _ => return None,
    })
}

fn intensity_of(code: &str) -> Option<&'static str> {
    Some(match code {
        "LO" => "low",
        "MD" => "medium",
        "HI" => "high",
        "XX" => "unspecified",
        _ => return None,
    })
}

/// (actor, sentence, emotion code, intensity) of a stem such as `1001_DFA_ANG_XX`.
pub fn parse_name(stem: &str) -> Result<(u32, &str, &str, &'static str), String> {
    let p: Vec<&str> = stem.split('_').collect();
    if p.len() != 4 {
        return Err("not AAAA_SSS_EEE_LL".into());
    }
    let actor: u32 = p[0]
        .parse()
        .ok()
        .filter(|a| (1001..=1091).contains(a))
        .ok_or_else(|| format!("actor `{}` is not 1001-1091", p[0]))?;
    if !SENTENCES.contains(&p[1]) {
        return Err(format!("sentence code `{}` is not one of the 12", p[1]));
    }
    emotion_of(p[2])
        .ok_or_else(|| format!("emotion code `{}` is not ANG/DIS/FEA/HAP/NEU/SAD", p[2]))?;
    let level =
        intensity_of(p[3]).ok_or_else(|| format!("intensity `{}` is not LO/MD/HI/XX", p[3]))?;
    Ok((actor, p[1], p[2], level))
}

pub(crate) fn import(root: &Path) -> Result<Imported, ImportError> {
    let mut out = Imported::new(Corpus::CremaD);
    let home = util::locate_home(root, 2, &|d| {
        d.join("AudioWAV").is_dir() || d.join("AudioMP3").is_dir()
    })
    .unwrap_or_else(|| root.to_path_buf());
    let root = home.as_path();
    let audio_dir =
        util::first_dir(root, &["AudioWAV", "AudioMP3"]).unwrap_or_else(|| root.to_path_buf());
    let votes = read_votes(root)?;
    let people = read_demographics(root)?;
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for path in list_audio(&audio_dir)? {
        let stem = util::stem(&path);
        let (actor, sentence, emo, level) = match parse_name(&stem) {
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
            Corpus::CremaD.as_str(),
            actor.to_string(),
        );
        r.emotion = emotion_of(emo);
        r.set_extra("source_label", emo);
        r.set_extra("sentence", sentence);
        r.set_extra("intensity", level);
        if let Some((vote, lvl)) = votes.as_ref().and_then(|v| v.get(&stem)) {
            r.set_extra("voice_vote", vote.as_str());
            r.set_extra("voice_level", lvl.as_str());
        }
        if let Some((sex, age)) = people.get(&actor) {
            r.set_extra("gender", sex.as_str());
            r.set_extra("age", age.as_str());
        }
        seen.insert(stem, path);
        out.records.push(r);
    }
    if let Some(votes) = &votes {
        let table = root.join("processedResults/summaryTable.csv");
        let mut rated: Vec<&String> = votes.keys().filter(|k| !seen.contains_key(*k)).collect();
        rated.sort();
        for name in rated {
            out.issue(
                IssueKind::MissingAudio,
                &table,
                format!(
                    "`{name}` is rated but has no audio under {}",
                    audio_dir.display()
                ),
            );
        }
    }
    Ok(out)
}

/// FileName → (VoiceVote, VoiceLevel) from `processedResults/summaryTable.csv`, if present.
/// FileName → (VoiceVote, VoiceLevel).
type Votes = HashMap<String, (String, String)>;

fn read_votes(root: &Path) -> Result<Option<Votes>, ImportError> {
    let Some(path) = util::first_file(root, &["processedResults/summaryTable.csv"]) else {
        return Ok(None);
    };
    let t = Table::read(&path)?;
    let name = t.require(&["FileName"])?;
    let vote = t.require(&["VoiceVote"])?;
    let level = t.column(&["VoiceLevel"]);
    let mut map = HashMap::new();
    for (_, row) in &t.rows {
        map.insert(
            cell(row, name).to_string(),
            (
                cell(row, vote).to_string(),
                util::opt_cell(row, level).to_string(),
            ),
        );
    }
    Ok(Some(map))
}

/// ActorID → (gender, age) from `VideoDemographics.csv`, if present.
fn read_demographics(root: &Path) -> Result<HashMap<u32, (String, String)>, ImportError> {
    let Some(path) = util::first_file(root, &["VideoDemographics.csv"]) else {
        return Ok(HashMap::new());
    };
    let t = Table::read(&path)?;
    let id = t.require(&["ActorID"])?;
    let sex = t.column(&["Sex"]);
    let age = t.column(&["Age"]);
    let mut map = HashMap::new();
    for (_, row) in &t.rows {
        if let Ok(a) = cell(row, id).parse::<u32>() {
            map.insert(
                a,
                (
                    util::opt_cell(row, sex).to_ascii_lowercase(),
                    util::opt_cell(row, age).to_string(),
                ),
            );
        }
    }
    Ok(map)
}
