//! # ponder-search
//!
//! Test-time search strategies behind one [`Strategy`] trait. A strategy takes a
//! [`Problem`] and a [`Cx`] (engine, prompt format, scorer, seed, budget) and returns a
//! [`Solution`]: the chosen answer, every candidate with its score, and what it cost.
//!
//! Answer extraction, normalisation and equivalence live in [`answer`], once, and every
//! voting rule in [`vote`] shares them.
//!
//! Every strategy is registered by name in [`registry`], with its settings struct (its
//! defaults and documentation) and what it [`Needs`] from the context.
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
pub mod registry;
mod rsd;
mod spec_rejection;
mod st_bon;
mod strategy;
mod tree;
pub mod vote;

pub use beam::BeamSearch;
pub use best_of_n::{BestOfN, Greedy};
pub use certainty_vote::CertaintyVote;
pub use dpts::{transition, Dpts, Mode, Transition};
pub use dvts::Dvts;
pub use early_exit::EarlyExit;
pub use fast_mcts::{FastMcts, StepNode};
pub use length_vote::LengthVote;
pub use mcts::{Mcts, TreeNode};
pub use registry::{Common, Overrides, DEFAULT_MAX_TOKENS};
pub use rsd::{Reward as RsdReward, Rsd};
pub use spec_rejection::{Round, SpecRejection};
pub use st_bon::{coe_feature, divergence, most_consistent, most_consistent_by_feature, StBoN};
pub use strategy::{
    Candidate, Cx, DraftReport, Needs, Problem, SearchError, Solution, Strategy, MATH_SYSTEM_PROMPT,
};
pub use tree::{StepUnit, Steps};
pub use vote::Vote;
