//! # emobridge-report
//!
//! Owns the outputs people read: tables (CSV/JSON/Markdown), plots (heatmaps and line charts
//! as PNG and SVG, drawn with plotters) and the self-contained HTML report built from run folders
//! ([`html::write_report`], with `summary.json` / `summary.md` beside it). Text in plots is rendered with a bundled subset of
//! DejaVu Sans through plotters' `ab_glyph` backend, so plots look the same on every machine and
//! need no system fonts (licence in `fonts/LICENSE-DejaVu.txt`).
//!
//! All files are written atomically (temporary file in the same folder, then rename).

pub mod html;
pub mod plot;
pub mod runs;
pub mod table;

use std::path::{Path, PathBuf};

pub use plot::{
    write_band_chart, write_heatmap, write_line_chart, write_line_chart_with, Band, BandChart,
    BandSeries, ChartExtras, Heatmap, LineChart, Series,
};
pub use runs::{load_run, load_runs, LoadedRun};
pub use table::{Cell, Table};

/// Why an output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: drawing failed: {message}")]
    Draw { path: PathBuf, message: String },
    #[error("table: {0}")]
    Table(String),
    /// A run folder or record the report cannot read, or a setting it cannot use.
    #[error(transparent)]
    Input(#[from] InputError),
}

/// What the report was given that it cannot use.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("no run folders given (pass one or more folders that hold a run.json)")]
    NoRuns,
    #[error("{}: not a folder (a run folder holds a run.json)", dir.display())]
    NotAFolder { dir: PathBuf },
    /// (The I/O error is part of the text, inside parentheses, so it is not also a source.)
    #[error("{}: no readable run.json, so not a run folder ({error})", dir.display())]
    NoRunRecord { dir: PathBuf, error: std::io::Error },
    #[error("{}: not a run record: {source}", path.display())]
    NotARunRecord {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("max_table_rows must be at least 1")]
    NoTableRows,
}

pub type Result<T, E = ReportError> = std::result::Result<T, E>;

/// Writes `bytes` to `path` atomically (the store's one atomic write: a synced temporary
/// sibling, then a rename); creates parent folders.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    emobridge_store::write_atomic(path, bytes).map_err(|e| match e {
        emobridge_store::StoreError::Io { path, source } => ReportError::Io { path, source },
        other => ReportError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(other.to_string()),
        },
    })
}

/// The temporary sibling a renderer that writes its own file (plotters' PNG) writes first.
pub(crate) fn tmp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}
