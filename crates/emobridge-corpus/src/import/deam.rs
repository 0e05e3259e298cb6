//! DEAM, the MediaEval Database for Emotional Analysis in Music (Aljanaki et al. 2017).
//!
//! Layout (as unpacked from `DEAM_audio.zip` and `DEAM_Annotations.zip`, searched anywhere
//! under ROOT):
//! * audio `MEMD_audio/<song_id>.mp3`;
//! * static `…/annotations averaged per song/song_level/static_annotations_averaged_songs_1_2000.csv`
//!   and `…_2000_2058.csv` (`song_id, valence_mean, valence_std, arousal_mean, arousal_std`, 1–9
//!   SAM ratings; the headers carry leading spaces);
//! * dynamic `…/annotations averaged per song/dynamic (per second annotations)/arousal.csv` and
//!   `valence.csv` (`song_id, sample_15000ms, …`, 2 Hz, already in [−1, 1]; rows of the 2015
//!   full songs are longer, shorter rows end in empty cells).
//!
//! Emotion: none. Static arousal/valence mapped by (x − 5)/4, standard deviations by /4
//! (`arousal_std`, `valence_std`). Dynamic traces written as-is. Group = song id. Id =
//! `deam_<song_id>`. Extra columns: `arousal_std`, `valence_std`, `av_scale`.

use std::path::{Path, PathBuf};

use super::emomusic::{joined, keep_static_av, map_pair, static_av_record};
use super::util::{
    self, cell, list_audio, list_files, number, opt_cell, read_wide_trace, Scale, Table,
};
use super::{Corpus, ImportError, Imported, IssueKind};

pub(crate) fn import(root: &Path) -> Result<Imported, ImportError> {
    let mut out = Imported::new(Corpus::Deam);
    let files = list_files(root)?;
    let named = |pred: &dyn Fn(&str, &Path) -> bool| -> Vec<PathBuf> {
        files
            .iter()
            .filter(|p| pred(&p.file_name().unwrap_or_default().to_string_lossy(), p))
            .cloned()
            .collect()
    };
    let statics =
        named(&|n, _| n.starts_with("static_annotations_averaged_songs") && n.ends_with(".csv"));
    if statics.is_empty() {
        return Err(ImportError::Layout {
            path: root.to_path_buf(),
            message: "no static_annotations_averaged_songs_*.csv under it".into(),
        });
    }
    let in_dynamic = |p: &Path| {
        util::parent_name(p)
            .to_ascii_lowercase()
            .starts_with("dynamic")
    };
    let arousal_dyn = named(&|n, p| n == "arousal.csv" && in_dynamic(p));
    let valence_dyn = named(&|n, p| n == "valence.csv" && in_dynamic(p));
    let audio_dir =
        util::find_dir_named(root, "MEMD_audio", 3).unwrap_or_else(|| root.to_path_buf());

    let traces = match (arousal_dyn.first(), valence_dyn.first()) {
        (Some(a), Some(v)) => {
            let arousal = read_wide_trace(a, &mut out.issues)?;
            let valence = read_wide_trace(v, &mut out.issues)?;
            joined(arousal, valence, Scale::SIGNED, v, &mut out)
        }
        _ => Default::default(),
    };
    let mut annotated = std::collections::HashMap::new();
    for path in &statics {
        let t = Table::read(path)?;
        let id = t.require(&["song_id"])?;
        let cols = [t.require(&["arousal_mean"])?, t.require(&["valence_mean"])?];
        let sds = [t.column(&["arousal_std"]), t.column(&["valence_std"])];
        for (line, row) in &t.rows {
            let song = cell(row, id).to_string();
            let at = format!("{}:{line}", path.display());
            if let Some(first) = annotated.get(&song) {
                // The two static files overlap (on song 2000 in some releases): the first
                // line wins, and the repeat is reported.
                out.issue(
                    IssueKind::Duplicate,
                    &at,
                    format!("song `{song}` is already annotated at {first}; this line is ignored"),
                );
                continue;
            }
            annotated.insert(song.clone(), at.clone());
            let Some([a, v]) = map_pair(row, cols, Scale::ONE_TO_NINE) else {
                out.issue(
                    IssueKind::BadAnnotation,
                    &at,
                    "arousal_mean/valence_mean missing or outside 1-9; song skipped",
                );
                continue;
            };
            let audio = audio_dir.join(format!("{song}.mp3"));
            let spreads = sds.map(|sd| number(opt_cell(row, sd)));
            let Some(r) = static_av_record(
                &mut out,
                Corpus::Deam,
                &song,
                &audio,
                &at,
                [a, v],
                spreads,
                Scale::ONE_TO_NINE,
            ) else {
                continue;
            };
            keep_static_av(&mut out, r, Scale::ONE_TO_NINE, traces.get(&song));
        }
    }
    for audio in list_audio(&audio_dir)? {
        if !annotated.contains_key(&util::stem(&audio)) {
            out.issue(
                IssueKind::NoAnnotation,
                &audio,
                "no static annotation for this song",
            );
        }
    }
    Ok(out)
}
