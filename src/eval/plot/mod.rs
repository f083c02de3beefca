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
//!
//! Here: the points, the frontier and the entry point; the font in `font`, the points
//! in chart units in `prepare`, label and legend placement in `layout`, the drawing
//! itself in `draw`.

mod by_n;
mod draw;
mod font;
mod layout;
mod prepare;

use std::path::{Path, PathBuf};

use plotters::prelude::*;

pub use by_n::plot_accuracy_vs_n;
use draw::draw_chart;
use font::ensure_font;
use prepare::Prepared;

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

    write_chart(&TokensChart { data: &data, title }, stem, (WIDTH, HEIGHT))
}

/// A chart that can be drawn on either backend; `text_dy` shifts vertically centred
/// text down by that many pixels (the PNG rasteriser places it higher than SVG
/// renderers do).
trait Chart {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
        text_dy: i32,
    ) -> Result<(), String>
    where
        DB::ErrorType: 'static;
}

struct TokensChart<'a> {
    data: &'a Prepared,
    title: &'a str,
}

impl Chart for TokensChart<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
        text_dy: i32,
    ) -> Result<(), String>
    where
        DB::ErrorType: 'static,
    {
        draw_chart(root, self.data, self.title, text_dy)
    }
}

/// Writes `chart` as `<stem>.svg` and `<stem>.png` of `size` pixels: the font loaded
/// and the folder made first.
fn write_chart(chart: &impl Chart, stem: &Path, size: (u32, u32)) -> Result<(), PlotError> {
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
        let root = SVGBackend::new(&svg_path, size).into_drawing_area();
        chart
            .draw(&root, 0)
            .and_then(|()| root.present().map_err(|e| e.to_string()))
            .map_err(|message| PlotError::Draw {
                file: svg_path.clone(),
                message,
            })?;
    }
    {
        let root = BitMapBackend::new(&png_path, size).into_drawing_area();
        // plotters' ab_glyph rasteriser puts vertically centred text about
        // 0.12 em higher than SVG renderers do; compensate for our labels.
        let text_dy = (LABEL_SIZE * 0.12).round() as i32;
        chart
            .draw(&root, text_dy)
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
