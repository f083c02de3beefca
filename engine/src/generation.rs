//! What a caller asks generation for ([`GenSpec`]) and how a generation ended ([`Finish`]).

use crate::error::Result;
use crate::sampling::SamplingParams;

/// How a generation ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// The model emitted an end-of-generation token.
    Eog,
    /// A stop string appeared (it is kept in the text).
    Stop(String),
    /// The request's `max_tokens` was reached.
    MaxTokens,
    /// The problem's token budget ran out.
    Budget,
    /// The problem's deadline passed.
    Deadline,
    /// The problem was cancelled.
    Cancelled,
}

impl Finish {
    /// True when the model itself ended (EOG or stop string), not a limit.
    pub fn is_natural(&self) -> bool {
        matches!(self, Finish::Eog | Finish::Stop(_))
    }
}

/// What to generate in one `extend`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GenSpec {
    /// How each token is drawn.
    pub sampling: SamplingParams,
    /// Most tokens to sample in this call (≥ 1).
    pub max_tokens: usize,
    /// Stop once the text generated in this call contains one of these.
    pub stop: Vec<String>,
    /// Treat end-of-generation like any token and keep sampling (benchmarks only:
    /// every branch then generates exactly `max_tokens`).
    #[serde(default)]
    pub ignore_eog: bool,
    /// Record, for each sampled token, the model's final-layer hidden state at the
    /// position that predicted it (needs a backend with hidden states).
    #[serde(default)]
    pub hidden: bool,
}

impl GenSpec {
    /// Sample up to `max_tokens` tokens with `sampling`, ending at end-of-generation; no
    /// stop strings, no hidden states.
    pub fn new(sampling: SamplingParams, max_tokens: usize) -> Self {
        Self {
            sampling,
            max_tokens,
            stop: Vec::new(),
            ignore_eog: false,
            hidden: false,
        }
    }
    /// The same spec, stopping at any of `stop` (replacing its stop strings).
    pub fn with_stop(mut self, stop: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.stop = stop.into_iter().map(Into::into).collect();
        self
    }
    /// Check ranges (`max_tokens` ≥ 1, no empty stop string, the sampling settings);
    /// errors name the parameter.
    pub fn validate(&self) -> Result<()> {
        if self.max_tokens == 0 {
            return Err(crate::error::invalid("max_tokens", "0 (must be ≥ 1)"));
        }
        if self.stop.iter().any(|s| s.is_empty()) {
            return Err(crate::error::invalid("stop", "empty stop string"));
        }
        self.sampling.validate()
    }
}
