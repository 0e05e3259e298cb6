//! The HTML report: one self-contained page built from run folders.
//!
//! Everything it shows comes from the runs' `run.json` (see [`crate::runs`]): the typed
//! artifacts (tables rendered from their CSV, figures inlined as sanitised SVG, or PNG as a data
//! URI), their titles and two-line captions, the headline sentences, and the run record
//! (command, configuration, seed, version, commit, hashes, failures). A section per study kind
//! (descriptors, probing and transfer, FAD, continuous arousal/valence, fine-tuning) groups the
//! runs by their `study`; a study without a run is named with the command that adds it; a study
//! the report does not know is still rendered, generically, under "Other runs".
//!
//! The page loads nothing: a Content-Security-Policy forbids every network fetch, images are
//! inline, the plot font (the bundled DejaVu Sans subset) is a data URI, and there is no script.
//!
//! [`write_report`] also writes `summary.json` and `summary.md` beside the page with the same
//! headline numbers.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::runs::{load_runs, ArtifactView, LoadedRun};
use crate::table::format_significant;
use crate::{write_atomic, Result};

/// Failures listed per run in the run record; the rest are counted.
const MAX_FAILURE_ROWS: usize = 25;

/// Settings of the page; `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ReportConfig {
    /// The page's title. Default "emobridge report".
    pub title: String,
    /// Rows of a table shown in the page; the rest are counted in a note. Default 25.
    pub max_table_rows: usize,
    /// Above this size (bytes) an SVG is replaced by its PNG twin when there is one, so the page
    /// stays light. Default 2 000 000.
    pub max_inline_svg_bytes: u64,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            title: "emobridge report".into(),
            max_table_rows: 25,
            max_inline_svg_bytes: 2_000_000,
        }
    }
}

/// A study the report knows: where its runs go and how to add it when it is missing.
#[derive(Debug, Clone, Copy)]
pub struct StudyKind {
    pub id: &'static str,
    pub title: &'static str,
    /// What the study asks, in plain words.
    pub about: &'static str,
    /// The command that adds the study's run folder.
    pub add: &'static str,
}

/// The studies of the two papers, in the order the report shows them.
pub const STUDY_KINDS: [StudyKind; 5] = [
    StudyKind {
        id: "descriptors",
        title: "Acoustic descriptors",
        about: "How the hand-crafted eGeMAPS descriptors (pitch, loudness, spectral balance, \
                voice quality) differ between emotions in speech and in music.",
        add: "emobridge features --set egemaps --level functionals --manifest M --out features.csv",
    },
    StudyKind {
        id: "probe",
        title: "Layer-wise probing and cross-domain transfer",
        about: "How well a linear classifier recovers the emotion from each representation \
                (within a domain over speaker-independent folds), and how well one trained on \
                speech recognises music and the reverse. UA is the unweighted (per-class mean) \
                accuracy; chance is one over the number of emotions.",
        add: "emobridge probe --manifest M --cache CACHE --model TAG --out DIR",
    },
    StudyKind {
        id: "fad",
        title: "Per-emotion Fréchet audio distance (FAD)",
        about: "How far apart the speech and the music of each emotion sit in a representation: \
                the Fréchet distance between Gaussians fitted to their frames. Smaller is closer; \
                groups are subsampled to equal sizes so distances compare.",
        add: "emobridge fad --manifest M --cache CACHE --model TAG --out DIR",
    },
    StudyKind {
        id: "continuous",
        title: "Continuous arousal and valence",
        about: "How well arousal and valence are tracked over time (2 Hz) within a domain, across \
                domains directly, and across domains through a denoising autoencoder; Pearson r, \
                CCC and RMSE against the gold traces.",
        add: "emobridge continuous --manifest M --out DIR",
    },
    StudyKind {
        id: "finetune",
        title: "Two-stage fine-tuning",
        about: "Whether adapting an encoder on one domain first helps the other: frozen baseline, \
                weighted layer sum, full fine-tuning and parameter-efficient methods (LoRA, \
                adapters, BitFit) compared on the target domain.",
        add: "emobridge finetune --manifest M --model DIR_OR_ID --method lora --direction music-to-speech --out DIR",
    },
];

/// The one sentence shown when no run used a self-supervised encoder.
pub const ADD_ENCODER: &str = "No self-supervised encoder was run: add one with \
    `emobridge demo --model DIR_OR_ID` (a local HuggingFace model folder such as wav2vec2-base \
    or MERT-v1-95M, or its hub id ORG/NAME) to see probing and FAD layer by layer and a short \
    two-stage fine-tuning run.";

/// Which [`STUDY_KINDS`] entry a run's `study` belongs to (`None`: an unknown study).
pub fn kind_of(study: &str) -> Option<usize> {
    let s = study.to_ascii_lowercase();
    let id = if s.starts_with("descriptor") || s.starts_with("features") {
        "descriptors"
    } else if s.starts_with("separability") || s.starts_with("probe") || s.contains("transfer") {
        "probe"
    } else if s.starts_with("fad") {
        "fad"
    } else if s.starts_with("continuous") {
        "continuous"
    } else if s.starts_with("finetune") || s.starts_with("fine-tune") || s.starts_with("fine_tune")
    {
        "finetune"
    } else {
        return None;
    };
    STUDY_KINDS.iter().position(|k| k.id == id)
}

/// A run that only gathers other runs (the demo): its sub-runs become sections of their own.
fn is_container(run: &LoadedRun) -> bool {
    !run.children.is_empty() && (run.record.study == "demo" || run.record.artifacts.is_empty())
}

/// The runs laid out: those shown in study sections, and those listed in the run record.
struct Layout<'a> {
    /// (anchor id, run) for every run shown in a study section.
    shown: Vec<(String, &'a LoadedRun)>,
    /// Every run of the record section (containers and shown runs), in reading order.
    recorded: Vec<&'a LoadedRun>,
}

fn layout(runs: &[LoadedRun]) -> Layout<'_> {
    fn walk<'a>(run: &'a LoadedRun, out: &mut Layout<'a>, ids: &mut BTreeSet<String>) {
        out.recorded.push(run);
        if is_container(run) {
            for c in &run.children {
                walk(c, out, ids);
            }
        } else {
            let base = format!("run-{}", slug(&run.name()));
            let mut id = base.clone();
            let mut n = 2;
            while !ids.insert(id.clone()) {
                id = format!("{base}-{n}");
                n += 1;
            }
            out.shown.push((id, run));
        }
    }
    let mut out = Layout {
        shown: Vec::new(),
        recorded: Vec::new(),
    };
    let mut ids = BTreeSet::new();
    for r in runs {
        walk(r, &mut out, &mut ids);
    }
    out
}

/// Whether any run used a self-supervised encoder: model weights hashed, a layer-wise study, a
/// model in the configuration, or an input that is not a hand-crafted descriptor set.
fn has_encoder(runs: &[LoadedRun]) -> bool {
    runs.iter().flat_map(LoadedRun::flatten).any(|r| {
        let descriptor_input = |label: &str| {
            let l = label.to_ascii_lowercase();
            l.starts_with("egemaps") || l.starts_with("compare")
        };
        r.record.hashes.contains_key("model_weights")
            || r.record.study.ends_with("by-layer")
            || r.record.config.get("model").is_some_and(|m| !m.is_null())
            || (kind_of(&r.record.study).is_some_and(|k| STUDY_KINDS[k].id != "descriptors")
                && r.input_label().is_some_and(|l| !descriptor_input(&l)))
    })
}

/// What [`write_report`] wrote.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    pub html: PathBuf,
    pub summary_json: PathBuf,
    pub summary_md: PathBuf,
    /// Runs shown in study sections.
    pub runs: usize,
    pub headlines: usize,
}

/// Reads the run folders and writes `out` (the page) with `summary.json` and `summary.md`
/// beside it, with the default [`ReportConfig`].
pub fn write_report(dirs: &[PathBuf], out: &Path) -> Result<ReportFiles> {
    write_report_with(&ReportConfig::default(), dirs, out)
}

/// [`write_report`] with explicit settings; refuses a zero row limit.
pub fn write_report_with(
    config: &ReportConfig,
    dirs: &[PathBuf],
    out: &Path,
) -> Result<ReportFiles> {
    if config.max_table_rows == 0 {
        return Err(crate::InputError::NoTableRows.into());
    }
    let runs = load_runs(dirs)?;
    let base = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let html = render_with(config, &runs, base);
    write_atomic(out, html.as_bytes())?;
    let summary_json = out.with_file_name("summary.json");
    let summary_md = out.with_file_name("summary.md");
    let summary = summary(&runs, base);
    let text = serde_json::to_string_pretty(&summary).expect("JSON values serialise");
    write_atomic(&summary_json, format!("{text}\n").as_bytes())?;
    write_atomic(&summary_md, summary_markdown(&runs, base).as_bytes())?;
    let l = layout(&runs);
    Ok(ReportFiles {
        html: out.to_path_buf(),
        summary_json,
        summary_md,
        runs: l.shown.len(),
        headlines: l.shown.iter().map(|(_, r)| r.record.headlines.len()).sum(),
    })
}

/// The page for `runs`; links to files are relative to `base` (the page's folder).
pub fn render(runs: &[LoadedRun], base: &Path) -> String {
    render_with(&ReportConfig::default(), runs, base)
}

/// [`render`] with explicit settings.
pub fn render_with(config: &ReportConfig, runs: &[LoadedRun], base: &Path) -> String {
    let l = layout(runs);
    let max_rows = config.max_table_rows.max(1);
    let mut ctx = Ctx {
        figures: 0,
        base,
        max_rows,
        max_svg: config.max_inline_svg_bytes,
    };
    let mut body = String::new();
    let encoder = has_encoder(runs);

    // Overview and key findings.
    let studies: BTreeSet<&str> = l
        .shown
        .iter()
        .map(|(_, r)| r.record.study.as_str())
        .collect();
    let _ = write!(
        body,
        "<header><h1>{}</h1><p class=\"lede\">{} run folder{} ({}), built by emobridge {}{}.</p></header>\n",
        esc(&config.title),
        l.shown.len(),
        if l.shown.len() == 1 { "" } else { "s" },
        esc(&studies.into_iter().collect::<Vec<_>>().join(", ")),
        esc(env!("CARGO_PKG_VERSION")),
        runs.first()
            .and_then(|r| r.record.started_unix_s)
            .map(|t| format!(" from runs started {}", utc(t)))
            .unwrap_or_default()
    );
    body.push_str("<nav aria-label=\"Contents\"><ol>");
    body.push_str("<li><a href=\"#findings\">Key findings</a></li>");
    for k in &STUDY_KINDS {
        let _ = write!(body, "<li><a href=\"#{}\">{}</a></li>", k.id, esc(k.title));
    }
    if l.shown
        .iter()
        .any(|(_, r)| kind_of(&r.record.study).is_none())
    {
        body.push_str("<li><a href=\"#other\">Other runs</a></li>");
    }
    body.push_str("<li><a href=\"#record\">Run record</a></li></ol></nav>\n");

    body.push_str("<section id=\"findings\"><h2>Key findings</h2>\n");
    let mut any = false;
    // Grouped by study, in the order of the sections below.
    let group_of = |r: &LoadedRun| kind_of(&r.record.study).unwrap_or(STUDY_KINDS.len());
    for group in 0..=STUDY_KINDS.len() {
        let items: Vec<String> = l
            .shown
            .iter()
            .filter(|(_, r)| group_of(r) == group)
            .flat_map(|(id, run)| {
                run.record.headlines.iter().map(move |h| {
                    format!(
                        "<li>{} <a class=\"src\" href=\"#{id}\">{}</a></li>",
                        inline_text(&h.text),
                        esc(&run.name())
                    )
                })
            })
            .collect();
        if items.is_empty() {
            continue;
        }
        any = true;
        let title = STUDY_KINDS.get(group).map_or("Other runs", |k| k.title);
        let _ = write!(
            body,
            "<h3 class=\"group\">{}</h3><ul class=\"findings\">{}</ul>\n",
            esc(title),
            items.concat()
        );
    }
    if !any {
        body.push_str(
            "<p>None of these runs states headline numbers; their tables and figures follow.</p>\n",
        );
    }
    if !encoder {
        let _ = writeln!(body, "<p class=\"hint\">{}</p>", inline_text(ADD_ENCODER));
    }
    body.push_str("</section>\n");

    // One section per study kind.
    for (k_index, k) in STUDY_KINDS.iter().enumerate() {
        let members: Vec<&(String, &LoadedRun)> = l
            .shown
            .iter()
            .filter(|(_, r)| kind_of(&r.record.study) == Some(k_index))
            .collect();
        let _ = write!(
            body,
            "<section id=\"{}\" class=\"study\"><h2>{}</h2>\n<p class=\"about\">{}</p>\n",
            k.id,
            esc(k.title),
            esc(k.about)
        );
        if members.is_empty() {
            let _ = writeln!(
                body,
                "<p class=\"absent\">Not in these runs. Add it with <code>{}</code> and pass its folder to <code>emobridge report</code>.</p>",
                esc(k.add)
            );
        }
        if (k.id == "probe" || k.id == "fad") && !encoder {
            let _ = writeln!(body, "<p class=\"hint\">{}</p>", inline_text(ADD_ENCODER));
        }
        for (id, run) in members {
            run_article(&mut body, &mut ctx, id, run);
        }
        body.push_str("</section>\n");
    }
    let others: Vec<&(String, &LoadedRun)> = l
        .shown
        .iter()
        .filter(|(_, r)| kind_of(&r.record.study).is_none())
        .collect();
    if !others.is_empty() {
        body.push_str("<section id=\"other\" class=\"study\"><h2>Other runs</h2>\n<p class=\"about\">Runs of studies this report has no section for, rendered from their run records.</p>\n");
        for (id, run) in others {
            run_article(&mut body, &mut ctx, id, run);
        }
        body.push_str("</section>\n");
    }

    // The run record.
    body.push_str("<section id=\"record\"><h2>Run record</h2>\n<p class=\"about\">What ran, with which settings and inputs: enough to repeat every number above. Hashes are SHA-256 of the inputs.</p>\n");
    for run in &l.recorded {
        record_article(&mut body, run, base);
    }
    body.push_str("</section>\n");

    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; font-src data:; style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"emobridge {}\">\n<title>{}</title>\n<style>\n{}\n</style>\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n",
        esc(env!("CARGO_PKG_VERSION")),
        esc(&config.title),
        style()
    )
}

struct Ctx<'a> {
    /// Figures inlined so far (a prefix that keeps every SVG's ids unique in the page).
    figures: usize,
    base: &'a Path,
    max_rows: usize,
    max_svg: u64,
}

fn run_article(body: &mut String, ctx: &mut Ctx<'_>, id: &str, run: &LoadedRun) {
    let r = &run.record;
    let _ = write!(
        body,
        "<article class=\"run\" id=\"{id}\"><h3>{}<span class=\"sub\"> · {}{}</span></h3>\n",
        esc(&run.name()),
        esc(if r.study.is_empty() {
            "unnamed study"
        } else {
            &r.study
        }),
        run.input_label()
            .map(|i| format!(" on {}", esc(&i)))
            .unwrap_or_default()
    );
    if !r.headlines.is_empty() {
        body.push_str("<ul class=\"headlines\">");
        for h in &r.headlines {
            let _ = write!(body, "<li>{}</li>", inline_text(&h.text));
        }
        body.push_str("</ul>\n");
    }
    let shown: Vec<&ArtifactView> = r
        .artifacts
        .iter()
        .filter(|a| a.kind == "figure" || a.kind == "table")
        .collect();
    if shown.is_empty() {
        fallback_artifacts(body, ctx, run);
    }
    // Consecutive figures share a grid (two columns where the page is wide enough).
    let mut in_grid = false;
    for a in &shown {
        let is_figure = a.kind == "figure";
        if is_figure && !in_grid {
            body.push_str("<div class=\"figs\">\n");
            in_grid = true;
        } else if !is_figure && in_grid {
            body.push_str("</div>\n");
            in_grid = false;
        }
        if is_figure {
            figure(body, ctx, run, a);
        } else {
            table(body, ctx, run, a);
        }
    }
    if in_grid {
        body.push_str("</div>\n");
    }
    let data: Vec<&ArtifactView> = r
        .artifacts
        .iter()
        .filter(|a| a.kind != "figure" && a.kind != "table")
        .collect();
    if !data.is_empty() {
        body.push_str("<p class=\"files\">Also in the folder: ");
        let items: Vec<String> = data
            .iter()
            .map(|a| {
                let label = if a.title.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", esc(&a.title))
                };
                format!(
                    "{}{label}",
                    file_link(ctx.base, &run.path(&a.path), &a.path)
                )
            })
            .collect();
        body.push_str(&items.join(", "));
        body.push_str(".</p>\n");
    }
    if !r.failures.is_empty() {
        let _ = writeln!(
            body,
            "<p class=\"warn\">{} item{} skipped (listed in the <a href=\"#record\">run record</a>).</p>",
            r.failures.len(),
            if r.failures.len() == 1 { " was" } else { "s were" }
        );
    }
    body.push_str("</article>\n");
}

/// A run without typed artifacts (an older run.json): its plots and first tables by file name.
fn fallback_artifacts(body: &mut String, ctx: &mut Ctx<'_>, run: &LoadedRun) {
    let outputs: Vec<String> = run
        .record
        .outputs
        .iter()
        .filter(|o| inside_run(o))
        .cloned()
        .collect();
    let outputs = &outputs;
    let svgs: Vec<&String> = outputs.iter().filter(|o| o.ends_with(".svg")).collect();
    let pngs: Vec<&String> = outputs
        .iter()
        .filter(|o| o.ends_with(".png") && !outputs.contains(&o.replace(".png", ".svg")))
        .collect();
    let csvs: Vec<&String> = outputs.iter().filter(|o| o.ends_with(".csv")).collect();
    if svgs.is_empty() && pngs.is_empty() && csvs.is_empty() {
        body.push_str("<p class=\"absent\">This run lists no tables or figures.</p>\n");
        return;
    }
    body.push_str("<p class=\"note\">This run's record names no titled artifacts; its first figures and tables are shown by file name.</p>\n");
    let untitled = |p: &str| ArtifactView {
        kind: String::new(),
        path: p.to_string(),
        title: p.to_string(),
        caption: String::new(),
    };
    for p in svgs.iter().chain(&pngs).take(6) {
        figure(body, ctx, run, &untitled(p));
    }
    for p in csvs.iter().take(4) {
        table(body, ctx, run, &untitled(p));
    }
}

fn caption_html(a: &ArtifactView) -> String {
    let mut out = format!("<strong>{}</strong>", esc(&a.title));
    for line in a.caption.lines().filter(|l| !l.trim().is_empty()) {
        let _ = write!(out, "<br>{}", inline_text(line.trim()));
    }
    out
}

/// An artifact path a report may read: relative and inside its run folder.
fn inside_run(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty()
        && p.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        })
}

fn outside_note(body: &mut String, a: &ArtifactView) {
    let _ = writeln!(
        body,
        "<p class=\"missing\">“{}” is not shown: its path <code>{}</code> leaves the run folder.</p>",
        esc(&a.title),
        esc(&a.path)
    );
}

fn figure(body: &mut String, ctx: &mut Ctx<'_>, run: &LoadedRun, a: &ArtifactView) {
    if !inside_run(&a.path) {
        return outside_note(body, a);
    }
    let path = run.path(&a.path);
    let png = path.with_extension("png");
    let is_svg = a.path.ends_with(".svg");
    let svg_size = if is_svg {
        std::fs::metadata(&path).ok().map(|m| m.len())
    } else {
        None
    };
    let inner = match svg_size {
        Some(n) if n <= ctx.max_svg || !png.is_file() => {
            std::fs::read_to_string(&path).ok().map(|text| {
                ctx.figures += 1;
                sanitize_svg(&text, &format!("f{}", ctx.figures), &a.title)
            })
        }
        _ => {
            let png_path = if is_svg { png.clone() } else { path.clone() };
            std::fs::read(&png_path)
                .ok()
                .filter(|b| b.starts_with(b"\x89PNG"))
                .map(|bytes| {
                    format!(
                        "<img class=\"plot\" alt=\"{}\" src=\"data:image/png;base64,{}\">",
                        esc(&a.title),
                        base64(&bytes)
                    )
                })
        }
    };
    // Plots wider than a grid column take the whole row.
    let natural_width = inner.as_deref().and_then(svg_width).unwrap_or(0.0);
    let class = if natural_width > 700.0 || inner.as_deref().is_some_and(|i| i.starts_with("<img"))
    {
        " class=\"wide\""
    } else {
        ""
    };
    match inner {
        Some(inner) => {
            let twin = if is_svg && png.is_file() {
                format!(
                    " <span class=\"files\">({} · {})</span>",
                    file_link(ctx.base, &path, "SVG"),
                    file_link(ctx.base, &png, "PNG")
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                body,
                "<figure{class}>{inner}<figcaption>{}{twin}</figcaption></figure>",
                caption_html(a)
            );
        }
        None => {
            let _ = writeln!(
                body,
                "<p class=\"missing\">Figure “{}” is listed in the run record but <code>{}</code> cannot be read.</p>",
                esc(&a.title),
                esc(&path.display().to_string())
            );
        }
    }
}

fn table(body: &mut String, ctx: &mut Ctx<'_>, run: &LoadedRun, a: &ArtifactView) {
    if !inside_run(&a.path) {
        return outside_note(body, a);
    }
    let path = run.path(&a.path);
    let parsed = if a.path.ends_with(".csv") {
        read_csv(&path)
    } else {
        Err(format!("{} is not a CSV table", a.path))
    };
    let (header, rows) = match parsed {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(
                body,
                "<p class=\"missing\">Table “{}” cannot be shown: {}.</p>",
                esc(&a.title),
                esc(&e)
            );
            return;
        }
    };
    let numeric: Vec<bool> = (0..header.len())
        .map(|c| {
            let mut cells = rows
                .iter()
                .filter_map(|r| r.get(c))
                .filter(|s| !s.is_empty());
            let first = cells.next();
            first.is_some_and(|s| s.parse::<f64>().is_ok())
                && cells.all(|s| s.parse::<f64>().is_ok())
        })
        .collect();
    let _ = write!(
        body,
        "<figure class=\"table\"><figcaption>{}</figcaption><div class=\"table-wrap\"><table><thead><tr>",
        caption_html(a)
    );
    for (c, h) in header.iter().enumerate() {
        let class = if numeric[c] { " class=\"num\"" } else { "" };
        let _ = write!(body, "<th{class}>{}</th>", esc(h));
    }
    body.push_str("</tr></thead><tbody>");
    let max_rows = ctx.max_rows;
    for row in rows.iter().take(max_rows) {
        body.push_str("<tr>");
        for c in 0..header.len() {
            let cell = row.get(c).map(String::as_str).unwrap_or("");
            if numeric[c] {
                let _ = write!(body, "<td class=\"num\">{}</td>", esc(&format_number(cell)));
            } else {
                let _ = write!(body, "<td>{}</td>", esc(cell));
            }
        }
        body.push_str("</tr>");
    }
    body.push_str("</tbody></table></div>");
    let link = file_link(ctx.base, &path, &a.path);
    if rows.len() > max_rows {
        let _ = write!(
            body,
            "<p class=\"note\">Showing the first {max_rows} of {} rows; the full table is {link}.</p>",
            rows.len()
        );
    } else if rows.is_empty() {
        body.push_str("<p class=\"note\">The table has no rows.</p>");
    } else {
        let _ = write!(body, "<p class=\"note\">Full precision: {link}.</p>");
    }
    body.push_str("</figure>\n");
}

type CsvTable = (Vec<String>, Vec<Vec<String>>);

fn read_csv(path: &Path) -> std::result::Result<CsvTable, String> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .iter()
        .map(str::to_string)
        .collect();
    if header.is_empty() {
        return Err(format!("{}: no header row", path.display()));
    }
    let mut rows = Vec::new();
    for rec in reader.records() {
        let rec = rec.map_err(|e| format!("{}: {e}", path.display()))?;
        rows.push(rec.iter().map(str::to_string).collect());
    }
    Ok((header, rows))
}

/// A CSV number as the page shows it: integers as they are, other values to 3 significant
/// digits.
pub fn format_number(cell: &str) -> String {
    if cell.is_empty() || cell.parse::<i64>().is_ok() {
        return cell.to_string();
    }
    match cell.parse::<f64>() {
        Ok(v) if v.is_finite() => format_significant(v, 3),
        _ => cell.to_string(),
    }
}

fn record_article(body: &mut String, run: &LoadedRun, base: &Path) {
    let r = &run.record;
    let _ = write!(
        body,
        "<article class=\"record\"><h3>{} <span class=\"sub\">· {}</span></h3><dl>",
        esc(&run.name()),
        esc(if r.study.is_empty() {
            "unnamed study"
        } else {
            &r.study
        })
    );
    let mut item = |k: &str, v: String| {
        let _ = write!(body, "<dt>{}</dt><dd>{v}</dd>", esc(k));
    };
    item(
        "folder",
        file_link(base, &run.dir, &run.dir.display().to_string()),
    );
    if !r.command.is_empty() {
        item("command", format!("<code>{}</code>", esc(&r.command)));
    }
    if !r.seed.is_null() {
        item("seed", esc(&scalar_text(&r.seed)));
    }
    if !r.crate_version.is_empty() {
        item("version", format!("emobridge {}", esc(&r.crate_version)));
    }
    item(
        "git commit",
        r.git_commit
            .as_deref()
            .map(|c| format!("<code>{}</code>", esc(c)))
            .unwrap_or_else(|| "not recorded".into()),
    );
    if let Some(t) = r.started_unix_s {
        item("started", esc(&utc(t)));
    }
    if let Some(s) = r.elapsed_s {
        item("elapsed", format!("{s:.1} s"));
    }
    for (k, v) in &r.hashes {
        item(
            &format!("{k} hash"),
            format!("<code>{}</code>", esc(&scalar_text(v))),
        );
    }
    item(
        "failures",
        if r.failures.is_empty() {
            "none".into()
        } else {
            format!("{}", r.failures.len())
        },
    );
    body.push_str("</dl>");
    if !r.failures.is_empty() {
        body.push_str("<div class=\"table-wrap\"><table><thead><tr><th>item</th><th>file</th><th>reason</th></tr></thead><tbody>");
        for f in r.failures.iter().take(MAX_FAILURE_ROWS) {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&f.item),
                esc(&f.path),
                esc(&f.reason)
            );
        }
        body.push_str("</tbody></table></div>");
        if r.failures.len() > MAX_FAILURE_ROWS {
            let _ = write!(
                body,
                "<p class=\"note\">Showing {MAX_FAILURE_ROWS} of {} failures; all are in <code>run.json</code>.</p>",
                r.failures.len()
            );
        }
    }
    for m in &run.missing_children {
        let _ = write!(
            body,
            "<p class=\"warn\">Sub-run not readable: {}</p>",
            esc(m)
        );
    }
    if !r.config.is_null() {
        let _ = write!(
            body,
            "<details><summary>configuration</summary><pre>{}</pre></details>",
            esc(&serde_json::to_string_pretty(&r.config).unwrap_or_default())
        );
    }
    if !r.notes.is_empty() {
        let _ = write!(
            body,
            "<details><summary>notes</summary><pre>{}</pre></details>",
            esc(&serde_json::to_string_pretty(&r.notes).unwrap_or_default())
        );
    }
    body.push_str("</article>\n");
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The machine-readable twin of the page: every shown run's headlines.
pub fn summary(runs: &[LoadedRun], base: &Path) -> Value {
    let l = layout(runs);
    let mut flat = serde_json::Map::new();
    let list: Vec<Value> = l
        .shown
        .iter()
        .map(|(_, run)| {
            for h in &run.record.headlines {
                flat.insert(format!("{}/{}", run.name(), h.key), h.value.clone());
            }
            json!({
                "name": run.name(),
                "study": run.record.study,
                "input": run.input_label(),
                "folder": relative_or_full(base, &run.dir),
                "headlines": run.record.headlines.iter().map(|h| json!({
                    "key": h.key, "value": h.value, "text": h.text,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let missing: Vec<Value> = STUDY_KINDS
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            !l.shown
                .iter()
                .any(|(_, r)| kind_of(&r.record.study) == Some(*i))
        })
        .map(|(_, k)| json!({ "study": k.id, "add_with": k.add }))
        .collect();
    json!({
        "generator": format!("emobridge {}", env!("CARGO_PKG_VERSION")),
        "report": "report.html",
        "headlines": flat,
        "runs": list,
        "studies_not_run": missing,
        "encoder": has_encoder(runs),
    })
}

/// `summary.md`: the headline sentences by run, with their keys and values.
pub fn summary_markdown(runs: &[LoadedRun], base: &Path) -> String {
    let l = layout(runs);
    let mut out = String::from(
        "# emobridge summary\n\nThe headline numbers of `report.html` (also in `summary.json`).\n",
    );
    for (_, run) in &l.shown {
        let _ = write!(
            out,
            "\n## {} ({}{})\n\nFolder: `{}`\n\n",
            run.name(),
            run.record.study,
            run.input_label()
                .map(|i| format!(" on {i}"))
                .unwrap_or_default(),
            relative_or_full(base, &run.dir)
        );
        if run.record.headlines.is_empty() {
            out.push_str("No headline numbers recorded.\n");
        }
        for h in &run.record.headlines {
            let _ = writeln!(out, "- {} (`{}` = {})", h.text, h.key, h.value);
        }
    }
    if !has_encoder(runs) {
        let _ = writeln!(out, "\n{ADD_ENCODER}");
    }
    out
}

fn relative_or_full(base: &Path, path: &Path) -> String {
    path.strip_prefix(base)
        .ok()
        .map(|p| {
            let s = p.display().to_string();
            if s.is_empty() {
                ".".to_string()
            } else {
                s
            }
        })
        .unwrap_or_else(|| path.display().to_string())
}

/// A link to a file when it sits under the page's folder, else its path as code.
fn file_link(base: &Path, path: &Path, label: &str) -> String {
    match path.strip_prefix(base) {
        Ok(rel) if !rel.as_os_str().is_empty() => {
            format!("<a href=\"{}\">{}</a>", esc(&url_path(rel)), esc(label))
        }
        _ => format!("<code>{}</code>", esc(label)),
    }
}

fn url_path(rel: &Path) -> String {
    rel.components()
        .map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    other => format!("%{other:02X}"),
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// HTML-escapes text.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escaped text with `code spans` in backticks rendered as code.
fn inline_text(s: &str) -> String {
    let parts: Vec<&str> = s.split('`').collect();
    if parts.len() % 2 == 0 {
        return esc(s); // an unpaired backtick: plain text
    }
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if i % 2 == 1 {
                format!("<code>{}</code>", esc(p))
            } else {
                esc(p)
            }
        })
        .collect()
}

fn slug(s: &str) -> String {
    let mut out = String::new();
    for ch in s.chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        "run".into()
    } else {
        out
    }
}

/// `YYYY-MM-DD HH:MM UTC` from Unix seconds.
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// An SVG document made safe and unique for inlining: no prolog, comments, scripts, styles,
/// foreign objects, event handlers or references outside the document; every `id` (and every
/// `#id` / `url(#id)` reference) prefixed with `prefix`; the root sized by CSS (its viewBox kept
/// or made from its width and height) and labelled with `title`.
pub fn sanitize_svg(svg: &str, prefix: &str, title: &str) -> String {
    let mut out = String::with_capacity(svg.len());
    let mut rest = svg;
    let mut skip_depth: Option<(String, usize)> = None;
    let mut root_done = false;
    while let Some(lt) = rest.find('<') {
        if skip_depth.is_none() {
            out.push_str(&rest[..lt]);
        }
        rest = &rest[lt..];
        let (end, kind) = if rest.starts_with("<!--") {
            (rest.find("-->").map(|i| i + 3), 0)
        } else if rest.starts_with("<![CDATA[") {
            (rest.find("]]>").map(|i| i + 3), 0)
        } else if rest.starts_with("<?") {
            (rest.find("?>").map(|i| i + 2), 0)
        } else if rest.starts_with("<!") {
            (rest.find('>').map(|i| i + 1), 0)
        } else {
            (tag_end(rest), 1)
        };
        let Some(end) = end else {
            rest = "";
            break;
        };
        let raw = &rest[..end];
        rest = &rest[end..];
        if kind == 0 {
            continue;
        }
        let tag = parse_tag(raw);
        let name = tag.name.to_ascii_lowercase();
        if let Some((skip, depth)) = &mut skip_depth {
            if name == *skip {
                if tag.closing {
                    *depth -= 1;
                } else if !tag.self_closing {
                    *depth += 1;
                }
                if *depth == 0 {
                    skip_depth = None;
                }
            }
            continue;
        }
        if matches!(
            name.as_str(),
            "script" | "style" | "foreignobject" | "iframe" | "object" | "embed"
        ) {
            if !tag.closing && !tag.self_closing {
                skip_depth = Some((name, 1));
            }
            continue;
        }
        if tag.closing {
            let _ = write!(out, "</{}>", tag.name);
            continue;
        }
        let is_root = name == "svg" && !root_done;
        let mut attrs: Vec<(String, String)> = Vec::new();
        let (mut width, mut height, mut has_viewbox) = (None, None, false);
        for (k, v) in tag.attrs {
            let key = k.to_ascii_lowercase();
            if key.starts_with("on") || key == "xml:base" {
                continue;
            }
            if key == "href" || key == "xlink:href" || key == "src" {
                if let Some(id) = v.strip_prefix('#') {
                    attrs.push((k, format!("#{prefix}-{id}")));
                } else if v.starts_with("data:image/png") || v.starts_with("data:image/jpeg") {
                    attrs.push((k, v));
                }
                continue;
            }
            if key == "id" {
                attrs.push((k, format!("{prefix}-{v}")));
                continue;
            }
            let lower = v.to_ascii_lowercase();
            if lower.contains("javascript:") || lower.contains("@import") {
                continue;
            }
            let v = if lower.contains("url(") {
                match rewrite_urls(&v, prefix) {
                    Some(v) => v,
                    None => continue,
                }
            } else {
                v
            };
            if is_root {
                match key.as_str() {
                    "width" => {
                        width = Some(v);
                        continue;
                    }
                    "height" => {
                        height = Some(v);
                        continue;
                    }
                    "viewbox" => has_viewbox = true,
                    "class" | "role" | "aria-label" => continue,
                    _ => {}
                }
            }
            attrs.push((k, v));
        }
        if is_root {
            root_done = true;
            let number = |v: &Option<String>| {
                v.as_deref()
                    .map(|s| s.trim_end_matches("px"))
                    .and_then(|s| s.parse::<f64>().ok())
            };
            if !has_viewbox {
                if let (Some(w), Some(h)) = (number(&width), number(&height)) {
                    attrs.push(("viewBox".into(), format!("0 0 {w} {h}")));
                }
            }
            if let Some(w) = number(&width) {
                // The natural width as a ceiling; CSS scales it down to the column.
                attrs.push(("style".into(), format!("max-width:{w}px")));
            }
            attrs.push(("class".into(), "plot".into()));
            attrs.push(("role".into(), "img".into()));
            attrs.push(("aria-label".into(), title.to_string()));
        }
        let _ = write!(out, "<{}", tag.name);
        for (k, v) in attrs {
            let _ = write!(out, " {k}=\"{}\"", attr_escape(&v));
        }
        out.push_str(if tag.self_closing { "/>" } else { ">" });
    }
    if skip_depth.is_none() {
        out.push_str(rest);
    }
    out.trim().to_string()
}

/// The natural width of an inlined plot (its `max-width` as [`sanitize_svg`] writes it).
fn svg_width(svg: &str) -> Option<f64> {
    let at = svg.find("max-width:")? + "max-width:".len();
    let rest = &svg[at..];
    let end = rest.find("px")?;
    rest[..end].trim().parse().ok()
}

/// Rewrites `url(#id)` to the prefixed id; `None` when any `url(...)` points outside.
fn rewrite_urls(v: &str, prefix: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = v;
    while let Some(i) = rest.to_ascii_lowercase().find("url(") {
        out.push_str(&rest[..i + 4]);
        rest = &rest[i + 4..];
        let inner = rest.trim_start_matches(['\'', '"', ' ']);
        let id = inner.strip_prefix('#')?;
        out.push_str(&format!("#{prefix}-"));
        rest = id;
    }
    out.push_str(rest);
    Some(out)
}

fn attr_escape(v: &str) -> String {
    // Values arrive as written in the source (entities kept); only a bare quote or `<` needs care.
    v.replace('"', "&quot;").replace('<', "&lt;")
}

/// Index just past the `>` that ends the tag at the start of `s`, honouring quoted values.
fn tag_end(s: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, ch) in s.char_indices().skip(1) {
        match quote {
            Some(q) if ch == q => quote = None,
            Some(_) => {}
            None if ch == '"' || ch == '\'' => quote = Some(ch),
            None if ch == '>' => return Some(i + 1),
            None => {}
        }
    }
    None
}

struct Tag {
    name: String,
    closing: bool,
    self_closing: bool,
    attrs: Vec<(String, String)>,
}

fn parse_tag(raw: &str) -> Tag {
    let inner = raw.trim_start_matches('<').trim_end_matches('>');
    let closing = inner.starts_with('/');
    let inner = inner.trim_start_matches('/');
    let self_closing = inner.trim_end().ends_with('/');
    let inner = inner.trim_end().trim_end_matches('/');
    let name_end = inner
        .find(|c: char| c.is_whitespace())
        .unwrap_or(inner.len());
    let name = inner[..name_end].to_string();
    let mut attrs = Vec::new();
    let chars: Vec<char> = inner[name_end..].chars().collect();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '=' {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < chars.len() && chars[i] == '=' {
            i += 1;
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            if i < chars.len() && (chars[i] == '"' || chars[i] == '\'') {
                let q = chars[i];
                i += 1;
                let s = i;
                while i < chars.len() && chars[i] != q {
                    i += 1;
                }
                value = chars[s..i].iter().collect();
                i += 1;
            } else {
                let s = i;
                while i < chars.len() && !chars[i].is_whitespace() {
                    i += 1;
                }
                value = chars[s..i].iter().collect();
            }
        }
        if !key.is_empty() {
            attrs.push((key, value));
        }
    }
    Tag {
        name,
        closing,
        self_closing,
        attrs,
    }
}

fn style() -> String {
    static FONT: &[u8] = include_bytes!("../fonts/DejaVuSans-subset.ttf");
    format!(
        "@font-face {{ font-family: 'EmobridgePlot'; src: url(data:font/ttf;base64,{}) format('truetype'); }}\n{}",
        base64(FONT),
        r#"
*, *::before, *::after { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: #fff; color: #1a1a1a; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 20px 64px; }
h1 { font-size: 1.9rem; margin: 0 0 4px; }
h2 { font-size: 1.45rem; margin: 40px 0 8px; padding-top: 8px; border-top: 2px solid #222; }
h3 { font-size: 1.15rem; margin: 28px 0 8px; }
.sub { font-weight: normal; color: #555; }
.lede { color: #444; margin: 0 0 12px; }
nav ol { display: flex; flex-wrap: wrap; gap: 4px 18px; padding: 0; margin: 8px 0 0; list-style: none; }
nav a { color: #1a1a1a; }
a { color: #0b4f8a; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 0.88em; background: #f2f2f2; padding: 0 3px; border-radius: 3px; overflow-wrap: anywhere; }
.about { color: #333; max-width: 72ch; }
.hint { border-left: 4px solid #555; background: #f4f4f4; padding: 8px 12px; }
.absent { color: #555; font-style: italic; }
.warn, .missing { border-left: 4px solid #000; background: #eee; padding: 6px 10px; }
.findings li, .headlines li { margin: 2px 0; }
h3.group { font-size: 1rem; margin: 14px 0 2px; color: #333; }
.findings { margin-top: 2px; }
.headlines { background: #f7f7f7; border-left: 4px solid #999; padding: 8px 12px 8px 30px; }
a.src { font-size: 0.85em; color: #555; }
figure { margin: 18px 0 26px; min-width: 0; }
.figs { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 460px), 1fr)); gap: 0 28px; align-items: start; }
.figs figure.wide { grid-column: 1 / -1; }
figure svg.plot, figure img.plot { display: block; width: 100%; height: auto; border: 1px solid #ddd; }
svg.plot text { font-family: 'EmobridgePlot', "DejaVu Sans", sans-serif; }
figcaption { margin-top: 6px; font-size: 0.93rem; color: #222; max-width: 80ch; }
figure.table figcaption { margin: 0 0 6px; }
.files { font-size: 0.85em; color: #555; }
.note { font-size: 0.85em; color: #555; margin: 4px 0 0; }
.table-wrap { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 0.88rem; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: left; white-space: nowrap; }
th { border-bottom: 2px solid #444; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafafa; }
dl { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 2px 14px; margin: 8px 0; font-size: 0.92rem; }
dt { color: #555; }
dd { margin: 0; overflow-wrap: anywhere; min-width: 0; }
details { margin: 6px 0; }
summary { cursor: pointer; color: #333; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f6f6f6; padding: 8px; font-size: 0.8rem; max-height: 360px; overflow-y: auto; }
@media print { h2 { break-before: page; } figure { break-inside: avoid; } }
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded);
        }
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_798_761_599), "2026-12-31 23:59 UTC");
    }

    #[test]
    fn svg_is_sanitised_and_ids_are_prefixed() {
        let svg = r##"<?xml version="1.0"?><!DOCTYPE svg><!-- c --><svg width="300" height="200" xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><defs><linearGradient id="g"/></defs><script>alert(2)</script><style>@import url(http://x/y.css);</style><rect fill="url(#g)" width="10" height="10"/><image href="http://example.com/a.png"/><use xlink:href="#g"/><a href="javascript:alert(3)"><text x="1" y="2" onclick="x()">a &lt; b</text></a><foreignObject><div>x</div></foreignObject></svg>"##;
        let out = sanitize_svg(svg, "f3", "A \"plot\"");
        for bad in [
            "<?xml",
            "DOCTYPE",
            "<!--",
            "onload",
            "onclick",
            "script",
            "alert",
            "@import",
            "http://example.com",
            "javascript",
            "foreignObject",
        ] {
            assert!(!out.contains(bad), "{bad} survived: {out}");
        }
        assert!(out.starts_with("<svg"), "{out}");
        assert!(out.contains("id=\"f3-g\""), "{out}");
        assert!(out.contains("url(#f3-g)"), "{out}");
        assert!(out.contains("xlink:href=\"#f3-g\""), "{out}");
        assert!(out.contains("viewBox=\"0 0 300 200\""), "{out}");
        assert!(out.contains("aria-label=\"A &quot;plot&quot;\""), "{out}");
        assert!(out.contains("a &lt; b"), "{out}");
        assert!(!out.contains("width=\"300\""), "{out}");
    }

    #[test]
    fn numbers_are_shortened_but_integers_kept() {
        assert_eq!(format_number("0.166666666"), "0.167");
        assert_eq!(format_number("12"), "12");
        assert_eq!(format_number("1234.5678"), "1235");
        assert_eq!(format_number("happy"), "happy");
        assert_eq!(format_number(""), "");
    }

    #[test]
    fn study_kinds() {
        assert_eq!(kind_of("separability-by-layer"), Some(1));
        assert_eq!(kind_of("fad"), Some(2));
        assert_eq!(kind_of("continuous"), Some(3));
        assert_eq!(kind_of("finetune"), Some(4));
        assert_eq!(kind_of("descriptors"), Some(0));
        assert_eq!(kind_of("something-new"), None);
    }

    /// A demo-like folder: a container run with a probe sub-run (figure, long table, headline)
    /// and a run of a study the report does not know, with an extra field in its record.
    fn sample_runs(dir: &Path) -> Vec<PathBuf> {
        let write = |rel: &str, text: &str| {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write(
            "demo/run.json",
            r#"{"study":"demo","command":"emobridge demo","seed":7,"outputs":["probe/run.json","gone/run.json"],"hashes":{"manifest":"ab12"}}"#,
        );
        write(
            "demo/probe/run.json",
            r#"{"study":"separability","config":{"features":"egemaps"},"seed":7,
               "artifacts":[{"kind":"figure","path":"p.svg","title":"UA by layer","caption":"What it shows.\nHow to read it."},
                            {"kind":"table","path":"t.csv","title":"Scores","caption":"One row per layer."},
                            {"kind":"figure","path":"absent.svg","title":"Lost plot","caption":""},
                            {"kind":"table","path":"../../secret.csv","title":"Sneaky","caption":""}],
               "headlines":[{"key":"best_layer_speech","value":{"layer":3},"text":"Speech peaks at `layer 3`."}],
               "failures":[{"item":"clip-9","path":"x.wav","reason":"unreadable"}],
               "a_future_field":{"x":1}}"#,
        );
        write(
            "demo/probe/p.svg",
            r##"<svg width="400" height="300" xmlns="http://www.w3.org/2000/svg"><defs><clipPath id="c"/></defs><rect clip-path="url(#c)" width="4" height="4"/><text>layer</text></svg>"##,
        );
        let mut csv = String::from("layer,ua,setting\n");
        for i in 0..40 {
            csv.push_str(&format!("{i},{},within\n", 0.123456 + i as f64 / 100.0));
        }
        write("demo/probe/t.csv", &csv);
        write(
            "other/run.json",
            r#"{"study":"brand-new","outputs":["o.csv"],"headlines":[{"key":"k","value":1,"text":"A new number."}]}"#,
        );
        write("other/o.csv", "a,b\nx,1\n");
        vec![dir.join("demo"), dir.join("other")]
    }

    #[test]
    fn report_from_run_folders() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = sample_runs(dir.path());
        let files = write_report(&dirs, &dir.path().join("out/report.html")).unwrap();
        assert_eq!(files.runs, 2);
        assert_eq!(files.headlines, 2);
        let html = std::fs::read_to_string(&files.html).unwrap();
        for id in [
            "findings",
            "descriptors",
            "probe",
            "fad",
            "continuous",
            "finetune",
            "other",
            "record",
        ] {
            assert!(html.contains(&format!("id=\"{id}\"")), "section {id}");
        }
        // Absent studies are named with the command that adds them; no encoder: the hint.
        assert!(html.contains("emobridge continuous --manifest M --out DIR"));
        assert!(html.contains("emobridge demo --model DIR_OR_ID"));
        // The SVG is inlined with its ids prefixed; the table is capped with a note.
        assert!(html.contains("id=\"f1-c\"") && html.contains("url(#f1-c)"));
        assert!(html.contains("Showing the first 25 of 40 rows"));
        assert!(html.contains(">0.123<"), "numbers shortened");
        assert!(html.contains("<code>layer 3</code>"));
        // What cannot be shown is said, not hidden.
        assert!(html.contains("class=\"missing\"") && html.contains("Lost plot"));
        assert!(html.contains("Sub-run not readable"));
        assert!(html.contains("leaves the run folder"));
        assert!(html.contains("<h3 class=\"group\">Layer-wise probing"));
        assert!(html.contains("clip-9") && html.contains("unreadable"));
        // The unknown study is rendered generically from its outputs.
        assert!(html.contains("brand-new") && html.contains("o.csv"));
        assert!(!html.contains("src=\"http"));
        assert!(!html.contains("<script"));
        let summary: Value =
            serde_json::from_str(&std::fs::read_to_string(&files.summary_json).unwrap()).unwrap();
        assert_eq!(summary["headlines"]["probe/best_layer_speech"]["layer"], 3);
        assert_eq!(summary["headlines"]["other/k"], 1);
        assert_eq!(summary["encoder"], false);
        let md = std::fs::read_to_string(&files.summary_md).unwrap();
        assert!(md.contains("Speech peaks at `layer 3`.") && md.contains("A new number."));
    }

    #[test]
    fn hostile_inputs_name_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r.html");
        let err = write_report(&[], &out).unwrap_err().to_string();
        assert!(err.contains("no run folders"), "{err}");
        let err = write_report(&[dir.path().join("nope")], &out)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("nope") && err.contains("not a folder"),
            "{err}"
        );
        std::fs::write(dir.path().join("run.json"), "{ not json").unwrap();
        let err = write_report(&[dir.path().to_path_buf()], &out)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("run.json") && err.contains("not a run record"),
            "{err}"
        );
        assert!(!out.exists());
        let zero = ReportConfig {
            max_table_rows: 0,
            ..ReportConfig::default()
        };
        let err = write_report_with(&zero, &[dir.path().to_path_buf()], &out)
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_table_rows"), "{err}");
    }

    #[test]
    fn settings_reach_the_page() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = sample_runs(dir.path());
        let config = ReportConfig {
            title: "Pilot <study>".into(),
            max_table_rows: 10,
            ..ReportConfig::default()
        };
        let files = write_report_with(&config, &dirs, &dir.path().join("r.html")).unwrap();
        let html = std::fs::read_to_string(files.html).unwrap();
        assert!(html.contains("<title>Pilot &lt;study&gt;</title>"));
        assert!(html.contains("Showing the first 10 of 40 rows"));
    }

    #[test]
    fn inline_code_spans() {
        assert_eq!(inline_text("run `a<b` now"), "run <code>a&lt;b</code> now");
        assert_eq!(inline_text("odd ` tick"), "odd ` tick");
    }
}
