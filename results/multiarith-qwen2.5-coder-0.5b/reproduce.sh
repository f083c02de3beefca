#!/usr/bin/env bash
# Re-create (or resume) every record in this folder, then its summary.
# Qwen2.5-Coder-0.5B-Instruct Q4_K_M on the first 100 MultiArith problems, N = 8,
# at most 320 new tokens, seed 0, 4 problems at a time. Each line resumes: only missing
# (problem, strategy) records are computed. About 8–9 hours on a 2-core CPU in all.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=results/multiarith-qwen2.5-coder-0.5b
eval_() {
    ./ponder.sh eval --dataset data/multiarith/test.jsonl --n 8 --max-tokens 320 --limit 100 \
        --model qwen2.5-coder-0.5b --out "$out" "$@"
}
eval_ --strategies greedy,best-of-n
eval_ --strategies early-exit,st-bon
eval_ --strategies st-bon --st-bon-final-layer
eval_ --strategies early-exit --probe-interval 32 --probe-window 2
eval_ --strategies length-vote,certainty-vote,spec-rejection
# RSD (issue 6): SmolLM2-135M drafts, Qwen judges its own steps (the paper's setting,
# with the target as a yes/no judge for want of a PRM); target-only decoding is greedy.
eval_ --strategies rsd --draft-model smollm2 --scorer judge
# The target as its own reward (--rsd-reward target), δ = 0.7.
eval_ --strategies rsd --rsd-reward target --draft-model smollm2
eval_ --summary-only --baseline best-of-8-majority
