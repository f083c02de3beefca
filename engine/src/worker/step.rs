//! The generation step: sample every branch whose logits are ready, check stop strings,
//! end-of-generation and limits, and send finished jobs their replies.

use super::{Job, Kind, Reply, Worker};
use crate::generation::Finish;
use crate::sampling;
use std::sync::atomic::Ordering::Relaxed;

impl Worker {
    /// Sample every generating branch whose logits are ready, until each needs a decode.
    pub(super) fn advance(&mut self) {
        for job in self.jobs.iter_mut().filter(|j| j.done.is_none()) {
            let s = self.seqs[job.seq as usize]
                .as_mut()
                .expect("job's sequence");
            match &mut job.kind {
                Kind::Feed { .. } => {
                    if s.kv == s.tokens.len() {
                        job.done = Some(Ok(()));
                    } else if let Some(e) = s.sess.stopped() {
                        // A cancelled or late problem stops reading between two decodes;
                        // the failed call is undone like any other.
                        job.done = Some(Err(e));
                    }
                }
                Kind::Gen {
                    spec,
                    rng,
                    max_tokens,
                } => {
                    if s.kv < s.tokens.len() {
                        continue; // pending tokens to feed first
                    }
                    let Some(logits) = s.logits.take() else {
                        // Nothing fed yet and no logits: feed the last token again
                        // (the cache first: if it cannot drop the cell, nothing changes).
                        let keep = s.kv - 1;
                        if let Err(e) = self.backend.truncate_seq(job.seq, keep as u32) {
                            job.done = Some(Err(e));
                            continue;
                        }
                        s.kv = keep;
                        let c = s.cells.pop().expect("kv > 0");
                        self.cells.drop_all(&[c]);
                        continue;
                    };
                    if job.out.tokens.len() >= *max_tokens {
                        s.logits = Some(logits);
                        job.out.finish = Some(Finish::MaxTokens);
                        job.done = Some(Ok(()));
                        continue;
                    }
                    if let Some(f) = s.sess.limit() {
                        s.logits = Some(logits);
                        job.out.finish = Some(f);
                        job.done = Some(Ok(()));
                        continue;
                    }
                    let sampling::Sampled {
                        token: tok,
                        logprob: lp,
                        certainty,
                    } = sampling::sample(&spec.sampling, &logits, rng, &mut self.scratch);
                    s.logits = Some(logits); // buffer reused; stale once a token is pushed
                    if spec.hidden {
                        job.out.hidden.push(s.hidden.clone().unwrap_or_default());
                    }
                    s.sess.counters.generated.fetch_add(1, Relaxed);
                    self.totals.generated.fetch_add(1, Relaxed);
                    s.tokens.push(tok);
                    let eog = !spec.ignore_eog && self.backend.is_eog(tok);
                    let piece = if eog {
                        Vec::new()
                    } else {
                        self.backend.piece(tok)
                    };
                    let before = job.out.bytes.len();
                    job.out.push(tok, lp, certainty, &piece);
                    if eog {
                        job.out.finish = Some(Finish::Eog);
                    } else if let Some(stop) = find_stop(&spec.stop, &job.out.bytes, before) {
                        job.out.finish = Some(Finish::Stop(stop));
                    } else if job.out.tokens.len() >= *max_tokens {
                        job.out.finish = Some(Finish::MaxTokens);
                    }
                    if job.out.finish.is_some() {
                        job.done = Some(Ok(()));
                    }
                }
            }
        }
    }

    pub(super) fn finish_jobs(&mut self) {
        if !self.jobs.iter().any(|j| j.done.is_some()) {
            return; // the common step: nothing finished, nothing to move
        }
        // Order-preserving split, so batch composition keeps admission order.
        let (done, keep): (Vec<Job>, Vec<Job>) = std::mem::take(&mut self.jobs)
            .into_iter()
            .partition(|j| j.done.is_some());
        self.jobs = keep;
        for mut job in done {
            self.cells.reserved -= job.reserve;
            job.reserve = 0;
            self.reply(job);
        }
    }

    pub(super) fn reply(&mut self, mut job: Job) {
        let seq = job.seq;
        if let Some(Some(s)) = self.seqs.get_mut(seq as usize).filter(|_| job.claimed) {
            s.busy = false;
            // A stale logits buffer must not be used: only valid with nothing pending.
            if s.kv != s.tokens.len() {
                s.logits = None;
            }
        }
        let res = job.done.take().unwrap_or(Ok(()));
        // A failed call leaves nothing behind: the branch drops its tokens, so the
        // sequence does too (a prompt that failed is released below instead).
        if let (Err(e), Reply::Group(..), true) = (&res, &job.reply, job.claimed) {
            self.undo(seq, job.base, e);
        }
        if let Kind::Gen { rng, .. } = job.kind {
            job.out.rng = Some(*rng);
        }
        match job.reply {
            Reply::Prefill(tx) => {
                let ok = res.is_ok();
                let _ = tx.send(res.map(|_| seq));
                if !ok {
                    self.release(seq);
                }
            }
            Reply::Group(g, i) => {
                if let Some(group) = self.groups.get_mut(&g) {
                    group.results[i] = Some(res.map(|_| job.out));
                    group.remaining -= 1;
                }
                self.complete_group_if_done(g);
            }
        }
        if let Some(Some(s)) = self.seqs.get(seq as usize) {
            if s.release_when_idle && !s.busy {
                self.release(seq);
            }
        }
    }

    pub(super) fn complete_group_if_done(&mut self, g: u64) {
        if self.groups.get(&g).is_some_and(|gr| gr.remaining == 0) {
            let gr = self.groups.remove(&g).expect("present");
            let _ = gr
                .reply
                .send(gr.results.into_iter().map(|r| r.expect("filled")).collect());
        }
    }
}

/// The first stop string found in `bytes`, looking only where new bytes (from `new_from`) could complete one.
fn find_stop(stops: &[String], bytes: &[u8], new_from: usize) -> Option<String> {
    stops.iter().find_map(|s| {
        let s_b = s.as_bytes();
        let start = new_from.saturating_sub(s_b.len().saturating_sub(1));
        bytes[start..]
            .windows(s_b.len())
            .any(|w| w == s_b)
            .then(|| s.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_strings_span_pieces() {
        let stops = vec!["\n\n".to_string()];
        // "a\n" then "\nb": the stop spans the two pieces.
        assert_eq!(find_stop(&stops, b"a\n", 0), None);
        assert_eq!(find_stop(&stops, b"a\n\nb", 2), Some("\n\n".into()));
        // A stop entirely before the new bytes was already seen.
        assert_eq!(find_stop(&stops, b"\n\nxyz", 4), None);
    }
}
