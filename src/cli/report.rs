//! What a solve prints: the human report and the JSON object.

use ponder::engine::{Engine, Stats};
use ponder::search::Solution;

/// One JSON object with the answer, every candidate and what it cost.
pub fn json(sol: &Solution, engine: &Engine, seed: u64) -> serde_json::Value {
    serde_json::json!({
        "answer": sol.answer,
        "strategy": sol.strategy,
        "model": engine.info().name,
        "seed": seed,
        "chosen": sol.chosen,
        "text": sol.text(),
        "truncated": sol.truncated,
        "candidates": sol.candidates,
        "stats": sol.stats,
        "scorer_stats": sol.scorer_stats,
        "scoring_ms": sol.scoring_ms,
        "draft": sol.draft,
        "prompt_budget": sol.prompt_budget,
        "stages": sol.stages,
    })
}

/// The human-readable report.
pub fn print(sol: &Solution) {
    println!(
        "answer: {}",
        sol.answer.as_deref().unwrap_or("(none found)")
    );
    println!(
        "strategy: {}{}",
        sol.strategy,
        if sol.truncated {
            " (cut short by the budget)"
        } else {
            ""
        }
    );
    if let Some(text) = sol.text() {
        println!(
            "\n--- chosen solution (candidate #{}) ---\n{}\n",
            sol.chosen.unwrap_or(0),
            text.trim()
        );
    }
    if let [only] = &sol.candidates[..] {
        if let Some(e) = &only.error {
            println!("program error: {e}\n");
        }
    }
    if sol.candidates.len() > 1 {
        println!("--- candidates ---");
        for (i, c) in sol.candidates.iter().enumerate() {
            println!(
                "{} #{i:<3} answer={:<12} score={:.3}  tokens={:<4} finish={}",
                if Some(i) == sol.chosen { "*" } else { " " },
                c.answer.as_deref().unwrap_or("-"),
                c.score.unwrap_or(f64::NAN),
                c.tokens,
                c.finish
                    .as_ref()
                    .map(|f| format!("{f:?}").to_lowercase())
                    .unwrap_or_default(),
            );
            if let Some(e) = &c.error {
                println!("       error: {e}");
            }
        }
        println!();
    }
    print_stats("stats", &sol.stats);
    if sol.scoring_ms > 0.0 {
        println!(
            "scoring {:.2} s (inside the wall time above)",
            sol.scoring_ms / 1e3
        );
    }
    if let Some(s) = &sol.scorer_stats {
        print_stats("scorer model", s);
    }
    if let Some(d) = &sol.draft {
        println!(
            "--- draft (rsd) ---\n{} of {} steps accepted · acceptance rate {:.2} (draft tokens kept / generated) · target generated {}",
            d.accepted_steps, d.steps, d.acceptance_rate, d.target_generated
        );
        print_stats("draft model", &d.stats);
    }
    if let Some(b) = &sol.prompt_budget {
        let how = if b.estimated {
            "estimated by the model"
        } else {
            "the fallback: the estimate held no number"
        };
        println!(
            "--- prompt budget ---
{} tokens ({how})",
            b.tokens
        );
    }
    if !sol.stages.is_empty() {
        println!("--- cascade stages ---");
        for (i, st) in sol.stages.iter().enumerate() {
            println!(
                "{}. {} · {:.0}% of its candidates agree · {} tokens · {:.2} s{}",
                i + 1,
                st.strategy,
                100.0 * st.agreement,
                st.generated_tokens,
                st.wall_ms / 1e3,
                if st.stood {
                    " · its answer stood"
                } else {
                    " · escalated"
                }
            );
        }
    }
}

/// One line of costs under a title.
pub fn print_stats(title: &str, s: &Stats) {
    println!(
        "--- {title} ---\nprompt tokens {} · generated {} · decoded {} · decode calls {} · mean batch {:.1} · forks {} · {:.2} s ({:.0} generated tok/s)",
        s.prompt_tokens,
        s.generated_tokens,
        s.decoded_tokens,
        s.decode_calls,
        s.mean_batch_occupancy,
        s.forks,
        s.wall_ms / 1e3,
        s.generated_tokens as f64 / (s.wall_ms / 1e3).max(1e-9),
    );
}
