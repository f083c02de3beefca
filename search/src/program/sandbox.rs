//! Where a program runs: here on a thread of its own ([`Executor::InProcess`]), or in a
//! child process the OS caps and a wall clock kills ([`Executor::Subprocess`]), which
//! speaks JSON over its standard input and output ([`serve_child`]).

use super::interp::{self, Output};
use super::{Limits, ProgramError};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Stack of the interpreter's thread: the interpreter recurses on the native stack per
/// call, so a deep (limited) call chain needs room.
const STACK_BYTES: usize = 64 << 20;

/// Longest request a child reads: a source within any sane limit, and its limits.
const MAX_REQUEST_BYTES: u64 = 4 << 20;

/// Where programs run.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Executor {
    /// On a thread of this process: the interpreter's own limits only (an instruction
    /// that allocates without bound is not stopped). For tests and trusted programs.
    #[default]
    InProcess,
    /// In a child process per program: `program args…` must answer one request on
    /// its standard streams as [`serve_child`] does (the `ponder` binary's
    /// `run-program` does, capping its own address space and CPU time first). Killed
    /// at the wall-time limit (plus a second for its start).
    Subprocess {
        /// The executable.
        program: PathBuf,
        /// Its arguments.
        args: Vec<String>,
    },
}

/// What a child is asked.
#[derive(Serialize, Deserialize)]
struct Request {
    source: String,
    limits: Limits,
}

/// What a child answers.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply {
    Output(Output),
    Error(ProgramError),
}

impl Executor {
    /// Run a prepared program ([`super::prepare`]) and return what it gave.
    pub fn run(&self, source: &str, limits: &Limits) -> Result<Output, ProgramError> {
        limits.validate()?;
        match self {
            Executor::InProcess => run_on_thread(source, limits),
            Executor::Subprocess { program, args } => run_in_child(program, args, source, limits),
        }
    }
}

fn run_on_thread(source: &str, limits: &Limits) -> Result<Output, ProgramError> {
    let (source, limits) = (source.to_owned(), limits.clone());
    let max_heap = limits.max_heap_bytes;
    let handle = std::thread::Builder::new()
        .name("ponder-program".into())
        .stack_size(STACK_BYTES)
        .spawn(move || interp::run_here(&source, &limits))
        .map_err(|e| ProgramError::Internal(format!("cannot start the interpreter thread: {e}")))?;
    handle.join().unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        // The interpreter's allocator panics when the OS refuses memory (the child's
        // cap), and string lengths past 4 GiB overflow: both are the program's doing.
        let memory = [
            "out of memory",
            "memory allocation",
            "capacity overflow",
            "len overflow",
        ];
        if memory.iter().any(|m| msg.contains(m)) {
            Err(ProgramError::MemoryLimit(max_heap))
        } else {
            Err(ProgramError::Internal(format!(
                "the interpreter panicked: {msg}"
            )))
        }
    })
}

fn run_in_child(
    program: &PathBuf,
    args: &[String],
    source: &str,
    limits: &Limits,
) -> Result<Output, ProgramError> {
    let request = serde_json::to_vec(&Request {
        source: source.to_owned(),
        limits: limits.clone(),
    })
    .map_err(|e| ProgramError::Internal(e.to_string()))?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ProgramError::Internal(format!("cannot start {}: {e}", program.display())))?;
    // The request is small; a child that dies early closes its end (an error here is
    // then read from its exit status below).
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&request);
    }
    let give_up = Instant::now() + limits.wall + Duration::from_secs(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= give_up => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ProgramError::Timeout(limits.wall));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => {
                return Err(ProgramError::Internal(format!(
                    "waiting for the program: {e}"
                )))
            }
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(s) = child.stdout.take() {
        let _ = s.take(1 << 20).read_to_string(&mut out);
    }
    if let Some(s) = child.stderr.take() {
        let _ = s.take(1 << 16).read_to_string(&mut err);
    }
    match serde_json::from_str::<Reply>(out.trim()) {
        Ok(Reply::Output(o)) => Ok(o),
        Ok(Reply::Error(e)) => Err(e),
        Err(_) => Err(died(status, &err, limits)),
    }
}

/// Why a child that gave no reply died, as well as can be told.
fn died(status: std::process::ExitStatus, stderr: &str, limits: &Limits) -> ProgramError {
    if stderr.contains("memory allocation") || stderr.contains("out of memory") {
        return ProgramError::MemoryLimit(limits.max_heap_bytes);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        // SIGXCPU: the CPU-time cap.
        if status.signal() == Some(24) {
            return ProgramError::Timeout(limits.wall);
        }
    }
    let tail: String = stderr
        .lines()
        .last()
        .unwrap_or("")
        .chars()
        .take(300)
        .collect();
    ProgramError::Crashed(format!(
        "{status}{}",
        if tail.is_empty() {
            String::new()
        } else {
            format!(": {tail}")
        }
    ))
}

/// Answer one request read from `input` on `output`, as a child of
/// [`Executor::Subprocess`] does: the request is a JSON object with the prepared
/// `source` and its `limits`; the reply `{"output": …}` or `{"error": …}`. The caller
/// caps the process (address space, CPU time) before calling this.
pub fn serve_child(mut input: impl Read, mut output: impl Write) -> std::io::Result<()> {
    let mut raw = String::new();
    input
        .by_ref()
        .take(MAX_REQUEST_BYTES)
        .read_to_string(&mut raw)?;
    let reply = match serde_json::from_str::<Request>(&raw) {
        Ok(r) => match run_on_thread(&r.source, &r.limits) {
            Ok(o) => Reply::Output(o),
            Err(e) => Reply::Error(e),
        },
        Err(e) => Reply::Error(ProgramError::Internal(format!("a bad request: {e}"))),
    };
    let text = serde_json::to_string(&reply).map_err(std::io::Error::other)?;
    writeln!(output, "{text}")?;
    output.flush()
}
