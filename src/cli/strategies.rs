//! `ponder strategies`: the catalogue, straight from the registry.

use anyhow::Result;
use clap::Args;
use ponder::search::registry::{self, Entry};
use std::fmt::Write as _;
use std::io::Write as _;

/// List every strategy with its settings and defaults, or document one.
#[derive(Args)]
pub struct StrategiesArgs {
    /// One strategy to document (its description and every setting).
    #[arg(value_parser = super::args::strategy_parser())]
    name: Option<String>,
    /// Print JSON: name, summary, documentation, the setting `--n` sets, and each
    /// setting's key, default, description and allowed values.
    #[arg(long)]
    json: bool,
}

/// Print the catalogue or one entry.
pub fn run(a: StrategiesArgs) -> Result<()> {
    let entries: Vec<&Entry> = match &a.name {
        Some(n) => vec![registry::lookup(n)?],
        None => registry::REGISTRY.iter().collect(),
    };
    let mut out = String::new();
    if a.json {
        let list: Vec<_> = entries.iter().map(|e| describe(e)).collect();
        let json = match a.name {
            Some(_) => list.into_iter().next().unwrap_or_default(),
            None => serde_json::Value::Array(list),
        };
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        return emit(&out);
    }
    for e in &entries {
        if a.name.is_some() {
            writeln!(out, "{}\n\n{}\n", e.name, e.doc().trim())?;
        } else {
            writeln!(out, "{:<15} {}", e.name, e.summary())?;
        }
        let n = e
            .n_key
            .map_or("none".to_string(), |k| format!("sets `{k}`"));
        writeln!(out, "{:<15} --n {n}", "")?;
        for s in e.settings() {
            let allowed = if s.allowed.is_empty() {
                String::new()
            } else {
                format!(" [{}]", s.allowed.join(", "))
            };
            let first = s.description.split("\n\n").next().unwrap_or("");
            writeln!(
                out,
                "{:<15}   {} = {}{allowed}  {}",
                "",
                s.key,
                s.default,
                first.replace('\n', " ")
            )?;
        }
        writeln!(out)?;
    }
    if a.name.is_none() {
        writeln!(out, "Settings go in with --set KEY=VALUE or --config FILE; `ponder strategies NAME` documents one.")?;
    }
    emit(&out)
}

/// Print the text; a reader that went away (`ponder strategies | head`) is not an error.
fn emit(text: &str) -> Result<()> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

fn describe(e: &Entry) -> serde_json::Value {
    serde_json::json!({
        "name": e.name,
        "summary": e.summary(),
        "doc": e.doc(),
        "n": e.n_key,
        "defaults": e.defaults(),
        "settings": e.settings(),
    })
}
