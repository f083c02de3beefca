//! `ponder bench`: the engine's Best-of-N rate against a raw llama-cpp-2 loop and
//! sequential runs.

use super::args::ModelArgs;
use super::spinner;
use anyhow::Result;
use clap::Args;

/// Measure the engine's Best-of-N rate against a raw llama-cpp-2 loop and sequential runs.
#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Branches generated at once (N, in 1..=256).
    #[arg(long, default_value_t = 8)]
    n: usize,
    /// New tokens per branch.
    #[arg(long, default_value_t = 128)]
    tokens: usize,
    /// Rounds; medians are reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// The user message every branch continues (in the model's chat template).
    #[arg(long, default_value = "Write a short story about a lighthouse keeper.")]
    prompt: String,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// Run the three measurements and print their medians (or the whole report as JSON).
pub fn run(a: BenchArgs) -> Result<()> {
    let cfg = ponder::bench::BenchConfig {
        model: a.model.path()?,
        n: a.n,
        tokens: a.tokens,
        repeat: a.repeat,
        threads: a.model.threads,
        question: a.prompt,
    };
    let pb = spinner("benchmarking");
    let r = ponder::bench::run(&cfg, |m| pb.set_message(m.to_string()))?;
    pb.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "{} · N={} · {} new tokens per branch · prompt {} tokens · median of {}\n\
             engine best-of-N   {:>7.1} tok/s\n\
             raw batched loop   {:>7.1} tok/s  (ceiling)\n\
             N sequential runs  {:>7.1} tok/s\n\
             engine / ceiling   {:>7.3}\n\
             engine / sequential{:>7.3}",
            r.model,
            r.n,
            r.tokens,
            r.prompt_tokens,
            r.repeat,
            r.engine_tok_s,
            r.ceiling_tok_s,
            r.sequential_tok_s,
            r.ratio_vs_ceiling,
            r.ratio_vs_sequential
        );
    }
    Ok(())
}
