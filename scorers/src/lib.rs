//! # ponder-scorers
//!
//! A [`Scorer`] rates a candidate solution (partial or complete) with a number where
//! higher is better. Strategies use scores to pick (naive Best-of-N), to weight votes
//! (weighted Best-of-N) and, later, to prune and guide search.
//!
//! The trait is small on purpose: one required method, a batched form a model-backed
//! scorer can override, and a blanket impl so any closure `Fn(&Sample) -> f64` is a scorer.
//!
//! ```
//! use ponder_scorers::{Sample, Scorer, MeanLogprob};
//! let s = Sample { question: "1+1?", text: "2", logprobs: &[-0.5, -1.5] };
//! let p = MeanLogprob.score(&s).unwrap();
//! assert!((p - (-1.0f64).exp()).abs() < 1e-9);
//! let by_length = |s: &Sample| -(s.text.len() as f64);
//! assert_eq!(by_length.score(&s).unwrap(), -1.0);
//! ```

mod verifier;
pub use verifier::{ArithmeticVerifier, Check};

/// How a vector of step scores becomes one score.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Aggregate {
    /// The last step's score (the literature's usual choice for PRMs).
    #[default]
    Last,
    /// The weakest step.
    Min,
    /// The product: the chance every step is right, if steps were independent.
    Product,
    /// The mean.
    Mean,
}

impl Aggregate {
    /// None for an empty vector.
    pub fn apply(&self, steps: &[f64]) -> Option<f64> {
        if steps.is_empty() {
            return None;
        }
        Some(match self {
            Aggregate::Last => *steps.last().expect("non-empty"),
            Aggregate::Min => steps.iter().copied().fold(f64::INFINITY, f64::min),
            Aggregate::Product => steps.iter().product(),
            Aggregate::Mean => steps.iter().sum::<f64>() / steps.len() as f64,
        })
    }
}

impl std::str::FromStr for Aggregate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "last" => Ok(Aggregate::Last),
            "min" => Ok(Aggregate::Min),
            "product" | "prod" => Ok(Aggregate::Product),
            "mean" => Ok(Aggregate::Mean),
            _ => Err(format!(
                "unknown aggregation {s:?} (last, min, product, mean)"
            )),
        }
    }
}

/// What a scorer sees of a candidate.
#[derive(Clone, Copy, Debug)]
pub struct Sample<'a> {
    /// The problem as posed (without the chat template).
    pub question: &'a str,
    /// The candidate's text so far.
    pub text: &'a str,
    /// Per-token log-probabilities of the candidate under the policy model (NaN: unknown).
    pub logprobs: &'a [f32],
}

/// A scorer's failure, naming the scorer.
#[derive(Debug, thiserror::Error)]
#[error("scorer {scorer}: {message}")]
pub struct ScoreError {
    pub scorer: String,
    pub message: String,
}

/// Rates candidates; higher is better.
pub trait Scorer: Send + Sync {
    /// A short name for reports.
    fn name(&self) -> &str {
        "custom"
    }
    /// Score one candidate.
    fn score(&self, sample: &Sample<'_>) -> Result<f64, ScoreError>;
    /// Score many; model-backed scorers override this to batch.
    fn score_batch(&self, samples: &[Sample<'_>]) -> Result<Vec<f64>, ScoreError> {
        samples.iter().map(|s| self.score(s)).collect()
    }
}

impl<F> Scorer for F
where
    F: Fn(&Sample<'_>) -> f64 + Send + Sync,
{
    fn name(&self) -> &str {
        "closure"
    }
    fn score(&self, sample: &Sample<'_>) -> Result<f64, ScoreError> {
        Ok(self(sample))
    }
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
        let known: Vec<f64> = s
            .logprobs
            .iter()
            .filter(|l| l.is_finite())
            .map(|&l| l as f64)
            .collect();
        if known.is_empty() {
            return Ok(0.0);
        }
        Ok((known.iter().sum::<f64>() / known.len() as f64).exp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(lp: &'a [f32]) -> Sample<'a> {
        Sample {
            question: "q",
            text: "t",
            logprobs: lp,
        }
    }

    #[test]
    fn aggregations_by_hand() {
        let s = [0.9, 0.5, 0.8];
        assert_eq!(Aggregate::Last.apply(&s), Some(0.8));
        assert_eq!(Aggregate::Min.apply(&s), Some(0.5));
        assert!((Aggregate::Product.apply(&s).unwrap() - 0.36).abs() < 1e-12);
        assert!((Aggregate::Mean.apply(&s).unwrap() - 2.2 / 3.0).abs() < 1e-12);
        assert_eq!(Aggregate::Min.apply(&[]), None);
        assert_eq!("prod".parse::<Aggregate>(), Ok(Aggregate::Product));
        assert!("median".parse::<Aggregate>().is_err());
    }

    #[test]
    fn mean_logprob_is_geometric_mean_probability() {
        let lp = [0.5f32.ln(), 0.125f32.ln()]; // geometric mean 0.25
        assert!((MeanLogprob.score(&sample(&lp)).unwrap() - 0.25).abs() < 1e-6);
    }

    #[test]
    fn mean_logprob_ignores_unknown_and_handles_empty() {
        let lp = [f32::NAN, 0.5f32.ln()];
        assert!((MeanLogprob.score(&sample(&lp)).unwrap() - 0.5).abs() < 1e-6);
        assert_eq!(MeanLogprob.score(&sample(&[])).unwrap(), 0.0);
    }

    #[test]
    fn more_confident_scores_higher() {
        let sure = [-0.1f32; 4];
        let unsure = [-2.0f32; 4];
        assert!(
            MeanLogprob.score(&sample(&sure)).unwrap()
                > MeanLogprob.score(&sample(&unsure)).unwrap()
        );
    }

    #[test]
    fn closures_are_scorers_and_batch_defaults_to_map() {
        let by_len = |s: &Sample<'_>| s.logprobs.len() as f64;
        let a = [0.0f32; 2];
        let b = [0.0f32; 5];
        let scores = by_len.score_batch(&[sample(&a), sample(&b)]).unwrap();
        assert_eq!(scores, vec![2.0, 5.0]);
        assert_eq!(Scorer::name(&by_len), "closure");
    }
}
