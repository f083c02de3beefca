//! `ponder fetch-model`: download a known model into the cache and print its path.

use anyhow::{bail, Result};
use clap::Args;

/// Download a known model into the cache (once) and print its path.
#[derive(Args)]
pub struct FetchModelArgs {
    /// qwen2.5-coder-0.5b (the default model), qwen2.5-coder-1.5b (1.1 GB) or smollm2
    /// (the test model).
    name: Option<String>,
}

/// Fetch (or find cached) and print the path.
pub fn run(a: FetchModelArgs) -> Result<()> {
    let spec = match a.name.as_deref() {
        None => ponder::models::DEFAULT,
        Some(n) => match ponder::models::by_name(n) {
            Some(s) => s,
            None => bail!(
                "unknown model {n:?} (known: {})",
                ponder::models::KNOWN
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    };
    println!("{}", ponder::models::ensure(spec)?.display());
    Ok(())
}
