//! The manifest: one row per clip, `id,path,domain,corpus,speaker,emotion,arousal,valence,split,annotation`.
//!
//! * CSV with a header row, or JSON Lines (one object per line) when the file ends in `.jsonl`.
//! * `path` and `annotation` are relative to the manifest's folder unless absolute.
//! * `domain` is `speech` or `music`; `emotion` is a canonical [`Emotion`] label or empty;
//!   `arousal`/`valence` are clip-level values in [-1, 1] or empty.
//! * Unknown columns are kept, in order, and written back out unchanged.
//!
//! Validation errors carry the 1-based line number and the column name.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crate::taxonomy::Emotion;

/// The fixed columns, in the order they are written.
pub const COLUMNS: [&str; 10] = [
    "id",
    "path",
    "domain",
    "corpus",
    "speaker",
    "emotion",
    "arousal",
    "valence",
    "split",
    "annotation",
];

/// Speech or music (song counts as music: the paper's "music" side is emotional singing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Domain {
    Speech,
    Music,
}

impl Domain {
    pub fn as_str(self) -> &'static str {
        match self {
            Domain::Speech => "speech",
            Domain::Music => "music",
        }
    }

    pub fn parse(s: &str) -> Option<Domain> {
        match s.trim().to_ascii_lowercase().as_str() {
            "speech" => Some(Domain::Speech),
            "music" => Some(Domain::Music),
            _ => None,
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One clip of a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: String,
    /// As written in the manifest (relative to the manifest folder unless absolute).
    pub path: String,
    pub domain: Domain,
    pub corpus: String,
    /// Actor / performer / piece group used for group-independent folds.
    pub speaker: String,
    pub emotion: Option<Emotion>,
    pub arousal: Option<f32>,
    pub valence: Option<f32>,
    pub split: String,
    /// Time-continuous `time,arousal,valence` CSV, relative like `path`.
    pub annotation: String,
    /// Unknown columns, in manifest order: (column, value).
    pub extra: Vec<(String, String)>,
}

impl Record {
    /// A record with the required fields and everything else empty.
    pub fn new(
        id: impl Into<String>,
        path: impl Into<String>,
        domain: Domain,
        corpus: impl Into<String>,
        speaker: impl Into<String>,
    ) -> Record {
        Record {
            id: id.into(),
            path: path.into(),
            domain,
            corpus: corpus.into(),
            speaker: speaker.into(),
            emotion: None,
            arousal: None,
            valence: None,
            split: String::new(),
            annotation: String::new(),
            extra: Vec::new(),
        }
    }

    /// The value of an extra (pass-through) column.
    pub fn extra(&self, column: &str) -> Option<&str> {
        self.extra
            .iter()
            .find(|(k, _)| k == column)
            .map(|(_, v)| v.as_str())
    }

    /// Sets (or adds) an extra column.
    pub fn set_extra(&mut self, column: impl Into<String>, value: impl Into<String>) {
        let column = column.into();
        let value = value.into();
        match self.extra.iter_mut().find(|(k, _)| *k == column) {
            Some(slot) => slot.1 = value,
            None => self.extra.push((column, value)),
        }
    }
}

/// Why a manifest could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: column `{column}`: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: String,
        message: String,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    /// Several invalid rows: the first [`MAX_REPORTED`] are listed, the rest counted.
    #[error("{path}: {} invalid row(s): {}{}", .problems.len() + .more, .problems.join("; "), if *.more > 0 { format!("; … and {} more", .more) } else { String::new() })]
    ManyInvalid {
        path: PathBuf,
        /// `line N, column `c`: message` for each listed problem.
        problems: Vec<String>,
        more: usize,
    },
}

/// How many invalid rows a manifest error lists (the rest are counted).
pub const MAX_REPORTED: usize = 20;

/// Collects row errors so that one read reports them all (up to [`MAX_REPORTED`]).
struct Problems {
    path: PathBuf,
    errors: Vec<ManifestError>,
    count: usize,
    ids: HashSet<String>,
}

impl Problems {
    fn new(path: &Path) -> Problems {
        Problems {
            path: path.to_path_buf(),
            errors: Vec::new(),
            count: 0,
            ids: HashSet::new(),
        }
    }

    /// Keeps a valid record unless its id was seen on an earlier row.
    fn keep(&mut self, out: &mut Vec<Record>, line: usize, record: Record) {
        if self.ids.insert(record.id.clone()) {
            out.push(record);
        } else {
            let path = self.path.clone();
            self.push(ManifestError::Invalid {
                path,
                line,
                column: "id".into(),
                message: format!("duplicate id `{}`", record.id),
            });
        }
    }

    fn push(&mut self, e: ManifestError) {
        self.count += 1;
        if self.errors.len() < MAX_REPORTED {
            self.errors.push(e);
        }
    }

    /// `Ok` when nothing was collected; the error itself when one was; else the list.
    fn finish(mut self) -> Result<(), ManifestError> {
        match self.count {
            0 => Ok(()),
            1 => Err(self.errors.remove(0)),
            n => Err(ManifestError::ManyInvalid {
                path: self.path,
                more: n - self.errors.len(),
                problems: self
                    .errors
                    .into_iter()
                    .map(|e| match e {
                        ManifestError::Invalid {
                            line,
                            column,
                            message,
                            ..
                        } => format!("line {line}, column `{column}`: {message}"),
                        other => other.to_string(),
                    })
                    .collect(),
            }),
        }
    }
}

/// A manifest and the folder its relative paths hang from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Manifest {
    pub records: Vec<Record>,
    /// Folder relative `path`/`annotation` values are resolved against.
    pub root: PathBuf,
}

impl Manifest {
    pub fn new(root: impl Into<PathBuf>, records: Vec<Record>) -> Manifest {
        Manifest {
            records,
            root: root.into(),
        }
    }

    /// Reads a CSV manifest, or JSON Lines when the extension is `.jsonl` / `.ndjson`.
    pub fn read(path: impl AsRef<Path>) -> Result<Manifest, ManifestError> {
        let path = path.as_ref();
        let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut problems = Problems::new(path);
        let records = if is_jsonl(path) {
            read_jsonl(path, &mut problems)?
        } else {
            read_csv(path, &mut problems)?
        };
        problems.finish()?;
        if records.is_empty() {
            // One rule for a 0-byte file, a header-only CSV and a JSON Lines file of blank lines.
            return Err(ManifestError::Format {
                path: path.to_path_buf(),
                message: "no clips: a manifest needs a header row and at least one clip row".into(),
            });
        }
        Ok(Manifest { records, root })
    }

    /// Writes CSV, or JSON Lines for a `.jsonl` / `.ndjson` path; atomically (temp file + rename).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), ManifestError> {
        let path = path.as_ref();
        let io = |source| ManifestError::Io {
            path: path.to_path_buf(),
            source,
        };
        let bytes = if is_jsonl(path) {
            self.to_jsonl()
        } else {
            self.to_csv()
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("tmp-write");
        let mut f = fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        fs::rename(&tmp, path).map_err(io)
    }

    /// Absolute (or root-joined) audio path of a record.
    pub fn audio_path(&self, record: &Record) -> PathBuf {
        resolve(&self.root, &record.path)
    }

    /// Absolute (or root-joined) annotation path of a record, if it has one.
    pub fn annotation_path(&self, record: &Record) -> Option<PathBuf> {
        (!record.annotation.is_empty()).then(|| resolve(&self.root, &record.annotation))
    }

    /// Union of extra column names in first-seen order.
    pub fn extra_columns(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        let mut cols = Vec::new();
        for r in &self.records {
            for (k, _) in &r.extra {
                if seen.insert(k.clone()) {
                    cols.push(k.clone());
                }
            }
        }
        cols
    }

    /// Records of one domain.
    pub fn of_domain(&self, domain: Domain) -> impl Iterator<Item = &Record> {
        self.records.iter().filter(move |r| r.domain == domain)
    }

    /// The CSV text of this manifest.
    pub fn to_csv(&self) -> Vec<u8> {
        let extras = self.extra_columns();
        let mut w = csv::Writer::from_writer(Vec::new());
        let header: Vec<&str> = COLUMNS
            .iter()
            .copied()
            .chain(extras.iter().map(String::as_str))
            .collect();
        w.write_record(&header).expect("in-memory write");
        for r in &self.records {
            let mut row = fixed_fields(r);
            for c in &extras {
                row.push(r.extra(c).unwrap_or("").to_string());
            }
            w.write_record(&row).expect("in-memory write");
        }
        w.into_inner().expect("in-memory flush")
    }

    fn to_jsonl(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for r in &self.records {
            let mut obj = serde_json::Map::new();
            for (name, value) in COLUMNS.iter().zip(fixed_fields(r)) {
                let v = match *name {
                    "arousal" | "valence" if !value.is_empty() => value
                        .parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map(serde_json::Value::Number)
                        .unwrap_or(serde_json::Value::String(value)),
                    _ => serde_json::Value::String(value),
                };
                obj.insert((*name).to_string(), v);
            }
            for (k, v) in &r.extra {
                obj.insert(k.clone(), serde_json::Value::String(v.clone()));
            }
            out.extend(serde_json::to_vec(&obj).expect("json"));
            out.push(b'\n');
        }
        out
    }
}

fn resolve(root: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        root.join(p)
    }
}

fn is_jsonl(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("jsonl" | "ndjson")
    )
}

fn fmt_opt(v: Option<f32>) -> String {
    v.map(|x| format!("{x}")).unwrap_or_default()
}

fn fixed_fields(r: &Record) -> Vec<String> {
    vec![
        r.id.clone(),
        r.path.clone(),
        r.domain.as_str().to_string(),
        r.corpus.clone(),
        r.speaker.clone(),
        r.emotion
            .map(|e| e.as_str().to_string())
            .unwrap_or_default(),
        fmt_opt(r.arousal),
        fmt_opt(r.valence),
        r.split.clone(),
        r.annotation.clone(),
    ]
}

/// Builds a record from (column, value) pairs, validating the fixed columns.
fn record_from_fields(
    path: &Path,
    line: usize,
    fields: Vec<(String, String)>,
) -> Result<Record, ManifestError> {
    let invalid = |column: &str, message: String| ManifestError::Invalid {
        path: path.to_path_buf(),
        line,
        column: column.to_string(),
        message,
    };
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let id = get("id");
    if id.is_empty() {
        return Err(invalid("id", "empty id".into()));
    }
    let rel = get("path");
    if rel.is_empty() {
        return Err(invalid("path", "empty path".into()));
    }
    let domain_s = get("domain");
    let domain = Domain::parse(&domain_s)
        .ok_or_else(|| invalid("domain", format!("`{domain_s}` is not `speech` or `music`")))?;
    let emotion_s = get("emotion");
    let emotion = if emotion_s.is_empty() {
        None
    } else {
        Some(Emotion::parse(&emotion_s).ok_or_else(|| {
            invalid(
                "emotion",
                format!(
                    "`{emotion_s}` is not a canonical label ({})",
                    Emotion::ALL
                        .iter()
                        .map(|e| e.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?)
    };
    let dim = |name: &str| -> Result<Option<f32>, ManifestError> {
        let s = get(name);
        if s.is_empty() {
            return Ok(None);
        }
        let v: f32 = s
            .parse()
            .map_err(|_| invalid(name, format!("`{s}` is not a number")))?;
        if !v.is_finite() || !(-1.0..=1.0).contains(&v) {
            return Err(invalid(name, format!("{v} is outside [-1, 1]")));
        }
        Ok(Some(v))
    };
    let arousal = dim("arousal")?;
    let valence = dim("valence")?;
    let extra = fields
        .iter()
        .filter(|(k, _)| !COLUMNS.contains(&k.as_str()))
        .cloned()
        .collect();
    Ok(Record {
        id,
        path: rel,
        domain,
        corpus: get("corpus"),
        speaker: get("speaker"),
        emotion,
        arousal,
        valence,
        split: get("split"),
        annotation: get("annotation"),
        extra,
    })
}

fn read_csv(path: &Path, problems: &mut Problems) -> Result<Vec<Record>, ManifestError> {
    let file = fs::File::open(path).map_err(|source| ManifestError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if file.metadata().is_ok_and(|m| m.len() == 0) {
        return Ok(Vec::new());
    }
    let mut rdr = csv::ReaderBuilder::new().flexible(false).from_reader(file);
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| ManifestError::Format {
            path: path.to_path_buf(),
            message: format!("header: {e}"),
        })?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
        .collect();
    for required in ["id", "path", "domain"] {
        if !header.iter().any(|h| h == required) {
            return Err(ManifestError::Format {
                path: path.to_path_buf(),
                message: format!("header lacks the required column `{required}`"),
            });
        }
    }
    let mut out = Vec::new();
    for (i, row) in rdr.records().enumerate() {
        let line = i + 2;
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                problems.push(ManifestError::Invalid {
                    path: path.to_path_buf(),
                    line,
                    column: "*".into(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        let fields = header
            .iter()
            .cloned()
            .zip(row.iter().map(str::to_string))
            .collect();
        match record_from_fields(path, line, fields) {
            Ok(r) => problems.keep(&mut out, line, r),
            Err(e) => problems.push(e),
        }
    }
    Ok(out)
}

fn read_jsonl(path: &Path, problems: &mut Problems) -> Result<Vec<Record>, ManifestError> {
    let file = fs::File::open(path).map_err(|source| ManifestError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line_no = i + 1;
        let text = line.map_err(|source| ManifestError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let invalid = |message: String| ManifestError::Invalid {
            path: path.to_path_buf(),
            line: line_no,
            column: "*".into(),
            message,
        };
        let value: serde_json::Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                problems.push(invalid(e.to_string()));
                continue;
            }
        };
        let Some(obj) = value.as_object() else {
            problems.push(invalid("not a JSON object".into()));
            continue;
        };
        let fields = obj
            .iter()
            .map(|(k, v)| {
                let s = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                (k.clone(), s)
            })
            .collect();
        match record_from_fields(path, line_no, fields) {
            Ok(r) => problems.keep(&mut out, line_no, r),
            Err(e) => problems.push(e),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn csv_round_trip_keeps_unknown_columns() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "m.csv", "id,path,domain,corpus,speaker,emotion,arousal,valence,split,annotation,intensity\n\
            a,wav/a.wav,speech,x,s1,happy,0.5,0.25,,,strong\nb,/abs/b.wav,music,x,p1,,,,test,ann/b.csv,\n");
        let m = Manifest::read(&p).unwrap();
        assert_eq!(m.records.len(), 2);
        assert_eq!(m.records[0].emotion, Some(Emotion::Happy));
        assert_eq!(m.records[0].extra("intensity"), Some("strong"));
        assert_eq!(m.audio_path(&m.records[0]), dir.path().join("wav/a.wav"));
        assert_eq!(m.audio_path(&m.records[1]), PathBuf::from("/abs/b.wav"));
        assert_eq!(
            m.annotation_path(&m.records[1]),
            Some(dir.path().join("ann/b.csv"))
        );
        let out = dir.path().join("out.csv");
        m.write(&out).unwrap();
        let again = Manifest::read(&out).unwrap();
        assert_eq!(again.records, m.records);
        let jl = dir.path().join("out.jsonl");
        m.write(&jl).unwrap();
        assert_eq!(Manifest::read(&jl).unwrap().records, m.records);
    }

    #[test]
    fn errors_name_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "m.csv",
            "id,path,domain,emotion\na,a.wav,speech,happy\nb,b.wav,music,elated\n",
        );
        let e = Manifest::read(&p).unwrap_err().to_string();
        assert!(
            e.contains(":3:") && e.contains("`emotion`") && e.contains("elated"),
            "{e}"
        );
        let p = write(
            dir.path(),
            "d.csv",
            "id,path,domain\na,a.wav,speech\nb,b.wav,video\n",
        );
        let e = Manifest::read(&p).unwrap_err().to_string();
        assert!(e.contains(":3:") && e.contains("`domain`"), "{e}");
        let p = write(
            dir.path(),
            "v.csv",
            "id,path,domain,arousal\na,a.wav,speech,1.5\n",
        );
        let e = Manifest::read(&p).unwrap_err().to_string();
        assert!(e.contains(":2:") && e.contains("`arousal`"), "{e}");
        let p = write(
            dir.path(),
            "u.csv",
            "id,path,domain\na,a.wav,speech\na,b.wav,speech\n",
        );
        assert!(Manifest::read(&p)
            .unwrap_err()
            .to_string()
            .contains("duplicate id"));
        let p = write(dir.path(), "j.jsonl", "{\"id\":\"a\",\"path\":\"a.wav\",\"domain\":\"speech\"}\n{\"id\":\"b\",\"path\":\"b.wav\",\"domain\":\"music\",\"valence\":\"x\"}\n");
        let e = Manifest::read(&p).unwrap_err().to_string();
        assert!(e.contains(":2:") && e.contains("`valence`"), "{e}");
    }

    #[test]
    fn every_invalid_row_is_reported_up_to_a_limit() {
        // Issue 17: validation used to stop at the first bad row.
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "m.csv",
            "id,path,domain,emotion\na,a.wav,speech,happy\nb,b.wav,video,\nc,,speech,\na,d.wav,music,\ne,e.wav,music,elated\n",
        );
        let e = Manifest::read(&p).unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        for part in [
            "4 invalid row(s)",
            "line 3, column `domain`",
            "line 4, column `path`",
            "line 5, column `id`: duplicate id `a`",
            "line 6, column `emotion`",
        ] {
            assert!(e.contains(part), "{part}: {e}");
        }
        let mut text = String::from("id,path,domain\n");
        for i in 0..(MAX_REPORTED + 7) {
            text.push_str(&format!("c{i},c{i}.wav,radio\n"));
        }
        let p = write(dir.path(), "many.csv", &text);
        let e = Manifest::read(&p).unwrap_err().to_string();
        assert!(
            e.contains("27 invalid row(s)") && e.ends_with("… and 7 more"),
            "{e}"
        );
        assert_eq!(e.matches("column `domain`").count(), MAX_REPORTED);
    }

    #[test]
    fn empty_and_header_only_manifests_give_one_message() {
        // Issue 17: a 0-byte manifest said "header lacks `id`", a header-only one read as empty.
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [
            ("zero.csv", ""),
            ("header.csv", "id,path,domain\n"),
            ("blank.jsonl", "\n\n"),
            ("zero.jsonl", ""),
        ] {
            let p = write(dir.path(), name, text);
            let e = Manifest::read(&p).unwrap_err().to_string();
            assert!(e.contains(name) && e.contains("no clips"), "{name}: {e}");
        }
    }
}
