//! Programs in process: the shapes a model writes, the prelude against hand-computed
//! values, and hostile programs that the interpreter's own limits end. (A single
//! instruction that allocates without bound needs the child process: `tests/programs.rs`
//! at the workspace root runs the whole hostile suite through `ponder run-program`.)

use super::*;
use std::time::{Duration, Instant};

/// Whether an error is the one a case expects.
type Check = fn(&ProgramError) -> bool;

fn run(text: &str) -> Result<String, ProgramError> {
    answer_of(text, &Executor::InProcess, &Limits::default())
}

#[test]
fn every_shape_of_program_gives_its_answer() {
    let cases = [
        ("```python\ndef solution():\n    apples = 5\n    eaten = 2\n    return apples - eaten\n```", "3"),
        ("answer = 12 * 3 + 1", "37"),
        ("x = 7\ny = 6\nx * y", "42"),
        ("total = 0\nfor i in range(1, 11):\n    total += i\nprint(total)", "55"),
        ("def solution():\n    return 10 / 4\n", "2.5"),
        ("def solution():\n    return 9 / 3\n", "3"),
        ("result = 1 / 3", "0.333333"),
        // The usual main guard runs as in Python.
        ("def solution():\n    return 8\nif __name__ == \"__main__\":\n    print(solution())", "8"),
        // A self-check that asserts something wrong does not cost the answer.
        ("def solution():\n    return 40\ndef check():\n    assert solution() == 10, \"bad\"\n    print(\"ok\")\ncheck()", "40"),
        // f-strings and a printed answer line.
        ("n = 4\nprint(f\"The answer is {n}\")", "4"),
    ];
    for (text, want) in cases {
        assert_eq!(run(text).as_deref(), Ok(want), "{text}");
    }
}

#[test]
fn the_prelude_computes_what_python_does() {
    let cases = [
        ("answer = sum([1, 2, 3.5])", "6.5"),
        ("answer = round(2.5)", "2"),
        ("answer = round(3.5)", "4"),
        ("answer = round(2.675, 1)", "2.7"),
        ("answer = divmod(17, 5)", "(3,2)"),
        ("answer = pow(2, 10)", "1024"),
        ("import math\nanswer = math.sqrt(2)", "1.414214"),
        (
            "import math\nanswer = math.floor(-2.5) + math.ceil(2.1)",
            "0",
        ),
        (
            "from math import gcd, factorial\nanswer = gcd(84, 36) + factorial(5)",
            "132",
        ),
        ("import math\nanswer = math.comb(10, 3)", "120"),
        ("import math as m\nanswer = m.isqrt(99)", "9"),
        ("import math\nanswer = math.pow(2, 0.5)", "1.414214"),
        ("import math\nanswer = round(math.pi * 2 * 2, 2)", "12.57"),
    ];
    for (text, want) in cases {
        assert_eq!(run(text).as_deref(), Ok(want), "{text}");
    }
}

#[test]
fn programs_that_fail_say_why() {
    let cases: [(&str, Check); 7] = [
        ("The answer is four.", |e| {
            matches!(e, ProgramError::NoProgram)
        }),
        ("def solution(:\n  return 1", |e| {
            matches!(e, ProgramError::Syntax(_))
        }),
        ("answer = 1 / 0", |e| matches!(e, ProgramError::Runtime(_))),
        ("answer = undefined_name + 1", |e| {
            matches!(e, ProgramError::Syntax(_) | ProgramError::Runtime(_))
        }),
        ("x = 3", |e| matches!(e, ProgramError::NoResult)),
        ("def solution():\n    pass", |e| {
            matches!(e, ProgramError::NoResult)
        }),
        ("import os\nanswer = 1", |e| {
            matches!(e, ProgramError::Forbidden(_))
        }),
    ];
    for (text, ok) in cases {
        let e = run(text).unwrap_err();
        assert!(ok(&e), "{text}: {e:?}");
    }
}

/// Each hostile program ends in its limit's error within the wall time (plus slack).
/// (Not string doubling: between two of the interpreter's periodic checks a doubling
/// loop can allocate gigabytes, which only the child process's OS cap stops.)
#[test]
fn hostile_programs_end_in_their_limit() {
    let limits = Limits {
        wall: Duration::from_millis(1500),
        ..Limits::default()
    };
    let cases: [(&str, &str, Check); 6] = [
        (
            "infinite loop",
            "def solution():\n    n = 0\n    for i in range(1000000):\n        for j in range(1000000):\n            n += j\n    return n",
            // Its growing integers fill the heap, or it runs out of steps or time.
            |e| {
                matches!(
                    e,
                    ProgramError::StepLimit(_) | ProgramError::Timeout(_) | ProgramError::MemoryLimit(_)
                )
            },
        ),
        (
            "deep recursion",
            "def f(n):\n    return f(n + 1)\nanswer = f(0)",
            |e| matches!(e, ProgramError::DepthLimit(_) | ProgramError::Runtime(_)),
        ),
        (
            "huge list",
            "xs = []\nfor i in range(100000000):\n    xs.append([i, i, i])\nanswer = len(xs)",
            |e| matches!(e, ProgramError::MemoryLimit(_) | ProgramError::StepLimit(_) | ProgramError::Timeout(_)),
        ),
        ("load", "load('x.star', 'y')\nanswer = y", |e| {
            matches!(e, ProgramError::Syntax(_) | ProgramError::Runtime(_))
        }),
        ("import", "import subprocess\nanswer = 1", |e| {
            matches!(e, ProgramError::Forbidden(_))
        }),
        ("very long source", &"x = 1\n".repeat(5000), |e| {
            matches!(e, ProgramError::TooLong { .. })
        }),
    ];
    for (what, text, ok) in cases {
        let t = Instant::now();
        let e = answer_of(text, &Executor::InProcess, &limits).unwrap_err();
        let took = t.elapsed();
        assert!(ok(&e), "{what}: {e:?}");
        assert!(
            took < limits.wall + Duration::from_secs(1),
            "{what}: took {took:?}"
        );
    }
}

#[test]
fn limits_of_zero_are_refused() {
    for l in [
        Limits {
            max_steps: 0,
            ..Limits::default()
        },
        Limits {
            max_heap_bytes: 0,
            ..Limits::default()
        },
        Limits {
            max_depth: 0,
            ..Limits::default()
        },
        Limits {
            wall: Duration::ZERO,
            ..Limits::default()
        },
    ] {
        assert!(matches!(
            Executor::InProcess.run("answer = 1", &l),
            Err(ProgramError::BadLimits(_))
        ));
    }
}

#[test]
fn floats_read_as_answers() {
    assert_eq!(format_float(2.0), "2");
    assert_eq!(format_float(0.1 + 0.2), "0.3");
    assert_eq!(format_float(-0.0000001), "0");
    assert_eq!(format_float(1234567.125), "1234567.125");
}
