//! Every layer's hidden states through llama.cpp's graph callback (ST-BoN).

use super::{check_gguf, ggml, COMPUTE};
use crate::backend::Token;
use crate::error::{EngineError, Result};
use std::path::Path;
use std::ptr::NonNull;

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
