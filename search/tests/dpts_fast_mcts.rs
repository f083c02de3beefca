//! FastMCTS and DPTS on the mock backend: the stay policy, dynamic exploration, the tree
//! it grows (every simulated step a node), and DPTS paths, with the arithmetic verifier.

use ponder_engine::mock::{ChoiceModel, MockConfig};
use ponder_engine::{Engine, SamplingParams};
use ponder_scorers::ArithmeticVerifier;
use ponder_search::{Cx, FastMcts, Problem, StepNode, Strategy};
use std::sync::Arc;

fn node(visits: u32, wins: f64) -> StepNode {
    StepNode {
        parent: Some(0),
        children: vec![],
        trajectory: 0,
        len: 1,
        visits,
        wins,
        terminal: false,
    }
}

#[test]
fn the_stay_policy_branches_where_the_score_is_open() {
    let f = FastMcts::default(); // l_low 0.2, l_high 0.8
    let stays: Vec<bool> = [0.0, 0.1, 0.2, 0.5, 0.8, 0.99, 1.0]
        .iter()
        .map(|&s| f.stays(s))
        .collect();
    assert_eq!(stays, vec![false, true, true, false, true, true, false]);
}

#[test]
fn exploration_shrinks_with_the_score_after_two_visits() {
    let f = FastMcts {
        c: 1.0,
        ..FastMcts::default()
    };
    assert_eq!(f.uct(4, &node(0, 0.0)), f64::INFINITY);
    // One visit: plain UCT, 1/1 + 1 · sqrt(ln 4 / 1).
    assert!((f.uct(4, &node(1, 1.0)) - (1.0 + 4f64.ln().sqrt())).abs() < 1e-12);
    // Two visits, score 0.5: c becomes 0.5 · 1: 0.5 + 0.5 · sqrt(ln 4 / 2).
    assert!((f.uct(4, &node(2, 1.0)) - (0.5 + 0.5 * (4f64.ln() / 2.0).sqrt())).abs() < 1e-12);
    // A node that never wins stops being explored once visited twice.
    assert_eq!(f.uct(9, &node(3, 0.0)), 0.0);
}

#[test]
fn every_simulated_step_is_a_node_and_visits_add_up() {
    let model = ChoiceModel::new(&[
        ("Step 1: 2 + 2 = 4.\n\nSo \\boxed{4}.", 0.5),
        ("Step 1: 2 + 2 = 5.\n\nSo \\boxed{5}.", 0.5),
    ]);
    let engine = Engine::mock(MockConfig {
        model: Arc::new(model),
        ..Default::default()
    })
    .unwrap();
    let cx = Cx::new(engine).with_scorer(ArithmeticVerifier::default());
    let f = FastMcts {
        trajectories: 6,
        sampling: SamplingParams {
            temperature: 1.0,
            ..Default::default()
        },
        max_tokens: 64,
        ..FastMcts::default()
    };
    for id in 0..4 {
        let (sol, tree) = f.search(&cx, &Problem::new(id, "q")).unwrap();
        assert_eq!(sol.candidates.len(), 6);
        assert_eq!(tree[0].visits, 6);
        // The first trajectory is two steps from the root: two nodes.
        assert_eq!(tree[0].children.len().min(1), 1);
        let first = tree[0].children[0];
        assert_eq!(tree[first].children.len().min(1), 1);
        for (i, n) in tree.iter().enumerate() {
            if n.terminal {
                assert!(n.children.is_empty());
                assert_eq!(n.visits, 1, "each trajectory ends in a new leaf");
            } else if i != 0 || !n.children.is_empty() {
                let below: u32 = n.children.iter().map(|&c| tree[c].visits).sum();
                assert_eq!(n.visits, below, "node {i}: paths pass through to a child");
            }
        }
        // Wins are the verifier's verdicts: a step-1 node's score is 1 or 0.
        for &c in &tree[0].children {
            let s = tree[c].score();
            assert!(s == 0.0 || s == 1.0, "{s}");
        }
        assert!(sol.stats.generated_tokens > 0);
        let right = sol
            .candidates
            .iter()
            .filter(|c| c.answer.as_deref() == Some("4"))
            .count();
        assert!(right > 0 || sol.candidates.iter().all(|c| c.score == Some(0.0)));
    }
}

#[test]
fn bad_thresholds_are_named() {
    let f = FastMcts {
        l_low: 0.9,
        l_high: 0.5,
        ..FastMcts::default()
    };
    let cx = Cx::new(Engine::mock(MockConfig::default()).unwrap());
    let err = f.solve(&cx, &Problem::new(0, "q")).unwrap_err().to_string();
    assert!(err.contains("l_low"), "{err}");
}

mod dpts {
    use super::*;
    use ponder_engine::mock::MockCounters;
    use ponder_search::Dpts;
    use std::sync::atomic::Ordering::Relaxed;

    fn run(n_ctx: u32, counters: Arc<MockCounters>) -> Result<ponder_search::Solution, String> {
        let model = ChoiceModel::new(&[
            ("Step 1: 2 + 2 = 4.\n\nStep 2: so 4.\n\nSo \\boxed{4}.", 0.3),
            ("Step 1: 2 + 2 = 5.\n\nStep 2: so 5.\n\nSo \\boxed{5}.", 0.7),
        ]);
        let engine = Engine::mock(MockConfig {
            model: Arc::new(model),
            n_ctx,
            counters,
            ..Default::default()
        })
        .unwrap();
        let cx = Cx::new(engine).with_scorer(ArithmeticVerifier::default());
        let d = Dpts {
            sampling: SamplingParams {
                temperature: 1.0,
                ..Default::default()
            },
            max_tokens: 96,
            ..Dpts::default()
        };
        d.solve(&cx, &Problem::new(0, "q"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn dpts_finishes_paths_without_rereading_or_leaking() {
        let counters = Arc::new(MockCounters::default());
        let sol = run(16384, counters.clone()).unwrap();
        assert!(!sol.candidates.is_empty() && sol.chosen.is_some());
        let s = &sol.stats;
        assert!(
            s.decoded_tokens <= s.prompt_tokens + s.generated_tokens,
            "{s:?}"
        );
        // The verifier rewards "= 4": finished paths with a right first step score 1.
        assert!(sol
            .candidates
            .iter()
            .any(|c| c.answer.as_deref() == Some("4")));
        assert_eq!(sol.answer.as_deref(), Some("4"));
        assert_eq!(counters.live_seqs.load(Relaxed), 0);
    }

    #[test]
    fn no_kv_room_for_one_path_is_an_error() {
        // One path needs width × step tokens = 4 × 96 cells; 256 is too few.
        let err = run(256, Arc::default()).unwrap_err();
        assert!(err.contains("no room for even one path"), "{err}");
    }
}
