//! Step-level search overhead on the mock backend: time per expanded node (a fork that
//! grows one step and is scored) for beam search, DVTS and MCTS, with Best-of-N at the
//! same N for reference. The mock writes 16-byte steps separated by blank lines, five
//! steps per solution, so the numbers are the engine's and the strategies' own costs.
//!
//! cargo bench --bench search

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ponder::engine::mock::{MockConfig, MOCK_EOG};
use ponder::engine::Token;
use ponder::prelude::*;
use ponder::search::{BeamSearch, Dvts, Mcts};
use std::sync::Arc;
use std::time::Duration;

/// Steps of 16 letters, then "\n\n"; end after 5 steps. Letters come from a hash of the
/// recent context, so branches diverge under sampling.
fn stepper(ctx: &[Token], out: &mut [f32]) {
    out.fill(-30.0);
    let marker = b"<|im_start|>assistant\n";
    let bytes: Vec<u8> = ctx.iter().filter(|&&t| t < 256).map(|&t| t as u8).collect();
    let start = bytes
        .windows(marker.len())
        .rposition(|w| w == marker)
        .map_or(bytes.len(), |p| p + marker.len());
    let done = &bytes[start..];
    let steps = done.windows(2).filter(|w| w == b"\n\n").count();
    let since = done
        .windows(2)
        .rposition(|w| w == b"\n\n")
        .map_or(done.len(), |p| done.len() - p - 2);
    if steps >= 5 {
        out[MOCK_EOG as usize] = 0.0;
    } else if since == 16 || (since == 17 && done.last() == Some(&b'\n')) {
        out[b'\n' as usize] = 0.0;
    } else {
        let h = ctx.len().wrapping_mul(2654435761) ^ ctx.last().copied().unwrap_or(0) as usize;
        for k in 0..4 {
            out[(b'a' as usize) + (h + k * 7) % 26] = -(k as f32) * 0.5;
        }
    }
}

fn bench(c: &mut Criterion) {
    let engine = Engine::mock(MockConfig {
        n_seq_max: 256,
        n_ctx: 65536,
        model: Arc::new(stepper),
        ..Default::default()
    })
    .unwrap();
    let cx = Cx::new(engine);
    let t = SamplingParams::default();
    let strategies: Vec<(&str, Box<dyn Strategy>)> = vec![
        ("best_of_8", Box::new(BestOfN::new(8))),
        (
            "beam_8x4",
            Box::new(BeamSearch {
                n: 8,
                width: 4,
                sampling: t,
                ..Default::default()
            }),
        ),
        (
            "dvts_8x4",
            Box::new(Dvts {
                n: 8,
                width: 4,
                sampling: t,
                ..Default::default()
            }),
        ),
        (
            "mcts_8x4",
            Box::new(Mcts {
                iterations: 8,
                width: 4,
                sampling: t,
                ..Default::default()
            }),
        ),
    ];
    let mut g = c.benchmark_group("search/mock");
    for (name, s) in &strategies {
        // Expanded nodes per solve are fixed by the seed: count them once (forks; for
        // Best-of-N, its branches).
        let sol = s.solve(&cx, &Problem::new(0, "q")).unwrap();
        g.throughput(Throughput::Elements(sol.stats.forks.max(1)));
        g.bench_function(*name, |b| {
            b.iter(|| s.solve(&cx, &Problem::new(0, "q")).unwrap())
        });
    }
    g.finish();
}

// `criterion_group!` defines a `pub fn benches()` and passes no attributes on to it; in a
// private module it is no public item of the bench crate (which `missing_docs` would flag).
mod group {
    use super::*;
    criterion_group! {
        name = benches;
        config = Criterion::default()
            .sample_size(20)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));
        targets = bench
    }
}
criterion_main!(group::benches);
