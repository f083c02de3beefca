//! `ponder eval` killed with SIGKILL at 20 moments (seeded, between 0.15 s and 1.85 s
//! after it starts: loading, solving, appending) and resumed each time: no finished
//! record is lost, none is written twice, every file stays readable, and the last run
//! completes the work (SmolLM2, two strategies, 100 problems).

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const PROBLEMS: usize = 100;
const KILLS: usize = 20;

fn eval(data: &Path, out: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ponder"));
    cmd.args(["eval", "--model", "smollm2", "--dataset"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .args([
            "--strategies",
            "greedy,best-of-n",
            "--n",
            "2",
            "--max-tokens",
            "16",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// The keys (strategy, id) of the complete records in the file; panics on a complete
/// line that is not a record. A torn last line (no newline) is allowed: the next run
/// cuts it off.
fn complete_records(path: &Path) -> Vec<(String, String)> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let complete = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(i) => &bytes[..=i],
        None => &[][..],
    };
    let text = std::str::from_utf8(complete).expect("complete lines are UTF-8");
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("a corrupt complete line ({e}): {l:?}"));
            (
                v["strategy"].as_str().expect("strategy").to_owned(),
                v["id"].as_str().expect("id").to_owned(),
            )
        })
        .collect()
}

fn assert_no_duplicates(keys: &[(String, String)], when: &str) {
    let mut seen = HashSet::new();
    for k in keys {
        assert!(seen.insert(k), "{when}: {k:?} recorded twice");
    }
}

#[test]
fn eval_killed_at_random_moments_resumes_without_loss_or_duplicates() {
    let dir = std::env::temp_dir().join(format!("ponder-eval-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("d.jsonl");
    let lines: String = (0..PROBLEMS)
        .map(|i| {
            format!(
                "{{\"id\": \"p{i}\", \"input\": \"What is {i} + {}?\", \"target\": {}}}\n",
                i + 3,
                2 * i + 3
            )
        })
        .collect();
    std::fs::write(&data, lines).unwrap();
    let out = dir.join("out");
    let records = out.join("records.jsonl");

    // A small LCG: the same moments every run, printed if the test fails.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next_ms = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        150 + (state >> 33) % 1_700
    };
    let mut finished: BTreeSet<(String, String)> = BTreeSet::new();
    let mut moments = Vec::new();
    for k in 0..KILLS {
        let ms = next_ms();
        moments.push(ms);
        let mut child = eval(&data, &out).spawn().expect("start ponder eval");
        std::thread::sleep(Duration::from_millis(ms));
        let _ = child.kill(); // SIGKILL (it may have finished already)
        let _ = child.wait();
        let now = complete_records(&records);
        let when = format!("after kill {k} at {ms} ms (moments so far {moments:?})");
        assert_no_duplicates(&now, &when);
        let now: BTreeSet<_> = now.into_iter().collect();
        eprintln!("kill {k} at {ms} ms: {} records", now.len());
        let lost: Vec<_> = finished.difference(&now).collect();
        assert!(lost.is_empty(), "{when}: finished records lost: {lost:?}");
        if out.join("settings.json").exists() {
            let s = std::fs::read_to_string(out.join("settings.json")).unwrap();
            serde_json::from_str::<serde_json::Value>(&s)
                .unwrap_or_else(|e| panic!("{when}: settings.json unreadable ({e}): {s:?}"));
        }
        finished = now;
    }
    assert!(!finished.is_empty(), "no run got as far as a record");
    assert!(
        finished.len() < 2 * PROBLEMS,
        "the kills came too late to interrupt anything ({} records)",
        finished.len()
    );
    // The last run finishes the work.
    let o = eval(&data, &out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&records).unwrap();
    assert!(text.ends_with('\n'));
    let all = complete_records(&records);
    assert_no_duplicates(&all, "at the end");
    assert_eq!(all.len(), 2 * PROBLEMS, "every problem once per strategy");
    let all: BTreeSet<_> = all.into_iter().collect();
    assert!(finished.is_subset(&all));
    // Only the records file, the settings, the lock and the summaries are left: no
    // temporary file of an interrupted atomic write stays behind for good.
    let stray: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n.ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "left behind: {stray:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
