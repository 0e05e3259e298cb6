//! A generic "folder per label" tree: `ROOT/<label>/…/<clip>.<ext>`.
//!
//! The label folder's name is read as a canonical label (case-insensitive; the spellings
//! [`Emotion::parse`] accepts, e.g. `Happiness`, `anger`, `fear`). Group: the first folder
//! below the label folder when there is one (`ROOT/happy/actor07/x.wav` → `actor07`), else the
//! file's own stem — each clip its own group, which cannot keep a speaker out of both sides of a
//! fold, so the import warns once. The domain is given by the caller. Id =
//! `<label folder>/<path below it without extension>`. Extra column: `source_label` (the
//! folder's name as written).

use std::path::Path;

use super::util::{self, list_audio};
use super::{Corpus, ImportError, Imported, IssueKind};
use crate::manifest::{Domain, Record};
use crate::taxonomy::Emotion;

pub(crate) fn import(root: &Path, domain: Domain) -> Result<Imported, ImportError> {
    let mut out = Imported::new(Corpus::FolderPerLabel);
    let mut ungrouped = 0usize;
    for path in list_audio(root)? {
        let rel = path.strip_prefix(root).expect("listed under root");
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts.len() < 2 {
            out.issue(
                IssueKind::BadName,
                &path,
                "audio directly under ROOT: expected ROOT/<label>/<file>",
            );
            continue;
        }
        let Some(emotion) = Emotion::parse(&parts[0]) else {
            out.issue(
                IssueKind::BadName,
                &path,
                format!("folder `{}` is not a known emotion label", parts[0]),
            );
            continue;
        };
        let speaker = if parts.len() >= 3 {
            parts[1].clone()
        } else {
            ungrouped += 1;
            util::stem(&path)
        };
        let id = rel
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let mut r = Record::new(
            id,
            util::path_string(&path),
            domain,
            Corpus::FolderPerLabel.as_str(),
            speaker,
        );
        r.emotion = Some(emotion);
        r.set_extra("source_label", parts[0].as_str());
        out.records.push(r);
    }
    if ungrouped > 0 {
        tracing::warn!(
            "{}: {ungrouped} clip(s) lie directly in their label folder, so each is its own group: folds cannot keep a speaker on one side (use ROOT/<label>/<speaker>/<file>)",
            root.display()
        );
    }
    Ok(out)
}
