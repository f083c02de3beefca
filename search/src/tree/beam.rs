//! PRM-guided step-level beam search (Snell et al. 2024; HF search-and-learn).
//!
//! N beams grow one step at a time; after each step every beam is scored and the best
//! N/M survive, each continued M ways (forks through the KV cache, never a re-read).
//! A beam that ends (end of generation, an empty step, the token cap) leaves the pool
//! as a candidate; the last iteration runs every beam to its end. The answer is the
//! best-scored candidate (or a vote over them).

use crate::strategy::{invalid, Cx, Needs, Problem, SearchError, Solution, Strategy};
use crate::tree::{Node, Steps, Tree};
use crate::vote::{select, Vote};
use ponder_engine::SamplingParams;
use serde::{Deserialize, Serialize};

/// Step-level beam search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BeamSearch {
    /// Beams (N).
    pub n: usize,
    /// Beam width M: keep N/M beams per step, expand each M ways. Must divide N.
    pub width: usize,
    /// Most steps (SAL: 40); the last one runs to end of generation.
    pub iterations: usize,
    /// Greedy steps looked ahead when scoring (0: score the step itself).
    pub lookahead: usize,
    /// Keep only the first of beams with identical text before pruning.
    pub filter_duplicates: bool,
    /// Final pool: the N best completed beams (true) or the first N to complete (SAL default).
    pub sort_completed: bool,
    /// Sampling of every new token.
    pub sampling: SamplingParams,
    /// Most new tokens on one beam from the root, all its steps together.
    pub max_tokens: usize,
    /// Where a reasoning step ends.
    pub steps: Steps,
    /// How the answer is picked from completed beams (default: the best score).
    pub vote: Vote,
}

impl Default for BeamSearch {
    fn default() -> Self {
        Self {
            n: 8,
            width: 4,
            iterations: 40,
            lookahead: 0,
            filter_duplicates: true,
            sort_completed: false,
            sampling: SamplingParams::default(),
            max_tokens: crate::registry::DEFAULT_MAX_TOKENS,
            steps: Steps::default(),
            vote: Vote::Naive,
        }
    }
}

/// Check N, M and the sequence room shared by beam search and DVTS.
pub(crate) fn check_width(n: usize, width: usize, iterations: usize) -> Result<(), SearchError> {
    if n == 0 {
        return Err(invalid("n", "0 (must be ≥ 1)"));
    }
    if width == 0 {
        return Err(invalid("beam width", "0 (must be ≥ 1)"));
    }
    if !n.is_multiple_of(width) {
        return Err(invalid(
            "beam width",
            format!("{width} does not divide n = {n} (n must be a multiple of the width)"),
        ));
    }
    if iterations == 0 {
        return Err(invalid("iterations", "0 (must be ≥ 1)"));
    }
    Ok(())
}

impl BeamSearch {
    /// N, M, iterations and steps, checked before any model is loaded.
    pub fn validate(&self) -> Result<(), SearchError> {
        check_width(self.n, self.width, self.iterations)?;
        self.steps.validate()
    }
}

impl Strategy for BeamSearch {
    fn settings(&self) -> serde_json::Value {
        crate::strategy::settings_of(self)
    }

    fn name(&self) -> String {
        format!("beam-{}x{}", self.n, self.width)
    }

    fn needs(&self) -> Needs {
        let sequences = {
            if self.lookahead > 0 {
                2 * self.n
            } else {
                self.n
            }
        };
        Needs {
            sequences,
            max_tokens: self.max_tokens,
            scorer: true,
            ..Needs::default()
        }
    }

    fn solve(&self, cx: &Cx, problem: &Problem) -> Result<Solution, SearchError> {
        self.validate()?;
        cx.check_sequences(self.sequences())?;
        let (tree, root) = Tree::new(cx, problem, self.sampling, &self.steps, self.max_tokens)?;
        let keep = self.n / self.width;
        let mut active = tree.refill(vec![root], self.n)?;
        let mut completed = Vec::new();
        let mut truncated = false;
        for it in 0..self.iterations {
            let last = it + 1 == self.iterations;
            {
                let mut all: Vec<&mut Node> = active.iter_mut().collect();
                tree.grow(&mut all, last, None)?;
                if !last {
                    tree.lookahead(&mut all, self.lookahead)?;
                }
            }
            let (done, live): (Vec<Node>, Vec<Node>) = active.into_iter().partition(|b| b.done);
            for b in &done {
                truncated |= b.cut();
                completed.push(tree.candidate(b));
            }
            drop(done); // release finished beams before forking survivors
            active = live;
            if active.is_empty() || completed.len() >= self.n || truncated {
                break;
            }
            if self.filter_duplicates {
                let mut seen = std::collections::HashSet::new();
                active.retain(|b| seen.insert(b.branch.text()));
            }
            // The best N/M by value; a stable sort keeps earlier beams on ties.
            active.sort_by(|a, b| b.value.total_cmp(&a.value));
            active.truncate(keep);
            active = tree.refill(active, self.n)?;
        }
        // Never nothing: a budget stop leaves the live beams as (partial) candidates.
        if completed.is_empty() {
            completed = active.iter().map(|b| tree.candidate(b)).collect();
        }
        drop(active);
        if self.sort_completed {
            completed.sort_by(|a, b| {
                b.score
                    .unwrap_or(f64::MIN)
                    .total_cmp(&a.score.unwrap_or(f64::MIN))
            });
        }
        completed.truncate(self.n);
        let chosen = select(&completed, self.vote);
        Ok(Solution::new(self.name(), completed, chosen, tree.stats())
            .scored(tree.scoring_ms(), tree.scorer_stats())
            .cut_short(truncated))
    }
}

impl crate::registry::Settings for BeamSearch {
    const N: Option<&'static str> = Some("n");
    fn check(&self) -> Result<(), SearchError> {
        crate::registry::check_generation(&self.sampling, self.max_tokens)?;
        self.validate()
    }
}
