#!/usr/bin/env bash
# run.sh - `make bench`: the benchmarks that need no peer venv and finish in minutes, in one
# run so their ratios are comparable: vector index at 100k (bench/run_index.sh) and search
# latency and quality on the SciFact dev set, this build against itself as a noise floor
# (bench/search_ab.sh). The peer comparisons (ONNX Runtime, Chroma, bm25s) and the longer
# runs are separate scripts; docs/performance.md names the command behind each figure.
# usage: bench/run.sh [BUILD_DIR]
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/run_index.sh" "$build" 100k
bash "$here/search_ab.sh" "$build" "$build" 2
