//! "Accuracy against mean generated tokens" chart, drawn with `plotters`.
//!
//! One marker per configuration with its 95% interval as a vertical error bar
//! and its label written next to it; the Pareto-optimal configurations (best
//! accuracy for their token budget) are joined by a line and drawn in a
//! distinct colour and marker. [`plot_accuracy_vs_tokens`] writes the same
//! chart as `<stem>.svg` and `<stem>.png`.
//!
//! Text is rendered with plotters' `ab_glyph` feature, so nothing is needed
//! from the system at build time. At run time a TrueType font is loaded once
//! from the file named by the `PLOT_FONT` environment variable, or else from
//! the usual system locations (DejaVu Sans, Liberation Sans, FreeSans, Noto
//! Sans, Arial). On Debian/Ubuntu, `fonts-dejavu-core` provides one.
//!
//! Cargo features needed: `plotters = { version = "0.3", default-features =
//! false, features = ["svg_backend", "bitmap_backend", "bitmap_encoder",
//! "ab_glyph"] }`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};

/// One configuration to plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Text written next to the marker.
    pub label: String,
    /// Accuracy as a fraction in `0..=1` (drawn as a percentage).
    pub accuracy: f64,
    /// Lower end of the 95% interval of `accuracy` (fraction).
    pub ci_low: f64,
    /// Upper end of the 95% interval of `accuracy` (fraction).
    pub ci_high: f64,
    /// Mean number of generated tokens per problem.
    pub mean_tokens: f64,
}

/// Why a chart could not be written. Every variant names the file (or the
/// `<stem>` of the pair of files) it concerns.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The slice of points was empty.
    #[error("cannot plot {}.{{svg,png}}: no points were given", .stem.display())]
    NoPoints {
        /// The output path without extension.
        stem: PathBuf,
    },
    /// Every point had a NaN/infinite accuracy or mean token count, or a
    /// negative mean token count.
    #[error(
        "cannot plot {}.{{svg,png}}: none of the {total} points has a finite accuracy \
         and a finite, non-negative mean token count",
        .stem.display()
    )]
    NoValidPoints {
        /// The output path without extension.
        stem: PathBuf,
        /// How many points were given.
        total: usize,
    },
    /// No usable TrueType font was found to measure and render text.
    #[error(
        "cannot render {}.{{svg,png}}: no usable TrueType font found ({tried}); install the \
         Debian package `fonts-dejavu-core` (or `fonts-liberation`), or set PLOT_FONT to a .ttf file",
        .stem.display()
    )]
    FontNotFound {
        /// The output path without extension.
        stem: PathBuf,
        /// What was tried and why it failed (`PLOT_FONT`'s file, or the standard locations).
        tried: String,
    },
    /// The output directory could not be created.
    #[error("cannot create directory {} for the chart: {source}", .dir.display())]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Drawing or writing/encoding the file failed.
    #[error("cannot draw or write {}: {message}", .file.display())]
    Draw {
        /// The `.svg` or `.png` file being written.
        file: PathBuf,
        /// The backend's error message.
        message: String,
    },
}

/// Indices of the Pareto-optimal points: no other point has >= accuracy with
/// <= mean tokens (and one of them strictly better). Sorted by mean_tokens
/// ascending (ties: higher accuracy first, then input order).
///
/// Points that cannot be plotted (NaN/infinite accuracy or mean tokens, or
/// negative mean tokens) are ignored: they neither appear in nor dominate
/// anything. Exact duplicates do not dominate each other, so all copies of a
/// Pareto-optimal point are returned.
pub fn pareto_frontier(points: &[Point]) -> Vec<usize> {
    let valid: Vec<usize> = (0..points.len())
        .filter(|&i| is_plottable(&points[i]))
        .collect();
    let mut front: Vec<usize> = valid
        .iter()
        .copied()
        .filter(|&i| {
            let p = &points[i];
            !valid.iter().any(|&j| {
                let q = &points[j];
                q.accuracy >= p.accuracy
                    && q.mean_tokens <= p.mean_tokens
                    && (q.accuracy > p.accuracy || q.mean_tokens < p.mean_tokens)
            })
        })
        .collect();
    front.sort_by(|&a, &b| {
        let (pa, pb) = (&points[a], &points[b]);
        pa.mean_tokens
            .total_cmp(&pb.mean_tokens)
            .then(pb.accuracy.total_cmp(&pa.accuracy))
            .then(a.cmp(&b))
    });
    front
}

/// Writes `<stem>.svg` and `<stem>.png` (e.g. stem = dir/accuracy_vs_tokens).
///
/// The extensions are appended to `stem` (a stem of `run.v2` gives
/// `run.v2.svg`); a missing parent directory is created. Points whose
/// accuracy or mean token count is NaN/infinite, or whose mean token count is
/// negative, are skipped; a point whose interval is not finite is drawn
/// without an error bar.
pub fn plot_accuracy_vs_tokens(
    points: &[Point],
    title: &str,
    stem: &Path,
) -> Result<(), PlotError> {
    if points.is_empty() {
        return Err(PlotError::NoPoints {
            stem: stem.to_path_buf(),
        });
    }
    let data = Prepared::new(points).ok_or_else(|| PlotError::NoValidPoints {
        stem: stem.to_path_buf(),
        total: points.len(),
    })?;

    let svg_path = with_suffix(stem, ".svg");
    let png_path = with_suffix(stem, ".png");

    ensure_font().map_err(|tried| PlotError::FontNotFound {
        stem: stem.to_path_buf(),
        tried,
    })?;

    if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| PlotError::CreateDir {
            dir: dir.to_path_buf(),
            source,
        })?;
    }

    {
        let root = SVGBackend::new(&svg_path, (WIDTH, HEIGHT)).into_drawing_area();
        draw_chart(&root, &data, title, 0)
            .and_then(|()| root.present().map_err(|e| e.to_string()))
            .map_err(|message| PlotError::Draw {
                file: svg_path.clone(),
                message,
            })?;
    }
    {
        let root = BitMapBackend::new(&png_path, (WIDTH, HEIGHT)).into_drawing_area();
        // plotters' ab_glyph rasteriser puts vertically centred text about
        // 0.12 em higher than SVG renderers do; compensate for our labels.
        let text_dy = (LABEL_SIZE * 0.12).round() as i32;
        draw_chart(&root, &data, title, text_dy)
            .and_then(|()| root.present().map_err(|e| e.to_string()))
            .map_err(|message| PlotError::Draw {
                file: png_path.clone(),
                message,
            })?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Layout constants and styling.

const WIDTH: u32 = 860;
const HEIGHT: u32 = 540;
const FONT: &str = "sans-serif";
const TITLE_SIZE: f64 = 24.0;
const AXIS_DESC_SIZE: f64 = 18.0;
const TICK_SIZE: f64 = 15.0;
const LABEL_SIZE: f64 = 15.0;
const LEGEND_SIZE: f64 = 15.0;

const FRONTIER_COLOR: RGBColor = RGBColor(214, 39, 40);
const OTHER_COLOR: RGBColor = RGBColor(31, 119, 180);
const TEXT_COLOR: RGBColor = RGBColor(30, 30, 30);
/// Half-size in pixels of the circle drawn for a dominated point.
const OTHER_R: i32 = 5;
/// Size of the triangle drawn for a frontier point.
const FRONTIER_R: i32 = 7;
/// Half-width in pixels of the caps of the error bars.
const CAP: i32 = 4;

fn with_suffix(stem: &Path, suffix: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

fn is_plottable(p: &Point) -> bool {
    p.accuracy.is_finite() && p.mean_tokens.is_finite() && p.mean_tokens >= 0.0
}

// ---------------------------------------------------------------------------
// Fonts.

/// Regular font files to try, each with the bold face that usually sits
/// next to it (used for the title when present).
const FONT_CANDIDATES: &[(&str, &str)] = &[
    (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
        "/usr/share/fonts/truetype/liberation2/LiberationSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
        "/usr/share/fonts/liberation-sans/LiberationSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/TTF/LiberationSans-Regular.ttf",
        "/usr/share/fonts/TTF/LiberationSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
        "/usr/share/fonts/truetype/freefont/FreeSansBold.ttf",
    ),
    (
        "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
        "/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/noto/NotoSans-Regular.ttf",
        "/usr/share/fonts/noto/NotoSans-Bold.ttf",
    ),
    (
        "/System/Library/Fonts/Supplemental/Arial.ttf",
        "/System/Library/Fonts/Supplemental/Arial Bold.ttf",
    ),
    ("/Library/Fonts/Arial.ttf", "/Library/Fonts/Arial Bold.ttf"),
    (
        r"C:\Windows\Fonts\arial.ttf",
        r"C:\Windows\Fonts\arialbd.ttf",
    ),
];

/// Registers a font for plotters' "sans-serif" family once per process.
/// On failure returns a description of what was tried.
fn ensure_font() -> Result<(), String> {
    static FONT_STATE: OnceLock<Result<(), String>> = OnceLock::new();
    FONT_STATE.get_or_init(load_font).clone()
}

fn register(path: &Path, style: FontStyle) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    // plotters keeps `&'static` font data; this runs at most once per face
    // per process, so leaking the buffer is intended.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    register_font(FONT, style, bytes).map_err(|_| "not a valid TrueType/OpenType font".to_string())
}

fn load_font() -> Result<(), String> {
    let mut tried = String::new();
    if let Some(p) = std::env::var_os("PLOT_FONT").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return register(&p, FontStyle::Normal)
            .map_err(|e| format!("PLOT_FONT={}: {e}", p.display()));
    }
    for (regular, bold) in FONT_CANDIDATES {
        let regular = Path::new(regular);
        if !regular.is_file() {
            continue;
        }
        match register(regular, FontStyle::Normal) {
            Ok(()) => {
                let bold = Path::new(bold);
                if bold.is_file() {
                    // Without it the title falls back to the regular face.
                    let _ = register(bold, FontStyle::Bold);
                }
                return Ok(());
            }
            Err(e) => {
                let _ = write!(tried, "{}: {e}; ", regular.display());
            }
        }
    }
    let _ = write!(
        tried,
        "none of the {} standard locations (e.g. {}) holds a usable font, and PLOT_FONT is unset",
        FONT_CANDIDATES.len(),
        FONT_CANDIDATES[0].0
    );
    Err(tried)
}

// ---------------------------------------------------------------------------
// Data preparation.

/// One plottable point, in chart units (accuracy and interval in percent).
struct Item {
    label: String,
    x: f64,
    y: f64,
    /// (low, high) of the 95% interval in percent, if finite.
    ci: Option<(f64, f64)>,
    frontier: bool,
}

struct Prepared {
    items: Vec<Item>,
    /// Indices into `items` of the frontier, sorted by tokens.
    frontier: Vec<usize>,
    x_max: f64,
    y_range: (f64, f64),
}

impl Prepared {
    fn new(points: &[Point]) -> Option<Self> {
        let kept: Vec<&Point> = points.iter().filter(|p| is_plottable(p)).collect();
        if kept.is_empty() {
            return None;
        }
        let owned: Vec<Point> = kept.iter().map(|&p| p.clone()).collect();
        let frontier = pareto_frontier(&owned);
        let mut items: Vec<Item> = owned
            .into_iter()
            .map(|p| {
                let ci = (p.ci_low.is_finite() && p.ci_high.is_finite()).then(|| {
                    let (a, b) = (p.ci_low * 100.0, p.ci_high * 100.0);
                    (a.min(b), a.max(b))
                });
                Item {
                    label: p.label.trim().to_string(),
                    x: p.mean_tokens,
                    y: p.accuracy * 100.0,
                    ci,
                    frontier: false,
                }
            })
            .collect();
        for &i in &frontier {
            items[i].frontier = true;
        }

        let max_tokens = items.iter().map(|it| it.x).fold(0.0_f64, f64::max);
        let x_max = if max_tokens > 0.0 {
            max_tokens * 1.12
        } else {
            1.0
        };

        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for it in &items {
            lo = lo.min(it.y);
            hi = hi.max(it.y);
            if let Some((a, b)) = it.ci {
                lo = lo.min(a);
                hi = hi.max(b);
            }
        }
        let pad = ((hi - lo) * 0.08).max(2.0);
        // Stay within 0..100 unless the data themselves leave it.
        let mut y0 = if lo >= 0.0 {
            (lo - pad).max(0.0)
        } else {
            lo - pad
        };
        let mut y1 = if hi <= 100.0 {
            (hi + pad).min(100.0)
        } else {
            hi + pad
        };
        // Round outward to a tidy grid.
        let step = if y1 - y0 > 20.0 { 5.0 } else { 1.0 };
        y0 = (y0 / step).floor() * step;
        y1 = (y1 / step).ceil() * step;
        if y1 - y0 < 1e-9 {
            y1 = y0 + 1.0;
        }

        Some(Self {
            items,
            frontier,
            x_max,
            y_range: (y0, y1),
        })
    }
}

// ---------------------------------------------------------------------------
// Geometry for placing labels and the legend without overlaps.

#[derive(Clone, Copy, Debug)]
struct Rect {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

impl Rect {
    fn new(x: f64, y: f64, w: f64, h: f64) -> Self {
        Self {
            x0: x,
            y0: y,
            x1: x + w,
            y1: y + h,
        }
    }
    fn around(cx: f64, cy: f64, half_w: f64, half_h: f64) -> Self {
        Self {
            x0: cx - half_w,
            y0: cy - half_h,
            x1: cx + half_w,
            y1: cy + half_h,
        }
    }
    fn area(&self) -> f64 {
        (self.x1 - self.x0).max(0.0) * (self.y1 - self.y0).max(0.0)
    }
    fn overlap(&self, o: &Rect) -> f64 {
        let w = (self.x1.min(o.x1) - self.x0.max(o.x0)).max(0.0);
        let h = (self.y1.min(o.y1) - self.y0.max(o.y0)).max(0.0);
        w * h
    }
    fn grow(&self, d: f64) -> Self {
        Self {
            x0: self.x0 - d,
            y0: self.y0 - d,
            x1: self.x1 + d,
            y1: self.y1 + d,
        }
    }
    /// Cost of putting `self` at this place: overlap with the obstacles,
    /// plus (heavily weighted) the part falling outside `bounds`.
    fn cost(&self, obstacles: &[Rect], bounds: &Rect) -> f64 {
        let outside = self.area() - self.overlap(bounds);
        obstacles.iter().map(|o| self.overlap(o)).sum::<f64>() + 4.0 * outside
    }
}

/// Index of the cheapest candidate; `extra[i]` is added to candidate `i`'s
/// cost, and earlier candidates win ties.
fn pick_best(candidates: &[Rect], extra: &[f64], obstacles: &[Rect], bounds: &Rect) -> usize {
    let mut best = 0;
    let mut best_cost = f64::INFINITY;
    for (i, c) in candidates.iter().enumerate() {
        let penalty = extra.get(i).copied().unwrap_or(0.0);
        let cost = c.cost(obstacles, bounds) + penalty + i as f64 * 1e-3;
        if cost < best_cost {
            best_cost = cost;
            best = i;
        }
    }
    best
}

/// The point of `r` nearest to `(x, y)`.
fn nearest_on(r: &Rect, x: f64, y: f64) -> (f64, f64) {
    (x.clamp(r.x0, r.x1), y.clamp(r.y0, r.y1))
}

/// Small boxes along a segment, so that labels avoid lines.
fn segment_obstacles(a: (f64, f64), b: (f64, f64), out: &mut Vec<Rect>) {
    let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
    let steps = (len / 4.0).ceil().max(1.0) as usize;
    for s in 0..=steps {
        let t = s as f64 / steps as f64;
        out.push(Rect::around(
            a.0 + t * (b.0 - a.0),
            a.1 + t * (b.1 - a.1),
            2.0,
            2.0,
        ));
    }
}

fn text_size<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    text: &str,
    style: &TextStyle,
) -> Result<(f64, f64), String> {
    root.estimate_text_size(text, style)
        .map(|(w, h)| (f64::from(w), f64::from(h)))
        .map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------
// Drawing (shared by the SVG and PNG backends).

fn draw_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &Prepared,
    title: &str,
    text_dy: i32,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;

    let (y0, y1) = data.y_range;
    let mut builder = ChartBuilder::on(root);
    builder
        .margin(12)
        .margin_right(24)
        .x_label_area_size(52)
        .y_label_area_size(66);
    let title = title.trim();
    if !title.is_empty() {
        builder.caption(title, (FONT, TITLE_SIZE, FontStyle::Bold).into_font());
    }
    let mut chart = builder
        .build_cartesian_2d(0.0..data.x_max, y0..y1)
        .map_err(err)?;

    let x_decimals = if data.x_max >= 20.0 { 0 } else { 1 };
    let y_decimals = if y1 - y0 >= 8.0 { 0 } else { 1 };
    let x_fmt = move |v: &f64| format!("{v:.x_decimals$}");
    let y_fmt = move |v: &f64| format!("{v:.y_decimals$}");
    chart
        .configure_mesh()
        .x_desc("Mean generated tokens per problem")
        .y_desc("Accuracy (%)")
        .x_labels(8)
        .y_labels(8)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .label_style((FONT, TICK_SIZE).into_font().color(&TEXT_COLOR))
        .axis_desc_style((FONT, AXIS_DESC_SIZE).into_font().color(&TEXT_COLOR))
        .bold_line_style(RGBColor(220, 220, 220))
        .light_line_style(RGBColor(243, 243, 243))
        .max_light_lines(4)
        .axis_style(RGBColor(90, 90, 90))
        .draw()
        .map_err(err)?;

    // Pixel geometry of every point, for overlap avoidance.
    let (px_range, py_range) = chart.plotting_area().get_pixel_range();
    let bounds = Rect {
        x0: f64::from(px_range.start),
        y0: f64::from(py_range.start),
        x1: f64::from(px_range.end),
        y1: f64::from(py_range.end),
    };
    let to_px = |x: f64, y: f64| {
        let (px, py) = chart.backend_coord(&(x, y));
        (f64::from(px), f64::from(py))
    };
    let mut obstacles: Vec<Rect> = Vec::new();
    for it in &data.items {
        let (px, py) = to_px(it.x, it.y);
        let r = f64::from(if it.frontier { FRONTIER_R } else { OTHER_R }) + 1.0;
        obstacles.push(Rect::around(px, py, r, r));
        if let Some((lo, hi)) = it.ci {
            let (_, top) = to_px(it.x, hi);
            let (_, bottom) = to_px(it.x, lo);
            obstacles.push(Rect {
                x0: px - f64::from(CAP) - 1.0,
                y0: top - 1.0,
                x1: px + f64::from(CAP) + 1.0,
                y1: bottom + 1.0,
            });
        }
    }
    let front_px: Vec<(f64, f64)> = data
        .frontier
        .iter()
        .map(|&i| to_px(data.items[i].x, data.items[i].y))
        .collect();
    for w in front_px.windows(2) {
        segment_obstacles(w[0], w[1], &mut obstacles);
    }

    // Legend: pick the emptiest corner of the plotting area.
    let legend_font = (FONT, LEGEND_SIZE).into_font().color(&TEXT_COLOR);
    let has_other = data.items.iter().any(|it| !it.frontier);
    let has_ci = data.items.iter().any(|it| it.ci.is_some());
    let mut entries: Vec<(&str, LegendGlyph)> = vec![("Pareto frontier", LegendGlyph::Frontier)];
    if has_other {
        entries.push(("Dominated", LegendGlyph::Other));
    }
    if has_ci {
        entries.push(("95% interval", LegendGlyph::Interval));
    }
    let mut text_w: f64 = 0.0;
    let mut text_h: f64 = 0.0;
    for (t, _) in &entries {
        let (w, h) = text_size(root, t, &legend_font)?;
        text_w = text_w.max(w);
        text_h = text_h.max(h);
    }
    let (glyph_w, pad, row_h) = (30.0, 8.0, text_h + 8.0);
    let legend_w = pad + glyph_w + 8.0 + text_w + pad;
    let legend_h = pad * 2.0 + row_h * entries.len() as f64 - 4.0;
    let inset = 8.0;
    let corners = [
        // Accuracy-vs-cost data usually leave the lower right and upper left empty.
        Rect::new(
            bounds.x1 - inset - legend_w,
            bounds.y1 - inset - legend_h,
            legend_w,
            legend_h,
        ),
        Rect::new(bounds.x0 + inset, bounds.y0 + inset, legend_w, legend_h),
        Rect::new(
            bounds.x1 - inset - legend_w,
            bounds.y0 + inset,
            legend_w,
            legend_h,
        ),
        Rect::new(
            bounds.x0 + inset,
            bounds.y1 - inset - legend_h,
            legend_w,
            legend_h,
        ),
    ];
    let legend = corners[pick_best(&corners, &[], &obstacles, &bounds)];

    // Place the point labels greedily, frontier first.
    let label_font = (FONT, LABEL_SIZE).into_font().color(&TEXT_COLOR);
    let mut placed_obstacles = obstacles.clone();
    placed_obstacles.push(legend.grow(3.0));
    let mut order: Vec<usize> = (0..data.items.len()).collect();
    order.sort_by_key(|&i| !data.items[i].frontier);
    type Leader = ((f64, f64), (f64, f64));
    let mut labels: Vec<(Rect, &str, Option<Leader>)> = Vec::new();
    for i in order {
        let it = &data.items[i];
        if it.label.is_empty() {
            continue;
        }
        let (w, h) = text_size(root, &it.label, &label_font)?;
        let (px, py) = to_px(it.x, it.y);
        let gap = f64::from(if it.frontier { FRONTIER_R } else { OTHER_R }) + 5.0;
        let (top, bottom) = match it.ci {
            Some((lo, hi)) => (to_px(it.x, hi).1, to_px(it.x, lo).1),
            None => (py, py),
        };
        let right = px + gap;
        let left = px - gap - w;
        let mid = py - h / 2.0;
        let mut candidates = vec![Rect::new(right, mid, w, h), Rect::new(left, mid, w, h)];
        for k in [1.0, 2.0, 3.0] {
            let dy = 0.9 * h * k;
            for x in [right, left] {
                candidates.push(Rect::new(x, mid - dy, w, h));
                candidates.push(Rect::new(x, mid + dy, w, h));
            }
        }
        candidates.push(Rect::new(px - w / 2.0, top.min(py - gap) - 4.0 - h, w, h));
        candidates.push(Rect::new(px - w / 2.0, bottom.max(py + gap) + 4.0, w, h));
        let padded: Vec<Rect> = candidates.iter().map(|c| c.grow(2.0)).collect();
        // Distance beyond the adjacent positions costs a little, so a label
        // stays close unless that would overlap something.
        let far: Vec<f64> = candidates
            .iter()
            .map(|c| {
                let (nx, ny) = nearest_on(c, px, py);
                ((nx - px).hypot(ny - py) - gap).max(0.0)
            })
            .collect();
        let extra: Vec<f64> = far.iter().map(|d| 1.5 * d).collect();
        let k = pick_best(&padded, &extra, &placed_obstacles, &bounds);
        let best = candidates[k];
        placed_obstacles.push(best.grow(2.0));
        // A label moved away from its marker gets a leader line.
        let leader = (far[k] > 5.0).then(|| {
            let (nx, ny) = nearest_on(&best.grow(1.0), px, py);
            let d = (nx - px).hypot(ny - py);
            let r = f64::from(if it.frontier { FRONTIER_R } else { OTHER_R }) + 1.0;
            let start = (px + (nx - px) * r / d, py + (ny - py) * r / d);
            segment_obstacles(start, (nx, ny), &mut placed_obstacles);
            (start, (nx, ny))
        });
        labels.push((best, it.label.as_str(), leader));
    }

    // Error bars.
    for it in &data.items {
        if let Some((lo, hi)) = it.ci {
            let color = if it.frontier {
                FRONTIER_COLOR
            } else {
                OTHER_COLOR
            };
            let style = color.mix(0.55).stroke_width(2);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(it.x, lo), (it.x, hi)],
                    style,
                )))
                .map_err(err)?;
            for end in [lo, hi] {
                chart
                    .draw_series(std::iter::once(
                        EmptyElement::at((it.x, end))
                            + PathElement::new(vec![(-CAP, 0), (CAP, 0)], style),
                    ))
                    .map_err(err)?;
            }
        }
    }

    // Frontier line, then markers (frontier last so it is on top).
    let frontier_line: Vec<(f64, f64)> = data
        .frontier
        .iter()
        .map(|&i| (data.items[i].x, data.items[i].y))
        .collect();
    if frontier_line.len() > 1 {
        chart
            .draw_series(std::iter::once(PathElement::new(
                frontier_line,
                FRONTIER_COLOR.stroke_width(2),
            )))
            .map_err(err)?;
    }
    chart
        .draw_series(
            data.items
                .iter()
                .filter(|it| !it.frontier)
                .map(|it| Circle::new((it.x, it.y), OTHER_R, OTHER_COLOR.filled())),
        )
        .map_err(err)?;
    chart
        .draw_series(
            data.items
                .iter()
                .filter(|it| it.frontier)
                .map(|it| TriangleMarker::new((it.x, it.y), FRONTIER_R, FRONTIER_COLOR.filled())),
        )
        .map_err(err)?;

    // Labels (anchored at their left/vertical centre, which both backends
    // place consistently).
    let anchored = label_font.pos(Pos::new(HPos::Left, VPos::Center));
    for (r, text, leader) in &labels {
        if let Some((a, b)) = leader {
            let px = |p: &(f64, f64)| (p.0.round() as i32, p.1.round() as i32);
            root.draw(&PathElement::new(
                vec![px(a), px(b)],
                RGBColor(140, 140, 140).stroke_width(1),
            ))
            .map_err(err)?;
        }
        let at = (
            r.x0.round() as i32,
            ((r.y0 + r.y1) / 2.0).round() as i32 + text_dy,
        );
        root.draw(&Text::new(*text, at, &anchored)).map_err(err)?;
    }

    // Legend box.
    let lx = legend.x0.round() as i32;
    let ly = legend.y0.round() as i32;
    root.draw(&Rectangle::new(
        [
            (lx, ly),
            (legend.x1.round() as i32, legend.y1.round() as i32),
        ],
        WHITE.mix(0.92).filled(),
    ))
    .map_err(err)?;
    root.draw(&Rectangle::new(
        [
            (lx, ly),
            (legend.x1.round() as i32, legend.y1.round() as i32),
        ],
        RGBColor(160, 160, 160),
    ))
    .map_err(err)?;
    let legend_text = legend_font.pos(Pos::new(HPos::Left, VPos::Center));
    for (k, (text, glyph)) in entries.iter().enumerate() {
        let cy = (legend.y0 + pad + row_h * (k as f64 + 0.5) - 2.0).round() as i32;
        let gx0 = (legend.x0 + pad).round() as i32;
        let gx1 = gx0 + glyph_w as i32;
        let gc = (gx0 + gx1) / 2;
        match glyph {
            LegendGlyph::Frontier => {
                root.draw(&PathElement::new(
                    vec![(gx0, cy), (gx1, cy)],
                    FRONTIER_COLOR.stroke_width(2),
                ))
                .map_err(err)?;
                root.draw(&TriangleMarker::new(
                    (gc, cy),
                    FRONTIER_R,
                    FRONTIER_COLOR.filled(),
                ))
                .map_err(err)?;
            }
            LegendGlyph::Other => {
                root.draw(&Circle::new((gc, cy), OTHER_R, OTHER_COLOR.filled()))
                    .map_err(err)?;
            }
            LegendGlyph::Interval => {
                let style = RGBColor(90, 90, 90).stroke_width(2);
                let half = (text_h / 2.0).round() as i32 + 1;
                root.draw(&PathElement::new(
                    vec![(gc, cy - half), (gc, cy + half)],
                    style,
                ))
                .map_err(err)?;
                for y in [cy - half, cy + half] {
                    root.draw(&PathElement::new(vec![(gc - CAP, y), (gc + CAP, y)], style))
                        .map_err(err)?;
                }
            }
        }
        let tx = gx1 + 8;
        root.draw(&Text::new(*text, (tx, cy + text_dy), &legend_text))
            .map_err(err)?;
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum LegendGlyph {
    Frontier,
    Other,
    Interval,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(label: &str, accuracy: f64, mean_tokens: f64) -> Point {
        Point {
            label: label.to_string(),
            accuracy,
            ci_low: (accuracy - 0.05).max(0.0),
            ci_high: (accuracy + 0.05).min(1.0),
            mean_tokens,
        }
    }

    /// A fresh, empty directory under the system temp dir.
    fn temp_dir(name: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("plot-test-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn frontier_excludes_dominated_and_sorts_by_tokens() {
        let points = vec![
            pt("big", 0.80, 900.0),
            pt("dominated", 0.50, 500.0), // "mid" is better and cheaper
            pt("small", 0.40, 100.0),
            pt("mid", 0.60, 300.0),
            pt("costly-worse", 0.70, 1000.0), // "big" is better and cheaper
        ];
        assert_eq!(pareto_frontier(&points), vec![2, 3, 0]);
    }

    #[test]
    fn frontier_ties() {
        // Same tokens, lower accuracy: dominated.
        // Same accuracy, more tokens: dominated.
        // Exact duplicates: neither dominates the other, both kept.
        let points = vec![
            pt("a", 0.5, 100.0),
            pt("a-worse", 0.4, 100.0),
            pt("a-costlier", 0.5, 150.0),
            pt("b", 0.7, 200.0),
            pt("b-copy", 0.7, 200.0),
        ];
        assert_eq!(pareto_frontier(&points), vec![0, 3, 4]);
    }

    #[test]
    fn frontier_edge_cases() {
        assert!(pareto_frontier(&[]).is_empty());
        assert_eq!(pareto_frontier(&[pt("only", 0.3, 0.0)]), vec![0]);
        let points = vec![
            pt("nan-acc", f64::NAN, 10.0),
            pt("ok", 0.5, 50.0),
            pt("nan-tok", 0.9, f64::NAN),
            pt("neg-tok", 0.9, -1.0),
        ];
        assert_eq!(pareto_frontier(&points), vec![1]);
        // All-zero tokens: only the most accurate survive.
        let points = vec![pt("x", 0.2, 0.0), pt("y", 0.6, 0.0), pt("z", 0.6, 0.0)];
        assert_eq!(pareto_frontier(&points), vec![1, 2]);
    }

    #[test]
    fn writes_svg_and_png() {
        let dir = temp_dir("files");
        let stem = dir.join("sub").join("accuracy_vs_tokens");
        let points = vec![
            pt("greedy", 0.42, 180.0),
            pt("cot-short", 0.55, 420.0),
            pt("cot-long", 0.61, 1100.0),
            pt("self-consistency & vote", 0.58, 2400.0),
            pt("tree <search>", 0.66, 3900.0),
        ];
        plot_accuracy_vs_tokens(&points, "Accuracy vs tokens", &stem).unwrap();

        let svg_path = dir.join("sub/accuracy_vs_tokens.svg");
        let png_path = dir.join("sub/accuracy_vs_tokens.png");
        assert!(svg_path.is_file() && png_path.is_file());
        let svg = std::fs::read_to_string(&svg_path).unwrap();
        for label in ["greedy", "cot-short", "cot-long", "Pareto frontier"] {
            assert!(svg.contains(label), "SVG lacks {label:?}");
        }
        assert!(svg.contains("self-consistency &amp; vote"));
        assert!(svg.contains("tree &lt;search&gt;"));
        let png = std::fs::read(&png_path).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn edge_cases_do_not_panic() {
        let dir = temp_dir("edge");

        let err = plot_accuracy_vs_tokens(&[], "t", &dir.join("empty")).unwrap_err();
        assert!(matches!(err, PlotError::NoPoints { .. }));
        assert!(err.to_string().contains("empty"));

        let all_nan = vec![pt("n", f64::NAN, 1.0), pt("m", 0.5, f64::NAN)];
        let err = plot_accuracy_vs_tokens(&all_nan, "t", &dir.join("nan")).unwrap_err();
        assert!(matches!(err, PlotError::NoValidPoints { total: 2, .. }));

        let cases: Vec<(&str, Vec<Point>)> = vec![
            ("one", vec![pt("alone", 0.5, 300.0)]),
            ("zeros", vec![pt("a", 0.3, 0.0), pt("b", 0.6, 0.0)]),
            (
                "some-nan",
                vec![
                    pt("ok", 0.5, 100.0),
                    pt("nan", f64::NAN, 200.0),
                    Point {
                        ci_low: f64::NAN,
                        ..pt("no-ci", 0.7, 300.0)
                    },
                ],
            ),
            ("perfect", vec![pt("p", 1.0, 10.0), pt("q", 0.0, 5.0)]),
            ("equal", vec![pt("", 0.5, 7.0), pt("same", 0.5, 7.0)]),
        ];
        for (name, points) in cases {
            let stem = dir.join(name);
            plot_accuracy_vs_tokens(&points, "", &stem).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(with_suffix(&stem, ".png").is_file(), "{name}");
        }
        let svg = std::fs::read_to_string(dir.join("some-nan.svg")).unwrap();
        assert!(svg.contains("no-ci") && !svg.contains(">nan<"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
