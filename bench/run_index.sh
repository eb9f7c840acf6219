#!/usr/bin/env bash
# run_index.sh - runs bench_index at 100k (efSearch sweep) and 1M vectors; logs per run.
#
# usage: bench/run_index.sh [BUILD_DIR] [SIZES]
#   BUILD_DIR  build tree holding bin/bench_index (default: build)
#   SIZES      which runs: "100k", "1m" or "100k 1m" (default)
# Environment: BENCH_DIR (stores and logs; default /tmp/ragcore-bench-index),
#              QUERIES (default 2000 at 100k, 1000 at 1M).
# The 1M run needs ~15 GB free disk for the store plus a few GB of RAM and takes tens of
# minutes on 2 cores; run it under nohup and follow $BENCH_DIR/index-1m.log.
set -euo pipefail
build=${1:-build}
sizes=${2:-"100k 1m"}
bin="$build/bin/bench_index"
[[ -x "$bin" ]] || { echo "run_index.sh: $bin not found (build target bench_index)" >&2; exit 1; }
out=${BENCH_DIR:-/tmp/ragcore-bench-index}
mkdir -p "$out"

# OpenMP threads sleep instead of spinning when idle: on a shared machine spinning inflates
# the CPU-time figures and steals cycles from the other thread.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

run() { # name, args...
    local name=$1
    shift
    echo "== $name: $bin $*" | tee "$out/index-$name.log"
    /usr/bin/time -v "$bin" "$@" 2>&1 | tee -a "$out/index-$name.log"
}

for s in $sizes; do
    case $s in
    100k) run 100k --n 100000 --queries "${QUERIES:-2000}" --ef 64,128,256,512 \
              --store "$out/store-100k" ;;
    1m)   run 1m --n 1000000 --queries "${QUERIES:-1000}" --ef 256 \
              --store "$out/store-1m" ;;
    *) echo "run_index.sh: unknown size '$s' (100k or 1m)" >&2; exit 1 ;;
    esac
done
echo "logs in $out"
