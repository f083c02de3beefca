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
//! * Every string operation uses `find`, regex match offsets or
//!   `char_indices`, so no input (empty, non-ASCII, emoji) can make the code
//!   slice a `str` off a char boundary.

use regex::{Captures, Regex};
use std::sync::LazyLock;

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("hard-coded regex must compile")
}

/// A number as it appears in running text: thousands-grouped or plain
/// digits, optional decimals (a digit is required after the dot, so the
/// period that ends a sentence is not taken), or a bare `.5`.
static NUMBER_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"-?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?|-?\.[0-9]+"));

/// Phrases that introduce an answer (rule 3 of [`extract_answer`]).
static ANSWER_PHRASE_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)final answer\s*:|\banswer\s*:|\banswer is\b"));

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
// Extraction
// ---------------------------------------------------------------------------

/// Extracts the final answer from a model completion.
///
/// The first rule that yields something wins:
/// 1. Minerva/SAL style: the text between `final answer is $` and `$. I hope`.
/// 2. The content of the last `\boxed` / `\fbox` (brace-balanced; an empty or
///    unbalanced box falls through; `\boxed 5` takes the next token).
/// 3. The rest of the line/sentence after the last `the answer is`,
///    `answer is`, `final answer:` or `answer:` (case-insensitive); if that
///    is not itself a number or a LaTeX-ish expression, its first number is
///    preferred (`The answer is 42 apples.` → `42`).
/// 4. The last number in the text (commas removed).
///
/// The result has newlines dropped, a leading `:` and trailing `.` / `/`
/// stripped, and is then [`normalize`]d. `None` when nothing (non-empty) is
/// found.
pub fn extract_answer(text: &str) -> Option<String> {
    let candidates = [
        extract_minerva(text),
        extract_boxed(text),
        extract_after_phrase(text),
        extract_last_number(text),
    ];
    candidates
        .into_iter()
        .flatten()
        .find_map(|raw| clean_extracted(&raw))
}

fn clean_extracted(raw: &str) -> Option<String> {
    let no_newlines: String = raw.chars().filter(|c| *c != '\n' && *c != '\r').collect();
    let s = no_newlines.trim();
    let s = s.strip_prefix(':').unwrap_or(s).trim();
    let s = s.trim_end_matches(['.', '/']).trim();
    let out = normalize(s);
    (!out.is_empty()).then_some(out)
}

fn extract_minerva(text: &str) -> Option<String> {
    const START: &str = "final answer is $";
    const END: &str = "$. I hope";
    let start = text.rfind(START)? + START.len();
    let rest = &text[start..];
    let end = rest.find(END)?;
    let inner = rest[..end].trim();
    (!inner.is_empty()).then(|| inner.to_string())
}

fn extract_boxed(text: &str) -> Option<String> {
    let last_boxed = text.rfind("\\boxed").map(|i| i + "\\boxed".len());
    let last_fbox = text.rfind("\\fbox").map(|i| i + "\\fbox".len());
    let start = match (last_boxed, last_fbox) {
        (Some(a), Some(b)) => a.max(b),
        (a, b) => a.or(b)?,
    };
    let rest = &text[start..];
    if rest.starts_with('{') {
        let mut depth = 0usize;
        for (i, c) in rest.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        let inner = rest[1..i].trim();
                        return (!inner.is_empty()).then(|| inner.to_string());
                    }
                }
                _ => {}
            }
        }
        None // unbalanced
    } else {
        let rest = rest.trim_start();
        let end = rest
            .find(|c: char| c == '$' || c.is_whitespace())
            .unwrap_or(rest.len());
        let token = &rest[..end];
        (!token.is_empty()).then(|| token.to_string())
    }
}

fn extract_after_phrase(text: &str) -> Option<String> {
    let m = ANSWER_PHRASE_RE.find_iter(text).last()?;
    let rest = &text[m.end()..];
    let line = rest.split('\n').next().unwrap_or("");
    // End of sentence: `.`, `!` or `?` followed by whitespace or the end.
    let mut end = line.len();
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(c, '.' | '!' | '?') && chars.peek().is_none_or(|(_, n)| n.is_whitespace()) {
            end = i;
            break;
        }
    }
    let seg = line[..end]
        .trim()
        .trim_start_matches([':', '*'])
        .trim_end_matches('*')
        .trim();
    if !seg.chars().any(char::is_alphanumeric) {
        return None;
    }
    if parse_number(seg).is_some() || seg.contains(['\\', '^', '{', '(', '[', '/']) {
        return Some(seg.to_string());
    }
    if let Some(n) = find_numbers(seg).into_iter().next() {
        return Some(n);
    }
    Some(seg.to_string())
}

fn extract_last_number(text: &str) -> Option<String> {
    find_numbers(text).pop()
}

/// All numbers in `text`, commas removed. A `-` directly after a letter,
/// digit or closing bracket is read as subtraction, not as a sign.
fn find_numbers(text: &str) -> Vec<String> {
    NUMBER_RE
        .find_iter(text)
        .map(|m| {
            let mut s = m.as_str();
            if s.starts_with('-') {
                let prev = text[..m.start()].chars().next_back();
                if prev.is_some_and(|p| p.is_alphanumeric() || matches!(p, ')' | ']' | '}')) {
                    s = &s[1..];
                }
            }
            s.replace(',', "")
        })
        .collect()
}

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
fn has_percent(raw: &str) -> bool {
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

/// Gold answer of a GSM8K `answer` field: the text after the last `####`,
/// trimmed, all commas removed, [`normalize`]d. `None` when there is no
/// `####` (or nothing after it).
pub fn gsm8k_gold(answer_field: &str) -> Option<String> {
    let idx = answer_field.rfind("####")?;
    let tail = answer_field[idx + 4..].trim().replace(',', "");
    let out = normalize(&tail);
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(s: &str) -> Option<String> {
        extract_answer(s)
    }
    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    // ---- extract_answer -------------------------------------------------

    #[test]
    fn minerva_style() {
        let t = "Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.";
        assert_eq!(ex(t), some("\\frac{3}{4}"));
    }

    #[test]
    fn minerva_beats_boxed() {
        let t = "\\boxed{9} ... The final answer is $7$. I hope it is correct.";
        assert_eq!(ex(t), some("7"));
    }

    #[test]
    fn nested_boxed() {
        assert_eq!(
            ex("So we get $\\boxed{\\frac{1}{2}}$."),
            some("\\frac{1}{2}")
        );
        assert_eq!(
            ex("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}"),
            some("(3,\\frac{\\pi}{2})")
        );
    }

    #[test]
    fn last_boxed_wins() {
        assert_eq!(
            ex("First \\boxed{3}, then corrected: \\boxed{4}"),
            some("4")
        );
        assert_eq!(ex("\\boxed{3} and \\fbox{8}"), some("8"));
    }

    #[test]
    fn boxed_without_braces() {
        assert_eq!(ex("so $\\boxed 5$ is it"), some("5"));
    }

    #[test]
    fn empty_boxed_falls_through() {
        assert_eq!(ex("The answer is 12. \\boxed{}"), some("12"));
        assert_eq!(ex("We had 3 then 7 \\boxed{}"), some("7"));
        assert_eq!(ex("\\boxed{}"), None);
    }

    #[test]
    fn unbalanced_boxed_falls_through() {
        assert_eq!(ex("Total 7 \\boxed{"), some("7"));
        assert_eq!(ex("\\boxed{\\frac{1}{2}"), some("2"));
    }

    #[test]
    fn answer_is_phrase() {
        assert_eq!(ex("Adding up, the answer is 18."), some("18"));
        assert_eq!(ex("The answer is 42 apples."), some("42"));
        assert_eq!(ex("The answer is $1,200. Done 7"), some("1200"));
        assert_eq!(ex("ANSWER: -7"), some("-7"));
        assert_eq!(ex("Final answer: 3.25\nchecked with 9"), some("3.25"));
        assert_eq!(ex("**Answer:** 64"), some("64"));
    }

    #[test]
    fn answer_phrase_keeps_expressions_and_text() {
        assert_eq!(
            ex("The answer is \\frac{1}{2}. Yes 3"),
            some("\\frac{1}{2}")
        );
        assert_eq!(ex("The answer is 1/2. Yes 3"), some("1/2"));
        assert_eq!(ex("So the answer is Monday."), some("Monday"));
    }

    #[test]
    fn last_answer_phrase_wins() {
        assert_eq!(
            ex("The answer is 3. Wait, no: the answer is 4. (5 checks)"),
            some("4")
        );
    }

    #[test]
    fn empty_answer_phrase_falls_through() {
        assert_eq!(ex("We computed 9 and 11. The answer is:"), some("11"));
    }

    #[test]
    fn last_number_fallback_commas_and_negatives() {
        assert_eq!(
            ex("It costs 1,234.5 first and then 2,000 later"),
            some("2000")
        );
        assert_eq!(ex("Between 3 and 1,234.5"), some("1234.5"));
        assert_eq!(ex("the temperature drops to -15"), some("-15"));
        assert_eq!(ex("we compute 10-3"), some("3"));
        assert_eq!(ex("probability .5"), some("0.5"));
    }

    #[test]
    fn sentence_final_period_is_not_decimal() {
        assert_eq!(ex("So the total is 5."), some("5"));
        assert_eq!(ex("So the total is 5.25."), some("5.25"));
    }

    #[test]
    fn nothing_found() {
        assert_eq!(ex(""), None);
        assert_eq!(ex("no digits here"), None);
        assert_eq!(ex("🎉🎉"), None);
    }

    #[test]
    fn non_ascii_text() {
        assert_eq!(ex("答案是 5"), some("5"));
        assert_eq!(ex("\\boxed{🎉}"), some("🎉"));
        assert_eq!(ex("é\\boxed{ü} 3"), some("ü"));
    }

    // ---- normalize ------------------------------------------------------

    #[test]
    fn normalize_cases() {
        assert_eq!(normalize("\\left( 1, 2 \\right)"), "(1,2)");
        assert_eq!(normalize("\\dfrac{1}{2}"), "\\frac{1}{2}");
        assert_eq!(normalize("\\tfrac34"), "\\frac{3}{4}");
        assert_eq!(normalize("\\frac12"), "\\frac{1}{2}");
        assert_eq!(normalize("\\frac1{2}"), "\\frac{1}{2}");
        assert_eq!(normalize("\\frac{1}2"), "\\frac{1}{2}");
        assert_eq!(normalize("2\\sqrt3"), "2\\sqrt{3}");
        assert_eq!(normalize("90^\\circ"), "90");
        assert_eq!(normalize("90^{\\circ}"), "90");
        assert_eq!(normalize("\\$18.00"), "18");
        assert_eq!(normalize("$5.50$"), "5.5");
        assert_eq!(normalize("50\\%"), "50");
        assert_eq!(normalize("\\text{Monday}"), "Monday");
        assert_eq!(normalize("\\textbf{\\text{yes}}"), "yes");
        assert_eq!(normalize("\\mbox{odd}"), "odd");
        assert_eq!(normalize("18 dollars"), "18");
        assert_eq!(normalize("12\\text{ cm}^2"), "12");
        assert_eq!(normalize("3 m"), "3");
        assert_eq!(normalize("2m"), "2m");
        assert_eq!(normalize("x = 5"), "5");
        assert_eq!(normalize("k = 3"), "3");
        assert_eq!(normalize("x = y = 3"), "x=y=3");
        assert_eq!(normalize(".5"), "0.5");
        assert_eq!(normalize("-.5"), "-0.5");
        assert_eq!(normalize("1,000"), "1000");
        assert_eq!(normalize("1,234,567.80"), "1234567.8");
        assert_eq!(normalize("(5,100)"), "(5,100)");
        assert_eq!(normalize("10\\!000"), "10000");
        assert_eq!(normalize("3\\,\\text{hours}."), "3");
        assert_eq!(normalize("  x^2 + 1 "), "x^2+1");
        assert_eq!(normalize("Mondays"), "Mondays");
        assert_eq!(normalize(""), "");
    }

    // ---- parse_number ---------------------------------------------------

    #[test]
    fn parse_number_cases() {
        assert_eq!(parse_number("42"), Some(42.0));
        assert_eq!(parse_number("-3.5"), Some(-3.5));
        assert_eq!(parse_number("+7"), Some(7.0));
        assert_eq!(parse_number("1/4"), Some(0.25));
        assert_eq!(parse_number("\\frac{3}{4}"), Some(0.75));
        assert_eq!(parse_number("-\\frac{3}{4}"), Some(-0.75));
        assert_eq!(parse_number("\\dfrac{-1}{2}"), Some(-0.5));
        assert_eq!(parse_number("50%"), Some(0.5));
        assert_eq!(parse_number("$50\\%$"), Some(0.5));
        assert_eq!(parse_number("25 percent"), Some(0.25));
        assert_eq!(parse_number("$1,200"), Some(1200.0));
        assert_eq!(parse_number("18 dollars"), Some(18.0));
        assert_eq!(parse_number("abc"), None);
        assert_eq!(parse_number("2x"), None);
        assert_eq!(parse_number("1/0"), None);
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_number("(1,2)"), None);
    }

    // ---- answer_key -----------------------------------------------------

    #[test]
    fn answer_key_groups() {
        for s in ["0.5", "1/2", "\\frac{1}{2}", "\\dfrac12", ".50"] {
            assert_eq!(answer_key(s), "0.5", "{s}");
        }
        for s in ["18", "18.0", "$18", "18 dollars", "\\$18.00"] {
            assert_eq!(answer_key(s), "18", "{s}");
        }
        assert_eq!(answer_key("1/3"), "0.333333");
        assert_eq!(answer_key("10/3"), "3.333333");
        assert_eq!(answer_key("-0"), "0");
        assert_eq!(answer_key("1,000,000"), "1000000");
        assert_eq!(answer_key("50%"), "0.5");
        assert_eq!(answer_key("\\text{Monday}"), "Monday");
        assert_ne!(answer_key("18"), answer_key("19"));
    }

    // ---- equivalent -----------------------------------------------------

    #[test]
    fn equivalent_numbers() {
        assert!(equivalent("$18.00", "18"));
        assert!(equivalent("\\frac{1}{2}", "0.5"));
        assert!(equivalent("0.5", "1/2"));
        assert!(equivalent("1/2", "\\frac{1}{2}"));
        assert!(equivalent("\\dfrac{3}{4}", "0.75"));
        assert!(equivalent("1,234", "1234"));
        assert!(equivalent("18 dollars", "18"));
        assert!(equivalent("x = 5", "5"));
        assert!(equivalent("0.333333", "1/3"));
        assert!(equivalent("-\\frac{1}{4}", "-0.25"));
    }

    #[test]
    fn equivalent_percent_rule() {
        assert!(equivalent("50%", "50"));
        assert!(equivalent("50%", "0.5"));
        assert!(equivalent("0.5", "50\\%"));
        assert!(!equivalent("50", "0.5"), "no % → no x100 rule");
        assert!(!equivalent("5000", "50%"));
    }

    #[test]
    fn equivalent_text_and_brackets() {
        assert!(equivalent("\\text{Monday}", "monday"));
        assert!(equivalent("x^{2}", "x^2"));
        assert!(equivalent("{1, 2}", "1,2"));
        assert!(equivalent("(0.5, 2)", "\\left(\\frac{1}{2}, 2\\right)"));
        assert!(equivalent("(1, 2)", "1,2"));
    }

    #[test]
    fn not_equivalent() {
        assert!(!equivalent("18", "19"));
        assert!(!equivalent("1/3", "0.33"));
        assert!(!equivalent("(1,2)", "(1,3)"));
        assert!(!equivalent("[0,1)", "(0,1]"));
        assert!(!equivalent("\\frac{1}{23}", "\\frac{12}{3}"));
        assert!(!equivalent("(1,2)", "(1,2,3)"));
        assert!(!equivalent("", ""));
        assert!(!equivalent("Monday", "Tuesday"));
    }

    // ---- gsm8k_gold -----------------------------------------------------

    #[test]
    fn gsm8k_gold_real_answer() {
        let field = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n\
                     Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n\
                     #### 72";
        assert_eq!(gsm8k_gold(field), some("72"));
        assert_eq!(extract_answer(field), some("72"));
    }

    #[test]
    fn gsm8k_gold_commas_and_missing() {
        assert_eq!(
            gsm8k_gold("He pays 10*100 = <<10*100=1000>>1000\n#### 1,000"),
            some("1000")
        );
        assert_eq!(gsm8k_gold("#### -3"), some("-3"));
        assert_eq!(gsm8k_gold("#### 1 #### 2"), some("2"));
        assert_eq!(gsm8k_gold("no marker 5"), None);
        assert_eq!(gsm8k_gold("####"), None);
    }

    // ---- robustness -----------------------------------------------------

    #[test]
    fn no_panic_on_odd_inputs() {
        let odd = [
            "",
            " ",
            "\\boxed{",
            "\\boxed",
            "\\fbox",
            "\\boxed{}}}",
            "}}}{{{",
            "答案是 5",
            "🎉",
            "\\boxed{🎉",
            "final answer is $",
            "final answer is $🎉$. I hope",
            "The answer is",
            "the answer is é.",
            "İİİ answer is İ",
            "####",
            "-",
            ".",
            "-.",
            "1/",
            "/1",
            "\\frac{",
            "\\frac{1}{0}",
            "(,)",
            "((((",
            "%",
            "$",
            "x =",
            "99999999999999999999999999999999999999999999999999999999999999999999999999999999\
             99999999999999999999999999999999999999999999999999999999999999999999999999999999\
             99999999999999999999999999999999999999999999999999999999999999999999999999999999\
             99999999999999999999999999999999999999999999999999999999999999999999999999999999",
        ];
        for s in odd {
            let _ = extract_answer(s);
            let _ = gsm8k_gold(s);
            let _ = answer_key(s);
            let n = normalize(s);
            assert_eq!(equivalent(s, s), !n.is_empty(), "{s:?}");
            if let Some(v) = parse_number(s) {
                assert!(v.is_finite(), "{s:?}");
            }
        }
        assert_eq!(ex("final answer is $🎉$. I hope"), some("🎉"));
        assert_eq!(ex("the answer is é."), some("é"));
        assert_eq!(parse_number("\\frac{1}{0}"), None);
    }
}
