//! EMOPIA (Hung et al., ISMIR 2021; Zenodo 5090631), pop-piano clips in Russell quadrants.
//!
//! Layout: clip audio `Q<k>_<songId>_<clipIdx>.<ext>` (the release ships MIDI plus YouTube ids;
//! the audio clips are usually kept in `audios/seg/`, but any folder under ROOT is searched;
//! MIDI files are not audio and are passed over). The YouTube song id may itself contain `_`
//! and `-` (e.g. `Q4__BK2o77sTc0_2` is song `_BK2o77sTc0`, clip 2). Optional `label.csv`
//! (`ID, 4Q, annotator`) is checked against the names; optional split tables under `split/`
//! whose names start with `train`, `val` or `test` give `split`: clip tables (first column the
//! clip name, e.g. `fname,label`) or song tables (a `songID` column, e.g. `train_SL.csv`).
//! `label.csv` and `split/` are read from the release folder, which may lie up to two levels
//! below ROOT (ROOT above `EMOPIA_1.0/`); without them the import warns that quadrants come from
//! the file names alone and no split is known.
//!
//! | quadrant | arousal, valence | canonical (raw) | `quadrant4` preset |
//! |---|---|---|---|
//! | Q1 | +1, +1 | (none) | happy |
//! | Q2 | +1, −1 | (none) | angry |
//! | Q3 | −1, −1 | (none) | sad |
//! | Q4 | −1, +1 | (none) | calm |
//!
//! The quadrant fixes only the signs of arousal and valence; they are written as ±1 with
//! `av_scale` = `quadrant sign`, so a reader can tell them from rated values. Group = song id
//! (clips of one song never straddle folds). Extra columns: `source_label` (Q1…Q4), `quadrant`,
//! `song`, `clip`, `av_scale`.

use std::collections::HashMap;
use std::path::Path;

use super::util::{self, cell, list_audio, Table};
use super::{Corpus, ImportError, Imported, IssueKind, Preset};
use crate::manifest::{Domain, Record};
use crate::taxonomy::{Emotion, Quadrant};

/// The emotion a quadrant stands for under the `quadrant4` preset.
pub fn quadrant_emotion(q: Quadrant) -> Emotion {
    match q {
        Quadrant::Q1 => Emotion::Happy,
        Quadrant::Q2 => Emotion::Angry,
        Quadrant::Q3 => Emotion::Sad,
        Quadrant::Q4 => Emotion::Calm,
    }
}

/// (quadrant, song id, clip index) of `Q1__0vLPYiPN7qY_1`.
pub fn parse_name(stem: &str) -> Result<(Quadrant, &str, u32), String> {
    let (q, rest) = stem.split_once('_').ok_or("not Q<k>_<song>_<clip>")?;
    let quadrant = match q {
        "Q1" | "Q2" | "Q3" | "Q4" => Quadrant::parse(q).expect("valid"),
        _ => return Err(format!("quadrant `{q}` is not Q1-Q4")),
    };
    let (song, clip) = rest.rsplit_once('_').ok_or("not Q<k>_<song>_<clip>")?;
    let clip: u32 = clip
        .parse()
        .map_err(|_| format!("clip index `{clip}` is not a number"))?;
    if song.is_empty() {
        return Err("empty song id".into());
    }
    Ok((quadrant, song, clip))
}

pub(crate) fn import(root: &Path, preset: Preset) -> Result<Imported, ImportError> {
    let mut out = Imported::new(Corpus::Emopia);
    let home = util::locate_home(root, 2, &|d| {
        d.join("label.csv").is_file() || d.join("split").is_dir()
    });
    if home.is_none() {
        tracing::warn!(
            "{}: no label.csv or split/ found (up to two levels down): quadrants come from the file names alone and no split is set",
            root.display()
        );
    }
    let home = home.unwrap_or_else(|| root.to_path_buf());
    let labels = read_labels(&home)?;
    let (clip_split, song_split) = read_splits(&home)?;
    let mut found = std::collections::HashSet::new();
    for path in list_audio(root)? {
        let stem = util::stem(&path);
        let (quadrant, song, clip) = match parse_name(&stem) {
            Ok(p) => p,
            Err(why) => {
                out.issue(IssueKind::BadName, &path, why);
                continue;
            }
        };
        found.insert(stem.clone());
        if let Some(listed) = labels.get(&stem) {
            if *listed != quadrant {
                out.issue(
                    IssueKind::Conflict,
                    &path,
                    format!("name says {quadrant} but label.csv says {listed}"),
                );
                continue;
            }
        }
        let mut r = Record::new(
            &stem,
            util::path_string(&path),
            Domain::Music,
            Corpus::Emopia.as_str(),
            song,
        );
        if preset == Preset::Quadrant4 {
            r.emotion = Some(quadrant_emotion(quadrant));
        }
        let (a, v) = quadrant.signs();
        r.arousal = Some(a);
        r.valence = Some(v);
        r.split = clip_split
            .get(&stem)
            .or_else(|| song_split.get(song))
            .cloned()
            .unwrap_or_default();
        r.set_extra("source_label", quadrant.as_str());
        r.set_extra("quadrant", quadrant.as_str());
        r.set_extra("song", song);
        r.set_extra("clip", clip.to_string());
        r.set_extra("av_scale", "quadrant sign");
        out.records.push(r);
    }
    let mut missing: Vec<&String> = labels.keys().filter(|k| !found.contains(*k)).collect();
    missing.sort();
    for clip in missing {
        out.issue(
            IssueKind::MissingAudio,
            home.join("label.csv"),
            format!(
                "`{clip}` is labelled but has no audio under {}",
                root.display()
            ),
        );
    }
    Ok(out)
}

/// ID → quadrant from `label.csv`, if present.
fn read_labels(root: &Path) -> Result<HashMap<String, Quadrant>, ImportError> {
    let Some(path) = util::first_file(root, &["label.csv"]) else {
        return Ok(HashMap::new());
    };
    let t = Table::read(&path)?;
    let id = t.require(&["ID"])?;
    let q = t.require(&["4Q"])?;
    let mut map = HashMap::new();
    for (line, row) in &t.rows {
        let quadrant = Quadrant::parse(cell(row, q)).ok_or_else(|| ImportError::Table {
            path: path.clone(),
            line: *line,
            message: format!("4Q `{}` is not 1-4", cell(row, q)),
        })?;
        map.insert(cell(row, id).to_string(), quadrant);
    }
    Ok(map)
}

/// (clip → split, song → split) from the tables under `split/`.
#[allow(clippy::type_complexity)]
fn read_splits(
    root: &Path,
) -> Result<(HashMap<String, String>, HashMap<String, String>), ImportError> {
    let (mut clips, mut songs) = (HashMap::new(), HashMap::new());
    let Some(dir) = util::first_dir(root, &["split"]) else {
        return Ok((clips, songs));
    };
    for path in util::list_files(&dir)?
        .into_iter()
        .filter(|p| util::extension(p).as_deref() == Some("csv"))
    {
        let name = util::stem(&path).to_ascii_lowercase();
        let Some(split) = ["train", "val", "test"]
            .into_iter()
            .find(|s| name.starts_with(s))
        else {
            continue;
        };
        let t = Table::read(&path)?;
        match t.column(&["songID", "song_id"]) {
            Some(song) => t.rows.iter().for_each(|(_, r)| {
                songs.insert(cell(r, song).to_string(), split.to_string());
            }),
            None => t.rows.iter().for_each(|(_, r)| {
                clips.insert(cell(r, 0).to_string(), split.to_string());
            }),
        }
    }
    Ok((clips, songs))
}
