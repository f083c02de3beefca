//! Normalisation (a practical MATH `strip_string`) and numeric parsing.

use super::re;
use regex::{Captures, Regex};
use std::sync::LazyLock;

static TEXT_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"\\(?:text|textbf|textit|textrm|textsf|texttt|textnormal|textup|mbox|",
        r"mathrm|mathbf|mathit|mathsf|boldsymbol)\s*\{((?:[^{}\\]|\\[^{}])*)\}"
    ))
});

/// ` or ` / ` and ` between listed items (`x=1 or x=2`, `1, 2, and 3`).
static OR_AND_RE: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)\s*,?\s+(?:or|and)\s+"));

static MATRIX_ENV_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"\\(begin|end)\s*\{(?:bmatrix|Bmatrix|matrix|smallmatrix|pmatrix)\}"));
static ARRAY_BEGIN_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"\\begin\s*\{array\}\s*(?:\{[^{}]*\})?"));

/// A matrix inside `(..)` / `[..]` (`\left(\begin{array}..\end{array}\right)`).
static WRAPPED_MATRIX_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?s)^\s*[(\[]\s*(\\begin\{pmatrix\}.*\\end\{pmatrix\})\s*[)\]]\s*$"));

/// `<=`, `>=`, `!=`, also with spaces between (`\,` is a space by then).
static ASCII_RELATION_RE: LazyLock<Regex> = LazyLock::new(|| re(r"([<>!])\s*="));

static EMPTY_SET_RE: LazyLock<Regex> = LazyLock::new(|| re(r"\\\{\s*\\\}"));

static APPROX_LEAD_RE: LazyLock<Regex> = LazyLock::new(|| re(r"(?s)^\\approx\s*(.+)$"));

/// A label before the answer: `x =`, `f(x) =`, `a_1 =`, `\theta =`, `(p, q) =`,
/// `x \approx`, `x \in`. The rest is kept when it holds no further `=`.
static LABEL_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?s)^(?:[A-Za-z](?:_\{?[A-Za-z0-9]+\}?)?(?:\([A-Za-z0-9,\s]*\))?|",
        r"\\(?:alpha|beta|gamma|delta|epsilon|theta|lambda|mu|phi|varphi|psi|omega|rho|",
        r"sigma|tau)(?:_\{?[A-Za-z0-9]+\}?)?|",
        r"\(\s*[A-Za-z](?:\s*,\s*[A-Za-z])+\s*\))",
        r"\s*(?:=|\\approx|\\in\b)\s*(.*)$"
    ))
});

static UNIT_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?is)^(.*[0-9}])\s*(?:square\s+|sq\.?\s*|cubic\s+)?",
        r"(?:mph|km/h|kph|kilometers?|kilometres?|km|meters?|metres?|cm|centimeters?|",
        r"centimetres?|mm|millimeters?|feet|foot|ft|inches|inch|miles?|yards?|yd|",
        r"hours?|hrs?|minutes?|mins?|seconds?|secs?|days?|weeks?|months?|years?|yrs?|",
        r"dollars?|cents?|pounds?|lbs?|kg|kilograms?|grams?|ounces?|oz|liters?|litres?|",
        r"ml|gallons?|percent|pct|degrees?|units?)",
        r"(?:\^\{?[0-9]\}?|²|³)?\.?$"
    ))
});

/// Single-letter units need a space before them (`5 m`), so that `2m` as an
/// algebraic term survives.
static SHORT_UNIT_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?s)^(.*[0-9}])\s+(?:m|g)(?:\^\{?[0-9]\}?|²|³)?\.?$"));

static GROUPED_NUMBER_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"^[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?$"));

/// `1 1/2` (a whole number, a space, a proper fraction), alone or as a list item.
static MIXED_TEXT_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(^|[\s(\[{,=])(-?[0-9]+)\s+([1-9][0-9]*)\s*/\s*([0-9]+)(\s*(?:$|[)\]},]))")
});

static BARE_DECIMAL_RE: LazyLock<Regex> = LazyLock::new(|| re(r"(^|[^0-9])\.([0-9])"));

static DECIMAL_RE: LazyLock<Regex> = LazyLock::new(|| re(r"[0-9]+\.[0-9]+"));

// A command's argument: a digit right after it, or a letter after a space
// (`\sqrt3`, `\sqrt x`; `\sqrtx` is another command).
static FRAC_TWO_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"\\frac(?: ([A-Za-z])|([0-9]))([0-9A-Za-z])"));
static FRAC_FIRST_RE: LazyLock<Regex> = LazyLock::new(|| re(r"\\frac(?: ([A-Za-z])|([0-9]))\{"));
static FRAC_SECOND_RE: LazyLock<Regex> = LazyLock::new(|| re(r"\\frac\{([^{}]*)\}([0-9A-Za-z])"));
static SQRT_RE: LazyLock<Regex> = LazyLock::new(|| re(r"\\sqrt(?: ([A-Za-z])|([0-9]))"));

static PLAIN_NUM_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"));
static SLASH_FRAC_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"^([+-]?[0-9]+(?:\.[0-9]+)?)/([+-]?[0-9]+(?:\.[0-9]+)?)$"));
static TEX_FRAC_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^([+-]?)\\frac\{([+-]?[0-9]+(?:\.[0-9]+)?)\}\{([+-]?[0-9]+(?:\.[0-9]+)?)\}$")
});
/// `2\frac{5}{8}` after normalisation (a proper fraction is checked in code).
static MIXED_NUM_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"^([+-]?)([0-9]+)\\frac\{([0-9]+)\}\{([0-9]+)\}$"));
/// `1.5\times10^{3}`, `1.5\cdot10^3`, `1.5*10^3`, `10^{3}`.
static SCI_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?:([+-]?[0-9]+(?:\.[0-9]+)?)(?:\\times|\\cdot|\*))?10\^(?:\{([+-]?[0-9]+)\}|([+-]?[0-9]+))$",
    )
});

/// Stands in for a LaTeX row break `\\` while the single-backslash tokens
/// (`\(`, `\[`, `\!`, `\,` ...) are removed, so `\\(` is not mistaken for `\(`.
const ROW_BREAK: char = '\u{E000}';

// ---------------------------------------------------------------------------
// Normalisation
// ---------------------------------------------------------------------------

/// Normalises an answer string (a practical version of the MATH
/// `strip_string`).
///
/// Removed or canonicalised: LaTeX spacing (`\,` `\!` `\;` `\quad`; so
/// `1\,000` and `10\!000` are `1000`), `\left`/`\right` and `\big` sizes,
/// `\dfrac`/`\tfrac`/`\cfrac` (→ `\frac`), `\displaystyle`, `$`, `%`, degree
/// signs (`^\circ`, `°`), `\text{..}` and friends, ` or ` / ` and ` between
/// items (→ `,`), `bmatrix`/`matrix`/`array` (→ `pmatrix`), relation
/// spellings (`\leq`, `<=`, `≤` → `\le`; likewise `\ge`, `\ne`; `\lt` → `<`),
/// Unicode math (`∞` → `\infty`, `±` → `\pm`, `×` → `\times`, ...), `\{\}`
/// and `\varnothing` (→ `\emptyset`), a leading label (`x =`, `f(x) =`,
/// `(p,q) =`, `\theta =`, `x \approx`, `x \in`, a bare `\approx`), trailing
/// units after a number (`cm`, `kg`, `dollars`, `pct`, `degrees`, ...),
/// thousands commas (`1,000`, `1{,}000`), mixed numbers (`1 1/2` →
/// `1\frac{1}{2}`), trailing zeros (`5.50` → `5.5`), `.5` → `0.5`,
/// `\frac12` → `\frac{1}{2}`, `\sqrt3` → `\sqrt{3}`, and a trailing `.`.
///
/// All whitespace goes, except one space between a command and a letter
/// (`\pi r`, `5\ge x`), which keeps the two apart. Case is preserved.
///
/// The rules run again on their own output until it no longer changes (at
/// most four passes; a removal can expose more, as `1 m m` → `1mm` → `1`),
/// so `normalize(normalize(s)) == normalize(s)`.
pub fn normalize(ans: &str) -> String {
    let mut s = normalize_once(ans);
    for _ in 1..4 {
        let next = normalize_once(&s);
        if next == s {
            break;
        }
        s = next;
    }
    s
}

fn normalize_once(ans: &str) -> String {
    let mut s = String::with_capacity(ans.len());
    for c in ans.trim().chars() {
        match c {
            '\n' | '\r' | '\t' => s.push(' '),
            '\u{2212}' => s.push('-'), // Unicode minus
            '\\' if s.ends_with('\\') => {
                s.pop();
                s.push(ROW_BREAK);
            }
            c => match unicode_command(c) {
                Some(cmd) => {
                    s.push_str(cmd);
                    s.push(' ');
                }
                None => s.push(c),
            },
        }
    }

    s = s.replace("\\!", "");
    for spacing in ["\\,", "\\;", "\\:", "\\ ", "~"] {
        s = s.replace(spacing, " ");
    }
    s = group_commas(&s);
    for degree in ["^{\\circ}", "^\\circ"] {
        s = s.replace(degree, "");
    }
    s = map_commands(&s);
    s = EMPTY_SET_RE.replace_all(&s, "\\emptyset").into_owned();
    // Unwrap \text{..} and friends, innermost first; the space keeps `5\text{m}`
    // apart as `5 m`.
    for _ in 0..8 {
        let next = TEXT_RE.replace_all(&s, " $1").into_owned();
        if next == s {
            break;
        }
        s = next;
    }
    for token in ["\\$", "$", "\\(", "\\)", "\\[", "\\]", "\\%", "%"] {
        s = s.replace(token, "");
    }
    s = ASCII_RELATION_RE
        .replace_all(&s, |c: &Captures| match &c[1] {
            "<" => "\\le ",
            ">" => "\\ge ",
            _ => "\\ne ",
        })
        .into_owned();
    s = OR_AND_RE.replace_all(&s, ",").into_owned();
    s = MATRIX_ENV_RE
        .replace_all(&s, "\\${1}{pmatrix}")
        .into_owned();
    s = ARRAY_BEGIN_RE
        .replace_all(&s, "\\begin{pmatrix}")
        .replace("\\end{array}", "\\end{pmatrix}");
    if let Some(c) = WRAPPED_MATRIX_RE.captures(&s) {
        if c[1].matches("\\begin").count() == 1 {
            s = c[1].to_string();
        }
    }
    s = s.trim().trim_end_matches('.').trim().to_string();

    // Labels may stack (`x \approx \approx 3`, `x = \approx 3`).
    for _ in 0..4 {
        let before = s.len();
        if let Some(c) = APPROX_LEAD_RE.captures(&s) {
            s = c[1].trim().to_string();
        }
        if let Some(c) = LABEL_RE.captures(&s) {
            let rest = &c[1];
            if !rest.contains('=') && !rest.trim().is_empty() {
                s = rest.trim().to_string();
            }
        }
        if s.len() == before {
            break;
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
    // Twice: neighbouring list items share the comma between them.
    for _ in 0..2 {
        s = MIXED_TEXT_RE
            .replace_all(&s, |c: &Captures| {
                if proper(&c[3], &c[4]) {
                    format!(
                        "{}{}\\frac{{{}}}{{{}}}{}",
                        &c[1], &c[2], &c[3], &c[4], &c[5]
                    )
                } else {
                    c[0].to_string()
                }
            })
            .into_owned();
    }

    s = squeeze_spaces(&s);

    s = FRAC_TWO_RE
        .replace_all(&s, "\\frac{${1}${2}}{${3}}")
        .into_owned();
    s = FRAC_FIRST_RE
        .replace_all(&s, "\\frac{${1}${2}}{")
        .into_owned();
    s = FRAC_SECOND_RE
        .replace_all(&s, "\\frac{${1}}{${2}}")
        .into_owned();
    s = SQRT_RE.replace_all(&s, "\\sqrt{${1}${2}}").into_owned();

    s = BARE_DECIMAL_RE.replace_all(&s, "${1}0.${2}").into_owned();
    s = DECIMAL_RE
        .replace_all(&s, |c: &Captures| trim_decimal_zeros(&c[0]))
        .into_owned();
    s.trim_end_matches('.').replace(ROW_BREAK, "\\\\")
}

/// The LaTeX command for a Unicode math sign, if it has one.
fn unicode_command(c: char) -> Option<&'static str> {
    Some(match c {
        '≤' | '⩽' => "\\le",
        '≥' | '⩾' => "\\ge",
        '≠' => "\\ne",
        '≈' => "\\approx",
        '∞' => "\\infty",
        '±' => "\\pm",
        '∓' => "\\mp",
        '×' => "\\times",
        '·' | '⋅' => "\\cdot",
        '÷' => "\\div",
        '∅' => "\\emptyset",
        'π' => "\\pi",
        '√' => "\\sqrt",
        '∈' => "\\in",
        '°' => "",
        _ => return None,
    })
}

/// Renames or drops LaTeX commands by their whole name (`\le` but not `\left`).
fn map_commands(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let name = &after[..len];
        match command_alias(name) {
            Some(alias) => out.push_str(alias),
            None => {
                out.push('\\');
                out.push_str(name);
            }
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

fn command_alias(name: &str) -> Option<&'static str> {
    Some(match name {
        "dfrac" | "tfrac" | "cfrac" => "\\frac",
        "left" | "right" | "bigl" | "bigr" | "Bigl" | "Bigr" | "biggl" | "biggr" | "Biggl"
        | "Biggr" | "big" | "Big" | "bigg" | "Bigg" | "displaystyle" | "textstyle" | "degree" => "",
        "quad" | "qquad" => " ",
        "leq" | "leqslant" | "le" => "\\le ",
        "geq" | "geqslant" | "ge" => "\\ge ",
        "neq" | "ne" => "\\ne ",
        "lt" => "<",
        "gt" => ">",
        "varnothing" => "\\emptyset ",
        "dots" | "ldots" | "cdots" => "\\dots ",
        _ => return None,
    })
}

/// Drops whitespace, but keeps one space between a command and a letter after
/// it (`\pi r`), which would otherwise read as another command (`\pir`).
fn squeeze_spaces(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let (mut in_cmd, mut after_backslash, mut pending) = (false, false, false);
    for c in s.chars() {
        if c.is_whitespace() {
            pending = true;
            continue;
        }
        if pending {
            if in_cmd && c.is_ascii_alphabetic() {
                out.push(' ');
            }
            in_cmd = false;
            after_backslash = false;
            pending = false;
        }
        if c == '\\' {
            after_backslash = !after_backslash;
            in_cmd = false;
        } else if c.is_ascii_alphabetic() {
            in_cmd = in_cmd || after_backslash;
            after_backslash = false;
        } else {
            in_cmd = false;
            after_backslash = false;
        }
        out.push(c);
    }
    out
}

/// `1{,}000` → `1,000` (TeX's comma without a space after it); an escaped
/// `\{,}` stays.
fn group_commas(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("{,}") {
        out.push_str(&rest[..at]);
        if out.ends_with('\\') {
            out.push_str("{,}");
        } else {
            out.push(',');
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    out
}

/// `b/c` is a proper fraction (`0 < b < c`), as the tail of a mixed number.
pub(super) fn proper(b: &str, c: &str) -> bool {
    match (b.parse::<u64>(), c.parse::<u64>()) {
        (Ok(b), Ok(c)) => b > 0 && b < c,
        _ => false,
    }
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
/// `$50\%$`, `\text{50\%}`) or the word `percent` / `pct`.
pub(super) fn has_percent(raw: &str) -> bool {
    let t = raw.trim_end_matches(|c: char| c.is_whitespace() || matches!(c, '$' | '.' | '}'));
    let ends_with_word = |w: &str| {
        t.get(t.len().saturating_sub(w.len())..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case(w))
    };
    t.ends_with('%') || ends_with_word("percent") || ends_with_word("pct")
}

/// Parses a numeric answer (after [`normalize`], so `$`, units, `x =` and
/// thousands commas are already gone): plain integers/decimals with optional
/// sign and exponent (`1.5e3`), `a/b`, `\frac{a}{b}` and `-\frac{a}{b}`,
/// mixed numbers (`2\frac{5}{8}`, `1 1/2`: a whole number and a proper
/// fraction) and scientific notation (`1.5 \times 10^3`, `10^{-2}`).
///
/// A trailing `%` (or the word `percent` / `pct`) divides by 100. Because
/// `normalize` deletes `%`, this is detected on the raw string *before*
/// normalising: `parse_number("50%") == Some(0.5)`.
///
/// Anything with letters left over is not a number. Division by zero and
/// non-finite values give `None`.
pub fn parse_number(s: &str) -> Option<f64> {
    parse_normalized(&normalize(s), has_percent(s))
}

/// [`parse_number`] of an already normalised string `n`; `percent` divides by 100.
pub(super) fn parse_normalized(n: &str, percent: bool) -> Option<f64> {
    let value = if PLAIN_NUM_RE.is_match(n) {
        n.parse::<f64>().ok()?
    } else if let Some(c) = SLASH_FRAC_RE.captures(n) {
        divide(&c[1], &c[2])?
    } else if let Some(c) = TEX_FRAC_RE.captures(n) {
        signed(&c[1], divide(&c[2], &c[3])?)
    } else if let Some(c) = MIXED_NUM_RE.captures(n) {
        if !proper(&c[3], &c[4]) {
            return None;
        }
        let whole: f64 = c[2].parse().ok()?;
        signed(&c[1], whole + divide(&c[3], &c[4])?)
    } else if let Some(c) = SCI_RE.captures(n) {
        let mantissa: f64 = c.get(1).map_or(Ok(1.0), |m| m.as_str().parse()).ok()?;
        let exponent: i32 = c.get(2).or(c.get(3))?.as_str().parse().ok()?;
        mantissa * 10f64.powi(exponent)
    } else {
        return None;
    };
    let value = if percent { value / 100.0 } else { value };
    value.is_finite().then_some(value)
}

fn signed(sign: &str, v: f64) -> f64 {
    if sign == "-" {
        -v
    } else {
        v
    }
}

fn divide(a: &str, b: &str) -> Option<f64> {
    let a: f64 = a.parse().ok()?;
    let b: f64 = b.parse().ok()?;
    (b != 0.0).then(|| a / b)
}
