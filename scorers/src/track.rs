//! Per-node scoring state for step-level search.
//!
//! A search keeps one [`Track`] beside each node's policy branch: forked when the node
//! forks, dropped when the node is pruned. A stateless scorer's track only remembers the
//! node's step scores; a model-backed scorer also keeps its own state there (a [`crate::Prm`]
//! keeps a KV sequence in its model's context), so each new step is scored incrementally.

use crate::{Sample, ScoreError};
use ponder_engine::Stats;
use std::any::Any;

/// A scorer's own state for one node (e.g. a PRM's KV sequence). Dropping it releases
/// what it holds.
pub trait TrackState: Send + Any {
    /// An independent copy for a child node.
    fn fork(&self) -> Result<Box<dyn TrackState>, ScoreError>;
    /// What the scorer's model has spent on this problem so far (all forks together).
    fn stats(&self) -> Option<Stats> {
        None
    }
    /// `self` as `Any`, so [`Track::state_mut`] can hand a scorer back its own type.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// One node's scoring state: its step scores and, for stateful scorers, their state.
#[derive(Default)]
pub struct Track {
    steps: Vec<f64>,
    state: Option<Box<dyn TrackState>>,
}

impl std::fmt::Debug for Track {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Track")
            .field("steps", &self.steps)
            .field("stateful", &self.state.is_some())
            .finish()
    }
}

impl Track {
    /// A track with no scorer state.
    pub fn stateless() -> Self {
        Self::default()
    }
    /// A track holding a scorer's state.
    pub fn with_state(state: Box<dyn TrackState>) -> Self {
        Self {
            steps: Vec::new(),
            state: Some(state),
        }
    }
    /// The score recorded for each step so far.
    pub fn steps(&self) -> &[f64] {
        &self.steps
    }
    /// Record the newest step's score.
    pub fn push(&mut self, score: f64) {
        self.steps.push(score);
    }
    /// A child track: the same step scores and a fork of the state.
    pub fn fork(&self) -> Result<Track, ScoreError> {
        Ok(Track {
            steps: self.steps.clone(),
            state: self.state.as_ref().map(|s| s.fork()).transpose()?,
        })
    }
    /// The scorer state, if it is a `T`.
    pub fn state_mut<T: TrackState>(&mut self) -> Option<&mut T> {
        self.state.as_mut()?.as_any_mut().downcast_mut::<T>()
    }
    /// The scorer model's cost on this problem (None for model-free scorers).
    pub fn stats(&self) -> Option<Stats> {
        self.state.as_ref().and_then(|s| s.stats())
    }
}

/// One node to score: its track, its newest step, and its whole text so far.
pub struct StepItem<'a> {
    /// The node's track; scoring records the step's score on it.
    pub track: &'a mut Track,
    /// The step just generated (also the end of `sample.text`).
    pub step: &'a str,
    /// The node's whole candidate so far (question, text, per-token data).
    pub sample: Sample<'a>,
}
