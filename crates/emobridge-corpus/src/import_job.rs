//! The `import` pipeline: a published corpus layout → a manifest, its counts and issues files,
//! optionally restricted to the emotion labels of another manifest.
//!
//! Skipped files are logged as warnings and listed in `M_issues.csv`; the job fails only when
//! ROOT does not look like the corpus at all or nothing could be imported.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::import::{self, Corpus, ImportError, ImportOptions, Imported, Preset, Written};
use crate::{Domain, Emotion, Manifest, ManifestError};

/// Settings of [`run`]; names as the user writes them (the errors name a wrong one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportConfig {
    /// Corpus name (`ravdess`, `crema-d`, … see [`Corpus::ALL`]).
    pub corpus: String,
    /// The corpus as unpacked from its publisher.
    pub root: PathBuf,
    /// Manifest to write (.csv, or .jsonl for JSON Lines).
    pub out: PathBuf,
    /// Keep only the emotion labels this other manifest also has.
    pub shared_with: Option<PathBuf>,
    /// Label preset (`raw`, `superb4`, `quadrant4`, `ccc-weighted`); default the corpus's own.
    pub preset: Option<String>,
    /// Domain of a folder-per-label tree: `speech` or `music`.
    pub domain: Option<String>,
    /// Follow symbolic links that lead out of ROOT.
    pub follow_links: bool,
    /// Stop at the first issue (`--strict`): no manifest is written, the issues file lists
    /// that one issue.
    pub strict: bool,
}

/// What [`run`] imported and wrote.
#[derive(Debug, Clone)]
pub struct ImportReport {
    pub imported: Imported,
    pub written: Written,
    /// With `shared_with`: the labels both have.
    pub shared_labels: Option<Vec<Emotion>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportJobError {
    #[error("unknown corpus `{name}` (one of: {})", Corpus::ALL.map(|c| c.as_str()).join(", "))]
    UnknownCorpus { name: String },
    #[error("unknown preset `{name}` (raw, superb4, quadrant4, ccc-weighted)")]
    UnknownPreset { name: String },
    #[error("--domain `{name}` is not speech or music")]
    UnknownDomain { name: String },
    #[error("reading --shared-with manifest {path}: {source}")]
    SharedWith {
        path: PathBuf,
        source: ManifestError,
    },
    /// Nothing imported; every skipped file is listed in `listed_in`.
    #[error("{error}; each is listed in {}", listed_in.display())]
    NoClips {
        error: ImportError,
        listed_in: PathBuf,
    },
    #[error("importing {corpus} from {}: {source}", root.display())]
    Import {
        corpus: Corpus,
        root: PathBuf,
        source: ImportError,
    },
    #[error("no clip of {corpus} has a label the --shared-with manifest also has")]
    NoSharedLabels { corpus: Corpus },
    #[error("writing {}: {source}", path.display())]
    Write { path: PathBuf, source: ImportError },
    #[error(transparent)]
    Issues(ImportError),
    /// `strict`: the import stopped at its first issue; no manifest was written.
    #[error("{issue} (--strict: stopped at the first issue, no manifest written; listed in {})", listed_in.display())]
    Strict {
        issue: import::Issue,
        listed_in: PathBuf,
    },
}

/// Imports the corpus of `config` and writes the manifest beside its counts and issues files.
pub fn run(config: &ImportConfig) -> Result<ImportReport, ImportJobError> {
    let corpus = Corpus::parse(&config.corpus).ok_or_else(|| ImportJobError::UnknownCorpus {
        name: config.corpus.clone(),
    })?;
    let preset = match &config.preset {
        None => Preset::Raw,
        Some(p) => {
            Preset::parse(p).ok_or_else(|| ImportJobError::UnknownPreset { name: p.clone() })?
        }
    };
    let domain = match &config.domain {
        None => None,
        Some(d) => Some(
            Domain::parse(d).ok_or_else(|| ImportJobError::UnknownDomain { name: d.clone() })?,
        ),
    };
    let options = ImportOptions {
        preset,
        domain,
        follow_links: config.follow_links,
        strict: config.strict,
    };
    let other = match &config.shared_with {
        Some(p) => Some(
            Manifest::read(p).map_err(|source| ImportJobError::SharedWith {
                path: p.clone(),
                source,
            })?,
        ),
        None => None,
    };

    tracing::info!("importing {corpus} from {}", config.root.display());
    let mut imported = match import::import(corpus, &config.root, &options) {
        Ok(i) => i,
        Err(error) => {
            if let Some(issues) = error.issues() {
                let listed_in = import::write_issues_file(issues, &config.out)
                    .map_err(ImportJobError::Issues)?;
                return Err(ImportJobError::NoClips { error, listed_in });
            }
            return Err(ImportJobError::Import {
                corpus,
                root: config.root.clone(),
                source: error,
            });
        }
    };
    if config.strict {
        if let Some(first) = imported.issues.first().cloned() {
            let listed_in = import::write_issues_file(std::slice::from_ref(&first), &config.out)
                .map_err(ImportJobError::Issues)?;
            return Err(ImportJobError::Strict {
                issue: first,
                listed_in,
            });
        }
    }
    for issue in &imported.issues {
        tracing::warn!("skipped {issue}");
    }
    let mut shared_labels = None;
    if let (Some(other), Some(path)) = (&other, &config.shared_with) {
        let before = imported.records.len();
        let shared = imported.restrict_to_labels_of(other);
        let names: Vec<&str> = shared.iter().map(|e| e.as_str()).collect();
        tracing::info!(
            "labels shared with {}: {} ({} of {before} clips kept)",
            path.display(),
            names.join(", "),
            imported.records.len()
        );
        if imported.records.is_empty() {
            return Err(ImportJobError::NoSharedLabels { corpus });
        }
        shared_labels = Some(shared);
    }
    let written =
        import::write_outputs(&imported, &config.out).map_err(|source| ImportJobError::Write {
            path: config.out.clone(),
            source,
        })?;
    Ok(ImportReport {
        imported,
        written,
        shared_labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn tone(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let samples: Vec<f32> = (0..400).map(|i| 0.2 * (i as f32 * 0.25).sin()).collect();
        emobridge_audio::wav::write_wav_mono16(path, &samples, 8000).unwrap();
    }

    fn config(corpus: &str, root: &Path, out: &Path) -> ImportConfig {
        ImportConfig {
            corpus: corpus.into(),
            root: root.into(),
            out: out.into(),
            ..ImportConfig::default()
        }
    }

    #[test]
    fn import_then_restrict_to_the_labels_of_another_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("RAVDESS");
        for actor in [1, 2] {
            for (channel, emotion) in [(1, 1), (1, 5), (1, 7), (1, 8), (2, 1), (2, 5)] {
                tone(&root.join(format!(
                    "Actor_{actor:02}/03-{channel:02}-{emotion:02}-01-01-01-{actor:02}.wav"
                )));
            }
        }
        tone(&root.join("Actor_01/bad-name.wav"));
        let all = dir.path().join("all.csv");
        let report = run(&config("ravdess", &root, &all)).unwrap();
        assert_eq!(report.written.manifest, all);
        let m = Manifest::read(&all).unwrap();
        assert_eq!(m.records.len(), 12);
        assert!(std::fs::read_to_string(dir.path().join("all_issues.csv"))
            .unwrap()
            .contains("bad-name.wav"));
        assert!(std::fs::read_to_string(dir.path().join("all_counts.csv"))
            .unwrap()
            .contains("music,emotion,angry,2"));

        let song = Manifest::new(
            dir.path(),
            m.records
                .iter()
                .filter(|r| r.domain == Domain::Music)
                .cloned()
                .collect(),
        );
        let song_path = dir.path().join("song.csv");
        song.write(&song_path).unwrap();
        let shared = dir.path().join("shared.csv");
        let report = run(&ImportConfig {
            shared_with: Some(song_path),
            ..config("ravdess", &root, &shared)
        })
        .unwrap();
        let names: Vec<&str> = report
            .shared_labels
            .unwrap()
            .iter()
            .map(|e| e.as_str())
            .collect();
        assert_eq!(names, ["neutral", "angry"]);
        let s = Manifest::read(&shared).unwrap();
        assert_eq!(s.records.len(), 8); // disgust and surprised speech dropped
        assert!(s
            .records
            .iter()
            .all(|r| matches!(r.emotion.map(|e| e.as_str()), Some("neutral" | "angry"))));

        let e = run(&config("timit", &root, &shared)).unwrap_err();
        assert!(matches!(e, ImportJobError::UnknownCorpus { .. }), "{e}");
        assert!(e.to_string().contains("unknown corpus `timit`"), "{e}");
        let e = run(&ImportConfig {
            preset: Some("superb4".into()),
            ..config("ravdess", &root, &shared)
        })
        .unwrap_err();
        assert!(e.to_string().contains("iemocap"), "{e}");
        let e = run(&config("ravdess", &dir.path().join("nowhere"), &shared)).unwrap_err();
        assert!(e.to_string().contains("nowhere"), "{e}");
        let e = run(&ImportConfig {
            domain: Some("video".into()),
            ..config("folder-per-label", &root, &shared)
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "--domain `video` is not speech or music");
    }
}
