//! Handling each command as it arrives: validate it, answer at once where possible,
//! otherwise queue the work for admission.

use super::protocol::{AppendItem, Chunk, Cmd, Sess};
use super::{Group, Job, Kind, Reply, Seq, Waiting, Worker};
use crate::backend::SeqId;
use crate::capacity::Capacity;
use crate::error::{EngineError, Result};
use crate::sampling;
use crossbeam_channel::Sender;
use std::sync::Arc;
use std::time::Instant;

impl Worker {
    pub(super) fn command(&mut self, c: Cmd) {
        match c {
            Cmd::Prefill {
                sess,
                tokens,
                reply,
            } => {
                if tokens.is_empty() {
                    let _ = reply.send(Err(crate::error::invalid("prompt", "empty prompt")));
                } else if tokens.len() > self.n_ctx {
                    let _ = reply.send(Err(EngineError::PromptTooLong {
                        tokens: tokens.len(),
                        n_ctx: self.n_ctx as u32,
                    }));
                } else {
                    self.waiting.push_back((
                        Instant::now(),
                        Waiting::Prefill {
                            sess,
                            tokens,
                            reply,
                        },
                    ));
                }
            }
            Cmd::Fork {
                sess,
                src,
                count,
                len,
                reply,
            } => {
                let res = self.check_fork(&sess, src, count, len);
                match res {
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                    Ok(()) => self.waiting.push_back((
                        Instant::now(),
                        Waiting::Fork {
                            sess,
                            src,
                            count,
                            len,
                            reply,
                        },
                    )),
                }
            }
            Cmd::Extend {
                sess,
                spec,
                items,
                reply,
            } => {
                let gid = self.group(items.len(), reply);
                for (i, it) in items.into_iter().enumerate() {
                    let job = Job {
                        seq: it.seq,
                        kind: Kind::Gen {
                            spec: spec.clone(),
                            rng: Box::new(it.rng),
                            max_tokens: it.max_tokens.min(spec.max_tokens),
                        },
                        out: Chunk::default(),
                        reply: Reply::Group(gid, i),
                        reserve: 0,
                        claimed: false,
                        done: None,
                        base: 0, // set when the job claims its sequence
                    };
                    self.enqueue(&sess, job);
                }
            }
            Cmd::Append {
                items,
                logprobs,
                reply,
            } => {
                let gid = self.group(items.len(), reply);
                for (i, it) in items.into_iter().enumerate() {
                    self.append(it, logprobs, Reply::Group(gid, i));
                }
            }
            Cmd::Truncate { seq, len, reply } => {
                let _ = reply.send(self.truncate(seq, len));
            }
            Cmd::Release { seq } => self.release(seq),
            Cmd::NextLogprobs { seq, tokens, reply } => {
                let r = self.seq_mut(seq).and_then(|s| match &s.logits {
                    Some(l) if !s.busy && s.kv == s.tokens.len() => {
                        Ok(sampling::token_logprobs(l, &tokens))
                    }
                    _ => Err(crate::error::invalid(
                        "next_logprobs",
                        "the branch's last token is not evaluated yet (append text first)",
                    )),
                });
                let _ = reply.send(r);
            }
            Cmd::Call(f) => f(self.backend.as_ref()),
            Cmd::Capacity(reply) => {
                let _ = reply.send(Capacity {
                    n_ctx: self.n_ctx,
                    used: self.cells.used,
                    reserved: self.cells.reserved,
                    n_seq_max: self.seqs.len(),
                    free_seqs: self.free_ids.len(),
                    waiting: self.waiting.len(),
                });
            }
        }
    }

    /// A reply group for `n` jobs (answered at once if `n` is 0).
    fn group(&mut self, n: usize, reply: Sender<Vec<Result<Chunk>>>) -> u64 {
        let gid = self.next_group;
        self.next_group += 1;
        self.groups.insert(
            gid,
            Group {
                results: (0..n).map(|_| None).collect(),
                remaining: n,
                reply,
            },
        );
        self.complete_group_if_done(gid);
        gid
    }

    /// Queue tokens to be fed to a sequence (with none, only its pending tokens are fed).
    fn append(&mut self, it: AppendItem, logprobs: bool, reply: Reply) {
        let AppendItem { sess, seq, tokens } = it;
        let mut out = Chunk::default();
        for &t in &tokens {
            out.push(t, f32::NAN, f32::NAN, &self.backend.piece(t));
        }
        let from = match self.seq_mut(seq) {
            Ok(s) if s.busy => Err(crate::error::invalid("branch", "busy")),
            Ok(s) => {
                let from = s.tokens.len();
                s.tokens.extend_from_slice(&tokens);
                Ok(from)
            }
            Err(e) => Err(e),
        };
        let job = Job {
            seq,
            kind: Kind::Feed {
                logprob_from: logprobs.then(|| *from.as_ref().unwrap_or(&0)),
                prompt: false,
            },
            out,
            reply,
            reserve: 0,
            claimed: false,
            base: *from.as_ref().unwrap_or(&0),
            done: from.err().map(Err),
        };
        if job.done.is_some() {
            self.reply(job);
        } else {
            self.enqueue(&sess, job);
        }
    }

    /// A sequence commands may use: it exists and is not broken.
    fn seq_mut(&mut self, id: SeqId) -> Result<&mut Seq> {
        let s = self
            .seqs
            .get_mut(id as usize)
            .and_then(|s| s.as_mut())
            .ok_or(EngineError::UnknownSequence(id))?;
        match &s.broken {
            Some(e) => Err(e.clone()),
            None => Ok(s),
        }
    }

    fn check_fork(&mut self, sess: &Sess, src: SeqId, count: usize, len: usize) -> Result<()> {
        let max = self.seqs.len();
        let s = self.seq_mut(src)?;
        if s.busy {
            return Err(crate::error::invalid("fork", "the branch is generating"));
        }
        if len == 0 || len > s.tokens.len() {
            return Err(crate::error::invalid(
                "fork length",
                format!("{len} (branch has {} tokens)", s.tokens.len()),
            ));
        }
        let held = self
            .seqs
            .iter()
            .flatten()
            .filter(|q| Arc::ptr_eq(&q.sess, sess))
            .count();
        if held.saturating_add(count) > max {
            return Err(EngineError::TooManySequences {
                wanted: count,
                available: max.saturating_sub(held),
                max,
            });
        }
        Ok(())
    }

    /// Validate a job, then queue it for admission.
    fn enqueue(&mut self, sess: &Sess, mut job: Job) {
        let check = match self.seq_mut(job.seq) {
            Err(e) => Err(e),
            Ok(s) if s.busy => Err(crate::error::invalid("branch", "already generating")),
            Ok(s) => {
                s.busy = true;
                job.claimed = true;
                if let Kind::Gen { .. } = job.kind {
                    job.base = s.tokens.len();
                }
                let pending = s.tokens.len() - s.kv;
                let need = match &job.kind {
                    Kind::Feed { .. } => pending,
                    // Saturating: a cap of usize::MAX must read as "never fits", not wrap.
                    Kind::Gen { max_tokens, .. } => {
                        pending.saturating_add((*max_tokens).min(sess.remaining_tokens()))
                    }
                };
                Ok(need)
            }
        };
        match check {
            Err(e) => {
                job.done = Some(Err(e));
                self.reply(job);
            }
            Ok(need) => {
                job.reserve = need;
                self.waiting
                    .push_back((Instant::now(), Waiting::Job(Box::new(job))));
            }
        }
    }

    fn truncate(&mut self, seq: SeqId, len: usize) -> Result<()> {
        let s = self.seq_mut(seq)?;
        if s.busy {
            return Err(crate::error::invalid(
                "truncate",
                "the branch is generating",
            ));
        }
        if len == 0 || len > s.tokens.len() {
            return Err(crate::error::invalid("truncate length", format!("{len}")));
        }
        self.cut(seq, len)
    }

    /// Cut a sequence back to its first `len` (≥ 1) tokens, KV cache included; the last
    /// kept token is left unfed, so its logits are recomputed when next needed. The
    /// fallible part (the backend's removal) comes first: on error nothing has changed.
    pub(super) fn cut(&mut self, seq: SeqId, len: usize) -> Result<()> {
        let s = self.seqs[seq as usize].as_mut().expect("a live sequence");
        if len >= s.tokens.len() {
            return Ok(());
        }
        let keep = s.kv.min(len.saturating_sub(1));
        if keep < s.kv {
            self.backend.truncate_seq(seq, keep as u32)?;
            let dropped: Vec<u32> = s.cells.split_off(keep);
            s.kv = keep;
            self.cells.drop_all(&dropped);
        }
        s.tokens.truncate(len);
        s.logits = None;
        Ok(())
    }

    /// Undo a failed job: cut its sequence back to the `len` tokens its branch knows. If
    /// the cache cannot be cut, the sequence is marked broken (its branch and the cache
    /// no longer agree) and every later command on it says so.
    pub(super) fn undo(&mut self, seq: SeqId, len: usize, cause: &EngineError) {
        if let Err(e) = self.cut(seq, len) {
            tracing::error!("sequence {seq}: undoing a failed call ({cause}) failed: {e}");
            if let Some(Some(s)) = self.seqs.get_mut(seq as usize) {
                s.broken = Some(EngineError::kv(format!(
                    "sequence {seq} is unusable: a failed call ({cause}) could not be undone \
                     in the KV cache ({e})"
                )));
            }
        }
    }

    pub(super) fn release(&mut self, seq: SeqId) {
        let Some(slot) = self.seqs.get_mut(seq as usize) else {
            return;
        };
        let Some(s) = slot.as_mut() else { return };
        if s.busy {
            s.release_when_idle = true;
            return;
        }
        // The backend first: a sequence it could not empty keeps its id and its cells
        // (still held in the cache), so neither is handed out again.
        if let Err(e) = self.backend.truncate_seq(seq, 0) {
            tracing::error!("release of sequence {seq} failed, its id is retired: {e}");
            s.broken = Some(EngineError::kv(format!(
                "sequence {seq} is retired: it could not be emptied ({e})"
            )));
            return;
        }
        let s = slot.take().expect("checked");
        self.cells.drop_all(&s.cells);
        self.free_ids.push(seq);
        self.stalled_since = None; // room was made: waiting work gets a new wait
    }
}
