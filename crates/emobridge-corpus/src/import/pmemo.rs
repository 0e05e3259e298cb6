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
//!
//! The 2018 release (`PMEmo Dataset - 2018/01` README) is read too: `Chorus/<id>.mp3`,
//! `A_static.csv` / `V_static.csv` (song id, mean and standard deviation of the static ratings)
//! and, when they are wide 2 Hz tables (`sample_<ms>ms` columns), `A_dynamic_mean.csv` /
//! `V_dynamic_mean.csv`; the per-rater `Annotations/Arousal/<id>-A.csv` files are not needed.
//! That README lists the files but not their headers, so the id column is `musicId` (or
//! `song_id`, `id`, else the first), the mean the first column whose name contains `mean` (else
//! the second) and the spread the first containing `std` (else the third).
//!
//! `metadata.csv` is optional: a line with bytes that are not UTF-8 is read with U+FFFD in their
//! place and reported, never fatal.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::emomusic::{keep_static_av, map_pair, report_unannotated, static_av_record};
use super::util::{self, cell, number, opt_cell, Scale, Table};
use super::{AvPoint, Corpus, ImportError, Imported, IssueKind};

/// The release folder: ROOT or a folder up to two levels below it with the annotations.
fn base(root: &Path) -> PathBuf {
    util::locate_home(root, 2, &|d| {
        d.join("annotations").is_dir()
            || d.join("static_annotations.csv").is_file()
            || d.join("A_static.csv").is_file()
    })
    .unwrap_or_else(|| root.to_path_buf())
}

pub(crate) fn import(root: &Path) -> Result<Imported, ImportError> {
    let mut out = Imported::new(Corpus::Pmemo);
    let root = base(root);
    if root.join("A_static.csv").is_file() && !root.join("annotations").is_dir() {
        return import_2018(&root, out);
    }
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
    let meta = read_metadata(&root, &mut out)?;
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
        r.set_extra("title", title);
        r.set_extra("artist", artist);
        keep_static_av(&mut out, r, Scale::UNIT, traces.get(&music));
    }
    report_unannotated(
        &mut out,
        &audio_dir,
        |s| annotated.contains(s),
        &static_path,
    )?;
    Ok(out)
}

/// musicId → (fileName, title, artist) from `metadata.csv`, if present.
fn read_metadata(
    root: &Path,
    out: &mut Imported,
) -> Result<HashMap<String, (String, String, String)>, ImportError> {
    let Some(path) = util::first_file(root, &["metadata.csv"]) else {
        return Ok(HashMap::new());
    };
    let t = Table::read(&path)?;
    for line in &t.lossy_lines {
        out.issue(
            IssueKind::BadAnnotation,
            format!("{}:{line}", path.display()),
            "bytes that are not UTF-8 (read as U+FFFD; the line is kept)",
        );
    }
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

/// One dimension of the 2018 static table: id → (mean, std) on the [0, 1] scale (the
/// [`Spreads`] shape).
fn read_static_2018(path: &Path, out: &mut Imported) -> Result<Spreads, ImportError> {
    let t = Table::read(path)?;
    let id = t
        .column(&["musicId", "music_id", "song_id", "id"])
        .unwrap_or(0);
    let find = |needle: &str, fallback: usize| {
        t.header
            .iter()
            .position(|h| h.to_ascii_lowercase().contains(needle))
            .unwrap_or(fallback)
    };
    let (mean, std) = (find("mean", 1), find("std", 2));
    let mut map = HashMap::new();
    for (line, row) in &t.rows {
        let key = cell(row, id).to_string();
        if map.contains_key(&key) {
            out.issue(
                IssueKind::Duplicate,
                format!("{}:{line}", path.display()),
                format!("song `{key}` is listed twice; this line is ignored"),
            );
            continue;
        }
        map.insert(key, (number(cell(row, mean)), number(cell(row, std))));
    }
    Ok(map)
}

/// The 2018 release layout (see the module docs).
fn import_2018(root: &Path, mut out: Imported) -> Result<Imported, ImportError> {
    let a_path = root.join("A_static.csv");
    let v_path = root.join("V_static.csv");
    if !v_path.is_file() {
        return Err(ImportError::Layout {
            path: root.to_path_buf(),
            message: "A_static.csv without V_static.csv (PMEmo 2018 layout)".into(),
        });
    }
    let arousal = read_static_2018(&a_path, &mut out)?;
    let valence = read_static_2018(&v_path, &mut out)?;
    let audio_dir =
        util::first_dir(root, &["Chorus", "chorus"]).unwrap_or_else(|| root.to_path_buf());
    let meta = read_metadata(root, &mut out)?;
    let traces = match (
        util::first_file(root, &["A_dynamic_mean.csv"]),
        util::first_file(root, &["V_dynamic_mean.csv"]),
    ) {
        (Some(ap), Some(vp)) => {
            let wide = |p: &Path| {
                Table::read(p).map(|t| {
                    t.header
                        .iter()
                        .any(|h| util::sample_column_seconds(h).is_some())
                })
            };
            if wide(&ap)? && wide(&vp)? {
                let a = util::read_wide_trace_any_id(&ap, &mut out.issues)?;
                let v = util::read_wide_trace_any_id(&vp, &mut out.issues)?;
                super::emomusic::joined(a, v, Scale::UNIT, &vp, &mut out)
            } else {
                tracing::warn!(
                    "{}: not a wide sample_<ms>ms table; dynamic traces not imported",
                    ap.display()
                );
                HashMap::new()
            }
        }
        _ => HashMap::new(),
    };
    let mut ids: Vec<&String> = arousal.keys().collect();
    ids.sort_by_key(|k| (k.parse::<u64>().unwrap_or(u64::MAX), k.to_string()));
    let mut annotated = HashSet::new();
    for music in ids {
        annotated.insert(music.clone());
        let at = format!("{}", a_path.display());
        let (a, sa) = arousal[music];
        let Some((v, sv)) = valence.get(music).copied() else {
            out.issue(
                IssueKind::BadAnnotation,
                &v_path,
                format!("song `{music}` has a static arousal but no static valence; skipped"),
            );
            continue;
        };
        let (Some(a), Some(v)) = (
            a.and_then(|x| Scale::UNIT.map(x)),
            v.and_then(|x| Scale::UNIT.map(x)),
        ) else {
            out.issue(
                IssueKind::BadAnnotation,
                &at,
                format!("song `{music}`: static mean missing or outside [0, 1]; skipped"),
            );
            continue;
        };
        let (file_name, title, artist) = meta.get(music).cloned().unwrap_or_default();
        let audio = audio_dir.join(if file_name.is_empty() {
            format!("{music}.mp3")
        } else {
            file_name
        });
        let Some(mut r) = static_av_record(
            &mut out,
            Corpus::Pmemo,
            music,
            &audio,
            &at,
            [a, v],
            [sa, sv],
            Scale::UNIT,
        ) else {
            continue;
        };
        r.set_extra("title", title);
        r.set_extra("artist", artist);
        keep_static_av(&mut out, r, Scale::UNIT, traces.get(music));
    }
    for music in valence.keys().filter(|k| !arousal.contains_key(*k)) {
        out.issue(
            IssueKind::BadAnnotation,
            &a_path,
            format!("song `{music}` has a static valence but no static arousal; skipped"),
        );
    }
    report_unannotated(&mut out, &audio_dir, |s| annotated.contains(s), &a_path)?;
    Ok(out)
}
