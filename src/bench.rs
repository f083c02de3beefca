//! `ponder bench`: the engine's Best-of-N generation rate next to a plain llama-cpp-2
//! batched loop of the same shape (the ceiling) and N sequential single-branch runs,
//! measured side by side in one run, with medians over repeats.

#[cfg(feature = "llama")]
pub use real::*;

/// One measured configuration.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchReport {
    /// The model's name as its GGUF metadata gives it.
    pub model: String,
    /// Branches generated at once (N of the Best-of-N).
    pub n: usize,
    /// New tokens per branch (end of generation ignored, so every run makes N × tokens).
    pub tokens: usize,
    /// Length of the chat-formatted prompt, in tokens (prefilled once, not timed).
    pub prompt_tokens: usize,
    /// Rounds measured; each runs the three measurements once, interleaved.
    pub repeat: usize,
    /// The engine's Best-of-N rate: median over the repeats, generated tokens per second
    /// (prefill excluded).
    pub engine_tok_s: f64,
    /// The plain llama-cpp-2 batched loop's rate (the ceiling): median, tokens/s.
    pub ceiling_tok_s: f64,
    /// N single-branch runs one after another through the engine: median, tokens/s.
    pub sequential_tok_s: f64,
    /// `engine_tok_s / ceiling_tok_s` (1.0: as fast as the plain loop).
    pub ratio_vs_ceiling: f64,
    /// `engine_tok_s / sequential_tok_s` (the gain from batching the branches).
    pub ratio_vs_sequential: f64,
    /// Every round's engine rate (tokens/s), in order.
    pub engine_runs: Vec<f64>,
    /// Every round's ceiling rate (tokens/s), in order.
    pub ceiling_runs: Vec<f64>,
    /// Every round's sequential rate (tokens/s), in order.
    pub sequential_runs: Vec<f64>,
}

/// Median of a non-empty slice.
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

#[cfg(feature = "llama")]
mod real {
    use super::{median, BenchReport};
    use ponder_engine::llama::{ceiling, LlamaConfig};
    use ponder_engine::{Budget, ChatMessage, Engine, GenSpec, PromptFormat, SamplingParams};
    use std::path::PathBuf;
    use std::time::Instant;

    /// What to measure.
    #[derive(Clone, Debug)]
    pub struct BenchConfig {
        /// The GGUF model file.
        pub model: PathBuf,
        /// Branches generated at once, in 1..=256.
        pub n: usize,
        /// New tokens per branch, ≥ 1 (end of generation is ignored).
        pub tokens: usize,
        /// Rounds to measure, ≥ 1 (the report gives medians over them).
        pub repeat: usize,
        /// Compute threads (None: llama.cpp's default, all cores).
        pub threads: Option<i32>,
        /// The user message every branch continues (in the model's chat template).
        pub question: String,
    }

    /// Run the three measurements `repeat` times, interleaved, and report medians.
    pub fn run(cfg: &BenchConfig, mut progress: impl FnMut(&str)) -> anyhow::Result<BenchReport> {
        anyhow::ensure!(cfg.n >= 1 && cfg.n <= 256, "--n must be in 1..=256");
        anyhow::ensure!(cfg.tokens >= 1, "--tokens must be ≥ 1");
        anyhow::ensure!(cfg.repeat >= 1, "--repeat must be ≥ 1");
        let mut lc = LlamaConfig::new(&cfg.model);
        lc.n_seq_max = cfg.n as u32 + 1; // + the root the sequential runs fork from
        lc.threads = cfg.threads;
        lc.n_ctx = (1024 + cfg.n * (cfg.tokens + 8)).next_multiple_of(256) as u32;
        let engine = Engine::load(&lc)?;
        let prompt = engine.format_prompt(
            &PromptFormat::Model,
            &[ChatMessage::new("user", cfg.question.clone())],
        )?;
        let prompt_tokens = engine.tokenize(&prompt, true, engine.info().add_bos)?;
        let spec = GenSpec {
            sampling: SamplingParams {
                temperature: 0.8,
                ..Default::default()
            },
            max_tokens: cfg.tokens,
            stop: Vec::new(),
            ignore_eog: true,
            hidden: false,
        };
        let (mut eng, mut ceil, mut seq) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..cfg.repeat {
            progress(&format!("round {}/{}: ceiling", r + 1, cfg.repeat));
            let c = ceiling(&lc, &prompt_tokens, cfg.n, cfg.tokens, 0.8, r as u32 * 1000)?;
            ceil.push(c.generated_tokens as f64 / c.decode_secs);

            progress(&format!(
                "round {}/{}: engine best-of-{}",
                r + 1,
                cfg.repeat,
                cfg.n
            ));
            let s = engine.session(r as u64, 0, Budget::unlimited());
            let root = s.prefill_tokens(prompt_tokens.clone())?;
            let mut branches = root.fork(cfg.n - 1)?;
            branches.push(root);
            let t = Instant::now();
            s.extend(branches.iter_mut(), &spec)?;
            let secs = t.elapsed().as_secs_f64();
            let generated: usize = branches.iter().map(|b| b.tokens().len()).sum();
            eng.push(generated as f64 / secs);
            drop(branches);

            progress(&format!(
                "round {}/{}: {} sequential",
                r + 1,
                cfg.repeat,
                cfg.n
            ));
            let s = engine.session(r as u64, 1, Budget::unlimited());
            let root = s.prefill_tokens(prompt_tokens.clone())?;
            let (mut total, mut secs) = (0usize, 0f64);
            for _ in 0..cfg.n {
                let mut b = root.fork(1)?.pop().expect("one fork");
                let t = Instant::now();
                b.extend(&spec)?;
                secs += t.elapsed().as_secs_f64();
                total += b.tokens().len();
            }
            seq.push(total as f64 / secs);
        }
        let (e, c, s) = (median(&eng), median(&ceil), median(&seq));
        Ok(BenchReport {
            model: engine.info().name.clone(),
            n: cfg.n,
            tokens: cfg.tokens,
            prompt_tokens: prompt_tokens.len(),
            repeat: cfg.repeat,
            engine_tok_s: e,
            ceiling_tok_s: c,
            sequential_tok_s: s,
            ratio_vs_ceiling: e / c,
            ratio_vs_sequential: e / s,
            engine_runs: eng,
            ceiling_runs: ceil,
            sequential_runs: seq,
        })
    }
}

/// One strategy's cost over a set of problems, measured next to the others.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StrategyCost {
    /// The strategy's report name.
    pub strategy: String,
    /// Problems solved.
    pub problems: usize,
    /// Median over problems of wall milliseconds per generated (policy) token.
    pub ms_per_token: f64,
    /// Its ratio to the first strategy's median (the baseline).
    pub ratio_vs_baseline: f64,
    /// Policy tokens generated over all problems.
    pub generated_tokens: u64,
    /// Wall time over all problems, in ms.
    pub wall_ms: f64,
    /// Median over problems of the share of wall time spent in the scorer.
    pub scorer_share: f64,
    /// Tokens the scorer's model evaluated (PRM / judge), summed; None where the strategy
    /// does not report them (Best-of-N scores whole texts in one call).
    pub scorer_tokens: Option<u64>,
    /// Mean sequences per policy decode call, over all problems' calls.
    pub mean_batch: f64,
    /// Share of the problems with a gold answer that it answered right, in [0, 1]
    /// (None: no problem had one).
    pub accuracy: Option<f64>,
    /// Every problem's ms per token, in order.
    pub runs: Vec<f64>,
}

/// Solve every problem with every strategy, problem-major (each problem's strategies
/// run back to back, so machine drift hits all alike), one problem at a time.
pub fn compare_strategies(
    cx: &ponder_search::Cx,
    strategies: &[Box<dyn ponder_search::Strategy>],
    problems: &[(ponder_search::Problem, Option<String>)],
    mut progress: impl FnMut(&str),
) -> Result<Vec<StrategyCost>, ponder_search::SearchError> {
    let mut runs: Vec<Vec<ponder_search::Solution>> =
        strategies.iter().map(|_| Vec::new()).collect();
    for (i, (p, _)) in problems.iter().enumerate() {
        for (k, s) in strategies.iter().enumerate() {
            progress(&format!(
                "problem {}/{}: {}",
                i + 1,
                problems.len(),
                s.name()
            ));
            runs[k].push(s.solve(cx, p)?);
        }
    }
    let mut out: Vec<StrategyCost> = Vec::new();
    for (s, sols) in strategies.iter().zip(&runs) {
        let per_tok: Vec<f64> = sols
            .iter()
            .map(|x| x.stats.wall_ms / x.stats.generated_tokens.max(1) as f64)
            .collect();
        let shares: Vec<f64> = sols
            .iter()
            .map(|x| x.scoring_ms / x.stats.wall_ms.max(1e-9))
            .collect();
        let graded: Vec<bool> = sols
            .iter()
            .zip(problems)
            .filter_map(|(x, (_, gold))| {
                gold.as_ref().map(|g| {
                    x.answer
                        .as_deref()
                        .is_some_and(|a| ponder_search::answer::equivalent(a, g))
                })
            })
            .collect();
        let ms = median(&per_tok);
        let calls: u64 = sols.iter().map(|x| x.stats.decode_calls).sum();
        let occupied: f64 = sols
            .iter()
            .map(|x| x.stats.mean_batch_occupancy * x.stats.decode_calls as f64)
            .sum();
        out.push(StrategyCost {
            strategy: s.name(),
            problems: sols.len(),
            ms_per_token: ms,
            ratio_vs_baseline: ms / out.first().map_or(ms, |b| b.ms_per_token),
            generated_tokens: sols.iter().map(|x| x.stats.generated_tokens).sum(),
            wall_ms: sols.iter().map(|x| x.stats.wall_ms).sum(),
            scorer_share: median(&shares),
            scorer_tokens: sols
                .iter()
                .map(|x| x.scorer_stats.as_ref().map(|s| s.decoded_tokens))
                .sum(),
            mean_batch: occupied / calls.max(1) as f64,
            accuracy: (!graded.is_empty())
                .then(|| graded.iter().filter(|&&c| c).count() as f64 / graded.len() as f64),
            runs: per_tok,
        });
    }
    Ok(out)
}
