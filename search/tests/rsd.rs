//! Reward-guided speculative decoding on two mock models: the draft's first step is
//! wrong (2 + 2 = 5), the target's right; the arithmetic verifier is the reward.

use ponder_engine::mock::{ChoiceModel, MockConfig};
use ponder_engine::Engine;
use ponder_scorers::{ArithmeticVerifier, Sample};
use ponder_search::registry::build;
use ponder_search::{Cx, Problem, Rsd, RsdReward, Strategy};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const RIGHT: &str = "Step 1: 2 + 2 = 4.\n\nSo \\boxed{4}.";
const WRONG: &str = "Step 1: 2 + 2 = 5.\n\nSo \\boxed{5}.";

fn mock(choices: &[(&str, f32)]) -> Engine {
    Engine::mock(MockConfig {
        model: Arc::new(ChoiceModel::new(choices)),
        ..Default::default()
    })
    .unwrap()
}

/// Greedy draft prefers the wrong path; once the right step is in its context it can
/// only follow the right one. The target knows only the right path.
fn setup() -> (Cx, Rsd) {
    let draft = mock(&[(WRONG, 0.9), (RIGHT, 0.1)]);
    let target = mock(&[(RIGHT, 1.0)]);
    let mut cx = Cx::new(target).with_scorer(ArithmeticVerifier::default());
    cx.draft = Some(draft);
    let rsd = Rsd {
        max_tokens: 128,
        ..Rsd::default()
    };
    (cx, rsd)
}

#[test]
fn a_rejected_draft_step_is_rewritten_by_the_target() {
    let (cx, rsd) = setup();
    let sol = rsd.solve(&cx, &Problem::new(0, "2+2?")).unwrap();
    assert_eq!(sol.answer.as_deref(), Some("4"));
    assert_eq!(sol.text(), Some(RIGHT));
    let d = sol.draft.as_ref().unwrap();
    // Step 1: the draft's "= 5" scores 0 < 0.7, rejected; the target writes it.
    // Step 2: the draft's "So \boxed{4}." has no equation (neutral 1), accepted.
    assert_eq!((d.steps, d.accepted_steps), (2, 1));
    let step1 = "Step 1: 2 + 2 = 4.\n\n".len();
    let step2 = "So \\boxed{4}.".len() + 1; // + the end token
    assert_eq!(d.target_generated as usize, step1);
    assert_eq!(d.stats.generated_tokens as usize, step1 + step2);
    assert!((d.acceptance_rate - step2 as f64 / (step1 + step2) as f64).abs() < 1e-12);
    // The target read the accepted step without sampling it; the draft read the target's.
    assert_eq!(sol.stats.generated_tokens as usize, step1);
}

#[test]
fn the_threshold_decides_at_the_boundary() {
    let (cx, mut rsd) = setup();
    assert!(rsd.accepts(0.7) && !rsd.accepts(0.699));
    // δ = 0: every draft step is accepted, the target never samples.
    rsd.threshold = 0.0;
    let sol = rsd.solve(&cx, &Problem::new(0, "q")).unwrap();
    assert_eq!(sol.answer.as_deref(), Some("5"));
    assert_eq!(sol.draft.as_ref().unwrap().target_generated, 0);
    assert_eq!(sol.draft.as_ref().unwrap().acceptance_rate, 1.0);
    // A reward that accepts nothing: the target writes every step.
    let never = cx.clone().with_scorer(|_: &Sample<'_>| 0.0);
    rsd.threshold = 0.7;
    let sol = rsd.solve(&never, &Problem::new(0, "q")).unwrap();
    let d = sol.draft.as_ref().unwrap();
    assert_eq!(d.accepted_steps, 0);
    assert_eq!(d.acceptance_rate, 0.0);
    assert_eq!(sol.text(), Some(RIGHT));
    assert_eq!(d.target_generated as usize, RIGHT.len() + 1);
}

/// The target as the reward. It prefers the right path 3 to 1, so in the draft's wrong
/// first step (20 one-byte tokens) only "5" is uncertain, at probability 1/4: the step
/// scores 0.25^(1/20) ≈ 0.933. Everything after a shared step has probability 1.
#[test]
fn the_target_as_reward_scores_a_step_by_its_own_probability() {
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    let mut cx = Cx::new(mock(&[(RIGHT, 3.0), (WRONG, 1.0)])).with_scorer(move |_: &Sample<'_>| {
        counter.fetch_add(1, Ordering::Relaxed);
        1.0
    });
    cx.draft = Some(mock(&[(WRONG, 0.9), (RIGHT, 0.1)]));
    let mut rsd = Rsd {
        max_tokens: 128,
        reward: RsdReward::Target,
        ..Rsd::default()
    };
    assert_eq!(rsd.name(), "rsd-target-d0.7");
    let step1 = "Step 1: 2 + 2 = 5.\n\n";
    assert_eq!(step1.len(), 20);
    let score = 0.25f64.powf(1.0 / 20.0);

    // δ just above the score: step 1 rejected, cut from the target again, rewritten by
    // it; the draft's "So \boxed{4}." then scores 1 and is kept.
    rsd.threshold = score + 1e-3;
    let sol = rsd.solve(&cx, &Problem::new(0, "2+2?")).unwrap();
    assert_eq!(sol.text(), Some(RIGHT));
    let d = sol.draft.as_ref().unwrap();
    assert_eq!((d.steps, d.accepted_steps), (2, 1));
    assert_eq!(d.target_generated as usize, step1.len());
    // No scorer score: the candidate carries none.
    assert_eq!(sol.candidates[0].score, None);

    // δ just below: both draft steps kept, the target never samples.
    rsd.threshold = score - 1e-3;
    let sol = rsd.solve(&cx, &Problem::new(0, "2+2?")).unwrap();
    assert_eq!(sol.text(), Some(WRONG));
    let d = sol.draft.as_ref().unwrap();
    assert_eq!((d.steps, d.accepted_steps, d.target_generated), (2, 2, 0));
    assert_eq!(d.acceptance_rate, 1.0);
    // The target read both steps without sampling: its tokens are the whole text.
    assert_eq!(sol.candidates[0].tokens, WRONG.len());
    assert_eq!(
        asked.load(Ordering::Relaxed),
        0,
        "the scorer is not consulted"
    );
    assert_eq!(
        "nope".parse::<RsdReward>().unwrap_err(),
        "unknown RSD reward \"nope\" (scorer or target)"
    );
}

#[test]
fn bad_settings_are_named_and_a_missing_draft_is_refused() {
    let err = build("rsd", &serde_json::json!({"threshold": 1.5}))
        .err()
        .unwrap()
        .to_string();
    assert!(err.starts_with("rsd: "), "{err}");
    assert!(err.contains("δ must be in [0, 1]"), "{err}");
    // The strategy declares its draft model; a context without one is refused by name.
    let (mut cx, rsd) = setup();
    assert!(rsd.needs().draft_model);
    cx.draft = None;
    let err = rsd
        .solve(&cx, &Problem::new(0, "q"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs a draft model"), "{err}");
}
