#!/usr/bin/env bash
# Behaviour unchanged by the registry refactor (issue 14): greedy, best-of-n, beam, mcts and
# st-bon on the first 10 MultiArith problems with SmolLM2, seed 0, one problem at a time,
# must give records identical to before.jsonl (made by the CLI before the refactor with
#   ponder eval --dataset data/multiarith/test.jsonl --strategies greedy,best-of-n,beam,mcts,st-bon
#     --limit 10 --concurrency 1 --model smollm2 --n 4 --beam-width 2 --max-tokens 128
#     --temperature 0.8 --seed 0
# whose sampling flags then overwrote every strategy's own), wall and scoring times aside.
# Usage: results/refactor-check/check.sh   (about 4 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
./ponder.sh eval --dataset data/multiarith/test.jsonl \
  --strategies greedy,best-of-n,beam,mcts,st-bon --limit 10 --concurrency 1 \
  --model smollm2 --n 4 --set beam.width=2 --set mcts.width=2 --max-tokens 128 \
  --temperature 0.8 --top-p 1 --top-k 0 --min-p 0 --seed 0 --out "$out" >/dev/null
python3 - "$out/records.jsonl" results/refactor-check/before.jsonl <<'PY'
import json, sys
def load(p):
    recs = {}
    for line in open(p):
        r = json.loads(line)
        for k in ("wall_ms", "scoring_ms"):
            r.pop(k, None)
        recs[(r["id"], r["strategy"])] = r
    return recs
after, before = load(sys.argv[1]), load(sys.argv[2])
diff = [k for k in sorted(set(after) | set(before)) if after.get(k) != before.get(k)]
for k in diff[:10]:
    print("differs:", k, "\n  before:", before.get(k), "\n  after: ", after.get(k))
print(f"{len(before)} records before, {len(after)} after, {len(diff)} differ")
sys.exit(1 if diff or not before else 0)
PY
