//! The llama.cpp backend (crate `llama-cpp-2`): one context with a unified KV cache, so a
//! fork is a metadata copy and a shared prefix is stored once. The only module that names
//! `llama_cpp_2` types.

use crate::backend::{
    raw, Backend, BackendInfo, BatchToken, ChatMessage, OnRow, PromptFormat, SeqId, Token,
};
use crate::error::{EngineError, Result};
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
use std::sync::OnceLock;

/// Settings for loading a GGUF model into a context.
#[derive(Clone, Debug)]
pub struct LlamaConfig {
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
    static GGML: OnceLock<std::result::Result<Ggml, String>> = OnceLock::new();
    GGML.get_or_init(|| {
        let mut b = Ggml::init().map_err(|e| e.to_string())?;
        if std::env::var_os("PONDER_LLAMA_LOG").is_none() {
            b.void_logs();
        }
        Ok(b)
    })
    .as_ref()
    .map_err(|e| EngineError::Context(format!("llama backend init: {e}")))
}

/// Check the file before llama.cpp sees it: exists, readable, GGUF magic.
pub fn check_gguf(path: &Path) -> Result<()> {
    if !path.exists() {
        return Err(EngineError::ModelNotFound(path.to_path_buf()));
    }
    let corrupt = |reason: String| EngineError::CorruptModel {
        path: path.to_path_buf(),
        reason,
    };
    let mut f = std::fs::File::open(path).map_err(|e| corrupt(e.to_string()))?;
    let mut magic = [0u8; 4];
    f.read_exact(&mut magic)
        .map_err(|_| corrupt("file shorter than a GGUF header".into()))?;
    if &magic != b"GGUF" {
        return Err(corrupt(format!("no GGUF magic (starts with {magic:02x?})")));
    }
    Ok(())
}

/// A loaded model and its context. Field order matters: the context borrows the model
/// and is dropped first.
pub struct LlamaCpp {
    ctx: LlamaContext<'static>,
    batch: LlamaBatch<'static>,
    model: Box<LlamaModel>,
    info: BackendInfo,
}

// SAFETY: the context is `Send`; it is only used by the thread that owns this value.
// The model it borrows lives in the same struct, on the heap, and outlives it.

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
                reason: format!("llama.cpp could not load it ({e})"),
            }
        })?;
        let model = Box::new(model);
        // SAFETY: `model` is boxed (stable address) and stored next to the context, which
        // is declared first and so dropped first.
        let model_ref: &'static LlamaModel = unsafe { &*(model.as_ref() as *const LlamaModel) };
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
        let ctx = model_ref.new_context(ggml, params).map_err(|e| {
            EngineError::Context(format!(
                "{e}; n_ctx {} may be too large for memory",
                cfg.n_ctx
            ))
        })?;
        let vocab = model.vocab();
        let info = BackendInfo {
            name: cfg
                .model
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            n_ctx: ctx.n_ctx(),
            n_seq_max: cfg.n_seq_max,
            n_batch: ctx.n_batch(),
            n_vocab: model.n_vocab() as u32,
            n_ctx_train: model.n_ctx_train(),
            add_bos: vocab.should_add_bos(),
            n_embd: if cfg.hidden_states {
                model.n_embd_out() as u32
            } else {
                0
            },
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
            return Err(EngineError::Decode(format!(
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
                return Err(EngineError::Decode(format!("bad batch entry {t:?}")));
            }
            self.batch
                .add(LlamaToken(t.token), t.pos as i32, &[t.seq], t.logits)
                .map_err(|e| EngineError::Decode(e.to_string()))?;
        }
        self.ctx.decode(&mut self.batch).map_err(|e| match e {
            DecodeError::NoKvCacheSlot => {
                EngineError::Decode("no KV cache slot (context full)".into())
            }
            e => EngineError::Decode(e.to_string()),
        })?;
        for (i, t) in batch.iter().enumerate() {
            if t.logits {
                let hidden = if self.info.n_embd > 0 {
                    Some(self.ctx.embeddings_ith(i as i32).map_err(|e| {
                        EngineError::Decode(format!("hidden state of row {i}: {e:?}"))
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
            .map_err(|e| EngineError::Kv(e.to_string()))
    }

    fn truncate_seq(&mut self, seq: SeqId, from: u32) -> Result<()> {
        self.ctx
            .kv_cache_seq_rm(seq, Some(from), None)
            .map(|_| ())
            .map_err(|e| EngineError::Kv(e.to_string()))
    }

    fn tokenize(&self, text: &str, special: bool, bos: bool) -> Result<Vec<Token>> {
        Ok(self
            .model
            .vocab()
            .tokenize(text.as_bytes(), bos, special)
            .into_iter()
            .map(|t| t.0)
            .collect())
    }

    fn piece(&self, token: Token) -> Vec<u8> {
        self.model
            .vocab()
            .token_to_piece(LlamaToken(token), false, None)
    }

    fn is_eog(&self, token: Token) -> bool {
        self.model.vocab().is_eog(LlamaToken(token))
    }

    fn apply_template(&self, format: &PromptFormat, messages: &[ChatMessage]) -> Result<String> {
        let tmpl = match format {
            PromptFormat::Raw => return Ok(raw(messages)),
            PromptFormat::Model => self.model.chat_template(None).map_err(|_| {
                EngineError::Template(format!(
                    "{} has no chat template; pass a template name (e.g. chatml) or raw",
                    self.info.name
                ))
            })?,
            PromptFormat::Named(n) => {
                LlamaChatTemplate::new(n).map_err(|e| EngineError::Template(e.to_string()))?
            }
        };
        let msgs = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| EngineError::Template(e.to_string()))?;
        self.model
            .apply_chat_template(&tmpl, &msgs, true)
            .map_err(|e| {
                EngineError::Template(format!(
                    "llama.cpp could not apply the template ({e}); try chatml or raw"
                ))
            })
    }
}

/// Measurements of [`ceiling`]: a plain llama-cpp-2 loop, no engine.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CeilingRun {
    pub generated_tokens: u64,
    pub decode_secs: f64,
}

/// The reference loop the engine is measured against: prefill `prompt` once, copy it into
/// `n` sequences, then generate `tokens` tokens on each, one batched decode per step,
/// sampling each sequence with its own llama.cpp chain (temperature, dist) and computing
/// the sampled token's log-probability, as the engine does. Timed from the first
/// generation step (the prompt is excluded, as for the engine's rate).
pub fn ceiling(
    cfg: &LlamaConfig,
    prompt: &[Token],
    n: usize,
    tokens: usize,
    temperature: f32,
    seed: u32,
) -> Result<CeilingRun> {
    use llama_cpp_2::sampling::LlamaSampler;
    let mut be = LlamaCpp::load(cfg)?;
    let ctx = &mut be.ctx;
    let mut batch = LlamaBatch::new(be.info.n_batch as usize, 1);
    for (i, &t) in prompt.iter().enumerate() {
        batch
            .add(LlamaToken(t), i as i32, &[0], i + 1 == prompt.len())
            .map_err(|e| EngineError::Decode(e.to_string()))?;
    }
    ctx.decode(&mut batch)
        .map_err(|e| EngineError::Decode(e.to_string()))?;
    for s in 1..n as i32 {
        ctx.kv_cache_seq_cp(0, s, None, None)
            .map_err(|e| EngineError::Kv(e.to_string()))?;
    }
    let mut samplers: Vec<LlamaSampler> = (0..n)
        .map(|i| {
            LlamaSampler::chain_simple([
                LlamaSampler::temp(temperature),
                LlamaSampler::dist(seed + i as u32),
            ])
        })
        .collect();
    let mut rows = vec![(prompt.len() - 1) as i32; n];
    let mut generated = 0u64;
    let mut lp_sink = 0f32;
    let t0 = std::time::Instant::now();
    for (step, pos) in (0..tokens).zip(prompt.len() as i32..) {
        batch.clear();
        for (s, sampler) in samplers.iter_mut().enumerate() {
            let tok = sampler.sample(ctx, rows[s]);
            lp_sink += crate::sampling::token_logprob(ctx.get_logits_ith(rows[s]), tok.0);
            generated += 1;
            rows[s] = batch.n_tokens();
            batch
                .add(tok, pos, &[s as i32], true)
                .map_err(|e| EngineError::Decode(e.to_string()))?;
        }
        // The last sampled token is not fed back (as in the engine).
        if step + 1 < tokens {
            ctx.decode(&mut batch)
                .map_err(|e| EngineError::Decode(e.to_string()))?;
        }
    }
    std::hint::black_box(lp_sink);
    Ok(CeilingRun {
        generated_tokens: generated,
        decode_secs: t0.elapsed().as_secs_f64(),
    })
}
