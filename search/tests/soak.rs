//! Soak: 10,000 solves of mixed strategies through one mock engine, 64 at a time from
//! threads. Every answer equals the serial answer of the same (problem, strategy), the
//! engine's capacity is back to empty afterwards, and memory stays flat.

use ponder_engine::mock::{ChoiceModel, MockConfig, MockCounters};
use ponder_engine::{Engine, SamplingParams};
use ponder_scorers::ArithmeticVerifier;
use ponder_search::{
    BeamSearch, BestOfN, CertaintyVote, Cx, Mcts, Problem, Solution, Strategy, Vote,
};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

const SOLVES: usize = 10_000;
const THREADS: usize = 64;
const PROBLEMS: u64 = 125;

fn engine(counters: Arc<MockCounters>) -> Engine {
    let model = ChoiceModel::new(&[
        ("First, 2 + 2 = 4.\n\nSo the answer is \\boxed{4}.", 0.5),
        ("First, 2 + 2 = 5.\n\nSo the answer is \\boxed{5}.", 0.3),
        ("Hmm.\n\nIt is 4, \\boxed{4}.", 0.2),
    ]);
    Engine::mock(MockConfig {
        model: Arc::new(model),
        counters,
        n_seq_max: 256,
        n_ctx: 1 << 16,
        ..Default::default()
    })
    .unwrap()
}

fn strategies() -> Vec<Box<dyn Strategy>> {
    let t1 = SamplingParams {
        temperature: 1.0,
        ..Default::default()
    };
    vec![
        Box::new(BestOfN::greedy(64)),
        Box::new(BestOfN {
            n: 4,
            sampling: t1,
            max_tokens: 64,
            vote: Vote::Majority,
            stop: Vec::new(),
        }),
        Box::new(BeamSearch {
            n: 4,
            width: 2,
            sampling: t1,
            max_tokens: 64,
            ..Default::default()
        }),
        Box::new(Mcts {
            iterations: 4,
            width: 2,
            max_live: 4,
            sampling: t1,
            max_tokens: 64,
            ..Default::default()
        }),
        Box::new(CertaintyVote {
            n: 8,
            wave: 4,
            sampling: t1,
            max_tokens: 64,
            ..Default::default()
        }),
    ]
}

/// The chosen answer, each candidate's (answer, tokens), and the generated tokens.
type Outcome = (Option<String>, Vec<(Option<String>, usize)>, u64);

/// What must not depend on what else shared the batches.
fn outcome(s: &Solution) -> Outcome {
    let cands = s
        .candidates
        .iter()
        .map(|c| (c.answer.clone(), c.tokens))
        .collect();
    (s.answer.clone(), cands, s.stats.generated_tokens)
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn ten_thousand_mixed_solves_from_64_threads_match_serial_and_leave_nothing_held() {
    let strategies = strategies();
    let pairs: Vec<(u64, usize)> = (0..PROBLEMS)
        .flat_map(|p| (0..strategies.len()).map(move |s| (p, s)))
        .collect();
    // Serial reference, on an engine of its own.
    let serial_cx = Cx::new(engine(Arc::default())).with_scorer(ArithmeticVerifier::default());
    let serial: Vec<_> = pairs
        .iter()
        .map(|&(p, s)| {
            let sol = strategies[s]
                .solve(&serial_cx, &Problem::new(p, "What is 2 + 2?"))
                .unwrap();
            outcome(&sol)
        })
        .collect();

    let counters = Arc::new(MockCounters::default());
    let cx = Cx::new(engine(counters.clone())).with_scorer(ArithmeticVerifier::default());
    let next = AtomicUsize::new(0);
    let mismatches = AtomicUsize::new(0);
    let rss_early = std::sync::Mutex::new(None);
    std::thread::scope(|sc| {
        for _ in 0..THREADS {
            sc.spawn(|| loop {
                let i = next.fetch_add(1, Relaxed);
                if i >= SOLVES {
                    break;
                }
                if i == SOLVES / 5 {
                    *rss_early.lock().unwrap() = rss_kib();
                }
                let k = i % pairs.len();
                let (p, s) = pairs[k];
                let sol = strategies[s]
                    .solve(&cx, &Problem::new(p, "What is 2 + 2?"))
                    .unwrap_or_else(|e| panic!("solve {i} ({p}, {s}): {e}"));
                if outcome(&sol) != serial[k] {
                    mismatches.fetch_add(1, Relaxed);
                }
            });
        }
    });
    assert_eq!(mismatches.load(Relaxed), 0, "answers differ from serial");
    // Nothing held: every sequence released, every cell free.
    let cap = cx.engine.capacity().unwrap();
    assert_eq!(cap.used, 0, "{cap:?}");
    assert_eq!(cap.reserved, 0, "{cap:?}");
    assert_eq!(cap.free_seqs, cap.n_seq_max, "{cap:?}");
    assert_eq!(counters.live_seqs.load(Relaxed), 0);
    assert!(counters.peak_seqs.load(Relaxed) > 8, "solves overlapped");
    // Memory flat: the last 8,000 solves grew the process by less than 16 MiB.
    let early = *rss_early.lock().unwrap();
    if let (Some(early), Some(late)) = (early, rss_kib()) {
        assert!(
            late < early + 16 * 1024,
            "RSS grew from {early} KiB to {late} KiB"
        );
    }
}
