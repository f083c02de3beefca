//! Length-filtered voting ("When More is Less", Wu et al.): sample N chains, bucket them
//! by reasoning length, keep the K buckets whose answers agree most (lowest entropy) and
//! take the majority inside them. Chains far too short or too long for the problem add
//! noise to a plain vote; a bucket that agrees with itself is a sign of the right length.

use crate::strategy::{invalid, Candidate, Cx, Needs, Problem, SearchError, Solution, Strategy};
use crate::vote::{answer_entropy, select, Vote};
use crate::voting::best_of_n::sample;
use ponder_engine::{GenSpec, SamplingParams};
use serde::{Deserialize, Serialize};

/// Best-of-N with a length-filtered majority vote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LengthVote {
    /// Samples (N).
    pub n: usize,
    /// Sampling of every new token.
    pub sampling: SamplingParams,
    /// New tokens per sample.
    pub max_tokens: usize,
    /// Bucket width D, in reasoning steps (non-blank lines); ≥ 1 (default 2).
    pub width: usize,
    /// Buckets kept K: the K lowest-entropy buckets vote; ≥ 1 (default 3).
    pub keep: usize,
}

impl Default for LengthVote {
    fn default() -> Self {
        Self {
            n: 8,
            sampling: SamplingParams::default(),
            max_tokens: crate::registry::DEFAULT_MAX_TOKENS,
            width: 2,
            keep: 3,
        }
    }
}

impl LengthVote {
    /// Check the settings: bucket width D ≥ 1 and buckets kept K ≥ 1.
    pub fn validate(&self) -> Result<(), SearchError> {
        if self.width == 0 {
            return Err(invalid("bucket width D", "0 (must be ≥ 1)"));
        }
        if self.keep == 0 {
            return Err(invalid("buckets kept K", "0 (must be ≥ 1)"));
        }
        Ok(())
    }
}

/// Reasoning length in steps: the non-blank lines of the text (blank lines collapsed).
pub fn reasoning_steps(text: &str) -> usize {
    text.lines().filter(|l| !l.trim().is_empty()).count()
}

/// One length bucket: `[lo, lo + width)` steps, its members and its answer entropy.
#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    /// The shortest length it holds, in reasoning steps (a multiple of the width).
    pub lo: usize,
    /// Indices of its candidates, in candidate order.
    pub members: Vec<usize>,
    /// None when no member has an answer (such a bucket is never kept).
    pub entropy: Option<f64>,
}

/// Bucket candidates by length (width `d` steps), in order of length.
pub fn buckets(cands: &[Candidate], d: usize) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = Vec::new();
    for (i, c) in cands.iter().enumerate() {
        let lo = reasoning_steps(&c.text) / d * d;
        match out.iter_mut().find(|b| b.lo == lo) {
            Some(b) => b.members.push(i),
            None => out.push(Bucket {
                lo,
                members: vec![i],
                entropy: None,
            }),
        }
    }
    out.sort_by_key(|b| b.lo);
    for b in &mut out {
        b.entropy = answer_entropy(b.members.iter().map(|&i| cands[i].answer.as_deref()));
    }
    out
}

/// The length-filtered vote: the K buckets with the lowest answer entropy (ties: the
/// bigger bucket, then the shorter length), then a majority vote over their members.
/// Falls back to a plain majority when no bucket has an answer.
pub fn length_filtered_vote(cands: &[Candidate], d: usize, k: usize) -> Option<usize> {
    let mut bs: Vec<Bucket> = buckets(cands, d)
        .into_iter()
        .filter(|b| b.entropy.is_some())
        .collect();
    if bs.is_empty() {
        return select(cands, Vote::Majority);
    }
    bs.sort_by(|a, b| {
        a.entropy
            .unwrap()
            .total_cmp(&b.entropy.unwrap())
            .then(b.members.len().cmp(&a.members.len()))
            .then(a.lo.cmp(&b.lo))
    });
    let mut kept: Vec<usize> = bs.iter().take(k).flat_map(|b| b.members.clone()).collect();
    kept.sort_unstable();
    let sub: Vec<Candidate> = kept.iter().map(|&i| cands[i].clone()).collect();
    select(&sub, Vote::Majority).map(|j| kept[j])
}

impl Strategy for LengthVote {
    fn settings(&self) -> serde_json::Value {
        crate::strategy::settings_of(self)
    }

    fn name(&self) -> String {
        format!("length-vote-{}", self.n)
    }

    fn needs(&self) -> Needs {
        Needs {
            sequences: self.n,
            max_tokens: self.max_tokens,
            scorer: true,
            ..Needs::default()
        }
    }

    fn solve(&self, cx: &Cx, problem: &Problem) -> Result<Solution, SearchError> {
        self.validate()?;
        let spec = GenSpec::new(self.sampling, self.max_tokens);
        let (candidates, stats, scoring_ms) = sample(cx, problem, self.n, &spec)?;
        let chosen = length_filtered_vote(&candidates, self.width, self.keep);
        Ok(Solution::new(self.name(), candidates, chosen, stats).scored(scoring_ms, None))
    }
}

impl crate::registry::Settings for LengthVote {
    const N: Option<&'static str> = Some("n");
    fn check(&self) -> Result<(), SearchError> {
        crate::registry::check_generation(&self.sampling, self.max_tokens)?;
        self.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(steps: usize, answer: Option<&str>) -> Candidate {
        Candidate {
            text: "line\n\n".repeat(steps),
            answer: answer.map(String::from),
            score: Some(0.0),
            tokens: 0,
            finish: None,
            error: None,
            signals: Default::default(),
        }
    }

    #[test]
    fn steps_are_non_blank_lines() {
        assert_eq!(reasoning_steps("a\n\nb\nc\n\n\n"), 3);
        assert_eq!(reasoning_steps(""), 0);
    }

    #[test]
    fn buckets_and_entropies_by_hand() {
        // D = 2: lengths 1,1 → [0,2); 2,3,3 → [2,4); 7 → [6,8).
        let cs = [
            c(1, Some("5")),
            c(1, Some("6")),
            c(2, Some("4")),
            c(3, Some("4")),
            c(3, Some("4")),
            c(7, None),
        ];
        let bs = buckets(&cs, 2);
        assert_eq!(bs.iter().map(|b| b.lo).collect::<Vec<_>>(), vec![0, 2, 6]);
        assert_eq!(bs[0].members, vec![0, 1]);
        assert!((bs[0].entropy.unwrap() - 2f64.ln()).abs() < 1e-12);
        assert_eq!(bs[1].entropy, Some(0.0));
        assert_eq!(bs[2].entropy, None);
    }

    #[test]
    fn the_agreeing_length_wins_over_a_bigger_noisy_majority() {
        // Short chains: four say "9", four say "8" (H = ln 2), plus two "9" in a long bucket
        // with "7" (H > 0). Mid-length chains: three say "4" (H = 0).
        // Plain majority: "9" (6 votes). K = 1: only the mid bucket → "4".
        let mut cs = Vec::new();
        for a in ["9", "8", "9", "8", "9", "8", "9", "8"] {
            cs.push(c(1, Some(a)));
        }
        for _ in 0..3 {
            cs.push(c(4, Some("4")));
        }
        cs.push(c(9, Some("9")));
        cs.push(c(9, Some("9")));
        cs.push(c(9, Some("7")));
        assert_eq!(
            cs[select(&cs, Vote::Majority).unwrap()].answer.as_deref(),
            Some("9")
        );
        let i = length_filtered_vote(&cs, 2, 1).unwrap();
        assert_eq!(cs[i].answer.as_deref(), Some("4"));
        // K = 2 adds the long bucket (H ≈ 0.64 < ln 2 ≈ 0.69): "4" ×3 vs "9" ×2 → "4".
        let i = length_filtered_vote(&cs, 2, 2).unwrap();
        assert_eq!(cs[i].answer.as_deref(), Some("4"));
        // K = 3 keeps everything: the plain majority again.
        let i = length_filtered_vote(&cs, 2, 3).unwrap();
        assert_eq!(cs[i].answer.as_deref(), Some("9"));
    }
}
