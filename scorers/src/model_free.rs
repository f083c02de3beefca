//! Scorers that need no model besides the policy: its own token log-probabilities and
//! self-certainty, recorded by the engine while it sampled.

use crate::{Sample, ScoreError, Scorer};

fn finite_mean(xs: &[f32]) -> Option<f64> {
    let (sum, n) = xs
        .iter()
        .filter(|x| x.is_finite())
        .fold((0.0f64, 0usize), |(s, n), &x| (s + x as f64, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// The geometric-mean token probability, `exp(mean logprob)`, in (0, 1]: the model's
/// own confidence in the candidate, length-normalised. Positive, so it can weight votes.
/// A candidate with no known log-probabilities scores 0.
#[derive(Clone, Copy, Debug, Default)]
pub struct MeanLogprob;

impl Scorer for MeanLogprob {
    fn name(&self) -> &str {
        "logprob"
    }
    fn score(&self, s: &Sample<'_>) -> Result<f64, ScoreError> {
        Ok(finite_mean(s.logprobs).map_or(0.0, f64::exp))
    }
}

/// Self-certainty (Kang et al. 2025, "Scalable Best-of-N Selection for LLMs via
/// Self-Certainty"): the mean over sampled tokens of KL(uniform ‖ p), where p is the
/// model's next-token distribution. Unlike a logprob it looks at the whole distribution,
/// so it rewards confident positions even where the sampled token was not the top one.
/// Non-negative (0 with nothing known), so it can weight votes.
#[derive(Clone, Copy, Debug, Default)]
pub struct SelfCertainty;

impl Scorer for SelfCertainty {
    fn name(&self) -> &str {
        "self-certainty"
    }
    fn score(&self, s: &Sample<'_>) -> Result<f64, ScoreError> {
        Ok(finite_mean(s.certainty).unwrap_or(0.0).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_logprob_is_geometric_mean_probability() {
        let lp = [0.5f32.ln(), 0.125f32.ln()]; // geometric mean 0.25
        let s = Sample::new("q", "t").with_logprobs(&lp);
        assert!((MeanLogprob.score(&s).unwrap() - 0.25).abs() < 1e-6);
    }

    #[test]
    fn mean_logprob_ignores_unknown_and_handles_empty() {
        let lp = [f32::NAN, 0.5f32.ln()];
        let s = Sample::new("q", "t").with_logprobs(&lp);
        assert!((MeanLogprob.score(&s).unwrap() - 0.5).abs() < 1e-6);
        assert_eq!(MeanLogprob.score(&Sample::new("q", "t")).unwrap(), 0.0);
    }

    #[test]
    fn more_confident_scores_higher() {
        let (sure, unsure) = ([-0.1f32; 4], [-2.0f32; 4]);
        let a = MeanLogprob.score(&Sample::new("q", "t").with_logprobs(&sure));
        let b = MeanLogprob.score(&Sample::new("q", "t").with_logprobs(&unsure));
        assert!(a.unwrap() > b.unwrap());
    }

    #[test]
    fn self_certainty_is_the_mean_of_known_values() {
        let c = [1.0f32, f32::NAN, 3.0];
        let s = Sample::new("q", "t").with_certainty(&c);
        assert!((SelfCertainty.score(&s).unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(SelfCertainty.score(&Sample::new("q", "t")).unwrap(), 0.0);
    }
}
