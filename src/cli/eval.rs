//! `ponder eval`: strategies over a dataset, with records, summaries and a plot.

use super::args::{bounded, strategy_parser, ModelArgs, RunArgs, StrategyArgs};
use super::dataset_label;
use anyhow::{bail, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use ponder::eval::dataset::OnBadLine;
use std::path::PathBuf;

/// Run strategies over a dataset: records, summary tables and an accuracy-vs-tokens plot.
#[derive(Args)]
pub struct EvalArgs {
    /// JSONL dataset (GSM8K, MATH-500 and MultiArith fields are detected).
    #[arg(long)]
    dataset: PathBuf,
    /// Comma-separated strategies, e.g. greedy,best-of-n.
    #[arg(long, default_value = "greedy,best-of-n", value_delimiter = ',', value_parser = strategy_parser())]
    strategies: Vec<String>,
    /// Only the first K problems (at least 1; omit it for every problem).
    #[arg(long, value_parser = bounded(1, usize::MAX, "problems, at least 1 (omit --limit for every problem)"))]
    limit: Option<usize>,
    /// Output folder (records.jsonl, summary.md/.csv, curves.csv, accuracy_vs_tokens.svg/.png,
    /// accuracy_vs_n.STRATEGY.svg/.png); reruns resume.
    /// One run writes into a folder at a time (it holds eval.lock there): a second is refused.
    #[arg(long)]
    out: PathBuf,
    /// Problems solved at once (their branches share decode steps), 1 to 256: each holds
    /// at least one of llama.cpp's 256 sequences.
    #[arg(long, default_value_t = 4, value_parser = bounded(1, ponder::engine::sizing::MAX_SEQUENCES, "problems solved at once, 1 to 256 (each holds at least one of llama.cpp's 256 sequences)"))]
    concurrency: usize,
    /// The dataset's question field (with --answer-field), for a custom format.
    #[arg(long)]
    question_field: Option<String>,
    /// The dataset's answer field (with --question-field).
    #[arg(long)]
    answer_field: Option<String>,
    /// What to do with a malformed dataset line.
    #[arg(long, value_enum, default_value = "stop")]
    on_bad_line: OnBadLine,
    /// Compare every strategy with this one (its name as recorded, e.g. best-of-8-majority):
    /// accuracy inside its 95% interval, tokens and time as ratios.
    #[arg(long)]
    baseline: Option<String>,
    /// Solve nothing and load no model: summarize every strategy recorded in --out for
    /// these problems, re-voting each one's recorded candidates at N = 1, 2, 4, … with
    /// every selection method and measuring each signal's AUROC. Takes no lock (it only reads the records), so it may run while an
    /// eval writes into the folder.
    #[arg(long)]
    summary_only: bool,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    settings: StrategyArgs,
    #[command(flatten)]
    run: RunArgs,
}

/// Solve what is not recorded yet, then write the summary of everything recorded.
pub fn run(a: EvalArgs) -> Result<()> {
    use ponder::eval::{self, dataset, plan, records, records::RecordLog};
    let strategies = if a.summary_only {
        Vec::new()
    } else {
        let s = a.settings.build(&a.strategies)?;
        a.run.check()?;
        s
    };
    let fields = match (&a.question_field, &a.answer_field) {
        (Some(q), Some(x)) => Some((q.as_str(), x.as_str())),
        (None, None) => None,
        _ => bail!("--question-field and --answer-field go together"),
    };
    let data = dataset::load(&a.dataset, fields, a.on_bad_line)?;
    for (line, why) in &data.skipped {
        eprintln!("warning: skipped line {line}: {why}");
    }
    let items = &data.items[..a.limit.unwrap_or(usize::MAX).min(data.items.len())];
    if a.summary_only {
        // A reader: no lock, nothing repaired or created, so it may run beside an eval
        // writing into the same folder.
        let records = records::read(&a.out)?;
        if records.is_empty() {
            bail!("nothing recorded in {} to summarize", a.out.display());
        }
        return summarize(&a, items, &records, None, "from recorded runs");
    }
    // The one writer of this folder for the whole run: a second eval is refused here.
    let mut log = RecordLog::open(&a.out)?;
    let plan = {
        let p = plan::plan(
            &a.out,
            &log,
            items,
            &a.strategies,
            &strategies,
            a.run.seed,
            &a.run.settings(&a.model),
            a.baseline.as_deref(),
        )?;
        for (name, n) in &p.unchecked {
            eprintln!(
                "warning: {n} {name} records in {} predate {}: assumed made with this run's settings",
                a.out.display(),
                eval::settings::FILE
            );
        }
        eprintln!(
            "{}: {} problems × {} strategies, {} to do ({} already recorded in {})",
            a.dataset.display(),
            items.len(),
            p.names.len(),
            p.todo,
            p.done,
            a.out.display()
        );
        p
    };
    let todo = plan.todo;
    if todo > 0 {
        let longest = items.iter().map(|i| i.question.len()).max().unwrap_or(0);
        let concurrency = a.concurrency.min(todo);
        let cx = a.run.context(&a.model, &strategies, concurrency, longest)?;
        let pb = ProgressBar::new(todo as u64);
        pb.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed} < {eta}] {msg}")
                .expect("valid template"),
        );
        let tally = parking_lot::Mutex::new((0usize, 0usize, 0u64));
        let started = std::time::Instant::now();
        eval::run(&cx, items, &strategies, concurrency, &mut log, &|r| {
            let mut t = tally.lock();
            t.0 += 1;
            t.1 += r.correct as usize;
            t.2 += r.generated_tokens;
            pb.set_message(format!(
                "accuracy {:.1}% · {:.0} tok/s",
                100.0 * t.1 as f64 / t.0 as f64,
                t.2 as f64 / started.elapsed().as_secs_f64()
            ));
            pb.inc(1);
        })?;
        pb.finish_and_clear();
    }
    let most = strategies.iter().map(|s| s.needs().max_tokens).max();
    let settings = format!("max {} tokens", most.unwrap_or(0));
    summarize(&a, items, &log.records, Some(&plan.names), &settings)
}

/// Write and print the summary of `records` for these items (of `names`, or every
/// strategy recorded), titled with `settings`.
fn summarize(
    a: &EvalArgs,
    items: &[ponder::eval::dataset::Item],
    records: &[ponder::eval::records::Record],
    names: Option<&[String]>,
    settings: &str,
) -> Result<()> {
    let title = format!(
        "{} · {} problems · {settings} · seed {}",
        dataset_label(&a.dataset),
        items.len(),
        a.run.seed
    );
    let md = ponder::eval::write_summary(
        &a.out,
        records,
        items,
        names,
        a.run.seed,
        &title,
        a.baseline.as_deref(),
    )?;
    println!("{md}");
    eprintln!(
        "wrote {}/{{records.jsonl,summary.md,summary.csv,curves.csv,accuracy_vs_tokens.{{svg,png}}}} \
         and accuracy_vs_n.STRATEGY.{{svg,png}} for each strategy with several candidates",
        a.out.display()
    );
    Ok(())
}
