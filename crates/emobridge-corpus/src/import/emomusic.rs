//! emoMusic, the "1000 songs" database (Soleymani et al. 2013; MediaEval 2013 Emotion in Music).
//!
//! Layout: `clips_45seconds/<song_id>.mp3` (as unpacked from `clips_45sec.zip`, also
//! `clips_45sec/clips_45seconds/`); `annotations/static_annotations.csv`
//! (`song_id, mean_arousal, std_arousal, mean_valence, std_valence`, 1–9 SAM ratings);
//! optional `annotations/arousal_cont_average.csv` and `valence_cont_average.csv`
//! (`song_id, sample_15000ms … sample_44500ms`, 2 Hz, already in [−1, 1]); optional
//! `songs_info.csv` (in `annotations/` or ROOT) whose `Genre`, `Artist` and `Mediaeval 2013 set`
//! columns are kept. The 744 de-duplicated songs are the annotated ones; a clip with no static
//! annotation is reported and skipped.
//!
//! Emotion: none (the corpus has no categories). Static arousal/valence mapped by (x − 5)/4;
//! their standard deviations by /4 (`arousal_std`, `valence_std`). Dynamic traces are written
//! as-is (time = the column's milliseconds / 1000). Group = song id. Split from the MediaEval
//! 2013 set: `development` → `dev`, `evaluation` → `test`. Id = `emomusic_<song_id>`. Extra
//! columns: `arousal_std`, `valence_std`, `genre`, `artist`, `av_scale`.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::util::{
    self, cell, join_traces, list_audio, number, opt_cell, read_wide_trace, Scale, Table,
};
use super::{AvPoint, Corpus, ImportError, Imported, IssueKind};
use crate::manifest::{Domain, Record};

pub(crate) fn import(root: &Path) -> Result<Imported, ImportError> {
    let mut out = Imported::new(Corpus::EmoMusic);
    let static_path = util::first_file(
        root,
        &[
            "annotations/static_annotations.csv",
            "static_annotations.csv",
        ],
    )
    .ok_or_else(|| ImportError::Layout {
        path: root.to_path_buf(),
        message: "no annotations/static_annotations.csv".into(),
    })?;
    let audio_dir = util::first_dir(
        root,
        &[
            "clips_45seconds",
            "clips_45sec/clips_45seconds",
            "clips_45sec",
            "clips",
        ],
    )
    .or_else(|| util::find_dir_named(root, "clips_45seconds", 2))
    .unwrap_or_else(|| root.to_path_buf());
    let info = read_info(root)?;
    let dynamics = read_dynamics(root, &mut out)?;
    let t = Table::read(&static_path)?;
    let id = t.require(&["song_id"])?;
    let cols = [t.require(&["mean_arousal"])?, t.require(&["mean_valence"])?];
    let sds = [t.column(&["std_arousal"]), t.column(&["std_valence"])];
    let mut annotated = HashSet::new();
    for (line, row) in &t.rows {
        let song = cell(row, id).to_string();
        annotated.insert(song.clone());
        let at = format!("{}:{line}", static_path.display());
        let Some([a, v]) = map_pair(row, cols, Scale::ONE_TO_NINE) else {
            out.issue(
                IssueKind::BadAnnotation,
                &at,
                "mean_arousal/mean_valence missing or outside 1-9; song skipped",
            );
            continue;
        };
        let audio = audio_dir.join(format!("{song}.mp3"));
        let spreads = sds.map(|sd| number(opt_cell(row, sd)));
        let Some(mut r) = static_av_record(
            &mut out,
            Corpus::EmoMusic,
            &song,
            &audio,
            &at,
            [a, v],
            spreads,
            Scale::ONE_TO_NINE,
        ) else {
            continue;
        };
        let (genre, artist, set) = info.get(&song).cloned().unwrap_or_default();
        r.split = match set.to_ascii_lowercase().as_str() {
            "development" => "dev".into(),
            "evaluation" => "test".into(),
            other => other.to_string(),
        };
        r.set_extra("genre", genre);
        r.set_extra("artist", artist);
        keep_static_av(&mut out, r, Scale::ONE_TO_NINE, dynamics.get(&song));
    }
    report_unannotated(
        &mut out,
        &audio_dir,
        |s| annotated.contains(s),
        &static_path,
    )?;
    Ok(out)
}

/// The record of a song with static A/V ratings (already mapped to [-1, 1]) and their spreads
/// (on the corpus's own `scale`, mapped here), or `None` with a missing-audio issue when the
/// annotated song has no audio. Ids are `<corpus>_<song>`; the song is the fold group.
pub(crate) fn static_av_record(
    out: &mut Imported,
    corpus: Corpus,
    song: &str,
    audio: &Path,
    at: &str,
    [arousal, valence]: [f32; 2],
    spreads: [Option<f32>; 2],
    scale: Scale,
) -> Option<Record> {
    if !audio.is_file() {
        out.issue(
            IssueKind::MissingAudio,
            audio,
            format!("annotated at {at} but the audio is missing"),
        );
        return None;
    }
    let mut r = Record::new(
        format!("{}_{song}", corpus.as_str()),
        util::path_string(audio),
        Domain::Music,
        corpus.as_str(),
        song,
    );
    r.arousal = Some(arousal);
    r.valence = Some(valence);
    for (name, sd) in ["arousal_std", "valence_std"].into_iter().zip(spreads) {
        r.set_extra(
            name,
            sd.map(|s| format!("{}", scale.map_spread(s)))
                .unwrap_or_default(),
        );
    }
    Some(r)
}

/// Keeps a static-A/V song record: its `av_scale` column (after the corpus's own extras) and,
/// when the corpus has them, its time-continuous A/V points.
pub(crate) fn keep_static_av(
    out: &mut Imported,
    mut r: Record,
    scale: Scale,
    points: Option<&Vec<AvPoint>>,
) {
    r.set_extra("av_scale", scale.describe());
    if let Some(points) = points {
        out.dynamics.insert(r.id.clone(), points.clone());
    }
    out.records.push(r);
}

/// One no-annotation issue per audio file in `audio_dir` whose stem `is_annotated` rejects,
/// naming the annotation table the file is missing from.
pub(crate) fn report_unannotated(
    out: &mut Imported,
    audio_dir: &Path,
    is_annotated: impl Fn(&str) -> bool,
    table: &Path,
) -> Result<(), ImportError> {
    for audio in list_audio(audio_dir)? {
        if !is_annotated(&util::stem(&audio)) {
            out.issue(
                IssueKind::NoAnnotation,
                &audio,
                format!("no row in {}", table.display()),
            );
        }
    }
    Ok(())
}

/// Both cells mapped, or `None` when either is missing or off the scale.
pub(crate) fn map_pair(row: &[String], cols: [usize; 2], scale: Scale) -> Option<[f32; 2]> {
    let a = number(cell(row, cols[0])).and_then(|x| scale.map(x))?;
    let v = number(cell(row, cols[1])).and_then(|x| scale.map(x))?;
    Some([a, v])
}

/// song_id → (genre, artist, MediaEval set) from `songs_info.csv`, if present.
fn read_info(root: &Path) -> Result<HashMap<String, (String, String, String)>, ImportError> {
    let Some(path) = util::first_file(root, &["annotations/songs_info.csv", "songs_info.csv"])
    else {
        return Ok(HashMap::new());
    };
    let t = Table::read(&path)?;
    let id = t.require(&["song_id"])?;
    let genre = t.column(&["Genre"]);
    let artist = t.column(&["Artist"]);
    let set = t
        .header
        .iter()
        .position(|h| h.to_ascii_lowercase().starts_with("mediaeval"));
    Ok(t.rows
        .iter()
        .map(|(_, r)| {
            (
                cell(r, id).to_string(),
                (
                    opt_cell(r, genre).to_string(),
                    opt_cell(r, artist).to_string(),
                    opt_cell(r, set).to_string(),
                ),
            )
        })
        .collect())
}

fn read_dynamics(
    root: &Path,
    out: &mut Imported,
) -> Result<HashMap<String, Vec<super::AvPoint>>, ImportError> {
    let paths = (
        util::first_file(
            root,
            &[
                "annotations/arousal_cont_average.csv",
                "arousal_cont_average.csv",
            ],
        ),
        util::first_file(
            root,
            &[
                "annotations/valence_cont_average.csv",
                "valence_cont_average.csv",
            ],
        ),
    );
    let (Some(ap), Some(vp)) = paths else {
        return Ok(HashMap::new());
    };
    let arousal = read_wide_trace(&ap, &mut out.issues)?;
    let valence = read_wide_trace(&vp, &mut out.issues)?;
    Ok(joined(arousal, valence, Scale::SIGNED, &vp, out))
}

/// Joins per-song arousal and valence traces, reporting songs found in only one file and
/// points dropped.
pub(crate) fn joined(
    arousal: HashMap<String, Vec<(f32, f32)>>,
    valence: HashMap<String, Vec<(f32, f32)>>,
    scale: Scale,
    source: &Path,
    out: &mut Imported,
) -> HashMap<String, Vec<super::AvPoint>> {
    let mut traces = HashMap::new();
    let mut ids: Vec<&String> = arousal.keys().collect();
    ids.sort();
    for id in ids {
        let Some(v) = valence.get(id) else {
            out.issue(
                IssueKind::BadAnnotation,
                source,
                format!("song `{id}` has an arousal trace but no valence trace"),
            );
            continue;
        };
        let (points, dropped) = join_traces(&arousal[id], v, scale);
        if dropped > 0 {
            out.issue(
                IssueKind::BadAnnotation,
                source,
                format!("song `{id}`: {dropped} trace point(s) unpaired or off the scale, dropped"),
            );
        }
        traces.insert(id.clone(), points);
    }
    traces
}
