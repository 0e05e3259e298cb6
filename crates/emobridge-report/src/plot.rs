//! Heatmaps and line charts, each written as PNG and SVG.
//!
//! Heatmaps draw row 0 at the top (as a matrix reads), colour by viridis, print each value in its
//! cell, leave missing (NaN) cells grey, and carry a colour bar. Line charts draw one series per
//! label with a legend. Text uses the bundled DejaVu Sans subset (registered with plotters'
//! `ab_glyph` backend on first use).

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

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

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
    let size = heatmap_size(h);
    render(png, svg, size, Figure::Heatmap(h))
}

/// Writes a line chart to `png` and `svg`.
pub fn write_line_chart(c: &LineChart, png: &Path, svg: &Path) -> Result<()> {
    render(png, svg, (900, 560), Figure::Lines(c))
}

fn heatmap_size(h: &Heatmap) -> (u32, u32) {
    let cell = 64;
    let w = 260 + 120 + cell * h.col_labels.len() as u32;
    let h_px = 200 + cell * h.row_labels.len() as u32;
    (w.max(520), h_px.max(360))
}

/// What [`render`] draws; one drawing routine serves both backends.
enum Figure<'a> {
    Heatmap(&'a Heatmap),
    Lines(&'a LineChart),
    Bands(&'a BandChart),
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
            Figure::Lines(c) => draw_line_chart(area, c),
            Figure::Bands(c) => draw_band_chart(area, c),
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
    let (width, _) = root.dim_in_pixel();
    let (main, bar) = root.split_horizontally(width.saturating_sub(130));
    let (lo, hi) = finite_range(h.values.iter().flatten().copied());
    let (rows, cols) = (h.row_labels.len(), h.col_labels.len());
    let mut chart = ChartBuilder::on(&main)
        .caption(&h.title, (FAMILY, 20))
        .margin(12)
        .x_label_area_size(90)
        .y_label_area_size(110)
        .build_cartesian_2d((0..cols).into_segmented(), (0..rows).into_segmented())
        .text()?;
    let label_of = |labels: &[String], v: &SegmentValue<usize>, flip: bool| match v {
        SegmentValue::CenterOf(i) if *i < labels.len() => {
            labels[if flip { labels.len() - 1 - i } else { *i }].clone()
        }
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(cols)
        .y_labels(rows)
        .x_desc(&h.col_axis)
        .y_desc(&h.row_axis)
        .x_label_formatter(&|v| label_of(&h.col_labels, v, false))
        .y_label_formatter(&|v| label_of(&h.row_labels, v, true))
        .x_label_style(
            TextStyle::from((FAMILY, 13).into_font())
                .transform(FontTransform::Rotate90)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        )
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 15))
        .draw()
        .text()?;
    for (r, row) in h.values.iter().enumerate() {
        let y = rows - 1 - r;
        for (c, &v) in row.iter().enumerate() {
            let fill = if v.is_finite() {
                viridis((v - lo) / (hi - lo))
            } else {
                RGBColor(220, 220, 220)
            };
            let cell = [
                (SegmentValue::Exact(c), SegmentValue::Exact(y)),
                (SegmentValue::Exact(c + 1), SegmentValue::Exact(y + 1)),
            ];
            chart
                .draw_series(std::iter::once(Rectangle::new(cell, fill.filled())))
                .text()?;
            let ink = if v.is_finite() && (v - lo) / (hi - lo) > 0.6 {
                BLACK
            } else {
                WHITE
            };
            let label = if v.is_finite() {
                format_significant(v, 3)
            } else {
                "–".to_string()
            };
            let style = TextStyle::from((FAMILY, 12).into_font())
                .color(&ink)
                .pos(Pos::new(HPos::Center, VPos::Center));
            chart
                .draw_series(std::iter::once(Text::new(
                    label,
                    (SegmentValue::CenterOf(c), SegmentValue::CenterOf(y)),
                    style,
                )))
                .text()?;
        }
    }
    draw_colour_bar(&bar, lo, hi, &h.value_label)
}

fn draw_colour_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    lo: f64,
    hi: f64,
    label: &str,
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(area)
        .margin_top(60)
        .margin_bottom(100)
        .margin_right(10)
        .y_label_area_size(70)
        .caption(label, (FAMILY, 14))
        .build_cartesian_2d(0.0..1.0, lo..hi)
        .text()?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .y_label_formatter(&|v| format_significant(*v, 3))
        .label_style((FAMILY, 12))
        .draw()
        .text()?;
    let steps = 64;
    chart
        .draw_series((0..steps).map(|i| {
            let (a, b) = (i as f64 / steps as f64, (i + 1) as f64 / steps as f64);
            Rectangle::new(
                [(0.0, lo + a * (hi - lo)), (1.0, lo + b * (hi - lo))],
                viridis((a + b) / 2.0).filled(),
            )
        }))
        .text()?;
    Ok(())
}

fn draw_line_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    c: &LineChart,
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).text()?;
    let points = || {
        c.series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.1.is_finite())
    };
    let (x_lo, x_hi) = finite_range(points().map(|p| p.0));
    let (y_lo, y_hi) = finite_range(points().map(|p| p.1));
    let pad = 0.05 * (y_hi - y_lo);
    let mut chart = ChartBuilder::on(root)
        .caption(&c.title, (FAMILY, 20))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(
            x_lo..x_hi,
            (y_lo - pad).min(0.0f64.max(y_lo - pad))..y_hi + pad,
        )
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
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .text()?;
    for (i, s) in c.series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|p| p.1.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
            .text()?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, colour.filled())))
            .text()?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font((FAMILY, 13))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .text()?;
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

/// Writes a band chart to `png` and `svg`.
pub fn write_band_chart(c: &BandChart, png: &Path, svg: &Path) -> Result<()> {
    render(png, svg, (900, 560), Figure::Bands(c))
}

fn draw_band_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    c: &BandChart,
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).text()?;
    let points = || {
        c.series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.1.is_finite())
    };
    let (x_lo, x_hi) = finite_range(points().map(|p| p.0));
    let band = |p: &(f64, f64, f64)| if p.2.is_finite() { p.2 } else { 0.0 };
    let (y_lo, y_hi) = finite_range(
        points()
            .flat_map(|p| [p.1 - band(p), p.1 + band(p)])
            .chain(c.reference.iter().map(|r| r.1)),
    );
    let pad = 0.05 * (y_hi - y_lo);
    let mut chart = ChartBuilder::on(root)
        .caption(&c.title, (FAMILY, 20))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(x_lo..x_hi, (y_lo - pad)..(y_hi + pad))
        .text()?;
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
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .text()?;
    for (i, s) in c.series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let pts: Vec<(f64, f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|p| p.1.is_finite())
            .collect();
        if pts.len() > 1 {
            let outline: Vec<(f64, f64)> = pts
                .iter()
                .map(|p| (p.0, p.1 + band(p)))
                .chain(pts.iter().rev().map(|p| (p.0, p.1 - band(p))))
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(
                    outline,
                    colour.mix(0.18).filled(),
                )))
                .text()?;
        } else {
            chart
                .draw_series(pts.iter().map(|p| {
                    PathElement::new(
                        vec![(p.0, p.1 - band(p)), (p.0, p.1 + band(p))],
                        colour.stroke_width(2),
                    )
                }))
                .text()?;
        }
        let line: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, p.1)).collect();
        chart
            .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))
            .text()?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(line.into_iter().map(|p| Circle::new(p, 3, colour.filled())))
            .text()?;
    }
    if let Some((label, y)) = &c.reference {
        let grey = RGBColor(90, 90, 90);
        let (y, steps) = (*y, 40);
        let dashes = (0..steps).step_by(2).map(move |i| {
            let a = x_lo + (x_hi - x_lo) * i as f64 / steps as f64;
            let b = x_lo + (x_hi - x_lo) * (i + 1) as f64 / steps as f64;
            PathElement::new(vec![(a, y), (b, y)], grey.stroke_width(1))
        });
        chart
            .draw_series(dashes)
            .text()?
            .label(label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], grey.stroke_width(1))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font((FAMILY, 13))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .text()?;
    Ok(())
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
    fn ragged_values_are_refused() {
        let mut h = heatmap();
        h.values[1].pop();
        let dir = tempfile::tempdir().unwrap();
        assert!(write_heatmap(&h, &dir.path().join("h.png"), &dir.path().join("h.svg")).is_err());
    }
}
