#!/usr/bin/env bash
# bench_server.sh - load benchmark of ragcore-server with wrk: a 100k-chunk collection
# searched by vector (JSON numbers, and base64 float32: "vector-b64") and by text at
# concurrency 16 and 64 (QPS, p50/p95/p99, recall@10),
# and Chroma's server side by side on the same vectors and k when chromadb is installed
# in $CHROMA_VENV (python3 -m venv $CHROMA_VENV && $CHROMA_VENV/bin/pip install chromadb).
#
# usage: bench/bench_server.sh [BUILD_DIR]      (default: build)
# env:   N=100000 DURATION=10 WARMUP=3 (unmeasured seconds of searches after each start)
#        CONC="16 64" EMBEDDER=hash THREADS=0 (server threads; 0: CPUs)
#        EF=0 (HNSW ef_search; 0: library default)  EFC=0 (HNSW ef_construction of the ingest)
#        EF_SWEEP="16 32 64" (extra vector runs, server restarted at each ef_search, with recall)
#        KEEP=DIR (work directory kept after the run; a DIR holding store/ and query bodies
#        from an earlier run is reused: no generation, no ingest)
#        CHROMA=auto|0  CHROMA_VENV=~/.cache/ragcore/chroma-venv
#        CORPUS=synthetic|scifact (scifact: N chunks of real text cut from the SciFact
#        abstracts in DATA=../shared/data/scifact-dev and its queries; use with a neural
#        EMBEDDER such as all-MiniLM-L6-v2 for the vectors a real deployment searches)
# Prints a Markdown table on stdout; progress on stderr.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=$(cd "${1:-build}" && pwd)
N=${N:-100000}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
CONC=${CONC:-"16 64"}
EMBEDDER=${EMBEDDER:-hash}
THREADS=${THREADS:-0}
EF=${EF:-0}
EF_SWEEP=${EF_SWEEP:-}
EFC=${EFC:-0}
CHROMA=${CHROMA:-auto}
CHROMA_VENV=${CHROMA_VENV:-$HOME/.cache/ragcore/chroma-venv}
CORPUS=${CORPUS:-synthetic}
DATA=${DATA:-$HERE/../../shared/data/scifact-dev}
KEY=bench-admin-key-$$
if [ -n "${KEEP:-}" ]; then W=$KEEP; mkdir -p "$W"; else
    W=$(mktemp -d "${TMPDIR:-/tmp}/ragcore-bench-server.XXXXXX"); fi
SERVER_PID="" CHROMA_PID=""

log() { echo "bench_server: $*" >&2; }
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
    [ -n "$CHROMA_PID" ] && kill "$CHROMA_PID" 2>/dev/null && wait "$CHROMA_PID" 2>/dev/null || true
    [ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT

command -v wrk >/dev/null || { log "wrk not found (apt-get install wrk)"; exit 1; }
[ -x "$BUILD/bin/ragcore-server" ] || { log "$BUILD/bin/ragcore-server not built"; exit 1; }

. "$HERE/server_lib.sh"

run_wrk() { # URL BODIES KEY CONC -> one JSON line
    BODIES=$2 KEY=$3 wrk -t2 -c"$4" -d"${DURATION}s" --timeout 10s -s "$HERE/wrk_search.lua" "$1" |
        grep '^{"requests"'
}
# warm URL BODIES KEY: WARMUP seconds of searches, not measured, so that the first
# measured run after a (re)start does not pay for first touches of the index and store
warm() {
    [ "$WARMUP" -gt 0 ] || return 0
    DURATION=$WARMUP run_wrk "$1" "$2" "$3" 16 > /dev/null
}


start_server() { # EF -> SERVER_PID, URL
    rm -f "$W/port"
    RAGCORE_ADMIN_KEY=$KEY "$BUILD/bin/ragcore-server" --db "$W/store" --listen 127.0.0.1:0 \
        --port-file "$W/port" --embedder "$EMBEDDER" --threads "$THREADS" --access-log off \
        --max-inflight 100000 --ef-search "$1" --ef-construction "$EFC" 2>> "$W/server.log" &
    SERVER_PID=$!
    URL=$(server_url "$W/port")
}
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""; }

# wrk against ragcore-server; appends a table row (QPS, latencies, server CPU ms per request)
ragcore_row() { # MODE CONC LABEL
    local bodies="$W/${1/vector/vec}_bodies.jsonl" t0 t1 r
    log "wrk: ragcore by $1, concurrency $2, ${DURATION}s ($3)"
    t0=$(cpu_ticks "$SERVER_PID")
    r=$(run_wrk "$URL/v1/collections/bench/search" "$bodies" "$KEY" "$2")
    t1=$(cpu_ticks "$SERVER_PID")
    local cpu
    cpu=$(python3 -c "print(round(($t1 - $t0) * 1000.0 / $(getconf CLK_TCK) / $(field "$r" requests), 3))")
    ROWS+=("| ragcore-server, $3 | $1 | $2 | $(field "$r" qps) | $(field "$r" p50_ms) | $(field "$r" p95_ms) | $(field "$r" p99_ms) | $cpu | $(field "$r" non2xx)+$(field "$r" errors) |")
    log "${ROWS[-1]}"
}

PY=python3
have_numpy=0
if [ -x "$CHROMA_VENV/bin/python" ] && "$CHROMA_VENV/bin/python" -c "import numpy" 2>/dev/null; then
    PY=$CHROMA_VENV/bin/python
    have_numpy=1
fi

if [ -d "$W/store" ] && [ -s "$W/vec_bodies.jsonl" ]; then
    log "reusing the collection and query bodies in $W"
    [ -s "$W/vec-b64_bodies.jsonl" ] || python3 "$HERE/server_bench.py" b64bodies "$W"
    start_server "$EF"
    ingest_s="(reused)"
else
    log "generating $N documents ($CORPUS) in $W"
    case $CORPUS in
    synthetic) python3 "$HERE/server_bench.py" gen "$W" "$N" ;;
    scifact) python3 "$HERE/server_bench.py" gen-scifact "$W" "$N" "$DATA" ;;
    *) log "CORPUS must be synthetic or scifact, got '$CORPUS'"; exit 2 ;;
    esac
    log "starting ragcore-server ($EMBEDDER embedder)"
    start_server "$EF"
    curl -sf -H "Authorization: Bearer $KEY" -d '{"name":"bench"}' "$URL/v1/collections" >/dev/null
    log "ingesting"
    t0=$(date +%s.%N)
    for f in "$W"/batches/*.json; do
        curl -sf -H "Authorization: Bearer $KEY" --data-binary @"$f" \
            "$URL/v1/collections/bench/documents" >/dev/null
    done
    t1=$(date +%s.%N)
    ingest_s=$(python3 -c "print(round($t1 - $t0, 1))")
    python3 "$HERE/server_bench.py" bodies "$W" "$URL" "$KEY"
    if [ "$have_numpy" = 1 ]; then
        log "document vectors (for recall@10 against exact search with numpy)"
        $PY "$HERE/server_bench.py" docvecs "$W" "$URL" "$KEY"
    fi
fi
DIM=$(curl -sf "$URL/readyz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["dim"])')
INDEX=$(curl -sf "$URL/readyz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["index"])')
stats=$(curl -sf -H "Authorization: Bearer $KEY" "$URL/v1/collections/bench")
chunks=$(field "$stats" chunks)
log "collection: $(field "$stats" documents) documents, $chunks chunks (ingest ${ingest_s}s)"

declare -a ROWS=()
declare -a RECALLS=()
recall_of() { # label
    [ "$have_numpy" = 1 ] || return 0
    local r
    r=$($PY "$HERE/server_bench.py" recall "$W" "$URL" "$KEY")
    RECALLS+=("$1 $(field "$r" recall_at_10) (adjusted $(field "$r" recall_adjusted))")
    log "recall@10: ${RECALLS[-1]}"
}
warm "$URL/v1/collections/bench/search" "$W/vec_bodies.jsonl" "$KEY"
for mode in vector vector-b64 text; do
    for c in $CONC; do ragcore_row "$mode" "$c" "ef ${EF/#0/default}"; done
done
recall_of "ragcore-server (ef ${EF/#0/default})"
for ef in $EF_SWEEP; do
    stop_server
    start_server "$ef"
    warm "$URL/v1/collections/bench/search" "$W/vec_bodies.jsonl" "$KEY"
    for mode in vector vector-b64; do
        for c in $CONC; do ragcore_row "$mode" "$c" "ef $ef"; done
    done
    recall_of "ragcore-server (ef $ef)"
done
CRECALL="n/a"

if [ "$CHROMA" != 0 ] && [ -x "$CHROMA_VENV/bin/chroma" ] && [ "$have_numpy" = 1 ]; then
    # Stop ragcore first so both servers get the machine to themselves.
    stop_server
    CPORT=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
    log "starting chroma on port $CPORT (telemetry off)"
    ANONYMIZED_TELEMETRY=False CHROMA_TELEMETRY_ENABLED=false "$CHROMA_VENV/bin/chroma" run \
        --path "$W/chroma" --host 127.0.0.1 --port "$CPORT" > "$W/chroma.log" 2>&1 &
    CHROMA_PID=$!
    CURL=http://127.0.0.1:$CPORT
    wait_http "$CURL/api/v2/heartbeat" 120
    log "loading the same vectors into chroma"
    ANONYMIZED_TELEMETRY=False $PY "$HERE/server_bench.py" chroma-load "$W" "$CURL" >&2
    cid=$(cat "$W/chroma_collection_id")
    QPATH="$CURL/api/v2/tenants/default_tenant/databases/default_database/collections/$cid/query"
    warm "$QPATH" "$W/chroma_bodies.jsonl" ""
    for c in $CONC; do
        log "wrk: chroma by vector, concurrency $c, ${DURATION}s"
        t0=$(cpu_ticks "$CHROMA_PID")
        r=$(run_wrk "$QPATH" "$W/chroma_bodies.jsonl" "" "$c")
        t1=$(cpu_ticks "$CHROMA_PID")
        cpu=$(python3 -c "print(round(($t1 - $t0) * 1000.0 / $(getconf CLK_TCK) / $(field "$r" requests), 3))")
        ROWS+=("| chroma $("$CHROMA_VENV/bin/python" -c 'import chromadb; print(chromadb.__version__)') | vector | $c | $(field "$r" qps) | $(field "$r" p50_ms) | $(field "$r" p95_ms) | $(field "$r" p99_ms) | $cpu | $(field "$r" non2xx)+$(field "$r" errors) |")
        log "${ROWS[-1]}"
    done
    r=$(ANONYMIZED_TELEMETRY=False $PY "$HERE/server_bench.py" chroma-recall "$W" "$CURL")
    CRECALL="$(field "$r" recall_at_10) (adjusted $(field "$r" recall_adjusted))"
fi

echo "Collection: $chunks chunks ($CORPUS corpus), $EMBEDDER embedder (dim $DIM), index $INDEX, ef_construction ${EFC/#0/default}, k=10, ${DURATION}s per run, wrk -t2 on the same $(nproc)-CPU machine; ingest over HTTP took ${ingest_s}s."
echo
echo "| server | search by | concurrency | QPS | p50 ms | p95 ms | p99 ms | server CPU ms/request | non-2xx+errors |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
echo "recall@10 against exact search (200 queries; adjusted: exact-text duplicates count as one"
echo "slot, documents stored as several chunks left out of the truth):"
for r in "${RECALLS[@]}"; do echo "- $r"; done
echo "- chroma $CRECALL"
