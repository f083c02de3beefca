//! Probe-based early exit (Dynasor-CoT, Fu et al.): every C tokens of reasoning, fork a
//! short probe that asks for the answer now, read it, drop the probe. Once the last W
//! probes give the same answer and none of them hesitates, stop reasoning and answer.
//!
//! The reference server's check ends in an unconditional `return True` (it exits even
//! when the answers disagree) and tests hesitation words as substrings ("no" matches
//! "not"); here agreement is required and words are matched whole.

use crate::answer::{equivalent, extract_answer};
use crate::strategy::{invalid, Candidate, Cx, Needs, Problem, SearchError, Solution, Strategy};
use ponder_engine::{Finish, GenSpec, SamplingParams};
use serde::{Deserialize, Serialize};

/// The probe appended after the reasoning so far (Dynasor's wording).
pub const PROBE: &str =
    "... Oh, I suddenly got the answer to the whole problem, **Final Answer**\n\n\\[ \\boxed{";

/// Words that mark a probe answer as unsure.
pub const HESITATION: &[&str] = &["wait", "hold", "but", "okay", "no", "hmm"];

/// Reasoning with a probe every `chunk` tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EarlyExit {
    /// Tokens between probes (C).
    pub chunk: usize,
    /// Consecutive agreeing probes needed (W).
    pub window: usize,
    /// Most tokens a probe may write.
    pub probe_tokens: usize,
    /// Sampling of every new token.
    pub sampling: SamplingParams,
    /// New tokens of reasoning (probe tokens not counted); at least `chunk`.
    pub max_tokens: usize,
}

impl Default for EarlyExit {
    fn default() -> Self {
        let sampling = SamplingParams {
            temperature: 0.6,
            top_p: 0.95,
            ..SamplingParams::default()
        };
        Self {
            chunk: 64,
            window: 3,
            probe_tokens: 20,
            sampling,
            max_tokens: crate::registry::DEFAULT_MAX_TOKENS,
        }
    }
}

/// A probe's answer: its text up to the first unmatched `}` (None if empty).
pub fn probe_answer(text: &str) -> Option<String> {
    let mut depth = 0i32;
    let mut end = text.len();
    for (i, ch) in text.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' if depth == 0 => {
                end = i;
                break;
            }
            '}' => depth -= 1,
            _ => {}
        }
    }
    let a = text[..end].trim();
    (!a.is_empty()).then(|| a.to_string())
}

/// True when `text` holds a hesitation word as a whole word (any case).
pub fn hesitates(text: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric())
        .any(|w| HESITATION.iter().any(|h| w.eq_ignore_ascii_case(h)))
}

/// The exit rule: the last `w` probes all answered, all answers agree, none hesitates.
pub fn should_exit(answers: &[Option<String>], probes: &[String], w: usize) -> bool {
    if w == 0 || answers.len() < w || probes.len() < w {
        return false;
    }
    let last = &answers[answers.len() - w..];
    let Some(Some(first)) = last.first() else {
        return false;
    };
    last.iter()
        .all(|a| a.as_deref().is_some_and(|a| equivalent(a, first)))
        && !probes[probes.len() - w..].iter().any(|p| hesitates(p))
}

impl EarlyExit {
    /// Check the settings: `chunk`, `window` and `probe_tokens` ≥ 1, and `chunk` no
    /// larger than `max_tokens` (else no probe would run).
    pub fn validate(&self) -> Result<(), SearchError> {
        if self.chunk == 0 || self.window == 0 || self.probe_tokens == 0 {
            return Err(invalid(
                "probe settings",
                "the probe interval, window and probe length must be ≥ 1",
            ));
        }
        if self.chunk > self.max_tokens {
            return Err(invalid(
                "probe interval",
                format!(
                    "{} tokens is larger than the budget of {} tokens: no probe would run",
                    self.chunk, self.max_tokens
                ),
            ));
        }
        Ok(())
    }
}

impl Strategy for EarlyExit {
    fn settings(&self) -> serde_json::Value {
        crate::strategy::settings_of(self)
    }

    fn name(&self) -> String {
        format!("early-exit-{}x{}", self.chunk, self.window)
    }

    fn needs(&self) -> Needs {
        Needs {
            sequences: 2,
            max_tokens: self.max_tokens,
            // Its answer comes from agreeing probes; no candidate is scored.
            scorer: false,
            ..Needs::default()
        }
    }

    fn solve(&self, cx: &Cx, problem: &Problem) -> Result<Solution, SearchError> {
        self.validate()?;
        let session = cx.session(problem);
        let engine = session.engine().clone();
        let mut main = session.prefill_prompt(&cx.prompt(problem)?)?;
        let probe_spec = GenSpec::new(self.sampling, self.probe_tokens).with_stop(["}"]);
        let (mut answers, mut probes) = (Vec::new(), Vec::new());
        let mut exited = None;
        loop {
            let left = self.max_tokens - main.tokens().len();
            main.extend(&GenSpec::new(self.sampling, self.chunk.min(left)))?;
            let ended = !matches!(main.finish(), Some(Finish::MaxTokens))
                || main.tokens().len() >= self.max_tokens;
            if ended {
                break;
            }
            // Probe: a fork of the reasoning so far, told to answer now; dropped after.
            engine.settle([&mut main])?;
            let mut probe = main.fork(1)?.pop().expect("one fork");
            probe.append(PROBE, false)?;
            let from_probe = probe.tokens().len();
            probe.extend(&probe_spec)?;
            let said = probe.text_after(from_probe);
            drop(probe);
            answers.push(probe_answer(&said));
            probes.push(said);
            if should_exit(&answers, &probes, self.window) {
                exited = answers.last().cloned().flatten();
                break;
            }
        }
        let mut text = main.text();
        let answer = match &exited {
            Some(a) => {
                text.push_str(&format!("\n\n**Final Answer**\n\\[ \\boxed{{{a}}} \\]"));
                extract_answer(&text)
            }
            None => extract_answer(&text),
        };
        let cand = Candidate {
            answer,
            text,
            score: None,
            tokens: main.tokens().len(),
            finish: main.finish().cloned(),
            error: None,
            signals: Default::default(),
        };
        drop(main);
        Ok(Solution::new(
            self.name(),
            vec![cand],
            Some(0),
            session.stats(),
        ))
    }
}

impl crate::registry::Settings for EarlyExit {
    const N: Option<&'static str> = None;
    fn check(&self) -> Result<(), SearchError> {
        crate::registry::check_generation(&self.sampling, self.max_tokens)?;
        self.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(x: &str) -> Option<String> {
        Some(x.into())
    }

    #[test]
    fn probe_answers_stop_at_the_unmatched_brace() {
        assert_eq!(probe_answer("42} \\]"), a("42"));
        assert_eq!(probe_answer("\\frac{1}{2}} \\]"), a("\\frac{1}{2}"));
        assert_eq!(probe_answer(" } "), None);
        assert_eq!(probe_answer("17"), a("17"));
    }

    #[test]
    fn hesitation_is_a_whole_word() {
        assert!(hesitates("Wait, 42"));
        assert!(hesitates("42 but maybe"));
        assert!(!hesitates("not 42"), "\"no\" is not in \"not\"");
        assert!(!hesitates("denominator 7"));
    }

    #[test]
    fn exit_needs_agreement_and_no_hesitation() {
        let p = |n: usize| vec!["7}".to_string(); n];
        assert!(should_exit(&[a("5"), a("7"), a("7.0"), a("7")], &p(4), 3));
        // Disagreement within the window: no exit (the reference server's bug exits here).
        assert!(!should_exit(&[a("7"), a("5"), a("7")], &p(3), 3));
        // A missing answer in the window: no exit.
        assert!(!should_exit(&[a("7"), None, a("7")], &p(3), 3));
        // Too few probes yet.
        assert!(!should_exit(&[a("7"), a("7")], &p(2), 3));
        // Agreement, but one probe hesitates.
        let probes = vec!["7}".into(), "hmm 7}".into(), "7}".into()];
        assert!(!should_exit(&[a("7"), a("7"), a("7")], &probes, 3));
        // Older hesitation outside the window does not count.
        let probes = vec!["wait}".into(), "7}".into(), "7}".into(), "7}".into()];
        assert!(should_exit(&[None, a("7"), a("7"), a("7")], &probes, 3));
    }
}
