//! `ponder solve`: answer one question with one strategy.

use super::args::{strategy_parser, ModelArgs, RunArgs, StrategyArgs};
use super::{report, spinner};
use anyhow::{bail, Result};
use clap::Args;
use ponder::search::Problem;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

/// Answer one question with a test-time strategy.
#[derive(Args)]
pub struct SolveArgs {
    /// The question.
    question: String,
    /// The strategy (`ponder strategies` describes each).
    #[arg(long, default_value = "best-of-n", value_parser = strategy_parser())]
    strategy: String,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    settings: StrategyArgs,
    #[command(flatten)]
    run: RunArgs,
    /// Wall-clock limit in seconds.
    #[arg(long)]
    timeout: Option<f64>,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    json: bool,
}

/// The longest `--timeout` taken (a day): beyond it a deadline means nothing here.
const MAX_TIMEOUT_S: f64 = 86_400.0;

/// Build the strategy, load the model it needs and print its solution (a report, or
/// JSON with `--json`).
pub fn run(a: SolveArgs) -> Result<()> {
    if a.question.trim().is_empty() {
        bail!("the question is empty");
    }
    let timeout = match a.timeout {
        Some(t) if !(t > 0.0 && t <= MAX_TIMEOUT_S) => {
            bail!("invalid --timeout: {t} (seconds, in (0, {MAX_TIMEOUT_S}])")
        }
        t => t.map(Duration::from_secs_f64),
    };
    let strategy = a
        .settings
        .build(std::slice::from_ref(&a.strategy))?
        .pop()
        .expect("one name, one strategy");
    a.run.check()?;
    let pb = spinner("loading the model");
    let mut cx = a.run.context(
        &a.model,
        std::slice::from_ref(&strategy),
        1,
        a.question.len(),
    )?;
    if let Some(t) = timeout {
        cx.budget = cx.budget.with_timeout(t);
    }
    let engine = cx.engine.clone();
    pb.set_message(format!("solving with {}", strategy.name()));
    let done = AtomicBool::new(false);
    let sol = std::thread::scope(|sc| {
        sc.spawn(|| {
            while !done.load(Relaxed) {
                let st = engine.stats();
                pb.set_message(format!(
                    "solving with {}: {} tokens generated",
                    strategy.name(),
                    st.generated_tokens
                ));
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let r = strategy.solve(&cx, &Problem::new(0, a.question.clone()));
        done.store(true, Relaxed);
        r
    })?;
    pb.finish_and_clear();
    if a.json {
        let j = report::json(&sol, &engine, a.run.seed);
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        report::print(&sol);
    }
    Ok(())
}
