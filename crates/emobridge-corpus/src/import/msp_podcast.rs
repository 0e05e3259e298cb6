//! MSP-Podcast (Lotfian & Busso 2019), and any label CSV in its style.
//!
//! Layout: `Labels/labels_consensus.csv` (releases 1.6 and 1.8 spell it
//! `labels_concensus.csv`; both are read; else either name at ROOT) with columns
//! `FileName, EmoClass, EmoAct, EmoVal, EmoDom, SpkrID, Gender, Split_Set` (only `FileName` and
//! `EmoClass` are required), audio in `Audios/` (else `Audio/`, else ROOT). File names read
//! `MSP-PODCAST_<podcast>_<segment>.wav`.
//!
//! Older releases ship `Labels/labels.txt` instead: one block per file, the consensus line
//! `MSP-PODCAST_0001_0008.wav; N; A:2.400000; V:4.000000; D:2.800000;` followed by one line per
//! rater (`WORKER…; …`, ignored) and an empty line. Those carry no speaker, gender or split
//! (the group is then the podcast).
//!
//! | EmoClass | canonical |
//! |---|---|
//! | A | angry |
//! | S | sad |
//! | H | happy |
//! | U | surprised |
//! | F | fearful |
//! | D | disgust |
//! | N | neutral |
//! | C (contempt) | (none) |
//! | O (other) | (none) |
//! | X (no agreement) | (none) |
//!
//! EmoAct / EmoVal / EmoDom are 1–7 consensus ratings mapped by (x − 4)/3. Group = `SpkrID` when
//! known; an `Unknown` speaker is grouped by podcast (`podcast_<id>` from the file name) — the
//! conservative choice, since one podcast's segments share its voices. `Split_Set` goes to `split`
//! (`Train` → `train`, `Development` → `dev`, `Test1` → `test1`, …). Extra columns:
//! `source_label`, `gender`, `dominance` (mapped), `av_scale`.

use std::collections::HashSet;
use std::path::Path;

use super::util::{self, cell, list_audio, number, opt_cell, Scale, Table};
use super::{Corpus, ImportError, Imported, IssueKind};
use crate::manifest::{Domain, Record};
use crate::taxonomy::Emotion;

/// `Some(label)` for a known class (no canonical label for C, O, X); `None` for an unknown code.
pub fn emotion_of(code: &str) -> Option<Option<Emotion>> {
    Some(Some(match code {
        "A" => Emotion::Angry,
        "S" => Emotion::Sad,
        "H" => Emotion::Happy,
        "U" => Emotion::Surprised,
        "F" => Emotion::Fearful,
        "D" => Emotion::Disgust,
        "N" => Emotion::Neutral,
        "C" | "O" | "X" => return Some(None),
        _ => return None,
    }))
}

fn split_of(s: &str) -> String {
    match s.to_ascii_lowercase().as_str() {
        "development" | "dev" | "validation" => "dev".into(),
        other => other.to_string(),
    }
}

/// The podcast id of `MSP-PODCAST_0001_0008`.
fn podcast_of(stem: &str) -> Option<&str> {
    let mut parts = stem.split('_');
    parts
        .next()
        .filter(|p| p.eq_ignore_ascii_case("MSP-PODCAST"))?;
    parts
        .next()
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

pub(crate) fn import(root: &Path) -> Result<Imported, ImportError> {
    let mut out = Imported::new(Corpus::MspPodcast);
    let labels = util::first_file(
        root,
        &[
            "Labels/labels_consensus.csv",
            "Labels/labels_concensus.csv",
            "labels_consensus.csv",
            "labels_concensus.csv",
            "Labels/labels.txt",
            "labels.txt",
        ],
    )
    .ok_or_else(|| ImportError::Layout {
        path: root.to_path_buf(),
        message: "no Labels/labels_consensus.csv (nor the 1.6/1.8 spelling labels_concensus.csv, nor the older labels.txt)".into(),
    })?;
    let audio_dir =
        util::first_dir(root, &["Audios", "Audio"]).unwrap_or_else(|| root.to_path_buf());
    let t = if util::extension(&labels).as_deref() == Some("txt") {
        read_labels_txt(&labels)?
    } else {
        Table::read(&labels)?
    };
    let file = t.require(&["FileName"])?;
    let class = t.require(&["EmoClass"])?;
    let (act, val, dom) = (
        t.column(&["EmoAct"]),
        t.column(&["EmoVal"]),
        t.column(&["EmoDom"]),
    );
    let (spk, gender, split) = (
        t.column(&["SpkrID"]),
        t.column(&["Gender"]),
        t.column(&["Split_Set"]),
    );
    let mut labelled = HashSet::new();
    for (line, row) in &t.rows {
        let at = format!("{}:{line}", labels.display());
        let name = cell(row, file);
        labelled.insert(name.to_string());
        let code = cell(row, class);
        let Some(emotion) = emotion_of(code) else {
            out.issue(
                IssueKind::BadAnnotation,
                &at,
                format!("EmoClass `{code}` is not A/S/H/U/F/D/C/N/O/X"),
            );
            continue;
        };
        let stem = util::stem(Path::new(name));
        let Some(podcast) = podcast_of(&stem) else {
            out.issue(
                IssueKind::BadName,
                &at,
                format!("`{name}` is not MSP-PODCAST_<podcast>_<segment>"),
            );
            continue;
        };
        let wav = audio_dir.join(name);
        if !wav.is_file() {
            out.issue(
                IssueKind::MissingAudio,
                &wav,
                format!("labelled at {at} but the audio is missing"),
            );
            continue;
        }
        let speaker_id = opt_cell(row, spk);
        let speaker = if speaker_id.is_empty() || speaker_id.eq_ignore_ascii_case("unknown") {
            format!("podcast_{podcast}")
        } else {
            speaker_id.to_string()
        };
        let mut r = Record::new(
            &stem,
            util::path_string(&wav),
            Domain::Speech,
            Corpus::MspPodcast.as_str(),
            speaker,
        );
        r.emotion = emotion;
        r.split = split_of(opt_cell(row, split));
        r.set_extra("source_label", code);
        r.set_extra("gender", opt_cell(row, gender).to_ascii_lowercase());
        let map =
            |i: Option<usize>| number(opt_cell(row, i)).and_then(|x| Scale::ONE_TO_SEVEN.map(x));
        let (a, v, d) = (map(act), map(val), map(dom));
        if act.is_some() && val.is_some() {
            match (a, v) {
                (Some(a), Some(v)) => {
                    r.arousal = Some(a);
                    r.valence = Some(v);
                    r.set_extra("av_scale", Scale::ONE_TO_SEVEN.describe());
                }
                _ => out.issue(
                    IssueKind::BadAnnotation,
                    &at,
                    "EmoAct/EmoVal missing or outside 1-7; kept without A/V",
                ),
            }
        }
        r.set_extra("dominance", d.map(|d| format!("{d}")).unwrap_or_default());
        out.records.push(r);
    }
    for wav in list_audio(&audio_dir)? {
        let name = wav
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !labelled.contains(&name) {
            out.issue(
                IssueKind::NoAnnotation,
                &wav,
                format!("not listed in {}", labels.display()),
            );
        }
    }
    Ok(out)
}

/// The consensus lines of an old-style `labels.txt` as a table with the CSV's column names.
fn read_labels_txt(path: &Path) -> Result<Table, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim().trim_start_matches('\u{feff}');
        if !line
            .get(..11)
            .is_some_and(|p| p.eq_ignore_ascii_case("MSP-PODCAST"))
        {
            continue; // rater lines, blank lines, headers
        }
        let parts: Vec<&str> = line
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        let value = |key: &str| {
            parts
                .iter()
                .find_map(|p| p.strip_prefix(key))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        rows.push((
            line_no,
            vec![
                parts[0].to_string(),
                parts.get(1).map(|c| c.to_string()).unwrap_or_default(),
                value("A:"),
                value("V:"),
                value("D:"),
            ],
        ));
    }
    Ok(Table {
        path: path.to_path_buf(),
        header: ["FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom"]
            .map(String::from)
            .to_vec(),
        rows,
        lossy_lines: Vec::new(),
    })
}
