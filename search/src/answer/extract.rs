//! Answer extraction: the final answer of a completion, and GSM8K's gold answer.

use super::{normalize, parse_number, re};
use regex::Regex;
use std::sync::LazyLock;

/// A number as it appears in running text: thousands-grouped or plain
/// digits, optional decimals (a digit is required after the dot, so the
/// period that ends a sentence is not taken), or a bare `.5`.
static NUMBER_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"-?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?|-?\.[0-9]+"));

/// Phrases that introduce an answer (rule 3 of [`extract_answer`]).
static ANSWER_PHRASE_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)final answer\s*:|\banswer\s*:|\banswer is\b"));

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

/// Gold answer of a GSM8K `answer` field: the text after the last `####`,
/// trimmed, all commas removed, [`normalize`]d. `None` when there is no
/// `####` (or nothing after it).
pub fn gsm8k_gold(answer_field: &str) -> Option<String> {
    let idx = answer_field.rfind("####")?;
    let tail = answer_field[idx + 4..].trim().replace(',', "");
    let out = normalize(&tail);
    (!out.is_empty()).then_some(out)
}
