//! Best-of-N cost: on the mock backend (the engine's and strategy's own overhead per
//! generated token, no model compute) and on SmolLM2-135M (real generated tokens/s).
//!
//! cargo bench --bench best_of_n            (mock and real)
//! cargo bench --bench best_of_n -- mock    (mock only, no model needed)

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ponder::engine::llama::LlamaConfig;
use ponder::engine::mock::MockConfig;
use ponder::prelude::*;
use std::time::Duration;

fn strategy(n: usize, max_tokens: usize) -> BestOfN {
    BestOfN {
        n,
        max_tokens,
        vote: Vote::Majority,
        ..BestOfN::default()
    }
}

fn mock(c: &mut Criterion) {
    let mut g = c.benchmark_group("best_of_n/mock");
    for n in [1usize, 8, 32] {
        let engine = Engine::mock(MockConfig {
            n_seq_max: 64,
            ..Default::default()
        })
        .unwrap();
        let cx = Cx::new(engine);
        let s = strategy(n, 64);
        // Tokens per solve are fixed by the seed: measure once for the throughput unit.
        let tokens = s
            .solve(&cx, &Problem::new(0, "q"))
            .unwrap()
            .stats
            .generated_tokens;
        g.throughput(Throughput::Elements(tokens));
        g.bench_function(format!("n{n}_64tok"), |b| {
            b.iter(|| s.solve(&cx, &Problem::new(0, "q")).unwrap())
        });
    }
    g.finish();
}

fn smollm2(c: &mut Criterion) {
    let Ok(model) = ponder::models::test_model() else {
        eprintln!("SmolLM2 unavailable: skipping the real-model bench");
        return;
    };
    let mut cfg = LlamaConfig::new(model);
    cfg.n_seq_max = 8;
    cfg.n_ctx = 4096;
    let engine = Engine::load(&cfg).unwrap();
    let cx = Cx::new(engine);
    let q = Problem::new(
        0,
        "Tom has 3 apples and buys 4 more. How many apples does he have?",
    );
    let mut g = c.benchmark_group("best_of_n/smollm2");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    for n in [1usize, 8] {
        let s = strategy(n, 32);
        let tokens = s.solve(&cx, &q).unwrap().stats.generated_tokens;
        g.throughput(Throughput::Elements(tokens));
        g.bench_function(format!("n{n}_32tok"), |b| {
            b.iter(|| s.solve(&cx, &q).unwrap())
        });
    }
    g.finish();
}

// `criterion_group!` defines a `pub fn benches()` and passes no attributes on to it; in a
// private module it is no public item of the bench crate (which `missing_docs` would flag).
mod group {
    use super::*;
    criterion_group!(benches, mock, smollm2);
}
criterion_main!(group::benches);
