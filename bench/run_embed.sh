#!/usr/bin/env bash
# run_embed.sh - neural embedder benchmark: ragcore fp32 and int8 (C) vs the sgemm roofline and
# vs ONNX Runtime fp32 / int8 and sentence-transformers on the same texts and thread counts, in
# one run.
#
# usage: bench/run_embed.sh [BUILD_DIR] [DOCS]   (default: build, 1000 SciFact documents)
# Environment: MODELS (default "all-MiniLM-L6-v2"), BENCH_VENV (peer venv, created once),
#              DATA (default ../shared/data/scifact-dev beside the source tree),
#              EVAL=1 also embeds the whole corpus and reports dense nDCG@10,
#              REPEAT=N runs ragcore and the peers N times, alternated (the shared machine's
#              speed drifts by tens of percent between minutes: compare medians),
#              PAIRED=N instead runs ragcore fp32 / int8 and ONNX Runtime fp32 / int8 in
#              turn chunk by chunk (embed_peers.py --paired), N rounds at 1 then 2 threads,
#              QUERIES=N instead encodes every query alone on one thread with the same four
#              engines in turn, N passes (embed_peers.py --paired-queries).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
docs=${2:-1000}
data=${DATA:-$here/../../shared/data/scifact-dev}
venv=${BENCH_VENV:-${TMPDIR:-/tmp}/ragcore-bench-venv}
cache=${RAGCORE_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ragcore/models}
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), load $(cut -d' ' -f1-3 /proc/loadavg)"
for model in ${MODELS:-all-MiniLM-L6-v2}; do
    echo "== $model"
    "$build/bin/ragcore" model pull "$model" >/dev/null
    if [ -n "${QUERIES:-}" ]; then
        python3 "$here/embed_peers.py" --venv "$venv" --model-dir "$cache/$model" \
            --data "$data" --rounds "$QUERIES" --paired-queries "$build/bin/bench_embed" \
            2>/dev/null | grep -E 'query encode|wall'
        continue
    fi
    if [ -n "${PAIRED:-}" ]; then
        for th in 1 2; do
            python3 "$here/embed_peers.py" --venv "$venv" --model-dir "$cache/$model" \
                --data "$data" --docs "$docs" --threads "$th" --rounds "$PAIRED" \
                --paired "$build/bin/bench_embed" 2>/dev/null | grep -E 'round|paired|peers:'
        done
        continue
    fi
    for round in $(seq 1 "${REPEAT:-1}"); do
        [ "${REPEAT:-1}" = 1 ] || echo "-- round $round, load $(cut -d' ' -f1 /proc/loadavg)"
        RAGCORE_SOURCE_DIR="$here/.." "$build/bin/bench_embed" --model "$model" --data "$data" \
            --docs "$docs" --threads 1,2 ${EVAL:+--eval}
        python3 "$here/embed_peers.py" --venv "$venv" --model-dir "$cache/$model" \
            --data "$data" --docs "$docs" --threads 1,2 2>/dev/null |
            grep -E 'tokens/s|cosine|peers:'
    done
done
