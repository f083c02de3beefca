//! Batch assembly and decoding: every job's pending tokens in one batch (generating
//! branches first), one decode, then the bookkeeping of what was fed. A batch that fails
//! is split in halves (by job) and each half decoded again, so a failure stays with the
//! job that caused it: the others' tokens are decoded as if nothing had happened.

use super::protocol::Sess;
use super::{panic_message, Kind, Worker};
use crate::backend::BatchToken;
use crate::error::{EngineError, Result};
use crate::sampling;
use std::ops::Range;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

impl Worker {
    /// Build one batch from every job's pending tokens and decode it. False if idle.
    pub(super) fn decode_batch(&mut self) -> bool {
        self.batch.clear();
        // (job index, token index) of each batch entry.
        let mut owners: Vec<(usize, usize)> = Vec::new();
        // Each job's entries (contiguous), in batch order.
        let mut spans: Vec<Range<usize>> = Vec::new();
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
                let end = s.tokens.len().min(s.kv.saturating_add(room));
                let start = self.batch.len();
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
                if self.batch.len() > start {
                    spans.push(start..self.batch.len());
                }
                room -= end - s.kv;
            }
        }
        if self.batch.is_empty() {
            return false;
        }
        self.decode_spans(&owners, &spans);
        if self.jobs.iter().any(|j| j.done.is_some()) {
            self.finish_jobs();
        }
        true
    }

    /// Decode the jobs' entries `spans` (each one job's) as one batch; if it fails, undo
    /// it in the cache and decode each half again, down to the single job that fails,
    /// which gets the error.
    fn decode_spans(&mut self, owners: &[(usize, usize)], spans: &[Range<usize>]) {
        // Jobs that failed meanwhile (their sequence could not be put back) are left out.
        let failed = |r: &Range<usize>| self.jobs[owners[r.start].0].done.is_some();
        let kept: Vec<Range<usize>>;
        let spans = if spans.iter().any(failed) {
            kept = spans.iter().filter(|r| !failed(r)).cloned().collect();
            &kept[..]
        } else {
            spans
        };
        if spans.is_empty() {
            return;
        }
        let err = match self.decode_entries(owners, spans) {
            Ok(()) => {
                self.account(owners, spans);
                return;
            }
            Err(e) => e,
        };
        // A full cache is reported with the engine's count of free cells.
        let err = match err {
            EngineError::KvFull { needed, n_ctx, .. } => EngineError::KvFull {
                needed,
                free: self.n_ctx.saturating_sub(self.cells.used),
                n_ctx,
            },
            e => e,
        };
        self.undo_batch(owners, spans, &err);
        if spans.len() == 1 {
            let job = &mut self.jobs[owners[spans[0].start].0];
            job.done.get_or_insert(Err(err));
            return;
        }
        let mid = spans.len().div_ceil(2);
        self.decode_spans(owners, &spans[..mid]);
        self.decode_spans(owners, &spans[mid..]);
    }

    /// Decode the batch entries of `spans`, storing logits and logprobs as rows arrive.
    fn decode_entries(&mut self, owners: &[(usize, usize)], spans: &[Range<usize>]) -> Result<()> {
        let Self {
            backend,
            batch,
            jobs,
            seqs,
            ..
        } = self;
        let (start, end) = (spans[0].start, spans[spans.len() - 1].end);
        let contiguous = spans.windows(2).all(|w| w[0].end == w[1].start);
        // The batch as built (the common case), or the entries picked out of it.
        let index: Vec<usize> = if contiguous {
            Vec::new()
        } else {
            spans.iter().flat_map(|r| r.clone()).collect()
        };
        let picked: Vec<BatchToken>;
        let entries: &[BatchToken] = if contiguous {
            &batch[start..end]
        } else {
            picked = index.iter().map(|&i| batch[i]).collect();
            &picked
        };
        // A panic in the backend is this batch's error: the batch is undone and retried in
        // halves like any failed one, so it fails only the job that causes it. What the
        // row callback wrote before it is unused: logits count only once a sequence's
        // tokens are all fed, and a job's logprobs are rewritten when it is decoded again.
        let on_row = &mut |i: usize, row: &[f32], hidden: Option<&[f32]>| {
            let (ji, p) = owners[if contiguous { start + i } else { index[i] }];
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
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            backend.decode(entries, on_row)
        }))
        .unwrap_or_else(|payload| {
            Err(EngineError::WorkerPanic {
                message: format!(
                    "in the backend's decode: {}",
                    panic_message(payload.as_ref())
                ),
            })
        })
    }

    /// After a failed decode of `spans`, make sure the cache holds nothing of it (the
    /// backends roll a failed batch back themselves; this makes it certain). A job whose
    /// sequence cannot be put back fails with that error.
    fn undo_batch(
        &mut self,
        owners: &[(usize, usize)],
        spans: &[Range<usize>],
        cause: &EngineError,
    ) {
        for r in spans {
            let (ji, _) = owners[r.start];
            let seq = self.jobs[ji].seq;
            let kv = self.seqs[seq as usize].as_ref().expect("job's sequence").kv;
            if let Err(e) = self.backend.truncate_seq(seq, kv as u32) {
                tracing::error!("sequence {seq}: undoing a failed decode ({cause}) failed: {e}");
                let s = self.seqs[seq as usize].as_mut().expect("job's sequence");
                s.broken = Some(EngineError::kv(format!(
                    "sequence {seq} is unusable: a failed decode ({cause}) could not be undone \
                     in the KV cache ({e})"
                )));
                self.jobs[ji].done = Some(Err(e));
            }
        }
    }

    /// Bookkeeping for one decode of the entries of `spans`: positions fed, cells used,
    /// stats.
    fn account(&mut self, owners: &[(usize, usize)], spans: &[Range<usize>]) {
        let mut sessions: Vec<(Sess, u64)> = Vec::new();
        let mut n_seqs = 0u64;
        let mut last_seq = -1;
        let n: u64 = spans.iter().map(|r| r.len() as u64).sum();
        for &(ji, _) in spans.iter().flat_map(|r| &owners[r.clone()]) {
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
        self.totals.decoded.fetch_add(n, Relaxed);
        self.totals.calls.fetch_add(1, Relaxed);
        self.totals.occupancy.fetch_add(n_seqs, Relaxed);
        for (sess, _) in sessions {
            sess.counters.calls.fetch_add(1, Relaxed);
            sess.counters.occupancy.fetch_add(n_seqs, Relaxed);
        }
    }
}
