//! Self-consistency that stops early (Certaindex, Fu et al.): sample in waves and stop as
//! soon as the answers agree enough — certaindex `1 − H / ln n` over the answer clusters
//! passes a threshold — instead of always paying for all N samples.

use crate::strategy::{invalid, Cx, Needs, Problem, SearchError, Solution, Strategy};
use crate::vote::{certaindex, select, Vote};
use ponder_engine::{GenSpec, SamplingParams};
use serde::{Deserialize, Serialize};

/// Majority voting over waves of samples, stopped by answer certainty.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertaintyVote {
    /// Most samples in all.
    pub n: usize,
    /// Samples per wave (all of a wave decode together).
    pub wave: usize,
    /// Stop once certaindex ≥ this (in (0, 1]; 1 = only unanimous answers stop early).
    pub threshold: f64,
    /// Sampling of every new token.
    pub sampling: SamplingParams,
    /// New tokens per sample.
    pub max_tokens: usize,
}

impl Default for CertaintyVote {
    fn default() -> Self {
        Self {
            n: 16,
            wave: 4,
            threshold: 0.7,
            sampling: SamplingParams::default(),
            max_tokens: crate::registry::DEFAULT_MAX_TOKENS,
        }
    }
}

impl CertaintyVote {
    /// Check the settings: N ≥ 1, wave ≥ 1 and the threshold in (0, 1].
    pub fn validate(&self) -> Result<(), SearchError> {
        if self.n == 0 || self.wave == 0 {
            return Err(invalid("n and wave", "must be ≥ 1"));
        }
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err(invalid(
                "certainty threshold",
                format!("{} (must be in (0, 1])", self.threshold),
            ));
        }
        Ok(())
    }
}

impl Strategy for CertaintyVote {
    fn settings(&self) -> serde_json::Value {
        crate::strategy::settings_of(self)
    }

    fn name(&self) -> String {
        format!("certainty-vote-{}", self.n)
    }

    fn needs(&self) -> Needs {
        Needs {
            sequences: self.wave.min(self.n) + 1,
            max_tokens: self.max_tokens,
            scorer: true,
            ..Needs::default()
        }
    }

    fn solve(&self, cx: &Cx, problem: &Problem) -> Result<Solution, SearchError> {
        self.validate()?;
        let spec = GenSpec::new(self.sampling, self.max_tokens);
        let (candidates, stats, scoring_ms) = super::sample_in_waves(
            cx,
            problem,
            &cx.prompt(problem)?,
            (self.n, self.wave),
            &spec,
            |_| {},
            |cands| {
                let answers: Vec<Option<&str>> =
                    cands.iter().map(|c| c.answer.as_deref()).collect();
                certaindex(&answers) >= self.threshold
            },
        )?;
        let chosen = select(&candidates, Vote::Majority);
        Ok(Solution::new(self.name(), candidates, chosen, stats).scored(scoring_ms, None))
    }
}

impl crate::registry::Settings for CertaintyVote {
    const N: Option<&'static str> = Some("n");
    fn check(&self) -> Result<(), SearchError> {
        crate::registry::check_generation(&self.sampling, self.max_tokens)?;
        self.validate()
    }
}
