//! The [`Strategy`] trait and what flows through it: a [`Problem`] in, a [`Solution`] out,
//! under a [`Cx`] that says which engine, prompt format, scorer, seed and budget to use.

use crate::answer::extract_answer;
use ponder_engine::{
    Branch, Budget, ChatMessage, Engine, EngineError, Finish, LayerStates, Prompt, PromptFormat,
    Stats,
};
use ponder_scorers::{model_free_signals, MeanLogprob, Sample, ScoreError, Scorer};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Errors of a search.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    /// The engine failed (KV cache full, decode error, model load, ...).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The scorer failed outside a step of a search (e.g. scoring finished candidates).
    #[error(transparent)]
    Score(#[from] ScoreError),
    /// A setting's value is out of range for this search.
    #[error("invalid {name}: {reason}")]
    InvalidParam {
        /// The setting (or settings) at fault, e.g. `"iterations"`.
        name: &'static str,
        /// The value and what is allowed, e.g. `"0 (must be ≥ 1)"`.
        reason: String,
    },
    /// A strategy name the registry does not know.
    #[error("unknown strategy {0:?} (known: {known})", known = crate::registry::names().join(", "))]
    UnknownStrategy(String),
    /// Settings that do not make a strategy: names the strategy, the key and why.
    #[error("{strategy}: {reason}")]
    Setting {
        /// The strategy (or strategies) the settings were for.
        strategy: String,
        /// What is wrong, naming the key and the allowed values.
        reason: String,
    },
    /// The context lacks a resource the strategy declared in [`Needs`].
    #[error("{strategy} needs {what}, which the context does not provide ({hint})")]
    Missing {
        /// The strategy's name.
        strategy: String,
        /// The resource.
        what: &'static str,
        /// How to provide it.
        hint: &'static str,
    },
    /// A scorer failed on a step of a search; names the branch(es) and the step.
    #[error("scoring step {step} of branch {branches}: {source}", branches = fmt_ids(.branches))]
    Scoring {
        /// The depth of the step being scored: 0 for the root (the bare prompt), 1 for
        /// the first reasoning step.
        step: usize,
        /// The engine ids of the branches whose step was being scored.
        branches: Vec<u64>,
        /// The scorer's error.
        #[source]
        source: Box<ScoreError>,
    },
}

fn fmt_ids(ids: &[u64]) -> String {
    let s: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    s.join(", ")
}

pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> SearchError {
    SearchError::InvalidParam {
        name,
        reason: reason.into(),
    }
}

/// One question to answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Problem {
    /// Stable id (seeds derive from it, so the same id gives the same samples).
    pub id: u64,
    /// The question as posed, without chat template or system prompt.
    pub question: String,
    /// Earlier turns of a conversation (user and assistant messages, oldest first) that
    /// come between the system prompt and the question; empty for a lone question.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<ChatMessage>,
}

impl Problem {
    /// A problem with its id and question text.
    pub fn new(id: u64, question: impl Into<String>) -> Self {
        Self {
            id,
            question: question.into(),
            history: Vec::new(),
        }
    }

    /// The same problem asked after earlier turns of a conversation (literal text, like
    /// the question).
    pub fn with_history(mut self, history: Vec<ChatMessage>) -> Self {
        self.history = history;
        self
    }
}

/// The default system prompt: reason step by step, box the answer.
pub const MATH_SYSTEM_PROMPT: &str =
    "Please reason step by step, and put your final answer within \\boxed{}.";

/// Everything a strategy needs besides its own settings.
#[derive(Clone)]
pub struct Cx {
    /// The policy model's engine: every strategy generates with it.
    pub engine: Engine,
    /// How the system prompt and question become prompt text (the model's chat
    /// template, or raw text for base models).
    pub format: PromptFormat,
    /// System prompt (None: user message only; base models with `Raw` get it prepended).
    pub system: Option<String>,
    /// Rates candidates and reasoning steps (higher is better); only consulted when
    /// [`Needs::scorer`] is set.
    pub scorer: Arc<dyn Scorer>,
    /// The run's seed; each problem's sampling seeds derive from it and the problem's id.
    pub seed: u64,
    /// Per-problem budget (its deadline is an instant, shared by every solve using this `Cx`).
    pub budget: Budget,
    /// The draft model's engine, for strategies whose [`Needs::draft_model`] is set (RSD).
    pub draft: Option<Engine>,
    /// Every layer's hidden states of the policy model, for [`Needs::layer_probe`] (ST-BoN).
    pub layers: Option<Arc<dyn LayerStates>>,
    /// Where model-written programs run (program-aided strategies). The default runs
    /// them in this process, for trusted programs only; the CLI runs each in a capped
    /// child process ([`crate::program::Executor::Subprocess`]).
    pub programs: crate::program::Executor,
}

/// What a strategy needs besides its settings, declared so that callers provide it
/// (and size engines) before solving instead of guessing from its name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Needs {
    /// The most KV sequences one solve holds at once in the policy engine.
    pub sequences: usize,
    /// The most new tokens one sequence generates (KV sizing).
    pub max_tokens: usize,
    /// A second, smaller model in [`Cx::draft`].
    pub draft_model: bool,
    /// Every layer's hidden states through [`Cx::layers`].
    pub layer_probe: bool,
    /// A policy engine loaded with final-layer hidden states.
    pub hidden_states: bool,
    /// Whether [`Cx::scorer`] is consulted (a scorer with its own model need not be loaded
    /// when it is not).
    pub scorer: bool,
}

impl Cx {
    /// Defaults: the model's chat template, the math system prompt, the mean-logprob scorer, seed 0.
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            format: PromptFormat::Model,
            system: Some(MATH_SYSTEM_PROMPT.into()),
            scorer: Arc::new(MeanLogprob),
            seed: 0,
            budget: Budget::unlimited(),
            draft: None,
            layers: None,
            programs: crate::program::Executor::default(),
        }
    }

    /// Fail before any work when the context lacks what `strategy` declared it needs.
    pub fn provides(&self, strategy: &dyn Strategy) -> Result<(), SearchError> {
        let needs = strategy.needs();
        let missing = |what, hint| {
            Err(SearchError::Missing {
                strategy: strategy.name(),
                what,
                hint,
            })
        };
        if needs.draft_model && self.draft.is_none() {
            return missing("a draft model", "--draft-model, or Cx::draft");
        }
        if needs.layer_probe && self.layers.is_none() {
            return missing(
                "every layer's hidden states",
                "a layer probe of the policy model in Cx::layers",
            );
        }
        if needs.hidden_states && self.engine.info().n_embd == 0 {
            return missing(
                "final-layer hidden states",
                "an engine loaded with hidden states; the mock has none",
            );
        }
        if needs.scorer && self.scorer.needs_hidden() {
            if needs.draft_model {
                return missing(
                    "a scorer that reads text: its scorer reads the policy's hidden states, \
                     but the steps it scores are the draft model's",
                    "another --scorer",
                );
            }
            if self.engine.info().n_embd == 0 {
                return missing(
                    "final-layer hidden states for its scorer",
                    "an engine loaded with hidden states (LlamaConfig::hidden_states, or the \
                     mock's n_embd)",
                );
            }
        }
        self.check_sequences(needs.sequences)
    }

    /// The same context with another scorer.
    pub fn with_scorer(mut self, s: impl Scorer + 'static) -> Self {
        self.scorer = Arc::new(s);
        self
    }

    /// The prompt for a problem: the chat template's text, with the system prompt and
    /// the question as literal text (control tokens a question spells are not parsed).
    pub fn prompt(&self, p: &Problem) -> Result<Prompt, SearchError> {
        self.prompt_for(&self.engine, p)
    }

    /// The prompt for a problem in another engine's chat template (e.g. a draft model).
    pub fn prompt_for(&self, engine: &Engine, p: &Problem) -> Result<Prompt, SearchError> {
        self.prompt_with(engine, self.system.as_deref(), p)
    }

    /// The prompt for a problem with another system prompt (a strategy's own, e.g. one
    /// asking for a program).
    pub fn prompt_with(
        &self,
        engine: &Engine,
        system: Option<&str>,
        p: &Problem,
    ) -> Result<Prompt, SearchError> {
        let mut msgs = Vec::new();
        if let Some(s) = system {
            msgs.push(ChatMessage::new("system", s.to_string()));
        }
        msgs.extend(p.history.iter().cloned());
        msgs.push(ChatMessage::new("user", p.question.clone()));
        Ok(engine.chat_prompt(&self.format, &msgs)?)
    }

    /// Fail before any work when a search would hold more sequences than the engine has.
    pub fn check_sequences(&self, need: usize) -> Result<(), SearchError> {
        let max = self.engine.info().n_seq_max as usize;
        if need > max {
            return Err(invalid(
                "n",
                format!(
                    "this search holds up to {need} sequences at once, more than the {max} \
                     the engine has (n_seq_max): lower it or load the engine with more sequences"
                ),
            ));
        }
        Ok(())
    }

    /// A session for one problem, with the run's seed and budget.
    pub fn session(&self, p: &Problem) -> ponder_engine::Session {
        let session = self.engine.session(self.seed, p.id, self.budget.clone());
        if self.scorer.needs_hidden() {
            // The scorer reads hidden states: every search's extends record them.
            session.recording_hidden()
        } else {
            session
        }
    }

    /// Turn finished branches into scored candidates with extracted answers.
    pub fn candidates(
        &self,
        p: &Problem,
        branches: &[Branch],
    ) -> Result<Vec<Candidate>, SearchError> {
        let texts: Vec<String> = branches.iter().map(|b| b.text()).collect();
        let samples: Vec<Sample<'_>> = branches
            .iter()
            .zip(&texts)
            .map(|(b, t)| {
                Sample::new(&p.question, t)
                    .with_logprobs(b.logprobs())
                    .with_certainty(b.certainty())
                    .with_hidden(b.last_hidden(usize::MAX))
                    .with_budget(&self.budget)
            })
            .collect();
        let scores = self.scorer.score_batch(&samples)?;
        let signals: Vec<_> = samples
            .iter()
            .zip(&scores)
            .map(|(s, &score)| {
                let mut signals = model_free_signals(s);
                signals.insert(self.scorer.name().to_string(), score);
                signals
            })
            .collect();
        drop(samples);
        Ok(branches
            .iter()
            .zip(texts)
            .zip(scores)
            .zip(signals)
            .map(|(((b, text), score), signals)| Candidate {
                answer: extract_answer(&text),
                score: Some(score),
                tokens: b.tokens().len(),
                finish: b.finish().cloned(),
                error: None,
                signals,
                text,
            })
            .collect())
    }
}

/// One finished (or cut-off) solution attempt.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Candidate {
    /// The generated text (the completion, without the prompt).
    pub text: String,
    /// The extracted, normalised answer (None if nothing was found).
    pub answer: Option<String>,
    /// The scorer's rating, higher is better (its scale is the scorer's: e.g. a mean
    /// log-probability ≤ 0, a PRM probability in [0, 1]); None when nothing scored it.
    pub score: Option<f64>,
    /// Completion tokens.
    pub tokens: usize,
    /// How its generation ended (None: it never ran to an end, e.g. a search dropped it
    /// mid-way).
    pub finish: Option<Finish>,
    /// Why it has no answer when that is known: a program that failed (its error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its scores by signal name, for votes and AUROC recomputed offline (`ponder eval`
    /// records them): every sampled candidate carries the model-free ones
    /// ([`ponder_scorers::model_free_signals`]) and the run's scorer's under the
    /// scorer's name; `mixed` adds `agreement`. Empty where a search made the candidate
    /// some other way (a tree's node: `score` is its value).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub signals: std::collections::BTreeMap<String, f64>,
}

/// A strategy's result: the chosen answer, every candidate, and what it cost.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Solution {
    /// The strategy's report name ([`Strategy::name`]).
    pub strategy: String,
    /// The chosen answer, extracted and normalised (None: no candidate gave one).
    pub answer: Option<String>,
    /// Index into `candidates` of the chosen solution.
    pub chosen: Option<usize>,
    /// Every candidate the strategy produced (finished or cut off), in its own order.
    pub candidates: Vec<Candidate>,
    /// The policy model's cost on this problem (tokens, decode calls, wall time).
    pub stats: Stats,
    /// What a model-backed scorer (PRM, judge) spent on this problem, counted apart
    /// from the policy's `stats`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scorer_stats: Option<Stats>,
    /// Wall time spent inside scorer calls (step-level searches), in ms.
    #[serde(default)]
    pub scoring_ms: f64,
    /// Reward-guided speculative decoding: the draft model's cost and its acceptance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft: Option<DraftReport>,
    /// The token budget a `token-budget` prompt stated ([`crate::PromptStyle`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_budget: Option<crate::prompt_style::PromptBudget>,
    /// A cascade's stages, in the order they ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<crate::voting::cascade::StageReport>,
    /// True when a budget, deadline or cancel cut the search short.
    pub truncated: bool,
}

/// What a draft model did in reward-guided speculative decoding.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DraftReport {
    /// The draft model's own cost (its session).
    pub stats: Stats,
    /// Reasoning steps the draft proposed (each one scored, then kept or rewritten).
    pub steps: usize,
    /// Draft steps scored at or above the threshold and kept as the draft wrote them.
    pub accepted_steps: usize,
    /// Draft tokens kept / draft tokens generated (the paper's acceptance rate).
    pub acceptance_rate: f64,
    /// Tokens the target model generated itself.
    pub target_generated: u64,
}

impl Solution {
    /// A solution from its candidates and the chosen one: the answer is the chosen
    /// candidate's, and it is `truncated` when a budget, deadline or cancel cut any
    /// candidate short.
    pub fn new(
        strategy: String,
        candidates: Vec<Candidate>,
        chosen: Option<usize>,
        stats: Stats,
    ) -> Self {
        Self {
            strategy,
            answer: chosen.and_then(|i| candidates[i].answer.clone()),
            chosen,
            truncated: was_truncated(&candidates),
            candidates,
            stats,
            scorer_stats: None,
            scoring_ms: 0.0,
            draft: None,
            prompt_budget: None,
            stages: Vec::new(),
        }
    }

    /// With what the scorer spent: wall time, and its model's stats if it has one.
    pub fn scored(mut self, scoring_ms: f64, scorer_stats: Option<Stats>) -> Self {
        self.scoring_ms = scoring_ms;
        self.scorer_stats = scorer_stats;
        self
    }

    /// Marked truncated also when the search itself was cut short.
    pub fn cut_short(mut self, cut: bool) -> Self {
        self.truncated |= cut;
        self
    }

    /// The chosen candidate's text.
    pub fn text(&self) -> Option<&str> {
        self.chosen.map(|i| self.candidates[i].text.as_str())
    }
}

/// A way to spend test-time compute on a problem. Implementations are plain config values;
/// per-run state lives inside `solve`.
pub trait Strategy: Send + Sync {
    /// A short name for reports.
    fn name(&self) -> String;
    /// What one solve needs: sequences, tokens, models and hidden states (engines are
    /// sized and resources provided from it).
    fn needs(&self) -> Needs;
    /// The most KV sequences one solve holds at once.
    fn sequences(&self) -> usize {
        self.needs().sequences
    }
    /// Solve one problem.
    fn solve(&self, cx: &Cx, problem: &Problem) -> Result<Solution, SearchError>;
    /// Whether it asks for chains of thought under the run's system prompt (what a
    /// prompt style changes); false for one that writes only programs with its own.
    fn writes_chains_of_thought(&self) -> bool {
        true
    }
    /// Every setting that shapes this strategy's results (two strategies with one name
    /// but different settings are different runs: `ponder eval` refuses to mix their
    /// records). `Null`: not known, not checked.
    fn settings(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}

/// A strategy's settings as JSON (numbers as they print: an f32 0.8 stays 0.8).
pub(crate) fn settings_of(s: &impl Serialize) -> serde_json::Value {
    serde_json::to_string(s)
        .and_then(|t| serde_json::from_str(&t))
        .unwrap_or(serde_json::Value::Null)
}

pub(crate) fn was_truncated(cands: &[Candidate]) -> bool {
    cands.iter().any(|c| {
        matches!(
            c.finish,
            Some(Finish::Budget | Finish::Deadline | Finish::Cancelled)
        )
    })
}
