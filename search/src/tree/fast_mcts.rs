//! FastMCTS (Li et al., ACL 2025), at test time: UCT over reasoning steps where every
//! simulated step is kept as a node, the adaptive stay policy branches from mid-tree nodes
//! whose score is neither hopeless nor settled, and exploration shrinks with a node's
//! score. The paper's win signal is a verified final answer; with no ground truth at test
//! time it is the scorer's value of the finished text (in [0, 1]: a verifier, a PRM).
//!
//! A simulation grows the chosen node to the end step by step on the shared
//! [`Tree`] (steps cut, scored and ended as in beam search, MCTS and DPTS: a scorer's
//! track reads each new step once), and every step becomes a node. A node is (its
//! trajectory's branch, a token length): branching from it forks that branch at that
//! length, sharing the KV prefix, and the scorer's track reads the steps above it again.

use crate::strategy::{
    invalid, was_truncated, Candidate, Cx, Needs, Problem, SearchError, Solution, Strategy,
};
use crate::tree::arena::{argmax, Arena, Slot};
use crate::tree::{Node, Steps, Tree};
use crate::vote::{select, Vote};
use ponder_engine::{Branch, SamplingParams};
use serde::{Deserialize, Serialize};

/// FastMCTS with a scorer as the win signal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FastMcts {
    /// Trajectories simulated (each ends in a candidate).
    pub trajectories: usize,
    /// UCT exploration constant c, ≥ 0 (default √2).
    /// Once a child has been visited more than once, c is scaled by its score.
    pub c: f64,
    /// Stay (branch here) when a node's score is in (0, l_low] ∪ [l_high, 1);
    /// 0 < l_low < l_high < 1.
    pub l_low: f64,
    /// Lower edge of the upper stay band [l_high, 1) (see `l_low`).
    pub l_high: f64,
    /// Sampling of every new token.
    pub sampling: SamplingParams,
    /// Most new tokens on one trajectory from the root, all its steps together.
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
    /// Index of its parent in the reported nodes (None: the root, index 0).
    pub parent: Option<usize>,
    /// Indices of its children in the reported nodes, in creation order.
    pub children: Vec<usize>,
    /// Which simulated trajectory's branch holds this step (its index, in simulation
    /// order; `usize::MAX` for the root, which holds no step).
    pub trajectory: usize,
    /// The trajectory's completion length at the end of this step, in tokens (0 for the
    /// root).
    pub len: usize,
    /// Simulations whose back-propagation passed through it.
    pub visits: u32,
    /// Sum of those simulations' wins, each the scorer's value of the finished text
    /// clamped to [0, 1].
    pub wins: f64,
    /// The step ended its trajectory (end of generation, an empty step, the token cap
    /// or a budget).
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
    /// Check the settings: trajectories ≥ 1, 0 < l_low < l_high < 1, c finite and ≥ 0,
    /// and a valid step unit.
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
        self.uct_of(parent_visits, child.visits, child.score())
    }

    fn uct_of(&self, parent_visits: u32, visits: u32, score: f64) -> f64 {
        if visits == 0 {
            return f64::INFINITY;
        }
        let c = if visits > 1 { self.c * score } else { self.c };
        score + c * ((parent_visits.max(1) as f64).ln() / visits as f64).sqrt()
    }

    /// Solve and also return the tree.
    pub fn search(
        &self,
        cx: &Cx,
        problem: &Problem,
    ) -> Result<(Solution, Vec<StepNode>), SearchError> {
        self.validate()?;
        cx.check_sequences(self.sequences())?;
        let (tree, root) = Tree::new(cx, problem, self.sampling, &self.steps, self.max_tokens)?;
        let root_step = Step {
            trajectory: usize::MAX,
            len: 0,
            terminal: false,
            read: None,
        };
        let mut nodes = Nodes::new(root_step, None);
        // Each simulated trajectory's branch, kept for forking at its steps.
        let mut trajs: Vec<Branch> = Vec::new();
        let mut candidates: Vec<Candidate> = Vec::new();
        for _ in 0..self.trajectories {
            // Selection with the adaptive stay policy. A finished child is not walked
            // into again (at test time that would only repeat its text): the walk
            // branches from the current node instead.
            let mut cur = 0;
            loop {
                let n = &nodes[cur];
                if n.children.is_empty() || self.stays(score(n)) {
                    break;
                }
                let pv = n.visits;
                let next = argmax(n.children.iter().copied(), |&c| {
                    self.uct_of(pv, nodes[c].visits, score(&nodes[c]))
                })
                .expect("children");
                if nodes[next].data.terminal {
                    break;
                }
                cur = next;
            }
            // Reserve simulation: from the chosen node to the end, step by step, every
            // step a node.
            let mut node = if cur == 0 {
                tree.fork(&root, 1)?.pop().expect("one")
            } else {
                self.resume(&tree, &root, &nodes, &trajs, cur)?
            };
            let t = trajs.len();
            let mut at = cur;
            loop {
                let from = node.branch.tokens().len();
                tree.grow(&mut [&mut node], false, None)?;
                let len = node.branch.tokens().len();
                if len == from && at != cur {
                    // Nothing more came (the token cap or the budget right after a
                    // step): the step before was the last.
                    nodes[at].data.terminal = true;
                    break;
                }
                let read = (!node.done).then(|| (node.branch.text_after(from), node.branch.text()));
                let step = Step {
                    trajectory: t,
                    len,
                    terminal: node.done,
                    read,
                };
                at = nodes.push(at, step, None);
                if node.done {
                    break;
                }
            }
            // The win: the scorer's value of the finished text.
            let win = node.value.clamp(0.0, 1.0);
            nodes.backup(at, win);
            let mut c = tree.candidate(&node);
            c.score = Some(win);
            candidates.push(c);
            trajs.push(node.branch);
            if was_truncated(&candidates) {
                break;
            }
        }
        let report: Vec<StepNode> = nodes
            .iter()
            .map(|n| StepNode {
                parent: n.parent,
                children: n.children.clone(),
                trajectory: n.data.trajectory,
                len: n.data.len,
                visits: n.visits,
                wins: n.value_sum,
                terminal: n.data.terminal,
            })
            .collect();
        drop((trajs, root));
        let chosen = select(&candidates, self.vote);
        let sol = Solution::new(self.name(), candidates, chosen, tree.stats())
            .scored(tree.scoring_ms(), tree.scorer_stats());
        Ok((sol, report))
    }

    /// A branch at mid-tree node `at`: its trajectory forked at the node's length (the
    /// KV prefix shared), with a scorer track that reads the steps from the root to the
    /// node again. No track is kept per step: a model-backed scorer's track holds a
    /// sequence of its own, and the steps outnumber the sequences.
    fn resume(
        &self,
        tree: &Tree<'_>,
        root: &Node,
        nodes: &Nodes,
        trajs: &[Branch],
        at: usize,
    ) -> Result<Node, SearchError> {
        let n = &nodes[at].data;
        let branch = trajs[n.trajectory].fork_at(1, n.len)?.pop().expect("one");
        let mut path = Vec::with_capacity(nodes[at].depth);
        let mut i = at;
        while let Some(p) = nodes[i].parent {
            let d = &nodes[i].data;
            let (step, text) = d.read.as_ref().expect("only unfinished steps are resumed");
            path.push((step.as_str(), text.as_str(), d.len));
            i = p;
        }
        path.reverse();
        tree.resume(root, branch, &path)
    }
}

/// What FastMCTS keeps per node beside the shared bookkeeping.
struct Step {
    /// Which trajectory's branch holds this step, and its completion length in tokens.
    trajectory: usize,
    len: usize,
    terminal: bool,
    /// What the scorer read at an unfinished step: the step and the whole text up to it
    /// (read again when a simulation branches below it).
    read: Option<(String, String)>,
}

/// The searched tree. Nodes hold no live branch: a step is (its trajectory's branch, a
/// length), and branching from it forks that branch there.
type Nodes = Arena<Step>;

/// wins / visits (0 unvisited), as [`StepNode::score`].
fn score(n: &Slot<Step>) -> f64 {
    n.mean().unwrap_or(0.0)
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
    use crate::tree::StepUnit;
    use ponder_engine::mock::{ChoiceModel, MockConfig};
    use ponder_engine::Engine;
    use std::sync::Arc;

    /// (length, finished) of each step node of one trajectory over `text`.
    fn steps_of(text: &str, max_tokens: usize, unit: StepUnit) -> Vec<(usize, bool)> {
        let model = ChoiceModel::new(&[(text, 1.0)]);
        let config = MockConfig {
            model: Arc::new(model),
            ..Default::default()
        };
        let cx = Cx::new(Engine::mock(config).unwrap());
        let f = FastMcts {
            trajectories: 1,
            max_tokens,
            steps: Steps {
                unit,
                max_step_tokens: 256,
            },
            ..FastMcts::default()
        };
        let (_, tree) = f.search(&cx, &Problem::new(0, "q")).unwrap();
        assert_eq!(tree.len(), tree.iter().filter(|n| n.visits == 1).count());
        tree[1..].iter().map(|n| (n.len, n.terminal)).collect()
    }

    #[test]
    fn steps_end_at_the_token_that_completes_the_delimiter() {
        let d = || StepUnit::Delimiter("\n\n".into());
        // The mock writes one byte per token, then one end token.
        let text = "a\n\nbc\n\nd";
        assert_eq!(
            steps_of(text, 64, d()),
            vec![(3, false), (7, false), (9, true)]
        );
        assert_eq!(
            steps_of(text, 64, StepUnit::Tokens(2)),
            vec![(2, false), (4, false), (6, false), (8, false), (9, true)]
        );
        // A delimiter at the token cap is the end, not an extra empty step.
        assert_eq!(steps_of(text, 7, d()), vec![(3, false), (7, true)]);
        // The end token right after a delimiter is a last (empty) step of its own.
        assert_eq!(steps_of("a\n\n", 64, d()), vec![(3, false), (4, true)]);
    }

    #[test]
    fn a_branch_below_the_root_reads_its_steps_again_on_a_stateful_scorer() {
        use ponder_engine::Token;
        use ponder_scorers::{Prm, PrmPreset, Sample, Scorer};
        // A mock PRM whose P(good) tells how many steps its track has read (the '|'s in
        // its context) and whether "= 4" was among them: a track that skipped the steps
        // above a branch point would score the finished text differently.
        let prm_model = |ctx: &[Token], out: &mut [f32]| {
            out.fill(-1e9);
            let text: Vec<u8> = ctx.iter().filter(|&&t| t < 256).map(|&t| t as u8).collect();
            let read = text.iter().filter(|&&b| b == b'|').count() as f32;
            let right = text.windows(3).any(|w| w == b"= 4");
            let p = if right { 0.85 } else { 0.15 } + 0.02 * read;
            out[b'+' as usize] = p.ln();
            out[b'-' as usize] = (1.0 - p).ln();
        };
        let prm_engine = Engine::mock(MockConfig {
            model: Arc::new(prm_model),
            ..Default::default()
        })
        .unwrap();
        let preset = PrmPreset {
            name: "mock".into(),
            prefix: "{question}\n".into(),
            step: "|{step}?".into(),
            after: "{verdict}".into(),
            good: "+".into(),
            bad: "-".into(),
        };
        let prm = Arc::new(Prm::new(prm_engine, preset).unwrap());
        let model = ChoiceModel::new(&[
            ("Step 1: 2 + 2 = 4.\n\nStep 2: so 4.\n\nSo \\boxed{4}.", 0.5),
            ("Step 1: 2 + 2 = 5.\n\nStep 2: so 5.\n\nSo \\boxed{5}.", 0.5),
        ]);
        let config = MockConfig {
            model: Arc::new(model),
            ..Default::default()
        };
        let cx = Cx::new(Engine::mock(config).unwrap()).with_scorer(prm.clone());
        let f = FastMcts {
            trajectories: 8,
            sampling: SamplingParams {
                temperature: 1.0,
                ..Default::default()
            },
            max_tokens: 64,
            ..FastMcts::default()
        };
        let mut below_root = 0;
        for id in 0..4 {
            let (sol, tree) = f.search(&cx, &Problem::new(id, "q")).unwrap();
            // A trajectory that starts at an inner step: its first node's parent is a
            // step of another trajectory.
            below_root += tree
                .iter()
                .filter(|n| {
                    n.parent
                        .is_some_and(|p| p != 0 && tree[p].trajectory != n.trajectory)
                })
                .count();
            for c in &sol.candidates {
                let whole = prm.score(&Sample::new("q", &c.text)).unwrap();
                assert_eq!(c.score, Some(whole), "{:?}", c.text);
            }
            let ps = sol.scorer_stats.expect("the PRM's cost is reported");
            assert_eq!(
                ps.prompt_tokens as usize,
                "q\n".len(),
                "the question read once"
            );
            assert!(ps.decoded_tokens > 0 && sol.scoring_ms > 0.0);
        }
        assert!(below_root > 0, "no simulation branched below the root");
    }
}
