//! `emobridge report`: one self-contained HTML page from run folders.
//!
//! ```text
//! emobridge report RUN_DIR... [--out report.html] [--title T] [--max-rows 25]
//! ```
//!
//! Reads each folder's `run.json` (a demo folder brings its sub-runs along), renders a section
//! per study with its tables, figures, captions and headline numbers, and a run record; writes
//! `summary.json` and `summary.md` beside the page. See `emobridge_report::html`.

use std::path::PathBuf;

use anyhow::Context;
use emobridge_report::html::ReportConfig;

#[derive(clap::Args)]
pub struct ReportArgs {
    /// Run folders (each holds a run.json), e.g. a demo folder or several study folders.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// The page to write; summary.json and summary.md go beside it.
    #[arg(long, default_value = "report.html")]
    pub out: PathBuf,
    /// The page's title.
    #[arg(long, default_value_t = ReportConfig::default().title)]
    pub title: String,
    /// Rows of each table shown in the page (the full tables stay in the run folders).
    #[arg(long, default_value_t = ReportConfig::default().max_table_rows)]
    pub max_rows: usize,
}

pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let config = ReportConfig {
        title: args.title,
        max_table_rows: args.max_rows,
        ..ReportConfig::default()
    };
    let files = emobridge_report::html::write_report_with(&config, &args.runs, &args.out)
        .with_context(|| format!("writing the report {}", args.out.display()))?;
    tracing::info!(
        "report: {} runs, {} headline numbers → {} (and {}, {})",
        files.runs,
        files.headlines,
        files.html.display(),
        files.summary_json.display(),
        files.summary_md.display()
    );
    println!("{}", files.html.display());
    Ok(())
}
