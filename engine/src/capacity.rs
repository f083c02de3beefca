//! The worker's capacity as callers see it ([`Capacity`]) and how long work that does
//! not fit may wait ([`WorkerOptions`]).

use std::time::Duration;

/// What the engine holds right now: KV cells and sequence ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Capacity {
    /// KV cells in all.
    pub n_ctx: usize,
    /// Cells holding tokens (a prefix shared by forks counts once).
    pub used: usize,
    /// Cells promised to running work (prompts, appends, generation up to its cap).
    pub reserved: usize,
    /// Sequence ids in all.
    pub n_seq_max: usize,
    /// Sequence ids free now.
    pub free_seqs: usize,
    /// Requests (prompts, forks, generation and appended text) waiting for capacity.
    pub waiting: usize,
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
