//! From model text to a program: the code block to run, with the imports a Python
//! program of school mathematics makes (`math`) turned into the interpreter's own
//! module and every other import refused.

use super::{Limits, ProgramError};

/// The program in a model's reply: the last fenced code block that defines
/// `solution()` (else the last fenced block), or, with no fence, the text from its
/// first line that starts a definition or an assignment. None: nothing looks like code.
pub fn program_in(text: &str) -> Option<String> {
    let blocks = fenced_blocks(text);
    if let Some(b) = blocks
        .iter()
        .rev()
        .find(|b| b.contains("def solution"))
        .or(blocks.last())
    {
        return Some(b.clone());
    }
    // No fence: a reply that is only code, perhaps after a line of prose.
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| {
        let t = l.trim_start();
        t.starts_with("def ") || t.starts_with("import ") || t.starts_with("from ") || {
            let mut parts = t.splitn(2, '=');
            let lhs = parts.next().unwrap_or("").trim();
            parts.next().is_some_and(|r| !r.starts_with('='))
                && !lhs.is_empty()
                && lhs.chars().all(|c| c.is_alphanumeric() || c == '_')
        }
    })?;
    Some(lines[start..].join("\n"))
}

/// The bodies of the text's ``` fenced blocks (any language tag), in order.
fn fenced_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("```") {
            match current.take() {
                Some(body) => out.push(body.join("\n")),
                None => current = Some(Vec::new()),
            }
        } else if let Some(body) = current.as_mut() {
            body.push(line);
        }
    }
    // An unclosed block (the sample ran out of tokens) still holds code.
    if let Some(body) = current {
        if !body.is_empty() {
            out.push(body.join("\n"));
        }
    }
    out
}

/// Check a program against the source limits and rewrite its imports: `import math`
/// (also `as m`) and `from math import a, b` become bindings to the interpreter's
/// `math`; any other import is refused (programs run without modules, files or
/// network).
pub fn prepare(source: &str, limits: &Limits) -> Result<String, ProgramError> {
    if source.len() > limits.max_source_bytes {
        return Err(ProgramError::TooLong {
            bytes: source.len(),
            limit: limits.max_source_bytes,
        });
    }
    let depth = nesting(source);
    if depth > limits.max_nesting {
        return Err(ProgramError::TooDeep {
            depth,
            limit: limits.max_nesting,
        });
    }
    let mut out = Vec::new();
    for line in source.lines() {
        let indent = &line[..line.len() - line.trim_start().len()];
        let t = line.trim();
        if t.starts_with("assert ") || t.starts_with("assert(") {
            // Starlark has no `assert`; a model's self-checks must not cost its answer
            // (they are often wrong where the solution is right).
            out.push(format!("{indent}pass"));
        } else if let Some(rest) = t.strip_prefix("import ") {
            for module in rest.split(',') {
                let mut words = module.split_whitespace();
                let name = words.next().unwrap_or("");
                check_module(name)?;
                match (words.next(), words.next()) {
                    (Some("as"), Some(alias)) if is_name(alias) => {
                        out.push(format!("{indent}{alias} = math"))
                    }
                    (None, _) => out.push(format!("{indent}pass")),
                    _ => return Err(ProgramError::Forbidden(format!("import {rest}"))),
                }
            }
        } else if let Some(rest) = t.strip_prefix("from ") {
            let (module, names) = rest
                .split_once(" import ")
                .ok_or_else(|| ProgramError::Forbidden(format!("from {rest}")))?;
            check_module(module.trim())?;
            let names = names.trim().trim_start_matches('(').trim_end_matches(')');
            if names.trim() == "*" {
                out.push(format!(
                    "{indent}{}",
                    MATH_NAMES.map(|n| format!("{n} = math.{n}")).join("; ")
                ));
                continue;
            }
            let mut binds = Vec::new();
            for item in names.split(',') {
                let mut words = item.split_whitespace();
                let name = words.next().unwrap_or("");
                let alias = match (words.next(), words.next()) {
                    (Some("as"), Some(a)) => a,
                    (None, _) => name,
                    _ => return Err(ProgramError::Forbidden(format!("from {rest}"))),
                };
                if !MATH_NAMES.contains(&name) || !is_name(alias) {
                    return Err(ProgramError::Forbidden(format!(
                        "from math import {name}: the interpreter's math has {}",
                        MATH_NAMES.join(", ")
                    )));
                }
                binds.push(format!("{alias} = math.{name}"));
            }
            out.push(format!("{indent}{}", binds.join("; ")));
        } else {
            out.push(line.to_string());
        }
    }
    Ok(out.join("\n"))
}

/// What the interpreter's `math` provides (see the prelude).
pub const MATH_NAMES: [&str; 14] = [
    "sqrt",
    "floor",
    "ceil",
    "pi",
    "e",
    "gcd",
    "lcm",
    "factorial",
    "comb",
    "perm",
    "fabs",
    "isqrt",
    "trunc",
    "pow",
];

fn check_module(name: &str) -> Result<(), ProgramError> {
    if name == "math" {
        Ok(())
    } else {
        Err(ProgramError::Forbidden(format!(
            "import of {name:?}: programs run without modules (only math is provided)"
        )))
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// The deepest bracket nesting of the source (a bound on what the parser recurses into).
fn nesting(source: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for c in source.chars() {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                max = max.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_is_the_block_that_defines_solution() {
        let text = "Here:\n```python\nx = 1\n```\nand\n```python\ndef solution():\n    return 2\n```\nDone.";
        assert_eq!(program_in(text).unwrap(), "def solution():\n    return 2");
        // An unclosed block (out of tokens) still counts.
        assert_eq!(program_in("```py\nanswer = 3").unwrap(), "answer = 3");
        // No fence: from the first line of code on.
        assert_eq!(
            program_in("Let me compute.\nprice = 4\nanswer = price * 2").unwrap(),
            "price = 4\nanswer = price * 2"
        );
        assert_eq!(program_in("The answer is 4."), None);
        assert_eq!(program_in("if a == b then"), None);
    }

    #[test]
    fn math_imports_are_rewritten_and_others_refused() {
        let l = Limits::default();
        assert_eq!(prepare("import math\nx = 1", &l).unwrap(), "pass\nx = 1");
        assert_eq!(prepare("import math as m", &l).unwrap(), "m = math");
        assert_eq!(
            prepare("def t():\n    assert solution() == 3, \"no\"\n", &l).unwrap(),
            "def t():\n    pass"
        );
        assert_eq!(
            prepare("    from math import sqrt, floor as f", &l).unwrap(),
            "    sqrt = math.sqrt; f = math.floor"
        );
        for bad in [
            "import os",
            "import numpy as np",
            "from sys import argv",
            "from math import tan",
        ] {
            let e = prepare(bad, &l).unwrap_err();
            assert!(matches!(e, ProgramError::Forbidden(_)), "{bad}: {e:?}");
        }
        let long = "x = 1\n".repeat(10_000);
        assert!(matches!(
            prepare(&long, &l),
            Err(ProgramError::TooLong { .. })
        ));
        let deep = format!("x = {}1{}", "(".repeat(500), ")".repeat(500));
        assert!(matches!(
            prepare(&deep, &l),
            Err(ProgramError::TooDeep { depth: 500, .. })
        ));
    }
}
