//! `ponder serve`: the OpenAI-compatible server ([`ponder::serve`]) on one engine.

use super::args::{bounded, ModelArgs, RunArgs, ScorerKind};
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use ponder::engine::Workload;
use ponder::search::{registry, Strategy};
use ponder::serve::{Config, Limits, NamedScorer, State};
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

/// Serve an OpenAI-compatible API that runs a strategy per request.
#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    run: RunArgs,
    /// Address to bind (loopback unless you say otherwise).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0: any free port; the address bound is printed on stdout).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Require `Authorization: Bearer KEY` on /v1 routes.
    #[arg(long)]
    api_key: Option<String>,
    /// The strategies served, comma-separated (default: every registered one the
    /// server can run; rsd only with --draft-model).
    #[arg(long, value_delimiter = ',')]
    strategies: Vec<String>,
    /// Requests solved at once (their branches share decode batches; the engine is
    /// sized for this many).
    #[arg(long, default_value_t = 4, value_parser = bounded(1usize, 256, "requests solved at once, 1 to 256"))]
    parallel: usize,
    /// Requests that may wait for a slot beyond those; more are answered 429.
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// The most choices (`n`) and the largest strategy N (`ponder.n`) a request may ask for.
    #[arg(long, default_value_t = 16, value_parser = bounded(1usize, 256, "1 to 256"))]
    max_n: usize,
    /// The most new tokens per sample a request may ask for (also the default ceiling
    /// of the KV sizing).
    #[arg(long, default_value_t = 512, value_parser = bounded(1usize, 1 << 20, "tokens, 1 to 1048576"))]
    max_tokens: usize,
    /// The most KV sequences one request's strategy may hold at once (the default fits
    /// every strategy's defaults: MCTS holds 53). --parallel × this is at most 256.
    #[arg(long, default_value_t = 64, value_parser = bounded(1usize, 256, "sequences, 1 to 256"))]
    max_sequences: usize,
    /// The longest a request may run, in seconds (its deadline unless it asks for less).
    #[arg(long, default_value_t = 300.0)]
    timeout: f64,
    /// The largest request body, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_body: usize,
    /// Seconds in-flight requests may run on after SIGINT/SIGTERM before they are cancelled.
    #[arg(long, default_value_t = 30.0)]
    shutdown_grace: f64,
    /// The id of the plain model in /v1/models (default: the --model name).
    #[arg(long)]
    model_id: Option<String>,
}

/// Load the model and what the served strategies need, bind, serve until SIGINT/SIGTERM.
pub fn run(a: ServeArgs) -> Result<()> {
    anyhow::ensure!(
        a.timeout > 0.0 && a.timeout <= 86_400.0,
        "invalid --timeout {} (seconds, in (0, 86400])",
        a.timeout
    );
    anyhow::ensure!(
        a.shutdown_grace >= 0.0 && a.shutdown_grace <= 3600.0,
        "invalid --shutdown-grace {} (seconds, 0 to 3600)",
        a.shutdown_grace
    );
    let names: Vec<&'static str> = if a.strategies.is_empty() {
        registry::REGISTRY
            .iter()
            .map(|e| e.name)
            .filter(|n| *n != "rsd" || a.run.draft_model.is_some())
            .collect()
    } else {
        a.strategies
            .iter()
            .map(|n| registry::lookup(n.trim()).map(|e| e.name))
            .collect::<Result<_, _>>()?
    };
    let defaults: Vec<Box<dyn Strategy>> = names
        .iter()
        .map(|n| registry::build(n, &serde_json::json!({})))
        .collect::<Result<_, _>>()?;
    anyhow::ensure!(
        a.parallel * a.max_sequences <= ponder::engine::sizing::MAX_SEQUENCES,
        "--parallel {} × --max-sequences {} = {} sequences, more than llama.cpp's {}: lower one of them",
        a.parallel,
        a.max_sequences,
        a.parallel * a.max_sequences,
        ponder::engine::sizing::MAX_SEQUENCES
    );
    let work = Workload {
        problems: a.parallel,
        sequences: a.max_sequences,
        prompt_bytes: 4096,
        max_tokens: a.max_tokens,
    };
    // KV cells for --parallel requests of up to 16 full-length branches each (tree
    // searches hold more sequences, but they share most of their cells; work that does
    // not fit waits for cells).
    let mut model = a.model.clone();
    model.ctx = model.ctx.or(Some(
        Workload {
            sequences: a.max_sequences.min(16),
            ..work
        }
        .n_ctx(),
    ));
    eprintln!("ponder serve: loading the model");
    let cx = a.run.context_for(&model, &defaults, work)?;
    let default_scorer = a
        .run
        .scorer
        .to_possible_value()
        .map_or("logprob".to_string(), |v| v.get_name().to_string());
    let mut scorers = vec![NamedScorer {
        name: default_scorer.clone(),
        scorer: cx.scorer.clone(),
    }];
    let plain: [(ScorerKind, Arc<dyn ponder::scorers::Scorer>); 3] = [
        (ScorerKind::Logprob, Arc::new(ponder::scorers::MeanLogprob)),
        (
            ScorerKind::SelfCertainty,
            Arc::new(ponder::scorers::SelfCertainty),
        ),
        (
            ScorerKind::Verifier,
            Arc::new(ponder::scorers::ArithmeticVerifier::default()),
        ),
    ];
    for (kind, scorer) in plain {
        let name = kind.to_possible_value().map(|v| v.get_name().to_string());
        if let Some(name) = name.filter(|n| *n != default_scorer) {
            scorers.push(NamedScorer { name, scorer });
        }
    }
    let model_id = a.model_id.clone().unwrap_or_else(|| match &a.model.model {
        Some(m) if !m.contains('/') && !m.ends_with(".gguf") => m.clone(),
        m => ponder::models::file_name(m.as_deref())
            .trim_end_matches(".gguf")
            .to_string(),
    });
    let cfg = Config {
        model_id,
        api_key: a.api_key.clone(),
        limits: Limits {
            max_n: a.max_n,
            max_tokens: a.max_tokens,
            max_sequences: a.max_sequences,
            timeout: Duration::from_secs_f64(a.timeout),
        },
        parallel: a.parallel,
        queue: a.queue,
        max_body_bytes: a.max_body,
        strategies: names,
        shutdown_grace: Duration::from_secs_f64(a.shutdown_grace),
    };
    let state = State::new(cfg, cx, scorers);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind((a.host.as_str(), a.port))
            .await
            .with_context(|| format!("binding {}:{}", a.host, a.port))?;
        let addr = listener.local_addr()?;
        println!("ponder serve: listening on http://{addr}");
        std::io::stdout().flush()?;
        ponder::serve::serve(listener, state, shutdown_signal()).await?;
        eprintln!("ponder serve: stopped");
        Ok(())
    })
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
