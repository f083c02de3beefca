//! Training the correctness probe ([`ponder_scorers::probe`]): sample K solutions per
//! training problem with the policy's final-layer hidden states recorded, label each
//! state by whether its sample's final answer is right, fit an L2-regularised logistic
//! regression (linfa-logistic) on the standardised states of the training problems, and
//! measure AUROC on held-out problems. What `ponder train-probe` runs.

use crate::eval::curves::auroc;
use crate::eval::dataset::Item;
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use ponder_engine::{GenSpec, SamplingParams};
use ponder_scorers::probe::{Logistic, ProbeFile, ProbeModel, ProbeTraining, FINAL_LAYER, FORMAT};
use ponder_search::answer::{equivalent, extract_answer};
use ponder_search::{Cx, Problem, SearchError};

/// How the probe's training data is made and fitted.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSettings {
    /// Samples per problem (K).
    pub samples: usize,
    /// Their sampling.
    pub sampling: SamplingParams,
    /// Their token limit.
    pub max_tokens: usize,
    /// Also train on each step end's state (a blank line ends a step), labelled by the
    /// sample's final answer, so that step searches get a value per step.
    pub step_ends: bool,
    /// Share of the problems (the last ones) held out for validation, in [0, 1).
    pub validation: f64,
    /// L2 regularisation strength (linfa's `alpha`), > 0.
    pub alpha: f64,
    /// The fit's iteration limit.
    pub max_iterations: u64,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            samples: 4,
            sampling: SamplingParams::default(),
            max_tokens: ponder_search::DEFAULT_MAX_TOKENS,
            step_ends: true,
            validation: 0.25,
            alpha: 1.0,
            max_iterations: 200,
        }
    }
}

/// One hidden state with its label.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    /// The problem's position in the items given.
    pub problem: usize,
    /// The final-layer hidden state.
    pub state: Vec<f32>,
    /// Its sample's final answer is right.
    pub right: bool,
    /// It is the sample's last token's state (else a step end's).
    pub last: bool,
}

/// Why a probe could not be trained.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A setting is out of range.
    #[error("invalid {name}: {reason}")]
    Invalid {
        /// The setting.
        name: &'static str,
        /// The value and what is allowed.
        reason: String,
    },
    /// Sampling failed on a problem.
    #[error("problem {id}: {source}")]
    Solve {
        /// The problem's dataset id.
        id: String,
        /// What went wrong.
        source: SearchError,
    },
    /// A problem has no gold answer to label its samples by.
    #[error("problem {id} has no gold answer: a probe is trained on labelled problems")]
    NoGold {
        /// The problem's dataset id.
        id: String,
    },
    /// The engine gave no hidden states.
    #[error(
        "the policy engine recorded no hidden states (load it with hidden states: \
         LlamaConfig::hidden_states)"
    )]
    NoStates,
    /// The training samples were all right or all wrong.
    #[error(
        "all {total} training samples were {which}: a probe needs right and wrong ones \
         (more problems, more samples, or a harder or easier dataset)"
    )]
    OneClass {
        /// Training samples.
        total: usize,
        /// "right" or "wrong".
        which: &'static str,
    },
    /// The regression failed.
    #[error("fitting the logistic regression: {0}")]
    Fit(String),
}

impl TrainSettings {
    /// The settings' own ranges.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |name, reason: String| Err(TrainError::Invalid { name, reason });
        if self.samples == 0 {
            return bad("samples", "0 (must be ≥ 1)".into());
        }
        if !(0.0..1.0).contains(&self.validation) {
            return bad(
                "validation",
                format!("{} (must be in [0, 1))", self.validation),
            );
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return bad("alpha", format!("{} (must be > 0)", self.alpha));
        }
        if self.max_iterations == 0 {
            return bad("max_iterations", "0 (must be ≥ 1)".into());
        }
        GenSpec::new(self.sampling, self.max_tokens)
            .validate()
            .map_err(|e| TrainError::Invalid {
                name: "sampling",
                reason: e.to_string(),
            })
    }
    /// How many of `n` problems train the probe (the rest validate it): at least one.
    pub fn train_count(&self, n: usize) -> usize {
        ((n as f64 * (1.0 - self.validation)).round() as usize).clamp(1, n.max(1))
    }
}

/// Sample every item's K solutions, `concurrency` problems at once (their branches
/// share decode batches), and keep each sample's labelled states: its last token's and,
/// with `step_ends`, each step end's. `progress` is called after each problem with the
/// samples so far and how many were right.
pub fn collect(
    cx: &Cx,
    items: &[Item],
    settings: &TrainSettings,
    concurrency: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<Example>, TrainError> {
    settings.validate()?;
    if let Some(it) = items.iter().find(|i| i.gold.trim().is_empty()) {
        return Err(TrainError::NoGold { id: it.id.clone() });
    }
    let out = parking_lot::Mutex::new(Vec::new());
    let tally = parking_lot::Mutex::new((0usize, 0usize));
    let positions: Vec<usize> = (0..items.len()).collect();
    crate::eval::for_each_concurrently(&positions, concurrency, |&p| -> Result<(), TrainError> {
        let (examples, samples, right) = problem_examples(cx, &items[p], p, settings)?;
        out.lock().extend(examples);
        let mut t = tally.lock();
        t.0 += samples;
        t.1 += right;
        progress(t.0, t.1);
        Ok(())
    })?;
    let mut out = out.into_inner();
    out.sort_by_key(|e| e.problem); // the order threads finished in is not reproducible
    Ok(out)
}

/// One problem's labelled states, its sample count and how many samples were right.
fn problem_examples(
    cx: &Cx,
    item: &Item,
    index: usize,
    s: &TrainSettings,
) -> Result<(Vec<Example>, usize, usize), TrainError> {
    let solve = |source: SearchError| TrainError::Solve {
        id: item.id.clone(),
        source,
    };
    let problem = Problem::new(item.index, item.question.clone());
    let session = cx.session(&problem).recording_hidden();
    let prompt = cx.prompt(&problem).map_err(solve)?;
    let root = session
        .prefill_prompt(&prompt)
        .map_err(|e| solve(e.into()))?;
    let mut branches = root.fork(s.samples - 1).map_err(|e| solve(e.into()))?;
    branches.insert(0, root);
    let spec = GenSpec::new(s.sampling, s.max_tokens);
    session
        .extend(branches.iter_mut(), &spec)
        .map_err(|e| solve(e.into()))?;
    let mut out = Vec::new();
    let mut right_samples = 0;
    for b in &branches {
        let text = b.text();
        let right = extract_answer(&text).is_some_and(|a| equivalent(&a, &item.gold));
        right_samples += right as usize;
        let n = b.tokens().len();
        let Some(last) = b.last_hidden(n) else {
            if n == 0 {
                continue; // an empty sample has no state to learn from
            }
            return Err(TrainError::NoStates);
        };
        out.push(Example {
            problem: index,
            state: last.to_vec(),
            right,
            last: true,
        });
        if s.step_ends {
            for k in step_ends(&text, |k| b.text_after(k).len(), n) {
                if let Some(h) = b.last_hidden(k) {
                    out.push(Example {
                        problem: index,
                        state: h.to_vec(),
                        right,
                        last: false,
                    });
                }
            }
        }
    }
    Ok((out, branches.len(), right_samples))
}

/// Token counts k < n after which the text so far ends a step (with a blank line, as
/// step searches cut): `rest_len(k)` is the byte length of the text after k tokens.
fn step_ends(text: &str, rest_len: impl Fn(usize) -> usize, n: usize) -> Vec<usize> {
    (1..n)
        .filter(|&k| {
            let cut = text.len().saturating_sub(rest_len(k));
            text.is_char_boundary(cut)
                && text[..cut].ends_with("\n\n")
                && !text[cut..].starts_with('\n')
        })
        .collect()
}

/// Fit the regression on these examples (all of one width).
pub fn fit(examples: &[&Example], alpha: f64, max_iterations: u64) -> Result<Logistic, TrainError> {
    let right = examples.iter().filter(|e| e.right).count();
    if right == 0 || right == examples.len() {
        return Err(TrainError::OneClass {
            total: examples.len(),
            which: if right == 0 { "wrong" } else { "right" },
        });
    }
    let d = examples[0].state.len();
    if let Some(e) = examples.iter().find(|e| e.state.len() != d) {
        return Err(TrainError::Fit(format!(
            "states of widths {d} and {} (problem {})",
            e.state.len(),
            e.problem
        )));
    }
    let n = examples.len() as f64;
    let mut mean = vec![0.0f64; d];
    for e in examples {
        for (m, &x) in mean.iter_mut().zip(&e.state) {
            *m += x as f64 / n;
        }
    }
    let mut scale = vec![0.0f64; d];
    for e in examples {
        for ((s, &x), m) in scale.iter_mut().zip(&e.state).zip(&mean) {
            *s += (x as f64 - m).powi(2) / n;
        }
    }
    for s in &mut scale {
        *s = if *s > 1e-12 { s.sqrt() } else { 1.0 };
    }
    let x = Array2::from_shape_fn((examples.len(), d), |(i, j)| {
        (examples[i].state[j] as f64 - mean[j]) / scale[j]
    });
    let y = Array1::from_iter(examples.iter().map(|e| e.right));
    let model = LogisticRegression::default()
        .alpha(alpha)
        .max_iterations(max_iterations)
        .fit(&Dataset::new(x, y))
        .map_err(|e| TrainError::Fit(e.to_string()))?;
    // linfa's positive class is the larger label: `true`; say so rather than assume it.
    let sign = if model.labels().pos.class { 1.0 } else { -1.0 };
    Ok(Logistic {
        mean,
        scale,
        weights: model.params().iter().map(|w| sign * w).collect(),
        bias: sign * model.intercept(),
    })
}

/// AUROC of the fitted probe over the last-token states of these examples.
pub fn last_token_auroc(f: &Logistic, examples: &[&Example]) -> Option<f64> {
    let scored: Vec<(f64, bool)> = examples
        .iter()
        .filter(|e| e.last)
        .map(|e| (f.predict(&e.state), e.right))
        .collect();
    auroc(&scored)
}

/// What the probe file records besides the fit.
#[derive(Clone, Debug)]
pub struct Provenance {
    /// The model the states come from.
    pub model: ProbeModel,
    /// The dataset file, as given.
    pub dataset: String,
    /// Dataset position of the first item given.
    pub first: usize,
    /// The run's seed.
    pub seed: u64,
}

/// Split the examples by problem (the first [`TrainSettings::train_count`] train, the
/// rest validate), fit on the training ones and measure both AUROCs.
pub fn train(
    examples: &[Example],
    problems: usize,
    settings: &TrainSettings,
    provenance: Provenance,
) -> Result<ProbeFile, TrainError> {
    settings.validate()?;
    let cut = settings.train_count(problems);
    let (train, valid): (Vec<&Example>, Vec<&Example>) =
        examples.iter().partition(|e| e.problem < cut);
    if train.is_empty() {
        return Err(TrainError::NoStates);
    }
    let fitted = fit(&train, settings.alpha, settings.max_iterations)?;
    let p = provenance.first;
    Ok(ProbeFile {
        format: FORMAT.into(),
        model: provenance.model,
        layer: FINAL_LAYER.into(),
        training: ProbeTraining {
            dataset: provenance.dataset,
            train: [p, p + cut],
            validation: [p + cut, p + problems],
            samples: settings.samples,
            temperature: settings.sampling.temperature,
            max_tokens: settings.max_tokens,
            seed: provenance.seed,
            step_ends: settings.step_ends,
            examples: train.len(),
            positives: train.iter().filter(|e| e.right).count(),
            alpha: settings.alpha,
            train_auroc: last_token_auroc(&fitted, &train),
            validation_auroc: last_token_auroc(&fitted, &valid),
        },
        logistic: fitted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ponder_engine::mock::{ChoiceModel, MockConfig};
    use ponder_engine::Engine;
    use std::sync::Arc;

    fn item(i: usize, gold: &str) -> Item {
        Item {
            index: i as u64,
            id: format!("p{i}"),
            question: format!("q{i}"),
            gold: gold.into(),
        }
    }

    fn cx(n_embd: u32) -> Cx {
        // The two texts end in different characters: the mock's state is one-hot on the
        // token at its position, so the state that predicts the end differs.
        let model = ChoiceModel::new(&[("so \\boxed{5}", 0.5), ("so \\boxed{7}.", 0.5)]);
        let engine = Engine::mock(MockConfig {
            model: Arc::new(model),
            n_embd,
            ..Default::default()
        })
        .unwrap();
        Cx::new(engine)
    }

    fn settings() -> TrainSettings {
        TrainSettings {
            samples: 6,
            max_tokens: 32,
            validation: 0.5,
            ..TrainSettings::default()
        }
    }

    fn provenance() -> Provenance {
        Provenance {
            model: ProbeModel {
                file: "mock".into(),
                sha256: "00".repeat(32),
                n_embd: 64,
            },
            dataset: "d.jsonl".into(),
            first: 100,
            seed: 0,
        }
    }

    /// The gold is 5 everywhere: the last state (one-hot on the text's last character in
    /// the mock) tells right from wrong, so the probe separates them.
    #[test]
    fn a_planted_signal_is_learned() {
        let items: Vec<Item> = (0..24).map(|i| item(i, "5")).collect();
        let cx = cx(64);
        let s = settings();
        let ex = collect(&cx, &items, &s, 4, &|_, _| {}).unwrap();
        assert!(ex.iter().any(|e| e.right) && ex.iter().any(|e| !e.right));
        let f = train(&ex, items.len(), &s, provenance()).unwrap();
        let v = f.training.validation_auroc.unwrap();
        assert!(v > 0.95, "validation AUROC {v}");
        assert_eq!(f.training.train, [100, 112]);
        assert_eq!(f.training.validation, [112, 124]);
        f.validate().unwrap();
    }

    /// The trained probe as a scorer: best-of-n by the probe's score picks the right
    /// answer wherever a sample has it, and a step search scores its steps with it.
    #[test]
    fn the_trained_probe_scores_samples_and_steps() {
        use ponder_scorers::Probe;
        use ponder_search::{BestOfN, Strategy, Vote};
        let items: Vec<Item> = (0..24).map(|i| item(i, "5")).collect();
        let s = settings();
        let ex = collect(&cx(64), &items, &s, 4, &|_, _| {}).unwrap();
        let file = train(&ex, items.len(), &s, provenance()).unwrap();
        let probe = Probe::new(file, std::path::Path::new("p.json"), &"00".repeat(32), 64).unwrap();
        let cx = cx(64).with_scorer(probe.clone());
        let bon = BestOfN {
            vote: Vote::Naive,
            max_tokens: 32,
            ..BestOfN::new(6)
        };
        for i in 0..8 {
            let sol = bon.solve(&cx, &Problem::new(500 + i, "q")).unwrap();
            let any_right = sol
                .candidates
                .iter()
                .any(|c| c.answer.as_deref() == Some("5"));
            assert_eq!(sol.answer.as_deref() == Some("5"), any_right, "{sol:?}");
            assert!(sol
                .candidates
                .iter()
                .all(|c| c.signals.contains_key("probe")));
        }
        let beam: Box<dyn Strategy> =
            ponder_search::registry::build("beam", &serde_json::json!({"n": 4, "max_tokens": 32}))
                .unwrap();
        cx.provides(beam.as_ref()).unwrap();
        let sol = beam.solve(&cx, &Problem::new(900, "q")).unwrap();
        assert!(sol
            .candidates
            .iter()
            .all(|c| c.score.is_some_and(|v| (0.0..=1.0).contains(&v))));
        // Without hidden states in the engine the probe is refused before any work.
        let plain = Cx::new(Engine::mock(MockConfig::default()).unwrap()).with_scorer(probe);
        let e = plain.provides(&bon).unwrap_err().to_string();
        assert!(e.contains("hidden states"), "{e}");
    }

    /// The gold alternates between the two answers the model writes: a state says which
    /// answer a sample gave, never whether it matched its problem's gold, so the probe
    /// can only guess on held-out problems.
    #[test]
    fn pure_noise_stays_near_chance() {
        let items: Vec<Item> = (0..40)
            .map(|i| item(i, if i % 2 == 0 { "5" } else { "7" }))
            .collect();
        let cx = cx(64);
        let s = settings();
        let ex = collect(&cx, &items, &s, 4, &|_, _| {}).unwrap();
        let f = train(&ex, items.len(), &s, provenance()).unwrap();
        let v = f.training.validation_auroc.unwrap();
        assert!((v - 0.5).abs() < 0.15, "validation AUROC {v}");
    }

    #[test]
    fn training_names_what_is_missing() {
        let s = settings();
        let e = collect(&cx(0), &[item(0, "5")], &s, 1, &|_, _| {}).unwrap_err();
        assert!(e.to_string().contains("hidden states"), "{e}");
        let e = collect(&cx(64), &[item(0, " ")], &s, 1, &|_, _| {}).unwrap_err();
        assert_eq!(
            e.to_string(),
            "problem p0 has no gold answer: a probe is trained on labelled problems"
        );
        // Every sample right: nothing to tell apart.
        let one = ChoiceModel::new(&[("so \\boxed{5}", 1.0)]);
        let engine = Engine::mock(MockConfig {
            model: Arc::new(one),
            n_embd: 8,
            ..Default::default()
        })
        .unwrap();
        let ex = collect(
            &Cx::new(engine),
            &[item(0, "5"), item(1, "5")],
            &s,
            1,
            &|_, _| {},
        )
        .unwrap();
        let e = train(&ex, 2, &s, provenance()).unwrap_err();
        assert!(e.to_string().contains("samples were right"), "{e}");
        let bad = TrainSettings {
            validation: 1.0,
            ..settings()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("validation"));
    }

    #[test]
    fn step_ends_are_the_tokens_after_a_blank_line() {
        // Tokens: "a", "\n\n", "b", "\n\n", "c" → the text after k tokens.
        let pieces = ["a", "\n\n", "b", "\n\n", "c"];
        let text: String = pieces.concat();
        let rest = |k: usize| pieces[k..].concat().len();
        assert_eq!(step_ends(&text, rest, pieces.len()), vec![2, 4]);
    }
}
