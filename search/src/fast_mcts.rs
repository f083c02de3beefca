//! FastMCTS (Li et al., ACL 2025), at test time: UCT over reasoning steps where every
//! simulated step is kept as a node, the adaptive stay policy branches from mid-tree nodes
//! whose score is neither hopeless nor settled, and exploration shrinks with a node's
//! score. The paper's win signal is a verified final answer; with no ground truth at test
//! time it is the scorer's value of the finished text (in [0, 1]: a verifier, a PRM).
//!
//! A simulation runs from the chosen node to the end in one `extend` and is cut into step
//! nodes afterwards; a node is (its trajectory's branch, a token length), and branching
//! from it forks that branch at that length, sharing the KV prefix.

use crate::answer::extract_answer;
use crate::strategy::{
    invalid, was_truncated, Candidate, Cx, Needs, Problem, SearchError, Solution, Strategy,
};
use crate::tree::{StepUnit, Steps};
use crate::vote::{select, Vote};
use ponder_engine::{Branch, GenSpec, SamplingParams};
use ponder_scorers::Sample;
use serde::{Deserialize, Serialize};

/// FastMCTS with a scorer as the win signal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FastMcts {
    /// Trajectories simulated (each ends in a candidate).
    pub trajectories: usize,
    /// UCT exploration constant c.
    pub c: f64,
    /// Stay (branch here) when a node's score is in (0, l_low] ∪ [l_high, 1).
    pub l_low: f64,
    /// Upper edge of the stay band (see `l_low`).
    pub l_high: f64,
    /// Sampling of every new token.
    pub sampling: SamplingParams,
    /// New tokens per sample (per path for step-level searches).
    pub max_tokens: usize,
    /// Where a reasoning step ends.
    pub steps: Steps,
    /// How the answer is picked from the candidates.
    pub vote: Vote,
}

impl Default for FastMcts {
    fn default() -> Self {
        Self {
            trajectories: 8,
            c: std::f64::consts::SQRT_2,
            l_low: 0.2,
            l_high: 0.8,
            sampling: SamplingParams::default(),
            max_tokens: crate::registry::DEFAULT_MAX_TOKENS,
            steps: Steps::default(),
            vote: Vote::Majority,
        }
    }
}

/// One node (a step) of the tree, as reported after the search.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepNode {
    pub parent: Option<usize>,
    pub children: Vec<usize>,
    /// Which trajectory's branch holds this step, and its completion length in tokens.
    pub trajectory: usize,
    pub len: usize,
    pub visits: u32,
    pub wins: f64,
    pub terminal: bool,
}

impl StepNode {
    /// wins / visits (0 unvisited).
    pub fn score(&self) -> f64 {
        if self.visits == 0 {
            0.0
        } else {
            self.wins / self.visits as f64
        }
    }
}

impl FastMcts {
    pub fn validate(&self) -> Result<(), SearchError> {
        if self.trajectories == 0 {
            return Err(invalid("trajectories", "0 (must be ≥ 1)"));
        }
        if !(0.0 < self.l_low && self.l_low < self.l_high && self.l_high < 1.0) {
            return Err(invalid(
                "stay thresholds",
                format!(
                    "need 0 < l_low ({}) < l_high ({}) < 1",
                    self.l_low, self.l_high
                ),
            ));
        }
        if !(self.c >= 0.0 && self.c.is_finite()) {
            return Err(invalid(
                "exploration constant",
                format!("{} (must be ≥ 0)", self.c),
            ));
        }
        self.steps.validate()
    }

    /// The adaptive stay policy: branch from a node whose score is in (0, l_low] ∪ [l_high, 1).
    pub fn stays(&self, score: f64) -> bool {
        (score > 0.0 && score <= self.l_low) || (score >= self.l_high && score < 1.0)
    }

    /// UCT with dynamic exploration: c is scaled by the child's score once it has been
    /// visited more than once. Unvisited children come first.
    pub fn uct(&self, parent_visits: u32, child: &StepNode) -> f64 {
        if child.visits == 0 {
            return f64::INFINITY;
        }
        let c = if child.visits > 1 {
            self.c * child.score()
        } else {
            self.c
        };
        child.score() + c * ((parent_visits.max(1) as f64).ln() / child.visits as f64).sqrt()
    }

    /// Solve and also return the tree.
    pub fn search(
        &self,
        cx: &Cx,
        problem: &Problem,
    ) -> Result<(Solution, Vec<StepNode>), SearchError> {
        self.validate()?;
        cx.check_sequences(self.sequences())?;
        let session = cx.session(problem);
        let root_branch = session.prefill(&cx.prompt(problem)?)?;
        let mut nodes = vec![StepNode {
            parent: None,
            children: Vec::new(),
            trajectory: usize::MAX,
            len: 0,
            visits: 0,
            wins: 0.0,
            terminal: false,
        }];
        // Each simulated trajectory: its branch (kept for forking at its steps) and text.
        let mut trajs: Vec<(Branch, Candidate)> = Vec::new();
        let mut candidates: Vec<Candidate> = Vec::new();
        let spec = GenSpec::new(self.sampling, self.max_tokens);
        for _ in 0..self.trajectories {
            // Selection with the adaptive stay policy. A finished child is not walked
            // into again (at test time that would only repeat its text): the walk
            // branches from the current node instead.
            let mut cur = 0;
            let mut path = vec![0];
            loop {
                let n = &nodes[cur];
                if n.children.is_empty() || self.stays(n.score()) {
                    break;
                }
                let pv = n.visits;
                let next = n
                    .children
                    .iter()
                    .copied()
                    .fold(None, |b: Option<(usize, f64)>, c| {
                        let u = self.uct(pv, &nodes[c]);
                        match b {
                            Some((_, bu)) if bu >= u => b,
                            _ => Some((c, u)),
                        }
                    })
                    .map(|(c, _)| c)
                    .expect("children");
                if nodes[next].terminal {
                    break;
                }
                cur = next;
                path.push(cur);
            }
            // Reserve simulation: from the chosen node to the end, every step a node.
            let (win, cand) = {
                let mut b = if cur == 0 {
                    root_branch.fork(1)?.pop().expect("one")
                } else {
                    let n = &nodes[cur];
                    trajs[n.trajectory].0.fork_at(1, n.len)?.pop().expect("one")
                };
                let from = b.tokens().len();
                let left = self.max_tokens.saturating_sub(from);
                session.extend_capped([(&mut b, left)], &spec)?;
                // Cut the new text into steps: a step ends with the delimiter (or every
                // K tokens), the last one at the end.
                let text = b.text();
                let bounds = step_bounds(text.as_bytes(), b.piece_lens(), from, &self.steps.unit);
                let t = trajs.len();
                let mut parent = cur;
                for (k, &end) in bounds.iter().enumerate() {
                    let id = nodes.len();
                    nodes.push(StepNode {
                        parent: Some(parent),
                        children: Vec::new(),
                        trajectory: t,
                        len: end,
                        visits: 0,
                        wins: 0.0,
                        terminal: k + 1 == bounds.len(),
                    });
                    nodes[parent].children.push(id);
                    path.push(id);
                    parent = id;
                }
                let win = cx
                    .scorer
                    .score(
                        &Sample::new(&problem.question, &text)
                            .with_logprobs(b.logprobs())
                            .with_certainty(b.certainty()),
                    )
                    .map_err(|e| crate::tree::scoring(bounds.len(), vec![b.id()], e))?
                    .clamp(0.0, 1.0);
                let c = Candidate {
                    answer: extract_answer(&text),
                    text,
                    score: Some(win),
                    tokens: b.tokens().len(),
                    finish: b.finish().cloned(),
                };
                trajs.push((b, c.clone()));
                (win, c)
            };
            for &i in &path {
                nodes[i].visits += 1;
                nodes[i].wins += win;
            }
            candidates.push(cand);
            if was_truncated(&candidates) {
                break;
            }
        }
        drop((trajs, root_branch));
        let chosen = select(&candidates, self.vote);
        let sol = Solution::new(self.name(), candidates, chosen, session.stats());
        Ok((sol, nodes))
    }
}

/// Completion lengths (tokens) where the steps generated after token `from` end: after a
/// token that completes the delimiter (or every K tokens), and at the end. `text` is the
/// completion, `piece_lens` each token's byte length in it.
pub(crate) fn step_bounds(
    text: &[u8],
    piece_lens: &[u32],
    from: usize,
    unit: &StepUnit,
) -> Vec<usize> {
    let total = piece_lens.len();
    let mut out = Vec::new();
    match unit {
        StepUnit::Tokens(k) => {
            let mut end = from + k;
            while end < total {
                out.push(end);
                end += k;
            }
        }
        StepUnit::Delimiter(delim) => {
            let d = delim.as_bytes();
            let mut end: usize = piece_lens[..from].iter().map(|&l| l as usize).sum();
            let mut last_cut = end;
            for (i, &l) in piece_lens.iter().enumerate().skip(from) {
                let start = end;
                end = (end + l as usize).min(text.len());
                // A delimiter that ends inside this token and starts after the last cut.
                let lo = start.saturating_sub(d.len() - 1).max(last_cut);
                let hit = text[lo..end].windows(d.len()).any(|w| w == d);
                if hit && i + 1 < total {
                    out.push(i + 1);
                    last_cut = end;
                }
            }
        }
    }
    out.push(total);
    out.dedup();
    out
}

impl Strategy for FastMcts {
    fn settings(&self) -> serde_json::Value {
        crate::strategy::settings_of(self)
    }

    fn name(&self) -> String {
        format!("fast-mcts-{}", self.trajectories)
    }

    fn needs(&self) -> Needs {
        Needs {
            sequences: self.trajectories + 2,
            max_tokens: self.max_tokens,
            scorer: true,
            ..Needs::default()
        }
    }

    fn solve(&self, cx: &Cx, problem: &Problem) -> Result<Solution, SearchError> {
        self.search(cx, problem).map(|(s, _)| s)
    }
}

impl crate::registry::Settings for FastMcts {
    const N: Option<&'static str> = Some("trajectories");
    fn check(&self) -> Result<(), SearchError> {
        crate::registry::check_generation(&self.sampling, self.max_tokens)?;
        self.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_end_at_the_token_that_completes_the_delimiter() {
        // Tokens: "a" "\n" "\nb" "c\n\n" "d" — steps end after token 3 (the second
        // "\n" arrives inside "\nb") and after token 4; the last step ends at 5.
        let pieces = ["a", "\n", "\nb", "c\n\n", "d"];
        let text = pieces.concat();
        let lens: Vec<u32> = pieces.iter().map(|p| p.len() as u32).collect();
        let unit = StepUnit::Delimiter("\n\n".into());
        assert_eq!(step_bounds(text.as_bytes(), &lens, 0, &unit), vec![3, 4, 5]);
        // Only what came after `from` is cut: from token 3 on, one cut after token 4.
        assert_eq!(step_bounds(text.as_bytes(), &lens, 3, &unit), vec![4, 5]);
        // A delimiter at the very end is the end, not an extra step.
        let lens2 = [1u32, 2];
        assert_eq!(step_bounds(b"a\n\n", &lens2, 0, &unit), vec![2]);
        // Token chunks.
        assert_eq!(
            step_bounds(text.as_bytes(), &lens, 0, &StepUnit::Tokens(2)),
            vec![2, 4, 5]
        );
    }
}
