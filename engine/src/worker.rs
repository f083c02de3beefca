//! The worker thread: owns the backend, keeps every sequence's bookkeeping, and turns
//! the pending work of all callers into one batch per decode step.
//!
//! Loop: take commands → admit waiting work that now fits → sample every generating
//! branch whose logits are ready → gather the tokens still to be fed (one per generating
//! branch, chunks of prompts/appended text) into one batch → decode → store logits.

use crate::backend::{Backend, BatchToken, SeqId, Token};
use crate::error::{EngineError, Result};
use crate::sampling::{self, SamplingParams, Scratch};
use crate::stats::{Budget, Counters};
use crossbeam_channel::{Receiver, Sender};
use rand_chacha::ChaCha8Rng;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a generation ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// The model emitted an end-of-generation token.
    Eog,
    /// A stop string appeared (it is kept in the text).
    Stop(String),
    /// The request's `max_tokens` was reached.
    MaxTokens,
    /// The problem's token budget ran out.
    Budget,
    /// The problem's deadline passed.
    Deadline,
    /// The problem was cancelled.
    Cancelled,
}

impl Finish {
    /// True when the model itself ended (EOG or stop string), not a limit.
    pub fn is_natural(&self) -> bool {
        matches!(self, Finish::Eog | Finish::Stop(_))
    }
}

/// What to generate in one `extend`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GenSpec {
    pub sampling: SamplingParams,
    /// Most tokens to sample in this call (≥ 1).
    pub max_tokens: usize,
    /// Stop once the text generated in this call contains one of these.
    pub stop: Vec<String>,
    /// Treat end-of-generation like any token and keep sampling (benchmarks only:
    /// every branch then generates exactly `max_tokens`).
    #[serde(default)]
    pub ignore_eog: bool,
    /// Record, for each sampled token, the model's final-layer hidden state at the
    /// position that predicted it (needs a backend with hidden states).
    #[serde(default)]
    pub hidden: bool,
}

impl GenSpec {
    pub fn new(sampling: SamplingParams, max_tokens: usize) -> Self {
        Self {
            sampling,
            max_tokens,
            stop: Vec::new(),
            ignore_eog: false,
            hidden: false,
        }
    }
    pub fn with_stop(mut self, stop: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.stop = stop.into_iter().map(Into::into).collect();
        self
    }
    pub fn validate(&self) -> Result<()> {
        if self.max_tokens == 0 {
            return Err(crate::error::invalid("max_tokens", "0 (must be ≥ 1)"));
        }
        if self.stop.iter().any(|s| s.is_empty()) {
            return Err(crate::error::invalid("stop", "empty stop string"));
        }
        self.sampling.validate()
    }
}

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
    fn push(&mut self, tok: Token, lp: f32, certainty: f32, piece: &[u8]) {
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
    fn limit(&self) -> Option<Finish> {
        if let Some(c) = &self.budget.cancel {
            if c.load(Relaxed) {
                return Some(Finish::Cancelled);
            }
        }
        if let Some(d) = self.budget.deadline {
            if Instant::now() >= d {
                return Some(Finish::Deadline);
            }
        }
        if let Some(m) = self.budget.max_new_tokens {
            if self.counters.generated.load(Relaxed) >= m {
                return Some(Finish::Budget);
            }
        }
        None
    }
    fn remaining_tokens(&self) -> usize {
        match self.budget.max_new_tokens {
            Some(m) => m.saturating_sub(self.counters.generated.load(Relaxed)) as usize,
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

/// What the engine holds right now: KV cells and sequence ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Capacity {
    /// KV cells in all.
    pub n_ctx: usize,
    /// Cells holding tokens (a prefix shared by forks counts once).
    pub used: usize,
    /// Cells promised to running work (prompts, appends, generation up to its cap).
    pub reserved: usize,
    pub n_seq_max: usize,
    /// Sequence ids free now.
    pub free_seqs: usize,
}

impl Capacity {
    /// Cells neither used nor promised.
    pub fn free_cells(&self) -> usize {
        self.n_ctx.saturating_sub(self.used + self.reserved)
    }
}

/// Options of the worker's scheduler.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// How long work that does not fit may wait while nothing else runs before it fails.
    pub capacity_wait: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            capacity_wait: Duration::from_secs(5),
        }
    }
}

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
}

/// Reference-counted KV cells, mirroring llama.cpp's unified cache: a forked prefix is
/// stored once; a cell is free when no sequence refers to it.
#[derive(Default)]
struct Cells {
    refs: Vec<u32>,
    free: Vec<u32>,
    used: usize,
    reserved: usize,
}

impl Cells {
    fn alloc(&mut self) -> u32 {
        self.used += 1;
        if let Some(i) = self.free.pop() {
            self.refs[i as usize] = 1;
            i
        } else {
            self.refs.push(1);
            (self.refs.len() - 1) as u32
        }
    }
    fn share(&mut self, ids: &[u32]) {
        for &i in ids {
            self.refs[i as usize] += 1;
        }
    }
    fn drop_all(&mut self, ids: &[u32]) {
        for &i in ids {
            let r = &mut self.refs[i as usize];
            *r -= 1;
            if *r == 0 {
                self.used -= 1;
                self.free.push(i);
            }
        }
    }
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
    /// Start of this call's text in `out.bytes` (for stop strings).
    done: Option<Result<()>>,
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
    totals: Arc<Counters>,
}

impl Worker {
    pub fn new(backend: Box<dyn Backend>, opts: WorkerOptions, totals: Arc<Counters>) -> Self {
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
            totals,
        }
    }

    pub fn run(mut self, rx: Receiver<Cmd>) {
        loop {
            // 1. Commands: block only when there is nothing to do.
            if self.jobs.is_empty() && self.waiting.is_empty() {
                match rx.recv() {
                    Ok(c) => self.command(c),
                    Err(_) => return,
                }
            }
            loop {
                match rx.try_recv() {
                    Ok(c) => self.command(c),
                    Err(crossbeam_channel::TryRecvError::Empty) => break,
                    Err(crossbeam_channel::TryRecvError::Disconnected) => {
                        if self.jobs.is_empty() && self.waiting.is_empty() {
                            return;
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
            if !self.step() {
                self.expire_waiting();
                if self.jobs.is_empty() && !self.waiting.is_empty() {
                    // Nothing runs: wait for a release, briefly.
                    if let Ok(c) = rx.recv_timeout(Duration::from_millis(20)) {
                        self.command(c);
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------- commands

    fn command(&mut self, c: Cmd) {
        match c {
            Cmd::Prefill {
                sess,
                tokens,
                reply,
            } => {
                if tokens.is_empty() {
                    let _ = reply.send(Err(crate::error::invalid("prompt", "empty prompt")));
                } else if tokens.len() > self.n_ctx {
                    let _ = reply.send(Err(EngineError::PromptTooLong {
                        tokens: tokens.len(),
                        n_ctx: self.n_ctx as u32,
                    }));
                } else {
                    self.waiting.push_back((
                        Instant::now(),
                        Waiting::Prefill {
                            sess,
                            tokens,
                            reply,
                        },
                    ));
                }
            }
            Cmd::Fork {
                sess,
                src,
                count,
                len,
                reply,
            } => {
                let res = self.check_fork(&sess, src, count, len);
                match res {
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                    Ok(()) => self.waiting.push_back((
                        Instant::now(),
                        Waiting::Fork {
                            sess,
                            src,
                            count,
                            len,
                            reply,
                        },
                    )),
                }
            }
            Cmd::Extend {
                sess,
                spec,
                items,
                reply,
            } => {
                let gid = self.group(items.len(), reply);
                for (i, it) in items.into_iter().enumerate() {
                    let job = Job {
                        seq: it.seq,
                        kind: Kind::Gen {
                            spec: spec.clone(),
                            rng: Box::new(it.rng),
                            max_tokens: it.max_tokens.min(spec.max_tokens),
                        },
                        out: Chunk::default(),
                        reply: Reply::Group(gid, i),
                        reserve: 0,
                        claimed: false,
                        done: None,
                    };
                    self.enqueue(&sess, job);
                }
            }
            Cmd::Append {
                items,
                logprobs,
                reply,
            } => {
                let gid = self.group(items.len(), reply);
                for (i, it) in items.into_iter().enumerate() {
                    self.append(it, logprobs, Reply::Group(gid, i));
                }
            }
            Cmd::Truncate { seq, len, reply } => {
                let _ = reply.send(self.truncate(seq, len));
            }
            Cmd::Release { seq } => self.release(seq),
            Cmd::NextLogprobs { seq, tokens, reply } => {
                let r = self.seq_mut(seq).and_then(|s| match &s.logits {
                    Some(l) if !s.busy && s.kv == s.tokens.len() => {
                        Ok(sampling::token_logprobs(l, &tokens))
                    }
                    _ => Err(crate::error::invalid(
                        "next_logprobs",
                        "the branch's last token is not evaluated yet (append text first)",
                    )),
                });
                let _ = reply.send(r);
            }
            Cmd::Call(f) => f(self.backend.as_ref()),
            Cmd::Capacity(reply) => {
                let _ = reply.send(Capacity {
                    n_ctx: self.n_ctx,
                    used: self.cells.used,
                    reserved: self.cells.reserved,
                    n_seq_max: self.seqs.len(),
                    free_seqs: self.free_ids.len(),
                });
            }
        }
    }

    /// A reply group for `n` jobs (answered at once if `n` is 0).
    fn group(&mut self, n: usize, reply: Sender<Vec<Result<Chunk>>>) -> u64 {
        let gid = self.next_group;
        self.next_group += 1;
        self.groups.insert(
            gid,
            Group {
                results: (0..n).map(|_| None).collect(),
                remaining: n,
                reply,
            },
        );
        self.complete_group_if_done(gid);
        gid
    }

    /// Queue tokens to be fed to a sequence (with none, only its pending tokens are fed).
    fn append(&mut self, it: AppendItem, logprobs: bool, reply: Reply) {
        let AppendItem { sess, seq, tokens } = it;
        let mut out = Chunk::default();
        for &t in &tokens {
            out.push(t, f32::NAN, f32::NAN, &self.backend.piece(t));
        }
        let from = match self.seq_mut(seq) {
            Ok(s) if s.busy => Err(crate::error::invalid("branch", "busy")),
            Ok(s) => {
                let from = s.tokens.len();
                s.tokens.extend_from_slice(&tokens);
                Ok(from)
            }
            Err(e) => Err(e),
        };
        let job = Job {
            seq,
            kind: Kind::Feed {
                logprob_from: logprobs.then(|| *from.as_ref().unwrap_or(&0)),
                prompt: false,
            },
            out,
            reply,
            reserve: 0,
            claimed: false,
            done: from.err().map(Err),
        };
        if job.done.is_some() {
            self.reply(job);
        } else {
            self.enqueue(&sess, job);
        }
    }

    fn seq_mut(&mut self, id: SeqId) -> Result<&mut Seq> {
        self.seqs
            .get_mut(id as usize)
            .and_then(|s| s.as_mut())
            .ok_or(EngineError::UnknownSequence(id))
    }

    fn check_fork(&mut self, sess: &Sess, src: SeqId, count: usize, len: usize) -> Result<()> {
        let max = self.seqs.len();
        let s = self.seq_mut(src)?;
        if s.busy {
            return Err(crate::error::invalid("fork", "the branch is generating"));
        }
        if len == 0 || len > s.tokens.len() {
            return Err(crate::error::invalid(
                "fork length",
                format!("{len} (branch has {} tokens)", s.tokens.len()),
            ));
        }
        let held = self
            .seqs
            .iter()
            .flatten()
            .filter(|q| Arc::ptr_eq(&q.sess, sess))
            .count();
        if held + count > max {
            return Err(EngineError::TooManySequences {
                wanted: count,
                available: max - held,
                max,
            });
        }
        Ok(())
    }

    /// Validate a job, then queue it for admission.
    fn enqueue(&mut self, sess: &Sess, mut job: Job) {
        let check = match self.seq_mut(job.seq) {
            Err(e) => Err(e),
            Ok(s) if s.busy => Err(crate::error::invalid("branch", "already generating")),
            Ok(s) => {
                s.busy = true;
                job.claimed = true;
                let pending = s.tokens.len() - s.kv;
                let need = match &job.kind {
                    Kind::Feed { .. } => pending,
                    Kind::Gen { max_tokens, .. } => {
                        pending + (*max_tokens).min(sess.remaining_tokens())
                    }
                };
                Ok(need)
            }
        };
        match check {
            Err(e) => {
                job.done = Some(Err(e));
                self.reply(job);
            }
            Ok(need) => {
                job.reserve = need;
                self.waiting
                    .push_back((Instant::now(), Waiting::Job(Box::new(job))));
            }
        }
    }

    fn truncate(&mut self, seq: SeqId, len: usize) -> Result<()> {
        let s = self.seq_mut(seq)?;
        if s.busy {
            return Err(crate::error::invalid(
                "truncate",
                "the branch is generating",
            ));
        }
        if len == 0 || len > s.tokens.len() {
            return Err(crate::error::invalid("truncate length", format!("{len}")));
        }
        if len == s.tokens.len() {
            return Ok(());
        }
        s.tokens.truncate(len);
        s.logits = None;
        // Keep the last token unfed so its logits are recomputed on the next call.
        let keep = s.kv.min(len - 1);
        if keep < s.kv {
            let dropped: Vec<u32> = s.cells.split_off(keep);
            s.kv = keep;
            self.backend.truncate_seq(seq, keep as u32)?;
            self.cells.drop_all(&dropped);
        }
        Ok(())
    }

    fn release(&mut self, seq: SeqId) {
        let Some(slot) = self.seqs.get_mut(seq as usize) else {
            return;
        };
        let Some(s) = slot.as_mut() else { return };
        if s.busy {
            s.release_when_idle = true;
            return;
        }
        let s = slot.take().expect("checked");
        self.cells.drop_all(&s.cells);
        if let Err(e) = self.backend.truncate_seq(seq, 0) {
            tracing::warn!("release of sequence {seq} failed: {e}");
        }
        self.free_ids.push(seq);
    }

    // ---------------------------------------------------------------- admission

    fn admit(&mut self) {
        let mut still = VecDeque::new();
        while let Some((t, w)) = self.waiting.pop_front() {
            match self.try_admit(w) {
                None => {}
                Some(w) => still.push_back((t, w)),
            }
        }
        self.waiting = still;
    }

    fn fits(&self, need: usize) -> bool {
        self.cells.used + self.cells.reserved + need <= self.n_ctx
    }

    /// Start the work if it fits now; give it back otherwise.
    fn try_admit(&mut self, w: Waiting) -> Option<Waiting> {
        match w {
            Waiting::Prefill {
                sess,
                tokens,
                reply,
            } => {
                if self.free_ids.is_empty() || !self.fits(tokens.len()) {
                    return Some(Waiting::Prefill {
                        sess,
                        tokens,
                        reply,
                    });
                }
                let id = self.free_ids.pop().expect("checked");
                self.seqs[id as usize] = Some(Seq {
                    sess: sess.clone(),
                    tokens,
                    kv: 0,
                    cells: Vec::new(),
                    logits: None,
                    hidden: None,
                    busy: false,
                    release_when_idle: false,
                });
                let s = self.seqs[id as usize].as_mut().expect("created");
                s.busy = true;
                let job = Job {
                    seq: id,
                    kind: Kind::Feed {
                        logprob_from: None,
                        prompt: true,
                    },
                    out: Chunk::default(),
                    reply: Reply::Prefill(reply),
                    reserve: s.tokens.len(),
                    claimed: true,
                    done: None,
                };
                self.cells.reserved += job.reserve;
                self.jobs.push(job);
                None
            }
            Waiting::Fork {
                sess,
                src,
                count,
                len,
                reply,
            } => {
                if self.free_ids.len() < count {
                    return Some(Waiting::Fork {
                        sess,
                        src,
                        count,
                        len,
                        reply,
                    });
                }
                let _ = reply.send(self.fork(&sess, src, count, len));
                None
            }
            Waiting::Job(mut job) => {
                if !self.fits(job.reserve) {
                    // Never fits if the session's own branches already hold too much.
                    let sess = self.seqs[job.seq as usize]
                        .as_ref()
                        .expect("validated")
                        .sess
                        .clone();
                    let held = self.held_cells(&sess);
                    if held + job.reserve > self.n_ctx {
                        job.done = Some(Err(EngineError::KvCapacity {
                            needed: job.reserve,
                            available: self.n_ctx - held,
                            n_ctx: self.n_ctx as u32,
                        }));
                        job.reserve = 0;
                        self.reply(*job);
                        return None;
                    }
                    return Some(Waiting::Job(job));
                }
                self.cells.reserved += job.reserve;
                // Logprob of the first appended token from logits already at hand.
                if let Kind::Feed {
                    logprob_from: Some(from),
                    ..
                } = job.kind
                {
                    let s = self.seqs[job.seq as usize].as_ref().expect("validated");
                    if s.kv == from {
                        if let Some(l) = &s.logits {
                            job.out.logprobs[0] = sampling::token_logprob(l, s.tokens[from]);
                        }
                    }
                }
                self.jobs.push(*job);
                None
            }
        }
    }

    fn fork(&mut self, sess: &Sess, src: SeqId, count: usize, len: usize) -> Result<Vec<SeqId>> {
        let (tokens, kv, logits, hidden, cells) = {
            let s = self.seqs[src as usize]
                .as_ref()
                .ok_or(EngineError::UnknownSequence(src))?;
            let mut kv = s.kv.min(len);
            let logits = if len == s.tokens.len() && s.kv == len {
                s.logits.clone()
            } else {
                None
            };
            if kv == len && logits.is_none() {
                kv = len - 1;
            }
            let hidden = logits.as_ref().and(s.hidden.clone());
            (
                s.tokens[..len].to_vec(),
                kv,
                logits,
                hidden,
                s.cells[..kv].to_vec(),
            )
        };
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let id = self.free_ids.pop().expect("admission checked");
            if let Err(e) = self.backend.copy_seq(src, id, kv as u32) {
                self.free_ids.push(id);
                for &o in &out {
                    self.release(o);
                }
                return Err(e);
            }
            self.cells.share(&cells);
            self.seqs[id as usize] = Some(Seq {
                sess: sess.clone(),
                tokens: tokens.clone(),
                kv,
                cells: cells.clone(),
                logits: logits.clone(),
                hidden: hidden.clone(),
                busy: false,
                release_when_idle: false,
            });
            out.push(id);
        }
        sess.counters.forks.fetch_add(count as u64, Relaxed);
        self.totals.forks.fetch_add(count as u64, Relaxed);
        Ok(out)
    }

    /// Fail work that has waited too long while nothing else ran (it can never fit).
    fn expire_waiting(&mut self) {
        if !self.jobs.is_empty() {
            return;
        }
        let now = Instant::now();
        let wait = self.opts.capacity_wait;
        let mut keep = VecDeque::new();
        while let Some((t, w)) = self.waiting.pop_front() {
            if now.duration_since(t) < wait {
                keep.push_back((t, w));
                continue;
            }
            let max = self.seqs.len();
            let avail_ids = self.free_ids.len();
            let free_cells = self.n_ctx - self.cells.used - self.cells.reserved;
            match w {
                Waiting::Prefill { tokens, reply, .. } => {
                    let e = if avail_ids == 0 {
                        EngineError::TooManySequences {
                            wanted: 1,
                            available: 0,
                            max,
                        }
                    } else {
                        EngineError::KvCapacity {
                            needed: tokens.len(),
                            available: free_cells,
                            n_ctx: self.n_ctx as u32,
                        }
                    };
                    let _ = reply.send(Err(e));
                }
                Waiting::Fork { count, reply, .. } => {
                    let _ = reply.send(Err(EngineError::TooManySequences {
                        wanted: count,
                        available: avail_ids,
                        max,
                    }));
                }
                Waiting::Job(mut job) => {
                    job.done = Some(Err(EngineError::KvCapacity {
                        needed: job.reserve,
                        available: free_cells,
                        n_ctx: self.n_ctx as u32,
                    }));
                    job.reserve = 0; // never admitted: nothing reserved
                    self.reply(*job);
                }
            }
        }
        self.waiting = keep;
    }

    // ---------------------------------------------------------------- sampling

    /// Sample every generating branch whose logits are ready, until each needs a decode.
    fn advance(&mut self) {
        for job in self.jobs.iter_mut().filter(|j| j.done.is_none()) {
            let s = self.seqs[job.seq as usize]
                .as_mut()
                .expect("job's sequence");
            match &mut job.kind {
                Kind::Feed { .. } => {
                    if s.kv == s.tokens.len() {
                        job.done = Some(Ok(()));
                    }
                }
                Kind::Gen {
                    spec,
                    rng,
                    max_tokens,
                } => {
                    if s.kv < s.tokens.len() {
                        continue; // pending tokens to feed first
                    }
                    let Some(logits) = s.logits.take() else {
                        // Nothing fed yet and no logits: feed the last token again.
                        s.kv -= 1;
                        let c = s.cells.pop().expect("kv > 0");
                        self.cells.drop_all(&[c]);
                        if let Err(e) = self.backend.truncate_seq(job.seq, s.kv as u32) {
                            job.done = Some(Err(e));
                        }
                        continue;
                    };
                    if job.out.tokens.len() >= *max_tokens {
                        s.logits = Some(logits);
                        job.out.finish = Some(Finish::MaxTokens);
                        job.done = Some(Ok(()));
                        continue;
                    }
                    if let Some(f) = s.sess.limit() {
                        s.logits = Some(logits);
                        job.out.finish = Some(f);
                        job.done = Some(Ok(()));
                        continue;
                    }
                    let sampling::Sampled {
                        token: tok,
                        logprob: lp,
                        certainty,
                    } = sampling::sample(&spec.sampling, &logits, rng, &mut self.scratch);
                    s.logits = Some(logits); // buffer reused; stale once a token is pushed
                    if spec.hidden {
                        job.out.hidden.push(s.hidden.clone().unwrap_or_default());
                    }
                    s.sess.counters.generated.fetch_add(1, Relaxed);
                    self.totals.generated.fetch_add(1, Relaxed);
                    s.tokens.push(tok);
                    let eog = !spec.ignore_eog && self.backend.is_eog(tok);
                    let piece = if eog {
                        Vec::new()
                    } else {
                        self.backend.piece(tok)
                    };
                    let before = job.out.bytes.len();
                    job.out.push(tok, lp, certainty, &piece);
                    if eog {
                        job.out.finish = Some(Finish::Eog);
                    } else if let Some(stop) = find_stop(&spec.stop, &job.out.bytes, before) {
                        job.out.finish = Some(Finish::Stop(stop));
                    } else if job.out.tokens.len() >= *max_tokens {
                        job.out.finish = Some(Finish::MaxTokens);
                    }
                    if job.out.finish.is_some() {
                        job.done = Some(Ok(()));
                    }
                }
            }
        }
    }

    fn finish_jobs(&mut self) {
        if !self.jobs.iter().any(|j| j.done.is_some()) {
            return; // the common step: nothing finished, nothing to move
        }
        // Order-preserving split, so batch composition keeps admission order.
        let (done, keep): (Vec<Job>, Vec<Job>) = std::mem::take(&mut self.jobs)
            .into_iter()
            .partition(|j| j.done.is_some());
        self.jobs = keep;
        for mut job in done {
            self.cells.reserved -= job.reserve;
            job.reserve = 0;
            self.reply(job);
        }
    }

    fn reply(&mut self, mut job: Job) {
        let seq = job.seq;
        if let Some(Some(s)) = self.seqs.get_mut(seq as usize).filter(|_| job.claimed) {
            s.busy = false;
            // A stale logits buffer must not be used: only valid with nothing pending.
            if s.kv != s.tokens.len() {
                s.logits = None;
            }
        }
        let res = job.done.take().unwrap_or(Ok(()));
        if let Kind::Gen { rng, .. } = job.kind {
            job.out.rng = Some(*rng);
        }
        match job.reply {
            Reply::Prefill(tx) => {
                let ok = res.is_ok();
                let _ = tx.send(res.map(|_| seq));
                if !ok {
                    self.release(seq);
                }
            }
            Reply::Group(g, i) => {
                if let Some(group) = self.groups.get_mut(&g) {
                    group.results[i] = Some(res.map(|_| job.out));
                    group.remaining -= 1;
                }
                self.complete_group_if_done(g);
            }
        }
        if let Some(Some(s)) = self.seqs.get(seq as usize) {
            if s.release_when_idle && !s.busy {
                self.release(seq);
            }
        }
    }

    fn complete_group_if_done(&mut self, g: u64) {
        if self.groups.get(&g).is_some_and(|gr| gr.remaining == 0) {
            let gr = self.groups.remove(&g).expect("present");
            let _ = gr
                .reply
                .send(gr.results.into_iter().map(|r| r.expect("filled")).collect());
        }
    }

    // ---------------------------------------------------------------- decoding

    /// Build one batch from every job's pending tokens and decode it. False if idle.
    fn step(&mut self) -> bool {
        self.batch.clear();
        // (job index, token index) of each batch entry.
        let mut owners: Vec<(usize, usize)> = Vec::new();
        let mut room = self.n_batch;
        // Generating branches first (one token each), then prompt/append chunks.
        for pass in 0..2 {
            for (ji, job) in self.jobs.iter().enumerate() {
                if job.done.is_some() || room == 0 {
                    continue;
                }
                let is_gen = matches!(job.kind, Kind::Gen { .. });
                if (pass == 0) != is_gen {
                    continue;
                }
                let s = self.seqs[job.seq as usize]
                    .as_ref()
                    .expect("job's sequence");
                let end = s.tokens.len().min(s.kv + room);
                for p in s.kv..end {
                    let want = p + 1 == s.tokens.len()
                        || matches!(job.kind, Kind::Feed { logprob_from: Some(f), .. } if p + 1 >= f);
                    self.batch.push(BatchToken {
                        seq: job.seq,
                        pos: p as u32,
                        token: s.tokens[p],
                        logits: want,
                    });
                    owners.push((ji, p));
                }
                room -= end - s.kv;
            }
        }
        if self.batch.is_empty() {
            return false;
        }
        let Self {
            backend,
            batch,
            jobs,
            seqs,
            ..
        } = self;
        let res = backend.decode(batch, &mut |i, row, hidden| {
            let (ji, p) = owners[i];
            let job = &mut jobs[ji];
            let s = seqs[job.seq as usize].as_mut().expect("job's sequence");
            if p + 1 == s.tokens.len() {
                match &mut s.logits {
                    Some(buf) => {
                        buf.clear();
                        buf.extend_from_slice(row);
                    }
                    None => s.logits = Some(row.to_vec()),
                }
                match (hidden, &mut s.hidden) {
                    (Some(h), Some(buf)) => {
                        buf.clear();
                        buf.extend_from_slice(h);
                    }
                    (h, slot) => *slot = h.map(<[f32]>::to_vec),
                }
            }
            if let Kind::Feed {
                logprob_from: Some(f),
                ..
            } = job.kind
            {
                if p + 1 >= f && p + 1 < s.tokens.len() {
                    job.out.logprobs[p + 1 - f] = sampling::token_logprob(row, s.tokens[p + 1]);
                }
            }
        });
        if let Err(e) = res {
            let msg = e.to_string();
            for &(ji, _) in &owners {
                if self.jobs[ji].done.is_none() {
                    self.jobs[ji].done = Some(Err(EngineError::Decode(msg.clone())));
                }
            }
            self.finish_jobs();
            return true;
        }
        // Bookkeeping: positions fed, cells used, stats.
        let mut sessions: Vec<(Sess, u64)> = Vec::new();
        let mut n_seqs = 0u64;
        let mut last_seq = -1;
        for &(ji, _) in &owners {
            let job = &mut self.jobs[ji];
            let s = self.seqs[job.seq as usize]
                .as_mut()
                .expect("job's sequence");
            s.kv += 1;
            s.cells.push(self.cells.alloc());
            if job.reserve > 0 {
                job.reserve -= 1;
                self.cells.reserved -= 1;
            }
            let sess = &s.sess;
            sess.counters.decoded.fetch_add(1, Relaxed);
            if let Kind::Feed { prompt: true, .. } = job.kind {
                sess.counters.prompt.fetch_add(1, Relaxed);
                self.totals.prompt.fetch_add(1, Relaxed);
            }
            if job.seq != last_seq {
                last_seq = job.seq;
                n_seqs += 1;
                match sessions.iter_mut().find(|(x, _)| Arc::ptr_eq(x, sess)) {
                    Some(e) => e.1 += 1,
                    None => sessions.push((sess.clone(), 1)),
                }
            }
        }
        let n = owners.len() as u64;
        self.totals.decoded.fetch_add(n, Relaxed);
        self.totals.calls.fetch_add(1, Relaxed);
        self.totals.occupancy.fetch_add(n_seqs, Relaxed);
        for (sess, _) in sessions {
            sess.counters.calls.fetch_add(1, Relaxed);
            sess.counters.occupancy.fetch_add(n_seqs, Relaxed);
        }
        true
    }

    /// KV cells the session's sequences hold (shared prefixes counted once).
    fn held_cells(&self, sess: &Sess) -> usize {
        let cells: HashSet<u32> = self
            .seqs
            .iter()
            .flatten()
            .filter(|s| Arc::ptr_eq(&s.sess, sess))
            .flat_map(|s| s.cells.iter().copied())
            .collect();
        cells.len()
    }
}

/// The first stop string found in `bytes`, looking only where new bytes (from `new_from`) could complete one.
fn find_stop(stops: &[String], bytes: &[u8], new_from: usize) -> Option<String> {
    stops.iter().find_map(|s| {
        let s_b = s.as_bytes();
        let start = new_from.saturating_sub(s_b.len().saturating_sub(1));
        bytes[start..]
            .windows(s_b.len())
            .any(|w| w == s_b)
            .then(|| s.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_strings_span_pieces() {
        let stops = vec!["\n\n".to_string()];
        // "a\n" then "\nb": the stop spans the two pieces.
        assert_eq!(find_stop(&stops, b"a\n", 0), None);
        assert_eq!(find_stop(&stops, b"a\n\nb", 2), Some("\n\n".into()));
        // A stop entirely before the new bytes was already seen.
        assert_eq!(find_stop(&stops, b"\n\nxyz", 4), None);
    }

    #[test]
    fn cells_are_shared_and_freed() {
        let mut c = Cells::default();
        let a: Vec<u32> = (0..3).map(|_| c.alloc()).collect();
        c.share(&a[..2]);
        assert_eq!(c.used, 3);
        c.drop_all(&a);
        assert_eq!(c.used, 2);
        c.drop_all(&a[..2]);
        assert_eq!(c.used, 0);
    }
}
