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
mod early_stop;
pub mod program;
pub mod prompt_style;
pub mod registry;
mod strategy;
mod tree;
mod two_model;
pub mod vote;
mod voting;

pub use early_stop::early_exit::{self, EarlyExit};
pub use early_stop::spec_rejection::{Round, SpecRejection};
pub use early_stop::st_bon::{
    coe_feature, divergence, most_consistent, most_consistent_by_feature, StBoN,
};
pub use prompt_style::{PromptBudget, PromptStyle, Styled};
pub use registry::{Common, Overrides, DEFAULT_MAX_TOKENS};
pub use strategy::{
    Candidate, Cx, DraftReport, Needs, Problem, SearchError, Solution, Strategy, MATH_SYSTEM_PROMPT,
};
pub use tree::beam::BeamSearch;
pub use tree::dpts::{transition, Dpts, Mode, Transition};
pub use tree::dvts::Dvts;
pub use tree::fast_mcts::{FastMcts, StepNode};
pub use tree::mcts::{Mcts, TreeNode};
pub use tree::{StepUnit, Steps};
pub use two_model::rsd::{Reward as RsdReward, Rsd};
pub use vote::Vote;
pub use voting::best_of_n::{BestOfN, Greedy};
pub use voting::cascade::{Cascade, Stage, StageReport};
pub use voting::certainty_vote::CertaintyVote;
pub use voting::length_vote::{self, LengthVote};
pub use voting::program::{agreement_scores, Mixed, Pot, PROGRAM_PROMPT};
