#!/usr/bin/env bash
# Best-of-8 on the first 15 MultiArith problems scored by the probe trained on GSM8K
# (results/probe-qwen2.5-coder-0.5b; run its reproduce.sh first): every candidate keeps
# the probe's score beside the model-free signals, so --summary-only gives its AUROC.
# Same sampling as ../signals-multiarith-qwen2.5-coder-0.5b. About 25 minutes here.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=results/signals-multiarith-qwen2.5-coder-0.5b-probe
./ponder.sh eval --dataset data/multiarith/test.jsonl --max-tokens 320 --limit 15 \
    --model qwen2.5-coder-0.5b --out "$out" --strategies best-of-n --n 8 \
    --temperature 0.8 --top-p 1 --top-k 0 --min-p 0 \
    --scorer probe --probe results/probe-qwen2.5-coder-0.5b/probe.json
./ponder.sh eval --dataset data/multiarith/test.jsonl --limit 15 --out "$out" --summary-only
