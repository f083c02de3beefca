//! # ponder-search
//!
//! Test-time search strategies behind one [`Strategy`] trait. A strategy takes a
//! [`Problem`] and a [`Cx`] (engine, prompt format, scorer, seed, budget) and returns a
//! [`Solution`]: the chosen answer, every candidate with its score, and what it cost.
//!
//! Answer extraction, normalisation and equivalence live in [`answer`], once, and every
//! voting rule in [`vote`] shares them.
//!
//! Strategies drive [`ponder_engine`] branches: the prompt is prefilled once and forked
//! through the KV cache; all branches of a step are extended in one call, which the
//! engine decodes as one batch (together with any other problem's work).

pub mod answer;
mod best_of_n;
mod strategy;
pub mod vote;

pub use best_of_n::BestOfN;
pub use strategy::{Candidate, Cx, Problem, SearchError, Solution, Strategy, MATH_SYSTEM_PROMPT};
pub use vote::Vote;

use ponder_engine::SamplingParams;

/// Names accepted by [`build`].
pub const STRATEGY_NAMES: &[&str] = &["greedy", "best-of-n"];

/// Plain settings shared by the strategies, as the CLI and `ponder eval` give them.
#[derive(Clone, Debug)]
pub struct StrategyOptions {
    pub n: usize,
    pub sampling: SamplingParams,
    pub max_tokens: usize,
    pub vote: Vote,
}

impl Default for StrategyOptions {
    fn default() -> Self {
        Self {
            n: 8,
            sampling: SamplingParams::default(),
            max_tokens: 512,
            vote: Vote::Majority,
        }
    }
}

/// Build a strategy by name.
pub fn build(name: &str, o: &StrategyOptions) -> Result<Box<dyn Strategy>, SearchError> {
    match name {
        "greedy" => Ok(Box::new(BestOfN::greedy(o.max_tokens))),
        "best-of-n" | "bon" => Ok(Box::new(BestOfN {
            n: o.n,
            sampling: o.sampling,
            max_tokens: o.max_tokens,
            vote: o.vote,
            stop: Vec::new(),
        })),
        other => Err(SearchError::UnknownStrategy(other.to_string())),
    }
}
