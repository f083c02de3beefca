//! Recovery from a panic caught in the worker's step: the work in flight fails with the
//! panic's message, work the panic lost is answered or retired, and the worker serves on.

use super::{Reply, Waiting, Worker};
use crate::backend::SeqId;
use crate::error::EngineError;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::Arc;

/// The message of the last panic the worker caught, shared with the engine's handles.
pub(crate) type PanicSlot = Arc<Mutex<Option<String>>>;

/// The text of a panic payload (`panic!` with a string or a format), or a placeholder.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with no message".to_owned()
    }
}

impl Worker {
    /// After a panic in a step: fail every job in flight with the panic's message (each
    /// undone back to what its branch knows, as any failed job is), answer the reply
    /// groups whose work the panic lost, and retire the sequences that lost work had
    /// claimed (their branches and the cache may disagree). Waiting work is untouched
    /// and is served as usual.
    pub(super) fn recover(&mut self, msg: &str) {
        tracing::error!("engine worker panicked; failing the work in flight: {msg}");
        *self.panicked.lock() = Some(msg.to_owned());
        let err = EngineError::WorkerPanic {
            message: msg.to_owned(),
        };
        // Only jobs hold reservations, and they all end here.
        self.cells.reserved = 0;
        for mut job in std::mem::take(&mut self.jobs) {
            job.reserve = 0;
            job.done = Some(Err(err.clone()));
            self.reply(job);
        }
        // What is still queued will be answered; anything else the panic dropped.
        let mut queued_seqs: HashSet<SeqId> = HashSet::new();
        let mut queued_replies: HashSet<(u64, usize)> = HashSet::new();
        for q in &self.waiting {
            if let Waiting::Job(job) = &q.1 {
                queued_seqs.insert(job.seq);
                if let Reply::Group(g, i) = job.reply {
                    queued_replies.insert((g, i));
                }
            }
        }
        let mut orphans = Vec::new();
        for (id, slot) in self.seqs.iter_mut().enumerate() {
            let Some(s) = slot.as_mut() else { continue };
            if s.busy && !queued_seqs.contains(&(id as SeqId)) {
                s.busy = false;
                s.broken = Some(EngineError::kv(format!(
                    "sequence {id} is unusable: the worker panicked during a call on it ({msg})"
                )));
                if s.release_when_idle {
                    orphans.push(id as SeqId); // its branch is gone already
                }
            }
        }
        for id in orphans {
            self.release(id);
        }
        let lost: Vec<(u64, usize)> = self
            .groups
            .iter()
            .flat_map(|(&g, gr)| {
                gr.results
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.is_none())
                    .map(move |(i, _)| (g, i))
            })
            .filter(|gi| !queued_replies.contains(gi))
            .collect();
        for (g, i) in lost {
            if let Some(gr) = self.groups.get_mut(&g) {
                gr.results[i] = Some(Err(err.clone()));
                gr.remaining -= 1;
            }
            self.complete_group_if_done(g);
        }
    }
}
