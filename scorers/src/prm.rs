//! A process reward model (or a yes/no judge) running on a GGUF model in its own engine.
//!
//! Each search node's track holds a KV sequence in the PRM's context: the preset's prefix
//! (with the question) is prefilled once per problem, each new step is appended with the
//! preset's step template, and P(good) is read from the logits of two tokens right after
//! it. Tracks fork with their nodes (sharing the KV prefix) and release their sequence
//! when dropped, so scoring a step costs that step's tokens, not the whole solution's.

use crate::{split_steps, Aggregate, Sample, ScoreError, Scorer, StepItem, Track, TrackState};
use ponder_engine::{Branch, Budget, Engine, EngineError, Prompt, Stats, Token};
use serde::{Deserialize, Serialize};

/// Names accepted by [`PrmPreset::by_name`].
pub const PRM_PRESETS: &[&str] = &["judge", "math-shepherd", "rlhflow"];

/// How a PRM reads a solution: templates and the two read-out tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrmPreset {
    /// The preset's name (the scorer reports itself as `prm:<name>`).
    pub name: String,
    /// Text before the first step; `{question}` is replaced by the question.
    pub prefix: String,
    /// Text for each step; `{step}` is replaced by the step (trailing blank lines
    /// trimmed). The read-out happens right after it.
    pub step: String,
    /// Text between a read-out and the next step; `{verdict}` is replaced by the good or
    /// bad token, whichever the model preferred.
    #[serde(default)]
    pub after: String,
    /// The token whose probability (against `bad`) is the step's score.
    pub good: String,
    /// The token that says the step is wrong.
    pub bad: String,
}

impl PrmPreset {
    /// A yes/no judge for ChatML instruct models never trained as PRMs (SmolLM2, Qwen):
    /// one user turn per step asking whether it is correct, P("Yes") vs P("No").
    pub fn judge() -> Self {
        Self {
            name: "judge".into(),
            prefix: "<|im_start|>system\nYou are a strict math teacher. You check a student's \
                     solution one step at a time. Answer only Yes or No.<|im_end|>\n\
                     <|im_start|>user\nProblem: {question}<|im_end|>\n\
                     <|im_start|>assistant\nShow me the first step.<|im_end|>\n"
                .into(),
            step: "<|im_start|>user\nStep: {step}\n\nIs this step correct? Answer Yes or \
                   No.<|im_end|>\n<|im_start|>assistant\n"
                .into(),
            after: "{verdict}<|im_end|>\n".into(),
            good: "Yes".into(),
            bad: "No".into(),
        }
    }
    /// Math-Shepherd: `question step ки\n\nstep ки…`, P("+") vs P("-") at each tag.
    pub fn math_shepherd() -> Self {
        Self {
            name: "math-shepherd".into(),
            prefix: "{question} ".into(),
            step: "{step} ки".into(),
            after: "\n\n".into(),
            good: "+".into(),
            bad: "-".into(),
        }
    }
    /// RLHFlow (Llama-3 chat): each step a user turn (the first after the question),
    /// each followed by an assistant "+"; P("+") vs P("-") where that "+" goes.
    pub fn rlhflow() -> Self {
        Self {
            name: "rlhflow".into(),
            prefix: "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{question} "
                .into(),
            step: "{step}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n".into(),
            after: "+<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n".into(),
            good: "+".into(),
            bad: "-".into(),
        }
    }
    /// A built-in preset by name.
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "judge" => Some(Self::judge()),
            "math-shepherd" => Some(Self::math_shepherd()),
            "rlhflow" => Some(Self::rlhflow()),
            _ => None,
        }
    }
    /// A built-in preset's name, or the path of a JSON file holding one.
    pub fn load(name_or_path: &str) -> Result<Self, ScoreError> {
        if let Some(p) = Self::by_name(name_or_path) {
            return Ok(p);
        }
        let path = std::path::Path::new(name_or_path);
        if !path.exists() {
            return Err(ScoreError::new(
                "prm",
                format!(
                    "unknown PRM preset {name_or_path:?} (built in: {}; or a JSON file)",
                    PRM_PRESETS.join(", ")
                ),
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScoreError::new("prm", format!("{}: {e}", path.display())))?;
        let p: Self = serde_json::from_str(&text)
            .map_err(|e| ScoreError::new("prm", format!("{}: {e}", path.display())))?;
        p.validate()?;
        Ok(p)
    }
    fn validate(&self) -> Result<(), ScoreError> {
        let bad = |m: &str| Err(ScoreError::new(format!("prm:{}", self.name), m.to_string()));
        if !self.prefix.contains("{question}") {
            return bad("the preset's prefix has no {question}");
        }
        if !self.step.contains("{step}") {
            return bad("the preset's step template has no {step}");
        }
        if self.good.is_empty() || self.bad.is_empty() || self.good == self.bad {
            return bad("the preset needs two different read-out tokens");
        }
        Ok(())
    }
}

/// A PRM or judge over a model loaded in its own [`Engine`].
pub struct Prm {
    engine: Engine,
    preset: PrmPreset,
    good: Token,
    bad: Token,
    name: String,
    /// How step scores become a node's value (default: last, as in SAL and openr).
    pub aggregate: Aggregate,
    /// Step delimiter for whole-text scoring ([`Scorer::score`]).
    pub delimiter: String,
}

impl std::fmt::Debug for Prm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prm")
            .field("model", &self.engine.info().name)
            .field("preset", &self.preset.name)
            .field("aggregate", &self.aggregate)
            .finish()
    }
}

impl Prm {
    /// Check the preset against the model's vocabulary: each read-out word must be one token.
    pub fn new(engine: Engine, preset: PrmPreset) -> Result<Self, ScoreError> {
        preset.validate()?;
        let name = format!("prm:{}", preset.name);
        let one = |word: &str| -> Result<Token, ScoreError> {
            let toks = engine.tokenize(word, false, false).map_err(|e| {
                ScoreError::engine(&name, format!("tokenizing the read-out {word:?}"), e)
            })?;
            match toks[..] {
                [t] => Ok(t),
                _ => Err(ScoreError::new(
                    &name,
                    format!(
                        "the tokenizer of {} lacks the preset's read-out token {word:?} \
                         (it becomes {} tokens); choose a preset made for this model",
                        engine.info().name,
                        toks.len()
                    ),
                )),
            }
        };
        let (good, bad) = (one(&preset.good)?, one(&preset.bad)?);
        Ok(Self {
            engine,
            preset,
            good,
            bad,
            name,
            aggregate: Aggregate::Last,
            delimiter: "\n\n".into(),
        })
    }
    /// The same scorer, aggregating step scores with `a`.
    pub fn with_aggregate(mut self, a: Aggregate) -> Self {
        self.aggregate = a;
        self
    }
    /// The preset it reads steps with.
    pub fn preset(&self) -> &PrmPreset {
        &self.preset
    }
    /// The engine holding the PRM's model.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
    /// A failure of this scorer while `doing` something with its engine.
    fn err(&self, doing: &str, e: EngineError) -> ScoreError {
        ScoreError::engine(&self.name, doing, e)
    }
}

struct PrmTrack {
    branch: Branch,
    /// The verdict after the last step read (None before the first step).
    verdict: Option<bool>,
}

impl TrackState for PrmTrack {
    fn fork(&self) -> Result<Box<dyn TrackState>, ScoreError> {
        let branch = self
            .branch
            .fork(1)
            .map_err(|e| ScoreError::engine("prm", "forking a track", e))?
            .pop()
            .expect("one fork");
        Ok(Box::new(PrmTrack {
            branch,
            verdict: self.verdict,
        }))
    }
    fn stats(&self) -> Option<Stats> {
        Some(self.branch.session().stats())
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl Scorer for Prm {
    fn name(&self) -> &str {
        &self.name
    }
    fn score(&self, s: &Sample<'_>) -> Result<f64, ScoreError> {
        Ok(self.score_batch(std::slice::from_ref(s))?[0])
    }
    /// Each sample is split into steps and read step by step; all samples' k-th steps
    /// are appended in one batch.
    fn score_batch(&self, samples: &[Sample<'_>]) -> Result<Vec<f64>, ScoreError> {
        let steps: Vec<Vec<&str>> = samples
            .iter()
            .map(|s| {
                let st = split_steps(s.text, &self.delimiter);
                if st.is_empty() {
                    vec![s.text]
                } else {
                    st
                }
            })
            .collect();
        let mut tracks = samples
            .iter()
            .map(|s| self.track(s.question, s.budget.unwrap_or(&Budget::unlimited())))
            .collect::<Result<Vec<_>, _>>()?;
        let rounds = steps.iter().map(Vec::len).max().unwrap_or(0);
        for k in 0..rounds {
            let mut items: Vec<StepItem<'_>> = tracks
                .iter_mut()
                .zip(&steps)
                .zip(samples)
                .filter(|((_, st), _)| k < st.len())
                .map(|((track, st), s)| StepItem {
                    track,
                    step: st[k],
                    sample: *s,
                })
                .collect();
            self.score_steps(&mut items)?;
        }
        Ok(tracks
            .iter()
            .map(|t| self.aggregate.apply(t.steps()).unwrap_or(0.0))
            .collect())
    }
    fn track(&self, question: &str, budget: &Budget) -> Result<Track, ScoreError> {
        // The problem's deadline and cancel flag hold here too; its token cap does not.
        let session = self.engine.session(0, 0, budget.stops());
        // The question is the user's words: literal text, never control tokens.
        let prefix = Prompt::fill(&self.preset.prefix, &[("question", question)]);
        let branch = session
            .prefill_prompt(&prefix)
            .map_err(|e| self.err("prefilling the question", e))?;
        Ok(Track::with_state(Box::new(PrmTrack {
            branch,
            verdict: None,
        })))
    }
    fn score_steps(&self, items: &mut [StepItem<'_>]) -> Result<Vec<f64>, ScoreError> {
        let mut feeds = Vec::with_capacity(items.len());
        for it in items.iter_mut() {
            let step = it.step.trim_end();
            let st = it
                .track
                .state_mut::<PrmTrack>()
                .ok_or_else(|| ScoreError::new(&self.name, "a track not started by this scorer"))?;
            let text = match st.verdict {
                None => String::new(),
                Some(v) => {
                    let word = if v {
                        &self.preset.good
                    } else {
                        &self.preset.bad
                    };
                    self.preset.after.replace("{verdict}", word)
                }
            };
            // The step is the policy's words: literal text, so a step that spells
            // `<|im_end|>…<|im_start|>assistant Yes` cannot forge the judge's turn.
            let prompt =
                Prompt::template(text).then(Prompt::fill(&self.preset.step, &[("step", step)]));
            let tokens = self
                .engine
                .tokenize_prompt(&prompt, false)
                .map_err(|e| self.err("tokenizing a step", e))?;
            feeds.push(tokens);
        }
        // One batch: every node's new step at once.
        let mut states: Vec<&mut PrmTrack> = items
            .iter_mut()
            .map(|it| it.track.state_mut::<PrmTrack>().expect("checked above"))
            .collect();
        self.engine
            .append_all(states.iter_mut().map(|s| &mut s.branch).zip(feeds), false)
            .map_err(|e| self.err("reading the new steps", e))?;
        let mut probs = Vec::with_capacity(states.len());
        for st in states.iter_mut() {
            let lp = st
                .branch
                .next_logprobs(&[self.good, self.bad])
                .map_err(|e| self.err("reading the verdict", e))?;
            // P(good) renormalised over the two read-out tokens.
            let p = 1.0 / (1.0 + ((lp[1] - lp[0]) as f64).exp());
            st.verdict = Some(p >= 0.5);
            probs.push(p);
        }
        Ok(items
            .iter_mut()
            .zip(probs)
            .map(|(it, p)| {
                it.track.push(p);
                self.aggregate.apply(it.track.steps()).unwrap_or(p)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ponder_engine::mock::MockConfig;
    use std::sync::Arc;

    /// A mock "PRM": after a "?" it prefers '+' when the step just read holds "=4",
    /// '-' otherwise, with P('+') = 0.9 or 0.2.
    fn prm_engine() -> Engine {
        let model = |ctx: &[Token], out: &mut [f32]| {
            out.fill(-1e9);
            let text: Vec<u8> = ctx.iter().filter(|&&t| t < 256).map(|&t| t as u8).collect();
            let last = text.rsplit(|&b| b == b'|').next().unwrap_or(&[]);
            let good = last.windows(2).any(|w| w == b"=4");
            let p: f32 = if good { 0.9 } else { 0.2 };
            out[b'+' as usize] = p.ln();
            out[b'-' as usize] = (1.0 - p).ln();
        };
        Engine::mock(MockConfig {
            model: Arc::new(model),
            ..Default::default()
        })
        .unwrap()
    }

    fn preset() -> PrmPreset {
        PrmPreset {
            name: "test".into(),
            prefix: "Q: {question}\n".into(),
            step: "|{step}?".into(),
            after: "{verdict}".into(),
            good: "+".into(),
            bad: "-".into(),
        }
    }

    #[test]
    fn reads_p_good_per_step_and_aggregates() {
        let prm = Prm::new(prm_engine(), preset()).unwrap();
        let s = Sample::new("2+2?", "2+2=4\n\nso 4+1=5\n\n");
        assert!((prm.score(&s).unwrap() - 0.2).abs() < 1e-6, "last step");
        let min = Prm::new(prm_engine(), preset())
            .unwrap()
            .with_aggregate(Aggregate::Mean);
        assert!((min.score(&s).unwrap() - 0.55).abs() < 1e-6);
    }

    #[test]
    fn incremental_tracks_fork_and_release() {
        let engine = prm_engine();
        let prm = Prm::new(engine.clone(), preset()).unwrap();
        let mut root = prm.track("q", &Budget::unlimited()).unwrap();
        let mut kids: Vec<Track> = (0..3).map(|_| root.fork().unwrap()).collect();
        let steps = ["1+3=4", "1+3=5", "x"];
        let texts: Vec<String> = steps.iter().map(|s| s.to_string()).collect();
        let mut items: Vec<StepItem<'_>> = kids
            .iter_mut()
            .zip(&texts)
            .map(|(t, s)| StepItem {
                track: t,
                step: s,
                sample: Sample::new("q", s),
            })
            .collect();
        let before = engine.stats().decode_calls;
        let v = prm.score_steps(&mut items).unwrap();
        assert_eq!(engine.stats().decode_calls, before + 1, "one batch for all");
        assert!((v[0] - 0.9).abs() < 1e-6 && (v[1] - 0.2).abs() < 1e-6);
        // Only the new text is read: prefix once, then each step's template.
        let st = kids[0].stats().unwrap();
        let prefix = "Q: q\n".len() as u64;
        let steps_len: u64 = steps.iter().map(|s| s.len() as u64 + 2).sum();
        assert_eq!(st.decoded_tokens, prefix + steps_len);
        // A second step on a fork appends the verdict and the step only.
        let mut g = kids[0].fork().unwrap();
        drop(kids);
        let v = prm
            .score_steps(&mut [StepItem {
                track: &mut g,
                step: "2+2=4",
                sample: Sample::new("q", "1+3=4\n\n2+2=4"),
            }])
            .unwrap();
        assert!((v[0] - 0.9).abs() < 1e-6);
        assert_eq!(g.steps().len(), 2);
        drop(g);
        drop(root);
        // Every PRM sequence is released with its track: all 64 can be taken again.
        root = prm.track("q", &Budget::unlimited()).unwrap();
        let many: Vec<Track> = (0..63).map(|_| root.fork().unwrap()).collect();
        assert_eq!(many.len(), 63, "all 64 sequences are free again");
    }

    #[test]
    fn missing_read_out_tokens_and_bad_presets_are_named() {
        let mut p = preset();
        p.good = "Yes".into(); // three byte tokens in the mock vocabulary
        let err = Prm::new(prm_engine(), p).unwrap_err().to_string();
        assert!(err.contains("\"Yes\"") && err.contains("3 tokens"), "{err}");
        let mut p = preset();
        p.step = "no placeholder".into();
        assert!(Prm::new(prm_engine(), p)
            .unwrap_err()
            .to_string()
            .contains("{step}"));
        let err = PrmPreset::load("nope").unwrap_err().to_string();
        assert!(err.contains("judge, math-shepherd, rlhflow"), "{err}");
        assert_eq!(PrmPreset::load("judge").unwrap(), PrmPreset::judge());
    }

    #[test]
    fn a_cancel_set_during_scoring_stops_it_within_a_step() {
        use ponder_engine::mock::MockCounters;
        use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
        let counters = Arc::new(MockCounters::default());
        // 8 tokens a decode: reading 300 steps of 40 characters takes ~1,600 decodes.
        let engine = Engine::mock(MockConfig {
            n_batch: 8,
            counters: counters.clone(),
            ..Default::default()
        })
        .unwrap();
        let prm = Prm::new(engine.clone(), preset()).unwrap();
        let text = vec!["1+3=4 and then some more words here."; 300].join("\n\n");
        let flag = Arc::new(AtomicBool::new(false));
        let budget = Budget::unlimited().with_cancel(flag.clone());
        let setter = {
            let (counters, flag) = (counters.clone(), flag.clone());
            std::thread::spawn(move || {
                while counters.decode_calls.load(Relaxed) < 50 {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
                flag.store(true, Relaxed);
                counters.decode_calls.load(Relaxed)
            })
        };
        let err = prm
            .score(&Sample::new("q", &text).with_budget(&budget))
            .unwrap_err();
        let at = setter.join().unwrap();
        let after = counters.decode_calls.load(Relaxed);
        assert!(
            matches!(err.engine_error(), Some(EngineError::Cancelled)),
            "{err:?}"
        );
        assert!(
            after <= at + 2,
            "{} decode calls after the cancel",
            after - at
        );
        assert_eq!(engine.capacity().unwrap().used, 0, "tracks released");
    }

    #[test]
    fn engine_errors_stay_typed_behind_the_scorer() {
        let prm = Prm::new(prm_engine(), preset()).unwrap();
        // The mock holds 8192 cells: a longer question cannot be prefilled.
        let err = prm
            .track(&"x".repeat(9000), &Budget::unlimited())
            .unwrap_err();
        assert!(
            matches!(
                err.engine_error(),
                Some(EngineError::PromptTooLong { n_ctx: 8192, .. })
            ),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "scorer prm:test: prefilling the question");
        let cause = std::error::Error::source(&err).expect("the engine error");
        assert!(
            cause.to_string().starts_with("prompt is 9004 tokens long"),
            "{cause}"
        );
    }

    #[test]
    fn presets_load_from_json_files() {
        let dir = std::env::temp_dir().join(format!("ponder-prm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.json");
        std::fs::write(&path, serde_json::to_string(&preset()).unwrap()).unwrap();
        assert_eq!(PrmPreset::load(path.to_str().unwrap()).unwrap(), preset());
        std::fs::write(&path, "{").unwrap();
        assert!(PrmPreset::load(path.to_str().unwrap()).is_err());
    }
}
