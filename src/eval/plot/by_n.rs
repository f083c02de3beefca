//! "Accuracy against N" chart: one line per selection method over the sample counts
//! the curves were recomputed at (1, 2, 4, …, evenly spaced), the legend to the right.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::Path;

use super::{
    write_chart, Chart, PlotError, AXIS_DESC_SIZE, FONT, LEGEND_SIZE, TEXT_COLOR, TICK_SIZE,
    TITLE_SIZE,
};
use crate::eval::curves::Curve;

const WIDTH: u32 = 1040;
const HEIGHT: u32 = 560;
/// Width of the legend column at the right.
const LEGEND_W: u32 = 300;

/// Line colours, cycled (Tableau 10).
const COLORS: [RGBColor; 10] = [
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

/// Writes `<stem>.svg` and `<stem>.png`: accuracy (%) against N for each curve. Every
/// curve must have points at the same Ns (as [`crate::eval::curves::curves`] gives).
pub fn plot_accuracy_vs_n(curves: &[Curve], title: &str, stem: &Path) -> Result<(), PlotError> {
    let ns: Vec<usize> = curves
        .first()
        .map(|c| c.points.iter().map(|p| p.0).collect())
        .unwrap_or_default();
    if ns.is_empty() {
        return Err(PlotError::NoPoints {
            stem: stem.to_path_buf(),
        });
    }
    write_chart(&ByN { curves, ns, title }, stem, (WIDTH, HEIGHT))
}

struct ByN<'a> {
    curves: &'a [Curve],
    ns: Vec<usize>,
    title: &'a str,
}

impl Chart for ByN<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        text_dy: i32,
    ) -> Result<(), String>
    where
        DB::ErrorType: 'static,
    {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(err)?;
        // The title across the whole width, above the chart and its legend.
        let title = self.title.trim();
        let body = if title.is_empty() {
            root.clone()
        } else {
            root.titled(title, (FONT, TITLE_SIZE * 0.8, FontStyle::Bold).into_font())
                .map_err(err)?
        };
        let (plot, legend) = body.split_horizontally(WIDTH - LEGEND_W);
        let values = self
            .curves
            .iter()
            .flat_map(|c| c.points.iter().map(|p| 100.0 * p.1));
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        let (y0, y1) = ((lo - 3.0).max(0.0).floor(), (hi + 3.0).min(100.0).ceil());
        let last = (self.ns.len() - 1) as f64;
        let mut chart = ChartBuilder::on(&plot)
            .margin(12)
            .x_label_area_size(52)
            .y_label_area_size(66)
            .build_cartesian_2d(-0.25..last + 0.25, y0..y1.max(y0 + 1.0))
            .map_err(err)?;
        let ns = &self.ns;
        // The x axis is the index of N in `ns`: ticks only where an N is.
        let x_fmt = |v: &f64| {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < ns.len() {
                ns[i as usize].to_string()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .x_desc("Samples voted over (N)")
            .y_desc("Accuracy (%)")
            .x_labels(ns.len() * 4 + 1)
            .y_labels(8)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&|v: &f64| format!("{v:.0}"))
            .disable_x_mesh()
            .label_style((FONT, TICK_SIZE).into_font().color(&TEXT_COLOR))
            .axis_desc_style((FONT, AXIS_DESC_SIZE).into_font().color(&TEXT_COLOR))
            .bold_line_style(RGBColor(220, 220, 220))
            .light_line_style(RGBColor(243, 243, 243))
            .axis_style(RGBColor(90, 90, 90))
            .draw()
            .map_err(err)?;
        for (i, c) in self.curves.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            // The second round through the colours is dashed-looking: thinner lines.
            let width = if i < COLORS.len() { 2 } else { 1 };
            let pts: Vec<(f64, f64)> = c
                .points
                .iter()
                .enumerate()
                .map(|(j, p)| (j as f64, 100.0 * p.1))
                .collect();
            chart
                .draw_series(LineSeries::new(
                    pts.iter().copied(),
                    color.stroke_width(width),
                ))
                .map_err(err)?;
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(err)?;
        }
        // The legend: a line sample and the method's name per curve.
        let style = (FONT, LEGEND_SIZE).into_font().color(&TEXT_COLOR);
        let row = (LEGEND_SIZE * 1.6) as i32;
        let top = 30;
        for (i, c) in self.curves.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let y = top + i as i32 * row;
            legend
                .draw(&PathElement::new(
                    vec![(8, y), (36, y)],
                    color.stroke_width(if i < COLORS.len() { 2 } else { 1 }),
                ))
                .map_err(err)?;
            legend
                .draw(&Text::new(
                    c.method.clone(),
                    (44, y - (LEGEND_SIZE / 2.0) as i32 + text_dy),
                    style.clone(),
                ))
                .map_err(err)?;
        }
        Ok(())
    }
}
