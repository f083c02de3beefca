#!/usr/bin/env bash
# Re-create (or resume) every record in this folder, then its summary.
# Issue 6: DPTS and FastMCTS next to MCTS and PRM-guided beam search at the same budget.
# Qwen2.5-Coder-0.5B-Instruct Q4_K_M on the first 100 MultiArith problems; every strategy
# gets N = 4 (beams / paths / frontier / trajectories), 2 children per expansion, at most
# 320 new tokens per branch and at most 1280 generated tokens per problem (what
# Best-of-4 may spend), the arithmetic verifier as the (model-free) step scorer, seed 0,
# 4 problems at a time. Each line resumes: only missing (problem, strategy) records are
# computed. The runs predate the strategy registry, when the CLI's sampling (T 0.8, no
# truncation) overwrote every strategy's own: it is given explicitly here so the settings
# match settings.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=results/multiarith-qwen2.5-coder-0.5b-search
./ponder.sh eval --dataset data/multiarith/test.jsonl --limit 100 --model qwen2.5-coder-0.5b \
    --n 4 --set width=2 --max-tokens 320 --budget-tokens 1280 --scorer verifier \
    --temperature 0.8 --top-p 1 --top-k 0 --min-p 0 \
    --strategies beam,mcts,dpts,fast-mcts --out "$out"
