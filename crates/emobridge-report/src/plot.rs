//! Heatmaps and line charts, each written as PNG and SVG.
//!
//! Heatmaps draw row 0 at the top (as a matrix reads), colour by viridis, print each value in its
//! cell, leave missing (NaN) cells grey, and carry a colour bar; label areas grow with the longest
//! label so nothing is cropped. Line charts draw one series per label, told apart in greyscale
//! print as well as in colour (viridis shades, which darken monotonically, plus a marker shape
//! per series), optional shaded intervals ([`Band`]) and a dashed reference line (e.g. chance),
//! with the legend beside the plot rather than over it. Text uses the bundled DejaVu Sans subset
//! (registered with plotters' `ab_glyph` backend on first use).

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::table::format_significant;
use crate::{tmp_sibling, write_atomic, ReportError, Result};

static FONT: &[u8] = include_bytes!("../fonts/DejaVuSans-subset.ttf");
const FAMILY: &str = "sans-serif";

fn ensure_font() {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        for style in [
            FontStyle::Normal,
            FontStyle::Bold,
            FontStyle::Italic,
            FontStyle::Oblique,
        ] {
            plotters::style::register_font(FAMILY, style, FONT)
                .unwrap_or_else(|_| panic!("the bundled font is a valid TTF"));
        }
    });
}

/// The x-axis label of every by-layer chart, in the field's terms.
pub const LAYER_AXIS: &str = "layer (hidden state 0 = CNN features)";

/// A hidden-state index as papers name it: 0 is the CNN feature encoder's output (the input to
/// the first transformer layer), k the output of transformer layer k.
pub fn layer_name(index: usize) -> String {
    if index == 0 {
        "layer 0 (CNN features)".into()
    } else {
        format!("layer {index}")
    }
}

/// A matrix of values with row and column labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmap {
    pub title: String,
    pub row_labels: Vec<String>,
    pub col_labels: Vec<String>,
    /// `values[row][col]`; NaN marks a missing cell.
    pub values: Vec<Vec<f64>>,
    pub row_axis: String,
    pub col_axis: String,
    /// Caption of the colour bar (e.g. "FAD").
    pub value_label: String,
}

/// One line of a [`LineChart`].
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    /// (x, y) points; NaN y values are skipped.
    pub points: Vec<(f64, f64)>,
}

/// Lines over a shared x axis.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

/// A shaded interval around the [`Series`] with the same label: `(x, lower, upper)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub label: String,
    pub points: Vec<(f64, f64, f64)>,
}

/// Optional additions to a [`LineChart`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChartExtras {
    /// Intervals drawn under their series.
    pub bands: Vec<Band>,
    /// A dashed horizontal reference line and its legend label (e.g. chance level).
    pub reference: Option<(f64, String)>,
    /// Legend text of the bands (e.g. "95% bootstrap interval"); "interval" when empty.
    pub band_label: String,
}

/// The viridis colour map at t ∈ [0, 1] (matplotlib's, sampled at 9 stops and interpolated).
pub fn viridis(t: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 9] = [
        (68, 1, 84),
        (71, 45, 123),
        (59, 82, 139),
        (44, 114, 142),
        (33, 145, 140),
        (40, 174, 128),
        (94, 201, 98),
        (173, 220, 48),
        (253, 231, 37),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let pos = t * (STOPS.len() - 1) as f64;
    let i = (pos.floor() as usize).min(STOPS.len() - 2);
    let f = pos - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Colour of series `i` of `n`: viridis shades from dark to light, so the lines also differ in
/// greyscale (the lightest, near-yellow end is left out for contrast on white).
fn series_colour(i: usize, n: usize) -> RGBColor {
    if n <= 1 {
        return viridis(0.0);
    }
    viridis(0.8 * i as f64 / (n - 1) as f64)
}

/// Approximate width in pixels of `text` at `size` px in DejaVu Sans (0.56 em per character,
/// its mean advance over Latin text with digits), used to size label areas.
fn text_width(text: &str, size: u32) -> u32 {
    (text.chars().count() as f64 * 0.56 * size as f64).ceil() as u32
}

/// Writes a heatmap to `png` and `svg`.
pub fn write_heatmap(h: &Heatmap, png: &Path, svg: &Path) -> Result<()> {
    if h.values.len() != h.row_labels.len()
        || h.values.iter().any(|r| r.len() != h.col_labels.len())
    {
        return Err(ReportError::Table(format!(
            "heatmap `{}`: values are not {}×{}",
            h.title,
            h.row_labels.len(),
            h.col_labels.len()
        )));
    }
    let g = HeatmapGeometry::of(h);
    render(png, svg, (g.width, g.height), Figure::Heatmap(h))
}

/// Writes a line chart to `png` and `svg`.
pub fn write_line_chart(c: &LineChart, png: &Path, svg: &Path) -> Result<()> {
    write_line_chart_with(c, &ChartExtras::default(), png, svg)
}

/// Writes a line chart with intervals and a reference line to `png` and `svg`.
pub fn write_line_chart_with(
    c: &LineChart,
    extras: &ChartExtras,
    png: &Path,
    svg: &Path,
) -> Result<()> {
    let legend = legend_width(c, extras);
    let width = (800 + legend).max(text_width(&c.title, 20) + 60);
    render(png, svg, (width, 520), Figure::Lines(c, extras))
}

const MARGIN: i32 = 12;
const BAR_GAP: i32 = 28;
const BAR_W: i32 = 22;

/// Where a heatmap's parts go, in pixels.
struct HeatmapGeometry {
    cell: i32,
    grid_x: i32,
    grid_y: i32,
    /// Height of the column-label area.
    col_area: i32,
    rotate_cols: bool,
    width: u32,
    height: u32,
}

impl HeatmapGeometry {
    fn of(h: &Heatmap) -> HeatmapGeometry {
        let cols = h.col_labels.len() as i32;
        let rows = h.row_labels.len() as i32;
        let cell = if cols > 10 || rows > 10 { 52 } else { 60 };
        let longest =
            |labels: &[String]| labels.iter().map(|l| text_width(l, 13)).max().unwrap_or(0) as i32;
        let longest_col = longest(&h.col_labels);
        let rotate_cols = longest_col > cell - 6;
        let col_area = if rotate_cols { longest_col + 14 } else { 26 };
        let grid_x = MARGIN + 26 + longest(&h.row_labels) + 10;
        let grid_y = MARGIN + 52;
        let values = h.values.iter().flatten().copied();
        let (lo, hi) = finite_range(values);
        let tick_w = [lo, hi, (lo + hi) / 2.0]
            .iter()
            .map(|v| text_width(&format_cell(*v, hi - lo), 12))
            .max()
            .unwrap_or(0) as i32;
        let bar_w = BAR_GAP + (BAR_W + 10 + tick_w).max(text_width(&h.value_label, 13) as i32);
        let width = (grid_x + cols * cell + bar_w + MARGIN)
            .max(text_width(&h.title, 20) as i32 + 2 * MARGIN)
            .max(grid_x + cols * cell / 2 + text_width(&h.col_axis, 15) as i32 / 2 + MARGIN);
        let height = grid_y + rows * cell + col_area + 30 + MARGIN;
        HeatmapGeometry {
            cell,
            grid_x,
            grid_y,
            col_area,
            rotate_cols,
            width: width as u32,
            height: height as u32,
        }
    }
}

/// What [`render`] draws; one drawing routine serves both backends.
enum Figure<'a> {
    Heatmap(&'a Heatmap),
    Lines(&'a LineChart, &'a ChartExtras),
}

impl Figure<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String>
    where
        DB::ErrorType: 'static,
    {
        match self {
            Figure::Heatmap(h) => draw_heatmap(area, h),
            Figure::Lines(c, e) => draw_line_chart(area, c, e),
        }
    }
}

/// Draws `figure` on a bitmap (PNG) and an SVG backend, writing both files atomically.
fn render(png: &Path, svg: &Path, size: (u32, u32), figure: Figure<'_>) -> Result<()> {
    ensure_font();
    let draw_err = |path: &Path| {
        let path = path.to_path_buf();
        move |message: String| ReportError::Draw { path, message }
    };
    if let Some(dir) = png.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    // The bitmap backend picks its encoder from the extension: keep `.png` on the temporary name.
    let tmp_png = tmp_sibling(png).with_extension("tmp.png");
    {
        let area = BitMapBackend::new(&tmp_png, size).into_drawing_area();
        figure.draw(&area).map_err(draw_err(png))?;
        area.present().map_err(|e| ReportError::Draw {
            path: png.to_path_buf(),
            message: e.to_string(),
        })?;
    }
    std::fs::rename(&tmp_png, png).map_err(|source| ReportError::Io {
        path: png.to_path_buf(),
        source,
    })?;
    let mut text = String::new();
    {
        let area = SVGBackend::with_string(&mut text, size).into_drawing_area();
        figure.draw(&area).map_err(draw_err(svg))?;
        area.present().map_err(|e| ReportError::Draw {
            path: svg.to_path_buf(),
            message: e.to_string(),
        })?;
    }
    write_atomic(svg, text.as_bytes())
}

trait DrawResult<T> {
    fn text(self) -> std::result::Result<T, String>;
}

impl<T, E: std::fmt::Display> DrawResult<T> for std::result::Result<T, E> {
    fn text(self) -> std::result::Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

fn finite_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        (0.0, 1.0)
    } else if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    }
}

fn draw_heatmap<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    h: &Heatmap,
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).text()?;
    let g = HeatmapGeometry::of(h);
    let (lo, hi) = finite_range(h.values.iter().flatten().copied());
    let font = |size: u32| TextStyle::from((FAMILY, size).into_font());
    let centre = Pos::new(HPos::Center, VPos::Center);
    let (width, _) = root.dim_in_pixel();
    root.draw(&Text::new(
        h.title.clone(),
        (width as i32 / 2, MARGIN + 4),
        font(20).pos(Pos::new(HPos::Center, VPos::Top)),
    ))
    .text()?;
    let (x0, y0) = (g.grid_x, g.grid_y);
    let (rows, cols) = (h.row_labels.len() as i32, h.col_labels.len() as i32);
    let grid_bottom = y0 + rows * g.cell;
    // Row axis description, rotated, centred on the grid.
    root.draw(&Text::new(
        h.row_axis.clone(),
        (MARGIN + 8, y0 + rows * g.cell / 2),
        font(15).pos(centre).transform(FontTransform::Rotate270),
    ))
    .text()?;
    for (r, label) in h.row_labels.iter().enumerate() {
        root.draw(&Text::new(
            label.clone(),
            (x0 - 8, y0 + r as i32 * g.cell + g.cell / 2),
            font(13).pos(Pos::new(HPos::Right, VPos::Center)),
        ))
        .text()?;
    }
    for (c, label) in h.col_labels.iter().enumerate() {
        let x = x0 + c as i32 * g.cell + g.cell / 2;
        let style = if g.rotate_cols {
            // Reads upwards, its end just under the grid.
            font(13)
                .pos(Pos::new(HPos::Right, VPos::Center))
                .transform(FontTransform::Rotate270)
        } else {
            font(13).pos(Pos::new(HPos::Center, VPos::Top))
        };
        root.draw(&Text::new(label.clone(), (x, grid_bottom + 6), style))
            .text()?;
    }
    root.draw(&Text::new(
        h.col_axis.clone(),
        (x0 + cols * g.cell / 2, grid_bottom + g.col_area + 4),
        font(15).pos(Pos::new(HPos::Center, VPos::Top)),
    ))
    .text()?;
    let span = hi - lo;
    for (r, row) in h.values.iter().enumerate() {
        for (c, &v) in row.iter().enumerate() {
            let (cx, cy) = (x0 + c as i32 * g.cell, y0 + r as i32 * g.cell);
            let t = (v - lo) / span;
            let fill = if v.is_finite() {
                viridis(t)
            } else {
                RGBColor(220, 220, 220)
            };
            root.draw(&Rectangle::new(
                [(cx, cy), (cx + g.cell, cy + g.cell)],
                fill.filled(),
            ))
            .text()?;
            root.draw(&Rectangle::new(
                [(cx, cy), (cx + g.cell, cy + g.cell)],
                WHITE.stroke_width(1),
            ))
            .text()?;
            let ink = if v.is_finite() && t > 0.55 {
                BLACK
            } else if v.is_finite() {
                WHITE
            } else {
                RGBColor(60, 60, 60)
            };
            let label = if v.is_finite() {
                format_cell(v, span)
            } else {
                "–".to_string()
            };
            root.draw(&Text::new(
                label,
                (cx + g.cell / 2, cy + g.cell / 2),
                font(12).color(&ink).pos(centre),
            ))
            .text()?;
        }
    }
    // Colour bar: as tall as the grid, its label above, ticks to the right.
    let bar_x = x0 + cols * g.cell + BAR_GAP;
    let bar_h = rows * g.cell;
    let ticks = if bar_h < 150 { 2 } else { 4 };
    root.draw(&Text::new(
        h.value_label.clone(),
        (bar_x, y0 - 14),
        font(13).pos(Pos::new(HPos::Left, VPos::Bottom)),
    ))
    .text()?;
    let steps = 64;
    for i in 0..steps {
        let (a, b) = (i as f64 / steps as f64, (i + 1) as f64 / steps as f64);
        let top = y0 + ((1.0 - b) * bar_h as f64).round() as i32;
        let bottom = y0 + ((1.0 - a) * bar_h as f64).round() as i32;
        root.draw(&Rectangle::new(
            [(bar_x, top), (bar_x + BAR_W, bottom)],
            viridis((a + b) / 2.0).filled(),
        ))
        .text()?;
    }
    root.draw(&Rectangle::new(
        [(bar_x, y0), (bar_x + BAR_W, y0 + bar_h)],
        RGBColor(80, 80, 80).stroke_width(1),
    ))
    .text()?;
    for k in 0..=ticks {
        let f = k as f64 / ticks as f64;
        let y = y0 + ((1.0 - f) * bar_h as f64).round() as i32;
        root.draw(&PathElement::new(
            vec![(bar_x + BAR_W, y), (bar_x + BAR_W + 4, y)],
            BLACK.stroke_width(1),
        ))
        .text()?;
        root.draw(&Text::new(
            format_cell(lo + f * span, span),
            (bar_x + BAR_W + 7, y),
            font(12).pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .text()?;
    }
    Ok(())
}

/// A cell value with as many decimals as the matrix's range needs (3 significant digits of it).
fn format_cell(v: f64, span: f64) -> String {
    let decimals = if span > 0.0 && span.is_finite() {
        (2 - span.log10().floor() as i32).clamp(0, 4) as usize
    } else {
        2
    };
    let text = format!("{v:.decimals$}");
    // "-0.00" reads as a sign error.
    if text
        .trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        text.trim_start_matches('-').to_string()
    } else {
        text
    }
}

/// Width of the legend strip right of a line chart.
fn legend_width(c: &LineChart, extras: &ChartExtras) -> u32 {
    let longest = c
        .series
        .iter()
        .map(|s| s.label.as_str())
        .chain(extras.reference.as_ref().map(|r| r.1.as_str()))
        .chain((!extras.bands.is_empty()).then_some(extras.band_label.as_str()))
        .map(|l| text_width(l, 13))
        .max()
        .unwrap_or(0);
    longest + 70
}

/// The marker of series `i`: five shapes, then the same five again (their lines dashed).
#[derive(Clone, Copy)]
enum Marker {
    Disc,
    Triangle,
    Square,
    Ring,
    Cross,
}

fn marker_of(i: usize) -> Marker {
    [
        Marker::Disc,
        Marker::Triangle,
        Marker::Square,
        Marker::Ring,
        Marker::Cross,
    ][i % 5]
}

fn dashed(i: usize) -> bool {
    (i / 5) % 2 == 1
}

/// Draws `marker` centred on pixel `at`.
fn draw_marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    marker: Marker,
    at: (i32, i32),
    colour: RGBColor,
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    let (x, y) = at;
    match marker {
        Marker::Disc => area.draw(&Circle::new(at, 4, colour.filled())).text(),
        Marker::Ring => area
            .draw(&Circle::new(at, 4, colour.stroke_width(2)))
            .text(),
        Marker::Square => area
            .draw(&Rectangle::new(
                [(x - 4, y - 4), (x + 4, y + 4)],
                colour.filled(),
            ))
            .text(),
        Marker::Triangle => area
            .draw(&Polygon::new(
                vec![(x, y - 5), (x - 5, y + 4), (x + 5, y + 4)],
                colour.filled(),
            ))
            .text(),
        Marker::Cross => {
            area.draw(&PathElement::new(
                vec![(x - 4, y - 4), (x + 4, y + 4)],
                colour.stroke_width(2),
            ))
            .text()?;
            area.draw(&PathElement::new(
                vec![(x - 4, y + 4), (x + 4, y - 4)],
                colour.stroke_width(2),
            ))
            .text()
        }
    }
}

/// A dashed polyline in pixel space (dash 8, gap 5).
fn dashed_path(points: &[(i32, i32)]) -> Vec<Vec<(i32, i32)>> {
    let (dash, gap) = (8.0, 5.0);
    let mut out = Vec::new();
    let mut current: Vec<(i32, i32)> = Vec::new();
    let mut pos = 0.0f64; // distance into the current dash/gap cycle
    for w in points.windows(2) {
        let (a, b) = (w[0], w[1]);
        let (dx, dy) = ((b.0 - a.0) as f64, (b.1 - a.1) as f64);
        let len = (dx * dx + dy * dy).sqrt();
        let mut t = 0.0;
        while t < len {
            let in_dash = pos < dash;
            let left = if in_dash {
                dash - pos
            } else {
                dash + gap - pos
            };
            let step = left.min(len - t);
            let p0 = (a.0 + (dx * t / len) as i32, a.1 + (dy * t / len) as i32);
            let p1 = (
                a.0 + (dx * (t + step) / len) as i32,
                a.1 + (dy * (t + step) / len) as i32,
            );
            if in_dash {
                if current.is_empty() {
                    current.push(p0);
                }
                current.push(p1);
            } else if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            t += step;
            pos = (pos + step) % (dash + gap);
        }
    }
    if current.len() > 1 {
        out.push(current);
    }
    out
}

fn draw_line_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    c: &LineChart,
    extras: &ChartExtras,
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).text()?;
    let (width, _) = root.dim_in_pixel();
    let (main, legend) = root.split_horizontally(width.saturating_sub(legend_width(c, extras)));
    let points = || {
        c.series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.1.is_finite())
    };
    let band_ys = || {
        extras
            .bands
            .iter()
            .flat_map(|b| b.points.iter())
            .flat_map(|p| [p.1, p.2])
    };
    let (x_lo, x_hi) = finite_range(points().map(|p| p.0));
    let (y_lo, y_hi) = finite_range(
        points()
            .map(|p| p.1)
            .chain(band_ys())
            .chain(extras.reference.as_ref().map(|r| r.0)),
    );
    let pad = 0.06 * (y_hi - y_lo);
    let x_pad = if points().all(|p| p.0.fract() == 0.0) {
        0.3
    } else {
        0.02 * (x_hi - x_lo)
    };
    let mut chart = ChartBuilder::on(&main)
        .caption(&c.title, (FAMILY, 20))
        .margin(15)
        .margin_right(10)
        .x_label_area_size(52)
        .y_label_area_size(82)
        .build_cartesian_2d(x_lo - x_pad..x_hi + x_pad, y_lo - pad..y_hi + pad)
        .text()?;
    // Layer indices and the like: whole-number ticks only, one per value when they fit.
    let integer_x = points().all(|p| p.0.fract() == 0.0);
    let x_ticks = if integer_x {
        ((x_hi - x_lo) as usize + 1).min(25)
    } else {
        10
    };
    let x_format = |v: &f64| {
        if !integer_x {
            format_significant(*v, 3)
        } else if (v - v.round()).abs() < 1e-9 {
            format!("{}", v.round() as i64)
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .x_desc(&c.x_label)
        .y_desc(&c.y_label)
        .x_labels(x_ticks)
        .x_label_formatter(&x_format)
        .y_label_formatter(&|v| format_significant(*v, 3))
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 15))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .text()?;
    let n = c.series.len();
    // Up to four series: shaded bands. More: whiskers, each series nudged sideways (dodged) so
    // the intervals stay apart.
    let whiskers = n > 4;
    let step = if integer_x { 1.0 } else { (x_hi - x_lo) / 20.0 };
    let dodge = |i: usize| {
        if whiskers {
            (i as f64 - (n as f64 - 1.0) / 2.0) * 0.35 * step / n as f64
        } else {
            0.0
        }
    };
    for band in &extras.bands {
        let Some(i) = c.series.iter().position(|s| s.label == band.label) else {
            continue;
        };
        let pts: Vec<(f64, f64, f64)> = band
            .points
            .iter()
            .copied()
            .filter(|p| p.0.is_finite() && p.1.is_finite() && p.2.is_finite())
            .collect();
        let colour = series_colour(i, n);
        if whiskers {
            for p in &pts {
                let x = p.0 + dodge(i);
                let (a, b) = (
                    chart.backend_coord(&(x, p.1)),
                    chart.backend_coord(&(x, p.2)),
                );
                main.draw(&PathElement::new(vec![a, b], colour.stroke_width(1)))
                    .text()?;
                for end in [a, b] {
                    main.draw(&PathElement::new(
                        vec![(end.0 - 3, end.1), (end.0 + 3, end.1)],
                        colour.stroke_width(1),
                    ))
                    .text()?;
                }
            }
            continue;
        }
        if pts.len() < 2 {
            continue;
        }
        let outline: Vec<(f64, f64)> = pts
            .iter()
            .map(|p| (p.0, p.2))
            .chain(pts.iter().rev().map(|p| (p.0, p.1)))
            .collect();
        chart
            .draw_series(std::iter::once(Polygon::new(
                outline,
                colour.mix(0.16).filled(),
            )))
            .text()?;
    }
    if let Some((y, _)) = &extras.reference {
        let to_px = |x: f64| chart.backend_coord(&(x, *y));
        let line = [to_px(x_lo - x_pad), to_px(x_hi + x_pad)];
        for seg in dashed_path(&line) {
            main.draw(&PathElement::new(seg, RGBColor(90, 90, 90).stroke_width(2)))
                .text()?;
        }
    }
    for (i, s) in c.series.iter().enumerate() {
        let colour = series_colour(i, n);
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|p| p.1.is_finite())
            .collect();
        let px: Vec<(i32, i32)> = pts
            .iter()
            .map(|p| chart.backend_coord(&(p.0 + dodge(i), p.1)))
            .collect();
        if dashed(i) {
            for seg in dashed_path(&px) {
                main.draw(&PathElement::new(seg, colour.stroke_width(2)))
                    .text()?;
            }
        } else {
            main.draw(&PathElement::new(px.clone(), colour.stroke_width(2)))
                .text()?;
        }
        for p in px {
            draw_marker(&main, marker_of(i), p, colour)?;
        }
    }
    // The legend, beside the plot.
    let row = 24;
    let top = 60;
    let label_style =
        TextStyle::from((FAMILY, 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let mut y = top;
    for (i, s) in c.series.iter().enumerate() {
        let colour = series_colour(i, n);
        let line = vec![(8, y), (40, y)];
        if dashed(i) {
            for seg in dashed_path(&line) {
                legend
                    .draw(&PathElement::new(seg, colour.stroke_width(2)))
                    .text()?;
            }
        } else {
            legend
                .draw(&PathElement::new(line, colour.stroke_width(2)))
                .text()?;
        }
        draw_marker(&legend, marker_of(i), (24, y), colour)?;
        legend
            .draw(&Text::new(s.label.clone(), (48, y), label_style.clone()))
            .text()?;
        y += row;
    }
    if let Some((_, label)) = &extras.reference {
        for seg in dashed_path(&[(8, y), (40, y)]) {
            legend
                .draw(&PathElement::new(seg, RGBColor(90, 90, 90).stroke_width(2)))
                .text()?;
        }
        legend
            .draw(&Text::new(label.clone(), (48, y), label_style.clone()))
            .text()?;
        y += row;
    }
    if !extras.bands.is_empty() {
        if whiskers {
            let grey = RGBColor(90, 90, 90);
            for seg in [
                vec![(24, y - 7), (24, y + 7)],
                vec![(21, y - 7), (27, y - 7)],
                vec![(21, y + 7), (27, y + 7)],
            ] {
                legend
                    .draw(&PathElement::new(seg, grey.stroke_width(1)))
                    .text()?;
            }
        } else {
            legend
                .draw(&Rectangle::new(
                    [(8, y - 6), (40, y + 6)],
                    RGBColor(120, 120, 120).mix(0.25).filled(),
                ))
                .text()?;
        }
        legend
            .draw(&Text::new(
                if extras.band_label.is_empty() {
                    "interval".to_string()
                } else {
                    extras.band_label.clone()
                },
                (48, y),
                label_style,
            ))
            .text()?;
    }
    Ok(())
}

/// One line of a [`BandChart`]: (x, mean, half-width of the band) points.
#[derive(Debug, Clone, PartialEq)]
pub struct BandSeries {
    pub label: String,
    /// (x, y, band): the line passes through y, the shaded band spans y ± band; NaN y is skipped.
    pub points: Vec<(f64, f64, f64)>,
}

/// Lines with shaded ±bands (e.g. mean ± std over folds) and an optional dashed reference line
/// (e.g. chance level).
#[derive(Debug, Clone, PartialEq)]
pub struct BandChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<BandSeries>,
    /// (legend label, y) of a horizontal dashed line.
    pub reference: Option<(String, f64)>,
}

/// Writes a band chart to `png` and `svg`: drawn as a line chart whose series carry their
/// y ± band intervals (shaded, or whiskers beyond four series) and the dashed reference line,
/// so it shares the line chart's greyscale-safe shades, markers and side legend.
pub fn write_band_chart(c: &BandChart, png: &Path, svg: &Path) -> Result<()> {
    let band = |p: &(f64, f64, f64)| if p.2.is_finite() { p.2 } else { 0.0 };
    let chart = LineChart {
        title: c.title.clone(),
        x_label: c.x_label.clone(),
        y_label: c.y_label.clone(),
        series: c
            .series
            .iter()
            .map(|s| Series {
                label: s.label.clone(),
                points: s.points.iter().map(|p| (p.0, p.1)).collect(),
            })
            .collect(),
    };
    let extras = ChartExtras {
        bands: c
            .series
            .iter()
            .map(|s| Band {
                label: s.label.clone(),
                points: s
                    .points
                    .iter()
                    .filter(|p| p.1.is_finite())
                    .map(|p| (p.0, p.1 - band(p), p.1 + band(p)))
                    .collect(),
            })
            .collect(),
        reference: c.reference.as_ref().map(|(label, y)| (*y, label.clone())),
        band_label: "± std (shaded)".into(),
    };
    write_line_chart_with(&chart, &extras, png, svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_chart_draws_bands_and_the_reference_line() {
        let dir = tempfile::tempdir().unwrap();
        let chart = BandChart {
            title: "UA by layer".into(),
            x_label: "layer".into(),
            y_label: "UA".into(),
            series: vec![
                BandSeries {
                    label: "speech → music".into(),
                    points: vec![(0.0, 0.3, 0.05), (1.0, 0.4, 0.02), (2.0, f64::NAN, 0.0)],
                },
                BandSeries {
                    label: "within speech".into(),
                    points: vec![(1.0, 0.6, f64::NAN)],
                },
            ],
            reference: Some(("chance".into(), 1.0 / 6.0)),
        };
        let (png, svg) = (dir.path().join("b.png"), dir.path().join("b.svg"));
        write_band_chart(&chart, &png, &svg).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(
            text.contains("chance") && text.contains("speech → music") && text.contains("<polygon")
        );
        assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");
    }

    fn heatmap() -> Heatmap {
        Heatmap {
            title: "FAD, layer 3: speech × music".into(),
            row_labels: vec!["happy".into(), "sad".into(), "angry".into()],
            col_labels: vec!["happy".into(), "sad".into()],
            values: vec![vec![1.0, 12.5], vec![11.0, f64::NAN], vec![0.5, 30.0]],
            row_axis: "speech".into(),
            col_axis: "music".into(),
            value_label: "FAD".into(),
        }
    }

    #[test]
    fn viridis_ends_and_middle() {
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
        assert_eq!(viridis(0.5), RGBColor(33, 145, 140));
    }

    #[test]
    fn writes_png_and_svg_with_text() {
        let dir = tempfile::tempdir().unwrap();
        let (png, svg) = (dir.path().join("h.png"), dir.path().join("h.svg"));
        write_heatmap(&heatmap(), &png, &svg).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(
            text.contains("<svg")
                && text.contains("angry")
                && text.contains("12.5")
                && text.contains("speech")
        );
        let chart = LineChart {
            title: "FAD by layer".into(),
            x_label: "layer".into(),
            y_label: "FAD".into(),
            series: vec![
                Series {
                    label: "happy".into(),
                    points: vec![(0.0, 1.0), (1.0, 3.0), (2.0, f64::NAN)],
                },
                Series {
                    label: "sad".into(),
                    points: vec![(0.0, 2.0), (1.0, 0.5)],
                },
            ],
        };
        write_line_chart(&chart, &dir.path().join("l.png"), &dir.path().join("l.svg")).unwrap();
        assert!(std::fs::read_to_string(dir.path().join("l.svg"))
            .unwrap()
            .contains("happy"));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn label_areas_grow_with_their_labels() {
        let short = heatmap();
        let mut long = heatmap();
        long.row_labels[0] = "speech · a much longer emotion label".into();
        long.col_labels[1] = "a long descriptor name (semitones)".into();
        let (a, b) = (HeatmapGeometry::of(&short), HeatmapGeometry::of(&long));
        assert!(b.grid_x > a.grid_x + 100, "{} vs {}", b.grid_x, a.grid_x);
        assert!(b.rotate_cols && !a.rotate_cols);
        assert!(b.col_area >= text_width(&long.col_labels[1], 13) as i32);
        assert!(b.height > a.height);
        // The title always fits.
        long.title = "t".repeat(120);
        assert!(HeatmapGeometry::of(&long).width >= text_width(&long.title, 20));
    }

    #[test]
    fn series_shades_differ_in_greyscale() {
        let luma = |c: RGBColor| 0.299 * c.0 as f64 + 0.587 * c.1 as f64 + 0.114 * c.2 as f64;
        for n in [2, 4, 6, 8] {
            let l: Vec<f64> = (0..n).map(|i| luma(series_colour(i, n))).collect();
            assert!(
                l.windows(2).all(|w| w[1] > w[0] + 8.0),
                "{n} series: luma {l:?}"
            );
        }
        assert_eq!(format_cell(-0.001, 2.0), "0.00");
        assert_eq!(format_cell(25.36, 15.0), "25.4");
        assert_eq!(format_cell(0.4166, 0.3), "0.417");
    }

    #[test]
    fn intervals_and_reference_line_are_drawn_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let series = |label: &str, y: f64| Series {
            label: label.into(),
            points: (0..4).map(|x| (x as f64, y + x as f64 * 0.01)).collect(),
        };
        let band = |label: &str, y: f64| Band {
            label: label.into(),
            points: (0..4).map(|x| (x as f64, y - 0.9, y + 0.05)).collect(),
        };
        for n in [2usize, 6] {
            let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
            let chart = LineChart {
                title: "UA by layer".into(),
                x_label: LAYER_AXIS.into(),
                y_label: "UA".into(),
                series: names.iter().map(|l| series(l, 0.5)).collect(),
            };
            let extras = ChartExtras {
                bands: names.iter().map(|l| band(l, 0.5)).collect(),
                reference: Some((0.125, "chance (0.125)".into())),
                band_label: "95% bootstrap interval".into(),
            };
            let svg = dir.path().join(format!("c{n}.svg"));
            write_line_chart_with(&chart, &extras, &dir.path().join(format!("c{n}.png")), &svg)
                .unwrap();
            let text = std::fs::read_to_string(&svg).unwrap();
            assert!(text.contains("chance (0.125)") && text.contains("95% bootstrap interval"));
            assert!(text.contains("hidden state 0 = CNN features"));
            // The lower ends of the intervals (0.5 - 0.9 < 0) widen the y axis below zero.
            assert!(
                text.contains("-0.4") || text.contains("−0.4"),
                "y axis: {text:.300}"
            );
        }
    }

    #[test]
    fn ragged_values_are_refused() {
        let mut h = heatmap();
        h.values[1].pop();
        let dir = tempfile::tempdir().unwrap();
        assert!(write_heatmap(&h, &dir.path().join("h.png"), &dir.path().join("h.svg")).is_err());
    }
}
