//! Batch assembly and decoding: every job's pending tokens in one batch (generating
//! branches first), one decode, then the bookkeeping of what was fed.

use super::protocol::Sess;
use super::{Kind, Worker};
use crate::backend::BatchToken;
use crate::error::EngineError;
use crate::sampling;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

impl Worker {
    /// Build one batch from every job's pending tokens and decode it. False if idle.
    pub(super) fn decode_batch(&mut self) -> bool {
        self.batch.clear();
        // (job index, token index) of each batch entry.
        let mut owners: Vec<(usize, usize)> = Vec::new();
        let mut room = self.n_batch;
        // Generating branches first (one token each), then prompt/append chunks.
        for pass in 0..2 {
            for (ji, job) in self.jobs.iter().enumerate() {
                if job.done.is_some() || room == 0 {
                    continue;
                }
                let is_gen = matches!(job.kind, Kind::Gen { .. });
                if (pass == 0) != is_gen {
                    continue;
                }
                let s = self.seqs[job.seq as usize]
                    .as_ref()
                    .expect("job's sequence");
                let end = s.tokens.len().min(s.kv + room);
                for p in s.kv..end {
                    let want = p + 1 == s.tokens.len()
                        || matches!(job.kind, Kind::Feed { logprob_from: Some(f), .. } if p + 1 >= f);
                    self.batch.push(BatchToken {
                        seq: job.seq,
                        pos: p as u32,
                        token: s.tokens[p],
                        logits: want,
                    });
                    owners.push((ji, p));
                }
                room -= end - s.kv;
            }
        }
        if self.batch.is_empty() {
            return false;
        }
        let Self {
            backend,
            batch,
            jobs,
            seqs,
            ..
        } = self;
        let res = backend.decode(batch, &mut |i, row, hidden| {
            let (ji, p) = owners[i];
            let job = &mut jobs[ji];
            let s = seqs[job.seq as usize].as_mut().expect("job's sequence");
            if p + 1 == s.tokens.len() {
                match &mut s.logits {
                    Some(buf) => {
                        buf.clear();
                        buf.extend_from_slice(row);
                    }
                    None => s.logits = Some(row.to_vec()),
                }
                match (hidden, &mut s.hidden) {
                    (Some(h), Some(buf)) => {
                        buf.clear();
                        buf.extend_from_slice(h);
                    }
                    (h, slot) => *slot = h.map(<[f32]>::to_vec),
                }
            }
            if let Kind::Feed {
                logprob_from: Some(f),
                ..
            } = job.kind
            {
                if p + 1 >= f && p + 1 < s.tokens.len() {
                    job.out.logprobs[p + 1 - f] = sampling::token_logprob(row, s.tokens[p + 1]);
                }
            }
        });
        if let Err(e) = res {
            // Every job in the batch gets the backend's own error (typed, source kept);
            // a full cache is reported with the engine's count of free cells.
            let e = match e {
                EngineError::KvFull { needed, n_ctx, .. } => EngineError::KvFull {
                    needed,
                    free: self.n_ctx.saturating_sub(self.cells.used),
                    n_ctx,
                },
                e => e,
            };
            for &(ji, _) in &owners {
                if self.jobs[ji].done.is_none() {
                    self.jobs[ji].done = Some(Err(e.clone()));
                }
            }
            self.finish_jobs();
            return true;
        }
        // Bookkeeping: positions fed, cells used, stats.
        let mut sessions: Vec<(Sess, u64)> = Vec::new();
        let mut n_seqs = 0u64;
        let mut last_seq = -1;
        for &(ji, _) in &owners {
            let job = &mut self.jobs[ji];
            let s = self.seqs[job.seq as usize]
                .as_mut()
                .expect("job's sequence");
            s.kv += 1;
            s.cells.push(self.cells.alloc());
            if job.reserve > 0 {
                job.reserve -= 1;
                self.cells.reserved -= 1;
            }
            let sess = &s.sess;
            sess.counters.decoded.fetch_add(1, Relaxed);
            if let Kind::Feed { prompt: true, .. } = job.kind {
                sess.counters.prompt.fetch_add(1, Relaxed);
                self.totals.prompt.fetch_add(1, Relaxed);
            }
            if job.seq != last_seq {
                last_seq = job.seq;
                n_seqs += 1;
                match sessions.iter_mut().find(|(x, _)| Arc::ptr_eq(x, sess)) {
                    Some(e) => e.1 += 1,
                    None => sessions.push((sess.clone(), 1)),
                }
            }
        }
        let n = owners.len() as u64;
        self.totals.decoded.fetch_add(n, Relaxed);
        self.totals.calls.fetch_add(1, Relaxed);
        self.totals.occupancy.fetch_add(n_seqs, Relaxed);
        for (sess, _) in sessions {
            sess.counters.calls.fetch_add(1, Relaxed);
            sess.counters.occupancy.fetch_add(n_seqs, Relaxed);
        }
        true
    }
}
