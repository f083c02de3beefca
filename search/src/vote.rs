//! Selecting one candidate: naive (best score), majority (most common answer) and
//! weighted (largest sum of scores per answer). Answers group by
//! [`crate::answer::answer_key`], so `18`, `18.0` and `$18` count as one.

use crate::answer::answer_key;
use crate::strategy::Candidate;
use serde::{Deserialize, Serialize};

/// How Best-of-N picks its answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
