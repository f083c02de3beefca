//! Adaptive consistency (Aggarwal et al. 2023, arXiv 2305.11860): majority voting that
//! stops sampling once a Beta stopping rule says the leading answer will stay the leader.
//! With `a` votes for the leader and `b` for the runner-up, the share p of the leader
//! among the two has the posterior Beta(a + 1, b + 1); sampling stops once
//! P(p > ½) ≥ the threshold (the paper's 0.95). For whole counts that probability is a
//! binomial sum: P(p > ½) = Σ_{j ≤ a} C(a + b + 1, j) / 2^(a + b + 1).

use super::sample_in_waves;
use crate::answer::answer_key;
use crate::strategy::{invalid, Candidate, Cx, Needs, Problem, SearchError, Solution, Strategy};
use crate::vote::{select, Vote};
use ponder_engine::{GenSpec, SamplingParams};
use serde::{Deserialize, Serialize};

/// Adaptive consistency: majority voting over small waves of samples, stopped by a Beta
/// rule once the leading answer is settled.
///
/// After each wave the two most common answers (a and b votes; a sample without an
/// answer votes for nothing) decide: stop when P(Beta(a+1, b+1) > ½) ≥ `threshold`. At
/// the paper's 0.95 that needs 4 agreeing samples and no dissent (3 of 3 gives 0.9375),
/// 6 to 1 (5 to 1 gives 0.9375), and so on; at most `n` samples are drawn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveConsistency {
    /// Most samples in all (N).
    pub n: usize,
    /// Samples per wave (≥ 1; all of a wave decode together). Ours: 2, since the rule
    /// cannot stop before 4 samples at 0.95 and a wave of one leaves the batch empty.
    pub wave: usize,
    /// Stop once P(leader's share > ½) reaches this, in (0, 1) (the paper's 0.95).
    pub threshold: f64,
    /// Sampling of every new token.
    pub sampling: SamplingParams,
    /// New tokens per sample.
    pub max_tokens: usize,
}

impl Default for AdaptiveConsistency {
    fn default() -> Self {
        Self {
            n: 16,
            wave: 2,
            threshold: 0.95,
            sampling: SamplingParams::default(),
            max_tokens: crate::registry::DEFAULT_MAX_TOKENS,
        }
    }
}

/// P(p > ½) for p ~ Beta(a + 1, b + 1): the probability, after `a` votes for the leader
/// and `b` for the runner-up, that the leader is the more likely answer of the two.
pub fn beta_leader_probability(a: usize, b: usize) -> f64 {
    // Σ_{j=0}^{a} C(m, j) / 2^m with m = a + b + 1, summed in log space (m may be large).
    let m = (a + b + 1) as f64;
    let ln_choose =
        |j: usize| ln_gamma(m + 1.0) - ln_gamma(j as f64 + 1.0) - ln_gamma(m - j as f64 + 1.0);
    let total: f64 = (0..=a)
        .map(|j| (ln_choose(j) - m * std::f64::consts::LN_2).exp())
        .sum();
    total.clamp(0.0, 1.0)
}

/// ln Γ(x) for x ≥ 1 (Lanczos, g = 7; exact to ~1e-13 there, which is all a sum of
/// binomials needs).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    let x = x - 1.0;
    let t = x + 7.5;
    let s = G[1..]
        .iter()
        .enumerate()
        .fold(G[0], |s, (i, g)| s + g / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + s.ln()
}

/// Votes of the two most common answers (by [`answer_key`]); samples without an answer
/// do not vote.
pub fn leading_counts(cands: &[Candidate]) -> (usize, usize) {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for a in cands.iter().filter_map(|c| c.answer.as_deref()) {
        let k = answer_key(a);
        match counts.iter_mut().find(|(key, _)| *key == k) {
            Some((_, n)) => *n += 1,
            None => counts.push((k, 1)),
        }
    }
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    let at = |i: usize| counts.get(i).map_or(0, |c| c.1);
    (at(0), at(1))
}

/// Whether these candidates settle the answer by the Beta rule at `threshold`.
pub fn settled(cands: &[Candidate], threshold: f64) -> bool {
    let (a, b) = leading_counts(cands);
    a > 0 && beta_leader_probability(a, b) >= threshold
}

/// A stopping threshold must lie in (0, 1).
pub(crate) fn check_threshold(threshold: f64) -> Result<(), SearchError> {
    if !(threshold > 0.0 && threshold < 1.0) {
        return Err(invalid(
            "stopping threshold",
            format!("{threshold} (must be in (0, 1))"),
        ));
    }
    Ok(())
}

impl AdaptiveConsistency {
    /// Check the settings: N ≥ 1, wave ≥ 1, the threshold in (0, 1).
    pub fn validate(&self) -> Result<(), SearchError> {
        if self.n == 0 || self.wave == 0 {
            return Err(invalid("n and wave", "must be ≥ 1"));
        }
        check_threshold(self.threshold)
    }

    /// Whether the candidates so far settle the answer.
    pub fn settled(&self, cands: &[Candidate]) -> bool {
        settled(cands, self.threshold)
    }
}

impl Strategy for AdaptiveConsistency {
    fn settings(&self) -> serde_json::Value {
        crate::strategy::settings_of(self)
    }

    fn name(&self) -> String {
        format!("adaptive-consistency-{}", self.n)
    }

    fn needs(&self) -> Needs {
        Needs {
            sequences: self.wave.min(self.n) + 1,
            max_tokens: self.max_tokens,
            scorer: true,
            ..Needs::default()
        }
    }

    fn solve(&self, cx: &Cx, problem: &Problem) -> Result<Solution, SearchError> {
        self.validate()?;
        let spec = GenSpec::new(self.sampling, self.max_tokens);
        let (candidates, stats, scoring_ms) = sample_in_waves(
            cx,
            problem,
            &cx.prompt(problem)?,
            (self.n, self.wave),
            &spec,
            |_| {},
            |c| self.settled(c),
        )?;
        let chosen = select(&candidates, Vote::Majority);
        Ok(Solution::new(self.name(), candidates, chosen, stats).scored(scoring_ms, None))
    }
}

impl crate::registry::Settings for AdaptiveConsistency {
    const N: Option<&'static str> = Some("n");
    fn check(&self) -> Result<(), SearchError> {
        crate::registry::check_generation(&self.sampling, self.max_tokens)?;
        self.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_beta_rule_by_hand() {
        // m = a + b + 1; P = Σ_{j ≤ a} C(m, j) / 2^m.
        assert!((beta_leader_probability(4, 0) - 31.0 / 32.0).abs() < 1e-12);
        assert!((beta_leader_probability(3, 0) - 15.0 / 16.0).abs() < 1e-12);
        // 5 to 1: m = 7, (1 + 7 + 21 + 35 + 35 + 21) / 128 = 120 / 128.
        assert!((beta_leader_probability(5, 1) - 120.0 / 128.0).abs() < 1e-12);
        // A tie is a coin flip; large counts stay finite and in [0, 1].
        assert!((beta_leader_probability(3, 3) - 0.5).abs() < 1e-12);
        let big = beta_leader_probability(900, 100);
        assert!(big > 0.999_999 && big <= 1.0);
    }

    fn c(answer: Option<&str>) -> Candidate {
        Candidate {
            text: String::new(),
            answer: answer.map(String::from),
            score: Some(0.5),
            tokens: 1,
            finish: None,
            error: None,
            signals: Default::default(),
        }
    }

    #[test]
    fn the_threshold_decides_at_the_boundary() {
        let ac = AdaptiveConsistency::default();
        let three: Vec<_> = (0..3).map(|_| c(Some("7"))).collect();
        assert!(!ac.settled(&three), "15/16 < 0.95");
        let mut four = three.clone();
        four.push(c(Some("7.0"))); // the same answer
        assert!(ac.settled(&four), "31/32 ≥ 0.95");
        let mut five = four.clone();
        five.push(c(Some("$7")));
        // One dissent and an unanswered sample: 5 to 1 is 0.9375, not yet.
        let mut mixed = five.clone();
        mixed.push(c(Some("8")));
        mixed.push(c(None));
        assert_eq!(leading_counts(&mixed), (5, 1));
        assert!(!ac.settled(&mixed));
        let just_below = AdaptiveConsistency {
            threshold: 0.9375 + 1e-9,
            ..ac.clone()
        };
        let at = AdaptiveConsistency {
            threshold: 0.9375,
            ..ac
        };
        assert!(at.settled(&mixed) && !just_below.settled(&mixed));
        assert!(
            !at.settled(&[c(None), c(None)]),
            "no answer settles nothing"
        );
    }

    #[test]
    fn it_stops_after_four_agreeing_samples_on_the_mock() {
        use ponder_engine::mock::{ChoiceModel, MockConfig};
        let engine = ponder_engine::Engine::mock(MockConfig {
            model: std::sync::Arc::new(ChoiceModel::new(&[("so \\boxed{5}", 1.0)])),
            ..Default::default()
        })
        .unwrap();
        let cx = Cx::new(engine);
        let sol = AdaptiveConsistency::default()
            .solve(&cx, &Problem::new(0, "q"))
            .unwrap();
        // Waves of 2: after 2 samples P = 7/8, after 4 it is 31/32 ≥ 0.95.
        assert_eq!(sol.candidates.len(), 4);
        assert_eq!(sol.answer.as_deref(), Some("5"));
        assert_eq!(sol.strategy, "adaptive-consistency-16");
    }
}
