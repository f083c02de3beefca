//! Step-level search from the library: beam search, DVTS and MCTS on one question, guided
//! by the arithmetic verifier blended with a little of the model's own confidence.
//!
//! cargo run --release --example step_search -- "A shop sells 3 pens for $2. How much do 12 pens cost?"

use ponder::prelude::*;
use ponder::scorers::{ArithmeticVerifier, Weighted};
use ponder::search::{BeamSearch, Dvts, Mcts};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let question = std::env::args().nth(1).unwrap_or_else(|| {
        "Tom has 3 apples and buys 4 more. How many apples does he have?".into()
    });
    let mut cfg = LlamaConfig::new(ponder::models::test_model()?);
    cfg.n_seq_max = 64;
    cfg.n_ctx = 16384;
    let engine = Engine::load(&cfg)?;
    // The verifier decides; the mean-logprob term (weight 0.1) breaks its ties.
    let scorer = Weighted::new()
        .with(1.0, ArithmeticVerifier::default())
        .with(0.1, MeanLogprob);
    let cx = Cx::new(engine).with_scorer(scorer);
    let searches: Vec<Box<dyn Strategy>> = vec![
        Box::new(BeamSearch {
            n: 8,
            width: 4,
            max_tokens: 256,
            ..BeamSearch::default()
        }),
        Box::new(Dvts {
            n: 8,
            width: 4,
            max_tokens: 256,
            ..Dvts::default()
        }),
        Box::new(Mcts {
            iterations: 8,
            width: 3,
            max_tokens: 256,
            ..Mcts::default()
        }),
    ];
    for s in &searches {
        let sol = s.solve(&cx, &Problem::new(0, question.clone()))?;
        let st = &sol.stats;
        println!(
            "{:<12} answer {:<8} {} candidates · {} generated, {} decoded (prompt {}) · {} forks · {:.1} s",
            sol.strategy,
            sol.answer.as_deref().unwrap_or("-"),
            sol.candidates.len(),
            st.generated_tokens,
            st.decoded_tokens,
            st.prompt_tokens,
            st.forks,
            st.wall_ms / 1e3
        );
    }
    Ok(())
}
