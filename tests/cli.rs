//! The `ponder` binary: `solve --json` output and its errors.

use std::process::Command;

/// Run `ponder`; commands that load a model get the test model (SmolLM2) unless the
/// arguments name one (the CLI's default model is Qwen2.5-Coder-0.5B).
fn ponder(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ponder"));
    cmd.args(args);
    let loads = matches!(args.first(), Some(&("solve" | "eval" | "bench-search")));
    if loads && !args.contains(&"--model") {
        cmd.args(["--model", "smollm2"]);
    }
    cmd.output().expect("run ponder")
}

#[test]
fn solve_json_has_the_documented_fields() {
    let out = ponder(&[
        "solve",
        "What is 6 times 7?",
        "--strategy",
        "best-of-n",
        "--n",
        "4",
        "--max-tokens",
        "24",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    assert_eq!(v["strategy"], "best-of-4-majority");
    assert!(v.get("answer").is_some());
    let cands = v["candidates"].as_array().unwrap();
    assert_eq!(cands.len(), 4);
    for c in cands {
        assert!(c["text"].is_string() && c.get("answer").is_some() && c["score"].is_number());
    }
    let st = &v["stats"];
    for k in [
        "prompt_tokens",
        "generated_tokens",
        "decoded_tokens",
        "decode_calls",
        "wall_ms",
    ] {
        assert!(st[k].as_f64().unwrap() > 0.0, "{k}: {st}");
    }
    let gen: u64 = cands.iter().map(|c| c["tokens"].as_u64().unwrap()).sum();
    assert_eq!(st["generated_tokens"].as_u64().unwrap(), gen);
}

#[test]
fn greedy_human_report_names_the_answer_and_stats() {
    let out = ponder(&[
        "solve",
        "What is 2 + 2?",
        "--strategy",
        "greedy",
        "--max-tokens",
        "16",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("answer: "), "{text}");
    assert!(
        text.contains("strategy: greedy") && text.contains("decode calls"),
        "{text}"
    );
}

#[test]
fn bad_input_gets_a_clear_error_not_a_panic() {
    let long = "many words ".repeat(300);
    let cases: &[(&[&str], &str)] = &[
        (
            &["solve", "q", "--strategy", "telepathy"],
            "invalid value 'telepathy' for '--strategy <STRATEGY>'\n  [possible values: greedy, best-of-n,",
        ),
        (
            &["solve", "q", "--max-tokens", "0"],
            "best-of-n: invalid max_tokens: 0",
        ),
        (&["solve", "q", "--n", "0"], "best-of-n: invalid n: 0"),
        (&["solve", "q", "--n", "1000"], "256"),
        (&["solve", "q", "--top-p", "2"], "top_p"),
        (
            &["solve", "q", "--scorer", "oracle"],
            "invalid value 'oracle' for '--scorer",
        ),
        (
            &["solve", "q", "--model", "/no/such/model.gguf"],
            "model file not found: /no/such/model.gguf",
        ),
        (
            &["solve", &long, "--strategy", "greedy", "--ctx", "256"],
            "prompt is",
        ),
        (&["solve", "  ", "--strategy", "greedy"], "the question is empty"),
        (&["solve", "q", "--timeout", "nan"], "invalid --timeout: NaN"),
        (&["solve", "q", "--timeout", "1e300"], "invalid --timeout"),
        (
            &["solve", "q", "--strategy", "mcts", "--set", "widht=2"],
            "mcts: unknown setting `widht` (settings: mcts: iterations, width,",
        ),
        (
            &["solve", "q", "--set", "vote=plurality"],
            "best-of-n: setting `vote`: unknown vote \"plurality\" (naive, majority, weighted, borda, borda:POWER)",
        ),
        (
            &["solve", "q", "--strategy", "early-exit", "--vote", "weighted"],
            "early-exit: --vote does not apply to early-exit",
        ),
        (
            &["solve", "q", "--set", "mcts.width=2"],
            "settings given for mcts, which this run does not use (best-of-n)",
        ),
        (
            &["solve", "q", "--config", "/no/such.toml"],
            "--config /no/such.toml: cannot read it",
        ),
        // Numbers out of range are refused before any model loads (--threads 0 spun
        // every core; a huge one overflows ggml's pool of 512).
        (
            &["solve", "q", "--threads", "0"],
            "invalid value '0' for '--threads <THREADS>': 0 is out of range: compute threads, 1 to 512",
        ),
        (&["solve", "q", "--threads=-3"], "-3 is out of range"),
        (
            &["solve", "q", "--threads", "100000"],
            "100000 is out of range: compute threads, 1 to 512",
        ),
        (
            &["solve", "q", "--ctx", "0"],
            "invalid value '0' for '--ctx <CTX>': 0 is out of range: KV cells, 1 to 1048576",
        ),
        (
            &["solve", "q", "--ctx", "99999999999"],
            "not a whole number in 1..=1048576",
        ),
        (
            &["solve", "q", "--budget-tokens", "0"],
            "0 is out of range: tokens over all branches of a problem, at least 1",
        ),
        (
            &["solve", "q", "--gpu-layers=-1"],
            "invalid value '-1' for '--gpu-layers <GPU_LAYERS>'",
        ),
        (
            &["solve", "q", "--strategy", "cascade", "--set", "stages=[]"],
            "cascade: invalid stages: none (a cascade needs at least one stage)",
        ),
        (
            &["solve", "q", "--prompt-style", "terse"],
            "unknown prompt style \"terse\" (cot, concise, chain-of-draft, token-budget, or a template file",
        ),
        (
            &["solve", "q", "--strategy", "pot", "--prompt-style", "concise"],
            "pot-8-majority writes programs with its own prompt",
        ),
    ];
    for (args, needle) in cases {
        let out = ponder(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn eval_bad_input_is_named_before_any_model_loads() {
    let dir = std::env::temp_dir().join(format!("ponder-cli-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    };
    let unknown = write("unknown.jsonl", "{\"prompt\": \"x\", \"label\": 1}\n");
    let empty = write("empty.jsonl", "\n");
    let bad = write("bad.jsonl", "{\"input\": \"1+1?\", \"target\": 2}\n{oops\n");
    let blocker = write("file", "x");
    let eight = write(
        "eight.jsonl",
        &"{\"input\": \"1+1?\", \"target\": 2}\n".repeat(8),
    );
    let empties = write(
        "empties.jsonl",
        "{\"input\": \"1+1?\", \"target\": 2}\n{\"input\": \" \", \"target\": 3}\n",
    );
    let all_empty = write("all-empty.jsonl", "{\"input\": \"\", \"target\": 3}\n");
    let out = dir.join("out").to_string_lossy().into_owned();
    let under_file = format!("{blocker}/out");
    // Another eval writing into a folder holds its lock: a second is refused at once.
    let busy = dir.join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    let held = std::fs::File::create(busy.join("eval.lock")).unwrap();
    held.lock().unwrap();
    let busy = busy.to_string_lossy().into_owned();
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["--dataset", &unknown, "--out", &out],
            "found [\"prompt\", \"label\"]".into(),
        ),
        (
            vec!["--dataset", &empty, "--out", &out],
            "has no records".into(),
        ),
        (
            vec!["--dataset", &bad, "--out", &out],
            format!("{bad}:2: malformed JSON"),
        ),
        (
            vec![
                "--dataset",
                &bad,
                "--out",
                &under_file,
                "--on-bad-line",
                "skip",
            ],
            format!("cannot write to {under_file}"),
        ),
        (
            vec![
                "--dataset",
                &bad,
                "--out",
                &out,
                "--strategies",
                "greedy,oracle",
            ],
            "invalid value 'oracle' for '--strategies <STRATEGIES>'".into(),
        ),
        (
            // 8 problems × MCTS's 48 + 4 + 1 sequences: over llama.cpp's 256, refused
            // before loading, naming the way out.
            vec![
                "--dataset",
                &eight,
                "--out",
                &out,
                "--strategies",
                "mcts",
                "--concurrency",
                "8",
            ],
            "8 concurrent problems × 53 sequences each = 424, more than llama.cpp's 256: solve fewer problems at once (--concurrency) or lower the strategy's N (--n; mcts, dpts: or --set max_live=…)".into(),
        ),
        (
            vec![
                "--dataset",
                &eight,
                "--out",
                &out,
                "--strategies",
                "dpts",
                "--set",
                "max_live=3",
            ],
            "3 is fewer than the width 4".into(),
        ),
        (
            vec!["--dataset", &eight, "--out", &out, "--concurrency", "100000"],
            "invalid value '100000' for '--concurrency <CONCURRENCY>': 100000 is out of range: problems solved at once, 1 to 256".into(),
        ),
        (
            vec!["--dataset", &eight, "--out", &out, "--concurrency", "0"],
            "0 is out of range: problems solved at once".into(),
        ),
        (
            vec!["--dataset", &eight, "--out", &out, "--limit", "0"],
            "invalid value '0' for '--limit <LIMIT>': 0 is out of range: problems, at least 1".into(),
        ),
        (
            vec!["--dataset", &eight, "--out", &out, "--threads", "0"],
            "0 is out of range: compute threads, 1 to 512".into(),
        ),
        (
            vec!["--dataset", &eight, "--out", &out, "--budget-tokens", "0"],
            "0 is out of range: tokens over all branches".into(),
        ),
        (
            // An empty question is a bad line, named, like a malformed one...
            vec!["--dataset", &empties, "--out", &out],
            format!("{empties}:2: empty question (field \"input\")"),
        ),
        (
            // ...and skipped with --on-bad-line skip (here leaving nothing to solve).
            vec![
                "--dataset",
                &all_empty,
                "--out",
                &out,
                "--on-bad-line",
                "skip",
            ],
            format!("has no usable records: all 1 were skipped as bad lines; the first: {all_empty}:1: empty question"),
        ),
        (
            vec!["--dataset", &eight, "--out", &busy],
            format!("{busy} is in use: another ponder eval holds its lock"),
        ),
    ];
    for (args, needle) in cases {
        let mut all = vec!["eval"];
        all.extend(args.iter());
        let o = ponder(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{all:?}");
        assert!(err.contains(&needle), "{all:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn eval_summary_only_reads_records_without_a_model() {
    let dir = std::env::temp_dir().join(format!("ponder-cli-summary-{}", std::process::id()));
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let data = dir.join("d.jsonl");
    std::fs::write(
        &data,
        "{\"input\": \"1+1?\", \"target\": 2}\n{\"input\": \"2+2?\", \"target\": 4}\n",
    )
    .unwrap();
    let rec = |id: &str, strategy: &str, correct: bool, tokens: u64| {
        format!(
            "{{\"id\":\"{id}\",\"index\":0,\"strategy\":\"{strategy}\",\"gold\":\"2\",\"answer\":null,\"correct\":{correct},\"generated_tokens\":{tokens},\"prompt_tokens\":5,\"decoded_tokens\":0,\"decode_calls\":0,\"wall_ms\":1000.0,\"seed\":0,\"truncated\":false,\"candidates\":1,\"candidates_correct\":0}}\n"
        )
    };
    let records = [
        rec("line-1", "bon", true, 800),
        rec("line-2", "bon", true, 1200),
        rec("line-1", "cheap", true, 100),
        rec("line-2", "cheap", false, 300),
    ]
    .concat();
    std::fs::write(out.join("records.jsonl"), records).unwrap();
    let (data, out) = (data.to_string_lossy(), out.to_string_lossy());
    // The model named does not exist: nothing is loaded.
    let base = [
        "eval",
        "--dataset",
        &data,
        "--out",
        &out,
        "--summary-only",
        "--model",
        "/nope.gguf",
    ];
    let o = ponder(&[&base[..], &["--baseline", "bon"]].concat());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("| cheap | 2 | 50.0% |"), "{text}");
    // This command's default N and token limit are not the recorded runs': not claimed.
    let md = std::fs::read_to_string(dir.join("out/summary.md")).unwrap();
    assert!(
        md.contains("2 problems · from recorded runs · seed 0") && !md.contains("N="),
        "{md}"
    );
    // cheap: 200 tokens against 1000, 50% inside bon's interval for 2 of 2 (34.2–100%).
    assert!(
        text.contains("| cheap | 50.0% | yes | 200 | 0.20 | 1.00 |"),
        "{text}"
    );
    let o = ponder(&[&base[..], &["--baseline", "oracle"]].concat());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("baseline oracle has no records here (recorded: bon, cheap)"),
        "{err}"
    );
    // Solving with a baseline that neither this run nor the folder has: refused before
    // any model loads (the model named does not exist).
    let o = ponder(&[
        "eval",
        "--dataset",
        &data,
        "--out",
        &out,
        "--strategies",
        "greedy",
        "--baseline",
        "oracle",
        "--model",
        "/nope.gguf",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("--baseline oracle: not among this run's strategies (greedy) nor recorded in"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn step_searches_run_from_the_cli() {
    for (strategy, scorer, depth) in [
        ("beam", "verifier", "iterations=4"),
        ("dvts", "self-certainty", "iterations=4"),
        ("mcts", "judge", "max_depth=3"),
    ] {
        let out = ponder(&[
            "solve",
            "What is 6 times 7?",
            "--strategy",
            strategy,
            "--scorer",
            scorer,
            "--n",
            "4",
            "--set",
            "width=2",
            "--set",
            depth,
            "--max-tokens",
            "48",
            "--threads",
            "1",
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{strategy}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v["strategy"].as_str().unwrap().starts_with(strategy));
        let st = &v["stats"];
        let (p, g, d) = (
            st["prompt_tokens"].as_u64().unwrap(),
            st["generated_tokens"].as_u64().unwrap(),
            st["decoded_tokens"].as_u64().unwrap(),
        );
        assert!(d <= p + g, "{strategy}: decoded {d} > {p} + {g}");
        assert_eq!(
            v["scorer_stats"].is_object(),
            scorer == "judge",
            "{strategy}"
        );
    }
}

#[test]
fn step_search_bad_input_is_named() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--strategy", "beam", "--n", "6", "--set", "width=4"],
            "4 does not divide n = 6",
        ),
        (
            &["--strategy", "beam", "--scorer", "prm"],
            "--scorer prm needs --prm",
        ),
        (
            &[
                "--strategy",
                "beam",
                "--scorer",
                "judge",
                "--prm-preset",
                "nope",
            ],
            "unknown PRM preset",
        ),
        (
            &["--strategy", "beam", "--scorer", "oracle"],
            "invalid value 'oracle'",
        ),
        (&["--strategy", "beam", "--step-tokens", "0"], "step tokens"),
        (
            &["--strategy", "rsd", "--max-step-tokens", "0"],
            "max step tokens: 0",
        ),
        (
            &[
                "--strategy",
                "beam",
                "--scorer",
                "prm",
                "--prm",
                "/no/such.gguf",
            ],
            "/no/such.gguf",
        ),
    ];
    for (args, want) in cases {
        let mut a = vec!["solve", "What is 6 times 7?", "--max-tokens", "16"];
        a.extend_from_slice(args);
        let out = ponder(&a);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// Program strategies end to end on SmolLM2 (which writes no sound programs): every
/// candidate has an answer or the error of its program, in JSON and in the report; a
/// limit of 0 is refused before any model loads.
#[test]
fn program_strategies_run_and_show_program_errors() {
    for (strategy, n) in [("pot", "3"), ("mixed", "4")] {
        let out = ponder(&[
            "solve",
            "What is 6 times 7?",
            "--strategy",
            strategy,
            "--n",
            n,
            "--max-tokens",
            "48",
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{strategy}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let cands = v["candidates"].as_array().unwrap();
        assert_eq!(cands.len(), n.parse::<usize>().unwrap(), "{strategy}");
        let programs = if strategy == "pot" {
            &cands[..]
        } else {
            &cands[2..]
        };
        for c in programs {
            assert!(
                c["answer"].is_string() != c["error"].is_string(),
                "{strategy}: an answer or an error: {c}"
            );
        }
    }
    let out = ponder(&[
        "solve",
        "What is 6 times 7?",
        "--strategy",
        "pot",
        "--n",
        "2",
        "--max-tokens",
        "24",
    ]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains("error: ") || report.contains("answer="),
        "{report}"
    );
    for bad in [
        "limits.max_steps=0",
        "limits.wall=0",
        "limits.max_heap_bytes=0",
    ] {
        let out = ponder(&["solve", "q", "--strategy", "pot", "--set", bad]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("pot:") && err.contains("limits"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn token_saving_strategies_run_from_the_cli() {
    for (strategy, extra) in [
        ("spec-rejection", &["--n", "8", "--set", "alpha=0.5"][..]),
        ("length-vote", &["--n", "4"][..]),
        (
            "early-exit",
            &["--set", "chunk=16", "--set", "window=2"][..],
        ),
        ("certainty-vote", &["--n", "8", "--set", "wave=4"][..]),
        ("st-bon", &["--n", "4"][..]),
        ("st-bon", &["--n", "4", "--set", "final_layer=true"][..]),
        ("fast-mcts", &["--n", "3", "--scorer", "verifier"][..]),
        (
            "dpts",
            &["--n", "2", "--set", "width=2", "--scorer", "verifier"][..],
        ),
    ] {
        let mut args = vec![
            "solve",
            "What is 6 times 7?",
            "--strategy",
            strategy,
            "--max-tokens",
            "48",
            "--threads",
            "1",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = ponder(&args);
        assert!(
            out.status.success(),
            "{strategy}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v["strategy"].as_str().unwrap().starts_with(strategy));
        assert!(!v["candidates"].as_array().unwrap().is_empty());
        let st = &v["stats"];
        assert!(st["generated_tokens"].as_u64().unwrap() > 0, "{strategy}");
    }
    let out = ponder(&[
        "solve",
        "q",
        "--strategy",
        "spec-rejection",
        "--set",
        "alpha=1",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("spec-rejection: invalid alpha"));
}

#[test]
fn rsd_runs_with_a_draft_and_names_bad_models() {
    let solve = |reward: &[&str]| {
        let mut a = vec![
            "solve",
            "What is 6 times 7?",
            "--strategy",
            "rsd",
            "--draft-model",
            "smollm2",
            "--max-tokens",
            "40",
            "--threads",
            "1",
            "--json",
        ];
        a.extend_from_slice(reward);
        ponder(&a)
    };
    let out = solve(&["--scorer", "verifier"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("RSD is pointless"),
        "same file for both: {err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &v["draft"];
    assert!(d["steps"].as_u64().unwrap() >= 1);
    let rate = d["acceptance_rate"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&rate));
    assert!(d["stats"]["generated_tokens"].as_u64().unwrap() > 0);

    // The target as the reward runs end to end on the real model and names itself.
    let out = solve(&["--set", "reward=target"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["strategy"], "rsd-target-d0.7");
    let d = &v["draft"];
    assert!(d["steps"].as_u64().unwrap() >= 1);
    assert!(d["accepted_steps"].as_u64().unwrap() <= d["steps"].as_u64().unwrap());

    let cases: &[(&[&str], &str)] = &[
        (
            &["--strategy", "rsd"],
            "rsd-d0.7 needs a draft model: --draft-model",
        ),
        (
            &["--strategy", "rsd", "--draft-model", "/no/draft.gguf"],
            "the draft model",
        ),
        (
            &[
                "--strategy",
                "rsd",
                "--draft-model",
                "smollm2",
                "--model",
                "/no/target.gguf",
            ],
            "the model (--model)",
        ),
        (
            &[
                "--strategy",
                "rsd",
                "--draft-model",
                "smollm2",
                "--set",
                "threshold=1.5",
            ],
            "rsd: invalid threshold: 1.5",
        ),
        (
            &[
                "--strategy",
                "rsd",
                "--draft-model",
                "smollm2",
                "--set",
                "reward=prm",
            ],
            "rsd: setting `reward`: unknown variant `prm`, expected `scorer` or `target`",
        ),
    ];
    for (args, want) in cases {
        let mut a = vec!["solve", "q", "--max-tokens", "16"];
        a.extend_from_slice(args);
        let out = ponder(&a);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(want),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn eval_refuses_to_mix_runs_with_other_settings_under_one_name() {
    let dir = std::env::temp_dir().join(format!("ponder-cli-settings-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("d.jsonl");
    std::fs::write(&data, "{\"input\": \"What is 2 + 3?\", \"target\": 5}\n").unwrap();
    let out = dir.join("out");
    let (data, out_s) = (data.to_string_lossy(), out.to_string_lossy());
    let run = |extra: &[&str]| {
        let base = [
            "eval",
            "--dataset",
            &data,
            "--out",
            &out_s,
            "--strategies",
            "greedy",
        ];
        ponder(&[&base[..], extra].concat())
    };
    let o = run(&["--max-tokens", "8"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let settings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("settings.json")).unwrap()).unwrap();
    assert_eq!(settings["greedy"]["strategy"]["max_tokens"], 8);
    assert_eq!(settings["greedy"]["kind"], "greedy");
    assert_eq!(
        settings["greedy"]["model"],
        "SmolLM2-135M-Instruct.Q4_1.gguf"
    );
    // Another token limit under the same name: refused, nothing solved or appended.
    let o = run(&["--max-tokens", "16"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains(
            "holds greedy records made with other settings (strategy.max_tokens 8 there, 16 here)"
        ),
        "{err}"
    );
    let records = std::fs::read_to_string(out.join("records.jsonl")).unwrap();
    assert_eq!(records.lines().count(), 1);
    // A flag greedy does not have (its sampling is fixed) is refused, not ignored.
    let o = run(&["--max-tokens", "8", "--temperature", "0.3"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("greedy: --temperature does not apply to greedy"),
        "{err}"
    );
    // The same settings from a config file: nothing new to do.
    let config = dir.join("greedy.toml");
    std::fs::write(&config, "[greedy]\nmax_tokens = 8\n").unwrap();
    let o = run(&["--config", &config.to_string_lossy()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("0 to do"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn strategies_lists_the_registry_and_the_help_cannot_drift() {
    let o = ponder(&["strategies", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let list = v.as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ponder::search::registry::names());
    for e in list {
        assert!(!e["summary"].as_str().unwrap().is_empty(), "{e}");
        assert!(!e["settings"].as_array().unwrap().is_empty(), "{e}");
    }
    let mcts = list.iter().find(|e| e["name"] == "mcts").unwrap();
    assert_eq!(mcts["n"], "iterations");
    assert_eq!(mcts["defaults"]["c_init"], 1.25);
    let o = ponder(&["strategies", "mcts"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.starts_with("mcts\n") && text.contains("c_init = 1.25"),
        "{text}"
    );
    // solve's help lists exactly the registered names, in registry order.
    let help = String::from_utf8_lossy(&ponder(&["solve", "--help"]).stdout).into_owned();
    assert!(help.contains(&names.join(", ")), "{help}");
    // A config file's settings reach the strategy (here: a width that does not divide N).
    let dir = std::env::temp_dir().join(format!("ponder-cli-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = dir.join("beam.toml");
    std::fs::write(&toml, "[beam]\nwidth = 3\n").unwrap();
    let json = dir.join("beam.json");
    std::fs::write(&json, "{\"beam\": {\"width\": 5}}").unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "width = = 3").unwrap();
    for (file, want) in [
        (&toml, "beam: invalid beam width: 3 does not divide n = 8"),
        (&json, "beam: invalid beam width: 5 does not divide n = 8"),
        (&bad, "not TOML"),
    ] {
        let o = ponder(&[
            "solve",
            "q",
            "--strategy",
            "beam",
            "--config",
            &file.to_string_lossy(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_probe_trains_scores_and_refuses_what_does_not_fit() {
    let dir = std::env::temp_dir().join(format!("ponder-cli-probe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Sums SmolLM2 gets right some of the time: both labels occur.
    let data: String = [
        (1, 1),
        (2, 2),
        (3, 4),
        (10, 5),
        (7, 8),
        (20, 30),
        (6, 6),
        (9, 1),
    ]
    .iter()
    .map(|(a, b)| {
        format!(
            "{{\"question\": \"What is {a} + {b}?\", \"answer\": \"#### {}\"}}\n",
            a + b
        )
    })
    .collect();
    let data_path = dir.join("sums.jsonl");
    std::fs::write(&data_path, data).unwrap();
    let probe = dir.join("probe.json");
    let (data_s, probe_s) = (data_path.to_string_lossy(), probe.to_string_lossy());
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train-probe",
            "--model",
            "smollm2",
            "--dataset",
            &data_s,
            "--samples",
            "4",
            "--max-tokens",
            "64",
        ];
        args.extend_from_slice(extra);
        ponder(&args)
    };
    let o = train(&["--out", &probe_s]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        text.contains("8 problems (0..6 train, 6..8 validate) × 4 samples"),
        "{text}"
    );
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&probe).unwrap()).unwrap();
    let model = ponder::models::test_model().unwrap();
    assert_eq!(
        file["model"]["sha256"],
        ponder::models::checksum(&model).unwrap().as_str()
    );
    assert_eq!(file["model"]["n_embd"], 576);
    assert_eq!(file["logistic"]["weights"].as_array().unwrap().len(), 576);

    // Best-of-n by the probe: every candidate scored in (0, 1) from hidden states.
    let solve = |extra: &[&str]| {
        let mut args = vec![
            "solve",
            "What is 3 + 5?",
            "--n",
            "3",
            "--max-tokens",
            "48",
            "--scorer",
            "probe",
            "--vote",
            "naive",
            "--json",
        ];
        args.extend_from_slice(extra);
        ponder(&args)
    };
    let o = solve(&["--probe", &probe_s]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sol: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let cands = sol["candidates"].as_array().unwrap();
    assert_eq!(cands.len(), 3);
    for c in cands {
        let s = c["score"].as_f64().unwrap();
        assert!(s > 0.0 && s < 1.0, "{c}");
        assert_eq!(c["signals"]["probe"].as_f64(), Some(s));
    }

    // What does not fit is named.
    let other = dir.join("other.json");
    let mut f = file.clone();
    f["model"]["sha256"] = "ab".repeat(32).into();
    std::fs::write(&other, f.to_string()).unwrap();
    let narrow = dir.join("narrow.json");
    let mut f = file.clone();
    f["model"]["n_embd"] = 2.into();
    f["logistic"] = serde_json::json!({
        "mean": [0.0, 0.0], "scale": [1.0, 1.0], "weights": [0.0, 0.0], "bias": 0.0
    });
    std::fs::write(&narrow, f.to_string()).unwrap();
    let junk = dir.join("junk.json");
    std::fs::write(&junk, "not a probe").unwrap();
    let (other, narrow, junk) = (
        other.to_string_lossy(),
        narrow.to_string_lossy(),
        junk.to_string_lossy(),
    );
    let no_gold = dir.join("questions.jsonl");
    std::fs::write(&no_gold, "{\"question\": \"What is 2 + 2?\"}\n").unwrap();
    let no_gold = no_gold.to_string_lossy();
    let cases: Vec<(std::process::Output, String)> = vec![
        (
            solve(&["--probe", &other]),
            "was trained on SmolLM2-135M-Instruct.Q4_1.gguf (sha256 abab".into(),
        ),
        (
            solve(&["--probe", &narrow]),
            "reads hidden states of width 2, but this model's are 576 wide".into(),
        ),
        (
            solve(&["--probe", &junk]),
            "junk.json does not parse".into(),
        ),
        (solve(&[]), "--scorer probe needs --probe FILE".into()),
        (
            ponder(&["solve", "q", "--probe", &probe_s]),
            "--probe is read only by --scorer probe".into(),
        ),
        (
            ponder(&[
                "solve",
                "q",
                "--strategy",
                "rsd",
                "--draft-model",
                "smollm2",
                "--scorer",
                "probe",
                "--probe",
                &probe_s,
            ]),
            "the steps it scores are the draft model's".into(),
        ),
        (
            ponder(&[
                "train-probe",
                "--model",
                "smollm2",
                "--dataset",
                &no_gold,
                "--out",
                &probe_s,
            ]),
            "a probe trains on problems with gold answers".into(),
        ),
        (
            train(&["--out", &probe_s, "--validation", "1"]),
            "invalid validation: 1 (must be in [0, 1))".into(),
        ),
    ];
    for (o, needle) in cases {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{needle}");
        assert!(err.contains(&needle), "{needle}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
