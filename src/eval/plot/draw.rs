//! Drawing the chart (shared by the SVG and PNG backends): axes and grid, error bars,
//! the frontier line, markers, labels and legend.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

use super::layout::{self, Legend, LegendGlyph, Rect};
use super::prepare::Prepared;
use super::{
    AXIS_DESC_SIZE, CAP, FONT, FRONTIER_COLOR, FRONTIER_R, LABEL_SIZE, LEGEND_SIZE, OTHER_COLOR,
    OTHER_R, TEXT_COLOR, TICK_SIZE, TITLE_SIZE,
};

/// Draw the whole chart on `root`; `text_dy` shifts vertically centred text down by
/// that many pixels (the PNG rasteriser places it higher than SVG renderers do).
pub(super) fn draw_chart<DB: DrawingBackend>(
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

    // Where the legend and the labels go.
    let obstacles = layout::obstacles(data, &to_px);
    let legend_font = (FONT, LEGEND_SIZE).into_font().color(&TEXT_COLOR);
    let Legend {
        rect: legend,
        entries,
        text_h,
        glyph_w,
        pad,
        row_h,
    } = layout::place_legend(root, data, &legend_font, &obstacles, &bounds)?;
    let label_font = (FONT, LABEL_SIZE).into_font().color(&TEXT_COLOR);
    let labels = layout::place_labels(
        root,
        data,
        &label_font,
        &obstacles,
        &legend,
        &bounds,
        &to_px,
    )?;

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
