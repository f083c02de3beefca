//! Admission: start waiting work once its sequences and KV cells fit, first come first
//! served for new problems once a request has waited `overtake_for`; answer work whose
//! problem was cancelled or ran past its deadline; fail work that cannot fit (the engine
//! stalled for `capacity_wait` with it still waiting).

use super::protocol::{Chunk, Sess};
use super::{Job, Kind, Reply, Seq, Waiting, Worker};
use crate::backend::SeqId;
use crate::error::{EngineError, Result};
use crate::sampling;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

impl Worker {
    /// Start what fits, in order of arrival. Work of problems already running (forks,
    /// appends, generation on their branches) may always start when it fits: it is how
    /// they finish and free their cells. A new problem may overtake waiting work that
    /// does not fit only until that work has waited `overtake_for`; after that it queues
    /// behind it, so running problems drain and the large request gets its room.
    pub(super) fn admit(&mut self) {
        let now = Instant::now();
        let mut still = VecDeque::new();
        let mut closed = false;
        while let Some((t, w)) = self.waiting.pop_front() {
            let Some(w) = self.answer_if_stopped(w) else {
                continue;
            };
            if closed && self.is_new_problem(&w) {
                still.push_back((t, w));
                continue;
            }
            match self.try_admit(w) {
                None => self.stalled_since = None,
                Some(w) => {
                    closed |= now.duration_since(t) >= self.opts.overtake_for;
                    still.push_back((t, w));
                }
            }
        }
        self.waiting = still;
    }

    /// A prompt of a problem that holds no sequence yet.
    fn is_new_problem(&self, w: &Waiting) -> bool {
        match w {
            Waiting::Prefill { sess, .. } => !self
                .seqs
                .iter()
                .flatten()
                .any(|s| Arc::ptr_eq(&s.sess, sess)),
            Waiting::Fork { .. } | Waiting::Job(_) => false,
        }
    }

    /// Answer waiting work whose problem was cancelled or passed its deadline: generation
    /// ends with that finish (as it would have once running), anything else fails with
    /// it. Work still to do is given back.
    fn answer_if_stopped(&mut self, w: Waiting) -> Option<Waiting> {
        let sess = match &w {
            Waiting::Prefill { sess, .. } | Waiting::Fork { sess, .. } => sess,
            Waiting::Job(job) => {
                &self.seqs[job.seq as usize]
                    .as_ref()
                    .expect("validated")
                    .sess
            }
        }
        .clone();
        let Some(err) = sess.stopped() else {
            return Some(w);
        };
        match w {
            Waiting::Prefill { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            Waiting::Fork { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            Waiting::Job(mut job) => {
                job.done = Some(match job.kind {
                    Kind::Gen { .. } => {
                        job.out.finish = sess.limit();
                        Ok(())
                    }
                    Kind::Feed { .. } => Err(err),
                });
                job.reserve = 0; // never admitted: nothing reserved
                self.reply(*job);
            }
        }
        None
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
                if !self.can_start_prefill(tokens.len()) {
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

    /// Whether a prompt of `len` tokens could start now: a free id and room for it.
    fn can_start_prefill(&self, len: usize) -> bool {
        !self.free_ids.is_empty() && self.fits(len)
    }

    /// Whether the work could start now, were it first in line.
    fn can_start(&self, w: &Waiting) -> bool {
        match w {
            Waiting::Prefill { tokens, .. } => self.can_start_prefill(tokens.len()),
            Waiting::Fork { count, .. } => self.free_ids.len() >= *count,
            Waiting::Job(job) => self.fits(job.reserve),
        }
    }

    /// Fail the waiting work that cannot start once the engine has stalled (nothing ran,
    /// was admitted or released) for `capacity_wait`: only a caller freeing branches
    /// could make room, and none did. The clock starts when the engine stalls, not when
    /// the work arrived, so work that waited behind long-running problems is not failed
    /// the moment they end.
    pub(super) fn expire_waiting(&mut self) {
        if !self.jobs.is_empty() || self.waiting.is_empty() {
            self.stalled_since = None;
            return;
        }
        let now = Instant::now();
        let since = *self.stalled_since.get_or_insert(now);
        if now.duration_since(since) < self.opts.capacity_wait {
            return;
        }
        self.stalled_since = None;
        let max = self.seqs.len();
        let avail_ids = self.free_ids.len();
        let free_cells = self
            .n_ctx
            .saturating_sub(self.cells.used.saturating_add(self.cells.reserved));
        let mut keep = VecDeque::new();
        while let Some((t, w)) = self.waiting.pop_front() {
            if self.can_start(&w) {
                keep.push_back((t, w)); // held back only by work queued before it
                continue;
            }
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
