//! Best-of-N: N independent samples from one prefilled prompt, then a vote.
//! Greedy decoding is the N = 1, temperature-0 case.

use crate::strategy::{invalid, Candidate, Cx, Needs, Problem, SearchError, Solution, Strategy};
use crate::vote::{select, Vote};
use ponder_engine::{GenSpec, SamplingParams};
use serde::{Deserialize, Serialize};

/// Best-of-N: N independent samples from one prefilled prompt, then a vote (naive: the
/// best score; majority: self-consistency; weighted: the largest score sum per answer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BestOfN {
    /// Samples (N).
    pub n: usize,
    /// Sampling of every sample.
    pub sampling: SamplingParams,
    /// New tokens per sample.
    pub max_tokens: usize,
    /// How the answer is picked from the samples.
    pub vote: Vote,
    /// Stop strings (a sample ends at the first; it is kept in the text).
    pub stop: Vec<String>,
}

/// Greedy decoding: one temperature-0 sample, the baseline every strategy is measured
/// against.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Greedy {
    /// New tokens.
    pub max_tokens: usize,
    /// Stop strings (generation ends at the first; it is kept in the text).
    pub stop: Vec<String>,
}

impl Default for Greedy {
    fn default() -> Self {
        Self {
            max_tokens: crate::registry::DEFAULT_MAX_TOKENS,
            stop: Vec::new(),
        }
    }
}

impl Greedy {
    fn as_best_of_n(&self) -> BestOfN {
        BestOfN {
            stop: self.stop.clone(),
            ..BestOfN::greedy(self.max_tokens)
        }
    }
}

impl Strategy for Greedy {
    fn settings(&self) -> serde_json::Value {
        crate::strategy::settings_of(self)
    }
    fn name(&self) -> String {
        "greedy".into()
    }
    fn needs(&self) -> Needs {
        self.as_best_of_n().needs()
    }
    fn solve(&self, cx: &Cx, problem: &Problem) -> Result<Solution, SearchError> {
        self.as_best_of_n().solve(cx, problem)
    }
}

impl crate::registry::Settings for Greedy {
    const N: Option<&'static str> = None;
    fn check(&self) -> Result<(), SearchError> {
        crate::registry::check_generation(&SamplingParams::greedy(), self.max_tokens)
    }
}

impl Default for BestOfN {
    fn default() -> Self {
        Self {
            n: 8,
            sampling: SamplingParams::default(),
            max_tokens: crate::registry::DEFAULT_MAX_TOKENS,
            vote: Vote::Majority,
            stop: Vec::new(),
        }
    }
}

impl BestOfN {
    /// `n` samples with the default sampling, token limit and majority vote.
    pub fn new(n: usize) -> Self {
        Self {
            n,
            ..Self::default()
        }
    }
    /// Greedy decoding: one temperature-0 sample.
    pub fn greedy(max_tokens: usize) -> Self {
        Self {
            n: 1,
            sampling: SamplingParams::greedy(),
            max_tokens,
            vote: Vote::Naive,
            stop: Vec::new(),
        }
    }
    /// Check the settings against the context: N ≥ 1, no more samples than the engine
    /// has sequences, and valid sampling and stop strings.
    pub fn validate(&self, cx: &Cx) -> Result<(), SearchError> {
        if self.n == 0 {
            return Err(invalid("n", "0 (must be ≥ 1)"));
        }
        cx.check_sequences(self.n)?;
        GenSpec {
            sampling: self.sampling,
            max_tokens: self.max_tokens,
            stop: self.stop.clone(),
            ignore_eog: false,
            hidden: false,
        }
        .validate()?;
        Ok(())
    }
}

impl Strategy for BestOfN {
    fn settings(&self) -> serde_json::Value {
        crate::strategy::settings_of(self)
    }

    fn name(&self) -> String {
        if self.n == 1 && self.sampling.is_greedy() {
            "greedy".into()
        } else {
            format!("best-of-{}-{}", self.n, self.vote.label())
        }
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
        self.validate(cx)?;
        let spec = GenSpec {
            sampling: self.sampling,
            max_tokens: self.max_tokens,
            stop: self.stop.clone(),
            ignore_eog: false,
            hidden: false,
        };
        let (candidates, stats, scoring_ms) = sample(cx, problem, self.n, &spec)?;
        let chosen = select(&candidates, self.vote);
        Ok(Solution::new(self.name(), candidates, chosen, stats).scored(scoring_ms, None))
    }
}

/// N independent samples of one problem, scored: the prompt is evaluated once, the root
/// is the first branch and N−1 forks share its KV. Returns the candidates, the problem's
/// stats (read after every branch is released) and the time spent scoring (ms).
pub(crate) fn sample(
    cx: &Cx,
    problem: &Problem,
    n: usize,
    spec: &GenSpec,
) -> Result<(Vec<Candidate>, ponder_engine::Stats, f64), SearchError> {
    sample_from(cx, problem, &[(&cx.prompt(problem)?, n)], spec)
}

/// [`sample`] from several prompts of one problem at once (`n` samples of each, all
/// generated together in one session): the candidates in prompt order.
pub(crate) fn sample_from(
    cx: &Cx,
    problem: &Problem,
    prompts: &[(&ponder_engine::Prompt, usize)],
    spec: &GenSpec,
) -> Result<(Vec<Candidate>, ponder_engine::Stats, f64), SearchError> {
    if prompts.iter().map(|(_, n)| n).sum::<usize>() == 0 {
        return Err(invalid("n", "0 (must be ≥ 1)"));
    }
    let session = cx.session(problem);
    let mut branches = Vec::new();
    for &(prompt, n) in prompts.iter().filter(|(_, n)| *n > 0) {
        let root = session.prefill_prompt(prompt)?;
        branches.extend(root.fork(n - 1)?);
        branches.insert(branches.len() + 1 - n, root);
    }
    session.extend(branches.iter_mut(), spec)?;
    let t = std::time::Instant::now();
    let candidates = cx.candidates(problem, &branches)?;
    let scoring_ms = t.elapsed().as_secs_f64() * 1e3;
    drop(branches); // free the sequences before reading the final stats
    Ok((candidates, session.stats(), scoring_ms))
}

impl crate::registry::Settings for BestOfN {
    const N: Option<&'static str> = Some("n");
    fn check(&self) -> Result<(), SearchError> {
        crate::registry::check_generation(&self.sampling, self.max_tokens)?;
        if self.n == 0 {
            return Err(crate::strategy::invalid("n", "0 (must be ≥ 1)"));
        }
        Ok(())
    }
}
