//! The reference loop the engine's throughput is measured against.

use super::{LlamaConfig, LlamaCpp};
use crate::backend::Token;
use crate::error::{EngineError, Result};
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::token::LlamaToken;

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
