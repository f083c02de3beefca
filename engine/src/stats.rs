//! Budgets the engine enforces and the counters it keeps.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A compute budget for one problem, checked by the engine (not trusted to strategies).
#[derive(Clone, Debug, Default)]
pub struct Budget {
    /// Tokens the problem may generate, over all its branches.
    pub max_new_tokens: Option<u64>,
    /// Wall-clock deadline.
    pub deadline: Option<Instant>,
    /// Set to true to stop the problem's generation at the next step.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Budget {
    /// No limit: no token cap, no deadline, no cancel flag.
    pub fn unlimited() -> Self {
        Self::default()
    }
    /// At most `n` generated tokens over all the problem's branches.
    pub fn tokens(n: u64) -> Self {
        Self {
            max_new_tokens: Some(n),
            ..Self::default()
        }
    }
    /// The same budget with a deadline `d` from now.
    pub fn with_timeout(mut self, d: Duration) -> Self {
        self.deadline = Some(Instant::now() + d);
        self
    }
    /// The same budget, cancelled once `flag` is set.
    pub fn with_cancel(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancel = Some(flag);
        self
    }
    /// Only this budget's stops (its deadline and cancel flag), no token cap: what work
    /// done on a problem's behalf elsewhere (a scorer model reading its candidates)
    /// obeys, without spending the problem's generation budget.
    pub fn stops(&self) -> Self {
        Self {
            max_new_tokens: None,
            deadline: self.deadline,
            cancel: self.cancel.clone(),
        }
    }
}

/// A snapshot of what some work cost.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Prompt tokens evaluated (each prompt once, however many branches fork from it).
    pub prompt_tokens: u64,
    /// Tokens sampled.
    pub generated_tokens: u64,
    /// Every token the model evaluated: prompts, generated tokens fed back, appended text.
    pub decoded_tokens: u64,
    /// Decode calls this work took part in.
    pub decode_calls: u64,
    /// Mean number of sequences in those decode calls.
    pub mean_batch_occupancy: f64,
    /// Branches forked.
    pub forks: u64,
    /// Wall time, milliseconds.
    pub wall_ms: f64,
}

impl Stats {
    /// Sum two snapshots (occupancy weighted by decode calls; wall time added).
    pub fn merge(&self, o: &Stats) -> Stats {
        let calls = self.decode_calls + o.decode_calls;
        let occ = if calls == 0 {
            0.0
        } else {
            (self.mean_batch_occupancy * self.decode_calls as f64
                + o.mean_batch_occupancy * o.decode_calls as f64)
                / calls as f64
        };
        Stats {
            prompt_tokens: self.prompt_tokens + o.prompt_tokens,
            generated_tokens: self.generated_tokens + o.generated_tokens,
            decoded_tokens: self.decoded_tokens + o.decoded_tokens,
            decode_calls: calls,
            mean_batch_occupancy: occ,
            forks: self.forks + o.forks,
            wall_ms: self.wall_ms + o.wall_ms,
        }
    }
}

/// Live counters shared between the worker and the handles.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub prompt: AtomicU64,
    pub generated: AtomicU64,
    pub decoded: AtomicU64,
    pub calls: AtomicU64,
    pub occupancy: AtomicU64,
    pub forks: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self, started: Instant) -> Stats {
        let calls = self.calls.load(Relaxed);
        Stats {
            prompt_tokens: self.prompt.load(Relaxed),
            generated_tokens: self.generated.load(Relaxed),
            decoded_tokens: self.decoded.load(Relaxed),
            decode_calls: calls,
            mean_batch_occupancy: if calls == 0 {
                0.0
            } else {
                self.occupancy.load(Relaxed) as f64 / calls as f64
            },
            forks: self.forks.load(Relaxed),
            wall_ms: started.elapsed().as_secs_f64() * 1e3,
        }
    }
}
