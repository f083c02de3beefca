//! Step-level search (beam search, DVTS, MCTS) on the mock backend, where the policy's
//! step distribution and the reward are known exactly: the arithmetic verifier gives the
//! right first step 1 and the wrong ones 0.

use ponder_engine::mock::{ChoiceModel, MockConfig, MockCounters};
use ponder_engine::{Budget, Engine, SamplingParams, Token};
use ponder_scorers::{ArithmeticVerifier, Prm, PrmPreset, Sample, ScoreError, Scorer};
use ponder_search::{
    BeamSearch, BestOfN, Cx, Dvts, Mcts, Problem, SearchError, Solution, Strategy, Vote,
};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

const RIGHT: &str = "First, 2 + 2 = 4.\n\nSo the answer is \\boxed{4}.";

/// Step 1 is right with probability `p_right`; two wrong variants share the rest.
fn engine(p_right: f32, counters: Arc<MockCounters>) -> Engine {
    let w = (1.0 - p_right) / 2.0;
    let model = ChoiceModel::new(&[
        (RIGHT, p_right),
        ("First, 2 + 2 = 5.\n\nSo the answer is \\boxed{5}.", w),
        ("First, 2 + 2 = 6.\n\nSo the answer is \\boxed{6}.", w),
    ]);
    Engine::mock(MockConfig {
        model: Arc::new(model),
        counters,
        ..Default::default()
    })
    .unwrap()
}

fn cx(p_right: f32) -> Cx {
    Cx::new(engine(p_right, Arc::default())).with_scorer(ArithmeticVerifier::default())
}

fn t1() -> SamplingParams {
    SamplingParams {
        temperature: 1.0,
        ..Default::default()
    }
}

fn beam(n: usize, width: usize) -> BeamSearch {
    BeamSearch {
        n,
        width,
        sampling: t1(),
        max_tokens: 128,
        ..Default::default()
    }
}

fn dvts(n: usize, width: usize) -> Dvts {
    Dvts {
        n,
        width,
        sampling: t1(),
        max_tokens: 128,
        ..Default::default()
    }
}

fn mcts(iterations: usize, width: usize) -> Mcts {
    Mcts {
        iterations,
        width,
        sampling: t1(),
        max_tokens: 128,
        ..Default::default()
    }
}

fn first_step(text: &str) -> &str {
    text.split("\n\n").next().unwrap()
}

/// Each generated token is evaluated at most once; the prompt once.
fn assert_no_rereading(sol: &Solution) {
    let s = &sol.stats;
    assert!(
        s.decoded_tokens <= s.prompt_tokens + s.generated_tokens,
        "{}: decoded {} > prompt {} + generated {}",
        sol.strategy,
        s.decoded_tokens,
        s.prompt_tokens,
        s.generated_tokens
    );
    assert!(s.prompt_tokens > 0 && s.generated_tokens > 0);
}

#[test]
fn beam_search_keeps_the_rewarded_path_where_voting_loses_it() {
    let cx = cx(0.3);
    let mut bon_right = 0;
    for id in 0..10 {
        let p = Problem::new(id, "What is 2+2?");
        let sol = beam(8, 4).solve(&cx, &p).unwrap();
        assert_eq!(sol.answer.as_deref(), Some("4"), "problem {id}: {sol:#?}");
        assert_eq!(sol.candidates.len(), 8);
        // N/M = 2 parents survive step 1, each continued M = 4 ways (cyclic refill).
        let mut groups: HashMap<&str, usize> = HashMap::new();
        for c in &sol.candidates {
            *groups.entry(first_step(&c.text)).or_default() += 1;
        }
        assert!(groups.len() <= 2, "{groups:?}");
        assert!(
            groups.values().all(|&k| k == 8 / groups.len()),
            "{groups:?}"
        );
        assert_no_rereading(&sol);
        assert!(
            sol.stats.forks >= 7 + 6,
            "forks at the root and after step 1"
        );
        let b = BestOfN {
            n: 8,
            sampling: t1(),
            max_tokens: 128,
            vote: Vote::Majority,
            stop: vec![],
        };
        bon_right += (b.solve(&cx, &p).unwrap().answer.as_deref() == Some("4")) as usize;
    }
    // Majority voting follows the policy (30% right per sample): it loses most problems.
    assert!(bon_right < 10, "majority got {bon_right}/10");
}

#[test]
fn duplicate_beams_are_filtered_before_pruning() {
    // Greedy: all 8 beams write the same first step; after filtering one is left, so
    // all 8 beams descend from it; without filtering the top 2 are two copies of it.
    let cx = cx(0.5);
    let p = Problem::new(0, "q");
    let mut b = beam(8, 4);
    b.sampling = SamplingParams::greedy();
    let sol = b.solve(&cx, &p).unwrap();
    assert_eq!(sol.candidates.len(), 8);
    assert!(sol.candidates.iter().all(|c| c.text == RIGHT));
    assert_eq!(sol.answer.as_deref(), Some("4"));
}

#[test]
fn dvts_subtrees_are_independent() {
    // 4 subtrees of 2: a subtree whose two first steps were both wrong keeps a wrong
    // step (it never competes with the others); beam search with the same budget prunes
    // every wrong step once two right ones exist.
    let cx = cx(0.3);
    let mut mixed = 0;
    for id in 0..12 {
        let sol = dvts(8, 2).solve(&cx, &Problem::new(id, "q")).unwrap();
        assert_eq!(sol.candidates.len(), 8, "N/M subtrees × M last candidates");
        let groups: Vec<&[_]> = sol.candidates.chunks(2).collect();
        for g in &groups {
            // Siblings share their subtree's chosen first step.
            assert_eq!(first_step(&g[0].text), first_step(&g[1].text));
        }
        let right = groups
            .iter()
            .filter(|g| first_step(&g[0].text).ends_with("= 4."))
            .count();
        if right > 0 && right < groups.len() {
            mixed += 1;
        }
        assert_no_rereading(&sol);
        if right > 0 {
            assert_eq!(sol.answer.as_deref(), Some("4"), "best score wins");
        }
    }
    // P(a subtree keeps a wrong step) = 0.7² = 0.49: most problems mix right and wrong subtrees.
    assert!(
        mixed >= 4,
        "only {mixed}/12 problems kept a lower-scored subtree"
    );
}

#[test]
fn puct_matches_the_formula() {
    let m = Mcts::default();
    let child = ponder_search::TreeNode {
        parent: Some(0),
        children: vec![],
        prior: 0.5,
        initial_value: 0.3,
        visits: 1,
        value_sum: 0.8,
        terminal: false,
        pruned: false,
        depth: 1,
    };
    // Q = 0.8; explore = ln((4 + 19652 + 1) / 19652) + 1.25; bonus = 0.5 · 2 / 2 · explore.
    let explore = ((4.0 + 19652.0 + 1.0) / 19652.0f64).ln() + 1.25;
    assert!((m.puct(4, &child) - (0.8 + 0.5 * 2.0 / 2.0 * explore)).abs() < 1e-12);
    // Unvisited: the initial value, and no exploration bonus under an unvisited parent.
    let fresh = ponder_search::TreeNode {
        visits: 0,
        value_sum: 0.0,
        ..child
    };
    assert_eq!(m.puct(0, &fresh), 0.3);
}

#[test]
fn mcts_visits_concentrate_on_the_high_value_child() {
    let cx = cx(0.5);
    let mut with_right = 0;
    for id in 0..6 {
        let (sol, tree) = mcts(16, 4).search(&cx, &Problem::new(id, "q")).unwrap();
        assert_eq!(tree[0].visits, 16);
        let kids = &tree[0].children;
        assert!(!kids.is_empty() && kids.len() <= 3, "duplicate steps merge");
        // Visits add up: a parent's visits are its children's plus the paths ending at it.
        let child_sum: u32 = kids.iter().map(|&c| tree[c].visits).sum();
        assert_eq!(child_sum, 16);
        assert_eq!(sol.candidates.len(), 16, "one candidate per path");
        assert_no_rereading(&sol);
        if !kids.iter().any(|&c| tree[c].initial_value == 1.0) {
            continue; // all four samples were wrong (p = 1/16)
        }
        with_right += 1;
        let best = kids.iter().max_by_key(|&&c| tree[c].visits).unwrap();
        assert_eq!(
            tree[*best].initial_value, 1.0,
            "the right step gets most visits"
        );
        assert!(
            tree[*best].visits >= 10,
            "{:?}",
            kids.iter().map(|&c| tree[c].visits).collect::<Vec<_>>()
        );
        assert_eq!(sol.answer.as_deref(), Some("4"), "most paths end right");
    }
    assert!(
        with_right >= 4,
        "{with_right}/6 problems sampled the right step"
    );
}

#[test]
fn mcts_prunes_the_weakest_leaves_to_stay_within_its_sequences() {
    // Width 4 over many paths would keep dozens of leaves alive; max_live 6 caps them.
    let counters = Arc::new(MockCounters::default());
    let cx = Cx::new(engine(0.4, counters.clone())).with_scorer(ArithmeticVerifier::default());
    let m = Mcts {
        max_live: 6,
        ..mcts(12, 4)
    };
    let (sol, tree) = m.search(&cx, &Problem::new(3, "q")).unwrap();
    let live = tree
        .iter()
        .filter(|n| !n.terminal && !n.pruned && n.children.is_empty())
        .count();
    assert!(live <= 6, "{live} live leaves");
    assert!(counters.max_live_seqs() <= m.sequences() as u64);
    assert!(!sol.candidates.is_empty());
    assert!(tree
        .iter()
        .filter(|n| n.pruned)
        .all(|n| n.visits == 0 || n.children.is_empty()));
}

#[test]
fn searches_release_every_sequence() {
    let counters = Arc::new(MockCounters::default());
    let cx = Cx::new(engine(0.4, counters.clone())).with_scorer(ArithmeticVerifier::default());
    let strategies: Vec<Box<dyn Strategy>> = vec![
        Box::new(beam(4, 2)),
        Box::new(dvts(4, 2)),
        Box::new(mcts(3, 3)),
        Box::new(BeamSearch {
            lookahead: 1,
            ..beam(4, 2)
        }),
    ];
    for i in 0..1000u64 {
        let s = &strategies[(i % 4) as usize];
        s.solve(&cx, &Problem::new(i, "q")).unwrap();
    }
    // Releases are processed in order: a query after them sees an empty cache.
    cx.engine.query(|_| ()).unwrap();
    assert_eq!(counters.live_seqs.load(Relaxed), 0, "sequences leaked");
}

#[test]
fn a_budget_stop_returns_the_best_so_far_marked_truncated() {
    let mut cx = cx(0.3);
    cx.budget = Budget {
        max_new_tokens: Some(40),
        ..Budget::default()
    };
    let strategies: Vec<Box<dyn Strategy>> = vec![
        Box::new(beam(8, 4)),
        Box::new(dvts(8, 4)),
        Box::new(mcts(8, 4)),
    ];
    for s in strategies {
        let sol = s.solve(&cx, &Problem::new(0, "q")).unwrap();
        assert!(sol.truncated, "{}", sol.strategy);
        assert!(
            !sol.candidates.is_empty() && sol.chosen.is_some(),
            "{}",
            sol.strategy
        );
        assert!(sol.stats.generated_tokens <= 40 + 8);
    }
}

#[test]
fn bad_widths_and_failing_scorers_get_clear_errors() {
    let cx = cx(0.3);
    let p = Problem::new(0, "q");
    let err = beam(6, 4).solve(&cx, &p).unwrap_err().to_string();
    assert!(err.contains("4 does not divide n = 6"), "{err}");
    let err = dvts(8, 0).solve(&cx, &p).unwrap_err().to_string();
    assert!(err.contains("beam width"), "{err}");
    let err = beam(128, 4).solve(&cx, &p).unwrap_err().to_string();
    assert!(err.contains("n_seq_max"), "{err}");

    struct FailsOnFive;
    impl Scorer for FailsOnFive {
        fn score(&self, s: &Sample<'_>) -> Result<f64, ScoreError> {
            if s.text.contains("= 5") {
                Err(ScoreError::new("fails-on-five", "cannot judge a 5"))
            } else {
                Ok(1.0)
            }
        }
    }
    let cx = cx.with_scorer(FailsOnFive);
    let e = beam(8, 4).solve(&cx, &Problem::new(1, "q")).unwrap_err();
    match &e {
        SearchError::Scoring { step, branches, .. } => {
            assert_eq!(*step, 1);
            assert_eq!(branches.len(), 1, "the failing branch is named");
        }
        other => panic!("{other}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("step 1 of branch") && msg.contains("cannot judge a 5"),
        "{msg}"
    );
}

#[test]
fn a_prm_guides_the_search_and_its_cost_is_counted_apart() {
    // The mock PRM says '+' with p = 0.9 after a step holding "= 4", else 0.2.
    let prm_model = |ctx: &[Token], out: &mut [f32]| {
        out.fill(-1e9);
        let text: Vec<u8> = ctx.iter().filter(|&&t| t < 256).map(|&t| t as u8).collect();
        let last = text.rsplit(|&b| b == b'|').next().unwrap_or(&[]);
        let p: f32 = if last.windows(3).any(|w| w == b"= 4") {
            0.9
        } else {
            0.2
        };
        out[b'+' as usize] = p.ln();
        out[b'-' as usize] = (1.0 - p).ln();
    };
    let prm_engine = Engine::mock(MockConfig {
        model: Arc::new(prm_model),
        ..Default::default()
    })
    .unwrap();
    let preset = PrmPreset {
        name: "mock".into(),
        prefix: "{question}\n".into(),
        step: "|{step}?".into(),
        after: "{verdict}".into(),
        good: "+".into(),
        bad: "-".into(),
    };
    let prm = Prm::new(prm_engine.clone(), preset).unwrap();
    let cx = Cx::new(engine(0.3, Arc::default())).with_scorer(prm);
    for id in 0..5 {
        let sol = beam(8, 4).solve(&cx, &Problem::new(id, "q")).unwrap();
        assert_eq!(sol.answer.as_deref(), Some("4"));
        let ps = sol.scorer_stats.clone().expect("PRM cost reported");
        // The PRM read the question once and each scored step once, never a whole text.
        assert!(ps.prompt_tokens as usize == "q\n".len());
        assert!(ps.decoded_tokens > 0 && ps.generated_tokens == 0);
        assert_no_rereading(&sol);
    }
}

#[test]
fn max_live_option_sizes_mcts_and_dpts_and_is_checked() {
    use ponder_search::registry::{lookup, Overrides};
    // --n 4 --set width=2 [--set max_live=M], as the CLI gives them.
    let o = |max_live: Option<usize>| {
        let mut o = Overrides::default();
        o.common.n = Some(4);
        o.add_set("width=2").unwrap();
        if let Some(m) = max_live {
            o.add_set(&format!("max_live={m}")).unwrap();
        }
        o
    };
    // MCTS holds max(max_live, W) leaves + W children + the root; DPTS max_live refill
    // nodes + N·W frontier children + the root.
    let seqs = |name, max_live| {
        lookup(name)
            .unwrap()
            .build_with(&o(max_live))
            .unwrap()
            .sequences()
    };
    assert_eq!(seqs("mcts", None), 48 + 2 + 1);
    assert_eq!(seqs("mcts", Some(6)), 6 + 2 + 1);
    assert_eq!(seqs("dpts", None), 32 + 4 * 2 + 1);
    assert_eq!(seqs("dpts", Some(6)), 6 + 4 * 2 + 1);
    for name in ["mcts", "dpts"] {
        let err = lookup(name)
            .unwrap()
            .build_with(&o(Some(1)))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("1 is fewer than the width 2"), "{name}: {err}");
    }
}
