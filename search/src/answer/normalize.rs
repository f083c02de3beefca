//! Normalisation (a practical MATH `strip_string`) and numeric parsing.

use super::re;
use regex::{Captures, Regex};
use std::sync::LazyLock;

static LEFT_RIGHT_RE: LazyLock<Regex> = LazyLock::new(|| re(r"\\(?:left|right)\b"));

static TEXT_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"\\(?:text|textbf|textit|textrm|mbox|mathrm|mathbf)\s*\{([^{}]*)\}"));

static LEADING_VAR_RE: LazyLock<Regex> = LazyLock::new(|| re(r"(?s)^[A-Za-z]\s*=\s*(.*)$"));

static UNIT_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?is)^(.*[0-9}])\s*(?:square\s+|sq\.?\s*|cubic\s+)?",
        r"(?:mph|km/h|kph|kilometers?|kilometres?|km|meters?|metres?|cm|centimeters?|",
        r"centimetres?|mm|millimeters?|feet|foot|ft|inches|inch|miles?|yards?|yd|",
        r"hours?|hrs?|minutes?|mins?|seconds?|secs?|days?|weeks?|months?|years?|yrs?|",
        r"dollars?|cents?|pounds?|lbs?|kg|kilograms?|grams?|ounces?|oz|liters?|litres?|",
        r"ml|gallons?|percent|degrees?|units?)",
        r"(?:\^\{?[0-9]\}?|²|³)?\.?$"
    ))
});

/// Single-letter units need a space before them (`5 m`), so that `2m` as an
/// algebraic term survives.
static SHORT_UNIT_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?s)^(.*[0-9}])\s+(?:m|g)(?:\^\{?[0-9]\}?|²|³)?\.?$"));

static GROUPED_NUMBER_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"^[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?$"));

static BARE_DECIMAL_RE: LazyLock<Regex> = LazyLock::new(|| re(r"(^|[^0-9])\.([0-9])"));

static DECIMAL_RE: LazyLock<Regex> = LazyLock::new(|| re(r"[0-9]+\.[0-9]+"));

static FRAC_TWO_RE: LazyLock<Regex> = LazyLock::new(|| re(r"\\frac([0-9A-Za-z])([0-9A-Za-z])"));
static FRAC_FIRST_RE: LazyLock<Regex> = LazyLock::new(|| re(r"\\frac([0-9A-Za-z])\{"));
static FRAC_SECOND_RE: LazyLock<Regex> = LazyLock::new(|| re(r"\\frac\{([^{}]*)\}([0-9A-Za-z])"));
static SQRT_RE: LazyLock<Regex> = LazyLock::new(|| re(r"\\sqrt([0-9A-Za-z])"));

static PLAIN_NUM_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$"));
static SLASH_FRAC_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"^([+-]?[0-9]+(?:\.[0-9]+)?)/([+-]?[0-9]+(?:\.[0-9]+)?)$"));
static TEX_FRAC_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^([+-]?)\\frac\{([+-]?[0-9]+(?:\.[0-9]+)?)\}\{([+-]?[0-9]+(?:\.[0-9]+)?)\}$")
});

// ---------------------------------------------------------------------------
// Normalisation
// ---------------------------------------------------------------------------

/// Normalises an answer string (a practical version of the MATH
/// `strip_string`): LaTeX spacing, `\left`/`\right`, `$`, `%`, degree signs,
/// `\text{..}` wrappers, trailing units after a number, a leading `x =`,
/// thousands commas, trailing zeros (`5.50` → `5.5`), `.5` → `0.5`,
/// `\frac12` → `\frac{1}{2}`, `\sqrt3` → `\sqrt{3}`, all whitespace and a
/// trailing `.` are removed or canonicalised. Case is preserved.
pub fn normalize(ans: &str) -> String {
    let mut s: String = ans
        .trim()
        .chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            '\u{2212}' => '-', // Unicode minus
            c => c,
        })
        .collect();

    s = s.replace("\\!", "");
    for spacing in ["\\,", "\\;", "\\:", "\\ "] {
        s = s.replace(spacing, " ");
    }
    s = LEFT_RIGHT_RE.replace_all(&s, "").into_owned();
    s = s
        .replace("\\dfrac", "\\frac")
        .replace("\\tfrac", "\\frac")
        .replace("\\displaystyle", "");
    for degree in ["^{\\circ}", "^\\circ", "°"] {
        s = s.replace(degree, "");
    }
    for token in ["\\$", "$", "\\(", "\\)", "\\[", "\\]", "\\%", "%"] {
        s = s.replace(token, "");
    }
    // Unwrap \text{..} and friends, innermost first.
    for _ in 0..8 {
        let next = TEXT_RE.replace_all(&s, "$1").into_owned();
        if next == s {
            break;
        }
        s = next;
    }
    s = s.trim().trim_end_matches('.').trim().to_string();

    if let Some(c) = LEADING_VAR_RE.captures(&s) {
        let rest = &c[1];
        if !rest.contains('=') && !rest.trim().is_empty() {
            s = rest.trim().to_string();
        }
    }
    if let Some(c) = UNIT_RE.captures(&s) {
        s = c[1].trim().to_string();
    } else if let Some(c) = SHORT_UNIT_RE.captures(&s) {
        s = c[1].trim().to_string();
    }
    if GROUPED_NUMBER_RE.is_match(&s) {
        s = s.replace(',', "");
    }

    s.retain(|c| !c.is_whitespace());

    s = BARE_DECIMAL_RE.replace_all(&s, "${1}0.${2}").into_owned();
    s = DECIMAL_RE
        .replace_all(&s, |c: &Captures| trim_decimal_zeros(&c[0]))
        .into_owned();
    s = FRAC_TWO_RE
        .replace_all(&s, "\\frac{${1}}{${2}}")
        .into_owned();
    s = FRAC_FIRST_RE.replace_all(&s, "\\frac{${1}}{").into_owned();
    s = FRAC_SECOND_RE
        .replace_all(&s, "\\frac{${1}}{${2}}")
        .into_owned();
    s = SQRT_RE.replace_all(&s, "\\sqrt{${1}}").into_owned();

    s.trim_end_matches('.').to_string()
}

/// `5.00` → `5`, `5.50` → `5.5` (input is `[0-9]+\.[0-9]+`).
fn trim_decimal_zeros(num: &str) -> String {
    match num.split_once('.') {
        Some((int, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                int.to_string()
            } else {
                format!("{int}.{frac}")
            }
        }
        None => num.to_string(),
    }
}

/// True when the raw string ends in a percent sign (`50%`, `50\%`,
/// `$50\%$`, `\text{50\%}`) or the word `percent`.
pub(super) fn has_percent(raw: &str) -> bool {
    let t = raw.trim_end_matches(|c: char| c.is_whitespace() || matches!(c, '$' | '.' | '}'));
    t.ends_with('%')
        || t.get(t.len().saturating_sub(7)..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case("percent"))
}

/// Parses a numeric answer: plain integers/decimals with optional sign,
/// `a/b`, `\frac{a}{b}` and `-\frac{a}{b}` (after [`normalize`], so `$`,
/// units, `x =` and thousands commas are already gone).
///
/// A trailing `%` (or the word `percent`) divides by 100. Because
/// `normalize` deletes `%`, this is detected on the raw string *before*
/// normalising: `parse_number("50%") == Some(0.5)`.
///
/// Anything with letters left over is not a number. Division by zero and
/// non-finite values give `None`.
pub fn parse_number(s: &str) -> Option<f64> {
    let n = normalize(s);
    let value = if PLAIN_NUM_RE.is_match(&n) {
        n.parse::<f64>().ok()?
    } else if let Some(c) = SLASH_FRAC_RE.captures(&n) {
        divide(&c[1], &c[2])?
    } else if let Some(c) = TEX_FRAC_RE.captures(&n) {
        let v = divide(&c[2], &c[3])?;
        if &c[1] == "-" {
            -v
        } else {
            v
        }
    } else {
        return None;
    };
    let value = if has_percent(s) { value / 100.0 } else { value };
    value.is_finite().then_some(value)
}

fn divide(a: &str, b: &str) -> Option<f64> {
    let a: f64 = a.parse().ok()?;
    let b: f64 = b.parse().ok()?;
    (b != 0.0).then(|| a / b)
}
