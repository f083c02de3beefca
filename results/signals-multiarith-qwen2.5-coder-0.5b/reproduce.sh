#!/usr/bin/env bash
# Re-create (or resume) every record in this folder, then its summary: eight chains of
# thought and eight programs per problem, every candidate kept with its signals, so that
# --summary-only re-votes them at N = 1, 2, 4, 8 and measures each signal's AUROC.
# Qwen2.5-Coder-0.5B-Instruct Q4_K_M on the first 100 MultiArith problems, at most 320
# new tokens, T 0.8, seed 0, 4 problems at a time. About an hour on a 2-core CPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=results/signals-multiarith-qwen2.5-coder-0.5b
./ponder.sh eval --dataset data/multiarith/test.jsonl --max-tokens 320 --limit 100 \
    --model qwen2.5-coder-0.5b --out "$out" --strategies best-of-n,pot --n 8 \
    --temperature 0.8 --top-p 1 --top-k 0 --min-p 0
./ponder.sh eval --dataset data/multiarith/test.jsonl --limit 100 --out "$out" --summary-only
