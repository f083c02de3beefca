//! The "stop overthinking" strategies on the mock backend: speculative rejection's rounds,
//! length-filtered voting, probe early exit and certainty-stopped voting, with expectations
//! computed by hand from the mock's exact behaviour.

use ponder_engine::mock::{ChoiceModel, MockConfig, MOCK_EOG};
use ponder_engine::{Engine, SamplingParams, Token};
use ponder_scorers::Sample;
use ponder_search::{
    registry::build, BestOfN, CertaintyVote, Cx, EarlyExit, LengthVote, Problem, SpecRejection,
    Strategy, Vote,
};
use std::sync::Arc;

fn cx_with(model: impl ponder_engine::mock::MockModel + 'static) -> Cx {
    Cx::new(
        Engine::mock(MockConfig {
            model: Arc::new(model),
            ..Default::default()
        })
        .unwrap(),
    )
}

fn t1() -> SamplingParams {
    SamplingParams {
        temperature: 1.0,
        ..Default::default()
    }
}

/// Two 15-byte texts (16 tokens with the end token); "A…" is right.
fn ab(p_a: f32) -> Cx {
    cx_with(ChoiceModel::new(&[
        ("A: so \\boxed{4}", p_a),
        ("B: so \\boxed{5}", 1.0 - p_a),
    ]))
    .with_scorer(|s: &Sample<'_>| if s.text.starts_with('A') { 1.0 } else { 0.0 })
}

#[test]
fn keep_counts_round_half_up_and_never_reach_zero() {
    let s = |alpha| SpecRejection {
        alpha,
        ..SpecRejection::default()
    };
    assert_eq!(s(0.5).keep_count(8), 4);
    assert_eq!(s(0.5).keep_count(5), 3); // round(2.5)
    assert_eq!(s(0.5).keep_count(1), 1);
    assert_eq!(s(0.25).keep_count(8), 6);
    assert_eq!(s(0.0).keep_count(7), 7);
    assert_eq!(s(0.9).keep_count(3), 1); // round(0.3) = 0, kept at 1
}

#[test]
fn speculative_rejection_halves_the_pool_each_round() {
    let cx = ab(0.3);
    let sr = SpecRejection {
        n: 8,
        alpha: 0.5,
        round_tokens: Some(4),
        sampling: t1(),
        max_tokens: 64,
        ..SpecRejection::default()
    };
    for id in 0..5 {
        let (sol, rounds) = sr.search(&cx, &Problem::new(id, "q")).unwrap();
        let shape: Vec<(usize, usize)> = rounds.iter().map(|r| (r.pool, r.kept)).collect();
        // 16 tokens per sample, 4 per round: 8 → 4 → 2 → 1, and the survivor finishes.
        assert_eq!(shape, vec![(8, 4), (4, 2), (2, 1), (1, 1)]);
        // 8·4 + 4·4 + 2·4 + 1·4 tokens instead of Best-of-8's 8·16 = 128.
        assert_eq!(sol.stats.generated_tokens, 60);
        assert_eq!(sol.candidates.len(), 1);
        // The first round already ranks an "A" sample first whenever one was drawn.
        let p = BestOfN {
            n: 8,
            sampling: t1(),
            max_tokens: 64,
            vote: Vote::Naive,
            stop: vec![],
        }
        .solve(&cx, &Problem::new(id, "q"))
        .unwrap();
        assert_eq!(sol.answer, p.answer, "problem {id}: same best as Best-of-8");
    }
}

#[test]
fn speculative_rejection_with_alpha_zero_is_best_of_n() {
    let cx = ab(0.3);
    let sr = SpecRejection {
        n: 8,
        alpha: 0.0,
        round_tokens: Some(3),
        sampling: t1(),
        max_tokens: 64,
        ..SpecRejection::default()
    };
    let bon = BestOfN {
        n: 8,
        sampling: t1(),
        max_tokens: 64,
        vote: Vote::Naive,
        stop: vec![],
    };
    for id in 0..4 {
        let p = Problem::new(id, "q");
        let a = sr.solve(&cx, &p).unwrap();
        let b = bon.solve(&cx, &p).unwrap();
        // Same branches, same seeds, rounds only pause them: the very same samples.
        let mut ta: Vec<&str> = a.candidates.iter().map(|c| c.text.as_str()).collect();
        let mut tb: Vec<&str> = b.candidates.iter().map(|c| c.text.as_str()).collect();
        ta.sort();
        tb.sort();
        assert_eq!(ta, tb);
        assert_eq!(a.answer, b.answer);
        assert_eq!(a.stats.generated_tokens, b.stats.generated_tokens);
    }
}

#[test]
fn rounds_grow_to_fill_the_kv_budget() {
    // Budget 64 cells for 8 samples: round 1 gives each 64/8 = 8 tokens; 4 survivors hold
    // 32, so round 2 gives each (64 − 32)/4 = 8 more; then every sample has ended (16 tokens).
    let cx = ab(0.5);
    let sr = SpecRejection {
        n: 8,
        kv_budget: Some(64),
        min_round: 1,
        sampling: t1(),
        max_tokens: 64,
        ..SpecRejection::default()
    };
    let (sol, rounds) = sr.search(&cx, &Problem::new(0, "q")).unwrap();
    let shape: Vec<(usize, usize, usize)> =
        rounds.iter().map(|r| (r.pool, r.kept, r.tokens)).collect();
    assert_eq!(shape, vec![(8, 4, 8), (4, 2, 8)]);
    assert_eq!(sol.stats.generated_tokens, 8 * 8 + 4 * 8);
    assert_eq!(sol.candidates.len(), 2);
    // The default budget is a Best-of-(n/4) at full length.
    assert_eq!(
        SpecRejection {
            n: 32,
            max_tokens: 320,
            kv_budget: None,
            ..sr
        }
        .kv_budget(),
        8 * 320
    );
}

/// The main trace is endless 'a's; after "\boxed{" a probe writes a digit and "}".
/// `digit` picks the digit from the probe's position in the text.
fn prober(digit: fn(usize) -> u8, hesitate: bool) -> impl Fn(&[Token], &mut [f32]) + Send + Sync {
    move |ctx: &[Token], out: &mut [f32]| {
        out.fill(-1e9);
        let all: Vec<u8> = ctx.iter().filter(|&&t| t < 256).map(|&t| t as u8).collect();
        // Only the completion counts (the system prompt mentions \boxed{} too).
        let start = all
            .windows(22)
            .rposition(|w| w == b"<|im_start|>assistant\n")
            .map_or(0, |p| p + 22);
        let bytes = &all[start..];
        let marker = b"\\boxed{";
        let pos = bytes.windows(marker.len()).rposition(|w| w == marker);
        let next = match pos {
            None => b'a',
            Some(p) => {
                let after = &bytes[p + marker.len()..];
                let d = digit(p);
                let say: Vec<u8> = if hesitate {
                    [b"hmm ".as_slice(), &[d, b'}']].concat()
                } else {
                    vec![d, b'}']
                };
                match say.get(after.len()) {
                    Some(&b) => b,
                    None => {
                        out[MOCK_EOG as usize] = 0.0;
                        return;
                    }
                }
            }
        };
        out[next as usize] = 0.0;
    }
}

fn early(chunk: usize, window: usize, max_tokens: usize) -> EarlyExit {
    EarlyExit {
        chunk,
        window,
        max_tokens,
        sampling: SamplingParams::greedy(),
        ..EarlyExit::default()
    }
}

#[test]
fn early_exit_stops_after_w_agreeing_probes() {
    let cx = cx_with(prober(|_| b'7', false));
    let sol = early(16, 3, 256).solve(&cx, &Problem::new(0, "q")).unwrap();
    assert_eq!(sol.answer.as_deref(), Some("7"));
    let c = &sol.candidates[0];
    // Three probes at 16, 32 and 48 tokens agree: the trace stops at 48 of 256.
    assert_eq!(c.tokens, 48);
    assert!(c.text.ends_with("\\boxed{7} \\]"), "{}", c.text);
    // Probe tokens are paid for (prompt + 48 + 3 probes of PROBE + "7}"), then dropped.
    assert!(sol.stats.generated_tokens >= 48 + 3 * 2);
}

#[test]
fn early_exit_never_fires_on_disagreement_or_hesitation() {
    // Probe answers alternate 7, 8, 7, …: never W agreeing in a row.
    let alternating = prober(|p| if (p / 16) % 2 == 0 { b'7' } else { b'8' }, false);
    let sol = early(16, 2, 128)
        .solve(&cx_with(alternating), &Problem::new(0, "q"))
        .unwrap();
    assert_eq!(sol.candidates[0].tokens, 128, "ran to the budget");
    // Agreeing but hesitant ("hmm 7}"): no exit either.
    let sol = early(16, 2, 96)
        .solve(&cx_with(prober(|_| b'7', true)), &Problem::new(0, "q"))
        .unwrap();
    assert_eq!(sol.candidates[0].tokens, 96);
}

#[test]
fn certainty_vote_stops_at_the_first_unanimous_wave() {
    let sure = cx_with(ChoiceModel::new(&[("so \\boxed{4}", 1.0)]));
    let cv = CertaintyVote {
        n: 16,
        wave: 4,
        sampling: t1(),
        max_tokens: 32,
        ..CertaintyVote::default()
    };
    let sol = cv.solve(&sure, &Problem::new(0, "q")).unwrap();
    assert_eq!(sol.candidates.len(), 4, "certaindex 1 after one wave");
    assert_eq!(sol.answer.as_deref(), Some("4"));
    // Three equally likely answers: certaindex stays low, all 16 are drawn.
    let unsure = cx_with(ChoiceModel::new(&[
        ("so \\boxed{4}", 1.0),
        ("so \\boxed{5}", 1.0),
        ("so \\boxed{6}", 1.0),
    ]));
    for id in 0..3 {
        let sol = cv.solve(&unsure, &Problem::new(id, "q")).unwrap();
        assert_eq!(sol.candidates.len(), 16, "problem {id}");
    }
}

#[test]
fn length_vote_runs_on_samples() {
    let cx = cx_with(ChoiceModel::new(&[
        ("one line \\boxed{4}", 1.0),
        ("a\nb\nc\nd\ne \\boxed{5}", 1.0),
    ]));
    let lv = LengthVote {
        n: 8,
        sampling: t1(),
        max_tokens: 64,
        ..LengthVote::default()
    };
    let sol = lv.solve(&cx, &Problem::new(0, "q")).unwrap();
    assert_eq!(sol.candidates.len(), 8);
    assert!(sol.answer.is_some());
}

#[test]
fn bad_settings_are_named() {
    use serde_json::json;
    let cases = [
        ("spec-rejection", json!({"alpha": 1.0}), "alpha"),
        ("spec-rejection", json!({"alpha": -0.1}), "[0, 1)"),
        ("length-vote", json!({"width": 0}), "bucket width D"),
        ("length-vote", json!({"keep": 0}), "buckets kept K"),
        (
            "early-exit",
            json!({"chunk": 600, "max_tokens": 512}),
            "larger than the budget",
        ),
        (
            "certainty-vote",
            json!({"threshold": 0.0}),
            "certainty threshold",
        ),
        ("st-bon", json!({"tau_coeff": 0.0}), "tau coefficient"),
    ];
    for (name, settings, want) in cases {
        let err = build(name, &settings).err().expect(name).to_string();
        assert!(err.starts_with(&format!("{name}: ")), "{name}: {err}");
        assert!(err.contains(want), "{name}: {err}");
    }
}

#[test]
fn st_bon_stops_all_but_one_sample_tau_tokens_after_they_diverge() {
    use ponder_search::StBoN;
    // Six 14-byte texts that share "So " and differ at their 4th byte; 15 tokens with EOG.
    let texts: Vec<String> = "abcdef"
        .chars()
        .map(|ch| format!("So {ch}{}", ch.to_string().repeat(10)))
        .collect();
    let choices: Vec<(&str, f32)> = texts.iter().map(|t| (t.as_str(), 1.0)).collect();
    let counters = Arc::new(ponder_engine::mock::MockCounters::default());
    let engine = Engine::mock(MockConfig {
        model: Arc::new(ChoiceModel::new(&choices)),
        n_embd: 8,
        counters: counters.clone(),
        ..Default::default()
    })
    .unwrap();
    let cx = Cx::new(engine);
    let st = StBoN {
        n: 3,
        chunk: 2,
        sampling: t1(),
        max_tokens: 64,
        final_layer: true,
        ..StBoN::default()
    };
    let mut diverged = 0;
    for id in 0..8 {
        let sol = st.solve(&cx, &Problem::new(id, "q")).unwrap();
        assert_eq!(sol.candidates.len(), 1, "only the winner is finished");
        assert_eq!(sol.candidates[0].tokens, 15);
        // Three distinct texts: c = 4, τ = 4, all three stop at 8 tokens and the winner
        // finishes its 15: 3·8 + 7 = 31 tokens. Two alike never diverge: c is where they
        // end (15) and all three run to the end: 45.
        let g = sol.stats.generated_tokens;
        assert!(g == 31 || g == 45, "problem {id}: {g}");
        diverged += (g == 31) as usize;
    }
    assert!(
        diverged >= 2,
        "{diverged}/8 problems drew three distinct texts"
    );
    cx.engine.query(|_| ()).unwrap();
    assert_eq!(
        counters
            .live_seqs
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[test]
fn st_bon_never_writes_past_a_sample_that_ended_first() {
    use ponder_search::StBoN;
    // Samples of unequal lengths: "So a" ends (EOG) at its 5th token, while the other
    // still runs to τ past the divergence (c = 4). The ended one gets cap 0 from then on
    // and must stay ended: no token after its end of generation.
    let engine = Engine::mock(MockConfig {
        model: Arc::new(ChoiceModel::new(&[
            ("So a", 1.0),
            ("So bbbbbbbbbbbbbbbbbbbb", 1.0),
        ])),
        n_embd: 8,
        ..Default::default()
    })
    .unwrap();
    let cx = Cx::new(engine);
    let st = StBoN {
        n: 2,
        chunk: 2,
        sampling: t1(),
        max_tokens: 64,
        final_layer: true,
        ..StBoN::default()
    };
    let mut short = 0;
    for id in 0..8 {
        let sol = st.solve(&cx, &Problem::new(id, "q")).unwrap();
        let c = &sol.candidates[0];
        // Its text and exactly one end token.
        assert_eq!(c.tokens, c.text.len() + 1, "problem {id}: {c:?}");
        short += (c.text == "So a") as usize;
    }
    assert!(short > 0, "some winner is the short sample");
}

#[test]
fn st_bon_needs_hidden_states_and_a_positive_tau() {
    use ponder_search::StBoN;
    let cx = ab(0.5);
    let err = StBoN::default()
        .solve(&cx, &Problem::new(0, "q"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs every layer's hidden states"), "{err}");
    let final_layer = StBoN {
        final_layer: true,
        ..StBoN::default()
    };
    let err = final_layer
        .solve(&cx, &Problem::new(0, "q"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs final-layer hidden states"), "{err}");
}

/// Layer states for the mock: state l of token t is one-hot(t mod 8) scaled by l + 1,
/// so the chain-of-embedding feature depends on the text.
#[derive(Debug)]
struct MockLayers;

impl ponder_engine::LayerStates for MockLayers {
    fn layer_states(&self, tokens: &[Token]) -> ponder_engine::Result<Vec<Vec<f32>>> {
        Ok((0..4)
            .map(|l| {
                let mut v = vec![0.0f32; tokens.len() * 8];
                for (i, &t) in tokens.iter().enumerate() {
                    v[i * 8 + (t as usize % 8)] = (l + 1) as f32;
                    v[i * 8 + ((t as usize + l) % 8)] += 0.5;
                }
                v
            })
            .collect())
    }
    fn n_embd(&self) -> usize {
        8
    }
}

#[test]
fn faithful_st_bon_uses_every_layer_and_needs_no_engine_hidden_states() {
    use ponder_search::StBoN;
    let texts: Vec<String> = "abcdef"
        .chars()
        .map(|ch| format!("So {ch}{}", ch.to_string().repeat(10)))
        .collect();
    let choices: Vec<(&str, f32)> = texts.iter().map(|t| (t.as_str(), 1.0)).collect();
    let mut cx = cx_with(ChoiceModel::new(&choices)); // no hidden states on this engine
    cx.layers = Some(Arc::new(MockLayers));
    let st = StBoN {
        n: 3,
        chunk: 2,
        sampling: t1(),
        max_tokens: 64,
        ..StBoN::default()
    };
    for id in 0..4 {
        let sol = st.solve(&cx, &Problem::new(id, "q")).unwrap();
        assert_eq!(sol.strategy, "st-bon-3");
        assert_eq!(sol.candidates.len(), 1);
        let g = sol.stats.generated_tokens;
        assert!(
            g == 31 || g == 45,
            "the same truncation as the final-layer variant: {g}"
        );
    }
}
