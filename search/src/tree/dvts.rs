//! DVTS, diverse verifier tree search (HF search-and-learn): N/M independent subtrees,
//! each greedy by score over M candidate next steps. Subtrees never compete, so one
//! subtree's high scores cannot prune another's line of reasoning: diversity at large N.

use crate::strategy::{Candidate, Cx, Needs, Problem, SearchError, Solution, Strategy};
use crate::tree::beam::check_width;
use crate::tree::{Node, Steps, Tree};
use crate::vote::{select, Vote};
use ponder_engine::SamplingParams;
use serde::{Deserialize, Serialize};

/// Diverse verifier tree search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dvts {
    /// Total candidates per step (N); N/M subtrees.
    pub n: usize,
    /// Candidates per subtree per step (M). Must divide N.
    pub width: usize,
    /// Most steps; the last runs to end of generation.
    pub iterations: usize,
    /// Greedy steps looked ahead when scoring a candidate (0: score the step itself).
    pub lookahead: usize,
    /// Sampling of every new token.
    pub sampling: SamplingParams,
    /// Most new tokens on one path from the root, all its steps together.
    pub max_tokens: usize,
    /// Where a reasoning step ends.
    pub steps: Steps,
    /// How the answer is picked from the subtrees' last candidates (default: best score).
    pub vote: Vote,
}

impl Default for Dvts {
    fn default() -> Self {
        Self {
            n: 8,
            width: 4,
            iterations: 40,
            lookahead: 0,
            sampling: SamplingParams::default(),
            max_tokens: crate::registry::DEFAULT_MAX_TOKENS,
            steps: Steps::default(),
            vote: Vote::Naive,
        }
    }
}

struct Subtree {
    node: Node,
    /// The candidates of its last expansion (SAL's output: previous text + each sibling).
    last: Vec<Candidate>,
    done: bool,
}

impl Dvts {
    /// N, M, iterations and steps, checked before any model is loaded.
    pub fn validate(&self) -> Result<(), SearchError> {
        check_width(self.n, self.width, self.iterations)?;
        self.steps.validate()
    }
}

impl Strategy for Dvts {
    fn settings(&self) -> serde_json::Value {
        crate::strategy::settings_of(self)
    }

    fn name(&self) -> String {
        format!("dvts-{}x{}", self.n, self.width)
    }

    fn needs(&self) -> Needs {
        let sequences = {
            let base = self.n + self.n / self.width.max(1);
            if self.lookahead > 0 {
                base + self.n
            } else {
                base
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
        let mut subs: Vec<Subtree> = tree
            .refill(vec![root], self.n / self.width)?
            .into_iter()
            .map(|node| Subtree {
                node,
                last: Vec::new(),
                done: false,
            })
            .collect();
        let mut truncated = false;
        for it in 0..self.iterations {
            let last = it + 1 == self.iterations;
            let mut live: Vec<&mut Subtree> = subs.iter_mut().filter(|s| !s.done).collect();
            if live.is_empty() {
                break;
            }
            tree.settle(live.iter_mut().map(|s| &mut s.node))?;
            let mut kids: Vec<Vec<Node>> = live
                .iter()
                .map(|s| tree.fork(&s.node, self.width))
                .collect::<Result<_, _>>()?;
            {
                let mut all: Vec<&mut Node> = kids.iter_mut().flatten().collect();
                tree.grow(&mut all, last, None)?;
                if !last {
                    tree.lookahead(&mut all, self.lookahead)?;
                }
            }
            for (s, ks) in live.iter_mut().zip(kids) {
                s.last = ks.iter().map(|k| tree.candidate(k)).collect();
                truncated |= ks.iter().any(Node::cut);
                // Greedy within the subtree: the best candidate (first on ties).
                let best = ks
                    .into_iter()
                    .reduce(|a, b| if b.value > a.value { b } else { a })
                    .expect("width ≥ 1");
                s.done = best.done || best.branch.text().contains("boxed{");
                s.node = best; // the parent and the other siblings are released here
            }
            if truncated {
                break;
            }
        }
        let candidates: Vec<Candidate> = subs
            .iter()
            .flat_map(|s| {
                if s.last.is_empty() {
                    vec![tree.candidate(&s.node)]
                } else {
                    s.last.clone()
                }
            })
            .collect();
        drop(subs);
        let chosen = select(&candidates, self.vote);
        Ok(Solution::new(self.name(), candidates, chosen, tree.stats())
            .scored(tree.scoring_ms(), tree.scorer_stats())
            .cut_short(truncated))
    }
}

impl crate::registry::Settings for Dvts {
    const N: Option<&'static str> = Some("n");
    fn check(&self) -> Result<(), SearchError> {
        crate::registry::check_generation(&self.sampling, self.max_tokens)?;
        self.validate()
    }
}
