//! `emobridge import <corpus> ROOT --out manifest.csv`: a published corpus layout → a manifest.
//!
//! Beside the manifest `M.csv` it writes `M_counts.csv` (clips per label and per group),
//! `M_issues.csv` (every skipped file with its path and reason) and, for corpora with
//! time-continuous labels, `M_annotations/<id>.csv` (`time,arousal,valence`). Skipped files are
//! logged as warnings and do not stop the import; the command fails only when ROOT does not look
//! like the corpus at all or nothing could be imported.

use std::path::PathBuf;

use emobridge_corpus::import;
use emobridge_corpus::import_job::{self, ImportConfig};

use crate::status::Status;

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

pub fn run(args: ImportArgs, strict: bool) -> anyhow::Result<Status> {
    let report = import_job::run(&ImportConfig {
        corpus: args.corpus,
        root: args.root,
        out: args.out,
        shared_with: args.shared_with,
        preset: args.preset,
        domain: args.domain,
        follow_links: args.follow_links,
        strict,
    })?;
    let (imported, written) = (&report.imported, &report.written);
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
    Ok(Status::from_count(imported.issues.len(), &written.issues))
}
