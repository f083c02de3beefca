//! The `ponder` command line. Each command lives in its own file under `cli/`; this is
//! only the entry point.

// `pub` so that `missing_docs` covers the CLI's items too (nothing outside this binary
// can use them).
pub mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ponder",
    version,
    about = "Test-time search and decoding over llama.cpp"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Answer one question with a test-time strategy.
    Solve(cli::solve::SolveArgs),
    /// Run strategies over a dataset: records, summary tables and an accuracy-vs-tokens plot.
    Eval(cli::eval::EvalArgs),
    /// List the strategies with their settings and defaults, or document one.
    Strategies(cli::strategies::StrategiesArgs),
    /// Measure the engine's Best-of-N rate against a raw llama-cpp-2 loop and sequential runs.
    Bench(cli::bench::BenchArgs),
    /// Compare strategies' wall time per generated token on real problems (first is the baseline).
    BenchSearch(cli::bench_search::BenchSearchArgs),
    /// Download a known model into the cache and print its path.
    FetchModel(cli::fetch_model::FetchModelArgs),
    /// Run one model-written program read from stdin (the program sandbox; internal).
    #[command(hide = true)]
    RunProgram(cli::run_program::RunProgramArgs),
    /// Serve an OpenAI-compatible API that runs a strategy per request.
    Serve(cli::serve::ServeArgs),
    /// Train a correctness probe on the policy's hidden states (for --scorer probe).
    TrainProbe(cli::train_probe::TrainProbeArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("PONDER_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let res = match Cli::parse().cmd {
        Command::Solve(a) => cli::solve::run(a),
        Command::Eval(a) => cli::eval::run(a),
        Command::Strategies(a) => cli::strategies::run(a),
        Command::Bench(a) => cli::bench::run(a),
        Command::BenchSearch(a) => cli::bench_search::run(a),
        Command::FetchModel(a) => cli::fetch_model::run(a),
        Command::RunProgram(a) => cli::run_program::run(a),
        Command::Serve(a) => cli::serve::run(a),
        Command::TrainProbe(a) => cli::train_probe::run(a),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by ": ", leaving out a cause whose text the message
/// already holds (many errors here name their cause in their own message).
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.is_empty() {
            out = text;
        } else if !out.contains(&text) {
            out = format!("{out}: {text}");
        }
    }
    out
}
