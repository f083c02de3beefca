//! The points as the chart draws them: plottable ones only, in chart units, with the
//! frontier marked and the axis ranges chosen.

use super::{is_plottable, pareto_frontier, Point};

/// One plottable point, in chart units (accuracy and interval in percent).
pub(super) struct Item {
    /// The label, trimmed (empty: none is written).
    pub(super) label: String,
    /// Mean generated tokens.
    pub(super) x: f64,
    /// Accuracy in percent.
    pub(super) y: f64,
    /// (low, high) of the 95% interval in percent, if finite.
    pub(super) ci: Option<(f64, f64)>,
    /// On the Pareto frontier.
    pub(super) frontier: bool,
}

/// Everything the chart shows, ready to draw.
pub(super) struct Prepared {
    /// The plottable points, in input order.
    pub(super) items: Vec<Item>,
    /// Indices into `items` of the frontier, sorted by tokens.
    pub(super) frontier: Vec<usize>,
    /// Right end of the x axis (12% past the largest token count; 1 when all are 0).
    pub(super) x_max: f64,
    /// The y axis range in percent, padded and rounded outward to the grid.
    pub(super) y_range: (f64, f64),
}

impl Prepared {
    /// None when no point is plottable.
    pub(super) fn new(points: &[Point]) -> Option<Self> {
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
