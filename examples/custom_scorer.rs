//! Plug a custom scorer (a closure) into Best-of-N: here, prefer short solutions that
//! state their answer in a \boxed{}, breaking ties by the model's own confidence.
//!
//! cargo run --release --example custom_scorer -- "What is 15 + 27?"

use ponder::prelude::*;
use ponder::scorers::Sample;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let question = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "What is 15 + 27?".into());
    let mut config = LlamaConfig::new(ponder::models::test_model()?);
    config.n_seq_max = 8;
    let engine = Engine::load(&config)?;

    let boxed_and_brief = |s: &Sample<'_>| {
        let boxed = if s.text.contains("\\boxed{") {
            1.0
        } else {
            0.0
        };
        let confidence = MeanLogprob.score(s).unwrap_or(0.0);
        boxed + confidence - s.logprobs.len() as f64 / 1000.0
    };
    let cx = Cx::new(engine).with_scorer(boxed_and_brief);
    let strategy = BestOfN {
        n: 8,
        max_tokens: 200,
        vote: Vote::Naive,
        ..BestOfN::default()
    };
    let solution = strategy.solve(&cx, &Problem::new(0, question))?;

    println!("answer: {}", solution.answer.as_deref().unwrap_or("(none)"));
    println!(
        "chosen (score {:.3}):\n{}",
        solution.candidates[solution.chosen.unwrap()].score.unwrap(),
        solution.text().unwrap_or("")
    );
    println!(
        "{} tokens generated in {:.1} s",
        solution.stats.generated_tokens,
        solution.stats.wall_ms / 1e3
    );
    Ok(())
}
