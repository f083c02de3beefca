//! RSD, reward-guided speculative decoding (Liao et al., ICML 2025): a small draft model
//! proposes each reasoning step; a process reward scores it; at or above δ the step is
//! accepted, below it the large target model writes the step instead. Steps hand over as
//! text, so the two models may have different tokenizers: each keeps its own KV sequence
//! and only appends the steps the other wrote (a rejected draft step is cut off again).

use crate::answer::extract_answer;
use crate::strategy::{
    invalid, Candidate, Cx, DraftReport, Problem, SearchError, Solution, Strategy,
};
use crate::tree::{scoring, StepUnit, Steps};
use ponder_engine::{Engine, Finish, GenSpec, SamplingParams};
use ponder_scorers::{Sample, StepItem};

/// Reward-guided speculative decoding with a draft engine (the target is `Cx::engine`).
#[derive(Clone, Debug)]
pub struct Rsd {
    /// The small model, loaded in its own engine.
    pub draft: Engine,
    /// Accept a draft step when its score is ≥ δ (in [0, 1]; the paper's 0.7).
    pub threshold: f64,
    /// Most steps (the paper's 100).
    pub max_steps: usize,
    /// Greedy by default, as in the paper.
    pub sampling: SamplingParams,
    /// New tokens in all (either model's count).
    pub max_tokens: usize,
    pub steps: Steps,
}

impl Rsd {
    pub fn new(draft: Engine) -> Self {
        Self {
            draft,
            threshold: 0.7,
            max_steps: 100,
            sampling: SamplingParams::greedy(),
            max_tokens: 512,
            steps: Steps::default(),
        }
    }

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
    fn name(&self) -> String {
        format!("rsd-d{}", self.threshold)
    }

    fn sequences(&self) -> usize {
        1
    }

    fn solve(&self, cx: &Cx, problem: &Problem) -> Result<Solution, SearchError> {
        self.validate()?;
        let target_session = cx.session(problem);
        let (seed, id) = target_session.seed();
        let draft_session = self.draft.session(seed, id, cx.budget.clone());
        let mut target = target_session.prefill(&cx.prompt(problem)?)?;
        let mut draft = draft_session.prefill(&cx.prompt_for(&self.draft, problem)?)?;
        let mut track = cx
            .scorer
            .track(&problem.question)
            .map_err(|e| scoring(0, vec![draft.id()], e))?;
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
            // 2. The reward scores it (on a fork of the track: only kept steps stay).
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
            let (written, by) = if self.accepts(score) {
                // 3a. Accepted: the target reads the step (one batch), no sampling.
                accepted += 1;
                draft_kept += made;
                track = tentative;
                target.append(&step, false)?;
                (step, draft.finish().cloned())
            } else {
                // 3b. Rejected: cut the draft step off; the target writes the step and
                // the draft reads it.
                drop(tentative);
                draft.truncate(d_tok)?;
                let t_tok = target.tokens().len();
                target_session.extend_capped([(&mut target, cap)], &spec)?;
                let step = target.text_after(t_tok);
                draft.append(&step, false)?;
                let t = std::time::Instant::now();
                let full = format!("{text}{step}");
                cx.scorer
                    .score_steps(&mut [StepItem {
                        track: &mut track,
                        step: &step,
                        sample: Sample::new(&problem.question, &full),
                    }])
                    .map_err(|e| scoring(steps, vec![target.id()], e))?;
                scoring_ms += t.elapsed().as_secs_f64() * 1e3;
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
            score: track.steps().last().copied(),
            tokens: target.tokens().len(),
            finish,
        };
        let scorer_stats = track.stats();
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
