//! # ponder-scorers
//!
//! A [`Scorer`] rates a candidate solution (partial or complete) with a number where
//! higher is better. Strategies use scores to pick (naive Best-of-N), to weight votes
//! (weighted Best-of-N) and to prune and guide step-level search (beam search, DVTS, MCTS).
//!
//! The trait is small on purpose: one required method, a batched form a model-backed
//! scorer can override, and a blanket impl so any closure `Fn(&Sample) -> f64` is a scorer.
//! Step-level search adds two provided methods, [`Scorer::track`] and
//! [`Scorer::score_steps`]: a search keeps one [`Track`] per tree node, forks it with the
//! node and asks for the newest step's score. Stateless scorers rescore the text so far;
//! a [`Prm`] keeps a KV sequence per track in its own model context and only reads the new
//! step, so scoring costs what the step costs, not what the whole solution costs.
//!
//! Families: model-free ([`MeanLogprob`], [`SelfCertainty`]), rule-based
//! ([`ArithmeticVerifier`]), model-based ([`Prm`] with Math-Shepherd / RLHFlow / yes-no
//! judge [`PrmPreset`]s), and combinations ([`Weighted`]).
//!
//! ```
//! use ponder_scorers::{Sample, Scorer, MeanLogprob};
//! let s = Sample::new("1+1?", "2").with_logprobs(&[-0.5, -1.5]);
//! let p = MeanLogprob.score(&s).unwrap();
//! assert!((p - (-1.0f64).exp()).abs() < 1e-9);
//! let by_length = |s: &Sample| -(s.text.len() as f64);
//! assert_eq!(by_length.score(&s).unwrap(), -1.0);
//! ```

mod combine;
mod model_free;
mod prm;
pub mod probe;
mod track;
mod verifier;
pub use combine::Weighted;
pub use model_free::{MeanLogprob, SelfCertainty};
pub use prm::{Prm, PrmPreset, PRM_PRESETS};
pub use probe::{Probe, ProbeFile};
pub use track::{StepItem, Track, TrackState};
pub use verifier::{ArithmeticVerifier, Check};

use ponder_engine::{Budget, EngineError};
use std::collections::BTreeMap;

/// The signals that need no model besides the policy, by scorer name (`logprob`,
/// `self-certainty`, `verifier`), each as its scorer rates the sample: what every
/// sampled candidate carries so that `ponder eval` can re-vote and measure AUROC offline.
pub fn model_free_signals(sample: &Sample<'_>) -> BTreeMap<String, f64> {
    let verifier = ArithmeticVerifier::default();
    let scorers: [&dyn Scorer; 3] = [&MeanLogprob, &SelfCertainty, &verifier];
    scorers
        .iter()
        .filter_map(|s| Some((s.name().to_string(), s.score(sample).ok()?)))
        .collect()
}

/// The steps of a solution: text split on `delimiter`, blank pieces dropped.
pub fn split_steps<'a>(text: &'a str, delimiter: &str) -> Vec<&'a str> {
    text.split(delimiter)
        .filter(|s| !s.trim().is_empty())
        .collect()
}

/// How a vector of step scores becomes one score.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
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
    /// Per-token self-certainty of the policy model (KL from uniform; NaN: unknown).
    pub certainty: &'a [f32],
    /// The problem's budget, when known: a model-backed scorer stops at its deadline or
    /// cancel flag (its token cap is the policy's, not the scorer's).
    pub budget: Option<&'a Budget>,
    /// The policy's final-layer hidden state at the text's last sampled token (where
    /// the engine recorded them: see [`Scorer::needs_hidden`]).
    pub hidden: Option<&'a [f32]>,
}

impl<'a> Sample<'a> {
    /// A sample with no per-token information.
    pub fn new(question: &'a str, text: &'a str) -> Self {
        Self {
            question,
            text,
            logprobs: &[],
            certainty: &[],
            budget: None,
            hidden: None,
        }
    }
    /// The same sample with the policy's hidden state at its last sampled token.
    pub fn with_hidden(mut self, hidden: Option<&'a [f32]>) -> Self {
        self.hidden = hidden;
        self
    }
    /// The same sample, scored on behalf of a problem with this budget.
    pub fn with_budget(mut self, budget: &'a Budget) -> Self {
        self.budget = Some(budget);
        self
    }
    /// The same sample with the policy's per-token log-probabilities.
    pub fn with_logprobs(mut self, logprobs: &'a [f32]) -> Self {
        self.logprobs = logprobs;
        self
    }
    /// The same sample with the policy's per-token self-certainty.
    pub fn with_certainty(mut self, certainty: &'a [f32]) -> Self {
        self.certainty = certainty;
        self
    }
}

/// A scorer's failure, naming the scorer.
#[derive(Debug, thiserror::Error)]
#[error("scorer {scorer}: {message}")]
pub struct ScoreError {
    /// The scorer's name (as [`Scorer::name`] gives it, or its family, e.g. "prm").
    pub scorer: String,
    /// What failed.
    pub message: String,
    /// Which item of a batch failed, when the scorer knows.
    pub item: Option<usize>,
    /// The engine error behind this failure, when an engine call caused it (boxed: most
    /// failures have none, and it keeps the error small).
    #[source]
    pub source: Option<Box<EngineError>>,
}

impl ScoreError {
    /// A failure of `scorer` with no underlying error.
    pub fn new(scorer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            scorer: scorer.into(),
            message: message.into(),
            item: None,
            source: None,
        }
    }
    /// A failure of `scorer` caused by an engine call (kept typed, not flattened into
    /// `message`, which says what the scorer was doing).
    pub fn engine(scorer: impl Into<String>, message: impl Into<String>, e: EngineError) -> Self {
        Self {
            source: Some(Box::new(e)),
            ..Self::new(scorer, message)
        }
    }
    /// The engine error behind this failure, if an engine call caused it (e.g. to
    /// match [`EngineError::KvCapacity`]).
    pub fn engine_error(&self) -> Option<&EngineError> {
        self.source.as_deref()
    }
    /// The same error, attributed to batch item `i`.
    pub fn at(mut self, i: usize) -> Self {
        self.item.get_or_insert(i);
        self
    }
}

/// Rates candidates; higher is better.
pub trait Scorer: Send + Sync {
    /// A short name for reports.
    fn name(&self) -> &str {
        "custom"
    }
    /// Whether it reads [`Sample::hidden`]: searches then record the policy's hidden
    /// states (the engine must be loaded with them).
    fn needs_hidden(&self) -> bool {
        false
    }
    /// Score one candidate.
    fn score(&self, sample: &Sample<'_>) -> Result<f64, ScoreError>;
    /// Score many; model-backed scorers override this to batch.
    fn score_batch(&self, samples: &[Sample<'_>]) -> Result<Vec<f64>, ScoreError> {
        samples
            .iter()
            .enumerate()
            .map(|(i, s)| self.score(s).map_err(|e| e.at(i)))
            .collect()
    }
    /// Start scoring one problem step by step: the root of its search tree's tracks.
    /// A model-backed scorer's work on the track obeys `budget`'s deadline and cancel
    /// flag. The default keeps no state.
    fn track(&self, _question: &str, _budget: &Budget) -> Result<Track, ScoreError> {
        Ok(Track::stateless())
    }
    /// Score each item's newest step (already part of `item.sample.text`), recording it
    /// on the item's track; returns each node's value (higher is better). The default
    /// scores the whole text so far with [`Scorer::score_batch`].
    fn score_steps(&self, items: &mut [StepItem<'_>]) -> Result<Vec<f64>, ScoreError> {
        let samples: Vec<Sample<'_>> = items.iter().map(|i| i.sample).collect();
        let values = self.score_batch(&samples)?;
        for (it, &v) in items.iter_mut().zip(&values) {
            it.track.push(v);
        }
        Ok(values)
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

impl<S: Scorer + ?Sized> Scorer for std::sync::Arc<S> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn needs_hidden(&self) -> bool {
        (**self).needs_hidden()
    }
    fn score(&self, s: &Sample<'_>) -> Result<f64, ScoreError> {
        (**self).score(s)
    }
    fn score_batch(&self, s: &[Sample<'_>]) -> Result<Vec<f64>, ScoreError> {
        (**self).score_batch(s)
    }
    fn track(&self, q: &str, budget: &Budget) -> Result<Track, ScoreError> {
        (**self).track(q, budget)
    }
    fn score_steps(&self, items: &mut [StepItem<'_>]) -> Result<Vec<f64>, ScoreError> {
        (**self).score_steps(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn closures_are_scorers_and_batch_defaults_to_map() {
        let by_len = |s: &Sample<'_>| s.logprobs.len() as f64;
        let a = [0.0f32; 2];
        let b = [0.0f32; 5];
        let scores = by_len
            .score_batch(&[
                Sample::new("q", "t").with_logprobs(&a),
                Sample::new("q", "t").with_logprobs(&b),
            ])
            .unwrap();
        assert_eq!(scores, vec![2.0, 5.0]);
        assert_eq!(Scorer::name(&by_len), "closure");
    }

    #[test]
    fn steps_split_on_the_delimiter_and_skip_blanks() {
        assert_eq!(
            split_steps("a\n\nb\n\n\n\n c \n\n", "\n\n"),
            vec!["a", "b", " c "]
        );
        assert!(split_steps("  ", "\n\n").is_empty());
    }

    #[test]
    fn stateless_step_scoring_rescores_the_text_so_far() {
        // The default score_steps scores the whole text and records it on the track.
        let by_len = |s: &Sample<'_>| s.text.len() as f64;
        let mut root = by_len.track("q", &Budget::unlimited()).unwrap();
        let mut child = root.fork().unwrap();
        let v = by_len
            .score_steps(&mut [StepItem {
                track: &mut child,
                step: "bb",
                sample: Sample::new("q", "a\n\nbb"),
            }])
            .unwrap();
        assert_eq!(v, vec![5.0]);
        assert_eq!(child.steps(), &[5.0]);
        assert!(root.steps().is_empty(), "forks do not share step scores");
        root.push(1.0);
        assert_eq!(root.fork().unwrap().steps(), &[1.0]);
    }

    mod props {
        //! Property tests of step cutting (`proptest`): 512 texts of
        //! equation-like tokens, each cut at one of seven delimiters.

        use super::*;
        use proptest::prelude::*;

        const TOKENS: &[&str] = &[
            "1",
            "2 + 2 = 4",
            " ",
            "\n",
            "\n\n",
            "Step",
            "=",
            "a",
            "é",
            "🎉",
            "\t",
            ".",
        ];

        fn soup() -> impl Strategy<Value = String> {
            prop::collection::vec(prop::sample::select(TOKENS), 0..60).prop_map(|v| v.concat())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Step cutting: no blank step, every step a piece of the text in
            /// order, and nothing but blanks and delimiters left out.
            #[test]
            fn split_steps_keeps_the_text(t in soup(), d in prop::sample::select(
                &["\n\n", "\n", "=", " ", "Step", "🎉", ""][..]
            )) {
                let steps = split_steps(&t, d);
                let mut rest = t.as_str();
                for s in &steps {
                    prop_assert!(!s.trim().is_empty());
                    let at = rest.find(s).expect("a step is a piece of the text, in order");
                    rest = &rest[at + s.len()..];
                }
                if !d.is_empty() {
                    let kept: usize = steps.iter().map(|s| s.len()).sum();
                    let dropped = t.split(d).filter(|s| s.trim().is_empty());
                    let blanks: usize = dropped.map(str::len).sum();
                    let delimiters = t.matches(d).count() * d.len();
                    prop_assert_eq!(kept + blanks + delimiters, t.len());
                }
            }
        }
    }
}
