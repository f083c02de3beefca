//! RSD, reward-guided speculative decoding (Liao et al., ICML 2025): a small draft model
//! proposes each reasoning step; a process reward scores it; at or above δ the step is
//! accepted, below it the large target model writes the step instead. Steps hand over as
//! text, so the two models may have different tokenizers: each keeps its own KV sequence
//! and only appends the steps the other wrote (a rejected draft step is cut off again).
//!
//! The reward is the context's scorer (a PRM or judge, as in the paper) or, with
//! [`Reward::Target`], the target model itself: it reads the draft step in one batch (as
//! it must to keep an accepted step anyway) and the step's geometric-mean token
//! probability under the target is its score — speculative decoding at step granularity,
//! for when no PRM worth trusting is at hand.

use crate::answer::extract_answer;
use crate::strategy::{
    invalid, Candidate, Cx, DraftReport, Needs, Problem, SearchError, Solution, Strategy,
};
use crate::tree::{scoring, StepUnit, Steps};
use ponder_engine::{Finish, GenSpec, SamplingParams};
use ponder_scorers::{Sample, StepItem};

/// What scores a draft step.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Reward {
    /// The context's scorer, step by step (a PRM or yes/no judge: the paper's RSD).
    #[default]
    Scorer,
    /// The target's own `exp(mean logprob)` of the step's tokens, read in one batch;
    /// the scorer is not consulted.
    Target,
}

impl std::str::FromStr for Reward {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "scorer" => Ok(Self::Scorer),
            "target" => Ok(Self::Target),
            _ => Err(format!("unknown RSD reward {s:?} (scorer or target)")),
        }
    }
}

/// Reward-guided speculative decoding: the draft model (`Cx::draft`) proposes each
/// step, the reward scores it, a step scored ≥ δ is kept and otherwise the target
/// (`Cx::engine`) writes it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rsd {
    /// Accept a draft step when its score is ≥ δ (in [0, 1]; the paper's 0.7).
    pub threshold: f64,
    /// What scores a draft step: the context's scorer (a PRM or judge: the paper's RSD)
    /// or the target's geometric-mean probability of the step's tokens.
    pub reward: Reward,
    /// Most steps (the paper's 100).
    pub max_steps: usize,
    /// Sampling of both models (greedy, as in the paper).
    pub sampling: SamplingParams,
    /// New tokens in all (either model's count).
    pub max_tokens: usize,
    /// Where a step ends.
    pub steps: Steps,
}

impl Default for Rsd {
    fn default() -> Self {
        Self {
            threshold: 0.7,
            reward: Reward::Scorer,
            max_steps: 100,
            sampling: SamplingParams::greedy(),
            max_tokens: crate::registry::DEFAULT_MAX_TOKENS,
            steps: Steps::default(),
        }
    }
}

impl Rsd {
    /// Check the settings: δ in [0, 1], at least one step and one token, and a valid
    /// step unit.
    pub fn validate(&self) -> Result<(), SearchError> {
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(invalid(
                "threshold",
                format!("{} (δ must be in [0, 1])", self.threshold),
            ));
        }
        if self.max_steps == 0 || self.max_tokens == 0 {
            return Err(invalid("max steps and tokens", "must be ≥ 1"));
        }
        self.steps.validate()
    }

    /// Accept a scored draft step?
    pub fn accepts(&self, score: f64) -> bool {
        score >= self.threshold
    }
}

impl Strategy for Rsd {
    fn settings(&self) -> serde_json::Value {
        crate::strategy::settings_of(self)
    }

    fn name(&self) -> String {
        match self.reward {
            Reward::Scorer => format!("rsd-d{}", self.threshold),
            Reward::Target => format!("rsd-target-d{}", self.threshold),
        }
    }

    fn needs(&self) -> Needs {
        Needs {
            sequences: 1,
            max_tokens: self.max_tokens,
            draft_model: true,
            scorer: self.reward == Reward::Scorer,
            ..Needs::default()
        }
    }

    fn solve(&self, cx: &Cx, problem: &Problem) -> Result<Solution, SearchError> {
        self.validate()?;
        cx.provides(self)?;
        let Some(draft_engine) = cx.draft.as_ref() else {
            return Err(invalid("draft model", "none in the context (Cx::draft)"));
        };
        let target_session = cx.session(problem);
        let (seed, id) = target_session.seed();
        let draft_session = draft_engine.session(seed, id, cx.budget.clone());
        let mut target = target_session.prefill_prompt(&cx.prompt(problem)?)?;
        let mut draft = draft_session.prefill_prompt(&cx.prompt_for(draft_engine, problem)?)?;
        // The scorer's track of kept steps (none when the target is the reward).
        let mut track = match self.reward {
            Reward::Scorer => Some(
                cx.scorer
                    .track(&problem.question, &cx.budget)
                    .map_err(|e| scoring(0, vec![draft.id()], e))?,
            ),
            Reward::Target => None,
        };
        let mut spec = GenSpec::new(self.sampling, self.max_tokens);
        match &self.steps.unit {
            StepUnit::Delimiter(d) => {
                spec.stop = vec![d.clone()];
                spec.max_tokens = self.steps.max_step_tokens;
            }
            StepUnit::Tokens(t) => spec.max_tokens = *t,
        }
        let (mut steps, mut accepted) = (0usize, 0usize);
        let (mut draft_kept, mut draft_made) = (0usize, 0usize);
        let mut scoring_ms = 0.0;
        let mut text = String::new();
        let mut finish = None;
        while steps < self.max_steps {
            let used = target.tokens().len().max(draft.tokens().len());
            if used >= self.max_tokens {
                finish = Some(Finish::MaxTokens);
                break;
            }
            let cap = self.max_tokens - used;
            // 1. The draft proposes a step.
            let d_tok = draft.tokens().len();
            draft_session.extend_capped([(&mut draft, cap)], &spec)?;
            let step = draft.text_after(d_tok);
            let made = draft.tokens().len() - d_tok;
            draft_made += made;
            steps += 1;
            // 2. The reward scores it: the scorer on a fork of the track (only kept steps
            // stay), or the target reading it.
            let t_tok = target.tokens().len();
            let (score, tentative) = match &track {
                Some(track) => {
                    let t = std::time::Instant::now();
                    let mut tentative = track
                        .fork()
                        .map_err(|e| scoring(steps, vec![draft.id()], e))?;
                    let candidate = format!("{text}{step}");
                    let score = cx
                        .scorer
                        .score_steps(&mut [StepItem {
                            track: &mut tentative,
                            step: &step,
                            sample: Sample::new(&problem.question, &candidate),
                        }])
                        .map_err(|e| scoring(steps, vec![draft.id()], e))?[0];
                    scoring_ms += t.elapsed().as_secs_f64() * 1e3;
                    (score, Some(tentative))
                }
                None => (geometric_mean_prob(&target.append(&step, true)?), None),
            };
            tracing::debug!(step = steps, score, accepted = self.accepts(score), draft = %step.trim(), "rsd draft step");
            let (written, by) = if self.accepts(score) {
                // 3a. Accepted: the target reads the step (one batch; already done when
                // it was the reward), no sampling.
                accepted += 1;
                draft_kept += made;
                if let Some(t) = tentative {
                    track = Some(t);
                    target.append(&step, false)?;
                }
                (step, draft.finish().cloned())
            } else {
                // 3b. Rejected: cut the draft step off (from the target too if it read
                // it); the target writes the step and the draft reads it.
                drop(tentative);
                draft.truncate(d_tok)?;
                target.truncate(t_tok)?;
                target_session.extend_capped([(&mut target, cap)], &spec)?;
                let step = target.text_after(t_tok);
                draft.append(&step, false)?;
                if let Some(track) = track.as_mut() {
                    let t = std::time::Instant::now();
                    let full = format!("{text}{step}");
                    cx.scorer
                        .score_steps(&mut [StepItem {
                            track,
                            step: &step,
                            sample: Sample::new(&problem.question, &full),
                        }])
                        .map_err(|e| scoring(steps, vec![target.id()], e))?;
                    scoring_ms += t.elapsed().as_secs_f64() * 1e3;
                }
                (step, target.finish().cloned())
            };
            text.push_str(&written);
            let natural_end = !matches!(by, Some(Finish::Stop(_)) | Some(Finish::MaxTokens));
            if natural_end || written.trim().is_empty() {
                finish = by;
                break;
            }
        }
        let target_stats = target_session.stats();
        let cand = Candidate {
            answer: extract_answer(&text),
            text,
            score: track.as_ref().and_then(|t| t.steps().last().copied()),
            tokens: target.tokens().len(),
            finish,
            error: None,
            signals: Default::default(),
        };
        let scorer_stats = track.as_ref().and_then(|t| t.stats());
        drop((target, draft, track));
        let draft_stats = draft_session.stats();
        let mut sol = Solution::new(self.name(), vec![cand], Some(0), target_session.stats())
            .scored(scoring_ms, scorer_stats);
        sol.draft = Some(DraftReport {
            stats: draft_stats,
            steps,
            accepted_steps: accepted,
            acceptance_rate: if draft_made == 0 {
                0.0
            } else {
                draft_kept as f64 / draft_made as f64
            },
            target_generated: target_stats.generated_tokens,
        });
        Ok(sol)
    }
}

/// `exp(mean logprob)` of a step's tokens, in [0, 1]; an empty step scores 1 (nothing in
/// it the target would not write). Not `MeanLogprob`: that one skips non-finite logprobs
/// and scores an empty sample 0, where a token the target rules out must sink the step.
fn geometric_mean_prob(logprobs: &[f32]) -> f64 {
    if logprobs.is_empty() {
        return 1.0;
    }
    let mean = logprobs.iter().map(|&l| l as f64).sum::<f64>() / logprobs.len() as f64;
    mean.exp()
}

impl crate::registry::Settings for Rsd {
    const N: Option<&'static str> = None;
    fn check(&self) -> Result<(), SearchError> {
        crate::registry::check_generation(&self.sampling, self.max_tokens)?;
        self.validate()
    }
}
