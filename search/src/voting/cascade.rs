//! A consistency cascade (`strategies.md` §5.6): cheap stages first, each a registered
//! strategy with its settings; a stage's answer stands when enough of its candidates
//! agree with it, otherwise the problem moves on to the next stage. The last stage's
//! answer always stands.

use crate::answer::answer_key;
use crate::strategy::{invalid, Cx, Needs, Problem, SearchError, Solution, Strategy};
use serde::{Deserialize, Serialize};

/// One stage of a cascade.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// The strategy's registered name (`pot`, `best-of-n`, …; not `cascade`).
    pub strategy: String,
    /// Its settings (missing keys keep that strategy's defaults).
    #[serde(default)]
    pub settings: serde_json::Value,
    /// The share of this stage's candidates that must give its chosen answer for it to
    /// stand, in (0, 1]; ignored on the last stage.
    #[serde(default = "all")]
    pub agree: f64,
}

fn all() -> f64 {
    1.0
}

/// What one stage did on one problem.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    /// The stage's strategy name (as it reports itself).
    pub strategy: String,
    /// Tokens it generated.
    pub generated_tokens: u64,
    /// Its wall time, ms.
    pub wall_ms: f64,
    /// The share of its candidates that gave its chosen answer.
    pub agreement: f64,
    /// Its answer stood (the problem went no further).
    pub stood: bool,
}

/// A consistency cascade: stages tried in order until one's candidates agree enough.
///
/// The default: three programs (T 0.8) that must all compute the same result, then eight
/// programs with a majority over their results, then eight chains of thought with
/// majority voting. Each stage samples with its own seeds (a later stage does not redraw
/// an earlier one's samples); the solution's candidates are every stage's, in order, its
/// cost the sum of the stages'.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cascade {
    /// The stages, cheapest first.
    pub stages: Vec<Stage>,
}

impl Default for Cascade {
    fn default() -> Self {
        let stage = |strategy: &str, settings: serde_json::Value, agree: f64| Stage {
            strategy: strategy.into(),
            settings,
            agree,
        };
        Self {
            stages: vec![
                stage("pot", serde_json::json!({"n": 3}), 1.0),
                stage("pot", serde_json::json!({"n": 8}), 0.5),
                stage("best-of-n", serde_json::json!({"n": 8}), 1.0),
            ],
        }
    }
}

impl Cascade {
    /// Each stage's strategy, built from its settings (errors name the stage).
    pub fn built(&self) -> Result<Vec<Box<dyn Strategy>>, SearchError> {
        if self.stages.is_empty() {
            return Err(invalid(
                "stages",
                "none (a cascade needs at least one stage)",
            ));
        }
        self.stages
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if s.strategy == "cascade" {
                    return Err(invalid("stages", format!("stage {} is a cascade", i + 1)));
                }
                if !(s.agree > 0.0 && s.agree <= 1.0) {
                    return Err(invalid(
                        "stages",
                        format!("stage {}: agree {} (must be in (0, 1])", i + 1, s.agree),
                    ));
                }
                let settings = match &s.settings {
                    serde_json::Value::Null => serde_json::json!({}),
                    v => v.clone(),
                };
                crate::registry::build(&s.strategy, &settings).map_err(|e| {
                    invalid("stages", format!("stage {} ({}): {e}", i + 1, s.strategy))
                })
            })
            .collect()
    }
}

/// The share of the solution's candidates whose answer is its chosen one's.
pub fn agreement(sol: &Solution) -> f64 {
    let Some(chosen) = sol.answer.as_deref().map(answer_key) else {
        return 0.0;
    };
    let same = sol
        .candidates
        .iter()
        .filter(|c| c.answer.as_deref().map(answer_key).as_ref() == Some(&chosen))
        .count();
    same as f64 / sol.candidates.len().max(1) as f64
}

impl Strategy for Cascade {
    fn settings(&self) -> serde_json::Value {
        crate::strategy::settings_of(self)
    }
    fn name(&self) -> String {
        match self.built() {
            Ok(stages) => {
                let names: Vec<String> = stages.iter().map(|s| s.name()).collect();
                format!("cascade-{}", names.join(">"))
            }
            Err(_) => "cascade".into(),
        }
    }
    fn needs(&self) -> Needs {
        let stages = self.built().unwrap_or_default();
        let needs: Vec<Needs> = stages.iter().map(|s| s.needs()).collect();
        Needs {
            sequences: needs.iter().map(|n| n.sequences).max().unwrap_or(1),
            max_tokens: needs.iter().map(|n| n.max_tokens).max().unwrap_or(0),
            draft_model: needs.iter().any(|n| n.draft_model),
            layer_probe: needs.iter().any(|n| n.layer_probe),
            hidden_states: needs.iter().any(|n| n.hidden_states),
            scorer: needs.iter().any(|n| n.scorer),
        }
    }
    fn solve(&self, cx: &Cx, problem: &Problem) -> Result<Solution, SearchError> {
        let stages = self.built()?;
        let mut candidates = Vec::new();
        let mut reports = Vec::new();
        let mut stats: Option<ponder_engine::Stats> = None;
        let mut last = None;
        for (i, (stage, spec)) in stages.iter().zip(&self.stages).enumerate() {
            // Fresh seeds per stage: a later stage does not redraw an earlier one's samples.
            let mut scx = cx.clone();
            scx.seed = cx
                .seed
                .wrapping_add((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let sol = stage.solve(&scx, problem)?;
            let agree = agreement(&sol);
            let is_last = i + 1 == stages.len();
            let stood = is_last || (sol.answer.is_some() && agree >= spec.agree);
            reports.push(StageReport {
                strategy: sol.strategy.clone(),
                generated_tokens: sol.stats.generated_tokens,
                wall_ms: sol.stats.wall_ms,
                agreement: agree,
                stood,
            });
            stats = Some(match stats {
                Some(s) => s.merge(&sol.stats),
                None => sol.stats.clone(),
            });
            let offset = candidates.len();
            candidates.extend(sol.candidates.iter().cloned());
            let cut = sol.truncated;
            last = Some((sol, offset));
            if stood || cut {
                break;
            }
        }
        let (sol, offset) = last.expect("a cascade has at least one stage");
        let mut out = Solution::new(
            self.name(),
            candidates,
            sol.chosen.map(|c| c + offset),
            stats.unwrap_or_default(),
        )
        .scored(sol.scoring_ms, sol.scorer_stats.clone());
        out.stages = reports;
        Ok(out)
    }
}

impl crate::registry::Settings for Cascade {
    const N: Option<&'static str> = None;
    fn check(&self) -> Result<(), SearchError> {
        self.built().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ponder_engine::mock::{ChoiceModel, MockConfig};
    use ponder_engine::Engine;
    use serde_json::json;
    use std::sync::Arc;

    fn cx(texts: &[(&str, f32)]) -> Cx {
        let engine = Engine::mock(MockConfig {
            model: Arc::new(ChoiceModel::new(texts)),
            ..Default::default()
        })
        .unwrap();
        Cx::new(engine)
    }

    fn two_stages(agree: f64) -> Cascade {
        Cascade {
            stages: vec![
                Stage {
                    strategy: "best-of-n".into(),
                    settings: json!({"n": 3, "max_tokens": 32}),
                    agree,
                },
                Stage {
                    strategy: "best-of-n".into(),
                    settings: json!({"n": 5, "max_tokens": 32}),
                    agree: 1.0,
                },
            ],
        }
    }

    #[test]
    fn a_stage_whose_candidates_agree_stands() {
        // One text only: three samples agree, the second stage never runs.
        let sol = two_stages(1.0)
            .solve(&cx(&[("so \\boxed{5}", 1.0)]), &Problem::new(0, "q"))
            .unwrap();
        assert_eq!(
            sol.strategy,
            "cascade-best-of-3-majority>best-of-5-majority"
        );
        assert_eq!(sol.stages.len(), 1);
        assert!(sol.stages[0].stood && sol.stages[0].agreement == 1.0);
        assert_eq!(sol.candidates.len(), 3);
        assert_eq!(sol.answer.as_deref(), Some("5"));
    }

    #[test]
    fn disagreement_escalates_and_the_costs_add_up() {
        // Two answers about evenly: three samples rarely all agree, so most problems go
        // on; the last stage's answer stands; cost and candidates are both stages'.
        let texts = [("so \\boxed{5}", 0.5), ("so \\boxed{7}", 0.5)];
        let mut escalated = 0;
        for id in 0..8 {
            let sol = two_stages(1.0)
                .solve(&cx(&texts), &Problem::new(id, "q"))
                .unwrap();
            let s = &sol.stages;
            if s.len() == 2 {
                escalated += 1;
                assert!(!s[0].stood && s[0].agreement < 1.0 && s[1].stood);
                assert_eq!(sol.candidates.len(), 8);
                assert_eq!(
                    sol.stats.generated_tokens,
                    s[0].generated_tokens + s[1].generated_tokens
                );
                // The chosen candidate is one of the last stage's.
                assert!(sol.chosen.unwrap() >= 3);
            }
        }
        assert!(escalated >= 4, "{escalated} of 8 escalated");
        // With agree = 0.6, 2 of 3 is enough: nothing escalates.
        for id in 0..8 {
            let sol = two_stages(0.6)
                .solve(&cx(&texts), &Problem::new(id, "q"))
                .unwrap();
            assert_eq!(sol.stages.len(), 1);
        }
    }

    #[test]
    fn bad_stages_are_named() {
        let e = |c: Cascade| c.built().err().unwrap().to_string();
        assert!(e(Cascade { stages: vec![] }).contains("at least one stage"));
        let mut c = two_stages(1.0);
        c.stages[1].strategy = "telepathy".into();
        assert!(e(c).contains("stage 2 (telepathy): unknown strategy \"telepathy\""));
        let mut c = two_stages(1.0);
        c.stages[0].agree = 0.0;
        assert!(e(c).contains("stage 1: agree 0 (must be in (0, 1])"));
        let mut c = two_stages(1.0);
        c.stages[0].settings = json!({"n": 0});
        assert!(e(c).contains("stage 1 (best-of-n)"));
        let mut c = two_stages(1.0);
        c.stages[0].strategy = "cascade".into();
        assert!(e(c).contains("stage 1 is a cascade"));
    }

    #[test]
    fn the_default_cascade_builds() {
        let c = Cascade::default();
        assert_eq!(
            c.name(),
            "cascade-pot-3-majority>pot-8-majority>best-of-8-majority"
        );
        assert_eq!(c.needs().sequences, 8);
    }
}
