//! `ponder serve`: an OpenAI-compatible HTTP server that runs a strategy per request.
//!
//! How a request flows:
//! 1. [`routes`] reads the body (capped in size) into the [`openai`] types; the API key,
//!    when the server has one, is checked first.
//! 2. [`plan`] turns it into a job: the strategy the `model` field (or the `ponder`
//!    object) names, built by the registry with the request's settings over its
//!    defaults, checked against the server's [`Limits`]; a [`Cx`] of its own (seed,
//!    budget with deadline and cancel flag, scorer, prompt format) over the one shared
//!    engine; the conversation as a [`Problem`](ponder_search::Problem) whose text is
//!    never parsed for control tokens.
//! 3. [`queue`] admits it (429 when full) and waits for a slot; the solve runs on a
//!    blocking thread, and its branches share decode batches with every other request's.
//!    A client that goes away drops the handler, whose guard sets the cancel flag.
//! 4. [`reply`] turns the solution into choices, usage and a `ponder` report;
//!    [`stream`] sends the same as server-sent events, with progress while it runs.

pub mod error;
pub mod metrics;
pub mod openai;
pub mod plan;
pub mod queue;
pub mod reply;
pub mod routes;
pub mod stream;
#[cfg(test)]
mod tests;

use ponder_scorers::Scorer;
use ponder_search::Cx;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

/// What one request may ask for.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The most choices (`n`) and the largest strategy N (`ponder.n`).
    pub max_n: usize,
    /// The most new tokens per sample (`max_tokens`, and what a strategy's settings say).
    pub max_tokens: usize,
    /// The most KV sequences one request's strategy may hold at once.
    pub max_sequences: usize,
    /// The longest a request may run (and the deadline of one that asks for none).
    pub timeout: Duration,
}

/// How the server runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The plain model's id in `/v1/models` (greedy decoding, or plain sampling).
    pub model_id: String,
    /// Clients must send `Authorization: Bearer KEY` when set.
    pub api_key: Option<String>,
    /// Per-request limits.
    pub limits: Limits,
    /// Requests solved at once.
    pub parallel: usize,
    /// Requests waiting beyond those before 429.
    pub queue: usize,
    /// The largest request body, in bytes.
    pub max_body_bytes: usize,
    /// The strategies this server runs (registry names).
    pub strategies: Vec<&'static str>,
    /// How long in-flight requests may run on after SIGINT/SIGTERM before they are
    /// cancelled.
    pub shutdown_grace: Duration,
}

/// A scorer a request may pick by name (`ponder.scorer`).
#[derive(Clone)]
pub struct NamedScorer {
    /// The name (`logprob`, `verifier`, …).
    pub name: String,
    /// The scorer.
    pub scorer: Arc<dyn Scorer>,
}

/// Everything the handlers share.
pub struct State {
    /// The configuration.
    pub cfg: Config,
    /// The context every request's own is cloned from: the one engine, the draft model,
    /// the default scorer, the system prompt and seed.
    pub cx: Cx,
    /// The scorers requests may choose (the first is the default).
    pub scorers: Vec<NamedScorer>,
    /// The bounded queue.
    pub queue: Arc<queue::Queue>,
    /// Counters for `/metrics`.
    pub metrics: metrics::Metrics,
    /// Cancel flags of the requests in flight, by request number (cancelled all at once
    /// when the shutdown grace runs out).
    pub in_flight: parking_lot::Mutex<std::collections::HashMap<u64, Arc<AtomicBool>>>,
    /// Request numbers.
    pub next_id: AtomicU64,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("cfg", &self.cfg).finish()
    }
}

impl State {
    /// Shared state over a context.
    pub fn new(cfg: Config, cx: Cx, scorers: Vec<NamedScorer>) -> Arc<State> {
        Arc::new(State {
            queue: queue::Queue::new(cfg.parallel, cfg.queue),
            cfg,
            cx,
            scorers,
            metrics: metrics::Metrics::default(),
            in_flight: Default::default(),
            next_id: AtomicU64::new(0),
        })
    }

    /// Cancel every request in flight.
    pub fn cancel_all(&self) {
        for f in self.in_flight.lock().values() {
            f.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// Serve on `listener` until `shutdown` resolves; then stop accepting, let requests in
/// flight finish for the grace period, cancel what is left, and return once every
/// connection is closed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = routes::router(state.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let grace = state.cfg.shutdown_grace;
    let st = state.clone();
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(());
        tracing::info!("shutting down: no new connections; in-flight requests get {grace:?}");
        tokio::time::sleep(grace).await;
        st.cancel_all();
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = rx.await;
        })
        .await
}
