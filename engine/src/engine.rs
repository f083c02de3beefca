//! The handles users hold: [`Engine`] (the worker) and [`Session`] (one problem's budget,
//! seeds and stats); [`Branch`] (one KV sequence and its text) is in `branch.rs`.

use crate::backend::{Backend, BackendInfo, ChatMessage, PromptFormat, SeqId, Token};
use crate::branch::Branch;
use crate::capacity::{Capacity, WorkerOptions};
use crate::error::{EngineError, Result};
use crate::generation::{Finish, GenSpec};
use crate::sampling::derive_seed;
use crate::stats::{Budget, Counters, Stats};
use crate::worker::protocol::{AppendItem, Cmd, ExtendItem, SessionShared};
use crate::worker::{panic_message, PanicSlot, Worker};
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
    /// The last panic the worker caught (see [`Engine::stopped`]).
    panicked: PanicSlot,
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
        let panicked = PanicSlot::default();
        let worker_panicked = panicked.clone();
        let thread = std::thread::Builder::new()
            .name("ponder-engine".into())
            // `make` runs once and nothing of it is used after a panic.
            .spawn(
                move || match std::panic::catch_unwind(std::panic::AssertUnwindSafe(make)) {
                    Err(payload) => {
                        let _ = init_tx.send(Err(EngineError::WorkerPanic {
                            message: format!(
                                "building the backend: {}",
                                panic_message(payload.as_ref())
                            ),
                        }));
                    }
                    Ok(Err(e)) => {
                        let _ = init_tx.send(Err(e));
                    }
                    Ok(Ok(backend)) => {
                        let info = backend.info().clone();
                        if let Err(e) = info.validate() {
                            let _ = init_tx.send(Err(e));
                            return;
                        }
                        let _ = init_tx.send(Ok(info));
                        Worker::new(backend, opts, worker_totals, worker_panicked).run(rx);
                    }
                },
            )
            .map_err(|e| EngineError::context_from("cannot start the worker thread", e))?;
        let info = init_rx.recv().map_err(|_| EngineError::Stopped)??;
        Ok(Engine {
            inner: Arc::new(Inner {
                tx: Some(tx),
                info,
                panicked,
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
            .map_err(|_| self.stopped())
    }

    /// The error for a call whose reply never came: the panic the worker caught (which
    /// dropped the reply, or stopped the worker), else [`EngineError::Stopped`].
    pub(crate) fn stopped(&self) -> EngineError {
        match self.inner.panicked.lock().clone() {
            Some(message) => EngineError::WorkerPanic { message },
            None => EngineError::Stopped,
        }
    }

    /// Run a read-only query against the backend on the worker thread. If `f` panics,
    /// the call fails with [`EngineError::WorkerPanic`] and the engine serves on.
    pub fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Backend) -> T + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = bounded(1);
        self.send(Cmd::Call(Box::new(move |b| {
            // `f` sees the backend only by shared reference, so a panic in it leaves
            // nothing of the worker's own half-updated.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(b)));
            let _ = tx.send(r.map_err(|payload| panic_message(payload.as_ref())));
        })))?;
        match rx.recv() {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(message)) => Err(EngineError::WorkerPanic { message }),
            Err(_) => Err(self.stopped()),
        }
    }

    /// KV cells and sequence ids in use and free, as the worker accounts them now.
    pub fn capacity(&self) -> Result<Capacity> {
        let (tx, rx) = bounded(1);
        self.send(Cmd::Capacity(tx))?;
        rx.recv().map_err(|_| self.stopped())
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
        let results = rx.recv().map_err(|_| self.stopped())?;
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
            hidden: false,
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
    pub(crate) engine: Engine,
    /// Every extend through this handle records hidden states, whatever its spec says.
    pub(crate) hidden: bool,
    pub(crate) shared: Arc<SessionShared>,
}

impl Session {
    /// This session, recording the final-layer hidden state of every token any extend
    /// through it samples (as if each [`GenSpec::hidden`] were set): for a scorer that
    /// reads them (a probe), whatever search drives the session. The engine must have
    /// been loaded with hidden states, else every extend is refused.
    pub fn recording_hidden(mut self) -> Self {
        self.hidden = true;
        self
    }

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
        let seq = rx.recv().map_err(|_| self.engine.stopped())??;
        Ok(self.branch(seq, n))
    }

    pub(crate) fn branch(&self, seq: SeqId, prompt_len: usize) -> Branch {
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
    /// A branch that ended with [`Finish::Eog`] is left as it is (see
    /// [`Session::extend_capped`]).
    pub fn extend<'a>(
        &self,
        branches: impl IntoIterator<Item = &'a mut Branch>,
        spec: &GenSpec,
    ) -> Result<()> {
        self.extend_capped(branches.into_iter().map(|b| (b, usize::MAX)), spec)
    }

    /// [`Session::extend`] with a cap per branch on top of `spec.max_tokens` (e.g. what
    /// is left of each branch's own token allowance). A cap of 0 generates nothing: a
    /// branch with no finish yet ends at once with [`Finish::MaxTokens`], one that has
    /// a finish keeps it. A branch that ended with [`Finish::Eog`] is never sampled past
    /// its end: whatever its cap, it is left as it is (still `Eog`). Every other finish
    /// (a stop string, a limit) is a pause a later call with a cap > 0 continues from,
    /// as step searches do. Every branch must belong to this session's engine (a branch
    /// of another engine is refused before anything runs).
    pub fn extend_capped<'a>(
        &self,
        items: impl IntoIterator<Item = (&'a mut Branch, usize)>,
        spec: &GenSpec,
    ) -> Result<()> {
        spec.validate()?;
        let with_hidden;
        let spec = if self.hidden && !spec.hidden {
            with_hidden = GenSpec {
                hidden: true,
                ..spec.clone()
            };
            &with_hidden
        } else {
            spec
        };
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
            if b.finish == Some(Finish::Eog) {
                continue; // ended: nothing is sampled after an end of generation
            }
            if cap == 0 {
                b.finish.get_or_insert(Finish::MaxTokens);
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
        let results = rx.recv().map_err(|_| self.engine.stopped())?;
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
