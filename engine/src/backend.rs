//! The seam between search and a model: a small, object-safe [`Backend`] trait.
//!
//! A backend owns one model context with a unified KV cache holding many sequences.
//! It knows nothing about branches, sampling or budgets: the [`crate::Engine`]'s worker
//! drives it one batch at a time and keeps all bookkeeping.

use crate::error::Result;
use serde::{Deserialize, Serialize};

/// A token id in the model's vocabulary.
pub type Token = i32;
/// A KV-cache sequence id (`0..n_seq_max`).
pub type SeqId = i32;

/// What `Backend::decode` calls for each row with logits: (row, logits, hidden state).
pub type OnRow<'a> = dyn FnMut(usize, &[f32], Option<&[f32]>) + 'a;

/// One token of a batch: which sequence, at which position, and whether its logits are wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchToken {
    /// The sequence this token extends.
    pub seq: SeqId,
    /// Its position in that sequence (0-based: the sequence's length before it).
    pub pos: u32,
    /// The token.
    pub token: Token,
    /// Whether `decode` should report the logits (and hidden state) after this token.
    pub logits: bool,
}

/// Static facts about a backend, fixed when it is created.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackendInfo {
    /// A human name (model file name, or "mock").
    pub name: String,
    /// KV cells in the unified cache (total over all sequences).
    pub n_ctx: u32,
    /// Sequence ids available (`0..n_seq_max`).
    pub n_seq_max: u32,
    /// Most tokens one `decode` may carry.
    pub n_batch: u32,
    /// Vocabulary size (length of a logits row).
    pub n_vocab: u32,
    /// Positions the model was trained for (a per-sequence limit on quality).
    pub n_ctx_train: u32,
    /// Whether the tokenizer prepends BOS to a fresh prompt.
    pub add_bos: bool,
    /// Width of the hidden states `decode` reports; 0 when it reports none.
    #[serde(default)]
    pub n_embd: u32,
    /// Whether a sequence can be cut back to any position (`truncate_seq` with
    /// `from > 0`). False for recurrent and hybrid models, whose state cannot be
    /// rewound: the engine refuses such backends, since forks, step searches and error
    /// recovery all cut sequences back.
    #[serde(default = "yes")]
    pub seq_cut: bool,
}

fn yes() -> bool {
    true
}

impl BackendInfo {
    /// Check what the engine's worker relies on: at least one KV cell, sequence (and at
    /// most `i32::MAX`, the range of [`SeqId`]), batch token and vocabulary entry, and
    /// sequences that can be cut back ([`BackendInfo::seq_cut`]).
    /// [`crate::Engine::spawn`] refuses a backend that fails this (with `n_batch` 0 the
    /// worker could never decode and would spin).
    pub fn validate(&self) -> Result<()> {
        let bad = |name, reason: String| Err(crate::error::invalid(name, reason));
        if self.n_ctx == 0 {
            return bad("n_ctx", format!("0 for {} (must be ≥ 1)", self.name));
        }
        if self.n_seq_max == 0 || self.n_seq_max > i32::MAX as u32 {
            return bad(
                "n_seq_max",
                format!("{} for {} (1..={})", self.n_seq_max, self.name, i32::MAX),
            );
        }
        if self.n_batch == 0 {
            return bad(
                "n_batch",
                format!("0 for {} (must be ≥ 1: most tokens per decode)", self.name),
            );
        }
        if self.n_vocab == 0 {
            return bad("n_vocab", format!("0 for {} (must be ≥ 1)", self.name));
        }
        if !self.seq_cut {
            return Err(crate::error::EngineError::UnsupportedModel {
                name: self.name.clone(),
                reason: crate::error::CANNOT_CUT.into(),
            });
        }
        Ok(())
    }
}

/// Every layer's hidden states for a token sequence (ST-BoN's chain of embedding):
/// index 0 the embedding output, then one per layer, each row-major `[token][dim]`.
pub trait LayerStates: Send + Sync + std::fmt::Debug {
    /// Each state's hidden vectors for `tokens` read from position 0: one `Vec` per
    /// state (embedding output first, then each layer), `tokens.len() × n_embd()` floats.
    fn layer_states(&self, tokens: &[Token]) -> Result<Vec<Vec<f32>>>;
    /// Width of one hidden vector (floats per token per state).
    fn n_embd(&self) -> usize;
}

/// How a question becomes a prompt.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PromptFormat {
    /// The chat template stored in the model file.
    #[default]
    Model,
    /// A template llama.cpp knows by name: "chatml", "llama3", "gemma", …
    Named(String),
    /// No template: the text as it is (base models).
    Raw,
}

impl std::str::FromStr for PromptFormat {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(match s {
            "model" | "auto" => PromptFormat::Model,
            "raw" | "none" => PromptFormat::Raw,
            other => PromptFormat::Named(other.to_string()),
        })
    }
}

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who speaks: "system", "user" or "assistant".
    pub role: String,
    /// What they say.
    pub content: String,
}

impl ChatMessage {
    /// A message from `role` saying `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A model context able to decode batches over many KV sequences.
///
/// Contract (the engine keeps it; implementations may rely on it and should reject
/// violations with an error, never abort): a batch has at most `n_batch` tokens; each
/// token's `pos` is its sequence's next position; sequence ids are `< n_seq_max`.
pub trait Backend: Send {
    /// Facts about this backend.
    fn info(&self) -> &BackendInfo;
    /// Evaluate a batch; call `on_row(i, logits, hidden)` for every entry `i` that asked
    /// for logits. `hidden` is the final-layer hidden state at that position, when the
    /// backend was created with hidden states (`BackendInfo::n_embd > 0`).
    fn decode(&mut self, batch: &[BatchToken], on_row: &mut OnRow<'_>) -> Result<()>;
    /// Make `dst` (empty) share the first `len` positions of `src` (a metadata copy).
    fn copy_seq(&mut self, src: SeqId, dst: SeqId, len: u32) -> Result<()>;
    /// Drop positions `from..` of `seq` (`from = 0` empties it).
    fn truncate_seq(&mut self, seq: SeqId, from: u32) -> Result<()>;
    /// Tokenize text; `special` parses control tokens such as `<|im_start|>`, `bos` prepends BOS.
    fn tokenize(&self, text: &str, special: bool, bos: bool) -> Result<Vec<Token>>;
    /// The bytes of one token (may be a partial UTF-8 sequence).
    fn piece(&self, token: Token) -> Vec<u8>;
    /// Whether the token ends generation (EOS, EOT, `<|im_end|>`, …).
    fn is_eog(&self, token: Token) -> bool;
    /// Render messages through a chat template, ending with the assistant's turn opened.
    fn apply_template(&self, format: &PromptFormat, messages: &[ChatMessage]) -> Result<String>;
}

/// ChatML, rendered in Rust: the fallback every backend can use.
pub fn chatml(messages: &[ChatMessage]) -> String {
    let mut s = String::new();
    for m in messages {
        s.push_str("<|im_start|>");
        s.push_str(&m.role);
        s.push('\n');
        s.push_str(&m.content);
        s.push_str("<|im_end|>\n");
    }
    s.push_str("<|im_start|>assistant\n");
    s
}

/// Raw format: the contents joined by blank lines.
pub fn raw(messages: &[ChatMessage]) -> String {
    messages
        .iter()
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join("\n\n")
}
