//! ST-BoN, self-truncation Best-of-N (Wang et al.): sample N in one batch only until
//! every pair of samples differs (step c), go τ = m·c tokens further, pick the most
//! consistent sample from its hidden states, release the other N−1 and finish only it.
//!
//! Two ways to judge consistency:
//! - **faithful** (with `Cx::layers`, e.g. the llama backend's `LayerProbe`): the
//!   paper's chain-of-embedding feature F over every layer's running-mean hidden state,
//!   S_i = mean_j (F_i − F_j)², the sample with the smallest S wins each position of the
//!   window c+1..c+τ, most wins overall. The probe re-reads each sample's first c+τ
//!   tokens once in a context of its own (a scoring pass, like a PRM's).
//! - **final-layer** (without): the engine's final-layer states only; a sample's feature is
//!   the running mean of its states and the most consistent sample is the one closest on
//!   average (cosine distance) to the others, voted over the same window.

use crate::answer::extract_answer;
use crate::strategy::{invalid, Candidate, Cx, Needs, Problem, SearchError, Solution, Strategy};
use ponder_engine::{Finish, GenSpec, LayerStates, SamplingParams, Token};

/// Self-truncation Best-of-N.
///
/// Samples N chains until every pair of prefixes differs (the divergence step c), keeps
/// sampling τ = m·c tokens more, picks the sample most consistent with the others over
/// that window (chain-of-embedding over every layer, or the final layer's hidden states),
/// releases the other N − 1 at once and finishes only the winner.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StBoN {
    /// Samples started (N ≥ 2).
    pub n: usize,
    /// Window coefficient m, > 0 (the paper's 1).
    /// The vote runs over the τ = max(1, ⌊m · c⌋) tokens past the divergence step c.
    pub tau_coeff: f64,
    /// Tokens sampled per call while looking for c, ≥ 1.
    /// c is found to the token either way; a larger chunk makes fewer calls but may
    /// sample past the window.
    pub chunk: usize,
    /// Sampling (the paper's T 0.7, top-k 20, top-p 0.95).
    pub sampling: SamplingParams,
    /// New tokens per sample.
    pub max_tokens: usize,
    /// Judge consistency from the final layer only (the policy engine's hidden states)
    /// instead of every layer (the faithful variant: a layer probe of the model reads each
    /// sample's window once, provided through `Cx::layers`).
    pub final_layer: bool,
}

impl Default for StBoN {
    fn default() -> Self {
        Self {
            n: 8,
            tau_coeff: 1.0,
            chunk: 8,
            sampling: SamplingParams {
                temperature: 0.7,
                top_k: 20,
                top_p: 0.95,
                min_p: 0.0,
            },
            max_tokens: crate::registry::DEFAULT_MAX_TOKENS,
            final_layer: false,
        }
    }
}

fn norm(a: &[f64]) -> f64 {
    a.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

fn angle(a: &[f64], b: &[f64]) -> f64 {
    let (na, nb) = (norm(a), norm(b));
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    let cos = a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>() / (na * nb);
    cos.clamp(-1.0, 1.0).acos()
}

/// The chain-of-embedding feature of one sample (Wang et al., after Chain-of-Embedding):
/// with H_l its running-mean state after layer l (H_0 the embeddings, H_L the last),
/// F = mean over l of ‖H_l − H_{l+1}‖ / ‖H_0 − H_L‖ − ∠(H_l, H_{l+1}) / ∠(H_0, H_L).
pub fn coe_feature(h: &[Vec<f64>]) -> f64 {
    let l = h.len().saturating_sub(1);
    if l == 0 {
        return 0.0;
    }
    let (mag, ang) = (dist(&h[0], &h[l]), angle(&h[0], &h[l]));
    let sum: f64 = (0..l)
        .map(|i| {
            let m = if mag > 0.0 {
                dist(&h[i], &h[i + 1]) / mag
            } else {
                0.0
            };
            let a = if ang > 0.0 {
                angle(&h[i], &h[i + 1]) / ang
            } else {
                0.0
            };
            m - a
        })
        .sum();
    sum / l as f64
}

/// The sample whose feature agrees most with the others': at each window position, the
/// smallest S_i = mean_j (F_i − F_j)² gets the vote (`None`: the sample has no feature
/// there); most votes wins, ties to the lowest index.
pub fn most_consistent_by_feature(features: &[Vec<Option<f64>>]) -> usize {
    let n = features.len();
    let steps = features.iter().map(Vec::len).max().unwrap_or(0);
    let mut votes = vec![0usize; n];
    for t in 0..steps {
        let live: Vec<(usize, f64)> = (0..n)
            .filter_map(|i| features[i].get(t).copied().flatten().map(|f| (i, f)))
            .collect();
        if live.len() < 2 {
            continue;
        }
        let s = |fi: f64| {
            live.iter()
                .map(|&(_, fj)| (fi - fj) * (fi - fj))
                .sum::<f64>()
                / (live.len() - 1) as f64
        };
        let best = live
            .iter()
            .fold(None, |b: Option<(usize, f64)>, &(i, fi)| {
                let v = s(fi);
                match b {
                    Some((_, bv)) if bv <= v => b,
                    _ => Some((i, v)),
                }
            })
            .expect("two live");
        votes[best.0] += 1;
    }
    (0..n).fold(0, |w, i| if votes[i] > votes[w] { i } else { w })
}

/// The first length at which all samples' token prefixes are pairwise distinct, or at
/// which some sample has ended (`ended[i]`: its length if it ended). None if neither yet.
pub fn divergence(tokens: &[&[Token]], ended: &[Option<usize>]) -> Option<usize> {
    let longest = tokens.iter().map(|t| t.len()).max().unwrap_or(0);
    let first_end = ended.iter().flatten().copied().min();
    for len in 1..=longest {
        if first_end.is_some_and(|e| e <= len) {
            return Some(len);
        }
        if tokens.iter().any(|t| t.len() < len) {
            return None;
        }
        let mut prefixes: Vec<&[Token]> = tokens.iter().map(|t| &t[..len]).collect();
        prefixes.sort_unstable();
        if prefixes.windows(2).all(|w| w[0] != w[1]) {
            return Some(len);
        }
    }
    first_end
}

fn cosine_distance(a: &[f64], b: &[f64]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        return 1.0;
    }
    1.0 - ab / (aa.sqrt() * bb.sqrt())
}

/// The most consistent sample: at each length t in `window`, each sample's running mean
/// hidden state over its first t positions; the sample with the smallest mean cosine
/// distance to the others gets t's vote; most votes wins (ties: the lowest index).
pub fn most_consistent(hidden: &[&[Vec<f32>]], window: std::ops::RangeInclusive<usize>) -> usize {
    let n = hidden.len();
    let mut votes = vec![0usize; n];
    for t in window {
        let means: Vec<Option<Vec<f64>>> = hidden
            .iter()
            .map(|h| {
                (h.len() >= t && t > 0).then(|| {
                    let mut m = vec![0.0f64; h[0].len()];
                    for v in &h[..t] {
                        for (a, &x) in m.iter_mut().zip(v) {
                            *a += x as f64;
                        }
                    }
                    m.iter_mut().for_each(|a| *a /= t as f64);
                    m
                })
            })
            .collect();
        let live: Vec<usize> = (0..n).filter(|&i| means[i].is_some()).collect();
        if live.len() < 2 {
            continue;
        }
        let score = |i: usize| -> f64 {
            let mi = means[i].as_ref().expect("live");
            live.iter()
                .filter(|&&j| j != i)
                .map(|&j| cosine_distance(mi, means[j].as_ref().expect("live")))
                .sum::<f64>()
                / (live.len() - 1) as f64
        };
        let best = live
            .iter()
            .copied()
            .fold(None, |b: Option<(usize, f64)>, i| {
                let s = score(i);
                match b {
                    Some((_, bs)) if bs <= s => b,
                    _ => Some((i, s)),
                }
            })
            .expect("two live");
        votes[best.0] += 1;
    }
    (0..n).fold(0, |w, i| if votes[i] > votes[w] { i } else { w })
}

impl StBoN {
    /// Check the settings: N ≥ 2, m finite and > 0, `chunk` ≥ 1.
    pub fn validate(&self) -> Result<(), SearchError> {
        if self.n < 2 {
            return Err(invalid(
                "n",
                format!("{} (ST-BoN compares samples: n ≥ 2)", self.n),
            ));
        }
        if !(self.tau_coeff > 0.0 && self.tau_coeff.is_finite()) {
            return Err(invalid(
                "tau coefficient",
                format!("{} (must be > 0)", self.tau_coeff),
            ));
        }
        if self.chunk == 0 {
            return Err(invalid("chunk", "0 (must be ≥ 1)"));
        }
        Ok(())
    }
}

impl StBoN {
    /// Chain-of-embedding features of each sample at each window length.
    fn features(
        &self,
        layers: &dyn LayerStates,
        prompt: &[Token],
        samples: &[&[Token]],
        window: std::ops::RangeInclusive<usize>,
    ) -> Result<Vec<Vec<Option<f64>>>, SearchError> {
        let (lo, hi) = (*window.start(), *window.end());
        let d = layers.n_embd();
        let mut out = Vec::with_capacity(samples.len());
        for s in samples {
            let upto = hi.min(s.len());
            let mut seq = prompt.to_vec();
            seq.extend_from_slice(&s[..upto]);
            let states = layers.layer_states(&seq)?;
            let p0 = prompt.len();
            // Running sums of each state over the generated positions.
            let mut sums = vec![vec![0.0f64; d]; states.len()];
            let mut feats = Vec::new();
            for t in 1..=upto {
                for (sum, st) in sums.iter_mut().zip(&states) {
                    let row = &st[(p0 + t - 1) * d..(p0 + t) * d];
                    for (a, &x) in sum.iter_mut().zip(row) {
                        *a += x as f64;
                    }
                }
                if t >= lo {
                    let means: Vec<Vec<f64>> = sums
                        .iter()
                        .map(|v| v.iter().map(|x| x / t as f64).collect())
                        .collect();
                    feats.push(Some(coe_feature(&means)));
                }
            }
            feats.resize(hi + 1 - lo, None);
            out.push(feats);
        }
        Ok(out)
    }
}

impl Strategy for StBoN {
    fn settings(&self) -> serde_json::Value {
        crate::strategy::settings_of(self)
    }

    fn name(&self) -> String {
        if self.final_layer {
            format!("st-bon-final-layer-{}", self.n)
        } else {
            format!("st-bon-{}", self.n)
        }
    }

    fn needs(&self) -> Needs {
        Needs {
            sequences: self.n,
            max_tokens: self.max_tokens,
            layer_probe: !self.final_layer,
            hidden_states: self.final_layer,
            ..Needs::default()
        }
    }

    fn solve(&self, cx: &Cx, problem: &Problem) -> Result<Solution, SearchError> {
        self.validate()?;
        cx.provides(self)?;
        let session = cx.session(problem);
        let root = session.prefill_prompt(&cx.prompt(problem)?)?;
        let mut bs = root.fork(self.n - 1)?;
        bs.insert(0, root);
        let mut spec = GenSpec::new(self.sampling, self.chunk);
        spec.hidden = self.final_layer;
        let max = self.max_tokens;
        let ended = |b: &ponder_engine::Branch| -> Option<usize> {
            match b.finish() {
                Some(Finish::MaxTokens) | None => {
                    (b.tokens().len() >= max).then(|| b.tokens().len())
                }
                _ => Some(b.tokens().len()),
            }
        };
        // Stage 1: sample until all prefixes differ (c), then τ more.
        let mut c = None;
        let mut target = usize::MAX;
        loop {
            let live = bs.iter().filter(|b| ended(b).is_none()).count();
            // How far the samples still running have got (one that ended grows no more).
            let at = bs
                .iter()
                .filter(|b| ended(b).is_none())
                .map(|b| b.tokens().len())
                .min()
                .unwrap_or(0);
            if live == 0 || (c.is_some() && at >= target) {
                break;
            }
            let want = if c.is_some() { target } else { max };
            session.extend_capped(
                bs.iter_mut().map(|b| {
                    let left = want.min(max).saturating_sub(b.tokens().len());
                    let cap = if ended(b).is_some() { 0 } else { left };
                    (b, cap)
                }),
                &spec,
            )?;
            if c.is_none() {
                let toks: Vec<&[Token]> = bs.iter().map(|b| b.tokens()).collect();
                let ends: Vec<Option<usize>> = bs.iter().map(&ended).collect();
                if let Some(found) = divergence(&toks, &ends) {
                    let tau = ((self.tau_coeff * found as f64).floor() as usize).max(1);
                    c = Some(found);
                    target = (found + tau).min(max);
                }
            }
        }
        let c = c.unwrap_or_else(|| bs.iter().map(|b| b.tokens().len()).min().unwrap_or(0));
        // Stage 2: vote over the window c+1..c+τ.
        let window = (c + 1)..=target.min(max).max(c + 1);
        let t0 = std::time::Instant::now();
        let winner = match cx.layers.as_ref().filter(|_| !self.final_layer) {
            Some(layers) => {
                let prompt = session
                    .engine()
                    .tokenize_prompt(&cx.prompt(problem)?, session.engine().info().add_bos)?;
                let toks: Vec<&[Token]> = bs.iter().map(|b| b.tokens()).collect();
                let feats = self.features(layers.as_ref(), &prompt, &toks, window)?;
                most_consistent_by_feature(&feats)
            }
            None => {
                let hidden: Vec<&[Vec<f32>]> = bs.iter().map(|b| b.hidden()).collect();
                most_consistent(&hidden, window)
            }
        };
        let scoring_ms = t0.elapsed().as_secs_f64() * 1e3;
        // Stage 3: release the other N−1 at once and finish the winner alone.
        let mut w = bs.swap_remove(winner);
        drop(bs);
        if ended(&w).is_none() {
            let left = max - w.tokens().len();
            w.extend(&GenSpec::new(self.sampling, left))?;
        }
        let text = w.text();
        let cand = Candidate {
            answer: extract_answer(&text),
            text,
            score: None,
            tokens: w.tokens().len(),
            finish: w.finish().cloned(),
            error: None,
            signals: Default::default(),
        };
        drop(w);
        let candidates = vec![cand];
        Ok(
            Solution::new(self.name(), candidates, Some(0), session.stats())
                .scored(scoring_ms, None),
        )
    }
}

impl crate::registry::Settings for StBoN {
    const N: Option<&'static str> = Some("n");
    fn check(&self) -> Result<(), SearchError> {
        crate::registry::check_generation(&self.sampling, self.max_tokens)?;
        self.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divergence_is_the_first_length_with_pairwise_distinct_prefixes() {
        let a: &[Token] = &[1, 2, 3, 4];
        let b: &[Token] = &[1, 2, 5, 6];
        let c: &[Token] = &[1, 7, 3, 4];
        // Length 1: all "1". Length 2: a = b. Length 3: 123, 125, 173: distinct.
        assert_eq!(divergence(&[a, b, c], &[None, None, None]), Some(3));
        // Two identical samples never diverge: not yet.
        assert_eq!(divergence(&[a, a], &[None, None]), None);
        // …unless one ends: then c is where it ended.
        assert_eq!(divergence(&[a, a], &[None, Some(2)]), Some(2));
        // Too few tokens to tell yet.
        assert_eq!(divergence(&[&a[..2], &b[..2]], &[None, None]), None);
    }

    #[test]
    fn coe_feature_by_hand() {
        // Three states on a line: 0 → 1 → 3 (1-d). Magnitudes 1/3 and 2/3; all angles 0
        // (same direction), so the angle terms vanish: F = (1/3 + 2/3) / 2 = 0.5.
        let h = vec![vec![1.0], vec![2.0], vec![4.0]];
        assert!((coe_feature(&h) - 0.5).abs() < 1e-12);
        // A right-angle turn: H0 = (1,0), H1 = (1,1), H2 = (0,1). ‖H0−H2‖ = √2,
        // ∠(H0,H2) = π/2; steps of length 1 and angle π/4: F = (1/√2 − 1/2) per step.
        let h = vec![vec![1.0, 0.0], vec![1.0, 1.0], vec![0.0, 1.0]];
        let want = 1.0 / 2f64.sqrt() - 0.5;
        assert!((coe_feature(&h) - want).abs() < 1e-12);
    }

    #[test]
    fn the_feature_vote_picks_the_sample_nearest_the_others() {
        // Features 0.1, 0.5, 0.6: S = (0.16+0.25)/2, (0.16+0.01)/2, (0.25+0.01)/2 → sample 1.
        let f = |x: f64| vec![Some(x), Some(x)];
        assert_eq!(most_consistent_by_feature(&[f(0.1), f(0.5), f(0.6)]), 1);
        // A sample without a feature at a position is left out there. Position 0:
        // 0.1, 0.5, 0.6, 0.65 → 0.5 is nearest the rest; positions 1 and 2 (without it):
        // 0.1, 0.6, 0.65 → 0.6. Votes 1 : 2.
        let g = |x: f64| vec![Some(x); 3];
        let short = vec![Some(0.5), None, None];
        assert_eq!(
            most_consistent_by_feature(&[g(0.1), short, g(0.6), g(0.65)]),
            2
        );
    }

    #[test]
    fn the_sample_closest_to_the_others_wins() {
        let v = |x: f32, y: f32| vec![x, y];
        // Sample 1 sits between 0 and 2 in direction; it is the most consistent.
        let h0 = vec![v(1.0, 0.0), v(1.0, 0.0), v(1.0, 0.0)];
        let h1 = vec![v(1.0, 1.0), v(1.0, 1.0), v(1.0, 1.0)];
        let h2 = vec![v(0.0, 1.0), v(0.0, 1.0), v(0.0, 1.0)];
        assert_eq!(most_consistent(&[&h0, &h1, &h2], 1..=3), 1);
        // Two agreeing samples outvote a lone one: the winner is one of the pair (first).
        assert_eq!(most_consistent(&[&h2, &h0, &h0], 1..=3), 1);
    }
}
