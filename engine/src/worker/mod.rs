//! The worker thread: owns the backend, keeps every sequence's bookkeeping, and turns
//! the pending work of all callers into one batch per decode step.
//!
//! Loop: take commands → admit waiting work that now fits → sample every generating
//! branch whose logits are ready → gather the tokens still to be fed (one per generating
//! branch, chunks of prompts/appended text) into one batch → decode → store logits.

mod admission;
mod batch;
mod cells;
mod commands;
pub(crate) mod protocol;
mod recover;
mod step;

pub(crate) use recover::{panic_message, PanicSlot};

use crate::backend::{Backend, BatchToken, SeqId, Token};
use crate::capacity::WorkerOptions;
use crate::error::{EngineError, Result};
use crate::generation::GenSpec;
use crate::sampling::Scratch;
use crate::stats::Counters;
use cells::Cells;
use crossbeam_channel::{Receiver, Sender};
use protocol::{Chunk, Cmd, Sess};
use rand_chacha::ChaCha8Rng;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Seq {
    sess: Sess,
    /// Every token of the sequence; the KV cache holds `tokens[..kv]`.
    tokens: Vec<Token>,
    kv: usize,
    /// KV cell ids of `tokens[..kv]` (shared with forks).
    cells: Vec<u32>,
    /// Logits after `tokens[kv - 1]`; only meaningful while `kv == tokens.len()`.
    logits: Option<Vec<f32>>,
    /// The hidden state at `tokens[kv - 1]`, when the backend reports them.
    hidden: Option<Vec<f32>>,
    busy: bool,
    release_when_idle: bool,
    /// Why the sequence can no longer be used, if it cannot: a failed call could not be
    /// undone in the KV cache, so its branch and the cache no longer agree. Every later
    /// command on it gets this error; releasing it retires its id.
    broken: Option<EngineError>,
}

enum Reply {
    Prefill(Sender<Result<SeqId>>),
    Group(u64, usize),
}

enum Kind {
    /// Feed the sequence's pending tokens; logprobs wanted for tokens from `logprob_from`.
    Feed {
        logprob_from: Option<usize>,
        prompt: bool,
    },
    /// Sample until a stop condition.
    Gen {
        spec: Arc<GenSpec>,
        rng: Box<ChaCha8Rng>,
        max_tokens: usize,
    },
}

struct Job {
    seq: SeqId,
    kind: Kind,
    out: Chunk,
    reply: Reply,
    /// Cells still reserved for this job.
    reserve: usize,
    /// Whether this job marked its sequence busy (and so must clear it).
    claimed: bool,
    /// The job's outcome once it has finished (None while it runs).
    done: Option<Result<()>>,
    /// Tokens of the sequence its branch knows without this job's: a job that fails is
    /// undone back to them, so the branch (which drops a failed call's tokens) and the
    /// sequence agree.
    base: usize,
}

struct Group {
    results: Vec<Option<Result<Chunk>>>,
    remaining: usize,
    reply: Sender<Vec<Result<Chunk>>>,
}

enum Waiting {
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
    Job(Box<Job>),
}

pub(crate) struct Worker {
    backend: Box<dyn Backend>,
    n_ctx: usize,
    n_batch: usize,
    seqs: Vec<Option<Seq>>,
    free_ids: Vec<SeqId>,
    cells: Cells,
    jobs: Vec<Job>,
    waiting: VecDeque<(Instant, Waiting)>,
    groups: HashMap<u64, Group>,
    next_group: u64,
    scratch: Scratch,
    batch: Vec<BatchToken>,
    opts: WorkerOptions,
    /// Since when nothing has run, been admitted or been released while work waited.
    stalled_since: Option<Instant>,
    totals: Arc<Counters>,
    /// Where the message of a panic the worker caught is kept for the handles (a call
    /// whose reply was lost to the panic reports it instead of a bare `Stopped`).
    panicked: PanicSlot,
}

impl Worker {
    pub fn new(
        backend: Box<dyn Backend>,
        opts: WorkerOptions,
        totals: Arc<Counters>,
        panicked: PanicSlot,
    ) -> Self {
        let info = backend.info().clone();
        let n = info.n_seq_max as usize;
        Self {
            backend,
            n_ctx: info.n_ctx as usize,
            n_batch: info.n_batch as usize,
            seqs: (0..n).map(|_| None).collect(),
            free_ids: (0..n as SeqId).rev().collect(),
            cells: Cells::default(),
            jobs: Vec::new(),
            waiting: VecDeque::new(),
            groups: HashMap::new(),
            next_group: 0,
            scratch: Scratch::default(),
            batch: Vec::new(),
            opts,
            stalled_since: None,
            totals,
            panicked,
        }
    }

    /// Serve commands until every handle is gone. A panic in a step is caught: the work
    /// in flight fails with its message and the worker serves on (see
    /// [`Worker::recover`]); only a panic while recovering stops it.
    pub fn run(mut self, rx: Receiver<Cmd>) {
        loop {
            // The worker's state is repaired by `recover` before it is used again, so
            // unwinding out of a step cannot leave anything half-updated in use.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.step(&rx))) {
                Ok(true) => {}
                Ok(false) => return,
                Err(payload) => {
                    let msg = panic_message(payload.as_ref());
                    let recovered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.recover(&msg)
                    }));
                    if recovered.is_err() {
                        tracing::error!(
                            "engine worker stopped: it panicked recovering from: {msg}"
                        );
                        *self.panicked.lock() =
                            Some(format!("{msg} (and again while recovering: stopped)"));
                        return;
                    }
                }
            }
        }
    }

    /// One turn of the loop; false when the worker should stop.
    fn step(&mut self, rx: &Receiver<Cmd>) -> bool {
        {
            // 1. Commands: block only when there is nothing to do.
            if self.jobs.is_empty() && self.waiting.is_empty() {
                match rx.recv() {
                    Ok(c) => self.command(c),
                    Err(_) => return false,
                }
            }
            loop {
                match rx.try_recv() {
                    Ok(c) => self.command(c),
                    Err(crossbeam_channel::TryRecvError::Empty) => break,
                    Err(crossbeam_channel::TryRecvError::Disconnected) => {
                        if self.jobs.is_empty() && self.waiting.is_empty() {
                            return false;
                        }
                        break;
                    }
                }
            }
            // 2. Admit waiting work.
            self.admit();
            // 3. Sample where logits are ready; finish jobs.
            self.advance();
            self.finish_jobs();
            // 4-5. One batch, one decode.
            if self.decode_batch() {
                self.stalled_since = None;
            } else {
                self.expire_waiting();
                if self.jobs.is_empty() && !self.waiting.is_empty() {
                    // Nothing runs: wait for a release, briefly.
                    if let Ok(c) = rx.recv_timeout(Duration::from_millis(20)) {
                        self.command(c);
                    }
                }
            }
        }
        true
    }
}
