//! Load a model, solve a problem with Best-of-N from Rust code, print the answer and stats.
//!
//! cargo run --release --example solve -- "What is 12 * 7?"   (optionally: --model PATH)

use ponder::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let question = args.next().unwrap_or_else(|| "What is 12 * 7?".into());
    let model = match (args.next().as_deref(), args.next()) {
        (Some("--model"), Some(p)) => p.into(),
        _ => ponder::models::test_model()?, // SmolLM2-135M, fetched once and cached
    };

    let mut config = LlamaConfig::new(model);
    config.n_seq_max = 8;
    config.n_ctx = 4096;
    let engine = Engine::load(&config)?;

    let mut cx = Cx::new(engine);
    cx.seed = 42;
    let strategy = BestOfN {
        n: 8,
        max_tokens: 256,
        vote: Vote::Majority,
        ..BestOfN::default()
    };
    let solution = strategy.solve(&cx, &Problem::new(0, question))?;

    println!("answer: {}", solution.answer.as_deref().unwrap_or("(none)"));
    for (i, c) in solution.candidates.iter().enumerate() {
        println!(
            "  #{i} {:>10} score {:.3} ({} tokens)",
            c.answer.as_deref().unwrap_or("-"),
            c.score.unwrap_or(0.0),
            c.tokens
        );
    }
    let s = &solution.stats;
    println!(
        "prompt tokens {} · generated {} · decode calls {} · mean batch {:.1} · {:.1} s",
        s.prompt_tokens,
        s.generated_tokens,
        s.decode_calls,
        s.mean_batch_occupancy,
        s.wall_ms / 1e3
    );
    Ok(())
}
