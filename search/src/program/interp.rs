//! Running a program in the Starlark interpreter (a deterministic Python dialect with
//! no I/O and no imports), under limits on steps, heap, call depth and wall time, and
//! reading its result.

use super::{Limits, ProgramError};
use starlark::environment::{Globals, GlobalsBuilder, LibraryExtension, Module};
use starlark::eval::Evaluator;
use starlark::syntax::{AstModule, Dialect};
use starlark::values::Value;
use std::cell::RefCell;
use std::time::Instant;

/// What Python's builtins and `math` give a school-mathematics program and Starlark
/// lacks, written in Starlark itself (so the interpreter's limits hold inside them).
const PRELUDE: &str = r#"
def sum(xs, start = 0):
    total = start
    for x in xs:
        total += x
    return total

def _pow(a, b):
    if type(b) == "int" and b >= 0 and type(a) == "int":
        r = 1
        for _ in range(b):
            r *= a
        return r
    return _exp(b * _log(a))

def _abs(x):
    return -x if x < 0 else x

def round(x, ndigits = None):
    if ndigits == None:
        f = _floor(x)
        d = x - f
        if d > 0.5 or (d == 0.5 and f % 2 == 1):
            f += 1
        return int(f)
    m = 1
    for _ in range(ndigits):
        m *= 10
    return _floor(x * m + 0.5) / m

def divmod(a, b):
    return (a // b, a % b)

def _floor(x):
    i = int(x)
    return i - 1 if i > x else i

def _ceil(x):
    i = int(x)
    return i + 1 if i < x else i

def _sqrt(x):
    if x < 0:
        fail("math domain error: sqrt of a negative number")
    if x == 0:
        return 0.0
    g = float(x) if x < 1 else float(x) / 2
    for _ in range(200):
        n = (g + x / g) / 2
        if n == g:
            break
        g = n
    return g

def _isqrt(n):
    r = int(_sqrt(n))
    for _ in range(4):
        if r * r > n:
            r -= 1
        elif (r + 1) * (r + 1) <= n:
            r += 1
    return r

def _gcd(a, b):
    a, b = _abs(a), _abs(b)
    for _ in range(10000):
        if b == 0:
            return a
        a, b = b, a % b
    fail("gcd did not converge")

def _lcm(a, b):
    return 0 if a == 0 or b == 0 else _abs(a * b) // _gcd(a, b)

def _factorial(n):
    r = 1
    for i in range(2, n + 1):
        r *= i
    return r

def _perm(n, k = None):
    k = n if k == None else k
    r = 1
    for i in range(n - k + 1, n + 1):
        r *= i
    return r

def _comb(n, k):
    if k < 0 or k > n:
        return 0
    return _perm(n, k) // _factorial(k)

def _exp(x):
    k = int(x / 0.6931471805599453)
    r = x - k * 0.6931471805599453
    term, total = 1.0, 1.0
    for i in range(1, 40):
        term *= r / i
        total += term
    return total * _pow2(k)

def _pow2(k):
    r = 1.0
    for _ in range(_abs(k)):
        r = r * 2.0 if k > 0 else r / 2.0
    return r

def _log(x):
    if x <= 0:
        fail("math domain error: log of a non-positive number")
    k = 0
    for _ in range(2000):
        if x > 2:
            x, k = x / 2, k + 1
        elif x < 1:
            x, k = x * 2, k - 1
        else:
            break
    y = (x - 1) / (x + 1)
    total, p = 0.0, y
    for i in range(200):
        total += p / (2 * i + 1)
        p *= y * y
    return 2 * total + k * 0.6931471805599453

pow = _pow
math = struct(
    sqrt = _sqrt, floor = _floor, ceil = _ceil, pi = 3.141592653589793,
    e = 2.718281828459045, gcd = _gcd, lcm = _lcm, factorial = _factorial,
    comb = _comb, perm = _perm, fabs = lambda x: float(_abs(x)), isqrt = _isqrt,
    trunc = lambda x: int(x), pow = lambda a, b: float(_pow(a, b)),
)
"#;

/// Captures `print` output (the last line printed can be a program's answer).
struct Printed(RefCell<Vec<String>>);

impl starlark::PrintHandler for Printed {
    fn println(&self, text: &str) -> starlark::Result<()> {
        let mut lines = self.0.borrow_mut();
        if lines.len() < 1000 {
            lines.push(text.to_string());
        }
        Ok(())
    }
}

fn dialect() -> Dialect {
    Dialect {
        enable_top_level_stmt: true,
        enable_f_strings: true,
        ..Dialect::Extended
    }
}

fn globals() -> Globals {
    GlobalsBuilder::extended_by(&[LibraryExtension::StructType, LibraryExtension::Print]).build()
}

/// What a program gave: a value's text, or a line it printed (prose, perhaps).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// The text of the value it returned or left.
    Value(String),
    /// The last line it printed.
    Printed(String),
}

/// Run a prepared program (see [`super::source::prepare`]) here, on this thread, and
/// return what it gave: the value `solution()` returns if the program defines it, else
/// its `answer` (or `result`) variable, else the last line it printed, else the value
/// of its last expression.
pub fn run_here(source: &str, limits: &Limits) -> Result<Output, ProgramError> {
    limits.validate()?;
    let prelude = AstModule::parse("prelude", PRELUDE.to_owned(), &dialect())
        .map_err(|e| ProgramError::Internal(format!("the prelude does not parse: {e}")))?;
    let ast = AstModule::parse("program.py", source.to_owned(), &dialect())
        .map_err(|e| ProgramError::Syntax(first_line(&e.to_string())))?;
    let globals = globals();
    let printed = Printed(RefCell::new(Vec::new()));
    let deadline = Instant::now() + limits.wall;
    Module::with_temp_heap(|module| {
        module.set("__name__", module.heap().alloc("__main__"));
        let mut eval = Evaluator::new(&module);
        eval.set_print_handler(&printed);
        let limit = |e: anyhow::Error| ProgramError::Internal(e.to_string());
        eval.set_max_callstack_size(limits.max_depth)
            .map_err(limit)?;
        eval.set_max_heap_size(limits.max_heap_bytes)
            .map_err(limit)?;
        eval.set_max_tick_count(limits.max_steps).map_err(limit)?;
        eval.set_check_cancelled(Box::new(move || Instant::now() >= deadline));
        eval.eval_module(prelude, &globals)
            .map_err(|e| ProgramError::Internal(format!("the prelude failed: {e}")))?;
        let classify = |e: starlark::Error, eval: &Evaluator| classify(e, eval, limits, deadline);
        let last = match eval.eval_module(ast, &globals) {
            Ok(v) => v,
            Err(e) => return Err(classify(e, &eval)),
        };
        let value = if let Some(f) = module.get("solution") {
            match eval.eval_function(f, &[], &[]) {
                Ok(v) => v,
                Err(e) => return Err(classify(e, &eval)),
            }
        } else if let Some(v) = module.get("answer").or_else(|| module.get("result")) {
            v
        } else if let Some(line) = printed.0.borrow().last() {
            return Ok(Output::Printed(line.trim().chars().take(300).collect()));
        } else {
            last
        };
        render(value).map(Output::Value)
    })
}

/// A failure of the program as the limit it hit, or as its own error.
fn classify(
    e: starlark::Error,
    eval: &Evaluator,
    limits: &Limits,
    deadline: Instant,
) -> ProgramError {
    if matches!(e.kind(), starlark::ErrorKind::StackOverflow(_)) {
        return ProgramError::DepthLimit(limits.max_depth);
    }
    // The error's own message, without the traceback around it.
    let text = e.kind().to_string();
    let lower = text.to_lowercase();
    if Instant::now() >= deadline || lower.contains("evaluation cancelled") {
        return ProgramError::Timeout(limits.wall);
    }
    if eval.heap().peak_allocated_bytes() > limits.max_heap_bytes
        || lower.contains("heap memory limit")
    {
        return ProgramError::MemoryLimit(limits.max_heap_bytes);
    }
    if lower.contains("tick") {
        return ProgramError::StepLimit(limits.max_steps);
    }
    ProgramError::Runtime(first_line(&text))
}

fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    let mut s: String = line.chars().take(300).collect();
    if s.len() < line.len() {
        s.push('…');
    }
    s
}

/// The answer a value stands for: integers as they are, floats rounded to 6 decimals
/// (an integral float without its `.0`), strings trimmed, anything else as `repr`.
fn render(v: Value) -> Result<String, ProgramError> {
    if v.is_none() {
        return Err(ProgramError::NoResult);
    }
    match v.get_type() {
        "float" => {
            let x: f64 = v.to_repr().parse().map_err(|_| {
                ProgramError::Runtime(format!("a float that does not read back: {v}"))
            })?;
            if !x.is_finite() {
                return Err(ProgramError::Runtime(format!("the result is {x}")));
            }
            Ok(format_float(x))
        }
        "string" => {
            let s = v.unpack_str().unwrap_or_default().trim();
            if s.is_empty() {
                Err(ProgramError::NoResult)
            } else {
                Ok(s.chars().take(200).collect())
            }
        }
        _ => {
            let s = v.to_repr();
            Ok(s.chars().take(200).collect())
        }
    }
}

/// A float as an answer: rounded to 6 decimals, trailing zeros and point dropped.
pub fn format_float(x: f64) -> String {
    let r = (x * 1e6).round() / 1e6;
    let s = format!("{r:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}
