//! # ponder-engine
//!
//! The batched multi-branch decoding engine every ponder strategy stands on.
//!
//! A [`Backend`] owns one model context with a unified KV cache (llama.cpp, or the
//! always-compiled [`mock`] backend). An [`Engine`] is a cheap `Clone + Send + Sync`
//! handle to the worker thread that owns the backend: callers on any thread submit work
//! (prefill a prompt, fork branches, extend them, append text) and the worker merges the
//! pending work of *all* branches of *all* problems into **one batch per decode step**.
//!
//! Why this shape:
//! - A prompt is evaluated once; branches fork it through the KV cache (a metadata copy),
//!   so N samples cost N × generated tokens, not N × (prompt + generated).
//! - Search strategies fork at step boundaries the same way: no branch's text is re-read.
//! - llama.cpp contexts are `!Sync` and must not be created in parallel: one thread owns
//!   each, and batching (not threads) is how throughput scales on a CPU.
//! - Capacity (sequence ids, KV cells) is accounted for in the worker: work that does not
//!   fit waits; work that can never fit is rejected before any decoding, so llama.cpp is
//!   never driven into an abort.
//! - Sampling runs in Rust on each branch's own seeded RNG, so the same seed gives the
//!   same text whatever else shares the batch, and every token carries its log-probability.
//!
//! ```
//! use ponder_engine::{Engine, GenSpec, SamplingParams, Budget, mock};
//! let engine = Engine::new(Box::new(mock::MockBackend::new(Default::default()))).unwrap();
//! let session = engine.session(42, 0, Budget::unlimited());
//! let root = session.prefill("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n").unwrap();
//! let mut kids = root.fork(4).unwrap();
//! session.extend(kids.iter_mut(), &GenSpec::new(SamplingParams::default(), 16)).unwrap();
//! assert!(kids.iter().all(|b| b.finish().is_some()));
//! assert_eq!(session.stats().prompt_tokens as usize, root.prompt_len());
//! ```

mod backend;
mod branch;
mod capacity;
mod engine;
mod error;
mod generation;
#[cfg(feature = "llama")]
pub mod llama;
pub mod mock;
mod prompt;
pub mod sampling;
pub mod sizing;
mod stats;
mod worker;

pub use backend::{
    chatml, Backend, BackendInfo, BatchToken, ChatMessage, LayerStates, OnRow, PromptFormat, SeqId,
    Token,
};
pub use branch::Branch;
pub use capacity::{Capacity, WorkerOptions};
pub use engine::{Engine, Session};
pub use error::{EngineError, ErrorSource, Result};
pub use generation::{Finish, GenSpec};
pub use prompt::{Prompt, Segment};
pub use sampling::SamplingParams;
pub use sizing::Workload;
pub use stats::{Budget, Stats};

#[cfg(feature = "llama")]
impl Engine {
    /// Load a GGUF model on a new worker thread.
    pub fn load(cfg: &llama::LlamaConfig) -> Result<Engine> {
        let cfg = cfg.clone();
        Engine::spawn(
            move || Ok(Box::new(llama::LlamaCpp::load(&cfg)?) as Box<dyn Backend>),
            WorkerOptions::default(),
        )
    }
}

impl Engine {
    /// An engine over the mock backend.
    pub fn mock(cfg: mock::MockConfig) -> Result<Engine> {
        Engine::new(Box::new(mock::MockBackend::new(cfg)))
    }
}
