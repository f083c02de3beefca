//! Argument groups shared by the commands: the model, the strategy's settings (a small
//! common group, `--set`, `--config`) and the run (seed, prompt, scorer, budget), and
//! turning them into strategies and a context with everything the strategies declared
//! they need.

use anyhow::{bail, Context, Result};
use clap::Args;
use ponder::engine::llama::{LayerProbe, LlamaConfig};
use ponder::engine::{Budget, Engine, PromptFormat, Workload};
use ponder::search::{registry, Common, Cx, Overrides, StepUnit, Strategy, Vote};
use std::path::PathBuf;
use std::sync::Arc;

/// The registry's names, for clap: help and errors list exactly what is registered.
pub fn strategy_parser() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(registry::names())
}

/// A clap parser for a whole number in `lo..=hi`; `what` says what the number is and
/// why those are its bounds (shown with the value when it is refused).
pub fn bounded<T>(
    lo: T,
    hi: T,
    what: &'static str,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy + Send + Sync + 'static,
{
    move |s: &str| match s.trim().parse::<T>() {
        Ok(v) if v >= lo && v <= hi => Ok(v),
        Ok(v) => Err(format!("{v} is out of range: {what}")),
        Err(_) => Err(format!("not a whole number in {lo}..={hi}: {what}")),
    }
}

/// The most compute threads taken: ggml's thread pool holds at most 512
/// (`GGML_MAX_N_THREADS`).
pub const MAX_THREADS: i32 = 512;

/// The most KV cells `--ctx` takes (2^20; a 0.5B model's cache at that size is ~12 GB).
pub const MAX_CTX: u32 = 1 << 20;

/// Which model, and how it is loaded.
#[derive(Args, Clone)]
pub struct ModelArgs {
    /// GGUF model file, or a known model fetched and cached on first use:
    /// qwen2.5-coder-0.5b (the default), qwen2.5-coder-1.5b (1.1 GB) or smollm2
    /// (SmolLM2-135M, the test model).
    #[arg(long)]
    pub model: Option<String>,
    /// KV cells shared by all branches, 1 to 1048576 (default: sized from what the
    /// strategies hold).
    #[arg(long, value_parser = bounded(1, MAX_CTX, "KV cells, 1 to 1048576 (omit --ctx to size them from the strategies)"))]
    pub ctx: Option<u32>,
    /// Compute threads, 1 to 512 (default: all cores).
    #[arg(long, value_parser = bounded(1, MAX_THREADS, "compute threads, 1 to 512 (omit --threads for all cores)"))]
    pub threads: Option<i32>,
    /// Layers to offload to the GPU (builds with --features cuda/metal/vulkan): 0 runs on
    /// the CPU; more than the model has offloads every layer (999 = all); no effect in a
    /// build without a GPU backend.
    #[arg(long, default_value_t = 0)]
    pub gpu_layers: u32,
}

impl ModelArgs {
    /// The model file (fetched first when it is a known name).
    pub fn path(&self) -> Result<PathBuf> {
        match &self.model {
            Some(m) => Ok(ponder::models::resolve(m)?),
            None => Ok(ponder::models::default_model()?),
        }
    }

    /// These options for another model (a draft, a PRM): same threads and GPU layers.
    fn other(&self, model: PathBuf) -> ModelArgs {
        ModelArgs {
            model: Some(model.display().to_string()),
            ctx: None,
            ..self.clone()
        }
    }

    /// Load the model sized for `w` (`--ctx` overrides the cells).
    pub fn load(&self, w: Workload, hidden_states: bool) -> Result<Engine> {
        let path = self.path()?;
        let mut lc = LlamaConfig::new(&path);
        lc.n_seq_max = w.n_seq_max()?;
        lc.n_ctx = self.ctx.unwrap_or_else(|| w.n_ctx());
        lc.threads = self.threads;
        lc.gpu_layers = self.gpu_layers;
        lc.hidden_states = hidden_states;
        Engine::load(&lc).with_context(|| format!("loading {}", path.display()))
    }
}

/// A strategy's settings: the common group (each option applies to the strategies that
/// have it, and only when given), then `--config`, then `--set`.
#[derive(Args, Clone, Default)]
pub struct StrategyArgs {
    /// The most candidates or paths a strategy explores: samples (best-of-n and the
    /// voting strategies), beams, MCTS iterations, FastMCTS trajectories, DPTS parallel
    /// paths, speculative rejection's initial pool. Default: the strategy's own.
    #[arg(long)]
    pub n: Option<usize>,
    /// Sampling temperature (0 = greedy). Default: the strategy's own.
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Nucleus sampling (1 = off).
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Keep the K most likely tokens (0 = off).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Drop tokens below this share of the most likely one (0 = off).
    #[arg(long)]
    pub min_p: Option<f32>,
    /// New tokens per sample (default 320, the strategies' shared default).
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// How the answer is picked: naive | majority | weighted | borda (by score rank,
    /// power 0.5) | borda:POWER.
    #[arg(long)]
    pub vote: Option<Vote>,
    /// Steps end at this delimiter (escapes \n and \t understood; default a blank line).
    #[arg(long, conflicts_with = "step_tokens")]
    pub step_delimiter: Option<String>,
    /// Steps are chunks of K tokens instead.
    #[arg(long)]
    pub step_tokens: Option<usize>,
    /// Longest delimited step, in tokens (default 256).
    #[arg(long)]
    pub max_step_tokens: Option<usize>,
    /// Any other setting, KEY=VALUE (repeatable; `STRATEGY.KEY=VALUE` for one strategy of
    /// several). `ponder strategies NAME` lists a strategy's settings.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Settings from a TOML or JSON file: top-level keys for every strategy that has
    /// them, a table named after a strategy for that one. `--set` and the options above
    /// override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// How chains of thought are asked for: cot (the system prompt as it is), concise
    /// ("Be concise." added), chain-of-draft (a five-word draft per step), token-budget
    /// (the model estimates a token budget first, which the prompt then states), or a
    /// file holding a system prompt. Strategy names get the style appended.
    #[arg(long, value_name = "STYLE", default_value = "cot", value_parser = ponder::search::PromptStyle::parse)]
    pub prompt_style: ponder::search::PromptStyle,
}

impl StrategyArgs {
    /// The layers of settings these arguments give.
    pub fn overrides(&self) -> Result<Overrides> {
        let mut o = Overrides::default();
        if let Some(path) = &self.config {
            o.add_config(read_config(path)?);
        }
        let unescape = |s: &str| s.replace("\\n", "\n").replace("\\t", "\t");
        o.common = Common {
            n: self.n,
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            min_p: self.min_p,
            max_tokens: self.max_tokens,
            vote: self.vote,
            step_unit: match (&self.step_delimiter, self.step_tokens) {
                (_, Some(k)) => Some(StepUnit::Tokens(k)),
                (Some(d), None) => Some(StepUnit::Delimiter(unescape(d))),
                (None, None) => None,
            },
            max_step_tokens: self.max_step_tokens,
        };
        for pair in &self.set {
            o.add_set(pair)?;
        }
        Ok(o)
    }

    /// Build the named strategies, validated once (errors name the strategy and key).
    pub fn build(&self, names: &[String]) -> Result<Vec<Box<dyn Strategy>>> {
        registry::resolve(names, &self.overrides()?)?
            .into_iter()
            .map(|s| Ok(ponder::search::Styled::wrap(s, self.prompt_style.clone())?))
            .collect()
    }
}

/// A config file as one table: TOML, or JSON when the name ends in `.json`.
fn read_config(path: &std::path::Path) -> Result<serde_json::Map<String, serde_json::Value>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--config {}: cannot read it", path.display()))?;
    let value: serde_json::Value = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text)
            .with_context(|| format!("--config {}: not JSON", path.display()))?
    } else {
        toml::from_str(&text).with_context(|| format!("--config {}: not TOML", path.display()))?
    };
    match value {
        serde_json::Value::Object(m) => Ok(m),
        other => bail!("--config {}: must be a table, not {other}", path.display()),
    }
}

/// How candidates and steps are scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScorerKind {
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
    /// A correctness probe on the policy's own hidden states (--probe FILE, made by
    /// `ponder train-probe`): no second model.
    Probe,
}

/// What shapes a run besides the strategies' own settings.
#[derive(Args, Clone)]
pub struct RunArgs {
    /// Seed of every sample (with the problem's id and the branch's).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Chat template: model (from the GGUF), a llama.cpp name such as chatml, or raw.
    #[arg(long, default_value = "model")]
    pub template: PromptFormat,
    /// System prompt ("none" for no system message; default: reason step by step and
    /// box the answer).
    #[arg(long)]
    pub system: Option<String>,
    /// Cap on tokens generated over all branches of a problem (at least 1; omit it for
    /// no cap).
    #[arg(long, value_parser = bounded(1, u64::MAX, "tokens over all branches of a problem, at least 1 (omit --budget-tokens for no cap)"))]
    pub budget_tokens: Option<u64>,
    /// How candidates and steps are scored.
    #[arg(long, value_enum, default_value = "logprob")]
    pub scorer: ScorerKind,
    /// GGUF model for --scorer prm (required) or judge (default: the policy model,
    /// loaded again in its own context).
    #[arg(long)]
    pub prm: Option<String>,
    /// PRM prompt preset: judge, math-shepherd, rlhflow, or a JSON file (default:
    /// math-shepherd for prm, judge for judge).
    #[arg(long)]
    pub prm_preset: Option<String>,
    /// How a PRM's step scores become one: last | min | product | mean.
    #[arg(long, default_value = "last")]
    pub aggregate: ponder::scorers::Aggregate,
    /// The small draft model of strategies that need one (rsd; --model is the target).
    #[arg(long)]
    pub draft_model: Option<String>,
    /// The probe file of --scorer probe (from `ponder train-probe`, for this model).
    #[arg(long)]
    pub probe: Option<PathBuf>,
}

impl RunArgs {
    /// The cheap checks, before any model loads.
    pub fn check(&self) -> Result<()> {
        if self.scorer == ScorerKind::Prm && self.prm.is_none() {
            bail!("--scorer prm needs --prm PATH (a GGUF process reward model); --scorer judge uses the policy model");
        }
        if let Some(p) = &self.prm_preset {
            ponder::scorers::PrmPreset::load(p)?;
        }
        match (self.scorer, &self.probe) {
            (ScorerKind::Probe, None) => bail!(
                "--scorer probe needs --probe FILE (a probe trained for this model by `ponder train-probe`)"
            ),
            (ScorerKind::Probe, Some(p)) => {
                ponder::scorers::ProbeFile::load(p)?;
            }
            (_, Some(_)) => bail!("--probe is read only by --scorer probe"),
            _ => {}
        }
        Ok(())
    }

    /// What shapes every strategy's results besides its own settings, for
    /// `settings.json` (the seed is part of each record's key instead).
    pub fn settings(&self, m: &ModelArgs) -> serde_json::Map<String, serde_json::Value> {
        let name = |p: Option<&str>| p.map(|p| ponder::models::file_name(Some(p)));
        let mut s = serde_json::json!({
            "model": ponder::models::file_name(m.model.as_deref()),
            "template": self.template,
            "system": self.system,
            "scorer": self.scorer,
            "prm": name(self.prm.as_deref()),
            "prm_preset": self.prm_preset,
            "aggregate": self.aggregate,
            "budget_tokens": self.budget_tokens,
        });
        if let Some(p) = &self.probe {
            s["probe"] = p.display().to_string().into();
        }
        if let Some(d) = &self.draft_model {
            s["draft_model"] = name(Some(d)).into();
        }
        s.as_object().cloned().unwrap_or_default()
    }

    /// Load the policy model and whatever the strategies declared they need (draft
    /// model, layer probe, hidden states, the scorer's model), sized for `problems` at
    /// once, and return the context. Nothing is loaded that no strategy needs.
    pub fn context(
        &self,
        m: &ModelArgs,
        strategies: &[Box<dyn Strategy>],
        problems: usize,
        prompt_bytes: usize,
    ) -> Result<Cx> {
        let needs: Vec<_> = strategies.iter().map(|s| s.needs()).collect();
        let most = |f: fn(&ponder::search::Needs) -> usize| needs.iter().map(f).max().unwrap_or(1);
        let work = Workload {
            problems,
            sequences: most(|n| n.sequences),
            prompt_bytes,
            max_tokens: most(|n| n.max_tokens),
        };
        self.context_for(m, strategies, work)
    }

    /// [`RunArgs::context`] for an engine sized for `work` (the server sizes it from its
    /// limits, not from one strategy's settings).
    pub fn context_for(
        &self,
        m: &ModelArgs,
        strategies: &[Box<dyn Strategy>],
        work: Workload,
    ) -> Result<Cx> {
        self.check()?;
        let needs: Vec<_> = strategies.iter().map(|s| s.needs()).collect();
        let target = m.path().context("the model (--model)")?;
        ponder::engine::llama::check_gguf(&target).context("the model (--model)")?;
        let draft = if needs.iter().any(|n| n.draft_model) {
            let Some(d) = &self.draft_model else {
                let who = strategies.iter().filter(|s| s.needs().draft_model);
                let who: Vec<String> = who.map(|s| s.name()).collect();
                bail!("{} needs a draft model: --draft-model PATH|smollm2|qwen2.5-coder-0.5b|qwen2.5-coder-1.5b (--model is the target)", who.join(", "));
            };
            let path = ponder::models::resolve(d)
                .with_context(|| format!("the draft model (--draft-model {d})"))?;
            ponder::engine::llama::check_gguf(&path)
                .with_context(|| format!("the draft model (--draft-model {d})"))?;
            if path == target {
                eprintln!(
                    "warning: the draft and target models are the same file ({}): RSD is pointless",
                    path.display()
                );
            }
            let w = Workload {
                sequences: 1,
                ..work
            };
            Some(
                m.other(path)
                    .load(w, false)
                    .context("loading the draft model")?,
            )
        } else {
            None
        };
        let layers = if needs.iter().any(|n| n.layer_probe) {
            let probe = LayerProbe::load(&target, 2048, m.threads)
                .context("loading the layer probe (every layer's hidden states)")?;
            Some(Arc::new(parking_lot::Mutex::new(probe)) as Arc<dyn ponder::engine::LayerStates>)
        } else {
            None
        };
        let probe = needs.iter().any(|n| n.scorer) && self.scorer == ScorerKind::Probe;
        let hidden = probe || needs.iter().any(|n| n.hidden_states);
        let engine = m.load(work, hidden)?;
        let scorer_engine = if needs.iter().any(|n| n.scorer) {
            self.scorer_engine(m, work)?
        } else {
            if matches!(self.scorer, ScorerKind::Prm | ScorerKind::Judge) {
                eprintln!(
                    "warning: no strategy of this run consults the scorer: --scorer {:?} is not used",
                    self.scorer
                );
            }
            None
        };
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
        cx.draft = draft;
        cx.layers = layers;
        cx.scorer = if probe {
            self.probe_scorer(&target, &cx.engine)?
        } else {
            self.scorer(scorer_engine, strategies)?
        };
        // Model-written programs run in a capped child process, never in this one.
        cx.programs = super::run_program::executor()?;
        Ok(cx)
    }

    /// The scorer's own model, if it has one: room for one track per live node plus
    /// each problem's root.
    fn scorer_engine(&self, m: &ModelArgs, work: Workload) -> Result<Option<Engine>> {
        let path = match (self.scorer, &self.prm) {
            (ScorerKind::Prm | ScorerKind::Judge, Some(p)) => {
                ponder::models::resolve(p).with_context(|| format!("the PRM model {p:?}"))?
            }
            (ScorerKind::Judge, None) => m.path()?,
            _ => return Ok(None),
        };
        let w = Workload {
            sequences: (work.sequences + 1).min(256 / work.problems.max(1)),
            prompt_bytes: work.prompt_bytes + 512,
            max_tokens: work.max_tokens + 64,
            ..work
        };
        m.other(path)
            .load(w, false)
            .map(Some)
            .context("loading the PRM/judge model")
    }

    fn scorer(
        &self,
        engine: Option<Engine>,
        strategies: &[Box<dyn Strategy>],
    ) -> Result<Arc<dyn ponder::scorers::Scorer>> {
        use ponder::scorers as sc;
        Ok(match (self.scorer, engine) {
            (ScorerKind::Logprob, _) => Arc::new(sc::MeanLogprob),
            (ScorerKind::SelfCertainty, _) => Arc::new(sc::SelfCertainty),
            (ScorerKind::Verifier, _) => Arc::new(sc::ArithmeticVerifier::default()),
            (ScorerKind::Prm | ScorerKind::Judge, Some(e)) => {
                let kind = self.scorer;
                let default = if kind == ScorerKind::Prm {
                    "math-shepherd"
                } else {
                    "judge"
                };
                let preset = sc::PrmPreset::load(self.prm_preset.as_deref().unwrap_or(default))?;
                let mut prm = sc::Prm::new(e, preset)?.with_aggregate(self.aggregate);
                // The PRM cuts steps where the strategies do.
                let delimiter = strategies.iter().find_map(|s| {
                    s.settings()["steps"]["unit"]["delimiter"]
                        .as_str()
                        .map(str::to_string)
                });
                if let Some(d) = delimiter {
                    prm.delimiter = d;
                }
                Arc::new(prm)
            }
            // No strategy consults it (or the probe, built apart): a placeholder that
            // is never called.
            _ => Arc::new(sc::MeanLogprob),
        })
    }

    /// The --probe file's probe for the policy model at `model` (loaded as `engine`),
    /// refused when it was made for another model or hidden width.
    fn probe_scorer(
        &self,
        model: &std::path::Path,
        engine: &Engine,
    ) -> Result<Arc<dyn ponder::scorers::Scorer>> {
        let path = self
            .probe
            .as_deref()
            .context("--scorer probe needs --probe FILE")?;
        let file = ponder::scorers::ProbeFile::load(path)?;
        let sha = ponder::models::checksum(model)
            .with_context(|| format!("checksumming {}", model.display()))?;
        let probe = ponder::scorers::Probe::new(file, path, &sha, engine.info().n_embd as usize)?;
        Ok(Arc::new(probe))
    }
}
