//! Helpers the importers share: walking a tree, reading label tables, mapping rating scales.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::ImportError;

/// Audio extensions the importers accept (what `emobridge-audio` decodes).
const AUDIO_EXTENSIONS: [&str; 7] = ["wav", "mp3", "flac", "ogg", "oga", "aif", "aiff"];

/// How the walk treats symbolic links, for the duration of one import (see [`WalkScope`]).
struct WalkPolicy {
    /// The import root, canonical: links that resolve inside it are "inside".
    root: PathBuf,
    follow_links: bool,
    /// Skipped links, reported once each (several importers list a folder twice).
    skipped: std::collections::BTreeMap<PathBuf, String>,
}

thread_local! {
    static POLICY: std::cell::RefCell<Option<WalkPolicy>> = const { std::cell::RefCell::new(None) };
}

/// Sets the link policy of every [`list_files`] call on this thread until dropped; `finish`
/// returns the links that were passed over, with the reason.
pub(crate) struct WalkScope(());

impl WalkScope {
    pub fn enter(root: &Path, follow_links: bool) -> WalkScope {
        POLICY.with(|p| {
            *p.borrow_mut() = Some(WalkPolicy {
                root: root.to_path_buf(),
                follow_links,
                skipped: Default::default(),
            })
        });
        WalkScope(())
    }

    pub fn finish(self) -> Vec<(PathBuf, String)> {
        POLICY
            .with(|p| p.borrow_mut().take())
            .map(|p| p.skipped.into_iter().collect())
            .unwrap_or_default()
    }
}

impl Drop for WalkScope {
    fn drop(&mut self) {
        POLICY.with(|p| p.borrow_mut().take());
    }
}

/// What to do with a symbolic link met during a walk.
enum LinkAction {
    /// List the target as a file (under the link's own path).
    File,
    /// Walk the target folder (under the link's own path).
    Dir(PathBuf),
    Skip(String),
}

/// The link rule (issue 17): a link to a file inside the import root is listed; a link to a
/// folder inside the root is passed over — it is either a loop (a link to an ancestor, which
/// once turned 10 clips into 490 rows) or a second name for files the walk lists under their real
/// path. A link that leaves the root is followed only with `follow_links`
/// (`--follow-links`), and then a folder already walked is never walked again. A dangling link
/// is reported. Every link passed over is reported as an issue.
fn link_action(link: &Path, visited: &std::collections::HashSet<PathBuf>) -> LinkAction {
    let target = match fs::canonicalize(link) {
        Ok(t) => t,
        Err(e) => return LinkAction::Skip(format!("symbolic link cannot be resolved: {e}")),
    };
    let (root, follow) = POLICY.with(|p| {
        p.borrow()
            .as_ref()
            .map(|p| (Some(p.root.clone()), p.follow_links))
            .unwrap_or((None, false))
    });
    let inside = root.as_ref().is_none_or(|r| target.starts_with(r));
    let is_dir = target.is_dir();
    if !inside && !follow {
        return LinkAction::Skip(format!(
            "symbolic link to {} leaves the import root; not followed (use --follow-links)",
            target.display()
        ));
    }
    if !is_dir {
        return LinkAction::File;
    }
    if visited.contains(&target)
        || link
            .parent()
            .and_then(|p| fs::canonicalize(p).ok())
            .is_some_and(|parent| parent.starts_with(&target))
    {
        return LinkAction::Skip(format!(
            "symbolic link to {} makes a loop; not followed",
            target.display()
        ));
    }
    if inside {
        return LinkAction::Skip(format!(
            "symbolic link to the folder {} inside the root; its files are listed under their own path",
            target.display()
        ));
    }
    LinkAction::Dir(target)
}

/// Every file under `dir`, recursively, sorted; hidden entries (names starting with `.`, such
/// as macOS `._*` resource forks) are not corpus files and are passed over. Symbolic links follow
/// the rule of [`link_action`]; within an import (see [`WalkScope`]) the links passed over are
/// collected for the issues file.
pub(crate) fn list_files(dir: &Path) -> Result<Vec<PathBuf>, ImportError> {
    let mut out = Vec::new();
    let mut visited = std::collections::HashSet::new();
    if let Ok(real) = fs::canonicalize(dir) {
        visited.insert(real);
    }
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
            if kind.is_symlink() {
                match link_action(&path, &visited) {
                    LinkAction::File => out.push(path),
                    LinkAction::Dir(real) => {
                        visited.insert(real);
                        stack.push(path);
                    }
                    LinkAction::Skip(why) => {
                        tracing::debug!("{}: {why}", path.display());
                        POLICY.with(|p| {
                            if let Some(p) = p.borrow_mut().as_mut() {
                                p.skipped.entry(path.clone()).or_insert(why);
                            }
                        });
                    }
                }
            } else if kind.is_dir() {
                if let Ok(real) = fs::canonicalize(&path) {
                    visited.insert(real);
                }
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

/// The corpus's own folder: `root` itself or the first folder below it (breadth-first, sorted,
/// at most `max_depth` levels down) for which `is_home` holds — users often point ROOT one level
/// above the unpacked folder (`ROOT/CREMA-D/AudioWAV`, `ROOT/EMOPIA_1.0/label.csv`). Links to
/// folders are not followed here.
pub(crate) fn locate_home(
    root: &Path,
    max_depth: usize,
    is_home: &dyn Fn(&Path) -> bool,
) -> Option<PathBuf> {
    let mut level = vec![root.to_path_buf()];
    for depth in 0..=max_depth {
        let mut next = Vec::new();
        for d in &level {
            if is_home(d) {
                return Some(d.clone());
            }
            if depth == max_depth {
                continue;
            }
            if let Ok(entries) = fs::read_dir(d) {
                let mut subs: Vec<PathBuf> = entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .map(|e| e.path())
                    .collect();
                subs.sort();
                next.extend(subs);
            }
        }
        level = next;
    }
    None
}

/// Writes a file atomically (the store's one atomic write).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImportError> {
    emobridge_store::write_atomic(path, bytes).map_err(|e| match e {
        emobridge_store::StoreError::Io { path, source } => ImportError::Io { path, source },
        other => ImportError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(other.to_string()),
        },
    })
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
    /// Lines with bytes that are not UTF-8 (read with U+FFFD in their place).
    pub lossy_lines: Vec<usize>,
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
        // Byte records, decoded leniently: one stray Latin-1 byte in an optional column must not
        // abort an import (the line is listed in `lossy_lines` for the importer to report).
        let mut lossy_lines = Vec::new();
        let mut decode = |line: usize, record: &csv::ByteRecord| -> Vec<String> {
            let mut lossy = false;
            let cells = record
                .iter()
                .map(|c| {
                    let text = String::from_utf8_lossy(c);
                    lossy |= matches!(text, std::borrow::Cow::Owned(_));
                    text.trim().to_string()
                })
                .collect();
            if lossy {
                lossy_lines.push(line);
            }
            cells
        };
        let header_record = rdr
            .byte_headers()
            .map_err(|e| bad(1, format!("header: {e}")))?
            .clone();
        let header: Vec<String> = decode(1, &header_record)
            .into_iter()
            .map(|h| {
                h.trim_start_matches('\u{feff}')
                    .trim_matches('"')
                    .trim()
                    .to_string()
            })
            .collect();
        let mut rows = Vec::new();
        for (i, row) in rdr.byte_records().enumerate() {
            let line = row
                .as_ref()
                .ok()
                .and_then(|r| r.position())
                .map_or(i + 2, |p| p.line() as usize);
            let row = row.map_err(|e| bad(i + 2, e.to_string()))?;
            let cells = decode(line, &row);
            if cells.iter().all(String::is_empty) {
                continue;
            }
            rows.push((line, cells));
        }
        Ok(Table {
            path: path.to_path_buf(),
            header,
            rows,
            lossy_lines,
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
    read_wide_trace_with(path, issues, false)
}

/// Like [`read_wide_trace`], but the id column may be any (`song_id`, `musicId`, `id`, else
/// the first column).
pub(crate) fn read_wide_trace_any_id(
    path: &Path,
    issues: &mut Vec<super::Issue>,
) -> Result<HashMap<String, Vec<(f32, f32)>>, ImportError> {
    read_wide_trace_with(path, issues, true)
}

fn read_wide_trace_with(
    path: &Path,
    issues: &mut Vec<super::Issue>,
    any_id: bool,
) -> Result<HashMap<String, Vec<(f32, f32)>>, ImportError> {
    let t = Table::read(path)?;
    let id = match t.column(&["song_id", "musicId", "music_id", "id"]) {
        Some(i) => i,
        None if any_id => 0,
        None => t.require(&["song_id", "musicId"])?,
    };
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
