//! A rule-based process reward for grade-school arithmetic: re-compute every equation a
//! step states (`12 * 3 = 36`, `(5 + 7) / 4 = 3`, GSM8K's `<<48/2=24>>` annotations) and
//! score the step by the share that holds. No model involved.

use crate::{Aggregate, Sample, ScoreError, Scorer};

/// Splits text into steps on a delimiter and checks the arithmetic of each.
#[derive(Clone, Debug)]
pub struct ArithmeticVerifier {
    /// Step delimiter (default: a blank line).
    pub delimiter: String,
    /// Score of a step that states no equation (default 1: nothing wrong was said).
    pub neutral: f64,
    /// How step scores become one score (default: min — one wrong step spoils a chain).
    pub aggregate: Aggregate,
    /// Relative tolerance for equality (default 1e-2, so rounding like 3.33 for 10/3 passes).
    pub tolerance: f64,
}

impl Default for ArithmeticVerifier {
    fn default() -> Self {
        Self {
            delimiter: "\n\n".into(),
            neutral: 1.0,
            aggregate: Aggregate::Min,
            tolerance: 1e-2,
        }
    }
}

/// One equation found in a text and whether it holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// The left-hand side as written (trimmed), e.g. `12 * 3`.
    pub expr: String,
    /// What it evaluates to.
    pub value: f64,
    /// What the text says it equals.
    pub claimed: f64,
    /// Whether the two agree within the verifier's relative tolerance.
    pub holds: bool,
}

impl ArithmeticVerifier {
    /// Every checkable equation in `text`.
    pub fn checks(&self, text: &str) -> Vec<Check> {
        let mut out = Vec::new();
        for (lhs, rhs) in equations(text) {
            let (Some(value), Some(claimed)) = (eval(&lhs), number(&rhs)) else {
                continue;
            };
            let body = lhs.trim().trim_start_matches('-');
            if !body.chars().any(|c| "+-*/×÷x".contains(c)) {
                continue; // "total = 5" or "-3 = -3": nothing to re-compute
            }
            let holds =
                (value - claimed).abs() <= self.tolerance * value.abs().max(claimed.abs()).max(1.0);
            out.push(Check {
                expr: lhs.trim().to_string(),
                value,
                claimed,
                holds,
            });
        }
        out
    }

    /// One score per step: the share of its equations that hold (`neutral` if none).
    pub fn step_scores(&self, text: &str) -> Vec<f64> {
        crate::split_steps(text, &self.delimiter)
            .into_iter()
            .map(|step| {
                let c = self.checks(step);
                if c.is_empty() {
                    self.neutral
                } else {
                    c.iter().filter(|c| c.holds).count() as f64 / c.len() as f64
                }
            })
            .collect()
    }
}

impl Scorer for ArithmeticVerifier {
    fn name(&self) -> &str {
        "verifier"
    }
    fn score(&self, s: &Sample<'_>) -> Result<f64, ScoreError> {
        Ok(self
            .aggregate
            .apply(&self.step_scores(s.text))
            .unwrap_or(self.neutral))
    }
}

/// (left side, right side) of each `… = number` in the text, including `<<…=…>>`.
fn equations(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c != '=' {
            continue;
        }
        // Left: the longest run of expression characters ending before '='.
        let mut a = i;
        while a > 0 && is_expr_char(chars[a - 1]) {
            a -= 1;
        }
        // Right: spaces, optional $, then a number.
        let mut b = i + 1;
        while b < chars.len() && (chars[b] == ' ' || chars[b] == '$') {
            b += 1;
        }
        let start = b;
        if b < chars.len() && chars[b] == '-' {
            b += 1;
        }
        while b < chars.len() && (chars[b].is_ascii_digit() || chars[b] == '.' || chars[b] == ',') {
            b += 1;
        }
        let lhs: String = chars[a..i].iter().collect();
        let rhs: String = chars[start..b].iter().collect();
        if !lhs.trim().is_empty() && !rhs.is_empty() {
            out.push((lhs, rhs.trim_end_matches(['.', ',']).to_string()));
        }
    }
    out
}

fn is_expr_char(c: char) -> bool {
    c.is_ascii_digit() || " .,+-*/()×÷x$".contains(c)
}

fn number(s: &str) -> Option<f64> {
    s.replace([',', '$', ' '], "").parse().ok()
}

/// Evaluate `+ - * / ( )` (also `×`, `÷`, and `x` between numbers) over decimal numbers.
fn eval(expr: &str) -> Option<f64> {
    let cleaned: String = expr
        .replace([',', '$'], "")
        .replace('×', "*")
        .replace('÷', "/");
    let tokens = tokenize(&cleaned)?;
    let mut p = Parser {
        t: &tokens,
        i: 0,
        depth: 0,
    };
    let v = p.sum()?;
    (p.i == tokens.len() && v.is_finite()).then_some(v)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Op(char),
}

fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let mut out = Vec::new();
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c.is_ascii_digit() || c == '.' {
            let st = i;
            while i < cs.len() && (cs[i].is_ascii_digit() || cs[i] == '.') {
                i += 1;
            }
            out.push(Tok::Num(cs[st..i].iter().collect::<String>().parse().ok()?));
            continue;
        }
        match c {
            ' ' => {}
            'x' => out.push(Tok::Op('*')), // "3 x 4"
            '+' | '-' | '*' | '/' | '(' | ')' => out.push(Tok::Op(c)),
            _ => return None,
        }
        i += 1;
    }
    Some(out)
}

/// Deepest nesting of parentheses and signs that is evaluated; deeper
/// expressions are not checked (the recursive parser would overflow the stack
/// on thousands of levels).
const MAX_NESTING: usize = 256;

struct Parser<'a> {
    t: &'a [Tok],
    i: usize,
    /// Parentheses and signs open around the current token.
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<Tok> {
        self.t.get(self.i).copied()
    }
    fn sum(&mut self) -> Option<f64> {
        let mut v = self.product()?;
        while let Some(Tok::Op(op @ ('+' | '-'))) = self.peek() {
            self.i += 1;
            let r = self.product()?;
            v = if op == '+' { v + r } else { v - r };
        }
        Some(v)
    }
    fn product(&mut self) -> Option<f64> {
        let mut v = self.atom()?;
        while let Some(Tok::Op(op @ ('*' | '/'))) = self.peek() {
            self.i += 1;
            let r = self.atom()?;
            v = if op == '*' { v * r } else { v / r };
        }
        Some(v)
    }
    fn atom(&mut self) -> Option<f64> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return None;
        }
        let v = self.atom_inner();
        self.depth -= 1;
        v
    }
    fn atom_inner(&mut self) -> Option<f64> {
        match self.peek()? {
            Tok::Num(n) => {
                self.i += 1;
                Some(n)
            }
            Tok::Op('-') => {
                self.i += 1;
                Some(-self.atom()?)
            }
            Tok::Op('(') => {
                self.i += 1;
                let v = self.sum()?;
                (self.peek()? == Tok::Op(')')).then(|| self.i += 1)?;
                Some(v)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v() -> ArithmeticVerifier {
        ArithmeticVerifier::default()
    }

    #[test]
    fn right_and_wrong_equations() {
        let c = v().checks("First 12 * 3 = 36 apples, then 36 + 5 = 42.");
        assert_eq!(c.len(), 2);
        assert!(c[0].holds);
        assert!(!c[1].holds && c[1].value == 41.0 && c[1].claimed == 42.0);
    }

    #[test]
    fn precedence_parentheses_and_symbols() {
        let c = v().checks("(5 + 7) / 4 = 3 and 2 + 3 × 4 = 14 and 10 ÷ 4 = 2.5 and 3 x 4 = 12");
        assert_eq!(
            c.iter().map(|c| c.holds).collect::<Vec<_>>(),
            [true, true, true, true]
        );
    }

    #[test]
    fn gsm8k_annotations_money_and_commas() {
        let c = v().checks("She sold 48/2 = <<48/2=24>>24 clips, earning $1,200 + $300 = $1,500.");
        // "48/2 = <<48/2=24>>24" is checked once, through its annotation.
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(c.iter().all(|c| c.holds), "{c:?}");
    }

    #[test]
    fn statements_without_arithmetic_are_not_checked() {
        assert!(v().checks("Let x = 5. The total = 12.").is_empty());
        assert!(v().checks("no equations here").is_empty());
    }

    #[test]
    fn rounding_within_tolerance_passes() {
        assert!(v().checks("10 / 3 = 3.33")[0].holds);
        assert!(!v().checks("10 / 3 = 3.5")[0].holds);
    }

    #[test]
    fn step_scores_and_aggregation() {
        let text =
            "Step 1: 2 + 2 = 4.\n\nStep 2: 3 * 3 = 10 and 1 + 1 = 2.\n\nSo the answer is 14.";
        assert_eq!(v().step_scores(text), vec![1.0, 0.5, 1.0]);
        let s = Sample::new("", text);
        assert_eq!(v().score(&s).unwrap(), 0.5); // min
        let mean = ArithmeticVerifier {
            aggregate: Aggregate::Mean,
            ..v()
        };
        assert!((mean.score(&s).unwrap() - 2.5 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn odd_input_does_not_panic() {
        for t in ["=", "= =", "((((= 3", "1/0 = 5", "∑ = 3", "3 ++ = 4", ""] {
            let _ = v().checks(t);
            let _ = v().step_scores(t);
        }
        assert!(
            v().checks("1/0 = 5").is_empty(),
            "division by zero is not a check"
        );
    }

    #[test]
    fn deep_nesting_is_bounded() {
        // 10,000 nested parentheses (and signs) once overflowed the recursive parser.
        let parens = format!("{}1 + 1{} = 2", "(".repeat(10_000), ")".repeat(10_000));
        let signs = format!("{}1 + 1 = 2", "-".repeat(10_000));
        let mixed = format!("{}2{} * 1 = 2", "(-".repeat(5_000), ")".repeat(5_000));
        for t in [&parens, &signs, &mixed] {
            let start = std::time::Instant::now();
            let _ = v().checks(t);
            let _ = v().step_scores(t);
            assert!(start.elapsed().as_secs() < 2, "{:?}", start.elapsed());
        }
        // Within the bound, nesting still evaluates.
        let ok = format!("{}1 + 1{} = 2", "(".repeat(100), ")".repeat(100));
        assert!(v().checks(&ok)[0].holds);
    }

    mod props {
        //! Property tests (`proptest`). Cases per run: 1,024 arbitrary strings,
        //! 1,024 strings of equation-like tokens, 64 deeply nested inputs (up to
        //! 20,000 deep).

        use super::*;
        use proptest::prelude::*;

        const TOKENS: &[&str] = &[
            "1", "2", "12", "3.5", "0", ",", ".", " ", "+", "-", "*", "/", "×", "÷", "x", "(", ")",
            "=", "$", "<<", ">>", "\n", "\n\n", "a", "é", "🎉",
        ];

        fn soup() -> impl Strategy<Value = String> {
            prop::collection::vec(prop::sample::select(TOKENS), 0..60).prop_map(|v| v.concat())
        }

        fn exercise(t: &str) {
            let verifier = v();
            for c in verifier.checks(t) {
                assert!(c.value.is_finite() && c.claimed.is_finite(), "{c:?}");
            }
            let scores = verifier.step_scores(t);
            assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)), "{scores:?}");
            let _ = verifier.score(&Sample::new("q", t));
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1024))]

            #[test]
            fn never_panics_on_arbitrary_text(t in any::<String>()) {
                exercise(&t);
            }

            #[test]
            fn never_panics_on_equation_soup(t in soup()) {
                exercise(&t);
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn deep_nesting_terminates(depth in 1usize..20_000, kind in 0usize..4) {
                let (open, close) = [("(", ")"), ("-", ""), ("(-", ")"), ("(1+", ")")][kind];
                let t = format!("{}2{} = 2", open.repeat(depth), close.repeat(depth));
                let start = std::time::Instant::now();
                exercise(&t);
                prop_assert!(start.elapsed().as_secs() < 2, "{:?}", start.elapsed());
            }
        }
    }
}
