//! `ponder eval`: run strategies over a dataset, concurrently so the engine batches across
//! problems, append one record per (problem, strategy) as it finishes, skip work already
//! recorded, and summarise accuracy against cost as tables and a plot.

pub mod curves;
pub mod dataset;
pub mod plan;
pub mod plot;
#[cfg(test)]
mod props;
pub mod records;
pub mod settings;
pub mod summary;

use dataset::Item;
use ponder_search::answer::equivalent;
use ponder_search::{Cx, Problem, SearchError, Strategy};
use records::{Record, RecordError, RecordLog};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

/// Errors of an evaluation run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The dataset could not be read or parsed.
    #[error(transparent)]
    Dataset(#[from] dataset::DatasetError),
    /// The records file could not be read or appended to.
    #[error(transparent)]
    Records(#[from] RecordError),
    /// A strategy failed on a problem (the run stops at the first failure; records
    /// already appended stay).
    #[error("problem {id} with {strategy}: {source}")]
    Solve {
        /// The problem's dataset id.
        id: String,
        /// The strategy's report name.
        strategy: String,
        /// What went wrong.
        source: SearchError,
    },
    /// A summary file could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The accuracy-vs-tokens plot could not be drawn.
    #[error(transparent)]
    Plot(#[from] plot::PlotError),
    /// The `--baseline` strategy has no records for these problems and seed.
    #[error("baseline {name} has no records here (recorded: {recorded})")]
    Baseline {
        /// The baseline's strategy name.
        name: String,
        /// The strategies that do have records, comma-separated.
        recorded: String,
    },
}

/// Build the record of one solved problem.
/// `scorer` names the run's scorer: a candidate with no signals (a tree search's node)
/// has its `score` recorded under it.
pub fn record(item: &Item, sol: &ponder_search::Solution, seed: u64, scorer: &str) -> Record {
    let right = |a: &Option<String>| a.as_deref().is_some_and(|a| equivalent(a, &item.gold));
    Record {
        id: item.id.clone(),
        index: item.index,
        strategy: sol.strategy.clone(),
        gold: item.gold.clone(),
        answer: sol.answer.clone(),
        correct: right(&sol.answer),
        generated_tokens: sol.stats.generated_tokens,
        prompt_tokens: sol.stats.prompt_tokens,
        decoded_tokens: sol.stats.decoded_tokens,
        decode_calls: sol.stats.decode_calls,
        wall_ms: sol.stats.wall_ms,
        seed,
        truncated: sol.truncated,
        candidates: sol.candidates.len(),
        candidates_correct: sol.candidates.iter().filter(|c| right(&c.answer)).count(),
        scorer_tokens: sol.scorer_stats.as_ref().map_or(0, |s| s.decoded_tokens),
        scoring_ms: sol.scoring_ms,
        chosen_score: sol.chosen.and_then(|i| sol.candidates[i].score),
        best_score: sol
            .candidates
            .iter()
            .filter_map(|c| c.score)
            .reduce(f64::max),
        draft_tokens: sol.draft.as_ref().map(|d| d.stats.generated_tokens),
        acceptance_rate: sol.draft.as_ref().map(|d| d.acceptance_rate),
        prompt_budget: sol.prompt_budget,
        stages: sol.stages.clone(),
        per_candidate: sol
            .candidates
            .iter()
            .map(|c| {
                let mut scores = c.signals.clone();
                if let (true, Some(s)) = (scores.is_empty(), c.score) {
                    scores.insert(scorer.to_string(), s);
                }
                records::CandidateRecord {
                    answer: c.answer.clone(),
                    correct: right(&c.answer),
                    tokens: c.tokens,
                    finish: c.finish.clone(),
                    scores,
                    error: c.error.clone(),
                }
            })
            .collect(),
    }
}

/// Solve every (item, strategy) pair not yet in `log`, `concurrency` problems at a time,
/// appending each record as it finishes. Work runs problem by problem (all strategies of a
/// problem before the next), so a partial run covers every strategy alike. Returns the
/// number of new records. The first error stops the run: no new problem starts, and
/// after a failed append (a full disk) the problems still in flight are not appended
/// either ([`RecordError::Append`]), so the file ends at worst in one torn line.
///
/// Records are keyed by strategy name: a caller that reuses a folder should first check
/// the strategies' settings with [`settings::reconcile`] (as `ponder eval` does).
pub fn run(
    cx: &Cx,
    items: &[Item],
    strategies: &[Box<dyn Strategy>],
    concurrency: usize,
    log: &mut RecordLog,
    on_record: &(dyn Fn(&Record) + Sync),
) -> Result<usize, EvalError> {
    let done = log.done();
    let work: Vec<(&Item, &dyn Strategy)> = items
        .iter()
        .flat_map(|it| strategies.iter().map(move |s| (it, s.as_ref())))
        .filter(|(it, s)| !done.contains(&(it.id.clone(), s.name(), cx.seed)))
        .collect();
    let log = parking_lot::Mutex::new(log);
    let added = AtomicUsize::new(0);
    for_each_concurrently(
        &work,
        concurrency,
        |&(item, strategy)| -> Result<(), EvalError> {
            let sol = strategy
                .solve(cx, &Problem::new(item.index, item.question.clone()))
                .map_err(|source| EvalError::Solve {
                    id: item.id.clone(),
                    strategy: strategy.name(),
                    source,
                })?;
            let r = record(item, &sol, cx.seed, cx.scorer.name());
            log.lock().append(r.clone())?;
            added.fetch_add(1, Relaxed);
            on_record(&r);
            Ok(())
        },
    )?;
    Ok(added.into_inner())
}

/// Run `f` on every item, `concurrency` at a time, each item once, in order of start.
/// After the first error no new item starts; that error is returned once the items in
/// flight are done.
pub(crate) fn for_each_concurrently<T: Sync, E: Send>(
    items: &[T],
    concurrency: usize,
    f: impl Fn(&T) -> Result<(), E> + Sync,
) -> Result<(), E> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first_err = parking_lot::Mutex::new(None);
    std::thread::scope(|sc| {
        for _ in 0..concurrency.max(1) {
            sc.spawn(|| {
                while !stop.load(Relaxed) {
                    let Some(item) = items.get(next.fetch_add(1, Relaxed)) else {
                        break;
                    };
                    if let Err(e) = f(item) {
                        stop.store(true, Relaxed);
                        first_err.lock().get_or_insert(e);
                    }
                }
            });
        }
    });
    first_err.into_inner().map_or(Ok(()), Err)
}

/// Write `summary.md`, `summary.csv` and the accuracy-vs-tokens plot for the records of
/// these items and strategy names under `seed` (every strategy recorded when `names` is
/// None); with a `baseline` strategy (recorded by this run or an earlier one), a second
/// table compares every row with it. Returns the Markdown.
pub fn write_summary(
    dir: &Path,
    records: &[Record],
    items: &[Item],
    names: Option<&[String]>,
    seed: u64,
    title: &str,
    baseline: Option<&str>,
) -> Result<String, EvalError> {
    let ids: std::collections::HashSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
    let mine: Vec<Record> = records
        .iter()
        .filter(|r| r.seed == seed && ids.contains(r.id.as_str()))
        .cloned()
        .collect();
    let mut names = match names {
        Some(n) => n.to_vec(),
        None => summary::strategies_in(&mine),
    };
    // A baseline recorded by an earlier run heads the table.
    if let Some(b) = baseline {
        if !names.iter().any(|n| n == b) && mine.iter().any(|r| r.strategy == b) {
            names.insert(0, b.to_string());
        }
    }
    let rows = summary::summarize(&mine, &names);
    let mut md = summary::markdown(&rows);
    if let Some(b) = baseline {
        let vs = summary::versus(&rows, b).ok_or_else(|| EvalError::Baseline {
            name: b.to_string(),
            recorded: names.join(", "),
        })?;
        md.push_str(&format!("\nAgainst {b}:\n\n{vs}"));
    }
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        // Atomic: a --summary-only beside a running eval may write these at once.
        crate::durable::replace(&path, text.as_bytes())
            .map_err(|source| EvalError::Io { path, source })
    };
    write("summary.csv", &summary::csv(&rows))?;
    let points: Vec<plot::Point> = rows
        .iter()
        .map(|r| plot::Point {
            label: r.strategy.clone(),
            accuracy: r.accuracy,
            ci_low: r.ci_low,
            ci_high: r.ci_high,
            mean_tokens: r.mean_generated_tokens,
        })
        .collect();
    if !points.is_empty() {
        plot::plot_accuracy_vs_tokens(&points, title, &dir.join("accuracy_vs_tokens"))?;
    }
    let mut csv = String::from("strategy,selection,n,accuracy\n");
    for name in &names {
        let rs: Vec<&Record> = mine.iter().filter(|r| &r.strategy == name).collect();
        if let Some(t) = summary::stages(&rs) {
            md.push_str(&format!("\n{name}, by stage:\n\n{t}"));
        }
        if rs.iter().map(|r| r.per_candidate.len()).max().unwrap_or(0) < 2 {
            continue;
        }
        let signals = curves::common_signals(&rs);
        let Some(cs) = curves::curves(&rs, &curves::methods(&rs, &signals)) else {
            continue;
        };
        md.push_str(&format!(
            "\n{name}, re-voted from its candidates (each N averages the N-subsets of every \
             problem's candidates; AUROC over all candidates, right against wrong):\n\n{}",
            curves::markdown(&cs, &curves::discrimination(&rs))
        ));
        csv.push_str(&curves::csv_rows(name, &cs));
        let stem = dir.join(format!("accuracy_vs_n.{name}"));
        plot::plot_accuracy_vs_n(&cs, &format!("{name} · {title}"), &stem)?;
    }
    write("curves.csv", &csv)?;
    write("summary.md", &format!("# {title}\n\n{md}"))?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ponder_engine::mock::{ChoiceModel, MockConfig};
    use ponder_engine::Engine;
    use ponder_search::registry::build;
    use serde_json::json;
    use std::sync::Arc;

    /// A context on the mock backend that writes these texts with these weights.
    fn choice_cx(texts: &[(&str, f32)]) -> Cx {
        let model = ChoiceModel::new(texts);
        let engine = Engine::mock(MockConfig {
            model: Arc::new(model),
            ..Default::default()
        })
        .unwrap();
        Cx::new(engine)
    }

    fn items(n: usize) -> Vec<Item> {
        (0..n)
            .map(|i| Item {
                index: i as u64,
                id: format!("p{i}"),
                question: format!("q{i}"),
                gold: "5".into(),
            })
            .collect()
    }

    #[test]
    fn resume_skips_done_work_without_duplicates() {
        let cx = choice_cx(&[("so \\boxed{5}", 0.6), ("so \\boxed{7}", 0.4)]);
        let strategies = vec![
            build("greedy", &json!({"max_tokens": 32})).unwrap(),
            build("best-of-n", &json!({"n": 4, "max_tokens": 32})).unwrap(),
        ];
        let dir = std::env::temp_dir().join(format!("ponder-eval-resume-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);

        let mut log = RecordLog::open(&dir).unwrap();
        let n = run(&cx, &items(3), &strategies, 2, &mut log, &|_| {}).unwrap();
        assert_eq!(n, 6);
        drop(log);
        let mut log = RecordLog::open(&dir).unwrap();
        let seen = std::sync::Mutex::new(Vec::new());
        let n = run(&cx, &items(5), &strategies, 3, &mut log, &|r| {
            seen.lock().unwrap().push(r.id.clone())
        })
        .unwrap();
        assert_eq!(n, 4, "only the two new problems, for both strategies");
        let mut new_ids = seen.into_inner().unwrap();
        new_ids.sort();
        assert_eq!(new_ids, ["p3", "p3", "p4", "p4"]);
        let keys: Vec<_> = log.records.iter().map(Record::key).collect();
        let unique: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(keys.len(), 10);
        assert_eq!(unique.len(), 10, "no duplicate records");
        // Greedy follows the heavier text: every greedy record is correct.
        assert!(log
            .records
            .iter()
            .filter(|r| r.strategy == "greedy")
            .all(|r| r.correct && r.candidates == 1));
        let names: Vec<String> = strategies.iter().map(|s| s.name()).collect();
        let md =
            write_summary(&dir, &log.records, &items(5), Some(&names), 0, "test", None).unwrap();
        assert!(md.contains("| greedy | 5 | 100.0% |"), "{md}");
        for f in [
            "summary.md",
            "summary.csv",
            "accuracy_vs_tokens.svg",
            "accuracy_vs_tokens.png",
        ] {
            assert!(dir.join(f).exists(), "{f}");
        }
        // A later run of greedy alone, against best-of-n recorded earlier: the baseline
        // joins the table; a baseline never recorded is an error naming what was.
        let greedy = ["greedy".to_string()];
        let bon = names[1].as_str();
        let md = write_summary(
            &dir,
            &log.records,
            &items(5),
            Some(&greedy),
            0,
            "t",
            Some(bon),
        )
        .unwrap();
        assert!(md.contains(&format!("| {bon} | 5 |")), "{md}");
        // Greedy's 5 of 5 lies outside the interval of best-of-4's 1 of 5 (3.6–62.4%).
        assert!(md.contains("| greedy | 100.0% | **no** |"), "{md}");
        let err = write_summary(
            &dir,
            &log.records,
            &items(5),
            Some(&greedy),
            0,
            "t",
            Some("x"),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(err, "baseline x has no records here (recorded: greedy)");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn records_keep_every_candidate_and_the_summary_revotes_them() {
        let cx = choice_cx(&[("so \\boxed{5}", 0.6), ("so \\boxed{7}", 0.4)]);
        let strategies = vec![build("best-of-n", &json!({"n": 4, "max_tokens": 32})).unwrap()];
        let dir = std::env::temp_dir().join(format!("ponder-eval-cands-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut log = RecordLog::open(&dir).unwrap();
        run(&cx, &items(6), &strategies, 3, &mut log, &|_| {}).unwrap();
        drop(log);
        // What a later --summary-only reads back.
        let records = records::read(&dir).unwrap();
        let mut right = 0;
        for r in &records {
            assert_eq!(r.per_candidate.len(), 4);
            let correct = r.per_candidate.iter().filter(|c| c.correct).count();
            assert_eq!(correct, r.candidates_correct);
            right += correct;
            for c in &r.per_candidate {
                assert_eq!(c.correct, c.answer.as_deref() == Some("5"), "{c:?}");
                for s in ["logprob", "self-certainty", "verifier"] {
                    assert!(c.scores[s].is_finite(), "{s} of {c:?}");
                }
            }
        }
        write_summary(&dir, &records, &items(6), None, 0, "t", None).unwrap();
        // One sample (N = 1) is right as often as the candidates are.
        let csv = std::fs::read_to_string(dir.join("curves.csv")).unwrap();
        let line = csv
            .lines()
            .find(|l| l.starts_with("best-of-4-majority,majority,1,"))
            .unwrap_or_else(|| panic!("{csv}"));
        let at1: f64 = line.rsplit(',').next().unwrap().parse().unwrap();
        assert!(
            (at1 - right as f64 / 24.0).abs() < 1e-6,
            "{line} vs {right}/24"
        );
        for n in [2, 4] {
            assert!(csv.contains(&format!("best-of-4-majority,majority,{n},")));
        }
        let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
        assert!(md.contains("| answer-frequency |"), "{md}");
        for ext in ["svg", "png"] {
            assert!(dir
                .join(format!("accuracy_vs_n.best-of-4-majority.{ext}"))
                .exists());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_disk_stops_the_run_with_a_clear_error_and_a_readable_file() {
        let cx = choice_cx(&[("so \\boxed{5}", 1.0)]);
        let strategies = vec![build("best-of-n", &json!({"n": 2, "max_tokens": 16})).unwrap()];
        let dir = std::env::temp_dir().join(format!("ponder-eval-full-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut log = RecordLog::open(&dir).unwrap();
        // The third append writes 20 bytes of its line and fails; four threads are
        // still solving when it does.
        log.inject_fault(2, 20);
        let err = run(&cx, &items(40), &strategies, 4, &mut log, &|_| {})
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&dir.join("records.jsonl").display().to_string())
                && err.contains("No space left on device")
                && err.contains("the run stopped at the first failed write"),
            "{err}"
        );
        assert_eq!(log.records.len(), 2, "nothing appended after the failure");
        drop(log);
        // The file reads back (its torn tail cut) and the run resumes where it stopped.
        let mut log = RecordLog::open(&dir).unwrap();
        assert_eq!(log.records.len(), 2);
        let n = run(&cx, &items(40), &strategies, 4, &mut log, &|_| {}).unwrap();
        assert_eq!(n, 38);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn same_seed_same_records() {
        let model = ChoiceModel::new(&[
            ("so \\boxed{5}", 0.5),
            ("so \\boxed{7}", 0.3),
            ("hmm 5", 0.2),
        ]);
        let run_once = |tag: &str| {
            let engine = Engine::mock(MockConfig {
                model: Arc::new(model.clone()),
                ..Default::default()
            })
            .unwrap();
            let mut cx = Cx::new(engine);
            cx.seed = 9;
            let strategies = vec![build("best-of-n", &json!({"n": 6, "max_tokens": 32})).unwrap()];
            let dir =
                std::env::temp_dir().join(format!("ponder-eval-seed-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let mut log = RecordLog::open(&dir).unwrap();
            run(&cx, &items(6), &strategies, 1, &mut log, &|_| {}).unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            log.records
                .into_iter()
                .map(|r| {
                    (
                        r.id,
                        r.answer,
                        r.correct,
                        r.generated_tokens,
                        r.candidates_correct,
                    )
                })
                .collect::<Vec<_>>()
        };
        let a = run_once("a");
        assert_eq!(a.len(), 6);
        assert_eq!(a, run_once("b"));
    }
}
