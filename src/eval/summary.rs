//! The summary table: per strategy, accuracy with a 95% Wilson interval, any-of-N
//! correct, mean tokens, tokens/s and wall time per problem; as Markdown and CSV.

use super::records::Record;
use serde::Serialize;

/// One row of the summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    pub strategy: String,
    pub problems: usize,
    pub correct: usize,
    pub accuracy: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// Problems where at least one candidate was right.
    pub any_correct: usize,
    pub mean_generated_tokens: f64,
    pub mean_prompt_tokens: f64,
    /// Generated tokens per second of a problem's own wall time.
    pub tokens_per_s: f64,
    pub wall_s_per_problem: f64,
    pub truncated: usize,
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
            })
        })
        .collect()
}

/// A Markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "| strategy | problems | accuracy | 95% CI | any correct | mean tokens | tok/s | s/problem |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {:.1}% | {:.1}–{:.1}% | {:.1}% | {:.0} | {:.1} | {:.1} |\n",
            r.strategy,
            r.problems,
            100.0 * r.accuracy,
            100.0 * r.ci_low,
            100.0 * r.ci_high,
            100.0 * r.any_correct as f64 / r.problems as f64,
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
        "strategy,problems,correct,accuracy,ci_low,ci_high,any_correct,mean_generated_tokens,mean_prompt_tokens,tokens_per_s,wall_s_per_problem,truncated\n",
    );
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{:.4},{:.4},{:.4},{},{:.1},{:.1},{:.2},{:.3},{}\n",
            r.strategy,
            r.problems,
            r.correct,
            r.accuracy,
            r.ci_low,
            r.ci_high,
            r.any_correct,
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
        assert_eq!(rows[0].mean_generated_tokens, 200.0);
        assert_eq!(rows[0].tokens_per_s, 200.0);
        assert_eq!(rows[1].accuracy, 0.0);
        let md = markdown(&rows);
        assert!(md.contains("| a | 3 | 66.7% |"), "{md}");
        assert_eq!(csv(&rows).lines().count(), 3);
    }
}
