//! DPTS, dynamic parallel tree search (Ding et al., ACL 2025): a frontier of paths, each
//! either exploiting or exploring, expanded together in one batch per round. The number
//! of paths follows free KV capacity (the paper's GPU-memory rule, on the engine's own
//! accounting). An exploiting path whose best child scores at most θ_es = λ_es · mean
//! reward stops early (its nodes stay as material for later refills); an exploring path
//! whose best child reaches θ_ds = λ_ds · mean reward is promoted to exploit ("deep
//! seek"). Finished paths back up their reward; the answer is a vote over them.

use crate::strategy::{invalid, Candidate, Cx, Needs, Problem, SearchError, Solution, Strategy};
use crate::tree::arena::{argmax, Arena};
use crate::tree::{Node, StepUnit, Steps, Tree};
use crate::vote::{select, Vote};
use ponder_engine::SamplingParams;
use serde::{Deserialize, Serialize};

/// Dynamic parallel tree search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dpts {
    /// Children per expansion (tree_width).
    pub width: usize,
    /// Most paths in the frontier (num_beams); fewer when the KV cache is short.
    pub max_parallel: usize,
    /// Early-stop factor λ_es, ≥ 0.
    /// An exploiting path stops when its best child scores ≤ θ_es = λ_es · the mean
    /// reward of the nodes that have entered the frontier.
    pub lambda_es: f64,
    /// Deep-seek factor λ_ds, ≥ 0.
    /// An exploring path turns to exploit when its best child scores ≥ θ_ds = λ_ds ·
    /// the same mean reward (see `lambda_es`).
    pub lambda_ds: f64,
    /// Finished paths (t*) before the search may stop early.
    /// It then stops once no frontier path's reward beats the best finished one.
    pub t_star: usize,
    /// Share of each refill that exploits, in [0, 1].
    /// Rounded up; the refilled nodes with the best rewards exploit, the others explore.
    pub p: f64,
    /// Exploration constant c of the refill score (default 1/√2).
    /// The refill score is Q/N + c · √(1 + N_parent) · reward / (1 + N).
    pub c: f64,
    /// Most rounds, ≥ 1 (max_rollout); each round expands every frontier path once.
    pub max_rounds: usize,
    /// Most unexpanded nodes kept alive as refill material (each holds a sequence).
    pub max_live: usize,
    /// Sampling of every new token.
    pub sampling: SamplingParams,
    /// Most new tokens on one path from the root, all its steps together.
    pub max_tokens: usize,
    /// Where a reasoning step ends.
    pub steps: Steps,
    /// How the answer is picked from the candidates.
    pub vote: Vote,
}

impl Default for Dpts {
    fn default() -> Self {
        Self {
            width: 4,
            max_parallel: 4,
            lambda_es: 0.8,
            lambda_ds: 0.8,
            t_star: 5,
            p: 0.5,
            c: std::f64::consts::FRAC_1_SQRT_2,
            max_rounds: 20,
            max_live: 32,
            sampling: SamplingParams {
                temperature: 1.0,
                top_p: 0.9,
                ..SamplingParams::default()
            },
            max_tokens: crate::registry::DEFAULT_MAX_TOKENS,
            steps: Steps::default(),
            vote: Vote::Majority,
        }
    }
}

/// A frontier path's mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Follows its best child; stops early when that child scores ≤ θ_es.
    Exploit,
    /// Follows its best child; turns to exploit when that child scores ≥ θ_ds.
    Explore,
}

/// What happens to a path after its round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// An exploiting path whose best child scored ≤ θ_es leaves the frontier.
    EarlyStop,
    /// An exploring path whose best child scored ≥ θ_ds becomes exploiting.
    DeepSeek,
    /// The path moves to its best child, same mode.
    Continue,
}

/// The transition rule: where a path in `mode` goes after its round, given the score of
/// its best unfinished child and the two thresholds.
pub fn transition(mode: Mode, best: f64, theta_es: f64, theta_ds: f64) -> Transition {
    match mode {
        Mode::Exploit if best <= theta_es => Transition::EarlyStop,
        Mode::Explore if best >= theta_ds => Transition::DeepSeek,
        _ => Transition::Continue,
    }
}

/// The searched tree: each node's payload is its reward (its step's score); its live
/// branch is kept while it is unexpanded refill material or on the frontier.
type Nodes = Arena<f64>;

impl Dpts {
    /// Check the settings: width, paths and rounds ≥ 1, p in [0, 1], λs ≥ 0,
    /// `max_live` ≥ `width`, and a valid step unit.
    pub fn validate(&self) -> Result<(), SearchError> {
        if self.width == 0 || self.max_parallel == 0 || self.max_rounds == 0 {
            return Err(invalid("width, paths and rounds", "must be ≥ 1"));
        }
        if !(0.0..=1.0).contains(&self.p) {
            return Err(invalid("p", format!("{} (must be in [0, 1])", self.p)));
        }
        if !(self.lambda_es >= 0.0 && self.lambda_ds >= 0.0) {
            return Err(invalid("lambda", "must be ≥ 0"));
        }
        if self.max_live < self.width {
            return Err(invalid(
                "max live nodes",
                format!("{} is fewer than the width {}", self.max_live, self.width),
            ));
        }
        self.steps.validate()
    }

    /// The refill score: Q/N + c · √(1 + N_parent) · reward / (1 + N).
    pub fn refill_score(&self, q: f64, n: u32, parent_n: u32, reward: f64) -> f64 {
        let mean = if n == 0 { 0.0 } else { q / n as f64 };
        mean + self.c * (1.0 + parent_n as f64).sqrt() * reward / (1.0 + n as f64)
    }

    fn step_tokens(&self) -> usize {
        match self.steps.unit {
            StepUnit::Tokens(k) => k,
            StepUnit::Delimiter(_) => self.steps.max_step_tokens,
        }
        .min(self.max_tokens)
    }
}

impl Strategy for Dpts {
    fn settings(&self) -> serde_json::Value {
        crate::strategy::settings_of(self)
    }

    fn name(&self) -> String {
        format!("dpts-{}x{}", self.max_parallel, self.width)
    }

    fn needs(&self) -> Needs {
        Needs {
            sequences: self.max_live + self.max_parallel * self.width + 1,
            max_tokens: self.max_tokens,
            scorer: true,
            ..Needs::default()
        }
    }

    fn solve(&self, cx: &Cx, problem: &Problem) -> Result<Solution, SearchError> {
        self.validate()?;
        cx.check_sequences(self.width + 1)?;
        let (tree, root) = Tree::new(cx, problem, self.sampling, &self.steps, self.max_tokens)?;
        let engine = cx.engine.clone();
        let mut nodes = Nodes::new(0.2, Some(root)); // the reference's default for an unscored node
        let mut frontier: Vec<(usize, Mode)> = vec![(0, Mode::Exploit)];
        let mut seen_rewards: Vec<f64> = vec![0.2];
        let mut completed: Vec<(f64, Candidate)> = Vec::new();
        let mut truncated = false;
        for round in 0..self.max_rounds {
            // Paths this round: what the free KV cells and sequence ids allow.
            let cap = engine.capacity()?;
            let per_path = self.width * self.step_tokens();
            let room = (cap.free_cells() / per_path.max(1)).min(cap.free_seqs / self.width);
            if room == 0 && round == 0 {
                return Err(invalid(
                    "KV capacity",
                    format!(
                        "no room for even one path: {} free cells, {} free sequences; one \
                         path needs {per_path} cells and {} sequences",
                        cap.free_cells(),
                        cap.free_seqs,
                        self.width
                    ),
                ));
            }
            let paths = self.max_parallel.min(room.max(1));
            // Refill from the unexpanded nodes, best refill score first.
            if frontier.len() < paths {
                let in_p: Vec<usize> = frontier.iter().map(|f| f.0).collect();
                let mut pool: Vec<usize> = (0..nodes.len())
                    .filter(|&i| {
                        let n = &nodes[i];
                        n.live.is_some() && n.children.is_empty() && !in_p.contains(&i)
                    })
                    .collect();
                let score = |i: usize| {
                    let n = &nodes[i];
                    let pn = n.parent.map_or(0, |p| nodes[p].visits);
                    self.refill_score(n.value_sum, n.visits, pn, n.data)
                };
                pool.sort_by(|&a, &b| score(b).total_cmp(&score(a)));
                pool.truncate(paths - frontier.len());
                let k = (self.p * pool.len() as f64).ceil() as usize;
                let mut by_reward = pool.clone();
                by_reward.sort_by(|&a, &b| nodes[b].data.total_cmp(&nodes[a].data));
                for &i in &pool {
                    let mode = if by_reward[..k].contains(&i) {
                        Mode::Exploit
                    } else {
                        Mode::Explore
                    };
                    frontier.push((i, mode));
                    seen_rewards.push(nodes[i].data);
                }
            }
            if frontier.is_empty() {
                break;
            }
            let best_done = completed.iter().map(|c| c.0).fold(f64::MIN, f64::max);
            let best_live = frontier
                .iter()
                .map(|f| nodes[f.0].data)
                .fold(f64::MIN, f64::max);
            if completed.len() >= self.t_star && best_live < best_done {
                break;
            }
            // One batched expansion of every path.
            let mut parents: Vec<Node> = frontier
                .iter()
                .map(|f| nodes[f.0].live.take().expect("frontier nodes are live"))
                .collect();
            tree.settle(parents.iter_mut())?;
            let mut kids: Vec<Vec<Node>> = parents
                .iter()
                .map(|p| tree.fork(p, self.width))
                .collect::<Result<_, _>>()?;
            drop(parents);
            {
                let mut all: Vec<&mut Node> = kids.iter_mut().flatten().collect();
                tree.grow(&mut all, false, None)?;
            }
            let mean = seen_rewards.iter().sum::<f64>() / seen_rewards.len() as f64;
            let (theta_es, theta_ds) = (self.lambda_es * mean, self.lambda_ds * mean);
            let mut next = Vec::new();
            for ((parent, mode), ks) in frontier.drain(..).zip(kids) {
                let first = nodes.len();
                for k in ks {
                    let reward = k.value;
                    truncated |= k.cut();
                    let done = k.done.then(|| tree.candidate(&k));
                    let id = nodes.push(parent, reward, done.is_none().then_some(k));
                    if let Some(c) = done {
                        completed.push((reward, c));
                        // Back up the finished path's reward to the root.
                        nodes.backup(id, reward);
                    }
                }
                // The best unfinished child (the first of equals).
                let open = (first..nodes.len()).filter(|&i| nodes[i].live.is_some());
                let Some(b) = argmax(open, |&i| nodes[i].data) else {
                    continue; // every child finished
                };
                match transition(mode, nodes[b].data, theta_es, theta_ds) {
                    Transition::EarlyStop => {}
                    Transition::DeepSeek => next.push((b, Mode::Exploit)),
                    Transition::Continue => next.push((b, mode)),
                }
            }
            frontier = next;
            // Keep the refill material within max_live sequences: drop the weakest.
            let in_p: Vec<usize> = frontier.iter().map(|f| f.0).collect();
            nodes.prune(self.max_live, |i, _| in_p.contains(&i), |n| n.data);
            if truncated {
                break;
            }
        }
        let mut candidates: Vec<Candidate> = completed.into_iter().map(|c| c.1).collect();
        if candidates.is_empty() {
            // Never nothing: the best live paths as they stand.
            let mut live: Vec<(f64, &Node)> = nodes
                .iter()
                .filter_map(|n| n.live.as_ref().map(|l| (n.data, l)))
                .collect();
            live.sort_by(|a, b| b.0.total_cmp(&a.0));
            candidates = live
                .iter()
                .take(self.max_parallel)
                .map(|(_, n)| tree.candidate(n))
                .collect();
            truncated = true;
        }
        drop(nodes);
        let chosen = select(&candidates, self.vote);
        Ok(Solution::new(self.name(), candidates, chosen, tree.stats())
            .scored(tree.scoring_ms(), tree.scorer_stats())
            .cut_short(truncated))
    }
}

impl crate::registry::Settings for Dpts {
    const N: Option<&'static str> = Some("max_parallel");
    fn check(&self) -> Result<(), SearchError> {
        crate::registry::check_generation(&self.sampling, self.max_tokens)?;
        self.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_by_hand() {
        // θ_es = θ_ds = 0.8 · 0.5 = 0.4.
        let (es, ds) = (0.4, 0.4);
        assert_eq!(
            transition(Mode::Exploit, 0.4, es, ds),
            Transition::EarlyStop
        );
        assert_eq!(
            transition(Mode::Exploit, 0.41, es, ds),
            Transition::Continue
        );
        assert_eq!(transition(Mode::Explore, 0.4, es, ds), Transition::DeepSeek);
        assert_eq!(
            transition(Mode::Explore, 0.39, es, ds),
            Transition::Continue
        );
    }

    #[test]
    fn refill_score_by_hand() {
        let d = Dpts {
            c: 0.5,
            ..Dpts::default()
        };
        // Unvisited: 0 + 0.5 · √(1 + 3) · 0.6 / 1 = 0.6.
        assert!((d.refill_score(0.0, 0, 3, 0.6) - 0.6).abs() < 1e-12);
        // Visited twice with Q = 1: 0.5 + 0.5 · √1 · 0.6 / 3 = 0.6.
        assert!((d.refill_score(1.0, 2, 0, 0.6) - 0.6).abs() < 1e-12);
    }
}
