//! `emobridge import <corpus> ROOT --out manifest.csv`: a published corpus layout → a manifest.
//!
//! Beside the manifest `M.csv` it writes `M_counts.csv` (clips per label and per group),
//! `M_issues.csv` (every skipped file with its path and reason) and, for corpora with
//! time-continuous labels, `M_annotations/<id>.csv` (`time,arousal,valence`). Skipped files are
//! logged as warnings and do not stop the import; the command fails only when ROOT does not look
//! like the corpus at all or nothing could be imported.

use std::path::PathBuf;

use anyhow::{bail, Context};
use emobridge_corpus::import::{self, Corpus, ImportOptions, Preset};
use emobridge_corpus::{Domain, Manifest};

#[derive(clap::Args)]
#[command(
    after_help = "Corpora: ravdess, crema-d, emodb, tess, savee, iemocap, msp-podcast, emopia, emomusic, pmemo, deam, \
folder-per-label. Each reads the publisher's own layout and naming; docs/corpora/<corpus>.md gives the layout and the \
label table. Every row keeps the corpus's own label in `source_label`."
)]
pub struct ImportArgs {
    /// Corpus name (see below).
    pub corpus: String,
    /// The corpus as unpacked from its publisher.
    pub root: PathBuf,
    /// Manifest to write (.csv, or .jsonl for JSON Lines).
    #[arg(long)]
    pub out: PathBuf,
    /// Keep only the emotion labels this other manifest also has (rows without a label go too).
    #[arg(long, value_name = "OTHER_MANIFEST")]
    pub shared_with: Option<PathBuf>,
    /// Label preset: `superb4` (IEMOCAP: neutral, happy = hap + exc, angry, sad) or `quadrant4`
    /// (EMOPIA: Q1 happy, Q2 angry, Q3 sad, Q4 calm) or `ccc-weighted` (RECOLA: raters fused by
    /// agreement instead of the plain mean). Default: the corpus's own categories.
    #[arg(long)]
    pub preset: Option<String>,
    /// Domain of a folder-per-label tree: speech or music.
    #[arg(long)]
    pub domain: Option<String>,
    /// Follow symbolic links that lead out of ROOT (links to folders inside ROOT never are).
    #[arg(long)]
    pub follow_links: bool,
}

pub fn run(args: ImportArgs) -> anyhow::Result<crate::status::Status> {
    let corpus = Corpus::parse(&args.corpus).with_context(|| {
        format!(
            "unknown corpus `{}` (one of: {})",
            args.corpus,
            Corpus::ALL.map(|c| c.as_str()).join(", ")
        )
    })?;
    let options = ImportOptions {
        preset: parse_preset(args.preset.as_deref())?,
        domain: parse_domain(args.domain.as_deref())?,
        follow_links: args.follow_links,
    };
    let other = args
        .shared_with
        .as_ref()
        .map(|p| {
            Manifest::read(p)
                .with_context(|| format!("reading --shared-with manifest {}", p.display()))
        })
        .transpose()?;

    tracing::info!("importing {corpus} from {}", args.root.display());
    let mut imported = match import::import(corpus, &args.root, &options) {
        Ok(i) => i,
        Err(e) => {
            if let Some(issues) = e.issues() {
                let written = import::write_issues_file(issues, &args.out)?;
                bail!("{e}; each is listed in {}", written.display());
            }
            return Err(e)
                .with_context(|| format!("importing {corpus} from {}", args.root.display()));
        }
    };
    for issue in &imported.issues {
        tracing::warn!("skipped {issue}");
    }
    if let Some(other) = &other {
        let before = imported.records.len();
        let shared = imported.restrict_to_labels_of(other);
        let names: Vec<&str> = shared.iter().map(|e| e.as_str()).collect();
        tracing::info!(
            "labels shared with {}: {} ({} of {before} clips kept)",
            args.shared_with.as_ref().expect("set").display(),
            names.join(", "),
            imported.records.len()
        );
        if imported.records.is_empty() {
            bail!("no clip of {corpus} has a label the --shared-with manifest also has");
        }
    }
    let written = import::write_outputs(&imported, &args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;

    println!("{}", import::format_counts(&imported.counts()));
    println!(
        "{} clips → {} ({} skipped, listed in {}; counts in {}{})",
        imported.records.len(),
        written.manifest.display(),
        imported.issues.len(),
        written.issues.display(),
        written.counts.display(),
        written
            .annotations
            .as_ref()
            .map(|d| format!("; {} traces in {}", imported.dynamics.len(), d.display()))
            .unwrap_or_default(),
    );
    Ok(crate::status::Status::from_count(
        imported.issues.len(),
        &written.issues,
    ))
}

fn parse_preset(s: Option<&str>) -> anyhow::Result<Preset> {
    match s {
        None => Ok(Preset::Raw),
        Some(p) => Preset::parse(p).with_context(|| {
            format!("unknown preset `{p}` (raw, superb4, quadrant4, ccc-weighted)")
        }),
    }
}

fn parse_domain(s: Option<&str>) -> anyhow::Result<Option<Domain>> {
    s.map(|d| Domain::parse(d).with_context(|| format!("--domain `{d}` is not speech or music")))
        .transpose()
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

    fn args(corpus: &str, root: &Path, out: &Path) -> ImportArgs {
        ImportArgs {
            corpus: corpus.into(),
            root: root.into(),
            out: out.into(),
            shared_with: None,
            preset: None,
            domain: None,
            follow_links: false,
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
        run(args("ravdess", &root, &all)).unwrap();
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
        run(ImportArgs {
            shared_with: Some(song_path),
            ..args("ravdess", &root, &shared)
        })
        .unwrap();
        let s = Manifest::read(&shared).unwrap();
        assert_eq!(s.records.len(), 8); // disgust and surprised speech dropped
        assert!(s
            .records
            .iter()
            .all(|r| matches!(r.emotion.map(|e| e.as_str()), Some("neutral" | "angry"))));

        let e = run(args("timit", &root, &shared)).unwrap_err().to_string();
        assert!(e.contains("unknown corpus `timit`"), "{e}");
        let e = run(ImportArgs {
            preset: Some("superb4".into()),
            ..args("ravdess", &root, &shared)
        })
        .unwrap_err();
        assert!(format!("{e:#}").contains("iemocap"), "{e:#}");
        let e = run(args("ravdess", &dir.path().join("nowhere"), &shared)).unwrap_err();
        assert!(format!("{e:#}").contains("nowhere"), "{e:#}");
    }
}
