//! Speculative rejection (Sun et al., NeurIPS 2024): start many more samples than
//! Best-of-N would, grow them in rounds as long as the KV cache has room, score the
//! partial texts and reject the bottom α of the pool each round. Low-reward samples stop
//! costing tokens early; with α = 0 it is Best-of-N with the best score.

use crate::strategy::{
    invalid, was_truncated, Candidate, Cx, Needs, Problem, SearchError, Solution, Strategy,
};
use crate::vote::{select, Vote};
use ponder_engine::{Branch, Finish, GenSpec, SamplingParams};
use serde::{Deserialize, Serialize};

/// Speculative rejection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecRejection {
    /// Samples started (b_init): several times a Best-of-N's N.
    pub n: usize,
    /// Share of the pool rejected each round, in [0, 1).
    pub alpha: f64,
    /// Tokens per round; None: as many as the KV budget leaves each live sample.
    pub round_tokens: Option<usize>,
    /// KV cells this search may fill (the paper's memory limit); None: what a
    /// Best-of-(n/4) holds at full length, `n/4 · max_tokens`. Never more than is free.
    pub kv_budget: Option<usize>,
    /// Shortest round in tokens, ≥ 1, when `round_tokens` is None.
    /// (Such rounds are as long as the KV budget leaves each live sample.)
    pub min_round: usize,
    /// Sampling of every new token.
    pub sampling: SamplingParams,
    /// New tokens per sample.
    pub max_tokens: usize,
}

impl Default for SpecRejection {
    fn default() -> Self {
        Self {
            n: 32,
            alpha: 0.5,
            round_tokens: None,
            kv_budget: None,
            min_round: 16,
            sampling: SamplingParams::default(),
            max_tokens: crate::registry::DEFAULT_MAX_TOKENS,
        }
    }
}

/// One round as it happened: pool size, samples kept, tokens per sample this round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Round {
    /// Candidates competing this round: every live sample plus the finished ones kept
    /// from earlier rounds.
    pub pool: usize,
    /// Candidates that survived the round (the best `keep_count(pool)` by score).
    pub kept: usize,
    /// The round's length τ: new tokens each live sample was allowed this round.
    pub tokens: usize,
}

impl SpecRejection {
    /// Check the settings: α in [0, 1), and N, `min_round` and `round_tokens` ≥ 1.
    pub fn validate(&self) -> Result<(), SearchError> {
        if !(0.0..1.0).contains(&self.alpha) {
            return Err(invalid(
                "alpha",
                format!("{} (the rejection rate must be in [0, 1))", self.alpha),
            ));
        }
        if self.n == 0 || self.min_round == 0 || self.round_tokens == Some(0) {
            return Err(invalid("n and round length", "must be ≥ 1"));
        }
        Ok(())
    }

    /// The KV cells the samples may fill.
    pub fn kv_budget(&self) -> usize {
        self.kv_budget
            .unwrap_or((self.n / 4).max(1) * self.max_tokens)
    }

    /// How many of a pool survive a round: round((1 − α) · pool), at least one.
    pub fn keep_count(&self, pool: usize) -> usize {
        (((1.0 - self.alpha) * pool as f64).round() as usize).clamp(1, pool.max(1))
    }

    /// Solve and also return the rounds.
    pub fn search(
        &self,
        cx: &Cx,
        problem: &Problem,
    ) -> Result<(Solution, Vec<Round>), SearchError> {
        self.validate()?;
        cx.check_sequences(self.n)?;
        let session = cx.session(problem);
        let engine = session.engine().clone();
        let root = session.prefill_prompt(&cx.prompt(problem)?)?;
        let mut live: Vec<Branch> = root.fork(self.n - 1)?;
        live.insert(0, root);
        // Finished samples keep competing in later rounds (as in the reference code).
        let mut finished: Vec<Candidate> = Vec::new();
        let mut rounds = Vec::new();
        let mut scoring_ms = 0.0;
        while !live.is_empty() {
            let tau = match self.round_tokens {
                Some(t) => t,
                None => {
                    // Grow until the live samples would fill the budget (or the free cells).
                    let held: usize = live.iter().map(|b| b.tokens().len()).sum();
                    let room = self
                        .kv_budget()
                        .saturating_sub(held)
                        .min(engine.capacity()?.free_cells());
                    (room / live.len()).max(self.min_round)
                }
            };
            let spec = GenSpec::new(self.sampling, tau);
            let max = self.max_tokens;
            session.extend_capped(
                live.iter_mut().map(|b| {
                    let left = max.saturating_sub(b.tokens().len());
                    (b, left)
                }),
                &spec,
            )?;
            let t = std::time::Instant::now();
            let scored = cx.candidates(problem, &live)?;
            scoring_ms += t.elapsed().as_secs_f64() * 1e3;
            // The pool: finished samples (kept from earlier rounds) and every live one.
            let n_fin = finished.len();
            let mut pool: Vec<(usize, f64)> = finished
                .iter()
                .chain(&scored)
                .map(|c| c.score.unwrap_or(f64::NEG_INFINITY))
                .enumerate()
                .collect();
            pool.sort_by(|a, b| b.1.total_cmp(&a.1)); // stable: earlier first on ties
            let keep = self.keep_count(pool.len());
            let mut kept: Vec<usize> = pool[..keep].iter().map(|&(i, _)| i).collect();
            kept.sort_unstable();
            rounds.push(Round {
                pool: pool.len(),
                kept: keep,
                tokens: tau,
            });
            let mut next_finished = Vec::new();
            let mut next_live = Vec::new();
            let mut live_iter: Vec<Option<Branch>> = live.drain(..).map(Some).collect();
            let mut scored_iter: Vec<Option<Candidate>> = scored.into_iter().map(Some).collect();
            let mut fin_iter: Vec<Option<Candidate>> = finished.drain(..).map(Some).collect();
            for i in kept {
                if i < n_fin {
                    next_finished.push(fin_iter[i].take().expect("once"));
                } else {
                    let j = i - n_fin;
                    let c = scored_iter[j].take().expect("once");
                    let b = live_iter[j].take().expect("once");
                    let over = matches!(c.finish, Some(Finish::MaxTokens) | None)
                        && b.tokens().len() < max;
                    if over {
                        next_live.push(b); // mid-generation: goes on
                    } else {
                        next_finished.push(c); // ended (EOG, cap, budget)
                    }
                }
            }
            drop(live_iter); // rejected samples release their sequences here
            finished = next_finished;
            live = next_live;
            if was_truncated(&finished) {
                break;
            }
        }
        let candidates = finished;
        let chosen = select(&candidates, Vote::Naive);
        Ok((
            Solution::new(self.name(), candidates, chosen, session.stats())
                .scored(scoring_ms, None),
            rounds,
        ))
    }
}

impl Strategy for SpecRejection {
    fn settings(&self) -> serde_json::Value {
        crate::strategy::settings_of(self)
    }

    fn name(&self) -> String {
        format!("spec-rejection-{}-a{}", self.n, self.alpha)
    }

    fn needs(&self) -> Needs {
        Needs {
            sequences: self.n,
            max_tokens: self.max_tokens,
            scorer: true,
            ..Needs::default()
        }
    }

    fn solve(&self, cx: &Cx, problem: &Problem) -> Result<Solution, SearchError> {
        self.search(cx, problem).map(|(s, _)| s)
    }
}

impl crate::registry::Settings for SpecRejection {
    const N: Option<&'static str> = Some("n");
    fn check(&self) -> Result<(), SearchError> {
        crate::registry::check_generation(&self.sampling, self.max_tokens)?;
        self.validate()
    }
}
