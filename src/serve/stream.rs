//! `stream: true`: server-sent events. While the request waits and while the search
//! runs, a chunk with empty content and a `ponder.progress` field every half second;
//! then each choice's text as deltas, its finish reason, the usage chunk when asked
//! for, and `data: [DONE]`. A client that goes away cancels the search.

use super::error::ApiError;
use super::plan::Job;
use super::queue::Ticket;
use super::routes::{now, solve};
use super::{reply, State};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// How often progress is sent.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Characters per content delta.
const DELTA_CHARS: usize = 24;

/// Start the events of a job.
pub fn respond(
    st: Arc<State>,
    job: Job,
    ticket: Ticket,
    chat: bool,
    include_usage: bool,
) -> Response {
    let (tx, rx) = mpsc::channel::<Event>(16);
    tokio::spawn(produce(st, job, ticket, chat, include_usage, tx));
    let events = ReceiverStream::new(rx).map(Ok::<_, Infallible>);
    Sse::new(events).into_response()
}

struct Chunks {
    chat: bool,
    id: String,
    created: u64,
    model: String,
}

impl Chunks {
    fn chunk(&self, choices: Value, extra: Option<(&str, Value)>) -> Event {
        let mut v = json!({
            "id": self.id,
            "object": if self.chat { "chat.completion.chunk" } else { "text_completion" },
            "created": self.created,
            "model": self.model,
            "choices": choices,
        });
        if let Some((k, x)) = extra {
            v[k] = x;
        }
        Event::default().data(v.to_string())
    }

    fn delta(&self, index: usize, text: &str, first: bool, finish: Option<Value>) -> Value {
        let finish = finish.unwrap_or(Value::Null);
        if self.chat {
            let delta = match (first, finish.is_null()) {
                (true, _) => json!({"role": "assistant", "content": text}),
                (false, true) => json!({"content": text}),
                (false, false) => json!({}),
            };
            json!([{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish}])
        } else {
            json!([{"index": index, "text": text, "logprobs": null, "finish_reason": finish}])
        }
    }

    fn progress(&self, phase: &str, started: Instant, st: &State) -> Event {
        let p = json!({"progress": {
            "phase": phase,
            "elapsed_ms": started.elapsed().as_millis() as u64,
            "queue_depth": st.queue.waiting(),
            "engine_generated_tokens": st.cx.engine.stats().generated_tokens,
        }});
        self.chunk(self.delta(0, "", false, None), Some(("ponder", p)))
    }
}

async fn produce(
    st: Arc<State>,
    job: Job,
    ticket: Ticket,
    chat: bool,
    include_usage: bool,
    tx: mpsc::Sender<Event>,
) {
    let started = Instant::now();
    let c = Chunks {
        chat,
        id: format!(
            "{}-{}",
            if chat { "chatcmpl" } else { "cmpl" },
            st.next_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ),
        created: now(),
        model: job.model.clone(),
    };
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    // Wait for a slot, with progress; a closed stream gives the place up.
    let slot = {
        let wait = ticket.slot();
        tokio::pin!(wait);
        loop {
            tokio::select! {
                s = &mut wait => break s,
                _ = tick.tick() => if tx.send(c.progress("queued", started, &st)).await.is_err() { return gone(&st) },
            }
        }
    };
    let (choices, entry) = (job.choices, job.entry);
    let result = {
        // Dropping this future (the client left) cancels the search.
        let run = solve(&st, job, slot);
        tokio::pin!(run);
        loop {
            tokio::select! {
                r = &mut run => break r,
                _ = tick.tick() => if tx.send(c.progress("solving", started, &st)).await.is_err() { return gone(&st) },
            }
        }
    };
    let sol = match result {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.send(error_event(&e)).await;
            return;
        }
    };
    let picked = reply::choices(&sol, choices);
    let usage = reply::usage(&sol);
    for (i, ch) in picked.iter().enumerate() {
        let mut first = true;
        let chars: Vec<char> = ch.text.chars().collect();
        let pieces: Vec<String> = if chars.is_empty() {
            vec![String::new()]
        } else {
            chars
                .chunks(DELTA_CHARS)
                .map(|p| p.iter().collect())
                .collect()
        };
        for p in pieces {
            if tx
                .send(c.chunk(c.delta(i, &p, first, None), None))
                .await
                .is_err()
            {
                return;
            }
            first = false;
        }
        let last = i + 1 == picked.len();
        let extra = last.then(|| ("ponder", reply::report(&sol, entry)));
        let fin = c.chunk(c.delta(i, "", false, Some(json!(ch.finish))), extra);
        if tx.send(fin).await.is_err() {
            return;
        }
    }
    if include_usage {
        let mut ev = json!({"id": c.id, "object": if chat { "chat.completion.chunk" } else { "text_completion" },
            "created": c.created, "model": c.model, "choices": [], "usage": usage});
        ev["ponder"] = json!({"usage": usage});
        let _ = tx.send(Event::default().data(ev.to_string())).await;
    }
    let _ = tx.send(Event::default().data("[DONE]")).await;
}

/// The client closed the stream before the answer: count it (the search is cancelled
/// when the solve's future is dropped, on return).
fn gone(st: &State) {
    st.metrics
        .cancelled
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// An error inside the stream (the status line is already sent): an `error` object, as
/// OpenAI's clients expect.
fn error_event(e: &ApiError) -> Event {
    Event::default().data(e.body().to_string())
}
