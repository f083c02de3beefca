//! The summary table: per strategy, accuracy with a 95% Wilson interval, any-of-N
//! correct, mean tokens, tokens/s and wall time per problem; as Markdown and CSV.

use super::records::Record;
use serde::Serialize;

/// One row of the summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// The strategy's report name.
    pub strategy: String,
    /// Problems with a record.
    pub problems: usize,
    /// Problems answered right.
    pub correct: usize,
    /// `correct / problems`, in [0, 1].
    pub accuracy: f64,
    /// Lower end of the accuracy's 95% Wilson interval, in [0, 1].
    pub ci_low: f64,
    /// Upper end of the accuracy's 95% Wilson interval, in [0, 1].
    pub ci_high: f64,
    /// Problems where at least one candidate was right.
    pub any_correct: usize,
    /// Share of all candidates that were right: what one sample alone scores.
    pub sample_accuracy: f64,
    /// Policy tokens generated per problem, on average.
    pub mean_generated_tokens: f64,
    /// Prompt tokens evaluated per problem, on average.
    pub mean_prompt_tokens: f64,
    /// Generated tokens per second of the problems' own wall time (both summed over the
    /// problems; problems solved concurrently each count their whole wall time).
    pub tokens_per_s: f64,
    /// Mean wall time of one problem's solve, in seconds.
    pub wall_s_per_problem: f64,
    /// Problems a budget, deadline or cancel cut short.
    pub truncated: usize,
    /// Mean scorer-model tokens per problem (PRM, judge, layer probe).
    pub mean_scorer_tokens: f64,
    /// Mean seconds per problem spent in the scorer.
    pub mean_scoring_s: f64,
    /// RSD: mean draft tokens per problem (None: no record has them).
    pub mean_draft_tokens: Option<f64>,
    /// RSD: mean acceptance rate over the problems, in [0, 1] (None: no record has one).
    pub mean_acceptance: Option<f64>,
}

/// The 95% Wilson score interval for `k` successes in `n` trials.
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 0.0);
    }
    let (k, n, z) = (k as f64, n as f64, 1.959_963_984_540_054);
    let p = k / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Rows for `strategies`, in that order, from the records (strategies without records are left out).
pub fn summarize(records: &[Record], strategies: &[String]) -> Vec<Row> {
    strategies
        .iter()
        .filter_map(|s| {
            let rs: Vec<&Record> = records.iter().filter(|r| &r.strategy == s).collect();
            if rs.is_empty() {
                return None;
            }
            let n = rs.len();
            let correct = rs.iter().filter(|r| r.correct).count();
            let (lo, hi) = wilson(correct, n);
            let gen: u64 = rs.iter().map(|r| r.generated_tokens).sum();
            let wall_ms: f64 = rs.iter().map(|r| r.wall_ms).sum();
            Some(Row {
                strategy: s.clone(),
                problems: n,
                correct,
                accuracy: correct as f64 / n as f64,
                ci_low: lo,
                ci_high: hi,
                any_correct: rs.iter().filter(|r| r.candidates_correct > 0).count(),
                sample_accuracy: rs.iter().map(|r| r.candidates_correct).sum::<usize>() as f64
                    / rs.iter().map(|r| r.candidates).sum::<usize>().max(1) as f64,
                mean_generated_tokens: gen as f64 / n as f64,
                mean_prompt_tokens: rs.iter().map(|r| r.prompt_tokens).sum::<u64>() as f64
                    / n as f64,
                tokens_per_s: if wall_ms > 0.0 {
                    gen as f64 / (wall_ms / 1e3)
                } else {
                    0.0
                },
                wall_s_per_problem: wall_ms / 1e3 / n as f64,
                truncated: rs.iter().filter(|r| r.truncated).count(),
                mean_scorer_tokens: rs.iter().map(|r| r.scorer_tokens).sum::<u64>() as f64
                    / n as f64,
                mean_scoring_s: rs.iter().map(|r| r.scoring_ms).sum::<f64>() / 1e3 / n as f64,
                mean_draft_tokens: mean(rs.iter().filter_map(|r| r.draft_tokens.map(|t| t as f64))),
                mean_acceptance: mean(rs.iter().filter_map(|r| r.acceptance_rate)),
            })
        })
        .collect()
}

/// A cascade's stages over its records: how many problems reached each stage, where
/// the answer stood, and what a stage cost where it ran (None: no record has stages).
pub fn stages(records: &[&Record]) -> Option<String> {
    let most = records
        .iter()
        .map(|r| r.stages.len())
        .max()
        .filter(|&m| m > 0)?;
    let n = records.len() as f64;
    let mut s = String::from(
        "| stage | strategy | reached | stood there | mean tokens there | mean s there |\n\
         |---:|---|---:|---:|---:|---:|\n",
    );
    for i in 0..most {
        let ran: Vec<_> = records.iter().filter_map(|r| r.stages.get(i)).collect();
        let name = ran.first().map_or("", |st| st.strategy.as_str());
        let stood = ran.iter().filter(|st| st.stood).count() as f64;
        let k = ran.len().max(1) as f64;
        s.push_str(&format!(
            "| {} | {name} | {:.0}% | {:.0}% | {:.0} | {:.1} |\n",
            i + 1,
            100.0 * ran.len() as f64 / n,
            100.0 * stood / n,
            ran.iter().map(|st| st.generated_tokens as f64).sum::<f64>() / k,
            ran.iter().map(|st| st.wall_ms).sum::<f64>() / 1e3 / k,
        ));
    }
    Some(s)
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// Every row against the `baseline` row (by strategy name): accuracy and whether it lies
/// inside the baseline's 95% interval, tokens and wall time as ratios; scorer-model and
/// draft columns when any row has them. None when no row is named `baseline`.
pub fn versus(rows: &[Row], baseline: &str) -> Option<String> {
    let b = rows.iter().find(|r| r.strategy == baseline)?;
    let scorer = rows
        .iter()
        .any(|r| r.mean_scorer_tokens > 0.0 || r.mean_scoring_s > 0.0);
    let draft = rows.iter().any(|r| r.mean_draft_tokens.is_some());
    let mut head = format!(
        "| strategy | accuracy | inside {baseline}'s 95% CI | mean tokens | tokens ÷ {baseline} | s/problem ÷ {baseline} |"
    );
    let mut rule = String::from("|---|---:|:---:|---:|---:|---:|");
    if scorer {
        head.push_str(" scorer tokens | scoring s |");
        rule.push_str("---:|---:|");
    }
    if draft {
        head.push_str(" draft tokens | acceptance |");
        rule.push_str("---:|---:|");
    }
    let mut s = format!("{head}\n{rule}\n");
    for r in rows {
        let inside = (b.ci_low..=b.ci_high).contains(&r.accuracy);
        s.push_str(&format!(
            "| {} | {:.1}% | {} | {:.0} | {:.2} | {:.2} |",
            r.strategy,
            100.0 * r.accuracy,
            if inside { "yes" } else { "**no**" },
            r.mean_generated_tokens,
            r.mean_generated_tokens / b.mean_generated_tokens,
            r.wall_s_per_problem / b.wall_s_per_problem,
        ));
        if scorer {
            s.push_str(&format!(
                " {:.0} | {:.1} |",
                r.mean_scorer_tokens, r.mean_scoring_s
            ));
        }
        if draft {
            let opt = |x: Option<f64>, f: &dyn Fn(f64) -> String| x.map_or("–".into(), f);
            s.push_str(&format!(
                " {} | {} |",
                opt(r.mean_draft_tokens, &|t| format!("{t:.0}")),
                opt(r.mean_acceptance, &|a| format!("{a:.2}")),
            ));
        }
        s.push('\n');
    }
    Some(s)
}

/// Strategy names in the order they first appear in `records`.
pub fn strategies_in(records: &[Record]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in records {
        if !names.contains(&r.strategy) {
            names.push(r.strategy.clone());
        }
    }
    names
}

/// A Markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "| strategy | problems | accuracy | 95% CI | any correct | per sample | mean tokens | tok/s | s/problem |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {:.1}% | {:.1}–{:.1}% | {:.1}% | {:.1}% | {:.0} | {:.1} | {:.1} |\n",
            r.strategy,
            r.problems,
            100.0 * r.accuracy,
            100.0 * r.ci_low,
            100.0 * r.ci_high,
            100.0 * r.any_correct as f64 / r.problems as f64,
            100.0 * r.sample_accuracy,
            r.mean_generated_tokens,
            r.tokens_per_s,
            r.wall_s_per_problem,
        ));
    }
    s
}

/// CSV with a header line.
pub fn csv(rows: &[Row]) -> String {
    let mut s = String::from(
        "strategy,problems,correct,accuracy,ci_low,ci_high,any_correct,sample_accuracy,mean_generated_tokens,mean_prompt_tokens,tokens_per_s,wall_s_per_problem,truncated\n",
    );
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{:.4},{:.4},{:.4},{},{:.4},{:.1},{:.1},{:.2},{:.3},{}\n",
            r.strategy,
            r.problems,
            r.correct,
            r.accuracy,
            r.ci_low,
            r.ci_high,
            r.any_correct,
            r.sample_accuracy,
            r.mean_generated_tokens,
            r.mean_prompt_tokens,
            r.tokens_per_s,
            r.wall_s_per_problem,
            r.truncated
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::records::Record;

    fn rec(strategy: &str, correct: bool, tokens: u64) -> Record {
        Record {
            id: format!("{strategy}-{tokens}"),
            index: 0,
            strategy: strategy.into(),
            gold: "1".into(),
            answer: None,
            correct,
            generated_tokens: tokens,
            prompt_tokens: 10,
            decoded_tokens: 0,
            decode_calls: 0,
            wall_ms: 1000.0,
            seed: 0,
            truncated: false,
            candidates: 8,
            candidates_correct: correct as usize + (tokens > 150) as usize,
            scorer_tokens: 0,
            scoring_ms: 0.0,
            chosen_score: None,
            best_score: None,
            draft_tokens: None,
            acceptance_rate: None,
            prompt_budget: None,
            stages: Vec::new(),
            per_candidate: Vec::new(),
        }
    }

    #[test]
    fn wilson_matches_known_values() {
        // 7/10: Wilson 95% ≈ (0.3968, 0.8922).
        let (lo, hi) = wilson(7, 10);
        assert!(
            (lo - 0.3968).abs() < 1e-3 && (hi - 0.8922).abs() < 1e-3,
            "{lo} {hi}"
        );
        assert_eq!(wilson(0, 0), (0.0, 0.0));
        let (lo, hi) = wilson(0, 20);
        assert_eq!(lo, 0.0);
        assert!(hi > 0.1 && hi < 0.2);
    }

    #[test]
    fn accuracy_equals_the_count_of_correct_records() {
        let rs = vec![
            rec("a", true, 100),
            rec("a", false, 200),
            rec("a", true, 300),
            rec("b", false, 50),
        ];
        let rows = summarize(&rs, &["a".into(), "b".into(), "missing".into()]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].correct, 2);
        assert_eq!(rows[0].problems, 3);
        assert!((rows[0].accuracy - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(rows[0].any_correct, 3);
        // Candidates right: 1, 1 and 2 of 8 each (see `rec`).
        assert!((rows[0].sample_accuracy - 4.0 / 24.0).abs() < 1e-12);
        assert_eq!(rows[0].mean_generated_tokens, 200.0);
        assert_eq!(rows[0].tokens_per_s, 200.0);
        assert_eq!(rows[1].accuracy, 0.0);
        let md = markdown(&rows);
        assert!(md.contains("| a | 3 | 66.7% |"), "{md}");
        assert_eq!(csv(&rows).lines().count(), 3);
    }

    #[test]
    fn versus_compares_with_the_baseline_row() {
        // Baseline "bon": 7 of 10 right (Wilson 39.7–89.2%), 1000 tokens each.
        let mut rs: Vec<Record> = (0..10).map(|i| rec("bon", i < 7, 1000)).collect();
        // "cheap": 5 of 10 (inside), 250 tokens; "bad": 1 of 10 (outside), 100 tokens.
        rs.extend((0..10).map(|i| rec("cheap", i < 5, 250)));
        rs.extend((0..10).map(|i| rec("bad", i < 1, 100)));
        rs[15].draft_tokens = Some(40);
        rs[15].acceptance_rate = Some(0.5);
        let rows = summarize(&rs, &strategies_in(&rs));
        assert_eq!(
            rows.iter().map(|r| r.strategy.as_str()).collect::<Vec<_>>(),
            ["bon", "cheap", "bad"]
        );
        let t = versus(&rows, "bon").unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5, "{t}");
        assert!(lines[0].contains("draft tokens | acceptance"), "{t}");
        assert!(!lines[0].contains("scorer tokens"), "{t}");
        assert!(
            lines[2].starts_with("| bon | 70.0% | yes | 1000 | 1.00 | 1.00 | – | – |"),
            "{t}"
        );
        assert!(
            lines[3].starts_with("| cheap | 50.0% | yes | 250 | 0.25 | 1.00 | 40 | 0.50 |"),
            "{t}"
        );
        assert!(
            lines[4].starts_with("| bad | 10.0% | **no** | 100 | 0.10 |"),
            "{t}"
        );
        assert!(versus(&rows, "missing").is_none());
    }

    #[test]
    fn cascade_stages_by_hand() {
        let stage = |tokens, stood| ponder_search::StageReport {
            strategy: format!("s{tokens}"),
            generated_tokens: tokens,
            wall_ms: 2000.0,
            agreement: 1.0,
            stood,
        };
        // Four problems: two stand at stage 1 (100 tokens there), two go on to stage 2
        // (300 and 500 tokens there).
        let mut rs: Vec<Record> = (0..4).map(|i| rec("c", true, i)).collect();
        rs[0].stages = vec![stage(100, true)];
        rs[1].stages = vec![stage(100, true)];
        rs[2].stages = vec![stage(100, false), stage(300, true)];
        rs[3].stages = vec![stage(100, false), stage(500, true)];
        let refs: Vec<&Record> = rs.iter().collect();
        let t = stages(&refs).unwrap();
        assert!(t.contains("| 1 | s100 | 100% | 50% | 100 | 2.0 |"), "{t}");
        assert!(t.contains("| 2 | s300 | 50% | 50% | 400 | 2.0 |"), "{t}");
        assert!(stages(&[&rec("g", true, 1)]).is_none());
    }
}
