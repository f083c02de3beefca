//! Program-aided answers (PoT / PAL): the model writes a short program, ponder runs it
//! and the program's result is the candidate's answer.
//!
//! Programs come from the model, so they are hostile input. They run in Starlark, a
//! deterministic dialect of Python with no I/O, no imports and no `while` (the `starlark`
//! crate), under limits on interpreter steps, heap bytes, call depth, source size,
//! bracket nesting and wall time ([`Limits`]). The interpreter checks its limits between
//! instructions, so one instruction that allocates without bound (`"x" * 2**31`) could
//! still exhaust memory: [`Executor::Subprocess`] runs each program in a child process
//! (the `ponder` binary's `run-program`) whose address space and CPU time the OS caps,
//! and kills it at the wall-time limit. The CLI always uses it; [`Executor::InProcess`]
//! is for tests and trusted programs.
//!
//! Layout: `source` (finding the program in a reply, rewriting `math` imports),
//! `interp` (the interpreter and its prelude), `sandbox` (where a program runs).

mod interp;
mod sandbox;
mod source;

pub use interp::{format_float, Output};
pub use sandbox::{serve_child, Executor};
pub use source::{prepare, program_in, MATH_NAMES};

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What one program may use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Interpreter steps (bytecode instructions; a loop of a million additions takes
    /// a few million).
    pub max_steps: u64,
    /// Interpreter heap, bytes.
    pub max_heap_bytes: usize,
    /// Call depth (recursion included).
    pub max_depth: usize,
    /// Source length, bytes.
    pub max_source_bytes: usize,
    /// Bracket nesting of the source.
    pub max_nesting: usize,
    /// Wall time, seconds (at most 60).
    #[serde(with = "seconds")]
    #[schemars(with = "f64")]
    pub wall: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_steps: 20_000_000,
            max_heap_bytes: 64 << 20,
            max_depth: 200,
            max_source_bytes: 20_000,
            max_nesting: 100,
            wall: Duration::from_secs(2),
        }
    }
}

impl Limits {
    /// Every limit must be positive and the wall time at most a minute.
    pub fn validate(&self) -> Result<(), ProgramError> {
        let bad = |what: &str| Err(ProgramError::BadLimits(what.to_string()));
        if self.max_steps == 0 {
            return bad("max_steps is 0 (must be ≥ 1)");
        }
        if self.max_heap_bytes == 0 {
            return bad("max_heap_bytes is 0 (must be ≥ 1)");
        }
        if self.max_depth == 0 {
            return bad("max_depth is 0 (must be ≥ 1)");
        }
        if self.max_source_bytes == 0 {
            return bad("max_source_bytes is 0 (must be ≥ 1)");
        }
        if self.max_nesting == 0 {
            return bad("max_nesting is 0 (must be ≥ 1)");
        }
        if self.wall.is_zero() || self.wall > Duration::from_secs(60) {
            return bad("wall must be in (0, 60] seconds");
        }
        Ok(())
    }
}

mod seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let x = f64::deserialize(d)?;
        if !(x > 0.0 && x <= 60.0) {
            return Err(serde::de::Error::custom(format!(
                "wall is {x} s (must be in (0, 60])"
            )));
        }
        Ok(Duration::from_secs_f64(x))
    }
}

/// Why a program gave no answer: each ends one candidate, never the search.
#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum ProgramError {
    /// No code was found in the reply.
    #[error("no program in the reply")]
    NoProgram,
    /// The source does not parse.
    #[error("syntax error: {0}")]
    Syntax(String),
    /// The program failed while running.
    #[error("runtime error: {0}")]
    Runtime(String),
    /// An import other than `math`, or an import form not understood.
    #[error("not allowed: {0}")]
    Forbidden(String),
    /// The program ran but gave nothing to read (no `solution()`, `answer`, print or
    /// final expression, or it was `None` or empty).
    #[error("the program gave no result (define solution() or set answer)")]
    NoResult,
    /// The source is longer than allowed.
    #[error("the program is {bytes} bytes, over the limit of {limit}")]
    TooLong {
        /// Its length.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// Brackets nest deeper than allowed.
    #[error("brackets nest {depth} deep, over the limit of {limit}")]
    TooDeep {
        /// How deep.
        depth: usize,
        /// The limit.
        limit: usize,
    },
    /// It took more interpreter steps than allowed.
    #[error("over the step limit ({0} steps)")]
    StepLimit(u64),
    /// It used more memory than allowed.
    #[error("over the memory limit ({0} bytes)")]
    MemoryLimit(usize),
    /// It called deeper than allowed.
    #[error("over the call-depth limit ({0})")]
    DepthLimit(usize),
    /// It ran past the wall-time limit.
    #[error("over the time limit ({0:?})")]
    Timeout(#[serde(with = "seconds_plain")] Duration),
    /// The child process running it died (a limit of the OS, or a crash).
    #[error("the program's process died: {0}")]
    Crashed(String),
    /// The limits themselves are unusable.
    #[error("bad program limits: {0}")]
    BadLimits(String),
    /// A fault of ponder's, not of the program (the sandbox could not start, say).
    #[error("program runner: {0}")]
    Internal(String),
}

/// Seconds without the limit's range check (an error reports whatever it was given).
mod seconds_plain {
    pub use super::seconds::serialize;
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let x = f64::deserialize(d)?;
        Ok(Duration::try_from_secs_f64(x).unwrap_or_default())
    }
}

/// A reply's answer by running its program: [`program_in`], [`prepare`], then the
/// executor. A value is normalised like any extracted answer; a printed line is read
/// like a reply (`The answer is 4` gives `4`).
pub fn answer_of(text: &str, executor: &Executor, limits: &Limits) -> Result<String, ProgramError> {
    let source = program_in(text).ok_or(ProgramError::NoProgram)?;
    let prepared = prepare(&source, limits)?;
    let answer = match executor.run(&prepared, limits)? {
        Output::Value(v) => Some(crate::answer::normalize(&v)),
        Output::Printed(line) => crate::answer::extract_answer(&line),
    };
    answer
        .filter(|a| !a.is_empty())
        .ok_or(ProgramError::NoResult)
}

#[cfg(test)]
mod tests;
