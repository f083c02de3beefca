//! # ponder
//!
//! A test-time search and decoding engine over llama.cpp. This crate is the facade:
//! it re-exports the three layers and adds model fetching and the `ponder` CLI.
//!
//! - [`engine`] (`ponder-engine`): the batched multi-branch engine — one decode per step
//!   for every live branch of every problem, prompts prefilled once and forked through
//!   the KV cache.
//! - [`scorers`] (`ponder-scorers`): rate candidates (closures are scorers too).
//! - [`search`] (`ponder-search`): strategies behind one `Strategy` trait, answer
//!   extraction and voting.
//!
//! ```no_run
//! use ponder::prelude::*;
//! let model = ponder::models::default_model()?;
//! let engine = Engine::load(&LlamaConfig::new(model))?;
//! let cx = Cx::new(engine);
//! let sol = BestOfN::new(8).solve(&cx, &Problem::new(0, "What is 17 + 25?"))?;
//! println!("{:?} ({} tokens)", sol.answer, sol.stats.generated_tokens);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use ponder_engine as engine;
pub use ponder_scorers as scorers;
pub use ponder_search as search;

pub mod bench;
pub mod durable;
pub mod eval;
pub mod models;
pub mod probe;
pub mod serve;

/// The names most programs need.
pub mod prelude {
    #[cfg(feature = "llama")]
    pub use ponder_engine::llama::LlamaConfig;
    pub use ponder_engine::{Budget, Engine, GenSpec, PromptFormat, SamplingParams, Stats};
    pub use ponder_scorers::{MeanLogprob, Sample, Scorer};
    pub use ponder_search::{BestOfN, Cx, Problem, Solution, Strategy, Vote};
}
