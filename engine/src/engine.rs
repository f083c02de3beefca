//! The handles users hold: [`Engine`] (the worker), [`Session`] (one problem's budget,
//! seeds and stats) and [`Branch`] (one KV sequence and its text).

use crate::backend::{Backend, BackendInfo, ChatMessage, PromptFormat, SeqId, Token};
use crate::capacity::{Capacity, WorkerOptions};
use crate::error::{EngineError, Result};
use crate::generation::{Finish, GenSpec};
use crate::sampling::derive_seed;
use crate::stats::{Budget, Counters, Stats};
use crate::worker::protocol::{AppendItem, Chunk, Cmd, ExtendItem, SessionShared};
use crate::worker::Worker;
use crossbeam_channel::{bounded, unbounded, Sender};
use parking_lot::Mutex;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

struct Inner {
    tx: Option<Sender<Cmd>>,
    info: BackendInfo,
    totals: Arc<Counters>,
    started: Instant,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.tx.take(); // disconnect: the worker drains and exits
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

/// A cheap, cloneable handle to the worker thread that owns one model context.
///
/// Every clone, and every thread using one, feeds the same worker: the pending work of
/// all branches of all problems is decoded together, one batch per step.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("info", &self.inner.info)
            .finish()
    }
}

impl Engine {
    /// Start a worker thread that builds its backend with `make` (on that thread) and serves
    /// it. A backend whose sizes fail [`BackendInfo::validate`] (e.g. `n_batch` 0) is
    /// refused with that error.
    pub fn spawn<F>(make: F, opts: WorkerOptions) -> Result<Engine>
    where
        F: FnOnce() -> Result<Box<dyn Backend>> + Send + 'static,
    {
        let (tx, rx) = unbounded::<Cmd>();
        let (init_tx, init_rx) = bounded::<Result<BackendInfo>>(1);
        let totals = Arc::new(Counters::default());
        let worker_totals = totals.clone();
        let thread = std::thread::Builder::new()
            .name("ponder-engine".into())
            .spawn(move || match make() {
                Err(e) => {
                    let _ = init_tx.send(Err(e));
                }
                Ok(backend) => {
                    let info = backend.info().clone();
                    if let Err(e) = info.validate() {
                        let _ = init_tx.send(Err(e));
                        return;
                    }
                    let _ = init_tx.send(Ok(info));
                    Worker::new(backend, opts, worker_totals).run(rx);
                }
            })
            .map_err(|e| EngineError::context_from("cannot start the worker thread", e))?;
        let info = init_rx.recv().map_err(|_| EngineError::Stopped)??;
        Ok(Engine {
            inner: Arc::new(Inner {
                tx: Some(tx),
                info,
                totals,
                started: Instant::now(),
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// An engine over an already-built backend.
    pub fn new(backend: Box<dyn Backend>) -> Result<Engine> {
        Self::spawn(move || Ok(backend), WorkerOptions::default())
    }

    /// Facts about the backend (context size, sequences, vocabulary).
    pub fn info(&self) -> &BackendInfo {
        &self.inner.info
    }

    /// Everything this engine has done since it started.
    pub fn stats(&self) -> Stats {
        self.inner.totals.snapshot(self.inner.started)
    }

    pub(crate) fn send(&self, c: Cmd) -> Result<()> {
        self.inner
            .tx
            .as_ref()
            .ok_or(EngineError::Stopped)?
            .send(c)
            .map_err(|_| EngineError::Stopped)
    }

    /// Run a read-only query against the backend on the worker thread.
    pub fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Backend) -> T + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = bounded(1);
        self.send(Cmd::Call(Box::new(move |b| {
            let _ = tx.send(f(b));
        })))?;
        rx.recv().map_err(|_| EngineError::Stopped)
    }

    /// KV cells and sequence ids in use and free, as the worker accounts them now.
    pub fn capacity(&self) -> Result<Capacity> {
        let (tx, rx) = bounded(1);
        self.send(Cmd::Capacity(tx))?;
        rx.recv().map_err(|_| EngineError::Stopped)
    }

    /// Tokenize text (`special`: parse control tokens; `bos`: prepend BOS if the model wants it).
    pub fn tokenize(&self, text: &str, special: bool, bos: bool) -> Result<Vec<Token>> {
        let text = text.to_owned();
        self.query(move |b| b.tokenize(&text, special, bos))?
    }

    /// The text of some tokens (invalid UTF-8 replaced); an id outside the vocabulary is
    /// refused with [`EngineError::InvalidToken`].
    pub fn detokenize(&self, tokens: &[Token]) -> Result<String> {
        self.check_tokens(tokens)?;
        let tokens = tokens.to_vec();
        self.query(move |b| {
            let bytes: Vec<u8> = tokens.iter().flat_map(|&t| b.piece(t)).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        })
    }

    /// Render chat messages into a prompt with the chosen template.
    pub fn format_prompt(&self, format: &PromptFormat, messages: &[ChatMessage]) -> Result<String> {
        let (format, messages) = (format.clone(), messages.to_vec());
        self.query(move |b| b.apply_template(&format, &messages))?
    }

    /// Append tokens to many branches at once (one batch for all, like [`Session::extend`]);
    /// with `logprobs`, each new token's log-probability is returned per branch.
    /// The branches may belong to different sessions of this engine. An id outside the
    /// vocabulary is refused with [`EngineError::InvalidToken`] before anything is fed.
    pub fn append_all<'a>(
        &self,
        items: impl IntoIterator<Item = (&'a mut Branch, Vec<Token>)>,
        logprobs: bool,
    ) -> Result<Vec<Vec<f32>>> {
        let mut items: Vec<(&mut Branch, Vec<Token>)> = items.into_iter().collect();
        if items.is_empty() {
            return Ok(Vec::new());
        }
        self.check_own(items.iter().map(|(b, _)| &**b))?;
        for (_, t) in &items {
            self.check_tokens(t)?;
        }
        let (tx, rx) = bounded(1);
        self.send(Cmd::Append {
            items: items
                .iter_mut()
                .map(|(b, t)| AppendItem {
                    sess: b.session.shared.clone(),
                    seq: b.seq,
                    tokens: std::mem::take(t),
                })
                .collect(),
            logprobs,
            reply: tx,
        })?;
        let results = rx.recv().map_err(|_| EngineError::Stopped)?;
        let mut out = Vec::with_capacity(items.len());
        let mut first_err = None;
        for ((b, _), r) in items.iter_mut().zip(results) {
            match r {
                Ok(chunk) => {
                    out.push(chunk.logprobs.clone());
                    let appended = !chunk.tokens.is_empty();
                    b.absorb(chunk);
                    if appended {
                        b.finish = None;
                    }
                }
                Err(e) => {
                    out.push(Vec::new());
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(out), Err)
    }

    /// Feed each branch's last sampled token (which `extend` leaves unevaluated), all in
    /// one batch. Forks of a settled branch share that token's KV cell and logits instead
    /// of each evaluating it again: settle before forking at a step boundary.
    pub fn settle<'a>(&self, branches: impl IntoIterator<Item = &'a mut Branch>) -> Result<()> {
        self.append_all(branches.into_iter().map(|b| (b, Vec::new())), false)
            .map(|_| ())
    }

    /// Refuse token ids outside the vocabulary before they reach the backend, whose
    /// token lookups (llama.cpp's) throw across the FFI boundary and abort the process.
    fn check_tokens(&self, tokens: &[Token]) -> Result<()> {
        let n_vocab = self.inner.info.n_vocab;
        match tokens
            .iter()
            .find(|&&t| u32::try_from(t).map_or(true, |t| t >= n_vocab))
        {
            Some(&token) => Err(EngineError::InvalidToken { token, n_vocab }),
            None => Ok(()),
        }
    }

    fn check_own<'a>(&self, branches: impl IntoIterator<Item = &'a Branch>) -> Result<()> {
        for b in branches {
            if !Arc::ptr_eq(&b.session.engine.inner, &self.inner) {
                return Err(crate::error::invalid(
                    "branch",
                    format!("branch {} belongs to another engine", b.id),
                ));
            }
        }
        Ok(())
    }

    /// A new session (one problem): its seed, problem id and budget.
    pub fn session(&self, seed: u64, problem: u64, budget: Budget) -> Session {
        Session {
            engine: self.clone(),
            shared: Arc::new(SessionShared {
                seed,
                problem,
                budget,
                counters: Counters::default(),
                started: Instant::now(),
                next_branch: AtomicU64::new(0),
            }),
        }
    }
}

/// One problem's view of the engine: its budget, seeds and stats.
#[derive(Clone)]
pub struct Session {
    engine: Engine,
    shared: Arc<SessionShared>,
}

impl Session {
    /// The engine this session's branches live on.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// What this problem has cost so far.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot(self.shared.started)
    }

    /// The seed and problem id branches derive their RNG from.
    pub fn seed(&self) -> (u64, u64) {
        (self.shared.seed, self.shared.problem)
    }

    /// Tokenize a templated prompt (control tokens parsed, BOS as the model wants) and prefill it.
    pub fn prefill(&self, prompt: &str) -> Result<Branch> {
        let bos = self.engine.info().add_bos;
        let tokens = self.engine.tokenize(prompt, true, bos)?;
        self.prefill_tokens(tokens)
    }

    /// Evaluate prompt tokens once into a new sequence; fork it to branch out. An id
    /// outside the vocabulary is refused with [`EngineError::InvalidToken`].
    pub fn prefill_tokens(&self, tokens: Vec<Token>) -> Result<Branch> {
        self.engine.check_tokens(&tokens)?;
        let n = tokens.len();
        let (tx, rx) = bounded(1);
        self.engine.send(Cmd::Prefill {
            sess: self.shared.clone(),
            tokens,
            reply: tx,
        })?;
        let seq = rx.recv().map_err(|_| EngineError::Stopped)??;
        Ok(self.branch(seq, n))
    }

    fn branch(&self, seq: SeqId, prompt_len: usize) -> Branch {
        let id = self.shared.next_branch.fetch_add(1, Relaxed);
        Branch {
            session: self.clone(),
            seq,
            id,
            rng: ChaCha8Rng::seed_from_u64(derive_seed(self.shared.seed, self.shared.problem, id)),
            prompt_len,
            tokens: Vec::new(),
            logprobs: Vec::new(),
            certainty: Vec::new(),
            hidden: Vec::new(),
            piece_lens: Vec::new(),
            bytes: Vec::new(),
            finish: None,
        }
    }

    /// Generate on every branch at once; the engine batches them (and any other work).
    pub fn extend<'a>(
        &self,
        branches: impl IntoIterator<Item = &'a mut Branch>,
        spec: &GenSpec,
    ) -> Result<()> {
        self.extend_capped(branches.into_iter().map(|b| (b, usize::MAX)), spec)
    }

    /// [`Session::extend`] with a cap per branch on top of `spec.max_tokens` (e.g. what
    /// is left of each branch's own token allowance). A cap of 0 ends that branch at
    /// once with [`Finish::MaxTokens`]. Every branch must belong to this session's
    /// engine (a branch of another engine is refused before anything runs).
    pub fn extend_capped<'a>(
        &self,
        items: impl IntoIterator<Item = (&'a mut Branch, usize)>,
        spec: &GenSpec,
    ) -> Result<()> {
        spec.validate()?;
        if spec.hidden && self.engine.info().n_embd == 0 {
            return Err(crate::error::invalid(
                "hidden states",
                format!(
                    "requested, but {} was loaded without them (LlamaConfig::hidden_states)",
                    self.engine.info().name
                ),
            ));
        }
        let items: Vec<(&mut Branch, usize)> = items.into_iter().collect();
        self.engine.check_own(items.iter().map(|(b, _)| &**b))?;
        let mut bs: Vec<(&mut Branch, usize)> = Vec::new();
        for (b, cap) in items {
            if cap == 0 {
                b.finish = Some(Finish::MaxTokens);
            } else {
                bs.push((b, cap));
            }
        }
        if bs.is_empty() {
            return Ok(());
        }
        let items = bs
            .iter()
            .map(|(b, cap)| ExtendItem {
                seq: b.seq,
                rng: b.rng.clone(),
                max_tokens: *cap,
            })
            .collect();
        let (tx, rx) = bounded(1);
        self.engine.send(Cmd::Extend {
            sess: self.shared.clone(),
            spec: Arc::new(spec.clone()),
            items,
            reply: tx,
        })?;
        let results = rx.recv().map_err(|_| EngineError::Stopped)?;
        let mut first_err = None;
        for ((b, _), r) in bs.iter_mut().zip(results) {
            match r {
                Ok(chunk) => b.absorb(chunk),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// One branch: a KV sequence forked from a prompt, with its completion's tokens, text and
/// per-token log-probabilities. Dropping it frees its sequence.
pub struct Branch {
    session: Session,
    seq: SeqId,
    id: u64,
    rng: ChaCha8Rng,
    prompt_len: usize,
    tokens: Vec<Token>,
    logprobs: Vec<f32>,
    certainty: Vec<f32>,
    hidden: Vec<Vec<f32>>,
    piece_lens: Vec<u32>,
    bytes: Vec<u8>,
    finish: Option<Finish>,
}

impl std::fmt::Debug for Branch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Branch")
            .field("id", &self.id)
            .field("seq", &self.seq)
            .field("tokens", &self.tokens.len())
            .field("finish", &self.finish)
            .finish()
    }
}

impl Branch {
    /// The branch id within its session (seeds derive from it).
    pub fn id(&self) -> u64 {
        self.id
    }
    /// The session this branch belongs to.
    pub fn session(&self) -> &Session {
        &self.session
    }
    /// Prompt length in tokens.
    pub fn prompt_len(&self) -> usize {
        self.prompt_len
    }
    /// Completion tokens (generated and appended) after the prompt.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }
    /// Byte length of each completion token's text (0 for end-of-generation tokens): the
    /// text of the first `k` tokens is the first `Σ piece_lens()[..k]` bytes of the text.
    pub fn piece_lens(&self) -> &[u32] {
        &self.piece_lens
    }
    /// Log-probability of each completion token under the model (NaN where not computed).
    pub fn logprobs(&self) -> &[f32] {
        &self.logprobs
    }
    /// The completion's text; bytes of an unfinished UTF-8 character at the end are held back.
    pub fn text(&self) -> String {
        decode(&self.bytes)
    }
    /// The text of the completion tokens after the first `completion_len` (e.g. the step
    /// just generated), decoded on its own: never a byte offset into [`Branch::text`].
    pub fn text_after(&self, completion_len: usize) -> String {
        let k = completion_len.min(self.piece_lens.len());
        let from: usize = self.piece_lens[..k].iter().map(|&l| l as usize).sum();
        decode(&self.bytes[from.min(self.bytes.len())..])
    }
    /// Self-certainty (KL from uniform, nats) of the model at each sampled completion
    /// token (NaN for appended tokens). See [`crate::sampling::Sampled::certainty`].
    pub fn certainty(&self) -> &[f32] {
        &self.certainty
    }
    /// Hidden states recorded by `extend` calls with [`GenSpec::hidden`], one per token
    /// they sampled, in order: the final-layer state at the position that predicted it.
    pub fn hidden(&self) -> &[Vec<f32>] {
        &self.hidden
    }
    /// How the last `extend` ended.
    pub fn finish(&self) -> Option<&Finish> {
        self.finish.as_ref()
    }

    /// Generate on this branch alone (see [`Session::extend`] to batch many).
    pub fn extend(&mut self, spec: &GenSpec) -> Result<&Finish> {
        let session = self.session.clone();
        session.extend(std::iter::once(&mut *self), spec)?;
        Ok(self.finish.as_ref().expect("extend sets finish"))
    }

    /// `n` children sharing this branch's whole KV sequence (no token is re-read).
    pub fn fork(&self, n: usize) -> Result<Vec<Branch>> {
        self.fork_at(n, self.tokens.len())
    }

    /// `n` children sharing the prompt and the first `completion_len` completion tokens.
    pub fn fork_at(&self, n: usize, completion_len: usize) -> Result<Vec<Branch>> {
        if completion_len > self.tokens.len() {
            return Err(crate::error::invalid(
                "fork length",
                format!("{completion_len} > {} completion tokens", self.tokens.len()),
            ));
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let (tx, rx) = bounded(1);
        self.session.engine.send(Cmd::Fork {
            sess: self.session.shared.clone(),
            src: self.seq,
            count: n,
            len: self.prompt_len + completion_len,
            reply: tx,
        })?;
        let seqs = rx.recv().map_err(|_| EngineError::Stopped)??;
        let bytes_len: usize = self.piece_lens[..completion_len]
            .iter()
            .map(|&l| l as usize)
            .sum();
        Ok(seqs
            .into_iter()
            .map(|seq| {
                let mut b = self.session.branch(seq, self.prompt_len);
                b.tokens = self.tokens[..completion_len].to_vec();
                b.logprobs = self.logprobs[..completion_len].to_vec();
                b.certainty = self.certainty[..completion_len].to_vec();
                b.hidden = self.hidden[..completion_len.min(self.hidden.len())].to_vec();
                b.piece_lens = self.piece_lens[..completion_len].to_vec();
                b.bytes = self.bytes[..bytes_len].to_vec();
                b.finish = if completion_len == self.tokens.len() {
                    self.finish.clone()
                } else {
                    None
                };
                b
            })
            .collect())
    }

    /// Feed text after the completion (no sampling); with `logprobs`, return each new
    /// token's log-probability given everything before it.
    pub fn append(&mut self, text: &str, logprobs: bool) -> Result<Vec<f32>> {
        let tokens = self.session.engine.tokenize(text, false, false)?;
        self.append_tokens(tokens, logprobs)
    }

    /// [`Branch::append`] for tokens (ids outside the vocabulary are refused with
    /// [`EngineError::InvalidToken`]).
    pub fn append_tokens(&mut self, tokens: Vec<Token>, logprobs: bool) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        let engine = self.session.engine.clone();
        let mut lps = engine.append_all(std::iter::once((self, tokens)), logprobs)?;
        Ok(lps.pop().unwrap_or_default())
    }

    /// Log-probabilities of candidate next tokens after everything the branch holds (e.g.
    /// a PRM's good/bad tokens after a step tag). Valid after [`Branch::append`] or a
    /// prefill; after `extend` the last sampled token is not evaluated yet.
    pub fn next_logprobs(&self, tokens: &[Token]) -> Result<Vec<f32>> {
        let (tx, rx) = bounded(1);
        self.session.engine.send(Cmd::NextLogprobs {
            seq: self.seq,
            tokens: tokens.to_vec(),
            reply: tx,
        })?;
        rx.recv().map_err(|_| EngineError::Stopped)?
    }

    /// Cut the completion back to `completion_len` tokens (KV cells beyond are freed).
    pub fn truncate(&mut self, completion_len: usize) -> Result<()> {
        if completion_len >= self.tokens.len() {
            return Ok(());
        }
        let (tx, rx) = bounded(1);
        self.session.engine.send(Cmd::Truncate {
            seq: self.seq,
            len: self.prompt_len + completion_len,
            reply: tx,
        })?;
        rx.recv().map_err(|_| EngineError::Stopped)??;
        let bytes_len: usize = self.piece_lens[..completion_len]
            .iter()
            .map(|&l| l as usize)
            .sum();
        self.tokens.truncate(completion_len);
        self.logprobs.truncate(completion_len);
        self.certainty.truncate(completion_len);
        self.hidden.truncate(completion_len);
        self.piece_lens.truncate(completion_len);
        self.bytes.truncate(bytes_len);
        self.finish = None;
        Ok(())
    }

    fn absorb(&mut self, c: Chunk) {
        self.tokens.extend_from_slice(&c.tokens);
        self.logprobs.extend_from_slice(&c.logprobs);
        self.certainty.extend_from_slice(&c.certainty);
        self.hidden.extend(c.hidden);
        self.piece_lens.extend_from_slice(&c.piece_lens);
        self.bytes.extend_from_slice(&c.bytes);
        if let Some(rng) = c.rng {
            self.rng = rng;
        }
        if c.finish.is_some() {
            self.finish = c.finish;
        }
    }
}

/// Bytes as text; the bytes of an unfinished UTF-8 character at the end are held back.
fn decode(bytes: &[u8]) -> String {
    let valid = match std::str::from_utf8(bytes) {
        Ok(_) => bytes.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => bytes.len(),
    };
    String::from_utf8_lossy(&bytes[..valid]).into_owned()
}

impl Drop for Branch {
    fn drop(&mut self) {
        let _ = self.session.engine.send(Cmd::Release { seq: self.seq });
    }
}
