//! `ponder run-program` (hidden): run one model-written program for
//! [`Executor::Subprocess`], the sandbox every other command uses for programs. It caps
//! its own address space, CPU time, file writes and open files before reading the
//! request, so that no program can take more than the caps, whatever it does.

use anyhow::{Context, Result};
use clap::Args;
use ponder::search::program::{serve_child, Executor};
use rlimit::Resource;

/// Run one program read as JSON from standard input (internal: the program sandbox).
#[derive(Args)]
pub struct RunProgramArgs {
    /// Cap on this process's address space, MiB.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(64..=65536))]
    memory_mib: u64,
}

/// Longest CPU time a program's process may use, s (above any wall-time limit, which the
/// parent enforces; this only backs it up).
const CPU_SECONDS: u64 = 65;

/// Cap this process, then answer the one request.
pub fn run(a: RunProgramArgs) -> Result<()> {
    let bytes = a.memory_mib << 20;
    for (what, res, limit) in [
        ("address space", Resource::AS, bytes),
        ("CPU time", Resource::CPU, CPU_SECONDS),
        ("file size", Resource::FSIZE, 0),
        ("core dumps", Resource::CORE, 0),
    ] {
        res.set(limit, limit)
            .with_context(|| format!("cannot cap the program's {what}"))?;
    }
    serve_child(std::io::stdin().lock(), std::io::stdout().lock())
        .context("answering the program request")
}

/// The sandbox for programs: this binary's `run-program` in a child process per
/// program. On Linux it is started through `/proc/self/exe`, so a long `ponder eval`
/// still runs programs after its binary was rebuilt (the old file is gone then, and its
/// path no longer starts anything).
pub fn executor() -> Result<Executor> {
    let proc_exe = std::path::Path::new("/proc/self/exe");
    let program = if cfg!(target_os = "linux") && proc_exe.exists() {
        proc_exe.to_path_buf()
    } else {
        std::env::current_exe().context("cannot find the ponder binary to run programs")?
    };
    Ok(Executor::Subprocess {
        program,
        args: vec!["run-program".into()],
    })
}
