//! The llama.cpp backend (crate `llama-cpp-2`): one context with a unified KV cache, so a
//! fork is a metadata copy and a shared prefix is stored once. The only module that names
//! `llama_cpp_2` types.

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
            self.batch
                .add(LlamaToken(t.token), t.pos as i32, &[t.seq], t.logits)
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

/// Measurements of [`ceiling`]: a plain llama-cpp-2 loop, no engine.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CeilingRun {
    /// Tokens sampled, over all sequences.
    pub generated_tokens: u64,
    /// Wall seconds from the first generation step to the last (the prompt excluded).
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
            .map_err(|e| EngineError::decode_from("adding a prompt token to the batch", e))?;
    }
    ctx.decode(&mut batch)
        .map_err(|e| EngineError::decode_from("prefill of the prompt", e))?;
    for s in 1..n as i32 {
        ctx.kv_cache_seq_cp(0, s, None, None)
            .map_err(|e| EngineError::kv_from(format!("copy of the prompt to sequence {s}"), e))?;
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
                .map_err(|e| EngineError::decode_from("adding a sampled token to the batch", e))?;
        }
        // The last sampled token is not fed back (as in the engine).
        if step + 1 < tokens {
            ctx.decode(&mut batch)
                .map_err(|e| EngineError::decode_from(format!("generation step {step}"), e))?;
        }
    }
    std::hint::black_box(lp_sink);
    Ok(CeilingRun {
        generated_tokens: generated,
        decode_secs: t0.elapsed().as_secs_f64(),
    })
}

/// Every layer's hidden states for a token sequence, read in a llama.cpp context of its
/// own through the graph callback (`cb_eval`, which llama-cpp-2 does not wrap): the
/// embedding output (`embd`) and each layer's output (`l_out-<il>`) are copied out as
/// the graph runs. One sequence at a time, one batch per call. For ST-BoN's
/// chain-of-embedding consistency.
pub struct LayerProbe {
    model: *mut llama_cpp_sys_2::llama_model,
    ctx: *mut llama_cpp_sys_2::llama_context,
    /// What the graph callback fills, at the address given to llama.cpp as its user data:
    /// from `Box::into_raw` (a `Box` moved into `Self` and used afterwards would
    /// invalidate that pointer under Stacked Borrows); freed in `Drop` after the context.
    /// Only borrowed while no decode runs, since the callback writes through it then.
    capture: NonNull<Capture>,
    n_ctx: usize,
    n_layer: usize,
    n_embd: usize,
    /// The tokens in the probe's cache and their states: the next call re-reads only
    /// what follows the prefix it shares with them (ST-BoN's samples share the prompt).
    cached: Vec<Token>,
    rows: Vec<Vec<f32>>,
}

// SAFETY: the context, model and capture are owned by the probe alone and only touched
// through `&mut self` (one thread at a time); llama.cpp contexts may move between threads.
unsafe impl Send for LayerProbe {}

impl std::fmt::Debug for LayerProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerProbe")
            .field("n_layer", &self.n_layer)
            .field("n_embd", &self.n_embd)
            .field("n_ctx", &self.n_ctx)
            .finish()
    }
}

#[derive(Default)]
struct Capture {
    /// Index 0: the embedding output; l + 1: layer l's output. Row-major [token][dim].
    layers: Vec<Vec<f32>>,
    error: Option<String>,
    /// The slot after which the graph is stopped: nothing past the last layer's output
    /// (the output norm and the vocabulary-sized lm_head) is computed.
    last: usize,
}

/// Which capture slot a graph tensor fills, by its name.
fn capture_slot(name: &[u8]) -> Option<usize> {
    // The token embeddings: "embd" in this llama.cpp, "inp_embd" in others.
    if name == b"embd" || name == b"inp_embd" {
        return Some(0);
    }
    let il = std::str::from_utf8(name.strip_prefix(b"l_out-")?).ok()?;
    il.parse::<usize>().ok().map(|l| l + 1)
}

unsafe extern "C" fn capture_tensor(
    t: *mut llama_cpp_sys_2::ggml_tensor,
    ask: bool,
    user: *mut std::ffi::c_void,
) -> bool {
    // SAFETY: llama.cpp passes a live tensor and, as user data, the probe's `Capture`,
    // which nothing else borrows while the graph runs (see `LayerProbe::capture`).
    let (t, cap) = unsafe { (&*t, &mut *(user as *mut Capture)) };
    // SAFETY: a ggml tensor's name is a NUL-terminated array inside the live tensor.
    let name = unsafe { std::ffi::CStr::from_ptr(t.name.as_ptr()) }.to_bytes();
    let slot = capture_slot(name);
    if ask {
        return slot.is_some();
    }
    let Some(k) = slot else { return true };
    if t.type_ != llama_cpp_sys_2::GGML_TYPE_F32 {
        cap.error = Some(format!(
            "tensor {} is not f32",
            String::from_utf8_lossy(name)
        ));
        return true;
    }
    // SAFETY: `t` is the live tensor llama.cpp passed.
    let bytes = unsafe { llama_cpp_sys_2::ggml_nbytes(t) };
    if cap.layers.len() <= k {
        cap.layers.resize(k + 1, Vec::new());
    }
    let buf = &mut cap.layers[k];
    buf.resize(bytes / 4, 0.0);
    // SAFETY: the tensor is f32 (checked above), so `buf` (`bytes / 4` floats) holds
    // exactly `bytes` bytes, and `t` is live.
    unsafe {
        llama_cpp_sys_2::ggml_backend_tensor_get(t, buf.as_mut_ptr().cast(), 0, bytes);
    }
    // Returning false ends the graph here (ggml's scheduler stops the split).
    k != cap.last
}

impl LayerProbe {
    /// Load `model` again (a second copy in memory) with room for `n_ctx` tokens.
    pub fn load(model: &Path, n_ctx: u32, threads: Option<i32>) -> Result<Self> {
        use llama_cpp_sys_2 as sys;
        check_gguf(model)?;
        ggml()?;
        let path = std::ffi::CString::new(model.to_string_lossy().as_bytes())
            .map_err(|_| crate::error::invalid("model path", "contains a NUL byte"))?;
        // SAFETY: `path` is a NUL-terminated string that outlives the call; the result is
        // checked for null before use and freed in `Drop` (or below, on failure).
        let m = unsafe {
            sys::llama_model_load_from_file(path.as_ptr(), sys::llama_model_default_params())
        };
        if m.is_null() {
            return Err(EngineError::CorruptModel {
                path: model.to_path_buf(),
                reason: "llama.cpp could not load it for the layer probe".into(),
                source: None,
            });
        }
        // SAFETY: `m` is the non-null model just loaded.
        let (n_layer, n_embd) = unsafe {
            (
                sys::llama_model_n_layer(m) as usize,
                sys::llama_model_n_embd(m) as usize,
            )
        };
        let capture = NonNull::new(Box::into_raw(Box::new(Capture {
            last: n_layer,
            ..Capture::default()
        })))
        .expect("Box::into_raw is never null");
        let threads = threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() as i32)
                .unwrap_or(4)
        });
        // SAFETY: no preconditions; it returns plain data.
        let mut p = unsafe { sys::llama_context_default_params() };
        p.n_ctx = n_ctx;
        p.n_batch = n_ctx;
        p.n_ubatch = n_ctx; // one graph per call: each tensor arrives whole
        p.n_seq_max = 1;
        p.n_threads = threads;
        p.n_threads_batch = threads;
        p.cb_eval = Some(capture_tensor);
        p.cb_eval_user_data = capture.as_ptr().cast();
        // SAFETY: `m` is the live model loaded above; the callback's user data is the
        // `Capture` the probe owns until after the context is freed (see `Drop`).
        let ctx = unsafe { sys::llama_init_from_model(m, p) };
        if ctx.is_null() {
            // SAFETY: no context was made, so nothing uses `m` or `capture`: each came
            // from its allocator above and is freed once, here.
            unsafe {
                sys::llama_model_free(m);
                drop(Box::from_raw(capture.as_ptr()));
            }
            return Err(EngineError::context(format!(
                "layer probe context of {n_ctx} tokens could not be created"
            )));
        }
        Ok(Self {
            model: m,
            ctx,
            capture,
            n_ctx: n_ctx as usize,
            n_layer,
            n_embd,
            cached: Vec::new(),
            rows: Vec::new(),
        })
    }

    /// Layers (the model's, plus the embedding output).
    pub fn n_states(&self) -> usize {
        self.n_layer + 1
    }

    /// Width of one hidden vector (floats per token per state).
    pub fn n_embd(&self) -> usize {
        self.n_embd
    }

    /// For each of the `n_states()` states, the hidden vectors of every token, row-major
    /// `[token][dim]`, as if `tokens` were read from position 0 in a fresh cache. The
    /// prefix shared with the previous call is not read again.
    pub fn states(&mut self, tokens: &[Token]) -> Result<Vec<Vec<f32>>> {
        use llama_cpp_sys_2 as sys;
        let n = tokens.len();
        if n == 0 || n > self.n_ctx {
            return Err(crate::error::invalid(
                "layer probe input",
                format!("{n} tokens (1..={})", self.n_ctx),
            ));
        }
        // At least the last token is read, so every state has fresh rows to append.
        let mut k = (self.cached.iter().zip(tokens))
            .take_while(|(a, b)| a == b)
            .count()
            .min(n - 1);
        // SAFETY: the memory handle belongs to our live context.
        let kept = unsafe {
            let mem = sys::llama_get_memory(self.ctx);
            k > 0 && sys::llama_memory_seq_rm(mem, 0, k as i32, -1)
        };
        if !kept {
            k = 0;
            // SAFETY: as above: the memory of our live context.
            unsafe { sys::llama_memory_clear(sys::llama_get_memory(self.ctx), true) };
        }
        self.cached.clear();
        {
            // SAFETY: the capture lives until `Drop`, and no decode runs now (the callback
            // writes only inside `llama_decode` below), so this borrow is the only access.
            let cap = unsafe { self.capture.as_mut() };
            cap.layers.clear();
            cap.error = None;
        }
        let fresh = &tokens[k..];
        // SAFETY: the batch is allocated for the fresh tokens, one sequence id each; every
        // token is an output, so the last layer keeps all rows (llama.cpp drops non-output
        // rows inside it); the graph stops after that layer, before the lm_head.
        let rc = unsafe {
            let mut b = sys::llama_batch_init(fresh.len() as i32, 0, 1);
            for (i, &t) in fresh.iter().enumerate() {
                *b.token.add(i) = t;
                *b.pos.add(i) = (k + i) as i32;
                *b.n_seq_id.add(i) = 1;
                *(*b.seq_id.add(i)) = 0;
                *b.logits.add(i) = 1;
            }
            b.n_tokens = fresh.len() as i32;
            let turn = COMPUTE.lock();
            let rc = sys::llama_decode(self.ctx, b);
            drop(turn);
            sys::llama_batch_free(b);
            rc
        };
        if rc != 0 {
            return Err(EngineError::decode(format!(
                "layer probe decode failed ({rc})"
            )));
        }
        // SAFETY: as above: the decode has returned, so the callback is done writing.
        let cap = unsafe { self.capture.as_mut() };
        if let Some(e) = cap.error.take() {
            return Err(EngineError::decode(format!("layer probe: {e}")));
        }
        let layers = std::mem::take(&mut cap.layers);
        let want = fresh.len() * self.n_embd;
        if layers.len() != self.n_states() || layers.iter().any(|l| l.len() != want) {
            return Err(EngineError::decode(format!(
                "layer probe captured {} of {} states (sizes {:?}, want {want} each)",
                layers.len(),
                self.n_states(),
                layers.iter().map(Vec::len).collect::<Vec<_>>()
            )));
        }
        self.rows.resize(self.n_states(), Vec::new());
        for (rows, new) in self.rows.iter_mut().zip(layers) {
            rows.truncate(k * self.n_embd);
            rows.extend_from_slice(&new);
        }
        self.cached = tokens.to_vec();
        Ok(self.rows.clone())
    }
}

impl Drop for LayerProbe {
    fn drop(&mut self) {
        // SAFETY: all three were created in `load` and are freed once, here: the context
        // first (its graph callback writes to the capture, and it uses the model), then
        // the model, then the capture (from `Box::into_raw`).
        unsafe {
            llama_cpp_sys_2::llama_free(self.ctx);
            llama_cpp_sys_2::llama_model_free(self.model);
            drop(Box::from_raw(self.capture.as_ptr()));
        }
    }
}

impl crate::backend::LayerStates for parking_lot::Mutex<LayerProbe> {
    fn layer_states(&self, tokens: &[Token]) -> Result<Vec<Vec<f32>>> {
        self.lock().states(tokens)
    }
    fn n_embd(&self) -> usize {
        self.lock().n_embd()
    }
}
