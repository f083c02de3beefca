//! Best-of-N on the mock backend, where the model's answer distribution is known exactly.

use ponder_engine::mock::{ChoiceModel, MockConfig};
use ponder_engine::{Engine, PromptFormat, SamplingParams};
use ponder_scorers::Sample;
use ponder_search::registry::build;
use ponder_search::{BestOfN, Cx, Problem, SearchError, Strategy, Vote};
use std::sync::Arc;

/// P(answer 7) = 0.36 via one text (the likeliest single text); P(answer 5) = 0.64 via two.
fn cx() -> Cx {
    let model = ChoiceModel::new(&[
        ("A: so \\boxed{7}", 0.36),
        ("B: so \\boxed{5}", 0.32),
        ("C: thus the answer is 5.", 0.32),
    ]);
    let engine = Engine::mock(MockConfig {
        model: Arc::new(model),
        ..Default::default()
    })
    .unwrap();
    let mut cx = Cx::new(engine);
    cx.format = PromptFormat::Model;
    cx
}

fn bon(n: usize, vote: Vote) -> BestOfN {
    BestOfN {
        n,
        vote,
        sampling: SamplingParams {
            temperature: 1.0,
            ..Default::default()
        },
        max_tokens: 64,
        stop: vec![],
    }
}

#[test]
fn greedy_takes_the_single_most_likely_text() {
    let sol = BestOfN::greedy(64)
        .solve(&cx(), &Problem::new(0, "q"))
        .unwrap();
    assert_eq!(sol.answer.as_deref(), Some("7"));
    assert_eq!(sol.candidates.len(), 1);
    assert_eq!(sol.strategy, "greedy");
}

#[test]
fn majority_finds_the_answer_spread_over_two_texts() {
    // 48 samples at p(5) = 0.64: 5 wins the vote although greedy says 7.
    let sol = bon(48, Vote::Majority)
        .solve(&cx(), &Problem::new(0, "q"))
        .unwrap();
    assert_eq!(sol.answer.as_deref(), Some("5"));
    let fives = sol
        .candidates
        .iter()
        .filter(|c| c.answer.as_deref() == Some("5"))
        .count();
    let sevens = sol
        .candidates
        .iter()
        .filter(|c| c.answer.as_deref() == Some("7"))
        .count();
    assert_eq!(fives + sevens, 48);
    assert!(fives > sevens);
    // One prompt, 47 forks, every branch in one batch per step.
    assert_eq!(sol.stats.forks, 47);
    let longest = sol.candidates.iter().map(|c| c.tokens).max().unwrap() as u64;
    assert_eq!(
        sol.stats.decode_calls, longest,
        "1 prefill + (longest - 1) steps"
    );
}

#[test]
fn naive_and_weighted_follow_the_scorer() {
    // A scorer that likes text A: naive picks an A sample; weighted gives 7 the vote
    // (≈17 × 1.0 against ≈31 × 0.1) even though 5 has more samples.
    let likes_a = |s: &Sample<'_>| if s.text.starts_with('A') { 1.0 } else { 0.1 };
    let cx = cx().with_scorer(likes_a);
    let naive = bon(48, Vote::Naive)
        .solve(&cx, &Problem::new(0, "q"))
        .unwrap();
    assert!(naive.text().unwrap().starts_with('A'));
    assert_eq!(naive.answer.as_deref(), Some("7"));
    let weighted = bon(48, Vote::Weighted)
        .solve(&cx, &Problem::new(0, "q"))
        .unwrap();
    assert_eq!(weighted.answer.as_deref(), Some("7"));
    let majority = bon(48, Vote::Majority)
        .solve(&cx, &Problem::new(0, "q"))
        .unwrap();
    assert_eq!(majority.answer.as_deref(), Some("5"));
}

#[test]
fn same_seed_same_solution() {
    let c = cx();
    let a = bon(8, Vote::Majority)
        .solve(&c, &Problem::new(3, "q"))
        .unwrap();
    let b = bon(8, Vote::Majority)
        .solve(&c, &Problem::new(3, "q"))
        .unwrap();
    let texts = |s: &ponder_search::Solution| {
        s.candidates
            .iter()
            .map(|c| c.text.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(texts(&a), texts(&b));
    let other = bon(8, Vote::Majority)
        .solve(&c, &Problem::new(4, "q"))
        .unwrap();
    assert_ne!(
        texts(&a),
        texts(&other),
        "another problem id draws other samples"
    );
}

#[test]
fn budget_truncation_is_reported() {
    let mut c = cx();
    c.budget = ponder_engine::Budget::tokens(20);
    let sol = bon(8, Vote::Majority)
        .solve(&c, &Problem::new(0, "q"))
        .unwrap();
    assert!(sol.truncated);
    assert!(sol.stats.generated_tokens <= 28);
}

#[test]
fn bad_parameters_are_named() {
    let c = cx();
    let e = bon(0, Vote::Majority)
        .solve(&c, &Problem::new(0, "q"))
        .unwrap_err();
    assert!(e.to_string().contains("invalid n"), "{e}");
    let e = bon(1000, Vote::Majority)
        .solve(&c, &Problem::new(0, "q"))
        .unwrap_err();
    assert!(e.to_string().contains("n_seq_max"), "{e}");
    let mut b = bon(4, Vote::Majority);
    b.max_tokens = 0;
    assert!(b
        .solve(&c, &Problem::new(0, "q"))
        .unwrap_err()
        .to_string()
        .contains("max_tokens"));
    match build("beam-me-up", &serde_json::json!({})) {
        Err(e @ SearchError::UnknownStrategy(_)) => assert!(e.to_string().contains("best-of-n")),
        other => panic!("{:?}", other.map(|s| s.name())),
    }
}

#[test]
fn borda_votes_by_score_rank_and_a_bad_power_is_named() {
    let s = build("best-of-n", &serde_json::json!({"vote": "borda", "n": 4})).unwrap();
    assert_eq!(s.name(), "best-of-4-borda");
    let err = build("best-of-n", &serde_json::json!({"vote": "borda:-1"}))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("best-of-n") && err.contains("vote") && err.contains("≥ 0"),
        "{err}"
    );
    // On the mock: Borda over 48 samples ranked by the default scorer still finds 5
    // (0.64 of the mass, spread over two texts, each ranked by its log-probability).
    let sol = BestOfN {
        vote: Vote::Borda(0.5),
        ..bon(48, Vote::Majority)
    }
    .solve(&cx(), &Problem::new(0, "q"))
    .unwrap();
    assert_eq!(sol.candidates.len(), 48);
    assert!(sol.answer.is_some());
}
