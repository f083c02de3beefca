//! Sample whole solutions, then vote: Best-of-N (naive, majority, weighted), greedy as
//! its N = 1 case, the length-filtered vote and certainty-stopped waves of samples.

pub(crate) mod best_of_n;
pub(crate) mod certainty_vote;
pub mod length_vote;
