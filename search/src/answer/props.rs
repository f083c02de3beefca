//! Property tests of the answer toolkit (`proptest`).
//!
//! Cases per run (fixed in each block's `ProptestConfig`):
//! * `never_panics_on_arbitrary_text`: 512 arbitrary Unicode strings;
//! * `never_panics_on_latex_soup`: 1024 strings of LaTeX-ish tokens;
//! * `deep_nesting_terminates`: 24 inputs nested up to 20,000 deep;
//! * `long_inputs_terminate`: 16 inputs of up to ~200 KB;
//! * `equivalent_is_symmetric_and_reflexive`: 512 pairs of generated forms;
//! * `forms_of_one_number_are_equal`: 256 numbers, each in up to 9 forms;
//! * `forms_of_one_polynomial_are_equal`: 256 polynomials, 4 forms each;
//! * `normalize_is_idempotent`: 512 LaTeX-ish strings.
//!
//! About 3,600 cases in all; the whole file runs in a few seconds in release.

use super::*;
use proptest::prelude::*;
use std::time::{Duration, Instant};

/// Tokens that exercise every rule of extraction, normalisation and equivalence.
const TOKENS: &[&str] = &[
    "1",
    "2",
    "3",
    "0",
    "5",
    "10",
    ".",
    ",",
    " ",
    "-",
    "+",
    "*",
    "/",
    "^",
    "_",
    "=",
    "<",
    ">",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "|",
    "&",
    "%",
    "$",
    "!",
    "x",
    "y",
    "e",
    "a",
    "\\",
    "\\\\",
    "\\{",
    "\\}",
    "\\frac",
    "\\dfrac",
    "\\cfrac",
    "\\sqrt",
    "\\pm",
    "\\mp",
    "\\le",
    "\\geq",
    "\\ne",
    "\\approx",
    "\\in",
    "\\infty",
    "\\pi",
    "\\cdot",
    "\\times",
    "\\sin",
    "\\log",
    "\\left(",
    "\\right)",
    "\\left\\{",
    "\\right\\}",
    "\\text{",
    "\\boxed{",
    "\\fbox",
    "\\begin{pmatrix}",
    "\\end{pmatrix}",
    "\\begin{array}{c}",
    "\\end{array}",
    "\\emptyset",
    "\\,",
    "\\!",
    "{,}",
    "^\\circ",
    "°",
    "∞",
    "±",
    "≤",
    "é",
    "🎉",
    "答案是",
    " cm",
    " m",
    " pct",
    " or ",
    " and ",
    "f(x)=",
    "(p,q)=",
    "The answer is ",
    "final answer is $",
    "$. I hope",
    "####",
    "\n",
    "1 1/2",
    "2\\frac58",
    "1.5e3",
    "\\times10^{3}",
];

fn soup(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..max).prop_map(|v| v.concat())
}

/// Numbers and expressions in the notations answers use.
fn form() -> impl Strategy<Value = String> {
    let int = -50i64..50;
    prop_oneof![
        int.clone().prop_map(|n| n.to_string()),
        (int.clone(), 1i64..20).prop_map(|(p, q)| format!("{p}/{q}")),
        (int.clone(), 1i64..20).prop_map(|(p, q)| format!("\\frac{{{p}}}{{{q}}}")),
        (1i64..9, 1i64..9, 2i64..10).prop_map(|(w, n, d)| format!("{w}\\frac{{{n}}}{{{d}}}")),
        (int.clone(), 0u32..4).prop_map(|(m, e)| format!("{m}.5 \\times 10^{{{e}}}")),
        (int.clone(), int.clone()).prop_map(|(a, b)| format!("({a}, {b})")),
        (int.clone(), int.clone()).prop_map(|(a, b)| format!("\\{{{a}, {b}\\}}")),
        (int.clone(), int.clone()).prop_map(|(a, b)| format!("x={a}, x={b}")),
        (int.clone(), int.clone()).prop_map(|(a, b)| format!("{a}x + {b}")),
        (int.clone(), int.clone()).prop_map(|(a, b)| format!("{b} + x \\cdot {a}")),
        (int.clone(), 2u32..4).prop_map(|(a, k)| format!("x^{k} - {a}")),
        (int.clone(), 1u32..9).prop_map(|(a, r)| format!("{a} \\pm \\sqrt{{{r}}}")),
        (int.clone(), int.clone()).prop_map(|(a, b)| format!("x \\le {a}, {b} < y")),
        (int.clone(), int.clone()).prop_map(|(a, b)| format!("{a} \\geq x > {b}")),
        (int.clone(), int)
            .prop_map(|(a, b)| format!("\\begin{{pmatrix}}{a}\\\\{b}\\end{{pmatrix}}")),
        soup(12),
    ]
}

/// Runs every entry point on `s` (and `s` against a few others); checks the
/// invariants that hold for any input.
fn exercise(s: &str) {
    let _ = extract_answer(s);
    let _ = gsm8k_gold(s);
    let _ = answer_key(s);
    let n = normalize(s);
    if let Some(v) = parse_number(s) {
        assert!(v.is_finite(), "{s:?} parsed as {v}");
    }
    assert_eq!(equivalent(s, s), !n.is_empty(), "reflexive on {s:?}");
    let _ = equivalent(s, "1");
    let _ = equivalent("x+1", s);
}

fn nested(depth: usize, kind: usize) -> String {
    let (open, close, inner) = [
        ("(", ")", "1"),
        ("{", "}", "x"),
        ("[", "]", "1,2"),
        ("\\{", "\\}", "1"),
        ("\\sqrt{", "}", "2"),
        ("\\frac{1}{", "}", "2"),
        ("\\boxed{", "}", "3"),
        ("(1,", ")", "2"),
        ("\\left(", "\\right)", "x"),
        ("|", "|", "-1"),
        ("-", "", "1"),
        ("\\sin ", "", "x"),
        ("\\text{", "}", "a"),
        ("x^{", "}", "2"),
    ][kind % 14];
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_arbitrary_text(s in any::<String>()) {
        exercise(&s);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn never_panics_on_latex_soup(s in soup(40)) {
        exercise(&s);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn deep_nesting_terminates(depth in 1usize..20_000, kind in 0usize..14) {
        let s = nested(depth, kind);
        let t = Instant::now();
        exercise(&s);
        let _ = equivalent(&s, &nested(depth, kind + 1));
        prop_assert!(t.elapsed() < Duration::from_secs(5), "{depth} x {kind}: {:?}", t.elapsed());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn long_inputs_terminate(chunk in soup(30), times in 1usize..2_000) {
        let s = chunk.repeat(times);
        let t = Instant::now();
        exercise(&s);
        prop_assert!(t.elapsed() < Duration::from_secs(5), "{} bytes: {:?}", s.len(), t.elapsed());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn equivalent_is_symmetric_and_reflexive(a in form(), b in form()) {
        prop_assert_eq!(equivalent(&a, &b), equivalent(&b, &a), "{:?} vs {:?}", a, b);
        prop_assert_eq!(equivalent(&a, &a), !normalize(&a).is_empty(), "{:?}", a);
    }

    #[test]
    fn normalize_is_idempotent(s in soup(24)) {
        let once = normalize(&s);
        prop_assert_eq!(normalize(&once), once.clone(), "{:?}", s);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn forms_of_one_number_are_equal(p in -200i64..200, q in 1i64..40) {
        let value = p as f64 / q as f64;
        let mut forms = vec![
            format!("{p}/{q}"),
            format!("\\frac{{{p}}}{{{q}}}"),
            format!("\\dfrac{{{p}}}{{{q}}}"),
            format!("\\left( \\frac{{{p}}}{{{q}}} \\right)"),
            format!("${p}/{q}$"),
            format!("x = \\frac{{{p}}}{{{q}}}"),
            format!("{value:.9}"),
        ];
        if p > q && p % q != 0 {
            forms.push(format!("{}\\frac{{{}}}{{{}}}", p / q, p % q, q));
            forms.push(format!("{} {}/{}", p / q, p % q, q));
        }
        for a in &forms {
            for b in &forms {
                prop_assert!(equivalent(a, b), "{:?} vs {:?}", a, b);
            }
            let other = format!("\\frac{{{}}}{{{q}}}", p + 1);
            prop_assert!(!equivalent(a, &other), "{:?} vs {:?}", a, other);
        }
    }

    #[test]
    fn forms_of_one_polynomial_are_equal(a in 1i64..20, b in -20i64..20, c in -20i64..20) {
        let forms = [
            format!("{a}x^2 + {b}x + {c}"),
            format!("{c} + {b}x + {a}x^2"),
            format!("x^2 \\cdot {a} + x \\cdot {b} + {c}"),
            format!("{a}x^{{2}} + ({b})x + ({c})"),
        ];
        for f in &forms {
            for g in &forms {
                prop_assert!(equivalent(f, g), "{:?} vs {:?}", f, g);
            }
            let off = format!("{a}x^2 + {b}x + {}", c + 1);
            prop_assert!(!equivalent(f, &off), "{:?} vs {:?}", f, off);
            let swapped = format!("{a}x + {b}x^2 + {c}");
            if a != b {
                prop_assert!(!equivalent(f, &swapped), "{:?} vs {:?}", f, swapped);
            }
        }
    }
}
