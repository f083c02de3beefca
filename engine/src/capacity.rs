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
    /// How long work that does not fit may wait while the engine is stalled (nothing
    /// runs, is admitted or is released) before it fails with a capacity error: so long
    /// a stall means only a caller freeing branches could make room. The clock starts
    /// when the engine stalls, not when the work arrived. Default 5 s.
    pub capacity_wait: Duration,
    /// How long waiting work may be overtaken by new problems that fit before it: after
    /// that, prompts of problems that hold no sequence yet queue behind it (first come,
    /// first served), so a large request is not starved by a stream of small ones.
    /// Work of running problems may always overtake. Default 1 s.
    pub overtake_for: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            capacity_wait: Duration::from_secs(5),
            overtake_for: Duration::from_secs(1),
        }
    }
}
