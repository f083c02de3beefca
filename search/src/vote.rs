//! Selecting one candidate: naive (best score), majority (most common answer),
//! weighted (largest sum of scores per answer) and Borda (votes by score rank, as the
//! self-certainty paper ranks samples). Answers group by
//! [`crate::answer::answer_key`], so `18`, `18.0` and `$18` count as one.

use crate::answer::answer_key;
use crate::strategy::Candidate;
use serde::{Deserialize, Serialize};

/// How Best-of-N picks its answer.
///
/// In settings and on the command line a vote is one word: `naive`, `majority`,
/// `weighted`, `borda` (power 0.5) or `borda:POWER`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Vote {
    /// The single highest-scoring candidate (first on ties).
    Naive,
    /// Self-consistency: the most common answer; ties go to the answer seen first.
    #[default]
    Majority,
    /// The answer with the largest sum of scores; ties go to the answer seen first.
    Weighted,
    /// Borda count by score rank (Kang et al., "Scalable Best-of-N Selection via
    /// Self-Certainty": rank by self-certainty, `--scorer self-certainty`): of N
    /// candidates the one ranked r-th (1 = best score) gives its answer
    /// (N − r + 1)^p votes, with the power p given here (the paper's default
    /// [`BORDA_POWER`], 0.5); the answer with the most votes wins, ties to the one seen
    /// first. p = 0 is majority voting; a large p approaches naive.
    Borda(f64),
}

/// The power of [`Vote::Borda`] unless one is given (`--vote borda`).
pub const BORDA_POWER: f64 = 0.5;

impl std::fmt::Display for Vote {
    /// The word that reads back as this vote (`borda:0.8`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Vote::Borda(p) if *p == BORDA_POWER => f.write_str("borda"),
            Vote::Borda(p) => write!(f, "borda:{p}"),
            v => f.write_str(&v.label()),
        }
    }
}

impl Serialize for Vote {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Vote {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let word = String::deserialize(d)?;
        word.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Vote {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Vote".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "anyOf": [
                {"enum": ["naive", "majority", "weighted", "borda"]},
                {"pattern": "^borda:[0-9.eE+-]+$", "description": "borda:POWER (Borda with that power)"}
            ]
        })
    }
}

impl Vote {
    /// The vote's name in strategy names: `majority`, `borda` (p = 0.5), `borda-p0.8`.
    pub fn label(&self) -> String {
        match self {
            Vote::Naive => "naive".into(),
            Vote::Majority => "majority".into(),
            Vote::Weighted => "weighted".into(),
            Vote::Borda(p) if *p == BORDA_POWER => "borda".into(),
            Vote::Borda(p) => format!("borda-p{p}"),
        }
    }
    /// Checks what settings cannot: Borda's power is finite and ≥ 0.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Vote::Borda(p) if !(p.is_finite() && *p >= 0.0) => {
                Err(format!("borda power {p} (must be finite and ≥ 0)"))
            }
            _ => Ok(()),
        }
    }
}

impl std::str::FromStr for Vote {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "naive" => Ok(Vote::Naive),
            "majority" => Ok(Vote::Majority),
            "weighted" => Ok(Vote::Weighted),
            "borda" => Ok(Vote::Borda(BORDA_POWER)),
            _ => {
                if let Some(p) = s.strip_prefix("borda:") {
                    let p: f64 = p
                        .parse()
                        .map_err(|_| format!("borda power {p:?} is not a number"))?;
                    let v = Vote::Borda(p);
                    v.validate()?;
                    return Ok(v);
                }
                Err(format!(
                    "unknown vote {s:?} (naive, majority, weighted, borda, borda:POWER)"
                ))
            }
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
    // Borda: each candidate's weight is (N − rank + 1)^p, ranked by score over all N.
    let weight: Vec<f64> = match vote {
        Vote::Borda(p) => {
            let mut order: Vec<usize> = (0..cands.len()).collect();
            // Stable: equal scores keep their order (the earlier ranks higher).
            order.sort_by(|&a, &b| score(b).total_cmp(&score(a)));
            let n = cands.len();
            let mut w = vec![0.0; n];
            for (rank0, &i) in order.iter().enumerate() {
                w[i] = ((n - rank0) as f64).powf(p);
            }
            w
        }
        _ => cands.iter().map(|c| c.score.unwrap_or(0.0)).collect(),
    };
    // Groups in order of first appearance: (key, count, weight sum, members).
    let mut groups: Vec<(String, usize, f64, Vec<usize>)> = Vec::new();
    for (i, c) in cands.iter().enumerate() {
        let Some(a) = &c.answer else { continue };
        let k = answer_key(a);
        let s = weight[i];
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
            signals: Default::default(),
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
    fn borda_votes_by_rank_by_hand() {
        // Scores rank the four: A 0.9 (1st), B 0.8 (2nd), B 0.7 (3rd), A 0.1 (4th).
        // p = 0.5: A gets √4 + √1 = 3, B √3 + √2 ≈ 3.146: B wins, though majority ties
        // (2–2, to A seen first) and naive takes A's 0.9.
        let cs = [
            c(Some("A"), 0.9),
            c(Some("B"), 0.8),
            c(Some("B"), 0.7),
            c(Some("A"), 0.1),
        ];
        assert_eq!(select(&cs, Vote::Borda(0.5)), Some(1));
        assert_eq!(select(&cs, Vote::Majority), Some(0));
        assert_eq!(select(&cs, Vote::Naive), Some(0));
        // p = 2: A 16 + 1 = 17 beats B 9 + 4 = 13; p = 0 is majority (a 2–2 tie, to A).
        assert_eq!(select(&cs, Vote::Borda(2.0)), Some(0));
        assert_eq!(select(&cs, Vote::Borda(0.0)), Some(0));
        // A candidate without an answer still takes a rank: here the top one, so the
        // answers rank 2nd–4th: A √3 + √1 ≈ 2.732 against B √2 ≈ 1.414.
        let cs = [
            c(None, 0.95),
            c(Some("A"), 0.9),
            c(Some("B"), 0.5),
            c(Some("A"), 0.1),
        ];
        assert_eq!(select(&cs, Vote::Borda(0.5)), Some(1));
    }

    #[test]
    fn borda_reads_from_the_command_line() {
        assert_eq!("borda".parse::<Vote>(), Ok(Vote::Borda(BORDA_POWER)));
        assert_eq!("borda:0.8".parse::<Vote>(), Ok(Vote::Borda(0.8)));
        assert!("borda:-1".parse::<Vote>().unwrap_err().contains("≥ 0"));
        assert!("borda:x"
            .parse::<Vote>()
            .unwrap_err()
            .contains("not a number"));
        assert_eq!(Vote::Borda(0.5).label(), "borda");
        assert_eq!(Vote::Borda(0.8).label(), "borda-p0.8");
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
