//! What `/metrics` reports, in Prometheus' text format: requests by endpoint and status,
//! tokens by kind, the queue, and the engine's live state (branches, KV cells, batches).

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters the handlers update.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// Prompt tokens of the policy model.
    pub prompt_tokens: AtomicU64,
    /// Generated tokens of the policy model, over every branch.
    pub completion_tokens: AtomicU64,
    /// Tokens the scorer's own model (PRM, judge) evaluated.
    pub scorer_tokens: AtomicU64,
    /// Tokens the draft model generated (RSD).
    pub draft_tokens: AtomicU64,
    /// Requests whose client went away before the reply, cancelled.
    pub cancelled: AtomicU64,
}

/// The engine's and the queue's state at scrape time.
#[derive(Debug, Default)]
pub struct Live {
    /// Requests waiting for a slot.
    pub queue_depth: usize,
    /// Requests solving.
    pub solving: usize,
    /// KV sequences held (one per live branch, plus prompts being forked).
    pub branches: usize,
    /// KV cells holding tokens.
    pub kv_used: usize,
    /// KV cells promised to running work.
    pub kv_reserved: usize,
    /// KV cells in all.
    pub kv_total: usize,
    /// Engine work waiting for capacity.
    pub engine_waiting: usize,
    /// Decode calls since start.
    pub decode_calls: u64,
    /// Mean sequences per decode call since start.
    pub mean_batch_occupancy: f64,
    /// Tokens the engine sampled since start.
    pub engine_generated: u64,
}

impl Metrics {
    /// Count one finished request.
    pub fn request(&self, endpoint: &'static str, status: u16) {
        *self.requests.lock().entry((endpoint, status)).or_default() += 1;
    }

    /// The text `/metrics` serves.
    pub fn render(&self, live: &Live) -> String {
        let mut s = String::new();
        let head = |s: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(
            &mut s,
            "ponder_requests_total",
            "counter",
            "Requests answered, by endpoint and HTTP status.",
        );
        for ((ep, st), n) in self.requests.lock().iter() {
            let _ = writeln!(
                s,
                "ponder_requests_total{{endpoint=\"{ep}\",status=\"{st}\"}} {n}"
            );
        }
        head(
            &mut s,
            "ponder_tokens_total",
            "counter",
            "Tokens of answered requests, by kind (scorer and draft models apart).",
        );
        for (kind, v) in [
            ("prompt", &self.prompt_tokens),
            ("completion", &self.completion_tokens),
            ("scorer", &self.scorer_tokens),
            ("draft", &self.draft_tokens),
        ] {
            let _ = writeln!(
                s,
                "ponder_tokens_total{{kind=\"{kind}\"}} {}",
                v.load(Relaxed)
            );
        }
        let gauges: [(&str, &str, &str, f64); 11] = [
            (
                "ponder_cancelled_total",
                "counter",
                "Requests cancelled because the client went away.",
                self.cancelled.load(Relaxed) as f64,
            ),
            (
                "ponder_queue_depth",
                "gauge",
                "Requests waiting for a slot.",
                live.queue_depth as f64,
            ),
            (
                "ponder_requests_in_flight",
                "gauge",
                "Requests being solved.",
                live.solving as f64,
            ),
            (
                "ponder_branches_in_flight",
                "gauge",
                "KV sequences held: live branches of every request.",
                live.branches as f64,
            ),
            (
                "ponder_kv_cells_used",
                "gauge",
                "KV cells holding tokens.",
                live.kv_used as f64,
            ),
            (
                "ponder_kv_cells_reserved",
                "gauge",
                "KV cells promised to running generation.",
                live.kv_reserved as f64,
            ),
            (
                "ponder_kv_cells_total",
                "gauge",
                "KV cells of the engine.",
                live.kv_total as f64,
            ),
            (
                "ponder_engine_waiting",
                "gauge",
                "Engine work waiting for KV capacity.",
                live.engine_waiting as f64,
            ),
            (
                "ponder_decode_calls_total",
                "counter",
                "Decode calls of the engine.",
                live.decode_calls as f64,
            ),
            (
                "ponder_mean_batch_occupancy",
                "gauge",
                "Mean sequences per decode call since start.",
                live.mean_batch_occupancy,
            ),
            (
                "ponder_engine_generated_tokens_total",
                "counter",
                "Tokens the engine sampled, all requests.",
                live.engine_generated as f64,
            ),
        ];
        for (name, kind, help, v) in gauges {
            head(&mut s, name, kind, help);
            let _ = writeln!(s, "{name} {v}");
        }
        s
    }
}
