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
use crate::tree::arena::{argmax, Arena, Slot};
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
    /// PUCT constant c_base, > 0 (openr / AlphaZero: 19652).
    /// Exploration grows as ln((N + c_base + 1) / c_base) with the parent's visits N.
    pub c_base: f64,
    /// PUCT exploration constant c_init, added to that logarithm; finite (openr: 1.25).
    pub c_init: f64,
    /// Sampling of every new token.
    pub sampling: SamplingParams,
    /// Most new tokens on one path from the root, all its steps together.
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
    /// Index of its parent in the reported nodes (None: the root, index 0).
    pub parent: Option<usize>,
    /// Indices of its children in the reported nodes, in creation order (duplicate
    /// steps dropped).
    pub children: Vec<usize>,
    /// Normalised over siblings from exp(mean step logprob).
    pub prior: f64,
    /// The scorer's value when the node was created.
    pub initial_value: f64,
    /// Walks whose back-propagation passed through it.
    pub visits: u32,
    /// Sum of the leaf values backed up through it (its Q is `value_sum / visits`).
    pub value_sum: f64,
    /// Its step ended the path: end of generation, an empty step, the token cap, a
    /// budget, or `max_depth`.
    pub terminal: bool,
    /// Released to stay within `max_live`; never selected again.
    pub pruned: bool,
    /// Steps from the root (the root is 0).
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

/// What MCTS keeps per node beside the shared bookkeeping.
struct Step {
    prior: f64,
    initial_value: f64,
    terminal: bool,
    /// The text of a finished node.
    candidate: Option<Candidate>,
}

/// The searched tree; a node's live branch is that of an unexpanded, unfinished leaf.
type Nodes = Arena<Step>;

/// Mean backed-up value if visited, else the initial value (as [`TreeNode::q`]).
fn q(s: &Slot<Step>) -> f64 {
    s.mean().unwrap_or(s.data.initial_value)
}

impl Mcts {
    /// Check the settings: iterations, width and depth ≥ 1, a valid step unit,
    /// `max_live` ≥ `width`, c_base > 0 and c_init finite.
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
        self.puct_of(parent_visits, child.q(), child.prior, child.visits)
    }

    fn puct_of(&self, parent_visits: u32, q: f64, prior: f64, visits: u32) -> f64 {
        let np = parent_visits as f64;
        let explore = ((np + self.c_base + 1.0) / self.c_base).ln() + self.c_init;
        q + prior * np.sqrt() / (1.0 + visits as f64) * explore
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
        let root_step = Step {
            prior: 1.0,
            initial_value: 0.0,
            terminal: false,
            candidate: None,
        };
        let mut nodes = Nodes::new(root_step, Some(root));
        let mut paths = Vec::new();
        let mut truncated = false;
        for _ in 0..self.iterations {
            if exhausted(&nodes, 0) {
                break; // every leaf was pruned or finished and every path walked
            }
            let mut cur = 0;
            while !nodes[cur].data.terminal {
                if nodes[cur].children.is_empty() {
                    truncated |= self.expand(&tree, &mut nodes, cur)?;
                    self.prune(&mut nodes, cur);
                }
                let pv = nodes[cur].visits;
                let open = nodes[cur]
                    .children
                    .iter()
                    .copied()
                    .filter(|&c| !exhausted(&nodes, c));
                let best = argmax(open, |&c| {
                    let n = &nodes[c];
                    self.puct_of(pv, q(n), n.data.prior, n.visits)
                });
                let Some(best) = best else {
                    break; // all children pruned: the path ends here
                };
                cur = best;
                if truncated {
                    break;
                }
            }
            nodes.backup(cur, q(&nodes[cur]));
            let n = &nodes[cur];
            match (&n.data.candidate, &n.live) {
                (Some(c), _) => paths.push(c.clone()),
                (None, Some(n)) => paths.push(tree.candidate(n)),
                (None, None) => {} // a dead end after pruning: no text to offer
            }
            if truncated {
                break;
            }
        }
        let report: Vec<TreeNode> = nodes
            .iter()
            .map(|n| TreeNode {
                parent: n.parent,
                children: n.children.clone(),
                prior: n.data.prior,
                initial_value: n.data.initial_value,
                visits: n.visits,
                value_sum: n.value_sum,
                terminal: n.data.terminal,
                pruned: n.pruned,
                depth: n.depth,
            })
            .collect();
        drop(nodes);
        let chosen = select(&paths, self.vote);
        let sol = Solution::new(self.name(), paths, chosen, tree.stats())
            .scored(tree.scoring_ms(), tree.scorer_stats())
            .cut_short(truncated);
        Ok((sol, report))
    }

    /// Sample W children of a leaf in one batch and score them; the leaf's branch is
    /// released. True if the budget cut the expansion short.
    fn expand(&self, tree: &Tree<'_>, nodes: &mut Nodes, at: usize) -> Result<bool, SearchError> {
        let mut parent = nodes[at]
            .live
            .take()
            .expect("an unexpanded leaf keeps its branch");
        tree.settle([&mut parent])?;
        let mut kids = tree.fork(&parent, self.width)?;
        drop(parent);
        {
            let mut all: Vec<&mut Node> = kids.iter_mut().collect();
            tree.grow(&mut all, nodes[at].depth + 1 >= self.max_depth, None)?;
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
            let step = Step {
                prior,
                initial_value: k.value,
                terminal,
                candidate: terminal.then(|| tree.candidate(&k)),
            };
            nodes.push(at, step, (!terminal).then_some(k));
        }
        Ok(cut)
    }

    /// Release the lowest-valued live leaves beyond `max_live`, sparing the children of
    /// `fresh` (just expanded: the walk continues among them) but counting them.
    fn prune(&self, nodes: &mut Nodes, fresh: usize) {
        let fresh_live = nodes[fresh]
            .children
            .iter()
            .filter(|&&c| nodes[c].live.is_some())
            .count();
        let keep = self.max_live.saturating_sub(fresh_live);
        nodes.prune(keep, |_, n| n.parent == Some(fresh), q);
    }
}

/// A node no walk can use any more: pruned, or expanded with every child exhausted.
fn exhausted(nodes: &Nodes, i: usize) -> bool {
    let n = &nodes[i];
    n.pruned
        || (!n.data.terminal && n.live.is_none() && n.children.iter().all(|&c| exhausted(nodes, c)))
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
