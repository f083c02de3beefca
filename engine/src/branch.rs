//! [`Branch`]: one KV sequence and its completion's tokens, text and log-probabilities.

use crate::backend::{SeqId, Token};
use crate::engine::Session;
use crate::error::Result;
use crate::generation::{Finish, GenSpec};
use crate::worker::protocol::{Chunk, Cmd};
use crossbeam_channel::bounded;
use rand_chacha::ChaCha8Rng;

/// One branch: a KV sequence forked from a prompt, with its completion's tokens, text and
/// per-token log-probabilities. Dropping it frees its sequence.
pub struct Branch {
    pub(crate) session: Session,
    pub(crate) seq: SeqId,
    pub(crate) id: u64,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) prompt_len: usize,
    pub(crate) tokens: Vec<Token>,
    pub(crate) logprobs: Vec<f32>,
    pub(crate) certainty: Vec<f32>,
    pub(crate) hidden: Vec<Vec<f32>>,
    pub(crate) piece_lens: Vec<u32>,
    pub(crate) bytes: Vec<u8>,
    pub(crate) finish: Option<Finish>,
}

impl std::fmt::Debug for Branch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Branch")
            .field("id", &self.id)
            .field("seq", &self.seq)
            .field("tokens", &self.tokens.len())
            .field("finish", &self.finish)
            .finish()
    }
}

impl Branch {
    /// The branch id within its session (seeds derive from it).
    pub fn id(&self) -> u64 {
        self.id
    }
    /// The session this branch belongs to.
    pub fn session(&self) -> &Session {
        &self.session
    }
    /// Prompt length in tokens.
    pub fn prompt_len(&self) -> usize {
        self.prompt_len
    }
    /// Completion tokens (generated and appended) after the prompt.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }
    /// Byte length of each completion token's text (0 for end-of-generation tokens): the
    /// text of the first `k` tokens is the first `Σ piece_lens()[..k]` bytes of the text.
    pub fn piece_lens(&self) -> &[u32] {
        &self.piece_lens
    }
    /// Log-probability of each completion token under the model (NaN where not computed).
    pub fn logprobs(&self) -> &[f32] {
        &self.logprobs
    }
    /// The completion's text; bytes of an unfinished UTF-8 character at the end are held back.
    pub fn text(&self) -> String {
        decode(&self.bytes)
    }
    /// The text of the completion tokens after the first `completion_len` (e.g. the step
    /// just generated), decoded on its own: never a byte offset into [`Branch::text`].
    pub fn text_after(&self, completion_len: usize) -> String {
        let k = completion_len.min(self.piece_lens.len());
        let from: usize = self.piece_lens[..k].iter().map(|&l| l as usize).sum();
        decode(&self.bytes[from.min(self.bytes.len())..])
    }
    /// Self-certainty (KL from uniform, nats) of the model at each sampled completion
    /// token (NaN for appended tokens). See [`crate::sampling::Sampled::certainty`].
    pub fn certainty(&self) -> &[f32] {
        &self.certainty
    }
    /// Hidden states recorded by `extend` calls with [`GenSpec::hidden`] (or through a
    /// [`Session::recording_hidden`]): the final-layer state at the position that
    /// predicted each sampled token. Empty until one is recorded; from then on one entry
    /// per completion token, empty where a token has none (appended text).
    pub fn hidden(&self) -> &[Vec<f32>] {
        &self.hidden
    }
    /// The hidden state of the last of the first `completion_len` tokens that has one.
    pub fn last_hidden(&self, completion_len: usize) -> Option<&[f32]> {
        let upto = completion_len.min(self.hidden.len());
        self.hidden[..upto]
            .iter()
            .rev()
            .find(|h| !h.is_empty())
            .map(Vec::as_slice)
    }
    /// How the last `extend` ended.
    pub fn finish(&self) -> Option<&Finish> {
        self.finish.as_ref()
    }

    /// Generate on this branch alone (see [`Session::extend`] to batch many); after an
    /// end of generation it stays ended ([`Finish::Eog`]), nothing sampled.
    pub fn extend(&mut self, spec: &GenSpec) -> Result<&Finish> {
        let session = self.session.clone();
        session.extend(std::iter::once(&mut *self), spec)?;
        Ok(self.finish.as_ref().expect("extend sets finish"))
    }

    /// `n` children sharing this branch's whole KV sequence (no token is re-read).
    pub fn fork(&self, n: usize) -> Result<Vec<Branch>> {
        self.fork_at(n, self.tokens.len())
    }

    /// `n` children sharing the prompt and the first `completion_len` completion tokens.
    pub fn fork_at(&self, n: usize, completion_len: usize) -> Result<Vec<Branch>> {
        if completion_len > self.tokens.len() {
            return Err(crate::error::invalid(
                "fork length",
                format!("{completion_len} > {} completion tokens", self.tokens.len()),
            ));
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let (tx, rx) = bounded(1);
        self.session.engine.send(Cmd::Fork {
            sess: self.session.shared.clone(),
            src: self.seq,
            count: n,
            len: self.prompt_len + completion_len,
            reply: tx,
        })?;
        let seqs = rx.recv().map_err(|_| self.session.engine.stopped())??;
        let bytes_len: usize = self.piece_lens[..completion_len]
            .iter()
            .map(|&l| l as usize)
            .sum();
        Ok(seqs
            .into_iter()
            .map(|seq| {
                let mut b = self.session.branch(seq, self.prompt_len);
                b.tokens = self.tokens[..completion_len].to_vec();
                b.logprobs = self.logprobs[..completion_len].to_vec();
                b.certainty = self.certainty[..completion_len].to_vec();
                b.hidden = self.hidden[..completion_len.min(self.hidden.len())].to_vec();
                b.piece_lens = self.piece_lens[..completion_len].to_vec();
                b.bytes = self.bytes[..bytes_len].to_vec();
                b.finish = if completion_len == self.tokens.len() {
                    self.finish.clone()
                } else {
                    None
                };
                b
            })
            .collect())
    }

    /// Feed text after the completion (no sampling); with `logprobs`, return each new
    /// token's log-probability given everything before it.
    pub fn append(&mut self, text: &str, logprobs: bool) -> Result<Vec<f32>> {
        let tokens = self.session.engine.tokenize(text, false, false)?;
        self.append_tokens(tokens, logprobs)
    }

    /// [`Branch::append`] for tokens (ids outside the vocabulary are refused with
    /// [`EngineError::InvalidToken`]).
    pub fn append_tokens(&mut self, tokens: Vec<Token>, logprobs: bool) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        let engine = self.session.engine.clone();
        let mut lps = engine.append_all(std::iter::once((self, tokens)), logprobs)?;
        Ok(lps.pop().unwrap_or_default())
    }

    /// Log-probabilities of candidate next tokens after everything the branch holds (e.g.
    /// a PRM's good/bad tokens after a step tag). Valid after [`Branch::append`] or a
    /// prefill; after `extend` the last sampled token is not evaluated yet.
    pub fn next_logprobs(&self, tokens: &[Token]) -> Result<Vec<f32>> {
        let (tx, rx) = bounded(1);
        self.session.engine.send(Cmd::NextLogprobs {
            seq: self.seq,
            tokens: tokens.to_vec(),
            reply: tx,
        })?;
        rx.recv().map_err(|_| self.session.engine.stopped())?
    }

    /// Cut the completion back to `completion_len` tokens (KV cells beyond are freed).
    pub fn truncate(&mut self, completion_len: usize) -> Result<()> {
        if completion_len >= self.tokens.len() {
            return Ok(());
        }
        let (tx, rx) = bounded(1);
        self.session.engine.send(Cmd::Truncate {
            seq: self.seq,
            len: self.prompt_len + completion_len,
            reply: tx,
        })?;
        rx.recv().map_err(|_| self.session.engine.stopped())??;
        let bytes_len: usize = self.piece_lens[..completion_len]
            .iter()
            .map(|&l| l as usize)
            .sum();
        self.tokens.truncate(completion_len);
        self.logprobs.truncate(completion_len);
        self.certainty.truncate(completion_len);
        self.hidden.truncate(completion_len);
        self.piece_lens.truncate(completion_len);
        self.bytes.truncate(bytes_len);
        self.finish = None;
        Ok(())
    }

    pub(crate) fn absorb(&mut self, c: Chunk) {
        self.tokens.extend_from_slice(&c.tokens);
        self.logprobs.extend_from_slice(&c.logprobs);
        self.certainty.extend_from_slice(&c.certainty);
        // Once any state is recorded, one entry per token: empty where none was (appended
        // text, an extend that asked for none), so entry i is token i's.
        if !c.hidden.is_empty() || !self.hidden.is_empty() {
            self.hidden
                .resize_with(self.tokens.len() - c.tokens.len(), Vec::new);
            self.hidden.extend(c.hidden);
            self.hidden.resize_with(self.tokens.len(), Vec::new);
        }
        self.piece_lens.extend_from_slice(&c.piece_lens);
        self.bytes.extend_from_slice(&c.bytes);
        if let Some(rng) = c.rng {
            self.rng = rng;
        }
        if c.finish.is_some() {
            self.finish = c.finish;
        }
    }
}

/// Bytes as text; the bytes of an unfinished UTF-8 character at the end are held back.
fn decode(bytes: &[u8]) -> String {
    let valid = match std::str::from_utf8(bytes) {
        Ok(_) => bytes.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => bytes.len(),
    };
    String::from_utf8_lossy(&bytes[..valid]).into_owned()
}

impl Drop for Branch {
    fn drop(&mut self) {
        let _ = self.session.engine.send(Cmd::Release { seq: self.seq });
    }
}
