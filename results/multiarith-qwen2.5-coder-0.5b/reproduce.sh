#!/usr/bin/env bash
# Re-create (or resume) every record in this folder, then its summary.
# Qwen2.5-Coder-0.5B-Instruct Q4_K_M on the first 100 MultiArith problems, N = 8,
# at most 320 new tokens, seed 0, 4 problems at a time. Each line resumes: only missing
# (problem, strategy) records are computed. About 8–9 hours on a 2-core CPU in all.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=results/multiarith-qwen2.5-coder-0.5b
# These runs predate the strategy registry, when the CLI's sampling (T 0.8, no truncation)
# overwrote every strategy's own: it is given explicitly here, so the settings match
# settings.json (a rerun with other settings is refused).
sampled=(--temperature 0.8 --top-p 1 --top-k 0 --min-p 0)
eval_() {
    ./ponder.sh eval --dataset data/multiarith/test.jsonl --max-tokens 320 --limit 100 \
        --model qwen2.5-coder-0.5b --out "$out" "$@"
}
eval_ --strategies greedy,best-of-n --n 8 "${sampled[@]}"
eval_ --strategies early-exit,st-bon --n 8 "${sampled[@]}"
eval_ --strategies st-bon --n 8 --set final_layer=true "${sampled[@]}"
eval_ --strategies early-exit --set chunk=32 --set window=2 "${sampled[@]}"
eval_ --strategies length-vote,certainty-vote,spec-rejection --n 8 --set spec-rejection.n=32 "${sampled[@]}"
# RSD (issue 6): SmolLM2-135M drafts, Qwen judges its own steps (the paper's setting,
# with the target as a yes/no judge for want of a PRM); target-only decoding is greedy.
eval_ --strategies rsd --draft-model smollm2 --scorer judge
# The target as its own reward (--set reward=target), δ = 0.7.
eval_ --strategies rsd --set reward=target --draft-model smollm2
# Adaptive consistency (registry defaults: waves of 2, Beta rule at 0.95), capped at N = 8.
eval_ --strategies adaptive-consistency --n 8
# Programs instead of prose (issue 15): the greedy program, run in the sandbox.
eval_ --strategies pot --n 1 --temperature 0
eval_ --strategies pot --n 8 "${sampled[@]}"
eval_ --summary-only --baseline best-of-8-majority
