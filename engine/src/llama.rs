//! The llama.cpp backend (crate `llama-cpp-2`): one context with a unified KV cache, so a
//! fork is a metadata copy and a shared prefix is stored once. The only module (with its
//! submodules: the [`ceiling`] loop and the [`LayerProbe`]) that names `llama_cpp_2` types.

mod ceiling;
mod layer_probe;
pub use ceiling::{ceiling, CeilingRun};
pub use layer_probe::LayerProbe;

use crate::backend::{
    raw, Backend, BackendInfo, BatchToken, ChatMessage, OnRow, PromptFormat, SeqId, Token,
};
use crate::error::{EngineError, ErrorSource, Result};
use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend as Ggml;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::DecodeError;
use std::io::Read;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::{Arc, OnceLock};

/// Held around every llama.cpp decode in this process. Each context computes with all
/// cores and ggml's threads spin at their barriers, so two contexts decoding at once (a
/// policy and its PRM, a draft and its target, the ST-BoN layer probe) oversubscribe the
/// CPU and both slow down several-fold; taking turns is faster.
static COMPUTE: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

/// Settings for loading a GGUF model into a context.
#[derive(Clone, Debug)]
pub struct LlamaConfig {
    /// Path of the GGUF file.
    pub model: PathBuf,
    /// KV cells shared by all sequences (prompt once + every branch's own tokens).
    pub n_ctx: u32,
    /// Sequences (live branches) at once; at most 256.
    pub n_seq_max: u32,
    /// Most tokens per decode call.
    pub n_batch: u32,
    /// Compute threads (default: all cores).
    pub threads: Option<i32>,
    /// Layers to offload to a GPU (needs a `cuda`/`metal`/`vulkan` build).
    pub gpu_layers: u32,
    /// Report the final-layer hidden state of every sampled position (ST-BoN). Makes
    /// every batch token an output, so prompts cost more: leave off unless needed.
    pub hidden_states: bool,
}

impl LlamaConfig {
    /// Settings for `model`: 8192 KV cells, 64 sequences, batches of 512 tokens, all
    /// cores, no GPU layers, no hidden states.
    pub fn new(model: impl Into<PathBuf>) -> Self {
        Self {
            model: model.into(),
            n_ctx: 8192,
            n_seq_max: 64,
            n_batch: 512,
            threads: None,
            gpu_layers: 0,
            hidden_states: false,
        }
    }
}

fn ggml() -> Result<&'static Ggml> {
    static GGML: OnceLock<std::result::Result<Ggml, ErrorSource>> = OnceLock::new();
    GGML.get_or_init(|| {
        let mut b = Ggml::init().map_err(|e| Arc::new(e) as ErrorSource)?;
        if std::env::var_os("PONDER_LLAMA_LOG").is_none() {
            b.void_logs();
        }
        Ok(b)
    })
    .as_ref()
    .map_err(|e| EngineError::Context {
        reason: "llama backend init".into(),
        source: Some(e.clone()),
    })
}

/// Check the file before llama.cpp sees it: exists, readable, GGUF magic.
pub fn check_gguf(path: &Path) -> Result<()> {
    if !path.exists() {
        return Err(EngineError::ModelNotFound(path.to_path_buf()));
    }
    let corrupt = |reason: String, source: Option<std::io::Error>| EngineError::CorruptModel {
        path: path.to_path_buf(),
        reason,
        source: source.map(|e| Arc::new(e) as ErrorSource),
    };
    let mut f = std::fs::File::open(path).map_err(|e| corrupt("cannot open it".into(), Some(e)))?;
    let mut magic = [0u8; 4];
    f.read_exact(&mut magic)
        .map_err(|e| corrupt("file shorter than a GGUF header".into(), Some(e)))?;
    if &magic != b"GGUF" {
        return Err(corrupt(
            format!("no GGUF magic (starts with {magic:02x?})"),
            None,
        ));
    }
    Ok(())
}

/// A loaded model and its context. The context borrows the model for as long as it
/// lives: `ctx` is declared before `model`, so it is dropped first.
pub struct LlamaCpp {
    /// Made from `model`'s [`PinnedModel::borrow_static`]; must drop before `model`.
    ctx: LlamaContext<'static>,
    batch: LlamaBatch<'static>,
    model: PinnedModel,
    info: BackendInfo,
}

/// A `LlamaModel` at a fixed heap address, owned through the pointer `Box::into_raw`
/// gave (not a `Box`, whose every move would assert unique access and so invalidate
/// the context's borrow under Stacked Borrows). Moving this moves only the pointer;
/// dropping it frees the model.
struct PinnedModel(NonNull<LlamaModel>);

// SAFETY: `PinnedModel` owns its model as a `Box<LlamaModel>` would (nothing else frees
// it or borrows it mutably), and `LlamaModel` is `Send + Sync` (llama-cpp-2), so moving
// the owner to another thread is as sound as moving the box; the shared borrows it hands
// out stay with the context that lives next to it.
unsafe impl Send for PinnedModel {}

impl PinnedModel {
    fn new(model: LlamaModel) -> Self {
        Self(NonNull::new(Box::into_raw(Box::new(model))).expect("Box::into_raw is never null"))
    }

    /// The model, borrowed for as long as `self` lives.
    fn get(&self) -> &LlamaModel {
        // SAFETY: the pointer came from `Box::into_raw` and stays valid until `drop`;
        // the model is only ever borrowed shared, so this borrow aliases nothing mutable.
        unsafe { self.0.as_ref() }
    }

    /// The model, borrowed as `'static` for a context that must not outlive `self`.
    ///
    /// # Safety
    /// Everything holding the returned borrow (the context made from it) must be dropped
    /// before `self` is.
    unsafe fn borrow_static(&self) -> &'static LlamaModel {
        // SAFETY: as in `get`; the caller promises the borrow ends before `self` drops,
        // which is when the model is freed.
        unsafe { &*self.0.as_ptr() }
    }
}

impl Drop for PinnedModel {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `Box::into_raw` in `new` and is freed only here,
        // once; every borrower (the context, see `borrow_static`) is gone by now.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

impl LlamaCpp {
    /// Load a GGUF model and create its context (call on the thread that will own it).
    pub fn load(cfg: &LlamaConfig) -> Result<Self> {
        check_gguf(&cfg.model)?;
        if cfg.n_seq_max == 0 || cfg.n_seq_max > 256 {
            return Err(crate::error::invalid(
                "n_seq_max",
                format!("{} (1..=256)", cfg.n_seq_max),
            ));
        }
        if cfg.n_batch == 0 {
            return Err(crate::error::invalid(
                "n_batch",
                "0 (must be ≥ 1: most tokens per decode)",
            ));
        }
        if cfg.n_ctx < 16 {
            return Err(crate::error::invalid(
                "n_ctx",
                format!("{} (≥ 16)", cfg.n_ctx),
            ));
        }
        let ggml = ggml()?;
        let mparams = LlamaModelParams::default().with_n_gpu_layers(cfg.gpu_layers);
        let model = LlamaModel::load_from_file(ggml, &cfg.model, &mparams).map_err(|e| {
            EngineError::CorruptModel {
                path: cfg.model.clone(),
                reason: "llama.cpp could not load it".into(),
                source: Some(Arc::new(e)),
            }
        })?;
        if model.is_recurrent() || model.is_hybrid() {
            // Refused before a context is made: llama.cpp's memory for these models
            // cannot remove a range of positions from a sequence.
            return Err(EngineError::UnsupportedModel {
                name: cfg.model.display().to_string(),
                reason: crate::error::CANNOT_CUT.into(),
            });
        }
        let model = PinnedModel::new(model);
        let threads = cfg.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() as i32)
                .unwrap_or(4)
        });
        let n_batch = cfg.n_batch.min(cfg.n_ctx);
        let mut params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(cfg.n_ctx))
            .with_n_batch(n_batch)
            .with_n_ubatch(n_batch)
            .with_n_seq_max(cfg.n_seq_max)
            .with_kv_unified(true)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        if cfg.hidden_states {
            // Per-token final-layer states, no pooling: `embeddings_ith(row)`.
            params = params
                .with_embeddings(true)
                .with_pooling_type(LlamaPoolingType::None);
        }
        // SAFETY: the context is stored with `model` in the `LlamaCpp` returned below, in
        // the field declared before it, so it is dropped first; if it cannot be made,
        // nothing holds the borrow when `model` drops on the way out.
        let model_ref = unsafe { model.borrow_static() };
        let ctx = model_ref.new_context(ggml, params).map_err(|e| {
            EngineError::context_from(
                format!("n_ctx {} may be too large for memory", cfg.n_ctx),
                e,
            )
        })?;
        let vocab = model.get().vocab();
        let info = BackendInfo {
            name: cfg
                .model
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            n_ctx: ctx.n_ctx(),
            n_seq_max: cfg.n_seq_max,
            n_batch: ctx.n_batch(),
            n_vocab: model.get().n_vocab() as u32,
            n_ctx_train: model.get().n_ctx_train(),
            add_bos: vocab.should_add_bos(),
            n_embd: if cfg.hidden_states {
                model.get().n_embd_out() as u32
            } else {
                0
            },
            seq_cut: true, // recurrent and hybrid models were refused above
        };
        Ok(Self {
            ctx,
            batch: LlamaBatch::new(info.n_batch as usize, 1),
            model,
            info,
        })
    }
}

impl Backend for LlamaCpp {
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
        self.batch.clear();
        for t in batch {
            if t.seq < 0
                || t.seq as u32 >= self.info.n_seq_max
                || t.token < 0
                || t.token as u32 >= self.info.n_vocab
            {
                return Err(EngineError::decode(format!("bad batch entry {t:?}")));
            }
            let pos = i32::try_from(t.pos)
                .map_err(|_| EngineError::decode(format!("position of {t:?} past i32::MAX")))?;
            self.batch
                .add(LlamaToken(t.token), pos, &[t.seq], t.logits)
                .map_err(|e| EngineError::decode_from(format!("adding {t:?} to the batch"), e))?;
        }
        let turn = COMPUTE.lock();
        let decoded = self.ctx.decode(&mut self.batch);
        drop(turn);
        decoded.map_err(|e| match e {
            // llama.cpp keeps no count the engine can read: the worker fills in `free`.
            DecodeError::NoKvCacheSlot => EngineError::KvFull {
                needed: batch.len(),
                free: 0,
                n_ctx: self.info.n_ctx,
            },
            e => EngineError::decode_from(
                format!("llama.cpp rejected a batch of {} tokens", batch.len()),
                e,
            ),
        })?;
        for (i, t) in batch.iter().enumerate() {
            if t.logits {
                let hidden = if self.info.n_embd > 0 {
                    Some(self.ctx.embeddings_ith(i as i32).map_err(|e| {
                        EngineError::decode_from(format!("hidden state of row {i}"), e)
                    })?)
                } else {
                    None
                };
                on_row(i, self.ctx.get_logits_ith(i as i32), hidden);
            }
        }
        Ok(())
    }

    fn copy_seq(&mut self, src: SeqId, dst: SeqId, len: u32) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        self.ctx
            .kv_cache_seq_cp(src, dst, Some(0), Some(len))
            .map_err(|e| {
                EngineError::kv_from(
                    format!("copy of {len} positions from sequence {src} to {dst}"),
                    e,
                )
            })
    }

    fn truncate_seq(&mut self, seq: SeqId, from: u32) -> Result<()> {
        self.ctx
            .kv_cache_seq_rm(seq, Some(from), None)
            .map(|_| ())
            .map_err(|e| {
                EngineError::kv_from(
                    format!("removal of positions {from}.. of sequence {seq}"),
                    e,
                )
            })
    }

    fn tokenize(&self, text: &str, special: bool, bos: bool) -> Result<Vec<Token>> {
        Ok(self
            .model
            .get()
            .vocab()
            .tokenize(text.as_bytes(), bos, special)
            .into_iter()
            .map(|t| t.0)
            .collect())
    }

    fn piece(&self, token: Token) -> Vec<u8> {
        self.model
            .get()
            .vocab()
            .token_to_piece(LlamaToken(token), false, None)
    }

    fn is_eog(&self, token: Token) -> bool {
        self.model.get().vocab().is_eog(LlamaToken(token))
    }

    fn apply_template(&self, format: &PromptFormat, messages: &[ChatMessage]) -> Result<String> {
        let tmpl = match format {
            PromptFormat::Raw => return Ok(raw(messages)),
            PromptFormat::Model => self.model.get().chat_template(None).map_err(|e| {
                EngineError::template_from(
                    format!(
                        "{} has no chat template; pass a template name (e.g. chatml) or raw",
                        self.info.name
                    ),
                    e,
                )
            })?,
            PromptFormat::Named(n) => LlamaChatTemplate::new(n).map_err(|e| {
                EngineError::template_from(format!("template name {n:?} has a NUL byte"), e)
            })?,
        };
        let msgs = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| EngineError::template_from("a message has a NUL byte", e))?;
        self.model
            .get()
            .apply_chat_template(&tmpl, &msgs, true)
            .map_err(|e| {
                EngineError::template_from(
                    "llama.cpp could not apply the template; try chatml or raw",
                    e,
                )
            })
    }
}
