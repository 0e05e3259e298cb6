//! Corpus importers: turn a corpus, in the layout its publisher distributes, into a manifest.
//!
//! One module per corpus reads that corpus's own file naming and annotation files and yields
//! [`Record`]s with the domain, the group that folds must keep together (actor, performer, song),
//! the canonical [`Emotion`] (the corpus's own code is always kept in the extra column
//! `source_label`) and, where the corpus has them, clip-level arousal/valence mapped to [-1, 1]
//! (the mapping is written per row in `av_scale`) and 2 Hz arousal/valence traces.
//!
//! Importing never stops at one bad file: a file that does not follow the corpus's naming, an
//! annotated item whose audio is missing, an annotation that cannot be read, all become
//! [`Issue`]s (path + reason) and the item is skipped. Only a root that does not look like the
//! corpus at all (no audio, no label file) is an [`ImportError`].
//!
//! [`write_outputs`] writes, beside the manifest `M.csv`:
//! * `M_annotations/<id>.csv` — one `time,arousal,valence` file per clip with a dynamic trace;
//! * `M_counts.csv` — clips per (domain, emotion) and per (domain, speaker group);
//! * `M_issues.csv` — every skipped item with its path and reason.
//!
//! The per-corpus label tables live in the module docs and in `docs/corpora/`.

use std::collections::{BTreeMap, HashSet};
use std::fmt::{self, Write as _};
use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::manifest::{Domain, Manifest, ManifestError, Record};
use crate::taxonomy::{label_set, shared_labels, Emotion};

pub mod crema_d;
pub mod deam;
pub mod emodb;
pub mod emomusic;
pub mod emopia;
pub mod folder_per_label;
pub mod iemocap;
pub mod msp_podcast;
pub mod pmemo;
pub mod ravdess;
pub mod recola;
pub mod savee;
pub mod tess;
mod util;

pub use util::Scale;

/// The corpora emobridge can import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Corpus {
    Ravdess,
    CremaD,
    EmoDb,
    Tess,
    Savee,
    Iemocap,
    MspPodcast,
    Emopia,
    EmoMusic,
    Pmemo,
    Deam,
    Recola,
    FolderPerLabel,
}

impl Corpus {
    pub const ALL: [Corpus; 13] = [
        Corpus::Ravdess,
        Corpus::CremaD,
        Corpus::EmoDb,
        Corpus::Tess,
        Corpus::Savee,
        Corpus::Iemocap,
        Corpus::MspPodcast,
        Corpus::Emopia,
        Corpus::EmoMusic,
        Corpus::Pmemo,
        Corpus::Deam,
        Corpus::Recola,
        Corpus::FolderPerLabel,
    ];

    /// The name used on the command line and in the manifest's `corpus` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Corpus::Ravdess => "ravdess",
            Corpus::CremaD => "crema-d",
            Corpus::EmoDb => "emodb",
            Corpus::Tess => "tess",
            Corpus::Savee => "savee",
            Corpus::Iemocap => "iemocap",
            Corpus::MspPodcast => "msp-podcast",
            Corpus::Emopia => "emopia",
            Corpus::EmoMusic => "emomusic",
            Corpus::Pmemo => "pmemo",
            Corpus::Deam => "deam",
            Corpus::Recola => "recola",
            Corpus::FolderPerLabel => "folder-per-label",
        }
    }

    /// Parses a corpus name (case-insensitive; `_` and `-` are interchangeable).
    pub fn parse(s: &str) -> Option<Corpus> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        let norm = match norm.as_str() {
            "cremad" => "crema-d",
            "msp" | "msppodcast" => "msp-podcast",
            "emo-db" | "berlin" => "emodb",
            "1000songs" | "emo-music" => "emomusic",
            "folder" | "folders" => "folder-per-label",
            other => other,
        }
        .to_string();
        Corpus::ALL.into_iter().find(|c| c.as_str() == norm)
    }
}

impl fmt::Display for Corpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A label preset: an explicit, named departure from the corpus's own label set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preset {
    /// The corpus's own categories, each mapped to the canonical label of the same meaning.
    #[default]
    Raw,
    /// IEMOCAP only: the SUPERB emotion-recognition 4-class set — neutral, happy (hap + exc),
    /// angry, sad; every other category dropped (5,531 utterances in the full corpus).
    Superb4,
    /// EMOPIA only: one canonical emotion per Russell quadrant — Q1 happy, Q2 angry, Q3 sad,
    /// Q4 calm (emobridge's convention, chosen so that `--shared-with` a RAVDESS manifest
    /// keeps four labels).
    Quadrant4,
    /// RECOLA only: the gold-standard trace fuses the raters weighted by their agreement (CCC
    /// with the other raters' mean, AVEC 2018 style) instead of the plain rater mean.
    CccWeighted,
}

impl Preset {
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Raw => "raw",
            Preset::Superb4 => "superb4",
            Preset::Quadrant4 => "quadrant4",
            Preset::CccWeighted => "ccc-weighted",
        }
    }

    pub fn parse(s: &str) -> Option<Preset> {
        match s.trim().to_ascii_lowercase().as_str() {
            "raw" | "none" => Some(Preset::Raw),
            "superb4" | "superb" => Some(Preset::Superb4),
            "quadrant4" | "quadrants" => Some(Preset::Quadrant4),
            "ccc-weighted" | "ewe" => Some(Preset::CccWeighted),
            _ => None,
        }
    }

    /// The corpus a preset belongs to (`None`: every corpus).
    fn corpus(self) -> Option<Corpus> {
        match self {
            Preset::Raw => None,
            Preset::Superb4 => Some(Corpus::Iemocap),
            Preset::Quadrant4 => Some(Corpus::Emopia),
            Preset::CccWeighted => Some(Corpus::Recola),
        }
    }
}

/// Options of an import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Label preset; default [`Preset::Raw`].
    pub preset: Preset,
    /// Domain of a `folder-per-label` tree (required there, ignored elsewhere); default none.
    pub domain: Option<Domain>,
    /// Follow symbolic links that lead out of ROOT (`--follow-links`); default false. Links
    /// inside ROOT to folders are never followed (loops, second names); see [`IssueKind::Link`].
    pub follow_links: bool,
    /// Stop at the first issue (`--strict`): once the layout scan has met one, or the first
    /// clip whose audio header does not read, no further file is checked; default false.
    pub strict: bool,
}

/// Why an import could not run at all (bad items are [`Issue`]s instead).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The root does not have the corpus's layout.
    #[error("{path}: {message}")]
    Layout { path: PathBuf, message: String },
    /// A label/annotation table the import depends on is unreadable.
    #[error("{path}:{line}: {message}")]
    Table {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("invalid options: {0}")]
    Options(String),
    /// Nothing could be imported; the issues say why for each file met.
    #[error("{path}: no {corpus} clips found ({} file(s) reported)", issues.len())]
    NoClips {
        path: PathBuf,
        corpus: Corpus,
        issues: Vec<Issue>,
    },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// What kind of problem an item had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IssueKind {
    /// A file whose name does not follow the corpus's naming.
    BadName,
    /// An annotated item whose audio file is missing.
    MissingAudio,
    /// An audio file with no annotation.
    NoAnnotation,
    /// An annotation line or value that cannot be read or is out of range.
    BadAnnotation,
    /// Two sources disagree (folder vs file name, label file vs file name).
    Conflict,
    /// A second item with an id already seen.
    Duplicate,
    /// A file that is not audio although its name says so: empty, a Git LFS pointer stub, or a
    /// header no decoder recognises.
    BadAudio,
    /// A symbolic link passed over: a loop, a folder inside ROOT, or a link out of ROOT without
    /// `--follow-links`.
    Link,
}

impl IssueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueKind::BadName => "bad-name",
            IssueKind::MissingAudio => "missing-audio",
            IssueKind::NoAnnotation => "no-annotation",
            IssueKind::BadAnnotation => "bad-annotation",
            IssueKind::Conflict => "conflict",
            IssueKind::Duplicate => "duplicate",
            IssueKind::BadAudio => "bad-audio",
            IssueKind::Link => "link",
        }
    }
}

/// One reported problem: the item was skipped (or, for `BadAnnotation` of an optional value,
/// kept without that value — the message says which).
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub kind: IssueKind,
    pub path: PathBuf,
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.kind.as_str(),
            self.path.display(),
            self.message
        )
    }
}

/// One point of a time-continuous trace, values in [-1, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AvPoint {
    /// Seconds from the start of the clip.
    pub time: f32,
    pub arousal: f32,
    pub valence: f32,
}

/// The result of an import: records (with absolute audio paths), dynamic traces by record id,
/// and the issues met on the way.
#[derive(Debug, Clone)]
pub struct Imported {
    pub corpus: Corpus,
    pub records: Vec<Record>,
    /// Time-continuous arousal/valence per record id.
    pub dynamics: BTreeMap<String, Vec<AvPoint>>,
    pub issues: Vec<Issue>,
}

impl Imported {
    pub fn new(corpus: Corpus) -> Imported {
        Imported {
            corpus,
            records: Vec::new(),
            dynamics: BTreeMap::new(),
            issues: Vec::new(),
        }
    }

    pub(crate) fn issue(
        &mut self,
        kind: IssueKind,
        path: impl Into<PathBuf>,
        message: impl Into<String>,
    ) {
        self.issues.push(Issue {
            kind,
            path: path.into(),
            message: message.into(),
        });
    }

    /// Issues of one kind.
    pub fn issues_of(&self, kind: IssueKind) -> impl Iterator<Item = &Issue> {
        self.issues.iter().filter(move |i| i.kind == kind)
    }

    /// The distinct canonical labels present, in canonical order.
    pub fn labels(&self) -> Vec<Emotion> {
        label_set(self.records.iter().map(|r| r.emotion))
    }

    /// Keeps only records whose label is also in `other` (records without a label are dropped);
    /// returns the shared labels. Dynamic traces of dropped records go too.
    pub fn restrict_to_labels_of(&mut self, other: &Manifest) -> Vec<Emotion> {
        let shared = shared_labels(
            &self.labels(),
            &label_set(other.records.iter().map(|r| r.emotion)),
        );
        self.records
            .retain(|r| r.emotion.is_some_and(|e| shared.contains(&e)));
        let kept: HashSet<&str> = self.records.iter().map(|r| r.id.as_str()).collect();
        self.dynamics.retain(|id, _| kept.contains(id.as_str()));
        shared
    }

    /// Clip counts per (domain, emotion) and per (domain, speaker group).
    pub fn counts(&self) -> Vec<CountRow> {
        count_records(&self.records)
    }

    /// Drops records whose id was already seen, reporting each.
    fn dedupe(&mut self) {
        let mut seen = HashSet::new();
        let mut kept = Vec::with_capacity(self.records.len());
        for r in std::mem::take(&mut self.records) {
            if seen.insert(r.id.clone()) {
                kept.push(r);
            } else {
                let msg = format!("id `{}` already imported from another file; skipped", r.id);
                self.issue(IssueKind::Duplicate, PathBuf::from(&r.path), msg);
            }
        }
        self.records = kept;
    }
}

/// Imports `root` as `corpus`.
pub fn import(
    corpus: Corpus,
    root: &Path,
    options: &ImportOptions,
) -> Result<Imported, ImportError> {
    if let Some(owner) = options.preset.corpus() {
        if owner != corpus {
            return Err(ImportError::Options(format!(
                "preset `{}` applies to {owner} only, not to {corpus}",
                options.preset.as_str()
            )));
        }
    }
    let meta = fs::metadata(root).map_err(|source| ImportError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(ImportError::Layout {
            path: root.to_path_buf(),
            message: "not a directory".into(),
        });
    }
    // Absolute paths, so the writer can express them relative to wherever the manifest goes.
    let root = fs::canonicalize(root).map_err(|source| ImportError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    let walk = util::WalkScope::enter(&root, options.follow_links);
    let out = match corpus {
        Corpus::Ravdess => ravdess::import(&root)?,
        Corpus::CremaD => crema_d::import(&root)?,
        Corpus::EmoDb => emodb::import(&root)?,
        Corpus::Tess => tess::import(&root)?,
        Corpus::Savee => savee::import(&root)?,
        Corpus::Iemocap => iemocap::import(&root, options.preset)?,
        Corpus::MspPodcast => msp_podcast::import(&root)?,
        Corpus::Emopia => emopia::import(&root, options.preset)?,
        Corpus::EmoMusic => emomusic::import(&root)?,
        Corpus::Pmemo => pmemo::import(&root)?,
        Corpus::Deam => deam::import(&root)?,
        Corpus::Recola => recola::import(&root, options.preset)?,
        Corpus::FolderPerLabel => {
            let domain = options.domain.ok_or_else(|| {
                ImportError::Options("folder-per-label needs a domain (speech or music)".into())
            })?;
            folder_per_label::import(&root, domain)?
        }
    };
    let mut out = out;
    for (path, why) in walk.finish() {
        out.issue(IssueKind::Link, path, why);
    }
    // Under strict an issue met by the scan ends the work here (the job stops on it).
    if !(options.strict && !out.issues.is_empty()) {
        out.check_audio_headers(options.strict);
    }
    out.dedupe();
    if out.records.is_empty() {
        return Err(ImportError::NoClips {
            path: root.clone(),
            corpus,
            issues: out.issues,
        });
    }
    Ok(out)
}

/// Why `path` is not an audio file (cheap: the header only), or `None` when a decoder
/// recognises it.
pub fn audio_header_problem(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 64];
    let n = match fs::File::open(path).and_then(|mut f| f.read(&mut head)) {
        Ok(n) => n,
        Err(e) => return Some(format!("cannot be read: {e}")),
    };
    if n == 0 {
        return Some("empty file (0 bytes)".into());
    }
    if head[..n].starts_with(b"version https://git-lfs") {
        return Some(
            "a Git LFS pointer stub, not audio (fetch the audio with `git lfs pull`)".into(),
        );
    }
    match emobridge_audio::probe_info(path) {
        Ok(_) => None,
        Err(e) => Some(audio_reason(&e)),
    }
}

/// The reason of an audio error without its leading path (the issue names the file already).
fn audio_reason(e: &emobridge_audio::AudioError) -> String {
    let text = e.to_string();
    let prefix = format!("{}: ", e.path().display());
    text.strip_prefix(&prefix)
        .map(str::to_string)
        .unwrap_or(text)
}

impl Imported {
    /// Drops records whose audio is not audio (empty files, Git LFS pointer stubs, unrecognised
    /// headers), reporting each as [`IssueKind::BadAudio`].
    /// Drops (and reports) the records whose audio header does not read; with `stop_at_first`
    /// the records after the first such one are kept unchecked.
    fn check_audio_headers(&mut self, stop_at_first: bool) {
        let mut kept = Vec::with_capacity(self.records.len());
        let mut records = std::mem::take(&mut self.records).into_iter();
        for r in records.by_ref() {
            match audio_header_problem(Path::new(&r.path)) {
                None => kept.push(r),
                Some(why) => {
                    let path = PathBuf::from(&r.path);
                    self.issue(IssueKind::BadAudio, path, format!("{why}; skipped"));
                    self.dynamics.remove(&r.id);
                    if stop_at_first {
                        break;
                    }
                }
            }
        }
        kept.extend(records);
        self.records = kept;
    }
}

impl ImportError {
    /// The per-file issues of an import that found nothing, to be written like a successful
    /// import's issues file.
    pub fn issues(&self) -> Option<&[Issue]> {
        match self {
            ImportError::NoClips { issues, .. } => Some(issues),
            _ => None,
        }
    }
}

/// Writes `M_issues.csv` beside the manifest path `M` (also after an import that found nothing,
/// so the message pointing at it is true); returns its path.
pub fn write_issues_file(issues: &[Issue], manifest_path: &Path) -> Result<PathBuf, ImportError> {
    let path = sibling(manifest_path, "_issues.csv");
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|source| ImportError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    write_issues(&path, issues)?;
    Ok(path)
}

/// One line of the counts table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CountRow {
    pub domain: Domain,
    /// `emotion` or `speaker`.
    pub column: &'static str,
    /// The label (`(none)` for unlabelled clips) or the group.
    pub value: String,
    pub count: usize,
}

/// Clip counts per (domain, emotion) and per (domain, speaker), sorted.
pub fn count_records(records: &[Record]) -> Vec<CountRow> {
    let mut table: BTreeMap<(Domain, &'static str, String), usize> = BTreeMap::new();
    for r in records {
        let label = r
            .emotion
            .map(|e| e.as_str().to_string())
            .unwrap_or_else(|| "(none)".into());
        *table.entry((r.domain, "emotion", label)).or_default() += 1;
        *table
            .entry((r.domain, "speaker", r.speaker.clone()))
            .or_default() += 1;
    }
    table
        .into_iter()
        .map(|((domain, column, value), count)| CountRow {
            domain,
            column,
            value,
            count,
        })
        .collect()
}

/// Where [`write_outputs`] put things.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub manifest: PathBuf,
    pub counts: PathBuf,
    pub issues: PathBuf,
    /// The annotation folder, when any trace was written.
    pub annotations: Option<PathBuf>,
}

/// The file beside `manifest` named `<stem><suffix>`.
pub fn sibling(manifest: &Path, suffix: &str) -> PathBuf {
    let stem = manifest
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "manifest".into());
    manifest.with_file_name(format!("{stem}{suffix}"))
}

/// Writes the manifest (paths relative to its folder when possible), the per-clip annotation
/// CSVs, the counts and the issues; each file atomically.
pub fn write_outputs(imported: &Imported, manifest_path: &Path) -> Result<Written, ImportError> {
    let dir = manifest_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|source| ImportError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let abs_dir = fs::canonicalize(dir).map_err(|source| ImportError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let ann_dir = sibling(manifest_path, "_annotations");
    let ann_name = ann_dir
        .file_name()
        .expect("has a name")
        .to_string_lossy()
        .into_owned();
    if !imported.dynamics.is_empty() {
        fs::create_dir_all(&ann_dir).map_err(|source| ImportError::Io {
            path: ann_dir.clone(),
            source,
        })?;
    }
    let mut records = Vec::with_capacity(imported.records.len());
    for r in &imported.records {
        let mut r = r.clone();
        r.path = relative_or_absolute(Path::new(&r.path), &abs_dir);
        if let Some(points) = imported.dynamics.get(&r.id) {
            let file = format!("{}.csv", util::file_safe(&r.id));
            write_trace(&ann_dir.join(&file), points)?;
            r.annotation = format!("{ann_name}/{file}");
        }
        records.push(r);
    }
    let manifest = Manifest::new(abs_dir.clone(), records);
    manifest.write(manifest_path)?;
    let counts = sibling(manifest_path, "_counts.csv");
    write_counts(&counts, &count_records(&manifest.records))?;
    let issues = sibling(manifest_path, "_issues.csv");
    write_issues(&issues, &imported.issues)?;
    Ok(Written {
        manifest: manifest_path.to_path_buf(),
        counts,
        issues,
        annotations: (!imported.dynamics.is_empty()).then_some(ann_dir),
    })
}

fn write_trace(path: &Path, points: &[AvPoint]) -> Result<(), ImportError> {
    let mut text = String::from("time,arousal,valence\n");
    for p in points {
        // `+ 0.0` turns -0 into 0 so the files read cleanly.
        text.push_str(&format!(
            "{},{},{}\n",
            p.time + 0.0,
            p.arousal + 0.0,
            p.valence + 0.0
        ));
    }
    util::write_atomic(path, text.as_bytes())
}

fn write_counts(path: &Path, rows: &[CountRow]) -> Result<(), ImportError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["domain", "column", "value", "count"])
        .expect("in-memory write");
    for r in rows {
        w.write_record([r.domain.as_str(), r.column, &r.value, &r.count.to_string()])
            .expect("in-memory write");
    }
    util::write_atomic(path, &w.into_inner().expect("in-memory flush"))
}

fn write_issues(path: &Path, issues: &[Issue]) -> Result<(), ImportError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["kind", "path", "message"])
        .expect("in-memory write");
    for i in issues {
        w.write_record([i.kind.as_str(), &i.path.to_string_lossy(), &i.message])
            .expect("in-memory write");
    }
    util::write_atomic(path, &w.into_inner().expect("in-memory flush"))
}

/// `target` relative to `base` (both absolute, no `..` inside), `/`-separated; absolute when
/// they share no root (e.g. different Windows drives).
fn relative_or_absolute(target: &Path, base: &Path) -> String {
    let t: Vec<Component> = target.components().collect();
    let b: Vec<Component> = base.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let shares_root =
        common > 0 && matches!(t.first(), Some(Component::RootDir | Component::Prefix(_)));
    if !target.is_absolute() || !shares_root {
        return target.to_string_lossy().into_owned();
    }
    let mut parts: Vec<String> = vec!["..".to_string(); b.len() - common];
    parts.extend(
        t[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

/// Values listed per (domain, column) in [`format_counts`]; the counts file has them all.
const MAX_PRINTED: usize = 48;

/// The counts as text, one block per (column, domain), for the CLI's end-of-run summary.
pub fn format_counts(rows: &[CountRow]) -> String {
    let mut s = String::new();
    for column in ["emotion", "speaker"] {
        let mut by_domain: BTreeMap<Domain, Vec<&CountRow>> = BTreeMap::new();
        for r in rows.iter().filter(|r| r.column == column) {
            by_domain.entry(r.domain).or_default().push(r);
        }
        for (domain, rs) in by_domain {
            let total: usize = rs.iter().map(|r| r.count).sum();
            let _ = writeln!(
                s,
                "{domain} by {column} ({} distinct, {total} clips):",
                rs.len()
            );
            let items: Vec<String> = rs
                .iter()
                .take(MAX_PRINTED)
                .map(|r| format!("{}={}", r.value, r.count))
                .collect();
            for chunk in items.chunks(8) {
                let _ = writeln!(s, "  {}", chunk.join("  "));
            }
            if rs.len() > MAX_PRINTED {
                let _ = writeln!(
                    s,
                    "  … {} more (all in the counts file)",
                    rs.len() - MAX_PRINTED
                );
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_walk_up_and_down() {
        assert_eq!(
            relative_or_absolute(Path::new("/a/b/c.wav"), Path::new("/a")),
            "b/c.wav"
        );
        assert_eq!(
            relative_or_absolute(Path::new("/a/b/c.wav"), Path::new("/a/x/y")),
            "../../b/c.wav"
        );
        assert_eq!(
            relative_or_absolute(Path::new("/c.wav"), Path::new("/")),
            "c.wav"
        );
    }

    #[test]
    fn corpus_names_round_trip() {
        for c in Corpus::ALL {
            assert_eq!(Corpus::parse(c.as_str()), Some(c));
        }
        assert_eq!(Corpus::parse("CREMA_D"), Some(Corpus::CremaD));
        assert_eq!(
            Corpus::parse("folder_per_label"),
            Some(Corpus::FolderPerLabel)
        );
        assert_eq!(Corpus::parse("timit"), None);
    }
}
