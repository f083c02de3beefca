//! Numeric equality of two expressions at random points.
//!
//! A small parser reads the LaTeX subset that answers are written in —
//! numbers, one-letter variables (`x`, `a_1`, `\theta`), `+ - * /`, `\cdot`,
//! `\times`, `\div`, `^`, implicit multiplication (`2x`, `2(x+1)`, `x\pi`),
//! `\frac{a}{b}`, `\sqrt{a}`, `\sqrt[n]{a}`, `|a|`, `\pi`, mixed numbers
//! (`2\frac58`) and the usual functions (`\sin`, `\ln`, `\log`, ...) — and
//! writes it out fully parenthesised in the syntax of the `exmex` crate, which
//! parses and evaluates it. Both sides are then evaluated at the same
//! pseudo-random points (fixed seed, so the verdict never changes).
//!
//! The parser refuses (returns `None`) whatever it might read two ways, so that
//! a refusal costs at most a missed match, never a false one: words (three or
//! more letters in a row, or letters only), `a/bc` (is it `a/(bc)`?), `x^23`
//! (TeX's x²·3 or plain text's x²³?), a
//! function without parentheses followed by more factors (`\sin 2x`),
//! `\infty`, relations, commas and any command it does not know.

use super::normalize::proper;
use super::re;
use exmex::prelude::*;
use regex::{Captures, Regex};
use std::collections::BTreeSet;
use std::sync::LazyLock;

/// Longest expression (in bytes) that is parsed at all.
const MAX_LEN: usize = 400;
/// Deepest nesting of groups and signs the parser follows.
const MAX_DEPTH: usize = 40;
/// Points tried when there are variables.
const POINTS: u64 = 12;
/// Points at which both sides must be defined (finite) for a match.
const MIN_DEFINED: usize = 4;

/// `2\frac{5}{8}` is the mixed number 2⅝ (a proper fraction after a whole number).
static MIXED_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(^|[^0-9.}^_A-Za-z])([0-9]+)\\frac\{([0-9]+)\}\{([0-9]+)\}"));

/// Whether `a` and `b` (both [`super::normalize`]d) are the same number or the
/// same function of their variables: `None` when either does not parse.
///
/// Without variables the two values must agree to a relative 1e-4 (as plain
/// numbers do). With variables both are evaluated at up to 12 points where
/// each variable is drawn from ±[0.25, 3): every point must agree to a
/// relative 1e-6, a point where only one side is defined (`\sqrt{x}` against
/// `x`) is a mismatch, and at least 4 points must be defined on both sides.
pub(super) fn same_value(a: &str, b: &str) -> Option<bool> {
    let ea = Expr::parse(a)?;
    let eb = Expr::parse(b)?;
    let fa = exmex::parse::<f64>(&ea.code).ok()?;
    let fb = exmex::parse::<f64>(&eb.code).ok()?;
    let vars: BTreeSet<&String> = ea.vars.iter().chain(&eb.vars).collect();
    if vars.is_empty() {
        let (x, y) = (fa.eval(&[]).ok()?, fb.eval(&[]).ok()?);
        return Some(x.is_finite() && y.is_finite() && super::equal::close(x, y));
    }
    let mut defined = 0;
    for point in 0..POINTS {
        let value = |name: &str| sample(point, name);
        let at = |f: &FlatEx<f64>| -> Option<f64> {
            let args: Vec<f64> = f.var_names().iter().map(|n| value(n)).collect();
            f.eval(&args).ok()
        };
        let (x, y) = (at(&fa)?, at(&fb)?);
        match (x.is_finite(), y.is_finite()) {
            (true, true) => {
                let diff = (x - y).abs();
                if diff > 1e-9 && diff > 1e-6 * x.abs().max(y.abs()) {
                    return Some(false);
                }
                defined += 1;
            }
            (false, false) => {}
            _ => return Some(false),
        }
    }
    Some(defined >= MIN_DEFINED)
}

/// The value of variable `name` at point `point`: ±[0.25, 3), from a hash of both.
fn sample(point: u64, name: &str) -> f64 {
    // FNV-1a of the name, then splitmix64.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = h ^ point.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let u = (z >> 11) as f64 / (1u64 << 53) as f64;
    let magnitude = 0.25 + 2.75 * u;
    if z & 1 == 0 {
        magnitude
    } else {
        -magnitude
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    /// A variable, by its exmex name (`_x`, `_a_1`, `_theta`).
    Var(String),
    /// A command without its backslash (`frac`, `sqrt`, `pi`, `sin`).
    Cmd(String),
    /// `+ - * / ^`, and `_` (only `\log_b` takes one).
    Op(char),
    Open(char),
    Close(char),
    Bar,
}

/// An expression in exmex syntax and the variables it names.
struct Expr {
    code: String,
    vars: BTreeSet<String>,
}

impl Expr {
    fn parse(s: &str) -> Option<Expr> {
        if s.len() > MAX_LEN {
            return None;
        }
        let s = MIXED_RE.replace_all(s, |c: &Captures| {
            if proper(&c[3], &c[4]) {
                format!("{}({}+\\frac{{{}}}{{{}}})", &c[1], &c[2], &c[3], &c[4])
            } else {
                c[0].to_string()
            }
        });
        let toks = tokenize(&s)?;
        if toks.iter().all(|t| matches!(t, Tok::Var(_))) {
            return None; // a word, not a formula
        }
        let mut p = Parser {
            t: &toks,
            i: 0,
            depth: 0,
            vars: BTreeSet::new(),
        };
        let code = p.sum()?;
        (p.i == toks.len()).then_some(Expr { code, vars: p.vars })
    }
}

const GREEK: [&str; 20] = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "varepsilon",
    "zeta",
    "eta",
    "theta",
    "vartheta",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "rho",
    "sigma",
    "tau",
    "phi",
    "omega",
];

const FUNCTIONS: [&str; 15] = [
    "sin", "cos", "tan", "sec", "csc", "cot", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
    "ln", "log", "exp",
];

fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let cs: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut letters_in_a_row = 0;
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if !c.is_ascii_alphabetic() {
            letters_in_a_row = 0;
        }
        if c.is_ascii_digit() || (c == '.' && cs.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let start = i;
            while i < cs.len() && (cs[i].is_ascii_digit() || cs[i] == '.') {
                i += 1;
            }
            // An exponent: e3, e-3, E+03.
            if matches!(cs.get(i), Some('e' | 'E')) {
                let sign = usize::from(matches!(cs.get(i + 1), Some('+' | '-')));
                if cs.get(i + 1 + sign).is_some_and(char::is_ascii_digit) {
                    i += 1 + sign;
                    while i < cs.len() && cs[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let text: String = cs[start..i].iter().collect();
            out.push(Tok::Num(text.parse().ok()?));
            continue;
        }
        match c {
            ' ' => {}
            '\\' => {
                let start = i + 1;
                let mut end = start;
                while end < cs.len() && cs[end].is_ascii_alphabetic() {
                    end += 1;
                }
                if end == start {
                    return None; // `\{`, `\\`, ...
                }
                let name: String = cs[start..end].iter().collect();
                i = end;
                if GREEK.contains(&name.as_str()) {
                    let (var, next) = subscripted(&cs, i, format!("_{name}"))?;
                    out.push(Tok::Var(var));
                    i = next;
                } else {
                    out.push(Tok::Cmd(name));
                }
                continue;
            }
            c if c.is_ascii_alphabetic() => {
                letters_in_a_row += 1;
                if letters_in_a_row >= 3 {
                    return None; // a word
                }
                let (var, next) = subscripted(&cs, i + 1, format!("_{c}"))?;
                if next != i + 1 {
                    letters_in_a_row = 0;
                }
                out.push(Tok::Var(var));
                i = next;
                continue;
            }
            // A subscript takes one character, as in TeX: `\log_28` is log₂ 8.
            '_' if cs.get(i + 1).is_some_and(char::is_ascii_digit) => {
                out.push(Tok::Op('_'));
                out.push(Tok::Num(f64::from(cs[i + 1].to_digit(10)?)));
                i += 2;
                continue;
            }
            // `x^23` is x²·3 in TeX but x²³ in plain text: refuse it.
            '^' if cs.get(i + 1).is_some_and(char::is_ascii_digit)
                && cs
                    .get(i + 2)
                    .is_some_and(|c| c.is_ascii_digit() || *c == '.') =>
            {
                return None;
            }
            '+' | '-' | '*' | '/' | '^' | '_' => out.push(Tok::Op(c)),
            '(' | '{' | '[' => out.push(Tok::Open(c)),
            ')' | '}' | ']' => out.push(Tok::Close(c)),
            '|' => out.push(Tok::Bar),
            _ => return None,
        }
        i += 1;
    }
    Some(out)
}

/// A variable's subscript (`_1`, `_n`, `_{12}`), appended to its name; returns
/// the name and where the text goes on.
fn subscripted(cs: &[char], at: usize, mut name: String) -> Option<(String, usize)> {
    if cs.get(at) != Some(&'_') {
        return Some((name, at));
    }
    name.push('_');
    match cs.get(at + 1) {
        Some(c) if c.is_ascii_alphanumeric() => {
            name.push(*c);
            Some((name, at + 2))
        }
        Some('{') => {
            let mut j = at + 2;
            while j < cs.len() && cs[j].is_ascii_alphanumeric() {
                name.push(cs[j]);
                j += 1;
            }
            (j > at + 2 && cs.get(j) == Some(&'}')).then_some((name, j + 1))
        }
        _ => None,
    }
}

struct Parser<'a> {
    t: &'a [Tok],
    i: usize,
    depth: usize,
    vars: BTreeSet<String>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.i)
    }

    fn eat(&mut self, t: &Tok) -> Option<()> {
        (self.peek() == Some(t)).then(|| self.i += 1)
    }

    fn deeper(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// term (('+' | '-') term)*
    fn sum(&mut self) -> Option<String> {
        self.deeper()?;
        let mut acc = self.term()?;
        while let Some(Tok::Op(op @ ('+' | '-'))) = self.peek() {
            let op = *op;
            self.i += 1;
            let r = self.term()?;
            acc = format!("({acc}{op}{r})");
        }
        self.depth -= 1;
        Some(acc)
    }

    /// unary (('*' | '/' | implicit) factor)*
    fn term(&mut self) -> Option<String> {
        let mut acc = self.unary()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op('*')) => '*',
                Some(Tok::Op('/')) => '/',
                Some(Tok::Cmd(c)) if matches!(c.as_str(), "cdot" | "times" | "ast") => '*',
                Some(Tok::Cmd(c)) if c == "div" => '/',
                _ if self.starts_factor() => {
                    let r = self.power()?;
                    acc = format!("({acc}*{r})");
                    continue;
                }
                _ => break,
            };
            self.i += 1;
            let r = self.unary()?;
            if op == '/' && self.starts_factor() {
                return None; // `1/2x`: (1/2)x or 1/(2x)?
            }
            acc = format!("({acc}{op}{r})");
        }
        Some(acc)
    }

    /// ('-' | '+') unary | power
    fn unary(&mut self) -> Option<String> {
        match self.peek() {
            Some(Tok::Op('-')) => {
                self.i += 1;
                self.deeper()?;
                let v = self.unary()?;
                self.depth -= 1;
                Some(format!("(0-{v})"))
            }
            Some(Tok::Op('+')) => {
                self.i += 1;
                self.deeper()?;
                let v = self.unary();
                self.depth -= 1;
                v
            }
            _ => self.power(),
        }
    }

    /// primary ('^' exponent)?
    fn power(&mut self) -> Option<String> {
        let base = self.primary()?;
        if self.eat(&Tok::Op('^')).is_none() {
            return Some(base);
        }
        let exp = self.exponent()?;
        if self.peek() == Some(&Tok::Op('^')) {
            return None; // `a^b^c`
        }
        Some(format!("({base}^{exp})"))
    }

    /// `{...}`, or a signed single factor (`x^2`, `x^-1`, `e^x`).
    fn exponent(&mut self) -> Option<String> {
        match self.peek()? {
            Tok::Open('{') => self.group('{', '}'),
            Tok::Op('-') => {
                self.i += 1;
                Some(format!("(0-{})", self.primary()?))
            }
            _ => self.primary(),
        }
    }

    fn group(&mut self, open: char, close: char) -> Option<String> {
        self.eat(&Tok::Open(open))?;
        let v = self.sum()?;
        self.eat(&Tok::Close(close))?;
        Some(format!("({v})"))
    }

    /// A braced argument (`\frac{a}{b}`), or one digit/variable (`\frac ab`).
    fn argument(&mut self) -> Option<String> {
        match self.peek()? {
            Tok::Open('{') => self.group('{', '}'),
            Tok::Num(_) | Tok::Var(_) => self.primary(),
            _ => None,
        }
    }

    /// Whether the next token starts a factor (so juxtaposition multiplies).
    fn starts_factor(&self) -> bool {
        match self.peek() {
            Some(Tok::Num(_) | Tok::Var(_) | Tok::Open('(' | '{')) => true,
            Some(Tok::Cmd(c)) => {
                matches!(c.as_str(), "frac" | "sqrt" | "pi") || FUNCTIONS.contains(&c.as_str())
            }
            _ => false,
        }
    }

    fn primary(&mut self) -> Option<String> {
        self.deeper()?;
        let v = self.primary_inner();
        self.depth -= 1;
        v
    }

    fn primary_inner(&mut self) -> Option<String> {
        match self.peek()?.clone() {
            Tok::Num(v) => {
                self.i += 1;
                Some(format!("{v}"))
            }
            Tok::Var(name) => {
                self.i += 1;
                self.vars.insert(name.clone());
                Some(name)
            }
            Tok::Open('(') => self.group('(', ')'),
            Tok::Open('{') => self.group('{', '}'),
            Tok::Bar => {
                self.i += 1;
                let v = self.sum()?;
                self.eat(&Tok::Bar)?;
                Some(format!("abs({v})"))
            }
            Tok::Cmd(name) => {
                self.i += 1;
                self.command(&name)
            }
            _ => None,
        }
    }

    fn command(&mut self, name: &str) -> Option<String> {
        match name {
            "pi" => Some("PI".to_string()),
            "frac" => {
                let a = self.argument()?;
                let b = self.argument()?;
                Some(format!("({a}/{b})"))
            }
            "sqrt" => {
                if self.peek() == Some(&Tok::Open('[')) {
                    let n = self.group('[', ']')?;
                    let a = self.argument()?;
                    return Some(if n == "(3)" {
                        format!("cbrt({a})")
                    } else {
                        format!("({a}^(1/{n}))")
                    });
                }
                Some(format!("sqrt({})", self.argument()?))
            }
            f if FUNCTIONS.contains(&f) => self.function(f),
            _ => None,
        }
    }

    /// `\sin x`, `\sin(2x)`, `\sin^2 x`, `\log_2 8`, `\ln{x}`.
    fn function(&mut self, f: &str) -> Option<String> {
        let mut power = None;
        if self.eat(&Tok::Op('^')).is_some() {
            // Only a positive whole power: `\sin^{-1}` means arcsin.
            let p = match self.peek()? {
                Tok::Open('{') => self.group('{', '}')?,
                Tok::Num(_) => self.primary()?,
                _ => return None,
            };
            let whole = p
                .trim_matches(['(', ')'])
                .parse::<u32>()
                .is_ok_and(|p| p >= 1);
            if !whole {
                return None;
            }
            power = Some(p);
        }
        // `\log_2 8`, `\log_{b} x`: the base.
        let base = if f == "log" && self.eat(&Tok::Op('_')).is_some() {
            Some(self.argument()?)
        } else {
            None
        };
        let arg = match self.peek()? {
            Tok::Open('(') => self.group('(', ')')?,
            Tok::Open('{') => self.group('{', '}')?,
            Tok::Num(_) | Tok::Var(_) | Tok::Cmd(_) => {
                let a = self.primary()?;
                if self.starts_factor() || self.peek() == Some(&Tok::Op('^')) {
                    return None; // `\sin 2x`, `\sin x^2`: read two ways
                }
                a
            }
            _ => return None,
        };
        let applied = match (f, base) {
            ("log", Some(b)) => format!("(ln({arg})/ln({b}))"),
            (f, _) => match f {
                "sec" => format!("(1/cos({arg}))"),
                "csc" => format!("(1/sin({arg}))"),
                "cot" => format!("(1/tan({arg}))"),
                "arcsin" => format!("asin({arg})"),
                "arccos" => format!("acos({arg})"),
                "arctan" => format!("atan({arg})"),
                "log" => format!("log10({arg})"),
                other => format!("{other}({arg})"),
            },
        };
        Some(match power {
            Some(p) => format!("({applied}^{p})"),
            None => applied,
        })
    }
}
