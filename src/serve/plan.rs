//! A request becomes a job: which strategy with which settings, a context of its own
//! and the problem, all checked against the server's limits before anything runs.

use super::error::ApiError;
use super::openai::{Common as Req, Message};
use super::State;
use ponder_engine::{Budget, ChatMessage, PromptFormat};
use ponder_search::registry::{self, Entry};
use ponder_search::{Common, Cx, Overrides, Problem, Strategy};
use serde_json::{Map, Value};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// What a request asks for, ready to solve.
pub struct Job {
    /// The strategy, built and validated.
    pub strategy: Box<dyn Strategy>,
    /// The registry name it was built from.
    pub entry: &'static str,
    /// The request's own context (seed, budget, scorer, format).
    pub cx: Cx,
    /// The question and the conversation before it.
    pub problem: Problem,
    /// Choices to return.
    pub choices: usize,
    /// The `model` to echo in the reply.
    pub model: String,
    /// Set when the client goes away (or the server shuts down).
    pub cancel: Arc<AtomicBool>,
}

/// The text to answer: a conversation or a prompt to continue.
pub enum Input {
    /// `/v1/chat/completions`.
    Chat(Vec<Message>),
    /// `/v1/completions`: the text as it is, no template, no system prompt.
    Text(Value),
}

/// Build the job of a request.
pub fn plan(state: &State, input: Input, req: &Req) -> Result<Job, ApiError> {
    let limits = &state.cfg.limits;
    let ponder = req.ponder.clone().unwrap_or_default();
    let choices = req.n.unwrap_or(1);
    if choices == 0 || choices > limits.max_n {
        return Err(ApiError::invalid(
            Some("n"),
            "invalid_value",
            format!(
                "n is {choices}; this server returns 1 to {} choices (--max-n)",
                limits.max_n
            ),
        ));
    }
    let max_tokens = req.max_completion_tokens.or(req.max_tokens);
    if let Some(m) = max_tokens {
        if m == 0 || m > limits.max_tokens {
            return Err(ApiError::invalid(
                Some("max_tokens"),
                "invalid_value",
                format!(
                    "max_tokens is {m}; this server allows 1 to {} (--max-tokens)",
                    limits.max_tokens
                ),
            ));
        }
    }
    if let Some(n) = ponder.n {
        if n == 0 || n > limits.max_n {
            return Err(ApiError::invalid(
                Some("ponder.n"),
                "invalid_value",
                format!(
                    "ponder.n is {n}; this server allows 1 to {} (--max-n)",
                    limits.max_n
                ),
            ));
        }
    }
    let timeout = match ponder.timeout {
        None => limits.timeout,
        Some(t) if t > 0.0 && t <= limits.timeout.as_secs_f64() => Duration::from_secs_f64(t),
        Some(t) => {
            return Err(ApiError::invalid(
                Some("ponder.timeout"),
                "invalid_value",
                format!(
                    "ponder.timeout is {t}; this server allows (0, {}] seconds (--timeout)",
                    limits.timeout.as_secs_f64()
                ),
            ))
        }
    };

    // Which strategy.
    let model = req
        .model
        .clone()
        .unwrap_or_else(|| state.cfg.model_id.clone());
    let named = ponder.strategy.clone().unwrap_or_else(|| model.clone());
    let base = named
        .split_once(':')
        .map_or(named.as_str(), |(s, _)| s)
        .trim();
    let plain = base == state.cfg.model_id || base.is_empty();
    let sampled = req.temperature.is_some_and(|t| t > 0.0) || choices > 1;
    let name = match (plain, sampled) {
        (true, false) => "greedy",
        (true, true) => "best-of-n",
        (false, _) => base,
    };
    let entry = served(state, name)?;

    // Its settings: the request's OpenAI fields where the strategy has them, then the
    // `ponder` object (strictly: a key the strategy lacks is an error).
    let keys = registry::keys(&entry.defaults());
    let has = |k: &str| {
        keys.iter()
            .any(|x| x == k || x.starts_with(&format!("{k}.")))
    };
    let mut o = Overrides {
        common: Common {
            temperature: req.temperature.filter(|_| has("sampling.temperature")),
            top_p: req.top_p.filter(|_| has("sampling.top_p")),
            max_tokens: max_tokens.filter(|_| has("max_tokens")),
            n: ponder.n,
            ..Common::default()
        },
        ..Overrides::default()
    };
    // A strategy whose default is longer than the server allows gets the server's limit.
    let default_tokens = entry.defaults()["max_tokens"].as_u64();
    if max_tokens.is_none() && default_tokens.is_some_and(|d| d as usize > limits.max_tokens) {
        o.common.max_tokens = Some(limits.max_tokens);
    }
    if plain && sampled && o.common.n.is_none() {
        o.common.n = Some(choices);
    } else if o.common.n.is_none() {
        // Enough candidates for the choices asked for.
        if let Some(k) = entry.n_key {
            let default = entry.defaults()[k].as_u64().unwrap_or(0) as usize;
            if default < choices {
                o.common.n = Some(choices);
            }
        }
    }
    if let Some(stop) = req.stop.clone() {
        let stop = stop.into_vec();
        if stop.len() > 4 || stop.iter().any(String::is_empty) {
            return Err(ApiError::invalid(
                Some("stop"),
                "invalid_value",
                "stop: up to 4 nonempty strings",
            ));
        }
        if has("stop") && !stop.is_empty() {
            o.set_shared.push(("stop".into(), Value::from(stop)));
        }
    }
    if let Some(set) = &ponder.set {
        for (k, v) in flatten(set) {
            o.set_shared.push((k, v));
        }
    }
    let strategy = registry::resolve(&[entry.name.to_string()], &o)
        .map_err(|e| {
            let mut e = ApiError::from(e);
            e.message = e
                .message
                .replace("--n does not apply", "ponder.n does not apply");
            e
        })?
        .pop()
        .expect("one name, one strategy");
    let needs = strategy.needs();
    if needs.max_tokens > limits.max_tokens {
        return Err(ApiError::invalid(
            Some("max_tokens"),
            "invalid_value",
            format!("{} would generate up to {} tokens per sample; this server allows {} (--max-tokens)", entry.name, needs.max_tokens, limits.max_tokens),
        ));
    }
    if needs.sequences > limits.max_sequences {
        return Err(ApiError::invalid(
            Some("ponder.n"),
            "invalid_value",
            format!("{} would hold {} sequences at once; this server allows {} per request (--max-sequences)", entry.name, needs.sequences, limits.max_sequences),
        ));
    }

    // The request's own context.
    let mut cx = state.cx.clone();
    if let Some(s) = req.seed {
        cx.seed = s;
    }
    if let Some(name) = &ponder.scorer {
        let Some(s) = state.scorers.iter().find(|s| &s.name == name) else {
            let known: Vec<&str> = state.scorers.iter().map(|s| s.name.as_str()).collect();
            return Err(ApiError::invalid(
                Some("ponder.scorer"),
                "invalid_value",
                format!("unknown scorer {name:?} (this server has: {}; prm and judge need the server started with --scorer)", known.join(", ")),
            ));
        };
        cx.scorer = s.scorer.clone();
    }
    let cancel = Arc::new(AtomicBool::new(false));
    cx.budget = Budget {
        deadline: Some(std::time::Instant::now() + timeout),
        cancel: Some(cancel.clone()),
        ..cx.budget.clone()
    };
    let problem = match input {
        Input::Chat(messages) => conversation(&mut cx, messages)?,
        Input::Text(prompt) => {
            cx.format = PromptFormat::Raw;
            cx.system = None;
            let text = match prompt {
                Value::String(s) => s,
                Value::Array(mut a) if a.len() == 1 && a[0].is_string() => match a.pop() {
                    Some(Value::String(s)) => s,
                    _ => unreachable!("checked above"),
                },
                _ => {
                    return Err(ApiError::invalid(
                        Some("prompt"),
                        "invalid_value",
                        "prompt must be a string (or a list of one string)",
                    ))
                }
            };
            if text.trim().is_empty() {
                return Err(ApiError::invalid(
                    Some("prompt"),
                    "invalid_value",
                    "prompt is empty",
                ));
            }
            Problem::new(0, text)
        }
    };
    cx.provides(strategy.as_ref())?;
    Ok(Job {
        strategy,
        entry: entry.name,
        cx,
        problem,
        choices,
        model,
        cancel,
    })
}

/// The registry entry of a strategy this server runs, or 400 listing them.
fn served(state: &State, name: &str) -> Result<&'static Entry, ApiError> {
    match registry::lookup(name) {
        Ok(e) if state.cfg.strategies.contains(&e.name) => Ok(e),
        _ => Err(ApiError::invalid(
            Some("model"),
            "model_not_found",
            format!(
                "unknown model or strategy {name:?}; known: {} (the plain model), {} (optionally STRATEGY:SUFFIX)",
                state.cfg.model_id,
                state.cfg.strategies.join(", ")
            ),
        )),
    }
}

/// System messages become the system prompt; the last message must be the user's
/// question; the turns between are its history.
fn conversation(cx: &mut Cx, messages: Vec<Message>) -> Result<Problem, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::invalid(
            Some("messages"),
            "invalid_value",
            "messages is empty: send at least one user message",
        ));
    }
    let mut system = Vec::new();
    let mut turns = Vec::new();
    for (i, m) in messages.into_iter().enumerate() {
        let text = content(&m, i)?;
        match m.role.as_str() {
            "system" | "developer" => system.push(text),
            "user" | "assistant" => turns.push(ChatMessage::new(m.role, text)),
            other => {
                return Err(ApiError::invalid(
                    Some(&format!("messages[{i}].role")),
                    "invalid_value",
                    format!("role {other:?} is not supported (system, developer, user, assistant)"),
                ))
            }
        }
    }
    if !system.is_empty() {
        cx.system = Some(system.join("\n\n"));
    }
    match turns.pop() {
        Some(last) if last.role == "user" => {
            if last.content.trim().is_empty() {
                return Err(ApiError::invalid(
                    Some("messages"),
                    "invalid_value",
                    "the last user message is empty",
                ));
            }
            Ok(Problem::new(0, last.content).with_history(turns))
        }
        _ => Err(ApiError::invalid(
            Some("messages"),
            "invalid_value",
            "the last message must be the user's (the question to answer)",
        )),
    }
}

/// A message's text: a string, or the text parts of a list.
fn content(m: &Message, i: usize) -> Result<String, ApiError> {
    let bad = |why: &str| {
        ApiError::invalid(
            Some(&format!("messages[{i}].content")),
            "invalid_value",
            why.to_string(),
        )
    };
    match &m.content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut out = String::new();
            for p in parts {
                match (p["type"].as_str(), p["text"].as_str()) {
                    (Some("text"), Some(t)) => out.push_str(t),
                    _ => return Err(bad("only text content parts are supported")),
                }
            }
            Ok(out)
        }
        Some(_) => Err(bad("content must be a string or a list of text parts")),
    }
}

/// `{"a": {"b": 1}, "c.d": 2}` → `[("a.b", 1), ("c.d", 2)]` (an empty object is a value).
fn flatten(m: &Map<String, Value>) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (k, v) in m {
        match v {
            Value::Object(inner) if !inner.is_empty() && k != "unit" => {
                for (k2, v2) in flatten(inner) {
                    out.push((format!("{k}.{k2}"), v2));
                }
            }
            _ => out.push((k.clone(), v.clone())),
        }
    }
    out
}
