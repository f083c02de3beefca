//! What the step-level strategies (beam search, DVTS, MCTS, DPTS, FastMCTS) share: a
//! [`Node`] is a policy branch plus its scorer [`Track`]; a [`Tree`] grows many nodes by
//! one step in one batch, scores the new steps in one batch, and forks nodes at step
//! boundaries through the KV cache (settling the parent's last token first, so no token
//! is evaluated twice and the policy never re-reads text). The tree searches keep their
//! nodes' links and statistics in a [`arena::Arena`].

pub(crate) mod arena;
pub(crate) mod beam;
pub(crate) mod dpts;
pub(crate) mod dvts;
pub(crate) mod fast_mcts;
pub(crate) mod mcts;

use crate::answer::extract_answer;
use crate::strategy::{invalid, Candidate, Cx, Problem, SearchError};
use ponder_engine::{Branch, Finish, GenSpec, SamplingParams, Session, Stats};
use ponder_scorers::{Sample, ScoreError, StepItem, Track};
use serde::{Deserialize, Serialize};

/// Where one reasoning step ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepUnit {
    /// Text up to and including a delimiter (default: a blank line, as SAL and openr).
    Delimiter(String),
    /// A fixed chunk of tokens (as DPTS).
    Tokens(usize),
}

/// How steps are cut.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Steps {
    /// A delimiter string (`{"delimiter": "\n\n"}`) or a token count (`{"tokens": 32}`).
    pub unit: StepUnit,
    /// Longest step, in tokens, before it is cut (delimiter steps only).
    pub max_step_tokens: usize,
}

impl Default for Steps {
    fn default() -> Self {
        Self {
            unit: StepUnit::Delimiter("\n\n".into()),
            max_step_tokens: 256,
        }
    }
}

impl Steps {
    /// Check the step unit: a non-empty delimiter or a chunk of ≥ 1 token, and
    /// `max_step_tokens` ≥ 1.
    pub fn validate(&self) -> Result<(), SearchError> {
        match &self.unit {
            StepUnit::Delimiter(d) if d.is_empty() => Err(invalid(
                "step delimiter",
                "empty (use a token chunk instead)",
            )),
            StepUnit::Tokens(0) => Err(invalid("step tokens", "0 (must be ≥ 1)")),
            _ if self.max_step_tokens == 0 => Err(invalid("max step tokens", "0 (must be ≥ 1)")),
            _ => Ok(()),
        }
    }
}

/// One node of a search: a branch (its KV sequence and text) and its scorer track.
pub(crate) struct Node {
    pub branch: Branch,
    pub track: Track,
    /// The scorer's value for the text so far.
    pub value: f64,
    /// No more steps: end of generation, an empty step, the token cap or a budget.
    pub done: bool,
    /// Mean token log-probability of the newest step (MCTS prior).
    pub step_logprob: f64,
    /// Steps taken.
    pub depth: usize,
}

impl Node {
    /// Cut short by the problem's budget, deadline or cancel.
    pub fn cut(&self) -> bool {
        matches!(
            self.branch.finish(),
            Some(Finish::Budget | Finish::Deadline | Finish::Cancelled)
        )
    }
}

/// Grows one problem's nodes.
pub(crate) struct Tree<'a> {
    cx: &'a Cx,
    problem: &'a Problem,
    pub session: Session,
    sampling: SamplingParams,
    steps: &'a Steps,
    max_tokens: usize,
    scorer_stats: std::cell::Cell<Option<Stats>>,
    scoring: std::cell::Cell<std::time::Duration>,
}

impl<'a> Tree<'a> {
    /// Prefill the prompt once and start the scorer's track: the root node.
    pub fn new(
        cx: &'a Cx,
        problem: &'a Problem,
        sampling: SamplingParams,
        steps: &'a Steps,
        max_tokens: usize,
    ) -> Result<(Self, Node), SearchError> {
        steps.validate()?;
        if max_tokens == 0 {
            return Err(invalid("max_tokens", "0 (must be ≥ 1)"));
        }
        GenSpec::new(sampling, max_tokens).validate()?;
        let session = cx.session(problem);
        let branch = session.prefill_prompt(&cx.prompt(problem)?)?;
        let t = std::time::Instant::now();
        let track = cx
            .scorer
            .track(&problem.question, &cx.budget)
            .map_err(|e| scoring(0, vec![branch.id()], e))?;
        let tree = Tree {
            cx,
            problem,
            session,
            sampling,
            steps,
            max_tokens,
            scorer_stats: std::cell::Cell::new(track.stats()),
            scoring: std::cell::Cell::new(t.elapsed()),
        };
        let root = Node {
            branch,
            track,
            value: 0.0,
            done: false,
            step_logprob: 0.0,
            depth: 0,
        };
        Ok((tree, root))
    }

    /// Evaluate the nodes' last sampled tokens in one batch, so their forks share them.
    pub fn settle<'n>(
        &self,
        nodes: impl IntoIterator<Item = &'n mut Node>,
    ) -> Result<(), SearchError> {
        let engine = self.session.engine();
        engine.settle(nodes.into_iter().map(|n| &mut n.branch))?;
        Ok(())
    }

    /// `n` children of a (settled) node, sharing its KV cache and forking its track.
    pub fn fork(&self, parent: &Node, n: usize) -> Result<Vec<Node>, SearchError> {
        let branches = parent.branch.fork(n)?;
        branches
            .into_iter()
            .map(|branch| {
                let t = std::time::Instant::now();
                let track = parent
                    .track
                    .fork()
                    .map_err(|e| scoring(parent.depth, vec![parent.branch.id()], e))?;
                self.scoring.set(self.scoring.get() + t.elapsed());
                Ok(Node {
                    branch,
                    track,
                    value: parent.value,
                    done: parent.done,
                    step_logprob: parent.step_logprob,
                    depth: parent.depth,
                })
            })
            .collect()
    }

    /// A node for `branch`, forked from a kept branch at an inner step where no track was
    /// kept: a fork of `root`'s track reads `steps` again, in order (each step's text, the
    /// whole text up to it, and its length in completion tokens). Its value is the last
    /// step's.
    pub fn resume(
        &self,
        root: &Node,
        branch: Branch,
        steps: &[(&str, &str, usize)],
    ) -> Result<Node, SearchError> {
        let t = std::time::Instant::now();
        let id = branch.id();
        let mut track = root.track.fork().map_err(|e| scoring(0, vec![id], e))?;
        let mut value = root.value;
        for (depth, &(step, text, len)) in steps.iter().enumerate() {
            let mut item = [StepItem {
                track: &mut track,
                step,
                sample: Sample::new(&self.problem.question, text)
                    .with_logprobs(&branch.logprobs()[..len])
                    .with_certainty(&branch.certainty()[..len])
                    .with_hidden(branch.last_hidden(len)),
            }];
            let values = self
                .cx
                .scorer
                .score_steps(&mut item)
                .map_err(|e| scoring(depth + 1, vec![id], e))?;
            value = values[0];
        }
        self.scoring.set(self.scoring.get() + t.elapsed());
        if let Some(st) = track.stats() {
            self.scorer_stats.set(Some(st));
        }
        Ok(Node {
            branch,
            track,
            value,
            done: false,
            step_logprob: 0.0, // no step of its own yet
            depth: steps.len(),
        })
    }

    /// Each survivor followed by forks of itself, `n` nodes in all, spread as evenly as
    /// possible (SAL's cyclic duplication). Survivors are settled in one batch first.
    pub fn refill(&self, mut survivors: Vec<Node>, n: usize) -> Result<Vec<Node>, SearchError> {
        let k = survivors.len();
        if k == 0 || k >= n {
            return Ok(survivors);
        }
        self.settle(survivors.iter_mut())?;
        let mut out = Vec::with_capacity(n);
        for (i, s) in survivors.into_iter().enumerate() {
            let copies = n / k + usize::from(i < n % k);
            let kids = self.fork(&s, copies - 1)?;
            out.push(s);
            out.extend(kids);
        }
        Ok(out)
    }

    /// One step on every node (all in one batch), then every new step scored in one batch.
    /// With `to_end` the step runs to end of generation (a search's last iteration).
    pub fn grow(
        &self,
        nodes: &mut [&mut Node],
        to_end: bool,
        sampling: Option<SamplingParams>,
    ) -> Result<(), SearchError> {
        let mut spec = GenSpec::new(sampling.unwrap_or(self.sampling), self.max_tokens);
        let mut step_cap = self.max_tokens;
        if !to_end {
            match &self.steps.unit {
                StepUnit::Delimiter(d) => {
                    spec.stop = vec![d.clone()];
                    step_cap = self.steps.max_step_tokens;
                }
                StepUnit::Tokens(t) => step_cap = *t,
            }
        }
        spec.max_tokens = step_cap.min(self.max_tokens).max(1);
        let before: Vec<usize> = nodes.iter().map(|n| n.branch.tokens().len()).collect();
        let max_tokens = self.max_tokens;
        self.session.extend_capped(
            nodes.iter_mut().map(|n| {
                let left = max_tokens.saturating_sub(n.branch.tokens().len());
                (&mut n.branch, left)
            }),
            &spec,
        )?;
        let texts: Vec<String> = nodes.iter().map(|n| n.branch.text()).collect();
        let steps: Vec<String> = nodes
            .iter()
            .zip(&before)
            .map(|(n, &tok0)| n.branch.text_after(tok0))
            .collect();
        for (n, (&tok0, step)) in nodes.iter_mut().zip(before.iter().zip(&steps)) {
            let known: Vec<f64> = n.branch.logprobs()[tok0..]
                .iter()
                .filter(|l| l.is_finite())
                .map(|&l| l as f64)
                .collect();
            n.step_logprob = if known.is_empty() {
                0.0
            } else {
                known.iter().sum::<f64>() / known.len() as f64
            };
            n.depth += 1;
            let ended = match n.branch.finish() {
                Some(Finish::Stop(_)) => false,
                Some(Finish::MaxTokens) => n.branch.tokens().len() >= max_tokens,
                _ => true, // end of generation, or the budget, deadline or cancel
            };
            // An empty step ends a path too (SAL): nothing more will come.
            let empty = step.trim().is_empty();
            n.done = to_end || ended || empty;
        }
        self.score(nodes, &steps, &texts)
    }

    fn score(
        &self,
        nodes: &mut [&mut Node],
        steps: &[String],
        texts: &[String],
    ) -> Result<(), SearchError> {
        let ids: Vec<u64> = nodes.iter().map(|n| n.branch.id()).collect();
        let depth = nodes.iter().map(|n| n.depth).max().unwrap_or(0);
        let mut items: Vec<StepItem<'_>> = Vec::with_capacity(nodes.len());
        let mut refs: Vec<(&mut Track, &Branch)> = nodes
            .iter_mut()
            .map(|n| {
                let Node { track, branch, .. } = &mut **n;
                (track, &*branch)
            })
            .collect();
        for ((track, branch), (step, text)) in refs.iter_mut().zip(steps.iter().zip(texts)) {
            items.push(StepItem {
                track,
                step,
                sample: Sample::new(&self.problem.question, text)
                    .with_logprobs(branch.logprobs())
                    .with_certainty(branch.certainty())
                    .with_hidden(branch.last_hidden(usize::MAX)),
            });
        }
        let t = std::time::Instant::now();
        let values = self.cx.scorer.score_steps(&mut items).map_err(|e| {
            let who = e.item.map_or(ids.clone(), |i| vec![ids[i]]);
            scoring(depth, who, e)
        })?;
        self.scoring.set(self.scoring.get() + t.elapsed());
        drop(items);
        drop(refs);
        for (n, v) in nodes.iter_mut().zip(values) {
            n.value = v;
        }
        if let Some(st) = nodes.first().and_then(|n| n.track.stats()) {
            self.scorer_stats.set(Some(st));
        }
        Ok(())
    }

    /// Score nodes by where `steps` more greedy steps would take them (lookahead); the
    /// lookahead branches are dropped afterwards, the nodes keep their own text.
    pub fn lookahead(&self, nodes: &mut [&mut Node], steps: usize) -> Result<(), SearchError> {
        let mut live: Vec<&mut &mut Node> = nodes.iter_mut().filter(|n| !n.done).collect();
        if steps == 0 || live.is_empty() {
            return Ok(());
        }
        self.settle(live.iter_mut().map(|n| &mut ***n))?;
        let mut ahead = Vec::with_capacity(live.len());
        for n in &live {
            ahead.extend(self.fork(n, 1)?);
        }
        for _ in 0..steps {
            let mut go: Vec<&mut Node> = ahead.iter_mut().filter(|a| !a.done).collect();
            if go.is_empty() {
                break;
            }
            self.grow(&mut go, false, Some(SamplingParams::greedy()))?;
        }
        for (n, a) in live.iter_mut().zip(&ahead) {
            n.value = a.value;
        }
        Ok(())
    }

    /// A node's text as a scored candidate.
    pub fn candidate(&self, n: &Node) -> Candidate {
        let text = n.branch.text();
        Candidate {
            answer: extract_answer(&text),
            text,
            score: Some(n.value),
            tokens: n.branch.tokens().len(),
            finish: n.branch.finish().cloned(),
            error: None,
            signals: Default::default(),
        }
    }

    /// The policy's cost on this problem.
    pub fn stats(&self) -> Stats {
        self.session.stats()
    }

    /// Wall time spent in the scorer (track starts, forks and step scoring), in ms.
    pub fn scoring_ms(&self) -> f64 {
        self.scoring.get().as_secs_f64() * 1e3
    }

    /// A model-backed scorer's cost on this problem (as of its last scoring).
    pub fn scorer_stats(&self) -> Option<Stats> {
        self.scorer_stats.take()
    }
}

pub(crate) fn scoring(step: usize, branches: Vec<u64>, source: ScoreError) -> SearchError {
    SearchError::Scoring {
        step,
        branches,
        source: Box::new(source),
    }
}
