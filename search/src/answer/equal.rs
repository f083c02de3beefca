//! Equivalence of a predicted and a gold answer.

use super::expr::same_value;
use super::normalize;
use super::normalize::{has_percent, parse_normalized};
#[cfg(doc)]
use super::parse_number;
use super::shape::{Rel, Shape};

/// Deepest nesting (tuples in sets in ...) compared part by part.
const MAX_DEPTH: usize = 8;
/// Most comparisons one call of [`equivalent`] makes, all parts together.
const BUDGET: usize = 4096;

/// Two numbers are the same answer: relative tolerance 1e-4, absolute 1e-9.
pub(super) fn close(a: f64, b: f64) -> bool {
    let diff = (a - b).abs();
    diff <= 1e-9 || diff <= 1e-4 * a.abs().max(b.abs())
}

/// Whether a predicted answer matches the gold answer.
///
/// Both are [`normalize`]d first (so `\left(`, `\dfrac`, `\,`, units,
/// labels such as `x =`, `f(x) =`, `(p,q) =`, `x \in` are already gone).
/// Then, in order:
/// 1. case-insensitive equality of the normalised strings;
/// 2. both numeric ([`parse_number`]: decimals, fractions, mixed numbers,
///    scientific notation): equal when close (relative 1e-4, absolute 1e-9
///    near zero), and when one raw string carries `%`, `pred == gold * 100`
///    and `pred == gold / 100` are also accepted (so `50%` ≡ `50` ≡ `0.5`);
///    two different numbers are never equivalent;
/// 3. by structure, part by part (each part by these same rules):
///    * matrices (`pmatrix`, `bmatrix`, ...) entry by entry, same shape; a
///      one-row or one-column matrix also matches a tuple of its entries;
///    * sets `\{..\}`, bare lists `a, b` (solutions) and `a \pm b` (its two
///      values) as unordered collections of equal size, matched one to one
///      (`\{1,2\}` ≡ `\{2,1\}`, `x=1, x=2` ≡ `2, 1`, `1 \pm \sqrt2` ≡
///      `1+\sqrt2, 1-\sqrt2`); a list labelled with *different* variables
///      (`x=1, y=2`) is an assignment: it matches another by variable, and an
///      unlabelled tuple or list in order;
///    * tuples and intervals element by element, with the same brackets
///      (`[0,1)` ≢ `(0,1]`); a bare list matches a tuple in order;
///    * relations `a < b ≤ c` with the same relations, read either way round
///      (`5 \ge x` ≡ `x \le 5`; `a = b` ≡ `b = a`), term by term;
/// 4. two single values: equal after removing braces (when there is no
///    `\frac`, `^` or `_`, where braces carry meaning), or the same number or
///    function when both parse as expressions — see the `expr` module: they
///    are evaluated at random points, so `x+1` ≡ `1+x`, `2x` ≡ `x\cdot 2`,
///    `\frac{\sqrt2}{2}` ≡ `0.70711`, but `2x` ≢ `x^2`.
///
/// Two answers that normalise to the empty string are not equivalent. The
/// work is bounded (nesting depth and number of comparisons), so no input can
/// make this slow.
pub fn equivalent(pred: &str, gold: &str) -> bool {
    let mut budget = BUDGET;
    equal_at(pred, gold, 0, &mut budget)
}

fn equal_at(pred: &str, gold: &str, depth: usize, budget: &mut usize) -> bool {
    let Some(left) = budget.checked_sub(1) else {
        return false;
    };
    *budget = left;
    let np = normalize(pred);
    let ng = normalize(gold);
    if np.is_empty() || ng.is_empty() {
        return false;
    }
    if np.to_lowercase() == ng.to_lowercase() {
        return true;
    }
    let (pa, pg) = (has_percent(pred), has_percent(gold));
    if let (Some(a), Some(b)) = (parse_normalized(&np, pa), parse_normalized(&ng, pg)) {
        let percent = pa || pg;
        // Both ways round, so the absolute tolerance cannot make this asymmetric.
        let hundredfold = |x: f64, y: f64| close(x, y * 100.0) || close(x * 100.0, y);
        return close(a, b) || (percent && (hundredfold(a, b) || hundredfold(b, a)));
    }
    if depth >= MAX_DEPTH {
        return false;
    }
    let mut same = |a: &str, b: &str| equal_at(a, b, depth + 1, budget);
    match (Shape::of(&np), Shape::of(&ng)) {
        (Shape::Single, Shape::Single) => {
            braceless_equal(&np, &ng) || same_value(&np, &ng) == Some(true)
        }
        (Shape::Matrix(a), Shape::Matrix(b)) => {
            a.len() == b.len()
                && a.iter().zip(&b).all(|(ra, rb)| {
                    ra.len() == rb.len() && ra.iter().zip(rb).all(|(x, y)| same(x, y))
                })
        }
        (Shape::Matrix(m), Shape::Tuple { items, .. })
        | (Shape::Tuple { items, .. }, Shape::Matrix(m)) => match vector(&m) {
            Some(entries) => in_order(&entries, &items, &mut same),
            None => false,
        },
        (
            Shape::Tuple {
                open: oa,
                close: ca,
                items: a,
            },
            Shape::Tuple {
                open: ob,
                close: cb,
                items: b,
            },
        ) => (oa, ca) == (ob, cb) && in_order(&a, &b, &mut same),
        (Shape::Tuple { items: t, .. }, Shape::List(l))
        | (Shape::List(l), Shape::Tuple { items: t, .. }) => in_order(&l, &t, &mut same),
        (Shape::Relation { terms: ta, ops: oa }, Shape::Relation { terms: tb, ops: ob }) => {
            relation_equal((&ta, &oa), (&tb, &ob), &mut same)
        }
        (a, b) => match (a.unordered(), b.unordered()) {
            (Some(a), Some(b)) => collections_equal(a, b, &mut same),
            _ => false,
        },
    }
}

/// The entries of a one-row or one-column matrix.
fn vector(m: &[Vec<String>]) -> Option<Vec<String>> {
    if m.len() == 1 {
        return Some(m[0].clone());
    }
    m.iter()
        .map(|row| (row.len() == 1).then(|| row[0].clone()))
        .collect()
}

fn in_order(a: &[String], b: &[String], same: &mut impl FnMut(&str, &str) -> bool) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
}

/// Equal after dropping braces and spaces (`\mathbb{R}` ≡ `\mathbb R`),
/// unless braces carry meaning there (`\frac`, `^`, `_`).
fn braceless_equal(a: &str, b: &str) -> bool {
    if [a, b]
        .iter()
        .any(|s| s.contains("\\frac") || s.contains(['^', '_']))
    {
        return false;
    }
    let strip = |s: &str| -> String {
        s.chars()
            .filter(|c| !matches!(c, '{' | '}') && !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let (sa, sb) = (strip(a), strip(b));
    !sa.is_empty() && sa == sb
}

/// Relations with the same operators, after turning `>`/`≥` chains round;
/// a single symmetric relation (`=`, `≠`, `≈`) may be read either way.
fn relation_equal(
    (ta, oa): (&[String], &[Rel]),
    (tb, ob): (&[String], &[Rel]),
    same: &mut impl FnMut(&str, &str) -> bool,
) -> bool {
    let orient = |terms: &[String], ops: &[Rel]| -> (Vec<String>, Vec<Rel>) {
        if ops.iter().all(|o| matches!(o, Rel::Gt | Rel::Ge)) {
            let terms = terms.iter().rev().cloned().collect();
            (terms, ops.iter().rev().map(|o| o.flipped()).collect())
        } else {
            (terms.to_vec(), ops.to_vec())
        }
    };
    let (ta, oa) = orient(ta, oa);
    let (tb, ob) = orient(tb, ob);
    if oa != ob {
        return false;
    }
    if in_order(&ta, &tb, same) {
        return true;
    }
    let symmetric = matches!(oa.as_slice(), [Rel::Eq | Rel::Ne | Rel::Approx]);
    symmetric && same(&ta[0], &tb[1]) && same(&ta[1], &tb[0])
}

/// A list item's label and value: `x=1` → (`x`, `1`).
fn label(item: &str) -> (Option<&str>, &str) {
    let Some((lhs, rhs)) = item.split_once('=') else {
        return (None, item);
    };
    let mut chars = lhs.chars();
    let simple = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && (chars.as_str().is_empty() || chars.as_str().starts_with('_'));
    if simple && !rhs.contains('=') && !rhs.is_empty() {
        (Some(lhs), rhs)
    } else {
        (None, item)
    }
}

/// Unordered collections: equal size, matched one to one. Lists labelled with
/// several variables (`x=1, y=2`) match by variable, or in order against an
/// unlabelled side.
fn collections_equal(
    a: &[String],
    b: &[String],
    same: &mut impl FnMut(&str, &str) -> bool,
) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let la: Vec<_> = a.iter().map(|s| label(s)).collect();
    let lb: Vec<_> = b.iter().map(|s| label(s)).collect();
    let assignment = |ls: &[(Option<&str>, &str)]| {
        let first = ls.first().and_then(|l| l.0);
        ls.iter().all(|l| l.0.is_some()) && ls.iter().any(|l| l.0 != first)
    };
    match (assignment(&la), assignment(&lb)) {
        (true, true) => matching(a.len(), |i, j| la[i].0 == lb[j].0 && same(la[i].1, lb[j].1)),
        (true, false) | (false, true) => la.iter().zip(&lb).all(|(x, y)| same(x.1, y.1)),
        (false, false) => matching(a.len(), |i, j| same(la[i].1, lb[j].1)),
    }
}

/// Whether there is a perfect matching between `n` left and `n` right items
/// (Kuhn's augmenting paths; each pair is compared at most once).
fn matching(n: usize, mut eq: impl FnMut(usize, usize) -> bool) -> bool {
    let mut memo: Vec<Option<bool>> = vec![None; n * n];
    let mut owner: Vec<Option<usize>> = vec![None; n];
    let mut edge =
        |i: usize, j: usize| -> bool { *memo[i * n + j].get_or_insert_with(|| eq(i, j)) };
    for i in 0..n {
        let mut seen = vec![false; n];
        if !augment(i, n, &mut seen, &mut owner, &mut edge) {
            return false;
        }
    }
    true
}

fn augment(
    i: usize,
    n: usize,
    seen: &mut [bool],
    owner: &mut [Option<usize>],
    edge: &mut impl FnMut(usize, usize) -> bool,
) -> bool {
    for j in 0..n {
        if seen[j] || !edge(i, j) {
            continue;
        }
        seen[j] = true;
        let free = match owner[j] {
            None => true,
            Some(k) => augment(k, n, seen, owner, edge),
        };
        if free {
            owner[j] = Some(i);
            return true;
        }
    }
    false
}
