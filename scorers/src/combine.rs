//! A weighted sum of scorers is a scorer.

use crate::{Sample, ScoreError, Scorer, StepItem, Track, TrackState};
use ponder_engine::{Budget, Stats};
use std::sync::Arc;

/// `Σ wᵢ · scoreᵢ`: e.g. a PRM blended with the arithmetic verifier, or a verifier with a
/// little logprob to break its ties. Step-level scoring runs each part's own tracks
/// (a PRM part stays incremental).
#[derive(Clone, Default)]
pub struct Weighted {
    parts: Vec<(f64, Arc<dyn Scorer>)>,
    name: String,
}

impl Weighted {
    /// No parts yet (scoring fails until one is added).
    pub fn new() -> Self {
        Self::default()
    }
    /// Add a part with its weight.
    pub fn with(mut self, weight: f64, scorer: impl Scorer + 'static) -> Self {
        self.add(weight, Arc::new(scorer));
        self
    }
    /// Add a shared part with its weight.
    pub fn add(&mut self, weight: f64, scorer: Arc<dyn Scorer>) {
        if !self.name.is_empty() {
            self.name.push('+');
        }
        self.name.push_str(&format!("{weight}*{}", scorer.name()));
        self.parts.push((weight, scorer));
    }
    fn no_parts(&self) -> ScoreError {
        ScoreError::new("weighted", "no scorers to combine")
    }
}

struct Parts(Vec<Track>);

impl TrackState for Parts {
    fn fork(&self) -> Result<Box<dyn TrackState>, ScoreError> {
        let tracks = self.0.iter().map(Track::fork).collect::<Result<_, _>>()?;
        Ok(Box::new(Parts(tracks)))
    }
    fn stats(&self) -> Option<Stats> {
        // The first model-backed part's cost (parts on other engines are not summed).
        self.0.iter().find_map(Track::stats)
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl Scorer for Weighted {
    fn name(&self) -> &str {
        &self.name
    }
    fn needs_hidden(&self) -> bool {
        self.parts.iter().any(|(_, s)| s.needs_hidden())
    }
    fn score(&self, s: &Sample<'_>) -> Result<f64, ScoreError> {
        Ok(self.score_batch(std::slice::from_ref(s))?[0])
    }
    fn score_batch(&self, samples: &[Sample<'_>]) -> Result<Vec<f64>, ScoreError> {
        if self.parts.is_empty() {
            return Err(self.no_parts());
        }
        let mut total = vec![0.0; samples.len()];
        for (w, s) in &self.parts {
            for (t, v) in total.iter_mut().zip(s.score_batch(samples)?) {
                *t += w * v;
            }
        }
        Ok(total)
    }
    fn track(&self, question: &str, budget: &Budget) -> Result<Track, ScoreError> {
        if self.parts.is_empty() {
            return Err(self.no_parts());
        }
        let tracks = self
            .parts
            .iter()
            .map(|(_, s)| s.track(question, budget))
            .collect::<Result<_, _>>()?;
        Ok(Track::with_state(Box::new(Parts(tracks))))
    }
    fn score_steps(&self, items: &mut [StepItem<'_>]) -> Result<Vec<f64>, ScoreError> {
        let mut total = vec![0.0; items.len()];
        for (k, (w, scorer)) in self.parts.iter().enumerate() {
            let mut sub = Vec::with_capacity(items.len());
            for it in items.iter_mut() {
                let parts = it.track.state_mut::<Parts>().ok_or_else(|| {
                    ScoreError::new(&self.name, "a track not started by this scorer")
                })?;
                sub.push(StepItem {
                    track: &mut parts.0[k],
                    step: it.step,
                    sample: it.sample,
                });
            }
            for (t, v) in total.iter_mut().zip(scorer.score_steps(&mut sub)?) {
                *t += w * v;
            }
        }
        for (it, &v) in items.iter_mut().zip(&total) {
            it.track.push(v);
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ArithmeticVerifier;

    #[test]
    fn weighted_sum_of_parts() {
        let w = Weighted::new()
            .with(2.0, |s: &Sample<'_>| s.text.len() as f64)
            .with(0.5, ArithmeticVerifier::default());
        let right = Sample::new("q", "2+2=4");
        let wrong = Sample::new("q", "2+2=5");
        assert_eq!(w.score(&right).unwrap(), 2.0 * 5.0 + 0.5);
        assert_eq!(w.score(&wrong).unwrap(), 2.0 * 5.0);
        assert!(w.name().contains("verifier"));
        assert!(Weighted::new().score(&right).is_err());
    }

    #[test]
    fn weighted_step_scoring_keeps_each_parts_track() {
        let w = Weighted::new()
            .with(1.0, ArithmeticVerifier::default())
            .with(0.1, |s: &Sample<'_>| s.text.len() as f64);
        let mut root = w.track("q", &Budget::unlimited()).unwrap();
        let mut a = root.fork().unwrap();
        let v = w
            .score_steps(&mut [StepItem {
                track: &mut a,
                step: "1+1=3",
                sample: Sample::new("q", "1+1=3"),
            }])
            .unwrap();
        assert!((v[0] - 0.5).abs() < 1e-12);
        assert_eq!(a.steps().len(), 1);
        // A track from another scorer is refused with the scorer's name.
        let mut foreign = Track::stateless();
        let err = w
            .score_steps(&mut [StepItem {
                track: &mut foreign,
                step: "x",
                sample: Sample::new("q", "x"),
            }])
            .unwrap_err();
        assert!(err.to_string().contains("not started by this scorer"));
        root.push(0.0);
    }
}
