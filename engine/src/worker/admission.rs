//! Admission: start waiting work once its sequences and KV cells fit, fail work that
//! can never fit, and expire work that waited too long.

use super::protocol::{Chunk, Sess};
use super::{Job, Kind, Reply, Seq, Waiting, Worker};
use crate::backend::SeqId;
use crate::error::{EngineError, Result};
use crate::sampling;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

impl Worker {
    pub(super) fn admit(&mut self) {
        let mut still = VecDeque::new();
        while let Some((t, w)) = self.waiting.pop_front() {
            match self.try_admit(w) {
                None => {}
                Some(w) => still.push_back((t, w)),
            }
        }
        self.waiting = still;
    }

    fn fits(&self, need: usize) -> bool {
        self.cells
            .used
            .saturating_add(self.cells.reserved)
            .saturating_add(need)
            <= self.n_ctx
    }

    /// Start the work if it fits now; give it back otherwise.
    fn try_admit(&mut self, w: Waiting) -> Option<Waiting> {
        match w {
            Waiting::Prefill {
                sess,
                tokens,
                reply,
            } => {
                if self.free_ids.is_empty() || !self.fits(tokens.len()) {
                    return Some(Waiting::Prefill {
                        sess,
                        tokens,
                        reply,
                    });
                }
                let id = self.free_ids.pop().expect("checked");
                self.seqs[id as usize] = Some(Seq {
                    sess: sess.clone(),
                    tokens,
                    kv: 0,
                    cells: Vec::new(),
                    logits: None,
                    hidden: None,
                    busy: false,
                    release_when_idle: false,
                    broken: None,
                });
                let s = self.seqs[id as usize].as_mut().expect("created");
                s.busy = true;
                let job = Job {
                    seq: id,
                    kind: Kind::Feed {
                        logprob_from: None,
                        prompt: true,
                    },
                    out: Chunk::default(),
                    reply: Reply::Prefill(reply),
                    reserve: s.tokens.len(),
                    claimed: true,
                    done: None,
                    base: 0,
                };
                self.cells.reserved += job.reserve;
                self.jobs.push(job);
                None
            }
            Waiting::Fork {
                sess,
                src,
                count,
                len,
                reply,
            } => {
                if self.free_ids.len() < count {
                    return Some(Waiting::Fork {
                        sess,
                        src,
                        count,
                        len,
                        reply,
                    });
                }
                let _ = reply.send(self.fork(&sess, src, count, len));
                None
            }
            Waiting::Job(mut job) => {
                if !self.fits(job.reserve) {
                    // Never fits if the session's own branches already hold too much.
                    let sess = self.seqs[job.seq as usize]
                        .as_ref()
                        .expect("validated")
                        .sess
                        .clone();
                    let held = self.held_cells(&sess);
                    if held.saturating_add(job.reserve) > self.n_ctx {
                        job.done = Some(Err(EngineError::KvCapacity {
                            needed: job.reserve,
                            available: self.n_ctx.saturating_sub(held),
                            n_ctx: self.n_ctx as u32,
                        }));
                        job.reserve = 0;
                        self.reply(*job);
                        return None;
                    }
                    return Some(Waiting::Job(job));
                }
                self.cells.reserved += job.reserve;
                // Logprob of the first appended token from logits already at hand.
                if let Kind::Feed {
                    logprob_from: Some(from),
                    ..
                } = job.kind
                {
                    let s = self.seqs[job.seq as usize].as_ref().expect("validated");
                    if s.kv == from {
                        if let Some(l) = &s.logits {
                            job.out.logprobs[0] = sampling::token_logprob(l, s.tokens[from]);
                        }
                    }
                }
                self.jobs.push(*job);
                None
            }
        }
    }

    fn fork(&mut self, sess: &Sess, src: SeqId, count: usize, len: usize) -> Result<Vec<SeqId>> {
        let (tokens, kv, logits, hidden, cells) = {
            let s = self.seqs[src as usize]
                .as_ref()
                .ok_or(EngineError::UnknownSequence(src))?;
            let mut kv = s.kv.min(len);
            let logits = if len == s.tokens.len() && s.kv == len {
                s.logits.clone()
            } else {
                None
            };
            if kv == len && logits.is_none() {
                kv = len - 1;
            }
            let hidden = logits.as_ref().and(s.hidden.clone());
            (
                s.tokens[..len].to_vec(),
                kv,
                logits,
                hidden,
                s.cells[..kv].to_vec(),
            )
        };
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let id = self.free_ids.pop().expect("admission checked");
            if let Err(e) = self.backend.copy_seq(src, id, kv as u32) {
                self.free_ids.push(id);
                for &o in &out {
                    self.release(o);
                }
                return Err(e);
            }
            self.cells.share(&cells);
            self.seqs[id as usize] = Some(Seq {
                sess: sess.clone(),
                tokens: tokens.clone(),
                kv,
                cells: cells.clone(),
                logits: logits.clone(),
                hidden: hidden.clone(),
                busy: false,
                release_when_idle: false,
                broken: None,
            });
            out.push(id);
        }
        sess.counters.forks.fetch_add(count as u64, Relaxed);
        self.totals.forks.fetch_add(count as u64, Relaxed);
        Ok(out)
    }

    /// Fail work that has waited too long while nothing else ran (it can never fit).
    pub(super) fn expire_waiting(&mut self) {
        if !self.jobs.is_empty() {
            return;
        }
        let now = Instant::now();
        let wait = self.opts.capacity_wait;
        let mut keep = VecDeque::new();
        while let Some((t, w)) = self.waiting.pop_front() {
            if now.duration_since(t) < wait {
                keep.push_back((t, w));
                continue;
            }
            let max = self.seqs.len();
            let avail_ids = self.free_ids.len();
            let free_cells = self
                .n_ctx
                .saturating_sub(self.cells.used.saturating_add(self.cells.reserved));
            match w {
                Waiting::Prefill { tokens, reply, .. } => {
                    let e = if avail_ids == 0 {
                        EngineError::TooManySequences {
                            wanted: 1,
                            available: 0,
                            max,
                        }
                    } else {
                        EngineError::KvCapacity {
                            needed: tokens.len(),
                            available: free_cells,
                            n_ctx: self.n_ctx as u32,
                        }
                    };
                    let _ = reply.send(Err(e));
                }
                Waiting::Fork { count, reply, .. } => {
                    let _ = reply.send(Err(EngineError::TooManySequences {
                        wanted: count,
                        available: avail_ids,
                        max,
                    }));
                }
                Waiting::Job(mut job) => {
                    job.done = Some(Err(EngineError::KvCapacity {
                        needed: job.reserve,
                        available: free_cells,
                        n_ctx: self.n_ctx as u32,
                    }));
                    job.reserve = 0; // never admitted: nothing reserved
                    self.reply(*job);
                }
            }
        }
        self.waiting = keep;
    }
}
