//! Program-aided strategies on the mock backend: the model's programs and chains of
//! thought are known exactly, the programs really run (in process: they are ours).

use ponder_engine::mock::{ChoiceModel, MockConfig, MockModel};
use ponder_engine::{Engine, PromptFormat, SamplingParams, Token};
use ponder_search::registry::build;
use ponder_search::{Cx, Mixed, Pot, Problem, Strategy, Vote};
use std::sync::Arc;

/// Programs when the prompt asks for one, chains of thought otherwise.
struct TwoStyles {
    cot: ChoiceModel,
    program: ChoiceModel,
}

impl MockModel for TwoStyles {
    fn logits(&self, context: &[Token], out: &mut [f32]) {
        let text: Vec<u8> = context
            .iter()
            .filter(|&&t| t < 256)
            .map(|&t| t as u8)
            .collect();
        let asks_program = text.windows(10).any(|w| w == b"solution()");
        if asks_program {
            self.program.logits(context, out)
        } else {
            self.cot.logits(context, out)
        }
    }
}

fn cx(cot: &[(&str, f32)], program: &[(&str, f32)]) -> Cx {
    let model = TwoStyles {
        cot: ChoiceModel::new(cot),
        program: ChoiceModel::new(program),
    };
    let engine = Engine::mock(MockConfig {
        model: Arc::new(model),
        ..Default::default()
    })
    .unwrap();
    let mut cx = Cx::new(engine);
    cx.format = PromptFormat::Model;
    cx
}

const PROGRAMS: [(&str, f32); 3] = [
    ("```python\ndef solution():\n    return 6 * 7\n```", 0.5),
    ("```python\nanswer = 40 + 1\n```", 0.3),
    ("I think it is 40.", 0.2),
];

fn sampled(n: usize) -> Pot {
    Pot {
        n,
        sampling: SamplingParams {
            temperature: 1.0,
            ..Default::default()
        },
        max_tokens: 64,
        ..Pot::default()
    }
}

#[test]
fn the_greedy_program_runs_and_its_result_is_the_answer() {
    let pot = Pot {
        n: 1,
        sampling: SamplingParams::greedy(),
        ..Pot::default()
    };
    let sol = pot
        .solve(&cx(&[], &PROGRAMS), &Problem::new(0, "q"))
        .unwrap();
    assert_eq!(sol.strategy, "pot-greedy");
    // The heaviest text is the solution() program: 6 * 7.
    assert_eq!(sol.answer.as_deref(), Some("42"));
    assert_eq!(sol.candidates[0].error, None);
}

#[test]
fn programs_vote_on_what_they_compute_and_failures_carry_their_error() {
    let sol = sampled(48)
        .solve(&cx(&[], &PROGRAMS), &Problem::new(0, "q"))
        .unwrap();
    assert_eq!(sol.candidates.len(), 48);
    let count = |a: &str| {
        sol.candidates
            .iter()
            .filter(|c| c.answer.as_deref() == Some(a))
            .count()
    };
    let failed: Vec<_> = sol
        .candidates
        .iter()
        .filter(|c| c.answer.is_none())
        .collect();
    // Every candidate is one of the three texts: two programs that run, prose that has
    // no program (its error says so).
    assert_eq!(count("42") + count("41") + failed.len(), 48);
    assert!(count("42") > count("41") && count("41") > 0 && !failed.is_empty());
    assert!(failed
        .iter()
        .all(|c| c.error.as_deref() == Some("no program in the reply")));
    assert_eq!(sol.answer.as_deref(), Some("42"));
}

#[test]
fn mixed_votes_over_both_styles_with_agreement_scores() {
    // Chains of thought lean to 5 (0.55), programs say 7 (0.9): together 7 wins.
    let cot = [("so \\boxed{5}", 0.55), ("so \\boxed{7}", 0.45)];
    let programs = [
        ("```python\nanswer = 7\n```", 0.9),
        ("```python\nanswer = 5\n```", 0.1),
    ];
    let mixed = Mixed {
        n: 16,
        sampling: SamplingParams {
            temperature: 1.0,
            ..Default::default()
        },
        max_tokens: 64,
        vote: Vote::Weighted,
        ..Mixed::default()
    };
    let sol = mixed
        .solve(&cx(&cot, &programs), &Problem::new(0, "q"))
        .unwrap();
    assert_eq!(sol.strategy, "mixed-8cot-8pot-weighted-agreement");
    assert_eq!(sol.candidates.len(), 16);
    let (chains, progs) = sol.candidates.split_at(8);
    assert!(chains.iter().all(|c| c.text.starts_with("so ")));
    assert!(progs.iter().all(|c| c.text.starts_with("```python")));
    // Each score is the share of the other style that agrees (checked by hand from the
    // answers drawn).
    let share = |others: &[ponder_search::Candidate], a: &Option<String>| {
        others.iter().filter(|o| &o.answer == a).count() as f64 / others.len() as f64
    };
    for c in chains {
        assert_eq!(c.score, Some(share(progs, &c.answer)));
    }
    for c in progs {
        assert_eq!(c.score, Some(share(chains, &c.answer)));
    }
    assert_eq!(sol.answer.as_deref(), Some("7"));
}

#[test]
fn bad_program_settings_are_named() {
    let err = build("pot", &serde_json::json!({"limits": {"max_steps": 0}}))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("pot") && err.contains("max_steps is 0"),
        "{err}"
    );
    let err = build("pot", &serde_json::json!({"limits": {"wall": 0}}))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("wall"), "{err}");
    let err = build("mixed", &serde_json::json!({"program_share": 1.5}))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("program_share") && err.contains("[0, 1]"),
        "{err}"
    );
}

/// Adaptive pot stops as soon as the Beta rule settles the programs' results: with one
/// program only, 4 agreeing results (two waves of 2) reach P = 31/32 ≥ 0.95; with two
/// programs that disagree about half the time it samples on, and never past N.
#[test]
fn adaptive_programs_stop_once_their_results_agree() {
    let adaptive = |n| Pot {
        adaptive: Some(0.95),
        wave: 2,
        ..sampled(n)
    };
    let one = [("```python\ndef solution():\n    return 6 * 7\n```", 1.0)];
    let sol = adaptive(16)
        .solve(&cx(&[], &one), &Problem::new(0, "q"))
        .unwrap();
    assert_eq!(sol.strategy, "pot-16-majority-adaptive");
    assert_eq!(sol.candidates.len(), 4, "stopped after two waves");
    assert_eq!(sol.answer.as_deref(), Some("42"));
    // Every candidate of the waves was run: each has its result.
    assert!(sol
        .candidates
        .iter()
        .all(|c| c.answer.as_deref() == Some("42")));
    let split = [
        ("```python\ndef solution():\n    return 6 * 7\n```", 0.5),
        ("```python\nanswer = 40 + 1\n```", 0.5),
    ];
    let mut longer = 0;
    for id in 0..6 {
        let sol = adaptive(12)
            .solve(&cx(&[], &split), &Problem::new(id, "q"))
            .unwrap();
        assert!(sol.candidates.len() <= 12);
        longer += (sol.candidates.len() > 4) as usize;
    }
    assert!(
        longer >= 3,
        "a split vote rarely settles at 4: {longer} of 6 went on"
    );
    let bad = Pot {
        adaptive: Some(1.0),
        ..sampled(4)
    };
    let e = bad
        .solve(&cx(&[], &one), &Problem::new(0, "q"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("stopping threshold: 1 (must be in (0, 1))"),
        "{e}"
    );
}
