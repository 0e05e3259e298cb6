//! PMEmo (Zhang et al., ICMR 2018; github.com/HuiZhangDB/PMEmo), chorus clips of chart pop.
//!
//! Layout (ROOT = `PMEmo2019/` or its parent): `chorus/<musicId>.mp3`;
//! `annotations/static_annotations.csv` (`musicId, Arousal(mean), Valence(mean)`, in [0, 1]);
//! optional `annotations/static_annotations_std.csv` (`musicId, Arousal(std), Valence(std)`);
//! optional `annotations/dynamic_annotations.csv` (`musicId, frameTime, Arousal(mean),
//! Valence(mean)`, 2 Hz, [0, 1], the first 15 s unannotated); optional `metadata.csv`
//! (`musicId, fileName, title, artist, …`; its `fileName` locates the clip when present).
//!
//! Emotion: none. Arousal/valence mapped by 2x − 1 (static and dynamic); standard deviations by
//! ×2. Group = musicId. Id = `pmemo_<musicId>`. Extra columns: `arousal_std`, `valence_std`,
//! `title`, `artist`, `av_scale`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::emomusic::{map_pair, static_av_record};
use super::util::{self, cell, list_audio, number, opt_cell, Scale, Table};
use super::{AvPoint, Corpus, ImportError, Imported, IssueKind};

fn base(root: &Path) -> PathBuf {
    let nested = root.join("PMEmo2019");
    if !root.join("annotations").is_dir() && nested.is_dir() {
        nested
    } else {
        root.to_path_buf()
    }
}

pub(crate) fn import(root: &Path) -> Result<Imported, ImportError> {
    let mut out = Imported::new(Corpus::Pmemo);
    let root = base(root);
    let static_path = util::first_file(
        &root,
        &[
            "annotations/static_annotations.csv",
            "static_annotations.csv",
        ],
    )
    .ok_or_else(|| ImportError::Layout {
        path: root.clone(),
        message: "no annotations/static_annotations.csv".into(),
    })?;
    let audio_dir = util::first_dir(&root, &["chorus"]).unwrap_or_else(|| root.clone());
    let meta = read_metadata(&root)?;
    let spreads = read_spreads(&root)?;
    let traces = read_dynamic(&root, &mut out)?;
    let t = Table::read(&static_path)?;
    let id = t.require(&["musicId"])?;
    let cols = [
        t.require(&["Arousal(mean)"])?,
        t.require(&["Valence(mean)"])?,
    ];
    let mut annotated = HashSet::new();
    for (line, row) in &t.rows {
        let music = cell(row, id).to_string();
        annotated.insert(music.clone());
        let at = format!("{}:{line}", static_path.display());
        let Some([a, v]) = map_pair(row, cols, Scale::UNIT) else {
            out.issue(
                IssueKind::BadAnnotation,
                &at,
                "Arousal(mean)/Valence(mean) missing or outside [0, 1]; song skipped",
            );
            continue;
        };
        let (file_name, title, artist) = meta.get(&music).cloned().unwrap_or_default();
        let audio = audio_dir.join(if file_name.is_empty() {
            format!("{music}.mp3")
        } else {
            file_name
        });
        let (sa, sv) = spreads.get(&music).copied().unwrap_or((None, None));
        let Some(mut r) = static_av_record(
            &mut out,
            Corpus::Pmemo,
            &music,
            &audio,
            &at,
            [a, v],
            [sa, sv],
            Scale::UNIT,
        ) else {
            continue;
        };
        let rid = r.id.clone();
        r.set_extra("title", title);
        r.set_extra("artist", artist);
        r.set_extra("av_scale", Scale::UNIT.describe());
        if let Some(points) = traces.get(&music) {
            out.dynamics.insert(rid, points.clone());
        }
        out.records.push(r);
    }
    for audio in list_audio(&audio_dir)? {
        if !annotated.contains(&util::stem(&audio)) {
            out.issue(
                IssueKind::NoAnnotation,
                &audio,
                format!("no row in {}", static_path.display()),
            );
        }
    }
    Ok(out)
}

/// musicId → (fileName, title, artist) from `metadata.csv`, if present.
fn read_metadata(root: &Path) -> Result<HashMap<String, (String, String, String)>, ImportError> {
    let Some(path) = util::first_file(root, &["metadata.csv"]) else {
        return Ok(HashMap::new());
    };
    let t = Table::read(&path)?;
    let id = t.require(&["musicId"])?;
    let (file, title, artist) = (
        t.column(&["fileName"]),
        t.column(&["title"]),
        t.column(&["artist"]),
    );
    Ok(t.rows
        .iter()
        .map(|(_, r)| {
            (
                cell(r, id).to_string(),
                (
                    opt_cell(r, file).to_string(),
                    opt_cell(r, title).to_string(),
                    opt_cell(r, artist).to_string(),
                ),
            )
        })
        .collect())
}

/// musicId → (arousal sd, valence sd) on the [0, 1] scale, if the std table exists.
/// musicId → (arousal sd, valence sd).
type Spreads = HashMap<String, (Option<f32>, Option<f32>)>;

fn read_spreads(root: &Path) -> Result<Spreads, ImportError> {
    let Some(path) = util::first_file(root, &["annotations/static_annotations_std.csv"]) else {
        return Ok(HashMap::new());
    };
    let t = Table::read(&path)?;
    let id = t.require(&["musicId"])?;
    let (a, v) = (t.column(&["Arousal(std)"]), t.column(&["Valence(std)"]));
    Ok(t.rows
        .iter()
        .map(|(_, r)| {
            (
                cell(r, id).to_string(),
                (number(opt_cell(r, a)), number(opt_cell(r, v))),
            )
        })
        .collect())
}

/// musicId → trace from the long-format `dynamic_annotations.csv`, mapped by 2x − 1.
fn read_dynamic(
    root: &Path,
    out: &mut Imported,
) -> Result<HashMap<String, Vec<AvPoint>>, ImportError> {
    let Some(path) = util::first_file(
        root,
        &[
            "annotations/dynamic_annotations.csv",
            "dynamic_annotations.csv",
        ],
    ) else {
        return Ok(HashMap::new());
    };
    let t = Table::read(&path)?;
    let id = t.require(&["musicId"])?;
    let time = t.require(&["frameTime"])?;
    let cols = [
        t.require(&["Arousal(mean)"])?,
        t.require(&["Valence(mean)"])?,
    ];
    let mut traces: BTreeMap<String, Vec<AvPoint>> = BTreeMap::new();
    for (line, row) in &t.rows {
        let (Some(secs), Some([a, v])) =
            (number(cell(row, time)), map_pair(row, cols, Scale::UNIT))
        else {
            out.issue(
                IssueKind::BadAnnotation,
                format!("{}:{line}", path.display()),
                "frameTime or A/V missing or outside [0, 1]; point dropped",
            );
            continue;
        };
        traces
            .entry(cell(row, id).to_string())
            .or_default()
            .push(AvPoint {
                time: secs,
                arousal: a,
                valence: v,
            });
    }
    Ok(traces
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_by(|x, y| x.time.total_cmp(&y.time));
            (k, v)
        })
        .collect())
}
