#!/usr/bin/env bash
# One entry point that works on a fresh Debian/Ubuntu machine:
#   ./ponder.sh solve "question" [options]   build (first time: ~5-9 min), fetch Qwen2.5-Coder-0.5B, solve
#   ./ponder.sh test                          the test suite (what CI runs)
#   ./ponder.sh <any ponder subcommand>       e.g. bench --json
# It installs the C++ build tools llama.cpp needs (cmake, clang, libclang-dev) if missing.
set -euo pipefail
cd "$(dirname "$0")"

missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v clang >/dev/null 2>&1 || missing+=(clang)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || missing+=(libclang-dev)
# A TrueType font for the text in `ponder eval`'s PNG plot.
ls /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf >/dev/null 2>&1 || missing+=(fonts-dejavu-core)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ponder.sh: installing ${missing[*]}" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  else
    echo "ponder.sh: please install: ${missing[*]} (e.g. sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi
command -v python3 >/dev/null 2>&1 || { echo "ponder.sh: python3 with pip is needed to fetch models" >&2; exit 1; }

if [ "${1:-}" = test ]; then
  shift
  exec cargo test --release --workspace "$@"
fi
exec cargo run --release --quiet --bin ponder -- "$@"
