//! What passes between the [`crate::Engine`] handles and the worker thread: the commands
//! ([`Cmd`]) with their reply channels, the tokens a call produced ([`Chunk`]), and the
//! state a problem's handles share with the worker ([`SessionShared`]).

use crate::backend::{Backend, SeqId, Token};
use crate::capacity::Capacity;
use crate::error::{EngineError, Result};
use crate::generation::{Finish, GenSpec};
use crate::stats::{Budget, Counters};
use crossbeam_channel::Sender;
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// Tokens produced or appended by one call, with their pieces and log-probabilities.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    pub tokens: Vec<Token>,
    pub logprobs: Vec<f32>,
    pub certainty: Vec<f32>,
    pub hidden: Vec<Vec<f32>>,
    pub bytes: Vec<u8>,
    pub piece_lens: Vec<u32>,
    pub finish: Option<Finish>,
    pub rng: Option<ChaCha8Rng>,
}

impl Chunk {
    pub(super) fn push(&mut self, tok: Token, lp: f32, certainty: f32, piece: &[u8]) {
        self.tokens.push(tok);
        self.logprobs.push(lp);
        self.certainty.push(certainty);
        self.bytes.extend_from_slice(piece);
        self.piece_lens.push(piece.len() as u32);
    }
}

/// A problem's shared state: its budget, seeds and counters.
#[derive(Debug)]
pub(crate) struct SessionShared {
    pub seed: u64,
    pub problem: u64,
    pub budget: Budget,
    pub counters: Counters,
    pub started: Instant,
    pub next_branch: std::sync::atomic::AtomicU64,
}

impl SessionShared {
    /// The stop (cancel or deadline) that ends any call of the problem, if one has come.
    pub(super) fn stopped(&self) -> Option<EngineError> {
        if self.budget.cancel.as_ref().is_some_and(|c| c.load(Relaxed)) {
            return Some(EngineError::Cancelled);
        }
        if self.budget.deadline.is_some_and(|d| Instant::now() >= d) {
            return Some(EngineError::DeadlinePassed);
        }
        None
    }
    /// The limit that ends the problem's generation, if one has come.
    pub(super) fn limit(&self) -> Option<Finish> {
        match self.stopped() {
            Some(EngineError::Cancelled) => return Some(Finish::Cancelled),
            Some(_) => return Some(Finish::Deadline),
            None => {}
        }
        if let Some(m) = self.budget.max_new_tokens {
            if self.counters.generated.load(Relaxed) >= m {
                return Some(Finish::Budget);
            }
        }
        None
    }
    pub(super) fn remaining_tokens(&self) -> usize {
        match self.budget.max_new_tokens {
            Some(m) => usize::try_from(m.saturating_sub(self.counters.generated.load(Relaxed)))
                .unwrap_or(usize::MAX),
            None => usize::MAX,
        }
    }
}

pub(crate) type Sess = Arc<SessionShared>;

pub(crate) struct AppendItem {
    pub sess: Sess,
    pub seq: SeqId,
    pub tokens: Vec<Token>,
}

pub(crate) struct ExtendItem {
    pub seq: SeqId,
    pub rng: ChaCha8Rng,
    /// This item's cap (≤ the spec's `max_tokens`).
    pub max_tokens: usize,
}

/// A read-only query run on the worker thread.
pub(crate) type BackendCall = Box<dyn FnOnce(&dyn Backend) + Send>;

pub(crate) enum Cmd {
    Prefill {
        sess: Sess,
        tokens: Vec<Token>,
        reply: Sender<Result<SeqId>>,
    },
    Fork {
        sess: Sess,
        src: SeqId,
        count: usize,
        len: usize,
        reply: Sender<Result<Vec<SeqId>>>,
    },
    Extend {
        sess: Sess,
        spec: Arc<GenSpec>,
        items: Vec<ExtendItem>,
        reply: Sender<Vec<Result<Chunk>>>,
    },
    /// Feed tokens to several sequences (no sampling); one reply for all.
    Append {
        items: Vec<AppendItem>,
        logprobs: bool,
        reply: Sender<Vec<Result<Chunk>>>,
    },
    Truncate {
        seq: SeqId,
        len: usize,
        reply: Sender<Result<()>>,
    },
    Release {
        seq: SeqId,
    },
    NextLogprobs {
        seq: SeqId,
        tokens: Vec<Token>,
        reply: Sender<Result<Vec<f32>>>,
    },
    Call(BackendCall),
    Capacity(Sender<Capacity>),
}
