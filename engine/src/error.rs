//! The engine's one error type.
//!
//! Where a failure has an underlying error (llama.cpp's, the OS's), it is kept as the
//! variant's `source` rather than flattened into the message, so the message says what
//! failed and [`std::error::Error::source`] says why (`{:#}` of an `anyhow::Error`
//! prints both).

use std::path::PathBuf;
use std::sync::Arc;

/// An underlying error kept as a variant's source. Shared (not boxed) so that one
/// backend failure can be reported to every job of the batch it hit.
pub type ErrorSource = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in `ponder-engine`, each variant naming what was wrong.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The model file does not exist.
    #[error("model file not found: {0}")]
    ModelNotFound(PathBuf),
    /// The model file exists but is not a loadable GGUF model.
    #[error("model file {path} is not a usable GGUF model: {reason}")]
    CorruptModel {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// The error reading or loading it, if there was one.
        #[source]
        source: Option<ErrorSource>,
    },
    /// Creating the inference context (or the thread that owns it) failed; for a
    /// context, usually not enough memory for `n_ctx`.
    #[error("could not create a llama.cpp context ({reason})")]
    Context {
        /// What was being created, and the likely cause.
        reason: String,
        /// The underlying error, if there was one.
        #[source]
        source: Option<ErrorSource>,
    },
    /// A parameter is out of its valid range.
    #[error("invalid {name}: {reason}")]
    InvalidParam {
        /// The parameter.
        name: &'static str,
        /// Its value and the valid range, or what is wrong with it.
        reason: String,
    },
    /// The prompt alone does not fit the context.
    #[error("prompt is {tokens} tokens long, but the context holds {n_ctx} tokens (raise --ctx or shorten the prompt)")]
    PromptTooLong {
        /// Prompt length in tokens.
        tokens: usize,
        /// KV cells in the whole context.
        n_ctx: u32,
    },
    /// More sequences asked for than the engine has.
    #[error("{wanted} sequences requested but the engine has {available} available ({max} in all; raise n_seq_max or lower N)")]
    TooManySequences {
        /// Sequences asked for.
        wanted: usize,
        /// Sequences the caller could still get.
        available: usize,
        /// Sequences the engine has in all (`n_seq_max`).
        max: usize,
    },
    /// Work refused before any decoding because it cannot fit in the KV cache, by the
    /// engine's own accounting (see [`EngineError::KvFull`] for the backend running out).
    #[error("KV cache too small: {needed} cells needed, {available} can be made available of {n_ctx} (raise --ctx, lower N or max tokens)")]
    KvCapacity {
        /// Cells the work needs (its pending tokens plus its generation cap).
        needed: usize,
        /// Cells it could get: free now, or once the rest of its problem's work ends.
        available: usize,
        /// KV cells in the whole context.
        n_ctx: u32,
    },
    /// The backend found no room in its KV cache for a batch while decoding. The engine
    /// admits only work that fits its count, so this means the backend holds more than
    /// the engine counted (e.g. a model whose cache is not one cell per token).
    #[error("KV cache full: no room for a batch of {needed} tokens ({free} of {n_ctx} cells free by the engine's count; raise --ctx, lower N or max tokens)")]
    KvFull {
        /// Cells the batch needed (one per token).
        needed: usize,
        /// Cells free before the batch by the engine's accounting; the engine fills this
        /// in, a backend that keeps no count of its own reports 0.
        free: usize,
        /// KV cells in the whole context.
        n_ctx: u32,
    },
    /// A branch position would exceed the context length for one sequence.
    #[error("sequence would reach position {pos}, past the context length {n_ctx}")]
    PositionOverflow {
        /// The position (0-based).
        pos: usize,
        /// KV cells in the whole context.
        n_ctx: u32,
    },
    /// The chat template could not be applied.
    #[error("chat template: {reason}")]
    Template {
        /// What could not be done, and what to try instead.
        reason: String,
        /// The underlying error, if there was one.
        #[source]
        source: Option<ErrorSource>,
    },
    /// A token id outside the model's vocabulary (`0..n_vocab`), refused before it
    /// reaches the backend (llama.cpp would abort the process on it).
    #[error("token id {token} is outside the vocabulary (n_vocab {n_vocab})")]
    InvalidToken {
        /// The id.
        token: crate::backend::Token,
        /// The vocabulary's size.
        n_vocab: u32,
    },
    /// Tokenization failed.
    #[error("tokenize: {0}")]
    Tokenize(String),
    /// The backend's decode call failed.
    #[error("decode failed: {reason}")]
    Decode {
        /// What was being decoded, or what was wrong with the batch.
        reason: String,
        /// The underlying error, if there was one.
        #[source]
        source: Option<ErrorSource>,
    },
    /// A KV cache operation failed.
    #[error("KV cache operation failed: {reason}")]
    Kv {
        /// The operation and its arguments.
        reason: String,
        /// The underlying error, if there was one.
        #[source]
        source: Option<ErrorSource>,
    },
    /// The backend cannot do what was asked (e.g. hidden states).
    #[error("backend does not support {0}")]
    Unsupported(&'static str),
    /// The model cannot serve the engine at all (e.g. a recurrent or hybrid model, whose
    /// sequences cannot be cut back to a position).
    #[error("model {name} cannot be used: {reason}")]
    UnsupportedModel {
        /// The model (its file name).
        name: String,
        /// What it lacks.
        reason: String,
    },
    /// A branch handle that no longer exists on the engine.
    #[error("unknown sequence {0} (released or never created)")]
    UnknownSequence(i32),
    /// The engine's worker caught a panic (a bug, in the engine or its backend) while
    /// serving this call. The calls in flight fail with it; the worker serves on.
    #[error("engine worker panicked: {message}")]
    WorkerPanic {
        /// The panic's message.
        message: String,
    },
    /// The engine's worker thread has stopped.
    #[error("engine worker stopped")]
    Stopped,
    /// The problem was cancelled (its [`crate::Budget::cancel`] flag was set) before the
    /// call finished: a prompt or appended text still being read, or work still waiting
    /// for capacity. Nothing of the call is kept.
    #[error("the problem was cancelled before the call finished")]
    Cancelled,
    /// The problem's deadline ([`crate::Budget::deadline`]) passed before the call
    /// finished (as for [`EngineError::Cancelled`]).
    #[error("the problem's deadline passed before the call finished")]
    DeadlinePassed,
}

impl EngineError {
    /// [`EngineError::Decode`] with no underlying error.
    pub fn decode(reason: impl Into<String>) -> Self {
        Self::Decode {
            reason: reason.into(),
            source: None,
        }
    }
    /// [`EngineError::Decode`] caused by `source`.
    pub fn decode_from(
        reason: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Decode {
            reason: reason.into(),
            source: Some(Arc::new(source)),
        }
    }
    /// [`EngineError::Kv`] with no underlying error.
    pub fn kv(reason: impl Into<String>) -> Self {
        Self::Kv {
            reason: reason.into(),
            source: None,
        }
    }
    /// [`EngineError::Kv`] caused by `source`.
    pub fn kv_from(
        reason: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Kv {
            reason: reason.into(),
            source: Some(Arc::new(source)),
        }
    }
    /// [`EngineError::Template`] with no underlying error.
    pub fn template(reason: impl Into<String>) -> Self {
        Self::Template {
            reason: reason.into(),
            source: None,
        }
    }
    /// [`EngineError::Template`] caused by `source`.
    pub fn template_from(
        reason: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Template {
            reason: reason.into(),
            source: Some(Arc::new(source)),
        }
    }
    /// [`EngineError::Context`] with no underlying error.
    pub fn context(reason: impl Into<String>) -> Self {
        Self::Context {
            reason: reason.into(),
            source: None,
        }
    }
    /// [`EngineError::Context`] caused by `source`.
    pub fn context_from(
        reason: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Context {
            reason: reason.into(),
            source: Some(Arc::new(source)),
        }
    }
}

/// Result alias for the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Why a recurrent or hybrid model is refused.
pub(crate) const CANNOT_CUT: &str = "it is recurrent or hybrid, so a sequence cannot be cut back \
     to a position (forks at a prefix, step searches and undoing a failed call all need it); \
     use an attention-only model";

pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> EngineError {
    EngineError::InvalidParam {
        name,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[test]
    fn sources_are_kept_out_of_the_message() {
        let io = std::io::Error::other("disk on fire");
        let e = EngineError::kv_from("copy of 3 positions from sequence 0 to 1", io);
        assert_eq!(
            e.to_string(),
            "KV cache operation failed: copy of 3 positions from sequence 0 to 1"
        );
        assert_eq!(e.source().unwrap().to_string(), "disk on fire");
        // Clones share the source (one backend failure, every job of its batch).
        let c = e.clone();
        assert_eq!(c.source().unwrap().to_string(), "disk on fire");
        assert!(EngineError::decode("x").source().is_none());
    }
}
