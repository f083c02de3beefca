//! Math-answer toolkit: answer extraction, normalisation and equivalence.
//!
//! Extraction ([`extract_answer`], [`gsm8k_gold`]), normalisation
//! ([`normalize`], [`parse_number`]) and equivalence ([`equivalent`],
//! [`answer_key`]) live here once, and every voting rule (majority vote,
//! weighted vote, best-of-n, ...) shares them, so that two rules can never
//! disagree about what "the same answer" means.
//!
//! Design choices worth knowing:
//!
//! * [`extract_answer`] returns an already [`normalize`]d string, so a
//!   percent sign in the model output is gone by the time it is returned
//!   (`"50%"` → `"50"`).
//! * Percentages: [`parse_number`] reads the *raw* string before
//!   normalisation drops the `%`, so `parse_number("50%") == Some(0.5)`.
//!   [`equivalent`] treats `50%` as equivalent to both `50` and `0.5`
//!   (the ×100 / ÷100 relation is only accepted when one side carries a `%`
//!   or the word `percent`). One key cannot match both, so [`answer_key`]
//!   gives `50%` the key `"0.5"` and `50` the key `"50"`.
//! * Digit-group commas are only removed when the whole answer is a
//!   thousands-grouped number (`1,000` → `1000`), so tuples such as
//!   `(5,100)` keep their comma.
//! * [`equivalent`] compares by structure (sets and solution lists without
//!   order, tuples and intervals in order, matrices, relations either way
//!   round, `\pm` as its two values) and, for two single expressions, by
//!   evaluating both at random points (`x+1` ≡ `1+x`); its doc lists every
//!   rule. It errs towards "not equal": whatever could be read two ways is
//!   left to plain string comparison.
//! * Every string operation uses `find`, regex match offsets or
//!   `char_indices`, so no input (empty, non-ASCII, emoji) can make the code
//!   slice a `str` off a char boundary, and nothing recurses without a depth
//!   bound, so deep nesting cannot overflow the stack.
//!
//! Layout: `extract` (finding the answer), `normalize` (canonical strings and
//! numbers), `shape` (the structure of an answer), `expr` (LaTeX expressions
//! evaluated numerically), `equal` (the equivalence rules).

mod equal;
mod expr;
mod extract;
mod normalize;
#[cfg(test)]
mod props;
mod shape;
#[cfg(test)]
mod tests;

pub use equal::equivalent;
pub use extract::{extract_answer, gsm8k_gold};
pub use normalize::{normalize, parse_number};

use regex::Regex;

/// Compiles one of the module's hard-coded patterns.
fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("hard-coded regex must compile")
}

// ---------------------------------------------------------------------------
// Grouping and equivalence
// ---------------------------------------------------------------------------

/// Canonical grouping key for voting.
///
/// Numbers (per [`parse_number`]) are rendered canonically: integers without
/// a decimal point, other values rounded to 6 decimal places when
/// `|x| >= 1` and to 6 significant digits when `|x| < 1`, then printed as the
/// shortest round-trip decimal (`0.5`, `1/2`, `\frac{1}{2}` → `"0.5"`;
/// `18`, `18.0`, `$18`, `18 dollars` → `"18"`; `1/3` → `"0.333333"`).
/// Anything else keys on its [`normalize`]d string (case preserved).
pub fn answer_key(ans: &str) -> String {
    match parse_number(ans) {
        Some(v) => canonical_number(v),
        None => normalize(ans),
    }
}

fn canonical_number(v: f64) -> String {
    let rounded: f64 = if v.abs() >= 1.0 {
        format!("{v:.6}").parse().unwrap_or(v)
    } else {
        format!("{v:.5e}").parse().unwrap_or(v)
    };
    if rounded == 0.0 {
        "0".to_string() // also folds -0
    } else {
        format!("{rounded}")
    }
}
