//! A deterministic mock backend: byte-level vocabulary, logits from a pluggable
//! [`MockModel`]. Always compiled, so strategies can be tested and benchmarked with no
//! model file and no C++ toolchain. It enforces the same batch contract as llama.cpp
//! (positions, sequence ids, batch size) and fails loudly where llama.cpp would abort.
//!
//! For tests of the engine's own failure handling it can also inject faults on request
//! ([`MockConfig::fault`]: a decode that fails, finds the cache full or panics) and
//! pretend to be a model whose sequences cannot be cut ([`MockConfig::recurrent`]).

use crate::backend::{
    chatml, raw, Backend, BackendInfo, BatchToken, ChatMessage, OnRow, PromptFormat, SeqId, Token,
};
use crate::error::{EngineError, Result};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// The end-of-generation token of the mock vocabulary (bytes are tokens 0..=255).
pub const MOCK_EOG: Token = 256;
const N_VOCAB: usize = 257;

/// Produces a logits row for the next token given a sequence's whole context.
pub trait MockModel: Send + Sync {
    /// Write the next-token logits after `context` (all of a sequence's tokens) into
    /// `out`, one entry per vocabulary token (257: bytes, then [`MOCK_EOG`]).
    fn logits(&self, context: &[Token], out: &mut [f32]);
}

impl<F: Fn(&[Token], &mut [f32]) + Send + Sync> MockModel for F {
    fn logits(&self, context: &[Token], out: &mut [f32]) {
        self(context, out)
    }
}

/// Pseudo-random printable text from a hash of the recent context; end-of-generation
/// grows likelier with length. Different seeds/branches diverge, greedy is repeatable.
#[derive(Clone, Debug, Default)]
pub struct HashModel;

impl MockModel for HashModel {
    fn logits(&self, context: &[Token], out: &mut [f32]) {
        let tail = &context[context.len().saturating_sub(3)..];
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ context.len() as u64;
        for &t in tail {
            h = (h ^ t as u64).wrapping_mul(0x100_0000_01b3);
        }
        for (i, o) in out.iter_mut().enumerate() {
            *o = if (32..127).contains(&i) {
                let x = (h ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
                    .wrapping_mul(0xBF58_476D_1CE4_E5B9);
                ((x >> 40) as f32 / (1u64 << 24) as f32) * 4.0
            } else {
                -30.0
            };
        }
        out[MOCK_EOG as usize] = -2.0 + 0.02 * context.len() as f32;
    }
}

/// After the last occurrence of `marker` in the context, the text follows one of the
/// weighted `choices`, then ends. Sampling picks choice `i` with probability
/// `w_i / Σw`; greedy picks the heaviest (first on ties) — exact, hand-checkable
/// behaviour for strategy tests.
#[derive(Clone, Debug)]
pub struct ChoiceModel {
    /// Where the completion starts (after its last occurrence in the context).
    pub marker: String,
    /// Each possible completion and its weight (> 0; relative, need not sum to 1).
    pub choices: Vec<(String, f32)>,
}

impl ChoiceModel {
    /// Weighted completions after a ChatML assistant turn (`<|im_start|>assistant\n`).
    pub fn new(choices: &[(&str, f32)]) -> Self {
        Self {
            marker: "<|im_start|>assistant\n".into(),
            choices: choices.iter().map(|(s, w)| (s.to_string(), *w)).collect(),
        }
    }
}

impl MockModel for ChoiceModel {
    fn logits(&self, context: &[Token], out: &mut [f32]) {
        let bytes: Vec<u8> = context
            .iter()
            .filter(|&&t| t < 256)
            .map(|&t| t as u8)
            .collect();
        let m = self.marker.as_bytes();
        let start = bytes
            .windows(m.len().max(1))
            .rposition(|w| w == m)
            .map(|p| p + m.len())
            .unwrap_or(bytes.len());
        let done = &bytes[start..];
        let mut mass = [0f32; N_VOCAB];
        for (text, w) in &self.choices {
            let t = text.as_bytes();
            if t.starts_with(done) {
                let next = t
                    .get(done.len())
                    .map(|&b| b as usize)
                    .unwrap_or(MOCK_EOG as usize);
                mass[next] += w;
            }
        }
        if mass.iter().all(|&m| m == 0.0) {
            mass[MOCK_EOG as usize] = 1.0;
        }
        for (o, m) in out.iter_mut().zip(mass) {
            *o = if m > 0.0 { m.ln() } else { -1e9 };
        }
    }
}

/// Counters the mock keeps, readable from tests while the engine runs.
#[derive(Debug, Default)]
pub struct MockCounters {
    /// `decode` calls that succeeded.
    pub decode_calls: AtomicU64,
    /// Tokens those calls decoded.
    pub tokens: AtomicU64,
    /// The largest batch decoded, in tokens.
    pub max_batch: AtomicU64,
    /// Sequences holding tokens now.
    pub live_seqs: AtomicU64,
    /// The most sequences ever holding tokens at once.
    pub peak_seqs: AtomicU64,
}

impl MockCounters {
    /// The most sequences ever holding tokens at once.
    pub fn max_live_seqs(&self) -> u64 {
        self.peak_seqs.load(Relaxed)
    }
}

/// A fault [`MockConfig::fault`] injects into a decode (test-only behaviour).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MockFault {
    /// The decode fails with [`EngineError::Decode`], keeping nothing of the batch (as
    /// llama.cpp does for a batch it rejects).
    Decode,
    /// The decode fails with [`EngineError::KvFull`], keeping nothing of the batch (as
    /// llama.cpp does when it finds no slot in its cache).
    KvFull,
    /// The decode panics (a bug in a backend) before keeping anything of the batch.
    Panic,
}

/// Decides, from a sequence's context, whether a decode carrying it fails; see
/// [`MockConfig::fault`].
pub type FaultHook = Arc<dyn Fn(&[Token]) -> Option<MockFault> + Send + Sync>;

/// Mock backend settings.
#[derive(Clone)]
pub struct MockConfig {
    /// KV cells the backend reports (default 8192); the engine's accounting enforces
    /// it, the mock keeps no cache limit of its own.
    pub n_ctx: u32,
    /// Sequence ids (default 64).
    pub n_seq_max: u32,
    /// Most tokens per decode (default 512).
    pub n_batch: u32,
    /// What produces the logits (default [`HashModel`]).
    pub model: Arc<dyn MockModel>,
    /// Where the backend counts its work (share it to read it from a test).
    pub counters: Arc<MockCounters>,
    /// Width of the mock's hidden states (0: none). The hidden state at a position is
    /// the one-hot vector of its token modulo the width, so the mean over a text is a
    /// histogram of its tokens: similar texts have similar mean states.
    pub n_embd: u32,
    /// Test-only fault injection (default none): before a batch is decoded, the hook is
    /// called for each of its tokens with that token's sequence context (every token of
    /// the sequence up to and including it); the first fault it returns is what the
    /// whole decode does, and nothing of the batch is kept. A hook that should fire once
    /// keeps its own state.
    pub fault: Option<FaultHook>,
    /// Pretend to be a recurrent model (default false): [`BackendInfo::seq_cut`] is
    /// false, so the engine refuses the backend, as it refuses recurrent and hybrid
    /// llama.cpp models whose sequences cannot be truncated.
    pub recurrent: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            n_ctx: 8192,
            n_seq_max: 64,
            n_batch: 512,
            model: Arc::new(HashModel),
            counters: Arc::new(MockCounters::default()),
            n_embd: 0,
            fault: None,
            recurrent: false,
        }
    }
}

/// The mock backend itself.
pub struct MockBackend {
    info: BackendInfo,
    model: Arc<dyn MockModel>,
    seqs: Vec<Vec<Token>>,
    counters: Arc<MockCounters>,
    row: Vec<f32>,
    hidden: Vec<f32>,
    fault: Option<FaultHook>,
}

impl MockBackend {
    fn count_live(&self) {
        let n = self.seqs.iter().filter(|s| !s.is_empty()).count() as u64;
        self.counters.live_seqs.store(n, Relaxed);
        self.counters.peak_seqs.fetch_max(n, Relaxed);
    }

    /// A mock backend with `cfg`'s sizes, model and counters.
    pub fn new(cfg: MockConfig) -> Self {
        Self {
            info: BackendInfo {
                name: "mock".into(),
                n_ctx: cfg.n_ctx,
                n_seq_max: cfg.n_seq_max,
                n_batch: cfg.n_batch,
                n_vocab: N_VOCAB as u32,
                n_ctx_train: cfg.n_ctx,
                add_bos: false,
                n_embd: cfg.n_embd,
                seq_cut: !cfg.recurrent,
            },
            model: cfg.model,
            seqs: vec![Vec::new(); cfg.n_seq_max as usize],
            counters: cfg.counters,
            row: vec![0.0; N_VOCAB],
            hidden: vec![0.0; cfg.n_embd as usize],
            fault: cfg.fault,
        }
    }

    fn seq(&mut self, s: SeqId) -> Result<&mut Vec<Token>> {
        self.seqs
            .get_mut(s as usize)
            .ok_or_else(|| EngineError::decode(format!("sequence id {s} ≥ n_seq_max")))
    }
}

impl Backend for MockBackend {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    fn decode(&mut self, batch: &[BatchToken], on_row: &mut OnRow<'_>) -> Result<()> {
        if batch.is_empty() || batch.len() > self.info.n_batch as usize {
            return Err(EngineError::decode(format!(
                "batch of {} tokens (n_batch {})",
                batch.len(),
                self.info.n_batch
            )));
        }
        // Check the whole batch before keeping any of it: a failed decode keeps nothing.
        let mut pending: Vec<(SeqId, Vec<Token>)> = Vec::new();
        for t in batch {
            if !(0..N_VOCAB as Token).contains(&t.token) {
                return Err(EngineError::decode(format!(
                    "token {} outside the vocabulary",
                    t.token
                )));
            }
            let s = self.seq(t.seq)?;
            let len = s.len();
            let new = match pending.iter().position(|(q, _)| *q == t.seq) {
                Some(i) => &mut pending[i].1,
                None => {
                    pending.push((t.seq, Vec::new()));
                    &mut pending.last_mut().expect("pushed").1
                }
            };
            if t.pos as usize != len + new.len() {
                return Err(EngineError::decode(format!(
                    "sequence {} position {} but next position is {}",
                    t.seq,
                    t.pos,
                    len + new.len()
                )));
            }
            new.push(t.token);
            if let Some(hook) = &self.fault {
                let ctx: Vec<Token> = self.seqs[t.seq as usize]
                    .iter()
                    .chain(new.iter())
                    .copied()
                    .collect();
                match hook(&ctx) {
                    None => {}
                    Some(MockFault::Decode) => {
                        return Err(EngineError::decode(format!(
                            "mock fault on sequence {} at position {}",
                            t.seq, t.pos
                        )))
                    }
                    Some(MockFault::KvFull) => {
                        return Err(EngineError::KvFull {
                            needed: batch.len(),
                            free: 0,
                            n_ctx: self.info.n_ctx,
                        })
                    }
                    Some(MockFault::Panic) => panic!(
                        "mock fault: panic on sequence {} at position {}",
                        t.seq, t.pos
                    ),
                }
            }
        }
        for (i, t) in batch.iter().enumerate() {
            let s = &mut self.seqs[t.seq as usize];
            s.push(t.token);
            if t.logits {
                let ctx = self.seqs[t.seq as usize].clone();
                self.model.logits(&ctx, &mut self.row);
                let hidden = if self.hidden.is_empty() {
                    None
                } else {
                    let w = self.hidden.len();
                    self.hidden.fill(0.0);
                    self.hidden[t.token as usize % w] = 1.0;
                    Some(self.hidden.as_slice())
                };
                on_row(i, &self.row, hidden);
            }
        }
        let c = &self.counters;
        c.decode_calls.fetch_add(1, Relaxed);
        c.tokens.fetch_add(batch.len() as u64, Relaxed);
        c.max_batch.fetch_max(batch.len() as u64, Relaxed);
        self.count_live();
        Ok(())
    }

    fn copy_seq(&mut self, src: SeqId, dst: SeqId, len: u32) -> Result<()> {
        let from = self.seq(src)?.clone();
        if (len as usize) > from.len() {
            return Err(EngineError::kv(format!(
                "copy of {len} positions from a sequence of {}",
                from.len()
            )));
        }
        let d = self.seq(dst)?;
        if !d.is_empty() {
            return Err(EngineError::kv(format!(
                "copy into non-empty sequence {dst}"
            )));
        }
        d.extend_from_slice(&from[..len as usize]);
        self.count_live();
        Ok(())
    }

    fn truncate_seq(&mut self, seq: SeqId, from: u32) -> Result<()> {
        if !self.info.seq_cut && from > 0 {
            return Err(EngineError::kv(format!(
                "removal of positions {from}.. of sequence {seq}: a recurrent model cannot cut a sequence"
            )));
        }
        self.seq(seq)?.truncate(from as usize);
        self.count_live();
        Ok(())
    }

    fn tokenize(&self, text: &str, _special: bool, _bos: bool) -> Result<Vec<Token>> {
        Ok(text.bytes().map(Token::from).collect())
    }

    fn piece(&self, token: Token) -> Vec<u8> {
        if (0..256).contains(&token) {
            vec![token as u8]
        } else {
            Vec::new()
        }
    }

    fn is_eog(&self, token: Token) -> bool {
        token == MOCK_EOG
    }

    fn apply_template(&self, format: &PromptFormat, messages: &[ChatMessage]) -> Result<String> {
        match format {
            PromptFormat::Model => Ok(chatml(messages)),
            PromptFormat::Named(n) if n == "chatml" => Ok(chatml(messages)),
            PromptFormat::Named(n) => Err(EngineError::template(format!(
                "the mock backend knows only chatml, not {n:?}"
            ))),
            PromptFormat::Raw => Ok(raw(messages)),
        }
    }
}
