//! Where the legend and the point labels go, in pixels: candidate boxes scored by their
//! overlap with what is already there (markers, error bars, the frontier line, labels
//! placed before) plus a heavy charge for leaving the plotting area; the cheapest wins.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::prepare::Prepared;
use super::{CAP, FRONTIER_R, OTHER_R};

/// An axis-aligned box in pixels (`y` grows downwards).
#[derive(Clone, Copy, Debug)]
pub(super) struct Rect {
    pub(super) x0: f64,
    pub(super) y0: f64,
    pub(super) x1: f64,
    pub(super) y1: f64,
}

impl Rect {
    pub(super) fn new(x: f64, y: f64, w: f64, h: f64) -> Self {
        Self {
            x0: x,
            y0: y,
            x1: x + w,
            y1: y + h,
        }
    }
    pub(super) fn around(cx: f64, cy: f64, half_w: f64, half_h: f64) -> Self {
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
    pub(super) fn grow(&self, d: f64) -> Self {
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

/// What a legend row shows beside its text.
#[derive(Clone, Copy)]
pub(super) enum LegendGlyph {
    /// The frontier's line and triangle.
    Frontier,
    /// A dominated point's circle.
    Other,
    /// An error bar.
    Interval,
}

/// The legend's place and rows.
pub(super) struct Legend {
    /// Its box.
    pub(super) rect: Rect,
    /// Its rows, top to bottom.
    pub(super) entries: Vec<(&'static str, LegendGlyph)>,
    /// Height of the tallest row text.
    pub(super) text_h: f64,
    /// Width of the glyph column.
    pub(super) glyph_w: f64,
    /// Padding inside the box.
    pub(super) pad: f64,
    /// Height of one row.
    pub(super) row_h: f64,
}

/// A line from a marker's edge to a label placed away from it.
pub(super) type Leader = ((f64, f64), (f64, f64));

/// A placed label: its box, its text and its leader line if it has one.
pub(super) type Label<'a> = (Rect, &'a str, Option<Leader>);

/// What labels and the legend must avoid: every marker, error bar and frontier
/// segment. `to_px` maps chart coordinates to pixels.
pub(super) fn obstacles(data: &Prepared, to_px: &dyn Fn(f64, f64) -> (f64, f64)) -> Vec<Rect> {
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
    obstacles
}

/// The legend's rows and the emptiest corner of the plotting area (`bounds`) for it.
pub(super) fn place_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &Prepared,
    font: &TextStyle,
    obstacles: &[Rect],
    bounds: &Rect,
) -> Result<Legend, String> {
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
        let (w, h) = text_size(root, t, font)?;
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
    let rect = corners[pick_best(&corners, &[], obstacles, bounds)];
    Ok(Legend {
        rect,
        entries,
        text_h,
        glyph_w,
        pad,
        row_h,
    })
}

/// Place the point labels greedily, frontier first: beside, above or below each
/// marker, wherever overlaps least (a little cost for distance keeps them close); a
/// label moved away from its marker gets a leader line.
pub(super) fn place_labels<'a, DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &'a Prepared,
    font: &TextStyle,
    obstacles: &[Rect],
    legend: &Rect,
    bounds: &Rect,
    to_px: &dyn Fn(f64, f64) -> (f64, f64),
) -> Result<Vec<Label<'a>>, String> {
    let mut placed_obstacles = obstacles.to_vec();
    placed_obstacles.push(legend.grow(3.0));
    let mut order: Vec<usize> = (0..data.items.len()).collect();
    order.sort_by_key(|&i| !data.items[i].frontier);
    let mut labels: Vec<Label<'a>> = Vec::new();
    for i in order {
        let it = &data.items[i];
        if it.label.is_empty() {
            continue;
        }
        let (w, h) = text_size(root, &it.label, font)?;
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
        let k = pick_best(&padded, &extra, &placed_obstacles, bounds);
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
    Ok(labels)
}
