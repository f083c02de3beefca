//! Hostile model-written programs through the sandbox the CLI uses (`ponder
//! run-program` in a child process, address space capped at 1 GiB): each ends in a
//! clear per-candidate error within its wall-time limit (plus the child's start),
//! never a hang, a crash of ponder or unbounded memory; a sound program still answers.

use ponder::search::program::{answer_of, Executor, Limits, ProgramError};
use std::time::{Duration, Instant};

fn sandbox() -> Executor {
    Executor::Subprocess {
        program: env!("CARGO_BIN_EXE_ponder").into(),
        args: vec!["run-program".into()],
    }
}

#[test]
fn a_sound_program_answers_through_the_sandbox() {
    let text = "```python\ndef solution():\n    eggs = 16 - 3 - 4\n    return eggs * 2\n```";
    assert_eq!(
        answer_of(text, &sandbox(), &Limits::default()).as_deref(),
        Ok("18")
    );
}

#[test]
fn hostile_programs_end_in_a_clear_error_within_their_limit() {
    let limits = Limits {
        wall: Duration::from_millis(1500),
        ..Limits::default()
    };
    let long_source = "x = 1\n".repeat(5000);
    type Check = fn(&ProgramError) -> bool;
    let cases: Vec<(&str, &str, Check)> = vec![
        (
            "infinite loop",
            "n = 0\nfor i in range(1000000):\n    for j in range(1000000):\n        n += 1\nanswer = n",
            |e| {
                matches!(
                    e,
                    ProgramError::StepLimit(_) | ProgramError::Timeout(_) | ProgramError::MemoryLimit(_)
                )
            },
        ),
        ("deep recursion", "def f(n):\n    return f(n + 1)\nanswer = f(0)", |e| {
            matches!(e, ProgramError::DepthLimit(_) | ProgramError::Runtime(_))
        }),
        (
            "huge list",
            "xs = []\nfor i in range(100000000):\n    xs.append([i, i, i])\nanswer = len(xs)",
            |e| {
                matches!(
                    e,
                    ProgramError::MemoryLimit(_) | ProgramError::StepLimit(_) | ProgramError::Timeout(_)
                )
            },
        ),
        (
            "string doubling",
            "s = 'ab'\nfor i in range(60):\n    s = s + s\nanswer = len(s)",
            |e| matches!(e, ProgramError::MemoryLimit(_) | ProgramError::Crashed(_)),
        ),
        (
            "one huge allocation",
            "answer = len('abcd' * 2000000000)",
            |e| matches!(e, ProgramError::MemoryLimit(_) | ProgramError::Crashed(_) | ProgramError::Runtime(_)),
        ),
        ("load", "load('secrets.star', 'key')\nanswer = key", |e| {
            matches!(e, ProgramError::Syntax(_) | ProgramError::Runtime(_))
        }),
        ("import", "import os\nanswer = os.listdir('/')", |e| {
            matches!(e, ProgramError::Forbidden(_))
        }),
        ("very long source", &long_source, |e| {
            matches!(e, ProgramError::TooLong { .. })
        }),
        (
            "deep nesting",
            "answer = ((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((1))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))",
            |e| matches!(e, ProgramError::TooDeep { .. }),
        ),
    ];
    for (what, text, ok) in cases {
        let t = Instant::now();
        let e = answer_of(text, &sandbox(), &limits).unwrap_err();
        let took = t.elapsed();
        assert!(ok(&e), "{what}: {e:?}");
        assert!(
            took < limits.wall + Duration::from_secs(2),
            "{what}: took {took:?}"
        );
        eprintln!("{what}: {e} ({took:?})");
    }
}
