//! MCTS over reasoning steps (openr's "vanilla MCTS"): PUCT selection with the step's
//! token likelihood as the prior and the scorer as the value, expansion of W children
//! per node, no random rollouts (a new child's value is its score), back-propagation of
//! the leaf's value along the path. Each iteration walks from the root to a finished
//! step and emits that path as a candidate; the answer is a vote over the paths.
//!
//! Nodes fork through the KV cache; an expanded node's branch is released (its children
//! hold the shared prefix), so live sequences are the unexpanded leaves. When more than
//! `max_live` leaves would be alive, the lowest-valued older leaves are pruned (their
//! sequences released; selection skips them), so the search fits a fixed sequence budget.

use crate::strategy::{invalid, Candidate, Cx, Needs, Problem, SearchError, Solution, Strategy};
use crate::tree::{Node, Steps, Tree};
use crate::vote::{select, Vote};
use ponder_engine::SamplingParams;
use serde::{Deserialize, Serialize};

/// Monte Carlo tree search over steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mcts {
    /// Paths walked from the root (each ends in a candidate).
    pub iterations: usize,
    /// Children sampled per expansion (W).
    pub width: usize,
    /// Most steps on a path; the step at this depth runs to end of generation.
    pub max_depth: usize,
    /// Most unexpanded leaves kept alive (each holds a KV sequence).
    pub max_live: usize,
    /// PUCT constants (openr / AlphaZero): c_base 19652, c_init 1.25.
    pub c_base: f64,
    /// PUCT exploration constant c_init (openr: 1.25).
    pub c_init: f64,
    /// Sampling of every new token.
    pub sampling: SamplingParams,
    /// New tokens per sample (per path for step-level searches).
    pub max_tokens: usize,
    /// Where a reasoning step ends.
    pub steps: Steps,
    /// How the answer is picked from the paths (default: majority).
    pub vote: Vote,
}

impl Default for Mcts {
    fn default() -> Self {
        Self {
            iterations: 8,
            width: 4,
            max_depth: 16,
            max_live: 48,
            c_base: 19652.0,
            c_init: 1.25,
            sampling: SamplingParams {
                temperature: 0.7,
                ..SamplingParams::default()
            },
            max_tokens: crate::registry::DEFAULT_MAX_TOKENS,
            steps: Steps::default(),
            vote: Vote::Majority,
        }
    }
}

/// One node of the searched tree, as reported after the search.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TreeNode {
    pub parent: Option<usize>,
    pub children: Vec<usize>,
    /// Normalised over siblings from exp(mean step logprob).
    pub prior: f64,
    /// The scorer's value when the node was created.
    pub initial_value: f64,
    pub visits: u32,
    pub value_sum: f64,
    pub terminal: bool,
    /// Released to stay within `max_live`; never selected again.
    pub pruned: bool,
    pub depth: usize,
}

impl TreeNode {
    /// Mean backed-up value if visited, else the initial value.
    pub fn q(&self) -> f64 {
        if self.visits > 0 {
            self.value_sum / self.visits as f64
        } else {
            self.initial_value
        }
    }
}

struct Slot {
    info: TreeNode,
    /// The live branch of an unexpanded, unfinished node.
    node: Option<Node>,
    /// The text of a finished node.
    candidate: Option<Candidate>,
}

impl Mcts {
    pub fn validate(&self) -> Result<(), SearchError> {
        if self.iterations == 0 {
            return Err(invalid("iterations", "0 (must be ≥ 1)"));
        }
        if self.width == 0 {
            return Err(invalid("width", "0 (must be ≥ 1)"));
        }
        if self.max_depth == 0 {
            return Err(invalid("max depth", "0 (must be ≥ 1)"));
        }
        self.steps.validate()?;
        if self.max_live < self.width {
            return Err(invalid(
                "max live leaves",
                format!("{} is fewer than the width {}", self.max_live, self.width),
            ));
        }
        if self.c_base.is_nan() || self.c_base <= 0.0 || !self.c_init.is_finite() {
            return Err(invalid(
                "PUCT constants",
                format!(
                    "c_base {} must be > 0, c_init {} finite",
                    self.c_base, self.c_init
                ),
            ));
        }
        Ok(())
    }

    /// PUCT: Q + prior · √N(parent) / (1 + N(child)) · (ln((N(parent) + c_base + 1) / c_base) + c_init).
    pub fn puct(&self, parent_visits: u32, child: &TreeNode) -> f64 {
        let np = parent_visits as f64;
        let explore = ((np + self.c_base + 1.0) / self.c_base).ln() + self.c_init;
        child.q() + child.prior * np.sqrt() / (1.0 + child.visits as f64) * explore
    }

    /// Solve and also return the tree (visits, values) for inspection.
    pub fn search(
        &self,
        cx: &Cx,
        problem: &Problem,
    ) -> Result<(Solution, Vec<TreeNode>), SearchError> {
        self.validate()?;
        cx.check_sequences(self.sequences())?;
        let (tree, root) = Tree::new(cx, problem, self.sampling, &self.steps, self.max_tokens)?;
        let mut slots = vec![Slot {
            info: TreeNode {
                parent: None,
                children: Vec::new(),
                prior: 1.0,
                initial_value: 0.0,
                visits: 0,
                value_sum: 0.0,
                terminal: false,
                pruned: false,
                depth: 0,
            },
            node: Some(root),
            candidate: None,
        }];
        let mut paths = Vec::new();
        let mut truncated = false;
        for _ in 0..self.iterations {
            if exhausted(&slots, 0) {
                break; // every leaf was pruned or finished and every path walked
            }
            let mut cur = 0;
            let mut path = vec![0];
            while !slots[cur].info.terminal {
                if slots[cur].info.children.is_empty() {
                    truncated |= self.expand(&tree, &mut slots, cur)?;
                    self.prune(&mut slots, cur);
                }
                let pv = slots[cur].info.visits;
                let best = slots[cur]
                    .info
                    .children
                    .iter()
                    .copied()
                    .filter(|&c| !exhausted(&slots, c))
                    .fold(None, |b: Option<(usize, f64)>, c| {
                        let s = self.puct(pv, &slots[c].info);
                        match b {
                            Some((_, bs)) if bs >= s => b,
                            _ => Some((c, s)),
                        }
                    })
                    .map(|(c, _)| c);
                let Some(best) = best else {
                    break; // all children pruned: the path ends here
                };
                cur = best;
                path.push(cur);
                if truncated {
                    break;
                }
            }
            let v = slots[cur].info.q();
            for &i in &path {
                slots[i].info.visits += 1;
                slots[i].info.value_sum += v;
            }
            match (&slots[cur].candidate, &slots[cur].node) {
                (Some(c), _) => paths.push(c.clone()),
                (None, Some(n)) => paths.push(tree.candidate(n)),
                (None, None) => {} // a dead end after pruning: no text to offer
            }
            if truncated {
                break;
            }
        }
        let nodes: Vec<TreeNode> = slots.iter().map(|s| s.info.clone()).collect();
        drop(slots);
        let chosen = select(&paths, self.vote);
        let sol = Solution::new(self.name(), paths, chosen, tree.stats())
            .scored(tree.scoring_ms(), tree.scorer_stats())
            .cut_short(truncated);
        Ok((sol, nodes))
    }

    /// Sample W children of a leaf in one batch and score them; the leaf's branch is
    /// released. True if the budget cut the expansion short.
    fn expand(
        &self,
        tree: &Tree<'_>,
        slots: &mut Vec<Slot>,
        at: usize,
    ) -> Result<bool, SearchError> {
        let mut parent = slots[at]
            .node
            .take()
            .expect("an unexpanded leaf keeps its branch");
        tree.settle([&mut parent])?;
        let mut kids = tree.fork(&parent, self.width)?;
        drop(parent);
        let depth = slots[at].info.depth + 1;
        {
            let mut all: Vec<&mut Node> = kids.iter_mut().collect();
            tree.grow(&mut all, depth >= self.max_depth, None)?;
        }
        let cut = kids.iter().any(Node::cut);
        // Duplicate steps are one child (openr drops them).
        let mut seen = std::collections::HashSet::new();
        kids.retain(|k| seen.insert(k.branch.text()));
        let z: f64 = kids.iter().map(|k| k.step_logprob.exp()).sum();
        for k in kids {
            let prior = if z > 0.0 {
                k.step_logprob.exp() / z
            } else {
                1.0
            };
            let terminal = k.done;
            let info = TreeNode {
                parent: Some(at),
                children: Vec::new(),
                prior,
                initial_value: k.value,
                visits: 0,
                value_sum: 0.0,
                terminal,
                pruned: false,
                depth,
            };
            let id = slots.len();
            slots[at].info.children.push(id);
            let (node, candidate) = if terminal {
                (None, Some(tree.candidate(&k)))
            } else {
                (Some(k), None)
            };
            slots.push(Slot {
                info,
                node,
                candidate,
            });
        }
        Ok(cut)
    }
}

impl Mcts {
    /// Release the lowest-valued live leaves beyond `max_live`, sparing the children of
    /// `fresh` (just expanded: the walk continues among them).
    fn prune(&self, slots: &mut [Slot], fresh: usize) {
        let mut live: Vec<usize> = (0..slots.len())
            .filter(|&i| slots[i].node.is_some() && slots[i].info.parent != Some(fresh))
            .collect();
        let fresh_live = slots[fresh]
            .info
            .children
            .iter()
            .filter(|&&c| slots[c].node.is_some())
            .count();
        let over = (live.len() + fresh_live).saturating_sub(self.max_live);
        if over == 0 {
            return;
        }
        live.sort_by(|&a, &b| slots[a].info.q().total_cmp(&slots[b].info.q()));
        for &i in live.iter().take(over) {
            slots[i].node = None;
            slots[i].info.pruned = true;
        }
    }
}

/// A node no walk can use any more: pruned, or expanded with every child exhausted.
fn exhausted(slots: &[Slot], i: usize) -> bool {
    let n = &slots[i].info;
    n.pruned
        || (!n.terminal
            && slots[i].node.is_none()
            && n.children.iter().all(|&c| exhausted(slots, c)))
}

impl Strategy for Mcts {
    fn settings(&self) -> serde_json::Value {
        crate::strategy::settings_of(self)
    }

    fn name(&self) -> String {
        format!("mcts-{}x{}", self.iterations, self.width)
    }

    fn needs(&self) -> Needs {
        let sequences = {
            // Live leaves (capped), plus a node being expanded into W children.
            self.max_live.max(self.width) + self.width + 1
        };
        Needs {
            sequences,
            max_tokens: self.max_tokens,
            scorer: true,
            ..Needs::default()
        }
    }

    fn solve(&self, cx: &Cx, problem: &Problem) -> Result<Solution, SearchError> {
        self.search(cx, problem).map(|(s, _)| s)
    }
}

impl crate::registry::Settings for Mcts {
    const N: Option<&'static str> = Some("iterations");
    fn check(&self) -> Result<(), SearchError> {
        crate::registry::check_generation(&self.sampling, self.max_tokens)?;
        self.validate()
    }
}
