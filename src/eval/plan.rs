//! What an evaluation run will do, found out before any model loads: the settings each
//! strategy's records were made with (refused when they differ), the work left after
//! what is already recorded, and whether the baseline exists.

use super::dataset::Item;
use super::records::RecordLog;
use super::settings::{self, SettingsError};
use ponder_search::Strategy;
use serde_json::{Map, Value};
use std::path::Path;

/// The work of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The strategies' names as recorded.
    pub names: Vec<String>,
    /// (problem, strategy) pairs still to solve.
    pub todo: usize,
    /// Pairs already recorded.
    pub done: usize,
    /// Strategies whose records predate `settings.json` (assumed made with these settings).
    pub unchecked: Vec<(String, usize)>,
}

/// Why a run is refused before it starts.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Recorded settings differ (or the file is unreadable).
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The baseline is neither run nor recorded.
    #[error(
        "--baseline {baseline}: not among this run's strategies ({names}) nor recorded in {dir}"
    )]
    Baseline {
        /// The baseline asked for.
        baseline: String,
        /// This run's strategies.
        names: String,
        /// The output folder.
        dir: String,
    },
}

/// Check the run against what `dir` holds and count the work left. `kinds` are the
/// strategies' registry names (in order); `run_settings` is what shapes every
/// strategy's results besides its own settings (model, prompt, scorer, budget). Each
/// strategy's `settings.json` entry holds its settings struct under `strategy` and its
/// registry name under `kind`, which is all it takes to rebuild it.
#[allow(clippy::too_many_arguments)]
pub fn plan(
    dir: &Path,
    log: &RecordLog,
    items: &[Item],
    kinds: &[String],
    strategies: &[Box<dyn Strategy>],
    seed: u64,
    run_settings: &Map<String, Value>,
    baseline: Option<&str>,
) -> Result<Plan, PlanError> {
    let runs: Vec<_> = strategies
        .iter()
        .zip(kinds)
        .map(|(s, kind)| {
            let mut run = run_settings.clone();
            run.insert("kind".into(), Value::String(kind.trim().to_string()));
            if !s.needs().draft_model {
                run.remove("draft_model"); // the draft shapes only what reads it
            }
            (s.name(), settings::combine(s.settings(), &run))
        })
        .collect();
    let unchecked = settings::reconcile(dir, &runs)?
        .into_iter()
        .map(|name| {
            let n = log.records.iter().filter(|r| r.strategy == name).count();
            (name, n)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let names: Vec<String> = strategies.iter().map(|s| s.name()).collect();
    let recorded = log.done();
    let done = items
        .iter()
        .flat_map(|i| names.iter().map(move |n| (i.id.clone(), n.clone(), seed)))
        .filter(|k| recorded.contains(k))
        .count();
    if let Some(b) = baseline {
        if !names.iter().any(|n| n == b) && !log.records.iter().any(|r| r.strategy == b) {
            return Err(PlanError::Baseline {
                baseline: b.to_string(),
                names: names.join(", "),
                dir: dir.display().to_string(),
            });
        }
    }
    Ok(Plan {
        todo: items.len() * names.len() - done,
        done,
        names,
        unchecked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ponder_search::registry::{self, REGISTRY};

    #[test]
    fn settings_json_rebuilds_every_strategy_and_counts_the_work() {
        let dir = std::env::temp_dir().join(format!("ponder-plan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let log = RecordLog::open(&dir).unwrap();
        let kinds: Vec<String> = REGISTRY.iter().map(|e| e.name.to_string()).collect();
        let strategies: Vec<_> = REGISTRY
            .iter()
            .map(|e| e.build(&serde_json::json!({})).unwrap())
            .collect();
        let items: Vec<Item> = (0..3)
            .map(|i| Item {
                index: i,
                id: format!("p{i}"),
                question: "q".into(),
                gold: "1".into(),
            })
            .collect();
        let run: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "model": "m.gguf", "draft_model": "d.gguf"
        }))
        .unwrap();
        let p = plan(&dir, &log, &items, &kinds, &strategies, 0, &run, None).unwrap();
        assert_eq!((p.todo, p.done), (3 * kinds.len(), 0));
        let text = std::fs::read_to_string(dir.join(settings::FILE)).unwrap();
        let recorded: Map<String, Value> = serde_json::from_str(&text).unwrap();
        for s in &strategies {
            let entry = &recorded[&s.name()];
            let kind = entry["kind"].as_str().unwrap();
            let rebuilt = registry::build(kind, &entry["strategy"]).unwrap();
            assert_eq!(rebuilt.name(), s.name());
            assert_eq!(rebuilt.settings(), s.settings());
            // The draft model is recorded only for what reads it.
            assert_eq!(
                entry.get("draft_model").is_some(),
                s.needs().draft_model,
                "{kind}"
            );
        }
        let err = plan(
            &dir,
            &log,
            &items,
            &kinds,
            &strategies,
            0,
            &run,
            Some("nope"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "--baseline nope: not among this run's strategies (greedy, best-of-8-majority"
            ),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
