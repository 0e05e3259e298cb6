//! Helpers the importers share: walking a tree, reading label tables, mapping rating scales.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::ImportError;

/// Audio extensions the importers accept (what `emobridge-audio` decodes).
const AUDIO_EXTENSIONS: [&str; 7] = ["wav", "mp3", "flac", "ogg", "oga", "aif", "aiff"];

/// Every file under `dir`, recursively, sorted; hidden entries (names starting with `.`, such
/// as macOS `._*` resource forks) are not corpus files and are passed over.
pub(crate) fn list_files(dir: &Path) -> Result<Vec<PathBuf>, ImportError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = fs::read_dir(&d).map_err(|source| ImportError::Io {
            path: d.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| ImportError::Io {
                path: d.clone(),
                source,
            })?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            let kind = entry.file_type().map_err(|source| ImportError::Io {
                path: path.clone(),
                source,
            })?;
            // Follow symlinked folders too: corpora are often linked in from a data disk.
            if kind.is_dir() || (kind.is_symlink() && path.is_dir()) {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Audio files under `dir` (see [`list_files`]).
pub(crate) fn list_audio(dir: &Path) -> Result<Vec<PathBuf>, ImportError> {
    Ok(list_files(dir)?
        .into_iter()
        .filter(|p| is_audio(p))
        .collect())
}

pub(crate) fn is_audio(path: &Path) -> bool {
    extension(path).is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.as_str()))
}

/// Lower-case extension.
pub(crate) fn extension(path: &Path) -> Option<String> {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
}

pub(crate) fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Name of the folder holding `path`.
pub(crate) fn parent_name(path: &Path) -> String {
    path.parent()
        .and_then(|p| p.file_name())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub(crate) fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The first of `candidates` (relative to `root`) that is a directory.
pub(crate) fn first_dir(root: &Path, candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(|c| root.join(c)).find(|p| p.is_dir())
}

/// The first of `candidates` (relative to `root`) that is a file.
pub(crate) fn first_file(root: &Path, candidates: &[&str]) -> Option<PathBuf> {
    candidates
        .iter()
        .map(|c| root.join(c))
        .find(|p| p.is_file())
}

/// The first directory under `root` (breadth-first, sorted, `root` included) named `name`
/// (case-insensitive); corpora are often unpacked one or two folders deep.
pub(crate) fn find_dir_named(root: &Path, name: &str, max_depth: usize) -> Option<PathBuf> {
    let mut level = vec![root.to_path_buf()];
    for _ in 0..=max_depth {
        let mut next = Vec::new();
        for d in &level {
            if d.file_name()
                .is_some_and(|n| n.to_string_lossy().eq_ignore_ascii_case(name))
            {
                return Some(d.clone());
            }
            if let Ok(entries) = fs::read_dir(d) {
                let mut subs: Vec<PathBuf> = entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect();
                subs.sort();
                next.extend(subs);
            }
        }
        level = next;
    }
    None
}

/// Writes a file atomically (temporary sibling, then rename).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImportError> {
    let io = |source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp-write");
    fs::write(&tmp, bytes).map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

/// An id made safe to be a file name.
pub(crate) fn file_safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A CSV label table with a header row; header names are trimmed (several corpora pad them
/// with spaces) and looked up case-insensitively.
pub(crate) struct Table {
    pub path: PathBuf,
    pub header: Vec<String>,
    /// (1-based line number, trimmed cells).
    pub rows: Vec<(usize, Vec<String>)>,
}

impl Table {
    pub fn read(path: &Path) -> Result<Table, ImportError> {
        Table::read_with(path, b',')
    }

    pub fn read_with(path: &Path, delimiter: u8) -> Result<Table, ImportError> {
        let bad = |line: usize, message: String| ImportError::Table {
            path: path.to_path_buf(),
            line,
            message,
        };
        let file = fs::File::open(path).map_err(|source| ImportError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .has_headers(true)
            .from_reader(file);
        let header: Vec<String> = rdr
            .headers()
            .map_err(|e| bad(1, format!("header: {e}")))?
            .iter()
            .map(|h| {
                h.trim()
                    .trim_start_matches('\u{feff}')
                    .trim_matches('"')
                    .trim()
                    .to_string()
            })
            .collect();
        let mut rows = Vec::new();
        for (i, row) in rdr.records().enumerate() {
            let line = row
                .as_ref()
                .ok()
                .and_then(|r| r.position())
                .map_or(i + 2, |p| p.line() as usize);
            let row = row.map_err(|e| bad(i + 2, e.to_string()))?;
            let cells: Vec<String> = row.iter().map(|c| c.trim().to_string()).collect();
            if cells.iter().all(String::is_empty) {
                continue;
            }
            rows.push((line, cells));
        }
        Ok(Table {
            path: path.to_path_buf(),
            header,
            rows,
        })
    }

    /// Index of the first column named like one of `names`.
    pub fn column(&self, names: &[&str]) -> Option<usize> {
        names
            .iter()
            .find_map(|n| self.header.iter().position(|h| h.eq_ignore_ascii_case(n)))
    }

    /// Like [`Table::column`] but a missing column is an error naming the file.
    pub fn require(&self, names: &[&str]) -> Result<usize, ImportError> {
        self.column(names).ok_or_else(|| ImportError::Table {
            path: self.path.clone(),
            line: 1,
            message: format!(
                "no column `{}` in the header ({})",
                names[0],
                self.header.join(", ")
            ),
        })
    }
}

/// A cell of a row, empty when the row is short.
pub(crate) fn cell(row: &[String], index: usize) -> &str {
    row.get(index).map(String::as_str).unwrap_or("")
}

/// A cell of an optional column.
pub(crate) fn opt_cell(row: &[String], index: Option<usize>) -> &str {
    index.map_or("", |i| cell(row, i))
}

/// A bounded rating scale mapped linearly onto [-1, 1]: `lo` → −1, `hi` → +1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub lo: f32,
    pub hi: f32,
}

impl Scale {
    /// SAM 9-point ratings (emoMusic, DEAM static): (x − 5) / 4.
    pub const ONE_TO_NINE: Scale = Scale { lo: 1.0, hi: 9.0 };
    /// 7-point ratings (MSP-Podcast): (x − 4) / 3.
    pub const ONE_TO_SEVEN: Scale = Scale { lo: 1.0, hi: 7.0 };
    /// 5-point ratings (IEMOCAP): (x − 3) / 2.
    pub const ONE_TO_FIVE: Scale = Scale { lo: 1.0, hi: 5.0 };
    /// Unit interval (PMEmo): 2x − 1.
    pub const UNIT: Scale = Scale { lo: 0.0, hi: 1.0 };
    /// Already in [-1, 1] (emoMusic, DEAM dynamic traces).
    pub const SIGNED: Scale = Scale { lo: -1.0, hi: 1.0 };

    /// The mapped value, or `None` outside the scale (a tolerance of 1e-4 absorbs rounding).
    pub fn map(self, x: f32) -> Option<f32> {
        let tol = 1e-4 * (self.hi - self.lo);
        if !x.is_finite() || x < self.lo - tol || x > self.hi + tol {
            return None;
        }
        Some((2.0 * (x - self.lo) / (self.hi - self.lo) - 1.0).clamp(-1.0, 1.0))
    }

    /// A spread (standard deviation) in mapped units.
    pub fn map_spread(self, sd: f32) -> f32 {
        sd * 2.0 / (self.hi - self.lo)
    }

    /// How the mapping reads, for the manifest's `av_scale` column.
    pub fn describe(self) -> String {
        let mid = (self.lo + self.hi) / 2.0;
        let half = (self.hi - self.lo) / 2.0;
        if self == Scale::SIGNED {
            "[-1,1] as is".into()
        } else if mid == 0.0 {
            format!("[{},{}] -> x/{}", self.lo, self.hi, half)
        } else if half == 0.5 {
            format!("[{},{}] -> 2(x-{})-1", self.lo, self.hi, self.lo)
        } else {
            format!("{}-{} -> (x-{})/{}", self.lo, self.hi, mid, half)
        }
    }
}

/// Parses a number cell; `None` for empty, `NA`/`NaN` and text.
pub(crate) fn number(s: &str) -> Option<f32> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    s.parse::<f32>().ok().filter(|x| x.is_finite())
}

/// Seconds from a DEAM/emoMusic column name `sample_15000ms`.
pub(crate) fn sample_column_seconds(name: &str) -> Option<f32> {
    let ms = name.trim().strip_prefix("sample_")?.strip_suffix("ms")?;
    ms.parse::<u32>().ok().map(|v| v as f32 / 1000.0)
}

/// One dimension of a wide trace table (`song_id, sample_15000ms, sample_15500ms, …`): id →
/// (seconds, value) for every non-empty cell. Cells that are not numbers are reported.
pub(crate) fn read_wide_trace(
    path: &Path,
    issues: &mut Vec<super::Issue>,
) -> Result<HashMap<String, Vec<(f32, f32)>>, ImportError> {
    let t = Table::read(path)?;
    let id = t.require(&["song_id", "musicId"])?;
    let times: Vec<(usize, f32)> = t
        .header
        .iter()
        .enumerate()
        .filter_map(|(i, h)| sample_column_seconds(h).map(|s| (i, s)))
        .collect();
    if times.is_empty() {
        return Err(ImportError::Table {
            path: path.to_path_buf(),
            line: 1,
            message: "no sample_<ms>ms columns".into(),
        });
    }
    let mut out = HashMap::new();
    for (line, row) in &t.rows {
        let mut points = Vec::new();
        for &(i, secs) in &times {
            let c = cell(row, i);
            if c.is_empty() || c.eq_ignore_ascii_case("nan") {
                continue;
            }
            match number(c) {
                Some(v) => points.push((secs, v)),
                None => issues.push(super::Issue {
                    kind: super::IssueKind::BadAnnotation,
                    path: PathBuf::from(format!("{}:{line}", path.display())),
                    message: format!("`{c}` at {secs} s is not a number; point skipped"),
                }),
            }
        }
        out.insert(cell(row, id).to_string(), points);
    }
    Ok(out)
}

/// Joins arousal and valence traces on time and maps them with `scale`; points outside the
/// scale or present in one dimension only are dropped (and counted in the returned number).
pub(crate) fn join_traces(
    arousal: &[(f32, f32)],
    valence: &[(f32, f32)],
    scale: Scale,
) -> (Vec<super::AvPoint>, usize) {
    let key = |t: f32| (t * 1000.0).round() as i64;
    let v_at: HashMap<i64, f32> = valence.iter().map(|&(t, v)| (key(t), v)).collect();
    let mut points = Vec::new();
    let mut dropped = 0;
    for &(t, a) in arousal {
        match (v_at.get(&key(t)).and_then(|&v| scale.map(v)), scale.map(a)) {
            (Some(v), Some(a)) => points.push(super::AvPoint {
                time: t,
                arousal: a,
                valence: v,
            }),
            _ => dropped += 1,
        }
    }
    let a_keys: std::collections::HashSet<i64> = arousal.iter().map(|&(t, _)| key(t)).collect();
    dropped += valence
        .iter()
        .filter(|&&(t, _)| !a_keys.contains(&key(t)))
        .count();
    (points, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_map_their_ends_and_middle() {
        assert_eq!(Scale::ONE_TO_NINE.map(1.0), Some(-1.0));
        assert_eq!(Scale::ONE_TO_NINE.map(5.0), Some(0.0));
        assert_eq!(Scale::ONE_TO_NINE.map(7.0), Some(0.5));
        assert_eq!(Scale::ONE_TO_FIVE.map(4.0), Some(0.5));
        assert_eq!(Scale::ONE_TO_SEVEN.map(5.5), Some(0.5));
        assert_eq!(Scale::UNIT.map(0.75), Some(0.5));
        assert_eq!(Scale::UNIT.map(1.2), None);
        assert_eq!(Scale::ONE_TO_NINE.map(0.0), None);
        assert_eq!(Scale::ONE_TO_NINE.describe(), "1-9 -> (x-5)/4");
        assert_eq!(Scale::UNIT.describe(), "[0,1] -> 2(x-0)-1");
        assert_eq!(Scale::ONE_TO_NINE.map_spread(2.0), 0.5);
    }

    #[test]
    fn sample_columns_give_seconds() {
        assert_eq!(sample_column_seconds("sample_15000ms"), Some(15.0));
        assert_eq!(sample_column_seconds(" sample_44500ms"), Some(44.5));
        assert_eq!(sample_column_seconds("song_id"), None);
    }
}
