#!/usr/bin/env bash
# Re-create (or resume) every record in this folder, then its summary: eight chains of
# thought and eight programs per problem, every candidate kept with its signals, so that
# --summary-only re-votes them at N = 1, 2, 4, 8 and measures each signal's AUROC.
# Qwen2.5-Coder-0.5B-Instruct Q4_K_M on the first 42 MultiArith problems (the runs stopped there for time), at most 320
# new tokens, T 0.8, seed 0, 4 problems at a time. About an hour on a 2-core CPU; --limit 100 resumes to all 100.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=results/signals-multiarith-qwen2.5-coder-0.5b
./ponder.sh eval --dataset data/multiarith/test.jsonl --max-tokens 320 --limit 42 \
    --model qwen2.5-coder-0.5b --out "$out" --strategies best-of-n,pot --n 8 \
    --temperature 0.8 --top-p 1 --top-k 0 --min-p 0
./ponder.sh eval --dataset data/multiarith/test.jsonl --limit 42 --out "$out" --summary-only
