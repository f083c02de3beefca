//! The `ponder` command line: `solve` one question, `bench` the engine, `fetch-model`.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use ponder::engine::llama::LlamaConfig;
use ponder::engine::{Budget, Engine, PromptFormat, SamplingParams, Stats};
use ponder::eval::dataset::OnBadLine;
use ponder::search::{self, Cx, Problem, Solution, StrategyOptions, Vote};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "ponder",
    version,
    about = "Test-time search and decoding over llama.cpp"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Answer one question with a test-time strategy.
    Solve(SolveArgs),
    /// Measure the engine's Best-of-N rate against a raw llama-cpp-2 loop and sequential runs.
    Bench(BenchArgs),
    /// Run strategies over a dataset: records, summary tables and an accuracy-vs-tokens plot.
    Eval(EvalArgs),
    /// Compare strategies' wall time per generated token on real problems (first is the baseline).
    BenchSearch(BenchSearchArgs),
    /// Download the default model into the cache and print its path.
    FetchModel,
}

#[derive(Args)]
struct ModelArgs {
    /// GGUF model file, or a known model fetched and cached on first use: smollm2
    /// (the default, SmolLM2-135M-Instruct) or qwen2.5-coder-0.5b.
    #[arg(long)]
    model: Option<String>,
    /// KV cells shared by all branches (default: sized from N and --max-tokens).
    #[arg(long)]
    ctx: Option<u32>,
    /// Compute threads (default: all cores).
    #[arg(long)]
    threads: Option<i32>,
    /// Layers to offload to the GPU (builds with --features cuda/metal/vulkan).
    #[arg(long, default_value_t = 0)]
    gpu_layers: u32,
}

impl ModelArgs {
    fn path(&self) -> Result<PathBuf> {
        match &self.model {
            Some(m) => Ok(ponder::models::resolve(m)?),
            None => Ok(ponder::models::default_model()?),
        }
    }
}

#[derive(Args)]
struct RunArgs {
    /// Samples (best-of-n), beams (beam), candidates per step (dvts), paths (mcts).
    #[arg(long, default_value_t = 8)]
    n: usize,
    /// naive | majority | weighted (default: majority for best-of-n and mcts, the best
    /// score for beam and dvts).
    #[arg(long)]
    vote: Option<Vote>,
    /// Beam width M for beam and dvts (keep n/M, expand each M ways; must divide --n);
    /// children per expansion for mcts.
    #[arg(long, default_value_t = 4)]
    beam_width: usize,
    /// Most steps for beam and dvts (default 40; the last runs to the end).
    #[arg(long)]
    iterations: Option<usize>,
    /// Greedy steps looked ahead when scoring a step (beam, dvts).
    #[arg(long, default_value_t = 0)]
    lookahead: usize,
    /// Most steps on an mcts path.
    #[arg(long, default_value_t = 16)]
    max_depth: usize,
    /// mcts PUCT exploration constants.
    #[arg(long, default_value_t = 1.25)]
    puct_c_init: f64,
    #[arg(long, default_value_t = 19652.0)]
    puct_c_base: f64,
    /// mcts and dpts: most leaves (mcts, default 48) or refill nodes (dpts, default 32)
    /// kept alive, each holding a KV sequence; the weakest are released beyond it. Lower
    /// it to solve more problems at once within llama.cpp's 256 sequences.
    #[arg(long)]
    max_live: Option<usize>,
    /// Step delimiter for beam, dvts and mcts (escapes \n and \t understood).
    #[arg(long, default_value = "\\n\\n")]
    step_delimiter: String,
    /// Cut steps every K tokens instead of at a delimiter.
    #[arg(long)]
    step_tokens: Option<usize>,
    /// Longest delimited step, in tokens: a step that runs on without a delimiter is cut
    /// there (beam, dvts, mcts, rsd, dpts, fast-mcts).
    #[arg(long, default_value_t = 256)]
    max_step_tokens: usize,
    /// spec-rejection: share of the pool rejected each round, in [0, 1).
    #[arg(long, default_value_t = 0.5)]
    alpha: f64,
    /// spec-rejection: samples started (default 4 × --n).
    #[arg(long)]
    initial: Option<usize>,
    /// length-vote: bucket width D in reasoning steps (lines).
    #[arg(long, default_value_t = 2)]
    length_width: usize,
    /// length-vote: buckets kept K (lowest answer entropy).
    #[arg(long, default_value_t = 3)]
    length_keep: usize,
    /// early-exit: tokens of reasoning between probes (C).
    #[arg(long, default_value_t = 64)]
    probe_interval: usize,
    /// early-exit: consecutive agreeing probes needed (W).
    #[arg(long, default_value_t = 3)]
    probe_window: usize,
    /// certainty-vote: samples per wave.
    #[arg(long, default_value_t = 4)]
    wave: usize,
    /// certainty-vote: stop once certaindex (1 − H/ln n) reaches this.
    #[arg(long, default_value_t = 0.7)]
    certainty: f64,
    /// st-bon: keep sampling τ = m·c tokens past the divergence step c (m > 0).
    #[arg(long, default_value_t = 1.0)]
    tau_coeff: f64,
    /// st-bon: judge consistency from the final layer only (engine hidden states) instead
    /// of every layer (a second context of the model reads each sample's window once).
    #[arg(long)]
    st_bon_final_layer: bool,
    /// rsd: the small draft model (the --model is the target).
    #[arg(long)]
    draft_model: Option<String>,
    /// rsd: accept a draft step whose score is ≥ δ, in [0, 1].
    #[arg(long, default_value_t = 0.7)]
    threshold: f64,
    /// rsd: what scores a draft step: scorer (the --scorer, e.g. a PRM or judge: the
    /// paper's RSD) or target (the target's geometric-mean probability of the step's
    /// tokens, read in one batch; --scorer is then not used).
    #[arg(long, default_value = "scorer")]
    rsd_reward: search::RsdReward,
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    #[arg(long, default_value_t = 0.0)]
    min_p: f32,
    /// New tokens per sample.
    #[arg(long, default_value_t = 320)]
    max_tokens: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Chat template: model (from the GGUF), a llama.cpp name such as chatml, or raw.
    #[arg(long, default_value = "model")]
    template: PromptFormat,
    /// System prompt ("none" for no system message).
    #[arg(long)]
    system: Option<String>,
    /// Cap on tokens generated over all branches of a problem.
    #[arg(long)]
    budget_tokens: Option<u64>,
    /// How candidates and steps are scored.
    #[arg(long, value_enum, default_value = "logprob")]
    scorer: ScorerKind,
    /// GGUF model for --scorer prm (required) or judge (default: the policy model,
    /// loaded again in its own context).
    #[arg(long)]
    prm: Option<String>,
    /// PRM prompt preset: judge, math-shepherd, rlhflow, or a JSON file
    /// (default: math-shepherd for prm, judge for judge).
    #[arg(long)]
    prm_preset: Option<String>,
    /// How a PRM's step scores become one: last | min | product | mean.
    #[arg(long, default_value = "last")]
    aggregate: ponder::scorers::Aggregate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
enum ScorerKind {
    /// exp(mean token logprob): the model's own confidence.
    Logprob,
    /// Mean KL(uniform ‖ p) over tokens: how peaked the model's distributions were.
    SelfCertainty,
    /// Re-computes every equation of every step; min over steps.
    Verifier,
    /// A process reward model over a GGUF file (--prm, --prm-preset).
    Prm,
    /// An instruct model asked "is this step correct?" (P(Yes) vs P(No)).
    Judge,
}

impl RunArgs {
    /// Validate the cheap things before any model is loaded.
    fn options(&self) -> Result<StrategyOptions> {
        let sampling = SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
        };
        sampling.validate()?;
        if self.max_tokens == 0 {
            bail!("invalid --max-tokens: 0 (must be ≥ 1)");
        }
        if self.n == 0 {
            bail!("invalid --n: 0 (must be ≥ 1)");
        }
        if self.n > 256 {
            bail!(
                "invalid --n: {} (llama.cpp supports at most 256 sequences)",
                self.n
            );
        }
        if self.scorer == ScorerKind::Prm && self.prm.is_none() {
            bail!("--scorer prm needs --prm PATH (a GGUF process reward model); --scorer judge uses the policy model");
        }
        if let Some(p) = &self.prm_preset {
            ponder::scorers::PrmPreset::load(p)?;
        }
        let unescape = |s: &str| s.replace("\\n", "\n").replace("\\t", "\t");
        let steps = search::Steps {
            unit: match self.step_tokens {
                Some(k) => search::StepUnit::Tokens(k),
                None => search::StepUnit::Delimiter(unescape(&self.step_delimiter)),
            },
            max_step_tokens: self.max_step_tokens,
        };
        steps.validate()?;
        Ok(StrategyOptions {
            n: self.n,
            sampling,
            max_tokens: self.max_tokens,
            vote: self.vote,
            width: self.beam_width,
            iterations: self.iterations,
            lookahead: self.lookahead,
            max_depth: self.max_depth,
            c_base: self.puct_c_base,
            c_init: self.puct_c_init,
            max_live: self.max_live,
            steps,
            alpha: self.alpha,
            initial: self.initial,
            length_width: self.length_width,
            length_keep: self.length_keep,
            probe_interval: self.probe_interval,
            probe_window: self.probe_window,
            wave: self.wave,
            certainty: self.certainty,
            tau_coeff: self.tau_coeff,
            layers: None,
            draft: None,
            threshold: self.threshold,
            rsd_reward: self.rsd_reward,
        })
    }

    /// What shapes every strategy's results besides its own settings, for
    /// `settings.json` (the seed is part of each record's key instead).
    fn settings(&self, m: &ModelArgs) -> serde_json::Map<String, serde_json::Value> {
        serde_json::json!({
            "model": ponder::models::file_name(m.model.as_deref()),
            "template": self.template,
            "system": self.system,
            "scorer": self.scorer,
            "prm": self.prm.as_deref().map(|p| ponder::models::file_name(Some(p))),
            "prm_preset": self.prm_preset,
            "aggregate": self.aggregate,
            "budget_tokens": self.budget_tokens,
        })
        .as_object()
        .cloned()
        .unwrap_or_default()
    }

    /// Build the named strategies; for `rsd`, load the draft model first.
    fn strategies(
        &self,
        names: &[String],
        m: &ModelArgs,
        problems: usize,
    ) -> Result<Vec<Box<dyn search::Strategy>>> {
        let mut opts = self.options()?;
        if names.iter().any(|n| n.trim() == "st-bon") && !self.st_bon_final_layer {
            // The faithful variant: every layer's states from a second context.
            let path = m.path()?;
            let probe = ponder::engine::llama::LayerProbe::load(&path, 2048, m.threads)
                .context("loading the layer probe for st-bon")?;
            opts.layers = Some(std::sync::Arc::new(parking_lot::Mutex::new(probe)));
        }
        if names.iter().any(|n| n.trim() == "rsd") {
            if !(0.0..=1.0).contains(&self.threshold) {
                bail!(
                    "invalid --threshold: {} (δ must be in [0, 1])",
                    self.threshold
                );
            }
            let Some(d) = &self.draft_model else {
                bail!("rsd needs a draft model: --draft-model PATH|smollm2|qwen2.5-coder-0.5b (--model is the target)");
            };
            let target = m.path().context("the target model (--model)")?;
            ponder::engine::llama::check_gguf(&target).context("the target model (--model)")?;
            let draft = ponder::models::resolve(d)
                .with_context(|| format!("the draft model (--draft-model {d})"))?;
            ponder::engine::llama::check_gguf(&draft)
                .with_context(|| format!("the draft model (--draft-model {d})"))?;
            if draft == target {
                eprintln!(
                    "warning: the draft and target models are the same file ({}): RSD is pointless",
                    draft.display()
                );
            }
            let scorer_model = matches!(self.scorer, ScorerKind::Prm | ScorerKind::Judge);
            if self.rsd_reward == search::RsdReward::Target && scorer_model {
                eprintln!(
                    "warning: --rsd-reward target scores draft steps with the target: rsd does not use --scorer {:?}",
                    self.scorer
                );
            }
            let dm = ModelArgs {
                model: Some(draft.display().to_string()),
                ctx: None,
                threads: m.threads,
                gpu_layers: m.gpu_layers,
            };
            let engine = load_engine(&dm, problems, 1, 512, self.max_tokens, false)
                .context("loading the draft model")?;
            opts.draft = Some(engine);
        }
        Ok(names
            .iter()
            .map(|s| search::build(s.trim(), &opts))
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// The scorer's own model, if it has one: loaded with room for `seqs` tracks.
    fn scorer_engine(
        &self,
        m: &ModelArgs,
        problems: usize,
        seqs: usize,
        prompt_bytes: usize,
    ) -> Result<Option<Engine>> {
        let path = match (self.scorer, &self.prm) {
            (ScorerKind::Prm | ScorerKind::Judge, Some(p)) => {
                ponder::models::resolve(p).with_context(|| format!("the PRM model {p:?}"))?
            }
            (ScorerKind::Judge, None) => m.path()?,
            _ => return Ok(None),
        };
        let prm_args = ModelArgs {
            model: Some(path.display().to_string()),
            ctx: None,
            threads: m.threads,
            gpu_layers: m.gpu_layers,
        };
        // One track per live node plus each problem's root.
        load_engine(
            &prm_args,
            problems,
            (seqs + 1).min(256 / problems.max(1)),
            prompt_bytes + 512,
            self.max_tokens + 64,
            false,
        )
        .map(Some)
        .context("loading the PRM/judge model")
    }

    fn cx(&self, engine: Engine, scorer_engine: Option<Engine>) -> Result<Cx> {
        let mut cx = Cx::new(engine);
        cx.format = self.template.clone();
        cx.seed = self.seed;
        match self.system.as_deref() {
            Some("none") => cx.system = None,
            Some(s) => cx.system = Some(s.to_string()),
            None => {}
        }
        cx.budget = Budget {
            max_new_tokens: self.budget_tokens,
            ..Budget::default()
        };
        use ponder::scorers as sc;
        cx.scorer = match (self.scorer, scorer_engine) {
            (ScorerKind::Logprob, _) => std::sync::Arc::new(sc::MeanLogprob),
            (ScorerKind::SelfCertainty, _) => std::sync::Arc::new(sc::SelfCertainty),
            (ScorerKind::Verifier, _) => std::sync::Arc::new(sc::ArithmeticVerifier::default()),
            (kind @ (ScorerKind::Prm | ScorerKind::Judge), Some(e)) => {
                let default = if kind == ScorerKind::Prm {
                    "math-shepherd"
                } else {
                    "judge"
                };
                let preset = sc::PrmPreset::load(self.prm_preset.as_deref().unwrap_or(default))?;
                let mut prm = sc::Prm::new(e, preset)?.with_aggregate(self.aggregate);
                if let search::StepUnit::Delimiter(d) = &self.options()?.steps.unit {
                    prm.delimiter = d.clone();
                }
                std::sync::Arc::new(prm)
            }
            (_, None) => bail!("the {:?} scorer needs its model", self.scorer),
        };
        Ok(cx)
    }
}

/// Load the model with room for `problems` concurrent problems of `branches` branches each.
fn load_engine(
    m: &ModelArgs,
    problems: usize,
    branches: usize,
    prompt_bytes: usize,
    max_tokens: usize,
    hidden_states: bool,
) -> Result<Engine> {
    let path = m.path()?;
    let seqs = problems * branches;
    if seqs > 256 {
        bail!("{problems} concurrent problems × {branches} sequences each = {seqs}, more than llama.cpp's 256: lower --concurrency or --n (mcts, dpts: or --max-live)");
    }
    let mut lc = LlamaConfig::new(&path);
    lc.n_seq_max = seqs as u32;
    lc.threads = m.threads;
    lc.gpu_layers = m.gpu_layers;
    lc.hidden_states = hidden_states;
    // Tree searches hold many sequences that share most of their cells: size the cache
    // for at most 32 full-length branches per problem (--ctx overrides).
    lc.n_ctx = m.ctx.unwrap_or_else(|| {
        (problems * (512 + prompt_bytes + branches.min(32) * max_tokens)).next_multiple_of(256)
            as u32
    });
    Engine::load(&lc).with_context(|| format!("loading {}", path.display()))
}

#[derive(Args)]
struct SolveArgs {
    /// The question.
    question: String,
    /// greedy | best-of-n | beam | dvts | mcts | spec-rejection | length-vote | early-exit |
    /// certainty-vote | st-bon
    #[arg(long, default_value = "best-of-n")]
    strategy: String,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    run: RunArgs,
    /// Wall-clock limit in seconds.
    #[arg(long)]
    timeout: Option<f64>,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct EvalArgs {
    /// JSONL dataset (GSM8K, MATH-500 and MultiArith fields are detected).
    #[arg(long)]
    dataset: PathBuf,
    /// Comma-separated strategies, e.g. greedy,best-of-n.
    #[arg(long, default_value = "greedy,best-of-n", value_delimiter = ',')]
    strategies: Vec<String>,
    /// Only the first K problems.
    #[arg(long)]
    limit: Option<usize>,
    /// Output folder (records.jsonl, summary.md/.csv, accuracy_vs_tokens.svg/.png); reruns resume.
    #[arg(long)]
    out: PathBuf,
    /// Problems solved at once (their branches share decode steps).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    #[arg(long)]
    question_field: Option<String>,
    #[arg(long)]
    answer_field: Option<String>,
    /// What to do with a malformed dataset line.
    #[arg(long, value_enum, default_value = "stop")]
    on_bad_line: OnBadLine,
    /// Compare every strategy with this one (its name as recorded, e.g. best-of-8-majority):
    /// accuracy inside its 95% interval, tokens and time as ratios.
    #[arg(long)]
    baseline: Option<String>,
    /// Solve nothing and load no model: summarize every strategy recorded in --out for
    /// these problems.
    #[arg(long)]
    summary_only: bool,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct BenchSearchArgs {
    /// Comma-separated strategies; the first is the baseline of the ratios.
    #[arg(long, default_value = "best-of-n,beam", value_delimiter = ',')]
    strategies: Vec<String>,
    /// JSONL dataset (default: the GSM8K test set shipped in data/).
    #[arg(long, default_value = "data/gsm8k/test.jsonl")]
    dataset: PathBuf,
    /// Problems (the first K of the dataset).
    #[arg(long, default_value_t = 6)]
    problems: usize,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    run: RunArgs,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long, default_value_t = 8)]
    n: usize,
    /// New tokens per branch.
    #[arg(long, default_value_t = 128)]
    tokens: usize,
    /// Rounds; medians are reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    #[arg(long, default_value = "Write a short story about a lighthouse keeper.")]
    prompt: String,
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("PONDER_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let res = match cli.cmd {
        Command::Solve(a) => solve(a),
        Command::Bench(a) => bench(a),
        Command::Eval(a) => eval(a),
        Command::BenchSearch(a) => bench_search(a),
        Command::FetchModel => ponder::models::default_model()
            .map(|p| println!("{}", p.display()))
            .map_err(Into::into),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn spinner(msg: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid template"),
    );
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

fn solve(a: SolveArgs) -> Result<()> {
    let strategy = a
        .run
        .strategies(std::slice::from_ref(&a.strategy), &a.model, 1)?
        .pop()
        .expect("one strategy");
    let branches = strategy.sequences();
    let pb = spinner("loading the model");
    let hidden = a.strategy == "st-bon" && a.run.st_bon_final_layer;
    let engine = load_engine(
        &a.model,
        1,
        branches,
        a.question.len(),
        a.run.max_tokens,
        hidden,
    )?;
    let scorer_engine = a
        .run
        .scorer_engine(&a.model, 1, branches, a.question.len())?;
    let mut cx = a.run.cx(engine.clone(), scorer_engine)?;
    if let Some(t) = a.timeout {
        cx.budget = cx.budget.with_timeout(Duration::from_secs_f64(t));
    }
    pb.set_message(format!("solving with {}", strategy.name()));
    let done = std::sync::atomic::AtomicBool::new(false);
    let sol = std::thread::scope(|sc| {
        sc.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let st = engine.stats();
                pb.set_message(format!(
                    "solving with {}: {} tokens generated",
                    strategy.name(),
                    st.generated_tokens
                ));
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let r = strategy.solve(&cx, &Problem::new(0, a.question.clone()));
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        r
    })?;
    pb.finish_and_clear();

    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json_report(&sol, &engine, a.run.seed))?
        );
    } else {
        print_report(&sol);
    }
    Ok(())
}

fn json_report(sol: &Solution, engine: &Engine, seed: u64) -> serde_json::Value {
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
    })
}

fn print_report(sol: &Solution) {
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
}

fn print_stats(title: &str, s: &Stats) {
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

fn bench(a: BenchArgs) -> Result<()> {
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

fn bench_search(a: BenchSearchArgs) -> Result<()> {
    use ponder::eval::dataset;
    if a.problems == 0 {
        bail!("invalid --problems: 0 (must be ≥ 1)");
    }
    let strategies = a.run.strategies(&a.strategies, &a.model, 1)?;
    let data = dataset::load(&a.dataset, None, dataset::OnBadLine::Stop)?;
    let problems: Vec<(Problem, Option<String>)> = data
        .items
        .iter()
        .take(a.problems)
        .map(|i| {
            (
                Problem::new(i.index, i.question.clone()),
                Some(i.gold.clone()),
            )
        })
        .collect();
    let branches = strategies.iter().map(|s| s.sequences()).max().unwrap_or(1);
    let longest = problems
        .iter()
        .map(|p| p.0.question.len())
        .max()
        .unwrap_or(0);
    let pb = spinner("loading the model");
    let hidden = a.run.st_bon_final_layer && a.strategies.iter().any(|s| s.trim() == "st-bon");
    let engine = load_engine(&a.model, 1, branches, longest, a.run.max_tokens, hidden)?;
    let scorer_engine = a.run.scorer_engine(&a.model, 1, branches, longest)?;
    let cx = a.run.cx(engine.clone(), scorer_engine)?;
    let rows = ponder::bench::compare_strategies(&cx, &strategies, &problems, |m| {
        pb.set_message(m.to_string())
    })?;
    pb.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{} · {} · {} problems · scorer {:?} · max {} tokens · seed {}",
        engine.info().name,
        dataset_label(&a.dataset),
        problems.len(),
        a.run.scorer,
        a.run.max_tokens,
        a.run.seed
    );
    println!(
        "{:<18} {:>10} {:>8} {:>9} {:>9} {:>7} {:>8} {:>10} {:>8}",
        "strategy",
        "ms/token",
        "ratio",
        "tokens",
        "wall s",
        "batch",
        "scorer%",
        "scorer tok",
        "correct"
    );
    for r in &rows {
        println!(
            "{:<18} {:>10.2} {:>8.3} {:>9} {:>9.1} {:>7.1} {:>7.1}% {:>10} {:>8}",
            r.strategy,
            r.ms_per_token,
            r.ratio_vs_baseline,
            r.generated_tokens,
            r.wall_ms / 1e3,
            r.mean_batch,
            100.0 * r.scorer_share,
            r.scorer_tokens
                .map_or_else(|| "n/a".to_string(), |t| t.to_string()),
            r.accuracy
                .map(|x| format!("{:.0}%", 100.0 * x))
                .unwrap_or_default()
        );
    }
    println!(
        "(ms/token and scorer% are medians over problems; ratio = ms/token ÷ the first strategy's)"
    );
    Ok(())
}

fn eval(a: EvalArgs) -> Result<()> {
    use ponder::eval::{self, dataset, records::RecordLog};
    if a.concurrency == 0 {
        bail!("invalid --concurrency: 0 (must be ≥ 1)");
    }
    let strategies = if a.summary_only {
        Vec::new()
    } else {
        a.run.strategies(&a.strategies, &a.model, a.concurrency)?
    };
    let fields = match (&a.question_field, &a.answer_field) {
        (Some(q), Some(x)) => Some((q.as_str(), x.as_str())),
        (None, None) => None,
        _ => bail!("--question-field and --answer-field go together"),
    };
    let data = dataset::load(&a.dataset, fields, a.on_bad_line)?;
    for (line, why) in &data.skipped {
        eprintln!("warning: skipped line {line}: {why}");
    }
    let items = &data.items[..a.limit.unwrap_or(usize::MAX).min(data.items.len())];
    let mut log = RecordLog::open(&a.out)?;
    if !a.summary_only {
        let recorded = a.run.settings(&a.model);
        let runs: Vec<_> = strategies
            .iter()
            .map(|s| (s.name(), eval::settings::combine(s.settings(), &recorded)))
            .collect();
        for name in eval::settings::reconcile(&a.out, &runs)? {
            let n = log.records.iter().filter(|r| r.strategy == name).count();
            if n > 0 {
                eprintln!(
                    "warning: {n} {name} records in {} predate {}: assumed made with this run's settings",
                    a.out.display(),
                    eval::settings::FILE
                );
            }
        }
    }
    let done_before = log.done();
    let names: Vec<String> = strategies.iter().map(|s| s.name()).collect();
    let todo = if a.summary_only {
        0
    } else {
        items.len() * names.len()
            - items
                .iter()
                .flat_map(|i| {
                    names
                        .iter()
                        .map(move |n| (i.id.clone(), n.clone(), a.run.seed))
                })
                .filter(|k| done_before.contains(k))
                .count()
    };
    if a.summary_only && log.records.is_empty() {
        bail!("nothing recorded in {} to summarize", a.out.display());
    }
    if let Some(b) = a.baseline.as_ref().filter(|_| !a.summary_only) {
        // Found out now, not after hours of solving.
        if !names.contains(b) && !log.records.iter().any(|r| &r.strategy == b) {
            bail!(
                "--baseline {b}: not among this run's strategies ({}) nor recorded in {}",
                names.join(", "),
                a.out.display()
            );
        }
    }
    if !a.summary_only {
        eprintln!(
            "{}: {} problems × {} strategies, {} to do ({} already recorded in {})",
            a.dataset.display(),
            items.len(),
            names.len(),
            todo,
            items.len() * names.len() - todo,
            a.out.display()
        );
    }
    if todo > 0 {
        let branches = strategies.iter().map(|s| s.sequences()).max().unwrap_or(1);
        let longest = items.iter().map(|i| i.question.len()).max().unwrap_or(0);
        let concurrency = a.concurrency.min(todo);
        let hidden = a.run.st_bon_final_layer && a.strategies.iter().any(|s| s.trim() == "st-bon");
        let engine = load_engine(
            &a.model,
            concurrency,
            branches,
            longest,
            a.run.max_tokens,
            hidden,
        )?;
        let scorer_engine = a
            .run
            .scorer_engine(&a.model, concurrency, branches, longest)?;
        let cx = a.run.cx(engine, scorer_engine)?;
        let pb = ProgressBar::new(todo as u64);
        pb.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed} < {eta}] {msg}")
                .expect("valid template"),
        );
        let tally = parking_lot::Mutex::new((0usize, 0usize, 0u64, 0f64));
        let started = std::time::Instant::now();
        eval::run(&cx, items, &strategies, concurrency, &mut log, &|r| {
            let mut t = tally.lock();
            t.0 += 1;
            t.1 += r.correct as usize;
            t.2 += r.generated_tokens;
            t.3 = started.elapsed().as_secs_f64();
            pb.set_message(format!(
                "accuracy {:.1}% · {:.0} tok/s",
                100.0 * t.1 as f64 / t.0 as f64,
                t.2 as f64 / t.3
            ));
            pb.inc(1);
        })?;
        pb.finish_and_clear();
    }
    // A summary of recorded runs knows neither their N nor their token limit (this
    // command's defaults are not theirs): the strategy names carry N.
    let settings = if a.summary_only {
        "from recorded runs".to_string()
    } else {
        format!("N={} · max {} tokens", a.run.n, a.run.max_tokens)
    };
    let title = format!(
        "{} · {} problems · {settings} · seed {}",
        dataset_label(&a.dataset),
        items.len(),
        a.run.seed
    );
    let md = eval::write_summary(
        &a.out,
        &log.records,
        items,
        (!a.summary_only).then_some(names.as_slice()),
        a.run.seed,
        &title,
        a.baseline.as_deref(),
    )?;
    println!("{md}");
    eprintln!("wrote {}/{{records.jsonl,summary.md,summary.csv,accuracy_vs_tokens.svg,accuracy_vs_tokens.png}}", a.out.display());
    Ok(())
}

/// "multiarith/test.jsonl" for data/multiarith/test.jsonl: the folder names the dataset.
fn dataset_label(p: &std::path::Path) -> String {
    let parts: Vec<String> = p
        .iter()
        .rev()
        .take(2)
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    parts.into_iter().rev().collect::<Vec<_>>().join("/")
}
