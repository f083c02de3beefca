//! The `ponder` command line: one file per command, the argument groups they share in
//! [`args`], what `solve` prints in [`report`].

pub mod args;
pub mod bench;
pub mod bench_search;
pub mod eval;
pub mod fetch_model;
pub mod report;
pub mod run_program;
pub mod serve;
pub mod solve;
pub mod strategies;
pub mod train_probe;

use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;

/// A spinner with a message and the time elapsed.
pub fn spinner(msg: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid template"),
    );
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// "multiarith/test.jsonl" for data/multiarith/test.jsonl: the folder names the dataset.
pub fn dataset_label(p: &std::path::Path) -> String {
    let parts: Vec<String> = p
        .iter()
        .rev()
        .take(2)
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    parts.into_iter().rev().collect::<Vec<_>>().join("/")
}
