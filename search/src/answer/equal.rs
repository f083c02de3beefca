//! Equivalence of a predicted and a gold answer.

use super::normalize::has_percent;
use super::{normalize, parse_number};

fn close(a: f64, b: f64) -> bool {
    let diff = (a - b).abs();
    diff <= 1e-9 || diff <= 1e-4 * a.abs().max(b.abs())
}

/// Whether a predicted answer matches the gold answer.
///
/// In order:
/// 1. case-insensitive equality of the [`normalize`]d strings;
/// 2. both numeric and close (relative tolerance 1e-4, absolute 1e-9 near
///    zero); when one raw string carries `%`, `pred == gold * 100` and
///    `pred == gold / 100` are also accepted (so `50%` ≡ `50` ≡ `0.5`);
/// 3. equality after removing `{}()[]` and spaces — except that interval
///    end brackets must agree (`[0,1)` ≢ `(0,1]`) and strings containing
///    `\frac` are skipped (there braces carry meaning);
/// 4. tuples/lists `(a, b, ...)` compared element by element.
///
/// Two answers that normalise to the empty string are not equivalent.
pub fn equivalent(pred: &str, gold: &str) -> bool {
    let np = normalize(pred);
    let ng = normalize(gold);
    if np.is_empty() || ng.is_empty() {
        return false;
    }
    if np.to_lowercase() == ng.to_lowercase() {
        return true;
    }
    if let (Some(a), Some(b)) = (parse_number(pred), parse_number(gold)) {
        if close(a, b) {
            return true;
        }
        if (has_percent(pred) || has_percent(gold)) && (close(a, b * 100.0) || close(a, b / 100.0))
        {
            return true;
        }
    }
    if bracketless_equal(&np, &ng) {
        return true;
    }
    tuple_equivalent(&np, &ng)
}

fn bracketless_equal(a: &str, b: &str) -> bool {
    if a.contains("\\frac") || b.contains("\\frac") {
        return false;
    }
    let ends = |s: &str| (s.chars().next(), s.chars().next_back());
    let is_interval = |s: &str| matches!(ends(s), (Some('(' | '['), Some(')' | ']')));
    if is_interval(a) && is_interval(b) && ends(a) != ends(b) {
        return false;
    }
    let strip = |s: &str| -> String {
        s.chars()
            .filter(|c| !matches!(c, '{' | '}' | '(' | ')' | '[' | ']') && !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let (sa, sb) = (strip(a), strip(b));
    !sa.is_empty() && sa == sb
}

/// Outer brackets (if any) and the top-level parts of a tuple.
type SplitTuple<'a> = (Option<(char, char)>, Vec<&'a str>);

/// Splits `(a,b,..)`, `[a,b,..]` or bare `a,b,..` at top-level commas.
/// Returns the outer brackets (if any) and at least two parts.
fn split_tuple(s: &str) -> Option<SplitTuple<'_>> {
    let mut outer = None;
    let mut inner = s;
    let first = s.chars().next()?;
    let last = s.chars().next_back()?;
    if s.len() >= 2 && matches!((first, last), ('(' | '[', ')' | ']')) {
        // Only strip if the first bracket closes at the very end.
        let mut depth = 0i32;
        let mut closes_at_end = true;
        for (i, c) in s.char_indices() {
            match c {
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => {
                    depth -= 1;
                    if depth == 0 && i + c.len_utf8() != s.len() {
                        closes_at_end = false;
                        break;
                    }
                }
                _ => {}
            }
        }
        if closes_at_end {
            outer = Some((first, last));
            inner = &s[1..s.len() - 1];
        }
    }
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    (parts.len() >= 2).then_some((outer, parts))
}

fn tuple_equivalent(a: &str, b: &str) -> bool {
    let (Some((oa, pa)), Some((ob, pb))) = (split_tuple(a), split_tuple(b)) else {
        return false;
    };
    if matches!((oa, ob), (Some(x), Some(y)) if x != y) {
        return false;
    }
    pa.len() == pb.len() && pa.iter().zip(&pb).all(|(x, y)| equivalent(x, y))
}
