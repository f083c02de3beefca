//! Selecting one candidate: naive (best score), majority (most common answer) and
//! weighted (largest sum of scores per answer). Answers group by
//! [`crate::answer::answer_key`], so `18`, `18.0` and `$18` count as one.

use crate::answer::answer_key;
use crate::strategy::Candidate;
use serde::{Deserialize, Serialize};

/// How Best-of-N picks its answer.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Vote {
    /// The single highest-scoring candidate (first on ties).
    Naive,
    /// Self-consistency: the most common answer; ties go to the answer seen first.
    #[default]
    Majority,
    /// The answer with the largest sum of scores; ties go to the answer seen first.
    Weighted,
}

impl std::str::FromStr for Vote {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "naive" => Ok(Vote::Naive),
            "majority" => Ok(Vote::Majority),
            "weighted" => Ok(Vote::Weighted),
            _ => Err(format!("unknown vote {s:?} (naive, majority, weighted)")),
        }
    }
}

/// Index of the chosen candidate, or None if there are none.
///
/// Majority and weighted voting ignore candidates without an answer (unless none has
/// one, then they fall back to naive); the representative of the winning answer is its
/// highest-scoring member (first on ties).
pub fn select(cands: &[Candidate], vote: Vote) -> Option<usize> {
    if cands.is_empty() {
        return None;
    }
    let score = |i: usize| cands[i].score.unwrap_or(f64::NEG_INFINITY);
    let best_of = |idx: &mut dyn Iterator<Item = usize>| {
        idx.fold(None, |best: Option<usize>, i| match best {
            Some(b) if score(b) >= score(i) => Some(b),
            _ => Some(i),
        })
    };
    if vote == Vote::Naive {
        return best_of(&mut (0..cands.len()));
    }
    // Groups in order of first appearance: (key, count, score sum, members).
    let mut groups: Vec<(String, usize, f64, Vec<usize>)> = Vec::new();
    for (i, c) in cands.iter().enumerate() {
        let Some(a) = &c.answer else { continue };
        let k = answer_key(a);
        let s = c.score.unwrap_or(0.0);
        match groups.iter_mut().find(|g| g.0 == k) {
            Some(g) => {
                g.1 += 1;
                g.2 += s;
                g.3.push(i);
            }
            None => groups.push((k, 1, s, vec![i])),
        }
    }
    if groups.is_empty() {
        return best_of(&mut (0..cands.len()));
    }
    let mut win = 0;
    for (gi, g) in groups.iter().enumerate() {
        let better = match vote {
            Vote::Majority => g.1 > groups[win].1,
            _ => g.2 > groups[win].2,
        };
        if better {
            win = gi;
        }
    }
    best_of(&mut groups[win].3.iter().copied())
}

/// Shannon entropy (nats) of the answer distribution: answers group by
/// [`answer_key`]; samples without an answer are left out. None if no sample has one.
pub fn answer_entropy<'a>(answers: impl IntoIterator<Item = Option<&'a str>>) -> Option<f64> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for a in answers.into_iter().flatten() {
        let k = answer_key(a);
        match counts.iter_mut().find(|c| c.0 == k) {
            Some(c) => c.1 += 1,
            None => counts.push((k, 1)),
        }
    }
    let n: usize = counts.iter().map(|c| c.1).sum();
    if n == 0 {
        return None;
    }
    Some(
        counts
            .iter()
            .map(|&(_, c)| {
                let p = c as f64 / n as f64;
                -p * p.ln()
            })
            .sum(),
    )
}

/// Certaindex over answer clusters (Fu et al.): `1 − H / ln n` for n samples, in [0, 1];
/// 1 when every sample gives the same answer. A sample without an answer is a cluster of
/// its own (it adds uncertainty). 0 for fewer than two samples.
pub fn certaindex(answers: &[Option<&str>]) -> f64 {
    let n = answers.len();
    if n < 2 {
        return 0.0;
    }
    let mut keys: Vec<String> = Vec::with_capacity(n);
    for (i, a) in answers.iter().enumerate() {
        keys.push(a.map_or_else(|| format!("\u{0}none{i}"), answer_key));
    }
    let h = answer_entropy(keys.iter().map(|k| Some(k.as_str()))).unwrap_or(0.0);
    (1.0 - h / (n as f64).ln()).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(answer: Option<&str>, score: f64) -> Candidate {
        Candidate {
            text: String::new(),
            answer: answer.map(String::from),
            score: Some(score),
            tokens: 0,
            finish: None,
            error: None,
        }
    }

    #[test]
    fn majority_counts_equivalent_answers_together() {
        // "18" ×1, "18.0" and "$18" join it: 3 votes beat "20" ×2.
        let cs = [
            c(Some("20"), 0.9),
            c(Some("18"), 0.1),
            c(Some("20"), 0.9),
            c(Some("18.0"), 0.2),
            c(Some("$18"), 0.3),
        ];
        let i = select(&cs, Vote::Majority).unwrap();
        assert_eq!(i, 4, "highest-scoring member of the winning group");
    }

    #[test]
    fn majority_tie_goes_to_first_seen() {
        let cs = [
            c(Some("7"), 0.1),
            c(Some("5"), 0.9),
            c(Some("5"), 0.9),
            c(Some("7"), 0.1),
        ];
        assert_eq!(select(&cs, Vote::Majority), Some(0));
    }

    #[test]
    fn weighted_sums_scores_per_answer() {
        // "5": 0.9 + 0.8 = 1.7 ; "7": 0.3 + 0.3 + 0.3 = 0.9 → "5" despite fewer votes.
        let cs = [
            c(Some("7"), 0.3),
            c(Some("5"), 0.9),
            c(Some("7"), 0.3),
            c(Some("5"), 0.8),
            c(Some("7"), 0.3),
        ];
        assert_eq!(select(&cs, Vote::Weighted), Some(1));
        assert_eq!(select(&cs, Vote::Majority), Some(0));
    }

    #[test]
    fn entropy_and_certaindex_by_hand() {
        assert_eq!(answer_entropy([Some("3"), Some("3.0")]), Some(0.0));
        let h = answer_entropy([Some("1"), Some("2"), None]).unwrap();
        assert!((h - 2f64.ln()).abs() < 1e-12);
        assert_eq!(answer_entropy([None, None]), None);
        // 4 samples: 3 × "5", 1 × "7": H = −(¾ ln ¾ + ¼ ln ¼); certaindex = 1 − H / ln 4.
        let h = -(0.75f64 * 0.75f64.ln() + 0.25 * 0.25f64.ln());
        let ci = certaindex(&[Some("5"), Some("5"), Some("7"), Some("5")]);
        assert!((ci - (1.0 - h / 4f64.ln())).abs() < 1e-12);
        assert_eq!(certaindex(&[Some("5"), Some("$5")]), 1.0);
        assert!(certaindex(&[Some("1"), Some("2"), Some("3")]).abs() < 1e-12);
        // Missing answers are separate clusters, not one shared "none".
        assert!(certaindex(&[None, None]).abs() < 1e-12);
        assert_eq!(certaindex(&[Some("5")]), 0.0);
    }

    #[test]
    fn naive_takes_best_score_first_on_ties() {
        let cs = [c(Some("1"), 0.2), c(None, 0.7), c(Some("3"), 0.7)];
        assert_eq!(select(&cs, Vote::Naive), Some(1));
    }

    #[test]
    fn voting_skips_candidates_without_answers() {
        let cs = [c(None, 0.9), c(None, 0.9), c(Some("4"), 0.1)];
        assert_eq!(select(&cs, Vote::Majority), Some(2));
        let none = [c(None, 0.1), c(None, 0.5)];
        assert_eq!(
            select(&none, Vote::Majority),
            Some(1),
            "falls back to naive"
        );
        assert_eq!(select(&[], Vote::Weighted), None);
    }
}
