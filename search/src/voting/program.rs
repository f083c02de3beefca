//! Program-aided answers as strategies (PoT / PAL, `strategies.md` §5.1): `pot` samples
//! N programs and votes over what they compute; `mixed` samples chains of thought and
//! programs of one problem together and votes over all of them, with each candidate's
//! agreement with the other style available as its score.

use super::best_of_n::sample_from;
use crate::program::{answer_of, Limits};
use crate::strategy::{invalid, Candidate, Cx, Needs, Problem, SearchError, Solution, Strategy};
use crate::vote::{select, Vote};
use ponder_engine::{GenSpec, SamplingParams};
use serde::{Deserialize, Serialize};

/// The system prompt asking for a program (what the interpreter runs: Python without
/// imports other than math, and without `while`).
pub const PROGRAM_PROMPT: &str = "Solve the problem by writing a Python function \
    `solution()` that computes the answer and returns it as a number. Use plain Python \
    only: no imports except math, no input(), no while loops. Reply with one ```python \
    code block.";

/// New tokens per program unless set (programs are short: the 1.5B's greedy programs
/// took about a sixth of its chains of thought's tokens).
const PROGRAM_MAX_TOKENS: usize = 256;

/// Program of thought: N programs sampled from one prompt, each run in the sandbox
/// (`Cx::programs`), a vote over their results. A program that fails is a candidate
/// with no answer and its error; N = 1 at temperature 0 is the greedy program.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pot {
    /// Programs sampled (N).
    pub n: usize,
    /// Sampling of every program.
    pub sampling: SamplingParams,
    /// New tokens per program.
    pub max_tokens: usize,
    /// How the answer is picked from the programs' results.
    pub vote: Vote,
    /// The system prompt asking for a program.
    pub prompt: String,
    /// What each program may use (steps, heap, call depth, source size, time).
    pub limits: Limits,
    /// Stop early (adaptive consistency over programs, `strategies.md` §5.5): sample
    /// programs in waves and stop once the Beta rule's P(the leading result stays the
    /// leader) reaches this, in (0, 1) (the paper's 0.95); None: all N.
    pub adaptive: Option<f64>,
    /// Programs per wave when `adaptive` is set (≥ 1).
    pub wave: usize,
}

impl Default for Pot {
    fn default() -> Self {
        Self {
            n: 8,
            sampling: SamplingParams::default(),
            max_tokens: PROGRAM_MAX_TOKENS,
            vote: Vote::Majority,
            prompt: PROGRAM_PROMPT.into(),
            limits: Limits::default(),
            adaptive: None,
            wave: 2,
        }
    }
}

/// Chains of thought and programs of one problem, voting together: `n` samples, a
/// share `program_share` of them programs. With `agreement`, each candidate's score is
/// the share of the other style's answers that equal its own (CoT/PoT agreement), so
/// `weighted` and `naive` votes favour answers both styles reach; without it the
/// scorer rates them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mixed {
    /// Samples in all (N).
    pub n: usize,
    /// Share of them that are programs, in [0, 1] (rounded; at least one of each
    /// style when n ≥ 2 and the share is strictly between 0 and 1).
    pub program_share: f64,
    /// Sampling of every sample.
    pub sampling: SamplingParams,
    /// New tokens per sample (chains of thought and programs alike).
    pub max_tokens: usize,
    /// How the answer is picked.
    pub vote: Vote,
    /// Score each candidate by its agreement with the other style (else the scorer's).
    pub agreement: bool,
    /// The system prompt asking for a program (chains of thought use the run's own).
    pub prompt: String,
    /// What each program may use.
    pub limits: Limits,
}

impl Default for Mixed {
    fn default() -> Self {
        Self {
            n: 8,
            program_share: 0.5,
            sampling: SamplingParams::default(),
            max_tokens: crate::registry::DEFAULT_MAX_TOKENS,
            vote: Vote::Majority,
            agreement: true,
            prompt: PROGRAM_PROMPT.into(),
            limits: Limits::default(),
        }
    }
}

impl Mixed {
    /// (chains of thought, programs) out of `n`.
    pub fn split(&self) -> (usize, usize) {
        let share = self.program_share.clamp(0.0, 1.0);
        let mut programs = (self.n as f64 * share).round() as usize;
        if self.n >= 2 && share > 0.0 && share < 1.0 {
            programs = programs.clamp(1, self.n - 1);
        }
        (self.n - programs, programs)
    }
}

fn spec(sampling: SamplingParams, max_tokens: usize) -> GenSpec {
    GenSpec::new(sampling, max_tokens)
}

/// Run each candidate's program (all at once: each in its own sandbox) and make its
/// result the candidate's answer, or its error the candidate's error.
fn run_programs(cx: &Cx, cands: &mut [Candidate], limits: &Limits) {
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = cands
            .iter()
            .map(|c| s.spawn(|| answer_of(&c.text, &cx.programs, limits)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(crate::program::ProgramError::Internal(
                        "the program runner panicked".into(),
                    ))
                })
            })
            .collect()
    });
    for (c, r) in cands.iter_mut().zip(results) {
        match r {
            Ok(a) => {
                c.answer = Some(a);
                c.error = None;
            }
            Err(e) => {
                c.answer = None;
                c.error = Some(e.to_string());
            }
        }
    }
}

/// The signal name of CoT/PoT agreement in a candidate's `signals`.
pub const AGREEMENT: &str = "agreement";

/// Record each candidate's agreement with the other style as its [`AGREEMENT`] signal,
/// and with `as_score` as its score too: the share of the other style's candidates
/// whose answer equals its own (0 without an answer or when the other style has no
/// candidates).
pub fn agreement_scores(cands: &mut [Candidate], is_program: &[bool], as_score: bool) {
    use crate::answer::answer_key;
    let keys: Vec<Option<String>> = cands
        .iter()
        .map(|c| c.answer.as_deref().map(answer_key))
        .collect();
    for i in 0..cands.len() {
        let others: Vec<usize> = (0..cands.len())
            .filter(|&j| is_program[j] != is_program[i])
            .collect();
        let score = match &keys[i] {
            Some(k) if !others.is_empty() => {
                others
                    .iter()
                    .filter(|&&j| keys[j].as_ref() == Some(k))
                    .count() as f64
                    / others.len() as f64
            }
            _ => 0.0,
        };
        if as_score {
            cands[i].score = Some(score);
        }
        cands[i].signals.insert(AGREEMENT.into(), score);
    }
}

impl Strategy for Pot {
    fn settings(&self) -> serde_json::Value {
        crate::strategy::settings_of(self)
    }
    fn writes_chains_of_thought(&self) -> bool {
        false
    }
    fn name(&self) -> String {
        match self.adaptive {
            _ if self.n == 1 && self.sampling.is_greedy() => "pot-greedy".into(),
            None => format!("pot-{}-{}", self.n, self.vote.label()),
            Some(0.95) => format!("pot-{}-{}-adaptive", self.n, self.vote.label()),
            Some(t) => format!("pot-{}-{}-adaptive{t}", self.n, self.vote.label()),
        }
    }
    fn needs(&self) -> Needs {
        Needs {
            // Adaptive: the root and one wave at a time.
            sequences: match self.adaptive {
                Some(_) => self.wave.min(self.n) + 1,
                None => self.n,
            },
            max_tokens: self.max_tokens,
            scorer: self.vote != Vote::Majority,
            ..Needs::default()
        }
    }
    fn solve(&self, cx: &Cx, problem: &Problem) -> Result<Solution, SearchError> {
        crate::registry::Settings::check(self)?;
        cx.check_sequences(self.needs().sequences)?;
        let prompt = cx.prompt_with(&cx.engine, Some(&self.prompt), problem)?;
        let spec = spec(self.sampling, self.max_tokens);
        let run = |c: &mut [Candidate]| run_programs(cx, c, &self.limits);
        let (cands, stats, scoring_ms) = match self.adaptive {
            None => {
                let (mut cands, stats, ms) = sample_from(cx, problem, &[(&prompt, self.n)], &spec)?;
                run(&mut cands);
                (cands, stats, ms)
            }
            Some(t) => super::sample_in_waves(
                cx,
                problem,
                &prompt,
                (self.n, self.wave),
                &spec,
                run,
                |c| super::adaptive::settled(c, t),
            )?,
        };
        let chosen = select(&cands, self.vote);
        Ok(Solution::new(self.name(), cands, chosen, stats).scored(scoring_ms, None))
    }
}

/// The checks Pot and Mixed share: sampling, tokens, N ≥ 1 and usable program limits.
fn check_sampled_programs(
    sampling: &SamplingParams,
    max_tokens: usize,
    n: usize,
    limits: &Limits,
) -> Result<(), SearchError> {
    crate::registry::check_generation(sampling, max_tokens)?;
    if n == 0 {
        return Err(invalid("n", "0 (must be ≥ 1)"));
    }
    limits
        .validate()
        .map_err(|e| invalid("limits", e.to_string()))
}

impl crate::registry::Settings for Pot {
    const N: Option<&'static str> = Some("n");
    fn check(&self) -> Result<(), SearchError> {
        check_sampled_programs(&self.sampling, self.max_tokens, self.n, &self.limits)?;
        if let Some(t) = self.adaptive {
            super::adaptive::check_threshold(t)?;
            if self.wave == 0 {
                return Err(invalid("wave", "0 (must be ≥ 1)"));
            }
        }
        Ok(())
    }
}

impl Strategy for Mixed {
    fn settings(&self) -> serde_json::Value {
        crate::strategy::settings_of(self)
    }
    fn name(&self) -> String {
        let (cot, programs) = self.split();
        let by = if self.agreement { "-agreement" } else { "" };
        format!("mixed-{cot}cot-{programs}pot-{}{by}", self.vote.label())
    }
    fn needs(&self) -> Needs {
        Needs {
            sequences: self.n,
            max_tokens: self.max_tokens,
            scorer: !self.agreement && self.vote != Vote::Majority,
            ..Needs::default()
        }
    }
    fn solve(&self, cx: &Cx, problem: &Problem) -> Result<Solution, SearchError> {
        crate::registry::Settings::check(self)?;
        cx.check_sequences(self.n)?;
        let (cot, programs) = self.split();
        let cot_prompt = cx.prompt(problem)?;
        let program_prompt = cx.prompt_with(&cx.engine, Some(&self.prompt), problem)?;
        let spec = spec(self.sampling, self.max_tokens);
        let (mut cands, stats, scoring_ms) = sample_from(
            cx,
            problem,
            &[(&cot_prompt, cot), (&program_prompt, programs)],
            &spec,
        )?;
        run_programs(cx, &mut cands[cot..], &self.limits);
        let is_program: Vec<bool> = (0..cands.len()).map(|i| i >= cot).collect();
        agreement_scores(&mut cands, &is_program, self.agreement);
        let chosen = select(&cands, self.vote);
        Ok(Solution::new(self.name(), cands, chosen, stats).scored(scoring_ms, None))
    }
}

impl crate::registry::Settings for Mixed {
    const N: Option<&'static str> = Some("n");
    fn check(&self) -> Result<(), SearchError> {
        check_sampled_programs(&self.sampling, self.max_tokens, self.n, &self.limits)?;
        if !(0.0..=1.0).contains(&self.program_share) {
            return Err(invalid(
                "program_share",
                format!("{} (must be in [0, 1])", self.program_share),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(answer: Option<&str>) -> Candidate {
        Candidate {
            text: String::new(),
            answer: answer.map(String::from),
            score: None,
            tokens: 1,
            finish: None,
            error: None,
            signals: Default::default(),
        }
    }

    #[test]
    fn agreement_is_the_share_of_the_other_style_that_agrees() {
        // CoT: 4, 4, 5; programs: 4, 6.
        let mut cs = vec![
            c(Some("4")),
            c(Some("4")),
            c(Some("5")),
            c(Some("4.0")),
            c(None),
        ];
        let is_program = [false, false, false, true, true];
        let before: Vec<Option<f64>> = cs.iter().map(|c| c.score).collect();
        agreement_scores(&mut cs, &is_program, false);
        let signal: Vec<f64> = cs.iter().map(|c| c.signals[AGREEMENT]).collect();
        // A CoT "4" agrees with 1 of 2 programs; "5" with none; the program "4.0" with
        // 2 of 3 chains; the failed program scores 0.
        assert_eq!(signal, vec![0.5, 0.5, 0.0, 2.0 / 3.0, 0.0]);
        assert_eq!(cs.iter().map(|c| c.score).collect::<Vec<_>>(), before);
        agreement_scores(&mut cs, &is_program, true);
        let s: Vec<f64> = cs.iter().map(|c| c.score.unwrap()).collect();
        assert_eq!(s, signal);
    }

    #[test]
    fn the_split_keeps_both_styles() {
        let m = |n, share| Mixed {
            n,
            program_share: share,
            ..Mixed::default()
        };
        assert_eq!(m(8, 0.5).split(), (4, 4));
        assert_eq!(m(3, 0.5).split(), (1, 2));
        assert_eq!(m(4, 0.01).split(), (3, 1));
        assert_eq!(m(4, 0.99).split(), (1, 3));
        assert_eq!(m(4, 0.0).split(), (4, 0));
        assert_eq!(m(4, 1.0).split(), (0, 4));
        assert_eq!(m(1, 0.5).split(), (0, 1));
    }
}
