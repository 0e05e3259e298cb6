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
    /// A run folder or record the report cannot read (the message names it).
    #[error("{0}")]
    Input(String),
}

pub type Result<T, E = ReportError> = std::result::Result<T, E>;

/// Writes `bytes` to `path` through a temporary sibling and a rename; creates parent folders.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = tmp_sibling(path);
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

pub(crate) fn tmp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}
