#!/usr/bin/env bash
# Re-create (or resume) every record in this folder, then its summary.
# Qwen2.5-Coder-0.5B-Instruct Q4_K_M on the first 50 GSM8K test problems, greedy chain of
# thought against the greedy program, at most 320 new tokens, seed 0. About 7 minutes here.
set -euo pipefail
cd "$(dirname "$0")/../.."
./ponder.sh eval --dataset data/gsm8k/test.jsonl --max-tokens 320 --limit 50 \
    --model qwen2.5-coder-0.5b --out results/gsm8k-qwen2.5-coder-0.5b \
    --strategies greedy,pot --set pot.n=1 --set pot.sampling.temperature=0
