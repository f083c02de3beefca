//! The OpenAI wire format: what requests carry and what replies hold. Only the fields
//! ponder reads are declared; serde ignores any other field a client sends.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `stop`: one string or a list of them.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One stop string.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Stop {
    /// The stop strings as a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        }
    }
}

/// The fields `/v1/chat/completions` and `/v1/completions` share.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Common {
    /// The model: the plain model's name, a strategy's (`best-of-n`), or `STRATEGY:SUFFIX`.
    pub model: Option<String>,
    /// Choices to return (the best distinct candidates).
    pub n: Option<usize>,
    /// Sampling temperature, where the strategy samples.
    pub temperature: Option<f32>,
    /// Nucleus sampling, where the strategy samples.
    pub top_p: Option<f32>,
    /// New tokens per sample.
    pub max_tokens: Option<usize>,
    /// New tokens per sample (the newer name; wins over `max_tokens`).
    pub max_completion_tokens: Option<usize>,
    /// Seed of every sample.
    pub seed: Option<u64>,
    /// Stop strings.
    pub stop: Option<Stop>,
    /// Server-sent events instead of one reply.
    #[serde(default)]
    pub stream: bool,
    /// `{"include_usage": true}` adds a last chunk with the usage.
    pub stream_options: Option<StreamOptions>,
    /// ponder's own settings: strategy, n, scorer, set, timeout.
    pub ponder: Option<PonderOptions>,
}

/// `stream_options`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with the usage (and no choices).
    #[serde(default)]
    pub include_usage: bool,
}

/// The `ponder` object of a request: overrides of the strategy's settings.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PonderOptions {
    /// The strategy (wins over the `model` field).
    pub strategy: Option<String>,
    /// The strategy's N (samples, beams, iterations: what `ponder solve --n` sets).
    pub n: Option<usize>,
    /// The scorer: logprob, self-certainty, verifier (prm / judge when the server loaded one).
    pub scorer: Option<String>,
    /// Any setting of the strategy, as `ponder strategies NAME` lists them
    /// (`{"sampling": {"top_k": 20}}` or `{"sampling.top_k": 20}`).
    pub set: Option<serde_json::Map<String, Value>>,
    /// Wall-clock limit for this request in seconds (at most the server's).
    pub timeout: Option<f64>,
}

/// One chat message of a request.
#[derive(Clone, Debug, Deserialize)]
pub struct Message {
    /// system, developer, user or assistant.
    pub role: String,
    /// A string, or a list of content parts of which the text parts are read.
    #[serde(default)]
    pub content: Option<Value>,
}

/// `POST /v1/chat/completions`.
#[derive(Clone, Debug, Deserialize)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<Message>,
    /// The shared fields.
    #[serde(flatten)]
    pub common: Common,
}

/// `POST /v1/completions`.
#[derive(Clone, Debug, Deserialize)]
pub struct CompletionRequest {
    /// The text to continue (one string, or a list holding one).
    pub prompt: Value,
    /// The shared fields.
    #[serde(flatten)]
    pub common: Common,
}

/// `usage` of a reply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Prompt tokens evaluated (once, however many branches fork from it).
    pub prompt_tokens: u64,
    /// Tokens generated over every branch the search ran.
    pub completion_tokens: u64,
    /// The sum.
    pub total_tokens: u64,
}

/// Why a choice ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// The model ended, or a stop string appeared.
    Stop,
    /// A limit ended it (max tokens, budget, deadline, cancel).
    Length,
}
