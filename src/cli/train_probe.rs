//! `ponder train-probe`: fit a correctness probe on the policy model's own hidden states
//! over labelled problems, and write it for `--scorer probe --probe FILE`.

use super::args::{bounded, ModelArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use ponder::engine::{SamplingParams, Workload};
use ponder::eval::dataset::{self, OnBadLine};
use ponder::probe::{self, Provenance, TrainSettings};
use ponder::scorers::probe::ProbeModel;
use ponder::search::Cx;
use std::path::PathBuf;

/// Train a correctness probe on the policy's hidden states (for --scorer probe).
#[derive(Args)]
pub struct TrainProbeArgs {
    /// JSONL dataset with gold answers (GSM8K, MATH-500 and MultiArith fields are detected).
    #[arg(long)]
    dataset: PathBuf,
    /// The dataset's question field (with --answer-field), for a custom format.
    #[arg(long)]
    question_field: Option<String>,
    /// The dataset's gold-answer field (with --question-field).
    #[arg(long)]
    answer_field: Option<String>,
    /// Skip the dataset's first K problems (keep the problems evaluation uses out).
    #[arg(long, default_value_t = 0)]
    skip: usize,
    /// Train and validate on at most this many problems after the skipped ones.
    #[arg(long, value_parser = bounded(2, usize::MAX, "problems, at least 2 (one to train on, one to validate)"))]
    limit: Option<usize>,
    /// Samples per problem (K), 1 to 64.
    #[arg(long, default_value_t = 4, value_parser = bounded(1usize, 64, "samples per problem, 1 to 64"))]
    samples: usize,
    /// Where to write the probe (JSON).
    #[arg(long)]
    out: PathBuf,
    /// Share of the problems (the last ones) held out to measure the probe's AUROC.
    #[arg(long, default_value_t = 0.25)]
    validation: f64,
    /// L2 regularisation strength of the logistic regression (> 0).
    #[arg(long, default_value_t = 1.0)]
    alpha: f64,
    /// Train on each sample's last state only, not also on its step ends.
    #[arg(long)]
    no_step_ends: bool,
    /// Sampling temperature of the training samples.
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// New tokens per sample.
    #[arg(long, default_value_t = ponder::search::DEFAULT_MAX_TOKENS)]
    max_tokens: usize,
    /// Problems sampled at once (their branches share decode steps).
    #[arg(long, default_value_t = 4, value_parser = bounded(1usize, 64, "problems at once, 1 to 64"))]
    concurrency: usize,
    /// Seed of every sample.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    model: ModelArgs,
}

/// Sample, fit, report the AUROCs and write the probe file.
pub fn run(a: TrainProbeArgs) -> Result<()> {
    let settings = TrainSettings {
        samples: a.samples,
        sampling: SamplingParams {
            temperature: a.temperature,
            ..SamplingParams::default()
        },
        max_tokens: a.max_tokens,
        step_ends: !a.no_step_ends,
        validation: a.validation,
        alpha: a.alpha,
        ..TrainSettings::default()
    };
    settings.validate()?;
    let fields = match (&a.question_field, &a.answer_field) {
        (Some(q), Some(x)) => Some((q.as_str(), x.as_str())),
        (None, None) => None,
        _ => bail!("--question-field and --answer-field go together"),
    };
    let data = dataset::load(&a.dataset, fields, OnBadLine::Stop)
        .context("a probe trains on problems with gold answers")?;
    if a.skip >= data.items.len() {
        bail!(
            "--skip {} leaves no problems: {} has {}",
            a.skip,
            a.dataset.display(),
            data.items.len()
        );
    }
    let end = a
        .limit
        .map_or(data.items.len(), |l| (a.skip + l).min(data.items.len()));
    let items = &data.items[a.skip..end];
    if items.len() < 2 {
        bail!(
            "one problem is left after --skip: a probe needs one to train on and one to validate"
        );
    }
    let path = a.model.path()?;
    let sha256 = ponder::models::checksum(&path)
        .with_context(|| format!("checksumming {}", path.display()))?;
    let work = Workload {
        problems: a.concurrency,
        sequences: a.samples,
        prompt_bytes: items.iter().map(|i| i.question.len()).max().unwrap_or(0),
        max_tokens: a.max_tokens,
    };
    let engine = a.model.load(work, true)?;
    let n_embd = engine.info().n_embd as usize;
    let mut cx = Cx::new(engine);
    cx.seed = a.seed;
    let pb = ProgressBar::new((items.len() * a.samples) as u64);
    pb.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} samples [{elapsed} < {eta}] {msg}")
            .expect("valid template"),
    );
    let examples = probe::collect(&cx, items, &settings, a.concurrency, &|samples, right| {
        pb.set_position(samples as u64);
        pb.set_message(format!(
            "{:.1}% right",
            100.0 * right as f64 / samples.max(1) as f64
        ));
    })?;
    pb.finish_and_clear();
    let provenance = Provenance {
        model: ProbeModel {
            file: path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            sha256,
            n_embd,
        },
        dataset: a.dataset.display().to_string(),
        first: a.skip,
        seed: a.seed,
    };
    let file = probe::train(&examples, items.len(), &settings, provenance)?;
    let t = &file.training;
    let show = |x: Option<f64>| x.map_or("– (one class only)".into(), |v| format!("{v:.3}"));
    println!(
        "{} problems ({}..{} train, {}..{} validate) × {} samples: {} training states, {} of right samples",
        items.len(),
        t.train[0],
        t.train[1],
        t.validation[0],
        t.validation[1],
        t.samples,
        t.examples,
        t.positives
    );
    println!(
        "AUROC (last-token states): training {}, validation {}",
        show(t.train_auroc),
        show(t.validation_auroc)
    );
    let json = serde_json::to_string_pretty(&file)?;
    ponder::durable::replace(&a.out, json.as_bytes())
        .with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!("wrote {}", a.out.display());
    Ok(())
}
