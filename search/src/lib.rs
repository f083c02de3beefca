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
mod arena;
mod beam;
mod best_of_n;
mod certainty_vote;
mod dpts;
mod dvts;
pub mod early_exit;
mod fast_mcts;
pub mod length_vote;
mod mcts;
mod rsd;
mod spec_rejection;
mod st_bon;
mod strategy;
mod tree;
pub mod vote;

pub use beam::BeamSearch;
pub use best_of_n::BestOfN;
pub use certainty_vote::CertaintyVote;
pub use dpts::{transition, Dpts, Mode, Transition};
pub use dvts::Dvts;
pub use early_exit::EarlyExit;
pub use fast_mcts::{FastMcts, StepNode};
pub use length_vote::LengthVote;
pub use mcts::{Mcts, TreeNode};
pub use rsd::{Reward as RsdReward, Rsd};
pub use spec_rejection::{Round, SpecRejection};
pub use st_bon::{coe_feature, divergence, most_consistent, most_consistent_by_feature, StBoN};
pub use strategy::{
    Candidate, Cx, DraftReport, Problem, SearchError, Solution, Strategy, MATH_SYSTEM_PROMPT,
};
pub use tree::{StepUnit, Steps};
pub use vote::Vote;

use ponder_engine::SamplingParams;

/// Names accepted by [`build`].
pub const STRATEGY_NAMES: &[&str] = &[
    "greedy",
    "best-of-n",
    "beam",
    "dvts",
    "mcts",
    "spec-rejection",
    "length-vote",
    "early-exit",
    "certainty-vote",
    "st-bon",
    "rsd",
    "fast-mcts",
    "dpts",
];

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
    /// MCTS and DPTS: most leaves / refill nodes kept alive, each holding a sequence
    /// (default: MCTS 48, DPTS 32). Lower it to solve more problems at once.
    pub max_live: Option<usize>,
    pub steps: Steps,
    /// Speculative rejection: share rejected per round, samples started (default 4·n).
    pub alpha: f64,
    pub initial: Option<usize>,
    /// Length-filtered vote: bucket width D (steps) and buckets kept K.
    pub length_width: usize,
    pub length_keep: usize,
    /// Early exit: tokens between probes (C) and agreeing probes needed (W).
    pub probe_interval: usize,
    pub probe_window: usize,
    /// Certainty vote: samples per wave and the certaindex to stop at.
    pub wave: usize,
    pub certainty: f64,
    /// ST-BoN: τ = m · c tokens past the divergence step.
    pub tau_coeff: f64,
    /// ST-BoN: every layer's hidden states (the faithful variant); None: final layer only.
    pub layers: Option<std::sync::Arc<dyn ponder_engine::LayerStates>>,
    /// RSD: the draft model's engine, the acceptance threshold δ and what scores a step.
    pub draft: Option<ponder_engine::Engine>,
    pub threshold: f64,
    pub rsd_reward: RsdReward,
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
            max_live: None,
            steps: Steps::default(),
            alpha: SpecRejection::default().alpha,
            initial: None,
            length_width: LengthVote::default().width,
            length_keep: LengthVote::default().keep,
            probe_interval: EarlyExit::default().chunk,
            probe_window: EarlyExit::default().window,
            wave: CertaintyVote::default().wave,
            certainty: CertaintyVote::default().threshold,
            tau_coeff: StBoN::default().tau_coeff,
            layers: None,
            draft: None,
            threshold: 0.7,
            rsd_reward: RsdReward::Scorer,
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
            max_live: o.max_live.unwrap_or(Mcts::default().max_live),
        })?),
        "spec-rejection" => Box::new(checked(SpecRejection {
            n: o.initial.unwrap_or(4 * o.n),
            alpha: o.alpha,
            sampling: o.sampling,
            max_tokens: o.max_tokens,
            ..SpecRejection::default()
        })?),
        "length-vote" => Box::new(checked(LengthVote {
            n: o.n,
            sampling: o.sampling,
            max_tokens: o.max_tokens,
            width: o.length_width,
            keep: o.length_keep,
        })?),
        "early-exit" => Box::new(checked(EarlyExit {
            chunk: o.probe_interval,
            window: o.probe_window,
            sampling: o.sampling,
            max_tokens: o.max_tokens,
            ..EarlyExit::default()
        })?),
        "certainty-vote" => Box::new(checked(CertaintyVote {
            n: o.n,
            wave: o.wave,
            threshold: o.certainty,
            sampling: o.sampling,
            max_tokens: o.max_tokens,
        })?),
        "st-bon" => Box::new(checked(StBoN {
            n: o.n,
            tau_coeff: o.tau_coeff,
            sampling: o.sampling,
            max_tokens: o.max_tokens,
            layers: o.layers.clone(),
            ..StBoN::default()
        })?),
        "dpts" => Box::new(checked(Dpts {
            width: o.width,
            max_parallel: o.n.min(64),
            sampling: o.sampling,
            max_tokens: o.max_tokens,
            steps: o.steps.clone(),
            vote: o.vote.unwrap_or(Vote::Majority),
            max_live: o.max_live.unwrap_or(Dpts::default().max_live),
            ..Dpts::default()
        })?),
        "fast-mcts" => Box::new(checked(FastMcts {
            trajectories: o.n,
            sampling: o.sampling,
            max_tokens: o.max_tokens,
            steps: o.steps.clone(),
            vote: o.vote.unwrap_or(Vote::Majority),
            ..FastMcts::default()
        })?),
        "rsd" => {
            let draft = o.draft.clone().ok_or_else(|| {
                strategy::invalid("draft model", "rsd needs a draft model (--draft-model)")
            })?;
            let mut r = Rsd::new(draft);
            r.threshold = o.threshold;
            r.reward = o.rsd_reward;
            r.max_tokens = o.max_tokens;
            r.steps = o.steps.clone();
            r.validate()?;
            Box::new(r)
        }
        other => return Err(SearchError::UnknownStrategy(other.to_string())),
    })
}

/// Settings a strategy can check before any model is loaded.
trait Check {
    fn check(&self) -> Result<(), SearchError>;
}

macro_rules! checks_by_validate {
    ($($t:ty),* $(,)?) => {
        $(impl Check for $t {
            fn check(&self) -> Result<(), SearchError> {
                self.validate()
            }
        })*
    };
}

checks_by_validate!(
    BeamSearch,
    Dvts,
    Mcts,
    SpecRejection,
    LengthVote,
    EarlyExit,
    CertaintyVote,
    StBoN,
    FastMcts,
    Dpts,
);

fn checked<S: Check>(s: S) -> Result<S, SearchError> {
    s.check().map(|()| s)
}
