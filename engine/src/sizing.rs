//! How big an engine must be for a workload: sequences and KV cells, sized from what the
//! strategies declare they hold at once, so callers never guess.

use crate::error::{EngineError, Result};

/// llama.cpp's hard limit on sequences in one context.
pub const MAX_SEQUENCES: usize = 256;

/// Full-length branches per problem the KV cache is sized for. Tree searches hold many
/// sequences, but they share most of their cells (a fork is a metadata copy), so sizing
/// every one of them at full length would ask for far more memory than they use.
pub const FULL_LENGTH_BRANCHES: usize = 32;

/// Cells for the chat template, the system prompt and the tokens a step appends.
const SLACK_CELLS: usize = 512;

/// What one engine must hold at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Problems solved at once (their branches share decode batches).
    pub problems: usize,
    /// The most KV sequences one problem holds at once.
    pub sequences: usize,
    /// The longest question, in bytes (a token is at least one byte, so this bounds its tokens).
    pub prompt_bytes: usize,
    /// The most new tokens one sequence may generate.
    pub max_tokens: usize,
}

impl Workload {
    /// Sequences in all, refused when over llama.cpp's 256.
    pub fn n_seq_max(&self) -> Result<u32> {
        let seqs = self.problems.saturating_mul(self.sequences);
        if seqs > MAX_SEQUENCES {
            return Err(EngineError::InvalidParam {
                name: "sequences",
                reason: format!(
                    "{} concurrent problems × {} sequences each = {seqs}, more than llama.cpp's \
                     {MAX_SEQUENCES}: solve fewer problems at once (--concurrency) or lower the \
                     strategy's N (--n; mcts, dpts: or --set max_live=…)",
                    self.problems, self.sequences
                ),
            });
        }
        Ok(seqs.max(1) as u32)
    }

    /// KV cells: per problem, the prompt and slack once plus up to
    /// [`FULL_LENGTH_BRANCHES`] branches at full length; a multiple of 256 (llama.cpp
    /// pads to it anyway). Saturates instead of overflowing; a size the machine cannot
    /// hold fails when the context is created, with llama.cpp's reason.
    pub fn n_ctx(&self) -> u32 {
        let per_problem = SLACK_CELLS
            .saturating_add(self.prompt_bytes)
            .saturating_add(
                self.sequences
                    .clamp(1, FULL_LENGTH_BRANCHES)
                    .saturating_mul(self.max_tokens),
            );
        let cells = self.problems.max(1).saturating_mul(per_problem);
        let cells = cells.min(u32::MAX as usize - 255).next_multiple_of(256);
        cells as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_cover_prompt_slack_and_at_most_32_full_branches() {
        let w = Workload {
            problems: 2,
            sequences: 8,
            prompt_bytes: 100,
            max_tokens: 320,
        };
        // 2 × (512 + 100 + 8 × 320) = 6344 → 6400.
        assert_eq!(w.n_ctx(), 6400);
        assert_eq!(w.n_seq_max().unwrap(), 16);
        let tree = Workload { sequences: 53, ..w };
        // 53 sequences are sized as 32 full-length ones.
        assert_eq!(
            tree.n_ctx(),
            (2 * (612 + 32 * 320) as u32).next_multiple_of(256)
        );
    }

    #[test]
    fn more_than_256_sequences_is_refused_and_huge_sizes_saturate() {
        let w = Workload {
            problems: 8,
            sequences: 53,
            prompt_bytes: 10,
            max_tokens: 10,
        };
        let e = w.n_seq_max().unwrap_err().to_string();
        assert!(
            e.contains("8 concurrent problems × 53 sequences each = 424"),
            "{e}"
        );
        let huge = Workload {
            problems: usize::MAX,
            sequences: usize::MAX,
            prompt_bytes: usize::MAX,
            max_tokens: usize::MAX,
        };
        assert!(huge.n_ctx() >= u32::MAX - 255);
        assert!(huge.n_seq_max().is_err());
    }
}
