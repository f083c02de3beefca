//! Sample whole solutions, then vote: Best-of-N (naive, majority, weighted), greedy as
//! its N = 1 case, the length-filtered vote and certainty-stopped waves of samples.

pub(crate) mod adaptive;
pub(crate) mod best_of_n;
pub mod cascade;
pub(crate) mod certainty_vote;
pub mod length_vote;
pub(crate) mod program;

use crate::strategy::{was_truncated, Candidate, Cx, Problem, SearchError};
use ponder_engine::{GenSpec, Prompt, Stats};

/// Samples in waves of `wave` forks of one prefilled prompt (each wave decodes
/// together, and with every other problem's work), at most `n` in all, until `enough`
/// says the candidates so far settle the answer or a budget cut one short. `each_wave`
/// finishes a wave's new candidates first (e.g. runs their programs). Returns the
/// candidates, the problem's stats (read after every branch is released) and the time
/// spent scoring (ms).
pub(crate) fn sample_in_waves(
    cx: &Cx,
    problem: &Problem,
    prompt: &Prompt,
    (n, wave): (usize, usize),
    spec: &GenSpec,
    each_wave: impl Fn(&mut [Candidate]),
    enough: impl Fn(&[Candidate]) -> bool,
) -> Result<(Vec<Candidate>, Stats, f64), SearchError> {
    let session = cx.session(problem);
    // The prompt is evaluated once; every wave forks from it.
    let root = session.prefill_prompt(prompt)?;
    let mut candidates = Vec::new();
    let mut scoring_ms = 0.0;
    while candidates.len() < n {
        let k = wave.min(n - candidates.len());
        let mut branches = root.fork(k)?;
        session.extend(branches.iter_mut(), spec)?;
        let t = std::time::Instant::now();
        let mut new = cx.candidates(problem, &branches)?;
        scoring_ms += t.elapsed().as_secs_f64() * 1e3;
        drop(branches);
        each_wave(&mut new);
        candidates.extend(new);
        if enough(&candidates) || was_truncated(&candidates) {
            break;
        }
    }
    drop(root);
    Ok((candidates, session.stats(), scoring_ms))
}
