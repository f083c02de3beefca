//! A solution as an OpenAI reply: the chosen candidate (and the next best distinct
//! ones when `n` > 1) as choices, the usage, and ponder's own report.

use super::openai::{FinishReason, Usage};
use ponder_engine::Finish;
use ponder_search::{Candidate, Solution};
use serde_json::{json, Value};

/// One choice: its text and why it ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    /// The text.
    pub text: String,
    /// Why it ended.
    pub finish: FinishReason,
}

/// `stop` when the model ended (EOG or a stop string), `length` when a limit did.
pub fn finish_reason(f: Option<&Finish>) -> FinishReason {
    match f {
        Some(f) if f.is_natural() => FinishReason::Stop,
        _ => FinishReason::Length,
    }
}

/// The chosen candidate, then the others by score, without repeating a text, at most `n`.
pub fn choices(sol: &Solution, n: usize) -> Vec<Choice> {
    let mut order: Vec<usize> = (0..sol.candidates.len()).collect();
    let score = |i: usize| sol.candidates[i].score.unwrap_or(f64::NEG_INFINITY);
    order.sort_by(|&a, &b| {
        let first = |i| Some(i) == sol.chosen;
        first(b).cmp(&first(a)).then(score(b).total_cmp(&score(a)))
    });
    let mut out: Vec<Choice> = Vec::new();
    for i in order {
        let c = &sol.candidates[i];
        if out.iter().any(|o| o.text.trim() == c.text.trim()) {
            continue;
        }
        out.push(Choice {
            text: c.text.clone(),
            finish: finish_reason(c.finish.as_ref()),
        });
        if out.len() == n {
            break;
        }
    }
    if out.is_empty() {
        // Nothing generated (cancelled or timed out before the first token).
        out.push(Choice {
            text: String::new(),
            finish: FinishReason::Length,
        });
    }
    out
}

/// Every token the request cost the policy model: the prompt once, every branch's
/// generated tokens.
pub fn usage(sol: &Solution) -> Usage {
    Usage {
        prompt_tokens: sol.stats.prompt_tokens,
        completion_tokens: sol.stats.generated_tokens,
        total_tokens: sol.stats.prompt_tokens + sol.stats.generated_tokens,
    }
}

/// ponder's report: the strategy, every candidate, what the policy, the scorer's model
/// and the draft model each spent.
pub fn report(sol: &Solution, entry: &str) -> Value {
    let cands: Vec<Value> = sol.candidates.iter().map(candidate).collect();
    json!({
        "strategy": entry,
        "run": sol.strategy,
        "answer": sol.answer,
        "chosen": sol.chosen,
        "truncated": sol.truncated,
        "candidates": cands,
        "stats": sol.stats,
        "scorer_stats": sol.scorer_stats,
        "scoring_ms": sol.scoring_ms,
        "draft": sol.draft,
    })
}

fn candidate(c: &Candidate) -> Value {
    json!({
        "answer": c.answer,
        "score": c.score,
        "tokens": c.tokens,
        "finish": c.finish,
    })
}

/// A `chat.completion` or `text_completion` object.
pub fn completion(
    chat: bool,
    id: &str,
    created: u64,
    model: &str,
    choices: &[Choice],
    usage: Usage,
    ponder: Value,
) -> Value {
    let choices: Vec<Value> = choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if chat {
                json!({"index": i, "message": {"role": "assistant", "content": c.text},
                       "logprobs": null, "finish_reason": c.finish})
            } else {
                json!({"index": i, "text": c.text, "logprobs": null, "finish_reason": c.finish})
            }
        })
        .collect();
    json!({
        "id": id,
        "object": if chat { "chat.completion" } else { "text_completion" },
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage,
        "system_fingerprint": null,
        "ponder": ponder,
    })
}
