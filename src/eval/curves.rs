//! One run's candidates, re-voted offline. From the candidates a run recorded for each
//! problem (N of them), the accuracy every selection method would have had with fewer
//! samples: at k = 1, 2, 4, … N, each problem's expected accuracy over its k-subsets
//! (all of them where there are at most [`MAX_SUBSETS`], else that many drawn with a
//! fixed seed), averaged over problems — how search-and-learn derives a whole curve from
//! one run. And each signal's AUROC: how well it ranks right candidates above wrong ones.

use super::records::{CandidateRecord, Record};
use ponder_search::answer::answer_key;
use ponder_search::vote::{select, Vote, BORDA_POWER};
use ponder_search::Candidate;
use rand::seq::index::sample;
use rand::SeedableRng;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

/// The most k-subsets of one problem's candidates a curve point averages over.
pub const MAX_SUBSETS: usize = 256;

/// The signal AUROC is also measured for that no candidate records: the share of the
/// problem's candidates that give the same answer (what majority voting counts).
pub const ANSWER_FREQUENCY: &str = "answer-frequency";

/// How one answer is picked from a set of candidates.
#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    /// A vote; a vote that uses scores (naive, weighted, Borda) reads them from one signal.
    Vote(Vote, Option<String>),
    /// Not a selection: a problem counts when any candidate is right (the ceiling).
    AnyCorrect,
}

impl Method {
    /// The method's name in tables and legends: `majority`, `weighted by verifier`.
    pub fn label(&self) -> String {
        match self {
            Method::Vote(v, None) => v.label(),
            Method::Vote(v, Some(s)) => format!("{} by {s}", v.label()),
            Method::AnyCorrect => "any correct (ceiling)".into(),
        }
    }
}

/// Accuracy at each sample count for one method.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Curve {
    /// [`Method::label`].
    pub method: String,
    /// (k, accuracy in [0, 1]) for k = 1, 2, 4, … N.
    pub points: Vec<(usize, f64)>,
}

/// One signal's power to tell right candidates from wrong ones.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Discrimination {
    /// The signal's name.
    pub signal: String,
    /// P(a right candidate scores above a wrong one), ties counting half; None when
    /// there are no right or no wrong candidates.
    pub auroc: Option<f64>,
    /// Right candidates with this signal.
    pub right: usize,
    /// Wrong candidates with this signal (no answer counts as wrong).
    pub wrong: usize,
}

/// 1, 2, 4, … up to `n`, with `n` itself last when it is no power of two.
pub fn sizes(n: usize) -> Vec<usize> {
    let mut out: Vec<usize> = std::iter::successors(Some(1usize), |k| k.checked_mul(2))
        .take_while(|&k| k <= n)
        .collect();
    if n > 0 && out.last() != Some(&n) {
        out.push(n);
    }
    out
}

/// The signals every candidate of these records has, in name order.
pub fn common_signals(records: &[&Record]) -> Vec<String> {
    let mut cands = records.iter().flat_map(|r| &r.per_candidate);
    let Some(first) = cands.next() else {
        return Vec::new();
    };
    let mut common: BTreeSet<&String> = first.scores.keys().collect();
    for c in cands {
        common.retain(|s| c.scores.contains_key(*s));
    }
    common.into_iter().cloned().collect()
}

/// The selection methods for these signals: majority; naive, weighted (only for a
/// signal never below 0: weights must be) and Borda by each; the any-correct ceiling.
pub fn methods(records: &[&Record], signals: &[String]) -> Vec<Method> {
    let mut out = vec![Method::Vote(Vote::Majority, None)];
    for s in signals {
        out.push(Method::Vote(Vote::Naive, Some(s.clone())));
        let nonnegative = records
            .iter()
            .flat_map(|r| &r.per_candidate)
            .all(|c| c.scores[s] >= 0.0);
        if nonnegative {
            out.push(Method::Vote(Vote::Weighted, Some(s.clone())));
        }
        out.push(Method::Vote(Vote::Borda(BORDA_POWER), Some(s.clone())));
    }
    out.push(Method::AnyCorrect);
    out
}

/// Each method's curve over these records (one per problem), at [`sizes`] of the most
/// candidates any record has; a problem with fewer than k candidates votes with all of
/// its own. Records without candidates are left out; None when none has any.
pub fn curves(records: &[&Record], methods: &[Method]) -> Option<Vec<Curve>> {
    let records: Vec<&Record> = records
        .iter()
        .copied()
        .filter(|r| !r.per_candidate.is_empty())
        .collect();
    let n = records.iter().map(|r| r.per_candidate.len()).max()?;
    let ks = sizes(n);
    // Per problem and k, the subsets once: every method votes over the same ones.
    let subsets: Vec<Vec<Vec<usize>>> = records
        .iter()
        .flat_map(|r| {
            let m = r.per_candidate.len();
            ks.iter().map(move |&k| subsets_of(m, k.min(m), r.index))
        })
        .collect();
    Some(
        methods
            .iter()
            .map(|method| {
                let points = ks
                    .iter()
                    .enumerate()
                    .map(|(ki, &k)| {
                        let total: f64 = records
                            .iter()
                            .enumerate()
                            .map(|(ri, r)| {
                                let sets = &subsets[ri * ks.len() + ki];
                                let right = sets
                                    .iter()
                                    .filter(|set| is_right(&r.per_candidate, set, method))
                                    .count();
                                right as f64 / sets.len() as f64
                            })
                            .sum();
                        (k, total / records.len() as f64)
                    })
                    .collect();
                Curve {
                    method: method.label(),
                    points,
                }
            })
            .collect(),
    )
}

/// Whether `method` picks a right answer from the candidates at `set`.
fn is_right(cands: &[CandidateRecord], set: &[usize], method: &Method) -> bool {
    match method {
        Method::AnyCorrect => set.iter().any(|&i| cands[i].correct),
        Method::Vote(vote, signal) => {
            let sub: Vec<Candidate> = set
                .iter()
                .map(|&i| Candidate {
                    text: String::new(),
                    answer: cands[i].answer.clone(),
                    score: signal.as_ref().map(|s| cands[i].scores[s]),
                    tokens: cands[i].tokens,
                    finish: cands[i].finish.clone(),
                    error: None,
                    signals: Default::default(),
                })
                .collect();
            select(&sub, *vote).is_some_and(|c| cands[set[c]].correct)
        }
    }
}

/// The k-subsets of 0..m (each in increasing order) a point averages over: all of them
/// when there are at most [`MAX_SUBSETS`], else that many drawn with a seed fixed by the
/// problem's index and k (so reruns agree).
fn subsets_of(m: usize, k: usize, index: u64) -> Vec<Vec<usize>> {
    if binomial_at_most(m, k, MAX_SUBSETS) {
        let mut out = Vec::new();
        let mut set: Vec<usize> = (0..k).collect();
        loop {
            out.push(set.clone());
            // The next combination in lexicographic order.
            let Some(i) = (0..k).rev().find(|&i| set[i] < m - k + i) else {
                return out;
            };
            set[i] += 1;
            for j in i + 1..k {
                set[j] = set[j - 1] + 1;
            }
        }
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(index.wrapping_mul(1_000_003) ^ k as u64);
    (0..MAX_SUBSETS)
        .map(|_| {
            let mut s = sample(&mut rng, m, k).into_vec();
            s.sort_unstable();
            s
        })
        .collect()
}

/// C(m, k) ≤ cap, without overflow.
fn binomial_at_most(m: usize, k: usize, cap: usize) -> bool {
    let k = k.min(m - k);
    let mut c: u128 = 1;
    for i in 0..k {
        c = c * (m - i) as u128 / (i + 1) as u128;
        if c > cap as u128 {
            return false;
        }
    }
    true
}

/// P(score of a right item > score of a wrong one), ties counting half (the
/// Mann–Whitney U over the counts); None without both right and wrong items.
pub fn auroc(scored: &[(f64, bool)]) -> Option<f64> {
    let right = scored.iter().filter(|s| s.1).count();
    let wrong = scored.len() - right;
    if right == 0 || wrong == 0 {
        return None;
    }
    let mut sorted: Vec<(f64, bool)> = scored.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of the right items' ranks (1-based, ties sharing their mean rank).
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let j = (i..sorted.len())
            .find(|&j| sorted[j].0 != sorted[i].0)
            .unwrap_or(sorted.len());
        let mean_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += mean_rank * sorted[i..j].iter().filter(|s| s.1).count() as f64;
        i = j;
    }
    let u = rank_sum - (right * (right + 1)) as f64 / 2.0;
    Some(u / (right * wrong) as f64)
}

/// Each signal's AUROC over every candidate of these records (right against wrong),
/// with [`ANSWER_FREQUENCY`] first; a candidate without the signal is left out of it.
pub fn discrimination(records: &[&Record]) -> Vec<Discrimination> {
    let cands: Vec<&CandidateRecord> = records.iter().flat_map(|r| &r.per_candidate).collect();
    let mut names: BTreeSet<&String> = BTreeSet::new();
    for c in &cands {
        names.extend(c.scores.keys());
    }
    let frequency: Vec<(f64, bool)> = records
        .iter()
        .flat_map(|r| {
            let keys: Vec<Option<String>> = r
                .per_candidate
                .iter()
                .map(|c| c.answer.as_deref().map(answer_key))
                .collect();
            let mut count: HashMap<&str, usize> = HashMap::new();
            for k in keys.iter().flatten() {
                *count.entry(k).or_default() += 1;
            }
            let n = keys.len() as f64;
            r.per_candidate
                .iter()
                .zip(&keys)
                .map(|(c, k)| {
                    let share = k.as_deref().map_or(0.0, |k| count[k] as f64 / n);
                    (share, c.correct)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let measure = |signal: String, scored: Vec<(f64, bool)>| Discrimination {
        auroc: auroc(&scored),
        right: scored.iter().filter(|s| s.1).count(),
        wrong: scored.iter().filter(|s| !s.1).count(),
        signal,
    };
    let mut out = Vec::new();
    if !cands.is_empty() {
        out.push(measure(ANSWER_FREQUENCY.into(), frequency));
    }
    for name in names {
        let scored = cands
            .iter()
            .filter_map(|c| Some((*c.scores.get(name)?, c.correct)))
            .collect();
        out.push(measure(name.clone(), scored));
    }
    out
}

/// The curves as a Markdown table (a row per method, a column per k) and the AUROC
/// table beneath.
pub fn markdown(curves: &[Curve], signals: &[Discrimination]) -> String {
    let mut s = String::new();
    if let Some(first) = curves.first() {
        s.push_str("| selection |");
        for (k, _) in &first.points {
            s.push_str(&format!(" N={k} |"));
        }
        s.push_str("\n|---|");
        s.push_str(&"---:|".repeat(first.points.len()));
        s.push('\n');
        for c in curves {
            s.push_str(&format!("| {} |", c.method));
            for (_, a) in &c.points {
                s.push_str(&format!(" {:.1}% |", 100.0 * a));
            }
            s.push('\n');
        }
    }
    if !signals.is_empty() {
        s.push_str("\n| signal | AUROC | right | wrong |\n|---|---:|---:|---:|\n");
        for d in signals {
            let auroc = d.auroc.map_or("–".into(), |a| format!("{a:.3}"));
            s.push_str(&format!(
                "| {} | {auroc} | {} | {} |\n",
                d.signal, d.right, d.wrong
            ));
        }
    }
    s
}

/// The curves as CSV rows: strategy, method, n, accuracy.
pub fn csv_rows(strategy: &str, curves: &[Curve]) -> String {
    let mut s = String::new();
    for c in curves {
        for (k, a) in &c.points {
            s.push_str(&format!("{strategy},{},{k},{a:.6}\n", c.method));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::records::tests::rec;
    use std::collections::BTreeMap;

    fn cand(answer: &str, correct: bool, score: f64) -> CandidateRecord {
        CandidateRecord {
            answer: Some(answer.into()),
            correct,
            tokens: 10,
            finish: None,
            scores: BTreeMap::from([("s".to_string(), score)]),
            error: None,
        }
    }

    fn with(cands: Vec<CandidateRecord>, index: u64) -> Record {
        let mut r = rec(&format!("p{index}"), "best-of-3", false);
        r.index = index;
        r.per_candidate = cands;
        r
    }

    fn point(curves: &[Curve], method: &str, k: usize) -> f64 {
        let c = curves.iter().find(|c| c.method == method).unwrap();
        c.points.iter().find(|p| p.0 == k).unwrap().1
    }

    #[test]
    fn sizes_are_powers_of_two_then_n() {
        assert_eq!(sizes(1), vec![1]);
        assert_eq!(sizes(8), vec![1, 2, 4, 8]);
        assert_eq!(sizes(6), vec![1, 2, 4, 6]);
        assert_eq!(sizes(0), Vec::<usize>::new());
    }

    #[test]
    fn subsets_enumerate_every_combination_or_sample_a_fixed_number() {
        assert_eq!(
            subsets_of(4, 2, 0),
            vec![
                vec![0, 1],
                vec![0, 2],
                vec![0, 3],
                vec![1, 2],
                vec![1, 3],
                vec![2, 3]
            ]
        );
        assert_eq!(subsets_of(3, 3, 0), vec![vec![0, 1, 2]]);
        // C(16, 8) = 12870 > 256: drawn, sorted, distinct members, reproducible.
        let drawn = subsets_of(16, 8, 7);
        assert_eq!(drawn.len(), MAX_SUBSETS);
        assert!(drawn
            .iter()
            .all(|s| s.len() == 8 && s.windows(2).all(|w| w[0] < w[1]) && s[7] < 16));
        assert_eq!(drawn, subsets_of(16, 8, 7));
        assert_ne!(drawn, subsets_of(16, 8, 8));
    }

    /// One problem: candidates A(right, score 0.1), B(wrong, 0.9), A(right, 0.2).
    /// By hand, over the subsets of each size:
    /// - k = 1: {A}, {B}, {A}: every method is right 2 of 3 times.
    /// - k = 2: {A,B}, {A,A}, {B,A}: majority ties go to the first answer seen, so
    ///   right, right, wrong = 2/3; naive picks B whenever B is in: 1/3; weighted
    ///   sums A 0.1 vs B 0.9, A 0.3, B 0.9 vs A 0.2: 1/3; any correct 3/3.
    /// - k = 3: majority A (2 vs 1): right; naive B: wrong; weighted A 0.3 vs B 0.9:
    ///   wrong; Borda (p = 0.5) ranks B, A(0.2), A(0.1): B √3 = 1.73 vs A √2 + 1 =
    ///   2.41: right.
    #[test]
    fn subsampled_curves_by_hand() {
        let r = with(
            vec![
                cand("4", true, 0.1),
                cand("5", false, 0.9),
                cand("4", true, 0.2),
            ],
            0,
        );
        let rs = vec![&r];
        let signals = common_signals(&rs);
        assert_eq!(signals, vec!["s".to_string()]);
        let methods = methods(&rs, &signals);
        let curves = curves(&rs, &methods).unwrap();
        let third = 1.0 / 3.0;
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        for m in ["majority", "naive by s", "weighted by s", "borda by s"] {
            assert!(close(point(&curves, m, 1), 2.0 * third), "{m} at 1");
        }
        assert!(close(point(&curves, "majority", 2), 2.0 * third));
        assert!(close(point(&curves, "naive by s", 2), third));
        assert!(close(point(&curves, "weighted by s", 2), third));
        assert!(close(point(&curves, "any correct (ceiling)", 2), 1.0));
        assert_eq!(point(&curves, "majority", 3), 1.0);
        assert_eq!(point(&curves, "naive by s", 3), 0.0);
        assert_eq!(point(&curves, "weighted by s", 3), 0.0);
        assert_eq!(point(&curves, "borda by s", 3), 1.0);
        // The ks stop at the most candidates a record has: 1, 2, then 3.
        assert_eq!(
            curves[0].points.iter().map(|p| p.0).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn problems_average_and_a_short_record_votes_with_all_it_has() {
        // p0: one right candidate; p1: two wrong ones. At k = 2, p0 uses its one.
        let a = with(vec![cand("1", true, 0.5)], 0);
        let b = with(vec![cand("2", false, 0.5), cand("3", false, 0.5)], 1);
        let rs = vec![&a, &b];
        let curves = curves(&rs, &[Method::Vote(Vote::Majority, None)]).unwrap();
        assert_eq!(curves[0].points, vec![(1, 0.5), (2, 0.5)]);
    }

    #[test]
    fn weighted_is_left_out_for_a_signal_below_zero() {
        let r = with(vec![cand("1", true, -0.5), cand("2", false, 0.5)], 0);
        let ms: Vec<String> = methods(&[&r], &["s".into()])
            .iter()
            .map(Method::label)
            .collect();
        assert_eq!(
            ms,
            vec![
                "majority",
                "naive by s",
                "borda by s",
                "any correct (ceiling)"
            ]
        );
    }

    #[test]
    fn auroc_by_hand() {
        // Perfect, inverted, and all tied.
        assert_eq!(auroc(&[(0.9, true), (0.1, false)]), Some(1.0));
        assert_eq!(auroc(&[(0.1, true), (0.9, false)]), Some(0.0));
        assert_eq!(auroc(&[(0.5, true), (0.5, false)]), Some(0.5));
        // Right {0.8, 0.4}, wrong {0.6, 0.4}: pairs (0.8>0.6) 1, (0.8>0.4) 1,
        // (0.4<0.6) 0, (0.4=0.4) ½ → 2.5 / 4.
        let s = [(0.8, true), (0.4, true), (0.6, false), (0.4, false)];
        assert_eq!(auroc(&s), Some(0.625));
        assert_eq!(auroc(&[(0.3, true)]), None);
    }

    #[test]
    fn discrimination_measures_every_signal_and_answer_frequency() {
        // Answers 4, 4, 5: frequency 2/3, 2/3, 1/3; the right ones are the 4s.
        let r = with(
            vec![
                cand("4", true, 0.1),
                cand("5", false, 0.9),
                cand("4", true, 0.2),
            ],
            0,
        );
        let d = discrimination(&[&r]);
        assert_eq!(d[0].signal, ANSWER_FREQUENCY);
        assert_eq!(d[0].auroc, Some(1.0));
        assert_eq!((d[0].right, d[0].wrong), (2, 1));
        assert_eq!(d[1].signal, "s");
        assert_eq!(d[1].auroc, Some(0.0));
    }

    #[test]
    fn records_without_candidates_give_no_curve() {
        let r = rec("p0", "greedy", true);
        assert!(curves(&[&r], &[Method::AnyCorrect]).is_none());
        assert!(discrimination(&[&r]).is_empty());
    }
}
