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
mod beam;
mod best_of_n;
mod dvts;
mod mcts;
mod strategy;
mod tree;
pub mod vote;

pub use beam::BeamSearch;
pub use best_of_n::BestOfN;
pub use dvts::Dvts;
pub use mcts::{Mcts, TreeNode};
pub use strategy::{Candidate, Cx, Problem, SearchError, Solution, Strategy, MATH_SYSTEM_PROMPT};
pub use tree::{StepUnit, Steps};
pub use vote::Vote;

use ponder_engine::SamplingParams;

/// Names accepted by [`build`].
pub const STRATEGY_NAMES: &[&str] = &["greedy", "best-of-n", "beam", "dvts", "mcts"];

/// Plain settings shared by the strategies, as the CLI and `ponder eval` give them.
/// Each strategy reads the ones it has; `None` means the strategy's own default.
#[derive(Clone, Debug)]
pub struct StrategyOptions {
    /// Samples (Best-of-N), beams (beam search), candidates per step (DVTS), paths (MCTS).
    pub n: usize,
    pub sampling: SamplingParams,
    pub max_tokens: usize,
    /// Best-of-N and MCTS: majority; beam search and DVTS: the best score.
    pub vote: Option<Vote>,
    /// Beam width M (beam search, DVTS) or children per expansion W (MCTS).
    pub width: usize,
    /// Most steps (beam search, DVTS: 40).
    pub iterations: Option<usize>,
    /// Greedy lookahead steps when scoring (beam search, DVTS).
    pub lookahead: usize,
    /// Most steps on an MCTS path.
    pub max_depth: usize,
    /// MCTS PUCT constants.
    pub c_base: f64,
    pub c_init: f64,
    pub steps: Steps,
}

impl Default for StrategyOptions {
    fn default() -> Self {
        let mcts = Mcts::default();
        Self {
            n: 8,
            sampling: SamplingParams::default(),
            max_tokens: 512,
            vote: None,
            width: 4,
            iterations: None,
            lookahead: 0,
            max_depth: mcts.max_depth,
            c_base: mcts.c_base,
            c_init: mcts.c_init,
            steps: Steps::default(),
        }
    }
}

/// Build a strategy by name.
pub fn build(name: &str, o: &StrategyOptions) -> Result<Box<dyn Strategy>, SearchError> {
    Ok(match name {
        "greedy" => Box::new(BestOfN::greedy(o.max_tokens)),
        "best-of-n" | "bon" => Box::new(BestOfN {
            n: o.n,
            sampling: o.sampling,
            max_tokens: o.max_tokens,
            vote: o.vote.unwrap_or(Vote::Majority),
            stop: Vec::new(),
        }),
        "beam" => Box::new(checked(BeamSearch {
            n: o.n,
            width: o.width,
            iterations: o.iterations.unwrap_or(40),
            lookahead: o.lookahead,
            sampling: o.sampling,
            max_tokens: o.max_tokens,
            steps: o.steps.clone(),
            vote: o.vote.unwrap_or(Vote::Naive),
            ..BeamSearch::default()
        })?),
        "dvts" => Box::new(checked(Dvts {
            n: o.n,
            width: o.width,
            iterations: o.iterations.unwrap_or(40),
            lookahead: o.lookahead,
            sampling: o.sampling,
            max_tokens: o.max_tokens,
            steps: o.steps.clone(),
            vote: o.vote.unwrap_or(Vote::Naive),
        })?),
        "mcts" => Box::new(checked(Mcts {
            iterations: o.n,
            width: o.width,
            max_depth: o.max_depth,
            c_base: o.c_base,
            c_init: o.c_init,
            sampling: o.sampling,
            max_tokens: o.max_tokens,
            steps: o.steps.clone(),
            vote: o.vote.unwrap_or(Vote::Majority),
            ..Mcts::default()
        })?),
        other => return Err(SearchError::UnknownStrategy(other.to_string())),
    })
}

/// Settings a strategy can check before any model is loaded.
trait Check {
    fn check(&self) -> Result<(), SearchError>;
}

impl Check for BeamSearch {
    fn check(&self) -> Result<(), SearchError> {
        beam::check_width(self.n, self.width, self.iterations)?;
        self.steps.validate()
    }
}

impl Check for Dvts {
    fn check(&self) -> Result<(), SearchError> {
        beam::check_width(self.n, self.width, self.iterations)?;
        self.steps.validate()
    }
}

impl Check for Mcts {
    fn check(&self) -> Result<(), SearchError> {
        self.validate()?;
        self.steps.validate()
    }
}

fn checked<S: Check>(s: S) -> Result<S, SearchError> {
    s.check().map(|()| s)
}
