//! `ponder bench-search`: strategies' wall time per generated token on real problems,
//! side by side in one run (the first strategy is the baseline of the ratios).

use super::args::{strategy_parser, ModelArgs, RunArgs, StrategyArgs};
use super::{dataset_label, spinner};
use anyhow::{bail, Result};
use clap::Args;
use ponder::search::Problem;
use std::path::PathBuf;

/// Compare strategies' wall time per generated token on real problems.
#[derive(Args)]
pub struct BenchSearchArgs {
    /// Comma-separated strategies; the first is the baseline of the ratios.
    #[arg(long, default_value = "best-of-n,beam", value_delimiter = ',', value_parser = strategy_parser())]
    strategies: Vec<String>,
    /// JSONL dataset (default: the GSM8K test set shipped in data/).
    #[arg(long, default_value = "data/gsm8k/test.jsonl")]
    dataset: PathBuf,
    /// Problems (the first K of the dataset).
    #[arg(long, default_value_t = 6)]
    problems: usize,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    settings: StrategyArgs,
    #[command(flatten)]
    run: RunArgs,
    /// Print the table as JSON.
    #[arg(long)]
    json: bool,
}

/// Run the comparison and print its table.
pub fn run(a: BenchSearchArgs) -> Result<()> {
    use ponder::eval::dataset;
    if a.problems == 0 {
        bail!("invalid --problems: 0 (must be ≥ 1)");
    }
    let strategies = a.settings.build(&a.strategies)?;
    a.run.check()?;
    let data = dataset::load(&a.dataset, None, dataset::OnBadLine::Stop)?;
    let problems: Vec<(Problem, Option<String>)> = data
        .items
        .iter()
        .take(a.problems)
        .map(|i| {
            (
                Problem::new(i.index, i.question.clone()),
                Some(i.gold.clone()),
            )
        })
        .collect();
    let longest = problems
        .iter()
        .map(|p| p.0.question.len())
        .max()
        .unwrap_or(0);
    let pb = spinner("loading the model");
    let cx = a.run.context(&a.model, &strategies, 1, longest)?;
    let engine = cx.engine.clone();
    let rows = ponder::bench::compare_strategies(&cx, &strategies, &problems, |m| {
        pb.set_message(m.to_string())
    })?;
    pb.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{} · {} · {} problems · scorer {:?} · max {} tokens · seed {}",
        engine.info().name,
        dataset_label(&a.dataset),
        problems.len(),
        a.run.scorer,
        strategies
            .iter()
            .map(|s| s.needs().max_tokens)
            .max()
            .unwrap_or(0),
        a.run.seed
    );
    println!(
        "{:<18} {:>10} {:>8} {:>9} {:>9} {:>7} {:>8} {:>10} {:>8}",
        "strategy",
        "ms/token",
        "ratio",
        "tokens",
        "wall s",
        "batch",
        "scorer%",
        "scorer tok",
        "correct"
    );
    for r in &rows {
        println!(
            "{:<18} {:>10.2} {:>8.3} {:>9} {:>9.1} {:>7.1} {:>7.1}% {:>10} {:>8}",
            r.strategy,
            r.ms_per_token,
            r.ratio_vs_baseline,
            r.generated_tokens,
            r.wall_ms / 1e3,
            r.mean_batch,
            100.0 * r.scorer_share,
            r.scorer_tokens
                .map_or_else(|| "n/a".to_string(), |t| t.to_string()),
            r.accuracy
                .map(|x| format!("{:.0}%", 100.0 * x))
                .unwrap_or_default()
        );
    }
    println!(
        "(ms/token and scorer% are medians over problems; ratio = ms/token ÷ the first strategy's)"
    );
    Ok(())
}
