//! Step-level search end to end on SmolLM2-135M: beam search, DVTS and MCTS with the
//! arithmetic verifier, and a yes/no judge running on SmolLM2 in its own context.

use ponder::engine::llama::LlamaConfig;
use ponder::engine::{Engine, SamplingParams};
use ponder::scorers::{ArithmeticVerifier, Prm, PrmPreset, Sample, Scorer};
use ponder::search::{BeamSearch, Cx, Dvts, Mcts, Problem, Solution, Strategy};

const QUESTION: &str = "Tom has 3 apples and buys 4 more. How many apples does he have?";

fn load(n_ctx: u32, n_seq_max: u32) -> Engine {
    let mut c = LlamaConfig::new(ponder::models::test_model().expect("fetch SmolLM2"));
    c.n_ctx = n_ctx;
    c.n_seq_max = n_seq_max;
    c.threads = Some(1);
    Engine::load(&c).expect("load SmolLM2")
}

fn check(sol: &Solution, n: usize) {
    let s = &sol.stats;
    assert!(!sol.candidates.is_empty() && sol.candidates.len() <= n.max(8));
    assert!(sol.chosen.is_some());
    // The prompt once; each generated token at most once: forks share, nothing is re-read.
    assert!(
        s.decoded_tokens <= s.prompt_tokens + s.generated_tokens,
        "{}: {s:?}",
        sol.strategy
    );
    assert!(s.forks > 0 && s.generated_tokens > 0);
    let gen: usize = sol.candidates.iter().map(|c| c.tokens).max().unwrap();
    assert!(gen <= 96, "per-branch cap respected");
}

#[test]
fn beam_dvts_and_mcts_run_with_the_verifier() {
    let cx = Cx::new(load(8192, 48)).with_scorer(ArithmeticVerifier::default());
    let p = Problem::new(0, QUESTION);
    let sampling = SamplingParams::default();
    let beam = BeamSearch {
        n: 4,
        width: 2,
        iterations: 6,
        max_tokens: 96,
        sampling,
        ..Default::default()
    };
    let sol = beam.solve(&cx, &p).unwrap();
    check(&sol, 4);
    assert!(
        sol.scorer_stats.is_none(),
        "a model-free scorer has no model cost"
    );
    let dvts = Dvts {
        n: 4,
        width: 2,
        iterations: 6,
        max_tokens: 96,
        sampling,
        ..Default::default()
    };
    check(&dvts.solve(&cx, &p).unwrap(), 4);
    let mcts = Mcts {
        iterations: 3,
        width: 2,
        max_depth: 4,
        max_live: 8,
        max_tokens: 96,
        sampling,
        ..Default::default()
    };
    let (sol, tree) = mcts.search(&cx, &p).unwrap();
    check(&sol, 3);
    assert_eq!(tree[0].visits, 3);
}

#[test]
fn a_judge_on_smollm2_scores_steps_incrementally() {
    let judge_engine = load(8192, 16);
    let judge = Prm::new(judge_engine.clone(), PrmPreset::judge()).unwrap();
    // Whole-text scoring: a probability per step, last step by default.
    let s = judge
        .score(&Sample::new(
            "What is 2+2?",
            "2 + 2 = 4.\n\nThe answer is 4.",
        ))
        .unwrap();
    assert!((0.0..=1.0).contains(&s));
    let cx = Cx::new(load(8192, 16)).with_scorer(judge);
    let beam = BeamSearch {
        n: 4,
        width: 2,
        iterations: 4,
        max_tokens: 96,
        ..Default::default()
    };
    let sol = beam.solve(&cx, &Problem::new(1, QUESTION)).unwrap();
    check(&sol, 4);
    let ps = sol.scorer_stats.expect("judge cost reported apart");
    assert!(ps.decoded_tokens > 0 && ps.generated_tokens == 0);
    // The judge reads its prompt once and then only new steps (plus its templates): far
    // fewer tokens than re-reading every beam's whole text at every step would take.
    assert!(ps.prompt_tokens < 120, "{ps:?}");
    assert!(sol
        .candidates
        .iter()
        .all(|c| (0.0..=1.0).contains(&c.score.unwrap())));
}

#[test]
fn a_preset_whose_tokens_the_model_lacks_is_refused() {
    let mut p = PrmPreset::math_shepherd();
    p.good = "ки+".into();
    let err = Prm::new(load(1024, 2), p).unwrap_err().to_string();
    assert!(err.contains("lacks the preset's read-out token"), "{err}");
}
