//! The engine's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in `ponder-engine`, each variant naming what was wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The model file does not exist.
    #[error("model file not found: {0}")]
    ModelNotFound(PathBuf),
    /// The model file exists but is not a loadable GGUF model.
    #[error("model file {path} is not a usable GGUF model: {reason}")]
    CorruptModel { path: PathBuf, reason: String },
    /// Creating the inference context failed (usually not enough memory for `n_ctx`).
    #[error("could not create a llama.cpp context ({0})")]
    Context(String),
    /// A parameter is out of its valid range.
    #[error("invalid {name}: {reason}")]
    InvalidParam { name: &'static str, reason: String },
    /// The prompt alone does not fit the context.
    #[error("prompt is {tokens} tokens long, but the context holds {n_ctx} tokens (raise --ctx or shorten the prompt)")]
    PromptTooLong { tokens: usize, n_ctx: u32 },
    /// More sequences asked for than the engine has.
    #[error("{wanted} sequences requested but the engine has {available} available ({max} in all; raise n_seq_max or lower N)")]
    TooManySequences {
        wanted: usize,
        available: usize,
        max: usize,
    },
    /// Work that cannot fit in the KV cache.
    #[error("KV cache too small: {needed} cells needed, {available} can be made available of {n_ctx} (raise --ctx, lower N or max tokens)")]
    KvCapacity {
        needed: usize,
        available: usize,
        n_ctx: u32,
    },
    /// A branch position would exceed the context length for one sequence.
    #[error("sequence would reach position {pos}, past the context length {n_ctx}")]
    PositionOverflow { pos: usize, n_ctx: u32 },
    /// The chat template could not be applied.
    #[error("chat template: {0}")]
    Template(String),
    /// Tokenization failed.
    #[error("tokenize: {0}")]
    Tokenize(String),
    /// The backend's decode call failed.
    #[error("decode failed: {0}")]
    Decode(String),
    /// A KV cache operation failed.
    #[error("KV cache operation failed: {0}")]
    Kv(String),
    /// The backend cannot do what was asked (e.g. hidden states).
    #[error("backend does not support {0}")]
    Unsupported(&'static str),
    /// A branch handle that no longer exists on the engine.
    #[error("unknown sequence {0} (released or never created)")]
    UnknownSequence(i32),
    /// The engine's worker thread has stopped.
    #[error("engine worker stopped")]
    Stopped,
}

/// Result alias for the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> EngineError {
    EngineError::InvalidParam {
        name,
        reason: reason.into(),
    }
}
