#!/usr/bin/env bash
# Re-create the correctness probe of Qwen2.5-Coder-0.5B-Instruct Q4_K_M: 4 samples
# (T 0.8, at most 320 tokens, seed 0) of each of the last 100 GSM8K test problems
# (positions 1219..1318), the first 75 to fit on, the last 25 to measure AUROC on.
# Evaluation uses GSM8K positions 0..1218 and MultiArith, which the probe never saw.
# About 30 minutes on a 2-core CPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
./ponder.sh train-probe --model qwen2.5-coder-0.5b --dataset data/gsm8k/test.jsonl \
    --skip 1219 --limit 100 --samples 4 --out results/probe-qwen2.5-coder-0.5b/probe.json
