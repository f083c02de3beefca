//! The structure of a normalised answer: a matrix, a set, a `±` pair, a tuple
//! or interval, a bare list, a relation, or one value.

/// Most items a collection is split into (more: it is compared as one value).
const MAX_ITEMS: usize = 32;

/// What a [`super::normalize`]d answer is, structurally.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Shape {
    /// `\begin{pmatrix}..\end{pmatrix}`: rows of entries.
    Matrix(Vec<Vec<String>>),
    /// `\{a, b\}` (or `{a, b}`), `\emptyset`: unordered.
    Set(Vec<String>),
    /// `a \pm b`: the alternatives, unordered.
    PlusMinus(Vec<String>),
    /// `(a, b)` or `[a, b)`: ordered, with its brackets.
    Tuple {
        /// Opening bracket.
        open: char,
        /// Closing bracket.
        close: char,
        /// The entries.
        items: Vec<String>,
    },
    /// `a, b` without brackets (a list of solutions): unordered.
    List(Vec<String>),
    /// `a < b ≤ c`, `a = b`: terms and the relations between them.
    Relation {
        /// The terms, one more than the relations.
        terms: Vec<String>,
        /// The relations, in order.
        ops: Vec<Rel>,
    },
    /// Anything else.
    Single,
}

/// A relation between two terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rel {
    Eq,
    Ne,
    Approx,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Rel {
    /// The same relation read from right to left (`a > b` is `b < a`).
    pub(super) fn flipped(self) -> Rel {
        match self {
            Rel::Lt => Rel::Gt,
            Rel::Le => Rel::Ge,
            Rel::Gt => Rel::Lt,
            Rel::Ge => Rel::Le,
            symmetric => symmetric,
        }
    }
}

impl Shape {
    /// Reads the shape of a normalised answer.
    pub(super) fn of(s: &str) -> Shape {
        if let Some(rows) = matrix(s) {
            return Shape::Matrix(rows);
        }
        if s == "\\emptyset" {
            return Shape::Set(Vec::new());
        }
        if let Some(inner) = s.strip_prefix("\\{").and_then(|r| r.strip_suffix("\\}")) {
            if closes_at_end(&s[1..]) {
                return Shape::Set(expand_items(split_top(inner, ',')));
            }
        }
        if s.starts_with('{') && closes_at_end(s) {
            let items = split_top(&s[1..s.len() - 1], ',');
            if items.len() >= 2 {
                return Shape::Set(expand_items(items));
            }
        }
        let first = s.chars().next();
        let last = s.chars().next_back();
        if let (Some(open @ ('(' | '[')), Some(close @ (')' | ']'))) = (first, last) {
            if closes_at_end(s) {
                let items = split_top(&s[1..s.len() - 1], ',');
                if items.len() >= 2 {
                    let items = items.into_iter().map(str::to_string).collect();
                    return Shape::Tuple { open, close, items };
                }
            }
        }
        let items = split_top(s, ',');
        if items.len() >= 2 {
            return Shape::List(expand_items(items));
        }
        if let Some(pair) = plus_minus(s) {
            return Shape::PlusMinus(pair.to_vec());
        }
        if let Some((terms, ops)) = relation(s) {
            return Shape::Relation { terms, ops };
        }
        Shape::Single
    }

    /// The items of an unordered collection (set, list, `±` pair).
    pub(super) fn unordered(&self) -> Option<&[String]> {
        match self {
            Shape::Set(v) | Shape::List(v) | Shape::PlusMinus(v) => Some(v),
            _ => None,
        }
    }
}

/// Whether the bracket that opens `s` closes at its very end.
fn closes_at_end(s: &str) -> bool {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                let Some(d) = depth.checked_sub(1) else {
                    return false;
                };
                depth = d;
                if depth == 0 {
                    return i + c.len_utf8() == s.len();
                }
            }
            _ => {}
        }
    }
    false
}

/// Splits at `sep` outside all brackets; past [`MAX_ITEMS`] parts, `s` whole.
fn split_top(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i64;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            c if c == sep && depth == 0 => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
                if parts.len() > MAX_ITEMS {
                    return vec![s];
                }
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Items of an unordered collection, each `±` item as its two alternatives.
fn expand_items(items: Vec<&str>) -> Vec<String> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match plus_minus(item) {
            Some(pair) => out.extend(pair),
            None => out.push(item.to_string()),
        }
    }
    out
}

/// `a \pm b` → [`a + b`, `a - b`] (`\mp` takes the other sign). `None`
/// without a `\pm` / `\mp`.
fn plus_minus(s: &str) -> Option<[String; 2]> {
    let has = |cmd: &str| {
        s.match_indices(cmd).any(|(i, m)| {
            !s[i + m.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
        })
    };
    if !has("\\pm") && !has("\\mp") {
        return None;
    }
    let with = |pm: &str, mp: &str| {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(at) = rest.find('\\') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let len = after
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(after.len());
            match &after[..len] {
                "pm" => out.push_str(pm),
                "mp" => out.push_str(mp),
                name => {
                    out.push('\\');
                    out.push_str(name);
                }
            }
            rest = &after[len..];
        }
        out.push_str(rest);
        out
    };
    Some([with("+", "-"), with("-", "+")])
}

/// `\begin{pmatrix}a&b\\c&d\end{pmatrix}` → rows of entries.
fn matrix(s: &str) -> Option<Vec<Vec<String>>> {
    let inner = s
        .strip_prefix("\\begin{pmatrix}")?
        .strip_suffix("\\end{pmatrix}")?;
    if inner.contains("\\begin") || inner.contains("\\end") {
        return None;
    }
    let mut rows = split_rows(inner);
    if rows.last().is_some_and(|r| r.is_empty()) && rows.len() > 1 {
        rows.pop();
    }
    let grid: Vec<Vec<String>> = rows
        .iter()
        .map(|r| split_top(r, '&').into_iter().map(str::to_string).collect())
        .collect();
    let width = grid.first()?.len();
    (grid.len() <= MAX_ITEMS && grid.iter().all(|r| r.len() == width)).then_some(grid)
}

/// Splits matrix rows at `\\` outside brackets.
fn split_rows(inner: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i64;
    let mut start = 0;
    let bytes = inner.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'(' | b'[' => depth += 1,
            b'}' | b')' | b']' => depth -= 1,
            b'\\' if depth == 0 && bytes.get(i + 1) == Some(&b'\\') => {
                out.push(&inner[start..i]);
                i += 2;
                start = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&inner[start..]);
    out
}

/// `a < b \le c` → terms and relations, split outside brackets. `None` when
/// there is no relation or a term is empty.
fn relation(s: &str) -> Option<(Vec<String>, Vec<Rel>)> {
    let mut terms = Vec::new();
    let mut ops = Vec::new();
    let mut depth = 0i64;
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        let c = s[i..].chars().next()?;
        let mut op = None;
        let mut len = c.len_utf8();
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            '=' if depth == 0 => op = Some(Rel::Eq),
            '<' if depth == 0 => op = Some(Rel::Lt),
            '>' if depth == 0 => op = Some(Rel::Gt),
            '\\' => {
                let after = &s[i + 1..];
                let n = after
                    .find(|c: char| !c.is_ascii_alphabetic())
                    .unwrap_or(after.len());
                len = 1 + n;
                if depth == 0 {
                    op = match &after[..n] {
                        "le" => Some(Rel::Le),
                        "ge" => Some(Rel::Ge),
                        "ne" => Some(Rel::Ne),
                        "approx" => Some(Rel::Approx),
                        _ => None,
                    };
                }
            }
            _ => {}
        }
        if let Some(op) = op {
            terms.push(s[start..i].trim().to_string());
            ops.push(op);
            start = i + len;
            if ops.len() > MAX_ITEMS {
                return None;
            }
        }
        i += len;
    }
    terms.push(s[start..].trim().to_string());
    (!ops.is_empty() && terms.iter().all(|t| !t.is_empty())).then_some((terms, ops))
}
