//! The endpoints: the two completion routes, the model list, health and metrics, and
//! the API-key check in front of `/v1`.

use super::error::ApiError;
use super::openai::{ChatRequest, Common, CompletionRequest};
use super::plan::{plan, Input, Job};
use super::queue::{CancelOnDrop, Slot};
use super::{metrics::Live, reply, stream, State};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State as S};
use axum::http::{header, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ponder_search::Solution;
use serde_json::json;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

type St = S<Arc<State>>;

/// Every route, the body cap and the API-key check.
pub fn router(state: Arc<State>) -> Router {
    let v1 = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .layer(from_fn_with_state(state.clone(), auth));
    Router::new()
        .merge(v1)
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.cfg.max_body_bytes))
        .with_state(state)
}

async fn auth(st: St, req: Request, next: Next) -> Response {
    if let Some(key) = &st.cfg.api_key {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(key.as_str()) {
            st.metrics.request("auth", 401);
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                "missing or wrong API key: send Authorization: Bearer KEY",
            )
            .into_response();
        }
    }
    next.run(req).await
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route (see /v1/models, /v1/chat/completions, /v1/completions, /health, /metrics)",
    )
}

async fn chat(st: St, body: Result<Bytes, BytesRejection>) -> Response {
    answer(st.0, "chat", body).await
}

async fn completions(st: St, body: Result<Bytes, BytesRejection>) -> Response {
    answer(st.0, "completions", body).await
}

/// Count the request once it is answered, or as cancelled (499) when the client left
/// first.
struct Counted {
    st: Arc<State>,
    endpoint: &'static str,
    status: Option<u16>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        match self.status {
            Some(s) => self.st.metrics.request(self.endpoint, s),
            None => {
                self.st.metrics.cancelled.fetch_add(1, Relaxed);
                self.st.metrics.request(self.endpoint, 499);
            }
        }
    }
}

async fn answer(
    st: Arc<State>,
    endpoint: &'static str,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut counted = Counted {
        st: st.clone(),
        endpoint,
        status: None,
    };
    let r = match handle(&st, endpoint == "chat", body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    counted.status = Some(r.status().as_u16());
    r
}

async fn handle(
    st: &Arc<State>,
    chat: bool,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| {
        let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "request_too_large"
        } else {
            "invalid_body"
        };
        ApiError::new(
            e.status(),
            code,
            format!(
                "{} (the server takes bodies up to {} bytes)",
                e.body_text(),
                st.cfg.max_body_bytes
            ),
        )
    })?;
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid(
            None,
            "invalid_json",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    let shape = |e: serde_json::Error| {
        ApiError::invalid(
            None,
            "invalid_request",
            format!("the request does not fit the schema: {e}"),
        )
    };
    let (input, common): (Input, Common) = if chat {
        let r: ChatRequest = serde_json::from_value(value).map_err(shape)?;
        (Input::Chat(r.messages), r.common)
    } else {
        let r: CompletionRequest = serde_json::from_value(value).map_err(shape)?;
        (Input::Text(r.prompt), r.common)
    };
    let job = plan(st, input, &common)?;
    let ticket = st.queue.admit()?;
    let job = fits(job).await?;
    let include_usage = common
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    if common.stream {
        return Ok(stream::respond(
            st.clone(),
            job,
            ticket,
            chat,
            include_usage,
        ));
    }
    let slot = ticket.slot().await;
    let (choices, model, entry) = (job.choices, job.model.clone(), job.entry);
    let sol = solve(st, job, slot).await?;
    let created = now();
    let id = format!(
        "{}-{}",
        if chat { "chatcmpl" } else { "cmpl" },
        st.next_id.fetch_add(1, Relaxed)
    );
    let body = reply::completion(
        chat,
        &id,
        created,
        &model,
        &reply::choices(&sol, choices),
        reply::usage(&sol),
        reply::report(&sol, entry),
    );
    Ok(Json(body).into_response())
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Solve a job on a blocking thread, holding its slot until the solve ends. Dropping
/// the returned future (the client went away) sets the job's cancel flag: the engine
/// stops its branches at the next decode step, and the slot frees when the solve
/// returns.
pub async fn solve(st: &Arc<State>, job: Job, slot: Slot) -> Result<Solution, ApiError> {
    let _cancel = CancelOnDrop(job.cancel.clone());
    let key = st.next_id.fetch_add(1, Relaxed);
    st.in_flight.lock().insert(key, job.cancel.clone());
    let st2 = st.clone();
    let task = tokio::task::spawn_blocking(move || {
        let r = run(&job);
        drop(slot);
        st2.in_flight.lock().remove(&key);
        r
    });
    let sol = task.await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "solve_panicked",
            format!("the solve failed: {e}"),
        )
    })??;
    let m = &st.metrics;
    m.prompt_tokens.fetch_add(sol.stats.prompt_tokens, Relaxed);
    m.completion_tokens
        .fetch_add(sol.stats.generated_tokens, Relaxed);
    if let Some(s) = &sol.scorer_stats {
        m.scorer_tokens.fetch_add(s.decoded_tokens, Relaxed);
    }
    if let Some(d) = &sol.draft {
        m.draft_tokens.fetch_add(d.stats.generated_tokens, Relaxed);
    }
    Ok(sol)
}

/// Check, on a blocking thread (it asks the engine worker to tokenize), that the prompt
/// and the strategy's longest sample fit the context: a 400 before any stream starts.
async fn fits(job: Job) -> Result<Job, ApiError> {
    tokio::task::spawn_blocking(move || {
        let engine = &job.cx.engine;
        let prompt = job.cx.prompt(&job.problem)?;
        let tokens = engine
            .tokenize_prompt(&prompt, engine.info().add_bos)?
            .len();
        let n_ctx = engine.info().n_ctx as usize;
        let most = job.strategy.needs().max_tokens;
        if tokens + most > n_ctx {
            return Err(ApiError::invalid(
                Some("messages"),
                "context_length_exceeded",
                format!(
                    "the prompt is {tokens} tokens and {} may generate {most} more per sample: {} in all, more than the context's {n_ctx} tokens (shorten the prompt or lower max_tokens)",
                    job.entry,
                    tokens + most
                ),
            ));
        }
        Ok(job)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "tokenize_panicked", e.to_string()))?
}

fn run(job: &Job) -> Result<Solution, ApiError> {
    Ok(job.strategy.solve(&job.cx, &job.problem)?)
}

async fn models(st: St) -> Json<serde_json::Value> {
    let created = now();
    let mut data = vec![
        json!({"id": st.cfg.model_id, "object": "model", "created": created, "owned_by": "ponder",
        "ponder": {"strategy": "greedy", "summary": "the plain model: greedy decoding, or plain sampling with temperature > 0 or n > 1"}}),
    ];
    for name in &st.cfg.strategies {
        if let Ok(e) = ponder_search::registry::lookup(name) {
            data.push(
                json!({"id": e.name, "object": "model", "created": created, "owned_by": "ponder",
                "ponder": {"strategy": e.name, "summary": e.summary(), "n_setting": e.n_key}}),
            );
        }
    }
    Json(json!({"object": "list", "data": data}))
}

/// The engine's and the queue's state now (asks the engine worker, between steps).
pub async fn live(st: &Arc<State>) -> Result<Live, ApiError> {
    let engine = st.cx.engine.clone();
    let cap = tokio::task::spawn_blocking(move || (engine.capacity(), engine.stats()))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "engine", e.to_string()))?;
    let (cap, stats) = (cap.0?, cap.1);
    Ok(Live {
        queue_depth: st.queue.waiting(),
        solving: st.queue.solving(),
        branches: cap.n_seq_max - cap.free_seqs,
        kv_used: cap.used,
        kv_reserved: cap.reserved,
        kv_total: cap.n_ctx,
        engine_waiting: cap.waiting,
        decode_calls: stats.decode_calls,
        mean_batch_occupancy: stats.mean_batch_occupancy,
        engine_generated: stats.generated_tokens,
    })
}

async fn health(st: St) -> Response {
    match live(&st.0).await {
        Ok(l) => Json(json!({
            "status": "ok",
            "model": st.cfg.model_id,
            "queue_depth": l.queue_depth,
            "requests_in_flight": l.solving,
            "branches_in_flight": l.branches,
            "kv_cells_used": l.kv_used,
            "kv_cells_reserved": l.kv_reserved,
            "kv_cells_total": l.kv_total,
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn metrics(st: St) -> Response {
    match live(&st.0).await {
        Ok(l) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            st.metrics.render(&l),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}
