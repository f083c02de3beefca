//! Per-branch sampling over a logits row, in Rust, the same for every backend.
//!
//! Each branch owns its RNG, seeded from (run seed, problem id, branch id), so results do
//! not depend on which other branches share a batch. Every sampled token also gets its
//! log-probability under the raw model (temperature 1), which scorers use.

use crate::backend::Token;
use crate::error::{invalid, Result};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Sampling settings. `temperature <= 0` is greedy decoding.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SamplingParams {
    /// Softmax temperature (≥ 0; 0 is greedy: the most likely token, first on ties; 1 the
    /// model's own distribution).
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens (0 = off).
    pub top_k: usize,
    /// Nucleus: keep the smallest set whose probability reaches `top_p` (1 = off).
    pub top_p: f32,
    /// Drop tokens below `min_p` times the top probability (0 = off).
    pub min_p: f32,
}

impl Default for SamplingParams {
    /// T = 0.8, no truncation: the Best-of-N setting of the literature.
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding (argmax, first index on ties).
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }
    /// Whether this is greedy decoding (`temperature <= 0`).
    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }
    /// Check ranges; errors name the parameter.
    pub fn validate(&self) -> Result<()> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(invalid(
                "temperature",
                format!("{} (must be ≥ 0)", self.temperature),
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(invalid(
                "top_p",
                format!("{} (must be in (0, 1])", self.top_p),
            ));
        }
        if !(0.0..1.0).contains(&self.min_p) {
            return Err(invalid(
                "min_p",
                format!("{} (must be in [0, 1))", self.min_p),
            ));
        }
        Ok(())
    }
}

/// Mix (run seed, problem, branch) into one RNG seed (splitmix64 finaliser).
pub fn derive_seed(run: u64, problem: u64, branch: u64) -> u64 {
    let mut z = run
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(problem.wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
        .wrapping_add(branch.wrapping_mul(0x1656_67B1_9E37_79F9))
        .wrapping_add(0x27D4_EB2F_1656_67C5);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Reusable scratch space, so sampling allocates nothing per token.
#[derive(Default)]
pub struct Scratch {
    cands: Vec<(f32, u32)>,
}

/// One sampled token: its id, its log-probability under the model, and the model's
/// self-certainty at that position.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampled {
    /// The token drawn.
    pub token: Token,
    /// Its natural-log probability under the raw model (temperature 1, no truncation).
    pub logprob: f32,
    /// KL(uniform ‖ p) of the next-token distribution, in nats: 0 when the model is
    /// uniformly unsure, large when it is peaked (Kang et al. 2025, "self-certainty").
    pub certainty: f32,
}

/// Sample one token from `logits` (temperature, top-k, top-p, min-p; greedy at T = 0).
pub fn sample(
    params: &SamplingParams,
    logits: &[f32],
    rng: &mut ChaCha8Rng,
    scratch: &mut Scratch,
) -> Sampled {
    let (max_i, max) = argmax(logits);
    // One pass for both the partition function and the mean logit.
    let (mut z, mut sum) = (0.0f32, 0.0f64);
    for &l in logits {
        z += (l - max).exp();
        sum += l as f64;
    }
    let log_z = max + z.ln();
    let token = if params.is_greedy() {
        max_i
    } else {
        draw(params, logits, max, rng, scratch)
    };
    Sampled {
        token: token as Token,
        logprob: logits[token] - log_z,
        certainty: self_certainty(log_z, sum / logits.len() as f64, logits.len()),
    }
}

/// KL(U ‖ p) = −log V − mean_j log p_j = log Z − mean(logits) − log V.
fn self_certainty(log_z: f32, mean_logit: f64, vocab: usize) -> f32 {
    (log_z as f64 - mean_logit - (vocab as f64).ln()) as f32
}

/// Self-certainty of a logits row (see [`Sampled::certainty`]).
pub fn certainty(logits: &[f32]) -> f32 {
    let mean = logits.iter().map(|&l| l as f64).sum::<f64>() / logits.len() as f64;
    self_certainty(log_z(logits), mean, logits.len())
}

/// Log-probability of `token` under `logits` (log-softmax at temperature 1).
pub fn token_logprob(logits: &[f32], token: Token) -> f32 {
    logits[token as usize] - log_z(logits)
}

/// Log-probabilities of several tokens under one logits row (tokens outside the
/// vocabulary get NaN).
pub fn token_logprobs(logits: &[f32], tokens: &[Token]) -> Vec<f32> {
    let z = log_z(logits);
    tokens
        .iter()
        .map(|&t| logits.get(t as usize).map_or(f32::NAN, |l| l - z))
        .collect()
}

fn log_z(logits: &[f32]) -> f32 {
    let (_, max) = argmax(logits);
    max + logits.iter().map(|&l| (l - max).exp()).sum::<f32>().ln()
}

fn argmax(logits: &[f32]) -> (usize, f32) {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, &l) in logits.iter().enumerate() {
        if l > best.1 {
            best = (i, l);
        }
    }
    best
}

fn draw(
    p: &SamplingParams,
    logits: &[f32],
    max: f32,
    rng: &mut ChaCha8Rng,
    scratch: &mut Scratch,
) -> usize {
    // Scaled log-weights relative to the best token: z = (l - max) / T ≤ 0.
    // Tokens below e^-30 of the best cannot matter; min-p raises that floor.
    let inv_t = 1.0 / p.temperature;
    let floor = if p.min_p > 0.0 { p.min_p.ln() } else { -30.0 };
    let c = &mut scratch.cands;
    c.clear();
    for (i, &l) in logits.iter().enumerate() {
        let z = (l - max) * inv_t;
        if z >= floor {
            c.push((z, i as u32));
        }
    }
    if p.top_k > 0 && c.len() > p.top_k {
        c.select_nth_unstable_by(p.top_k - 1, |a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        c.truncate(p.top_k);
    }
    if p.top_p < 1.0 {
        c.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let total: f64 = c.iter().map(|&(z, _)| (z as f64).exp()).sum();
        let mut acc = 0.0;
        let mut keep = c.len();
        for (k, &(z, _)) in c.iter().enumerate() {
            acc += (z as f64).exp() / total;
            if acc >= p.top_p as f64 {
                keep = k + 1;
                break;
            }
        }
        c.truncate(keep);
    } else if p.top_k > 0 {
        // Deterministic order for the draw below.
        c.sort_unstable_by_key(|&(_, i)| i);
    }
    let total: f64 = c.iter().map(|&(z, _)| (z as f64).exp()).sum();
    let mut u = rng.gen::<f64>() * total;
    for &(z, i) in c.iter() {
        u -= (z as f64).exp();
        if u <= 0.0 {
            return i as usize;
        }
    }
    c.last().map(|&(_, i)| i as usize).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng(s: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(s)
    }

    #[test]
    fn greedy_takes_first_max_and_reports_logprob() {
        let logits = [1.0, 3.0, 3.0, 0.0];
        let s = sample(
            &SamplingParams::greedy(),
            &logits,
            &mut rng(0),
            &mut Scratch::default(),
        );
        assert_eq!(s.token, 1);
        let z: f32 = logits.iter().map(|l| l.exp()).sum();
        assert!((s.logprob - (3.0f32.exp() / z).ln()).abs() < 1e-5);
    }

    #[test]
    fn self_certainty_is_kl_from_uniform() {
        // Uniform logits: KL(U‖U) = 0.
        assert!(certainty(&[2.0; 5]).abs() < 1e-6);
        // p = (1/2, 1/4, 1/4): KL(U‖p) = Σ 1/3 · ln((1/3)/p_j).
        let logits = [0.5f32.ln(), 0.25f32.ln(), 0.25f32.ln()];
        let kl: f64 = [0.5f64, 0.25, 0.25]
            .iter()
            .map(|p| (1.0 / 3.0) * ((1.0 / 3.0) / p).ln())
            .sum();
        assert!((certainty(&logits) as f64 - kl).abs() < 1e-5);
        let s = sample(
            &SamplingParams::greedy(),
            &logits,
            &mut rng(0),
            &mut Scratch::default(),
        );
        assert!((s.certainty - certainty(&logits)).abs() < 1e-5);
        // A peaked distribution is more certain than a flat one.
        assert!(certainty(&[9.0, 0.0, 0.0]) > certainty(&logits));
    }

    #[test]
    fn top_k_one_is_greedy() {
        let logits = [0.5, 0.1, 2.0, 1.9];
        let p = SamplingParams {
            temperature: 1.5,
            top_k: 1,
            ..Default::default()
        };
        for s in 0..50 {
            assert_eq!(
                sample(&p, &logits, &mut rng(s), &mut Scratch::default()).token,
                2
            );
        }
    }

    #[test]
    fn top_p_cuts_the_tail() {
        // p ≈ [0.665, 0.245, 0.090]: top_p 0.7 keeps the first two only.
        let logits = [2.0, 1.0, 0.0];
        let p = SamplingParams {
            temperature: 1.0,
            top_p: 0.7,
            ..Default::default()
        };
        let mut seen = [0; 3];
        let mut sc = Scratch::default();
        let mut r = rng(7);
        for _ in 0..2000 {
            seen[sample(&p, &logits, &mut r, &mut sc).token as usize] += 1;
        }
        assert_eq!(seen[2], 0);
        assert!(seen[1] > 400 && seen[0] > 1000, "{seen:?}");
    }

    #[test]
    fn frequencies_follow_softmax() {
        let logits = [0.0, (3.0f32).ln()]; // p = 0.25, 0.75
        let p = SamplingParams {
            temperature: 1.0,
            ..Default::default()
        };
        let mut r = rng(1);
        let mut sc = Scratch::default();
        let ones = (0..20000)
            .filter(|_| sample(&p, &logits, &mut r, &mut sc).token == 1)
            .count();
        assert!((ones as f64 / 20000.0 - 0.75).abs() < 0.02, "{ones}");
    }

    #[test]
    fn min_p_drops_unlikely_tokens() {
        let logits = [0.0, -3.0, 0.1];
        let p = SamplingParams {
            temperature: 1.0,
            min_p: 0.2,
            ..Default::default()
        };
        let mut r = rng(3);
        let mut sc = Scratch::default();
        for _ in 0..2000 {
            assert_ne!(sample(&p, &logits, &mut r, &mut sc).token, 1);
        }
    }

    #[test]
    fn seeds_differ_by_branch_and_problem() {
        let a = derive_seed(1, 0, 0);
        assert_ne!(a, derive_seed(1, 0, 1));
        assert_ne!(a, derive_seed(1, 1, 0));
        assert_ne!(a, derive_seed(2, 0, 0));
        assert_eq!(a, derive_seed(1, 0, 0));
    }

    #[test]
    fn validate_names_the_parameter() {
        let e = SamplingParams {
            top_p: 0.0,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("top_p"));
        let e = SamplingParams {
            temperature: -1.0,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("temperature"));
    }
}

#[cfg(test)]
mod seed_uniformity {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn first_draws_over_branch_seeds_follow_the_distribution() {
        // Branch RNGs are fresh per seed: their first draws must be unbiased too.
        let logits = [0.4f32.ln(), 0.3f32.ln(), 0.3f32.ln()];
        let p = SamplingParams {
            temperature: 1.0,
            ..Default::default()
        };
        let mut sc = Scratch::default();
        let n = 6000;
        let zeros = (0..n)
            .filter(|&b| {
                let mut r = ChaCha8Rng::seed_from_u64(derive_seed(0, 1, b));
                sample(&p, &logits, &mut r, &mut sc).token == 0
            })
            .count();
        assert!((zeros as f64 / n as f64 - 0.4).abs() < 0.03, "{zeros}");
    }
}
