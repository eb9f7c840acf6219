#!/usr/bin/env bash
# run_precision.sh - fp32 vs int8 encoder side by side in one run, with ONNX Runtime fp32 and
# int8 on the same texts: query encoding latency, batch tokens/s (one thread), and text
# query -> top-10 latency (wall, and CPU time of the searching thread) and nDCG@10 on two
# SciFact stores (one built in each precision).
#
# usage: bench/run_precision.sh BUILD_DIR FP32_STORE INT8_STORE [ROUNDS]
#   the stores: `ragcore ingest --db S --embedder all-MiniLM-L6-v2:fp32|:int8 DATA/corpus.jsonl.gz`
# Environment: DATA (default ../shared/data/scifact-dev beside the source tree), BENCH_VENV
#   (peer venv, created once), DOCS (batch documents, default 200), ROUNDS (default 2).
# Every contender runs in turn inside each round, so a drifting shared machine moves all
# of them alike: compare within a round.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: run_precision.sh BUILD_DIR FP32_STORE INT8_STORE [ROUNDS]}
fp32_store=${2:?fp32 store}
int8_store=${3:?int8 store}
rounds=${4:-${ROUNDS:-2}}
data=${DATA:-$here/../../shared/data/scifact-dev}
venv=${BENCH_VENV:-${TMPDIR:-/tmp}/ragcore-bench-venv}
cache=${RAGCORE_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ragcore/models}
model=all-MiniLM-L6-v2
export RAGCORE_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
flags=$(grep -m1 '^flags' /proc/cpuinfo)
simd=$(for f in avx2 fma avx512f avx512_vnni avx_vnni; do
           case " $flags " in *" $f "*) printf '%s ' "$f";; esac; done)
echo "machine: $(nproc --all) CPUs,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), SIMD: $simd"
echo "int8 kernel: $(case "$simd" in *avx512_vnni*) echo AVX-512 VNNI;; *avx_vnni*) echo AVX-VNNI;;
                     *avx2*) echo AVX2;;
                     *) echo scalar;; esac); commit ${COMMIT:-$(git -C "$here" rev-parse --short HEAD 2>/dev/null)}"
load() { cut -d' ' -f1 /proc/loadavg; }
for r in $(seq 1 "$rounds"); do
    echo "== round $r (load $(load))"
    python3 "$here/embed_peers.py" --venv "$venv" --model-dir "$cache/$model" --data "$data" \
        --rounds 1 --paired-queries "$build/bin/bench_embed" 2>/dev/null |
        grep -E 'query encode|wall'
    python3 "$here/embed_peers.py" --venv "$venv" --model-dir "$cache/$model" --data "$data" \
        --docs "${DOCS:-200}" --threads 1 --rounds 1 --paired "$build/bin/bench_embed" \
        2>/dev/null | grep -E '^round|peers:'
    for mode in hybrid dense; do
        for store in "$fp32_store" "$int8_store"; do
            "$build/bin/ragcore" eval --db "$store" --queries "$data/queries.jsonl" \
                --qrels "$data/qrels/train.tsv" -k 10 --mode "$mode" --json |
                python3 -c 'import json,sys
d = json.load(sys.stdin)
print("  %-6s %-28s nDCG@10 %.4f | wall p50 %6.2f p95 %6.2f ms | cpu p50 %5.2f p95 %5.2f ms"
      % (sys.argv[1], sys.argv[2], d["ndcg@10"], d["latency_ms_p50"], d["latency_ms_p95"],
         d["cpu_ms_p50"], d["cpu_ms_p95"]))' "$mode" "$store"
        done
    done
done
