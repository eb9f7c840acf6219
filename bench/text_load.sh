#!/usr/bin/env bash
# text_load.sh - text-query load on ragcore-server over an existing store (e.g. SciFact
# ingested with all-MiniLM-L6-v2): the maximum QPS of `{"query": ..., "k": 10}` searches
# (hybrid, the default mode; each query embedded by the server), then a paced run at
# FRACTION of it, reporting p50/p95/p99 and the server's CPU per request.
#
# usage: bench/text_load.sh BUILD_DIR STORE_DIR QUERIES.jsonl [COLLECTION]
#        QUERIES.jsonl: BEIR queries ({"_id", "text"} per line)
# env:   CONC=8 SECONDS_MAX=15 SECONDS_PACED=30 FRACTION=0.5 SERVER_FLAGS="--threads 8"
# The store is opened read-write by the server but only searched.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/server_lib.sh"
BUILD=$(cd "${1:?usage: text_load.sh BUILD_DIR STORE_DIR QUERIES.jsonl [COLLECTION]}" && pwd)
STORE=${2:?store directory}
QUERIES=${3:?queries.jsonl}
COLL=${4:-default}
CONC=${CONC:-8}
SECONDS_MAX=${SECONDS_MAX:-15}
SECONDS_PACED=${SECONDS_PACED:-30}
FRACTION=${FRACTION:-0.5}
KEY=text-load-key-$$
W=$(mktemp -d "${TMPDIR:-/tmp}/ragcore-text-load.XXXXXX")
SERVER_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT

python3 -c '
import json, sys
with open(sys.argv[2], "w") as out:
    for line in open(sys.argv[1]):
        if line.strip():
            out.write(json.dumps({"query": json.loads(line)["text"], "k": 10}) + "\n")
' "$QUERIES" "$W/bodies.jsonl"

RAGCORE_ADMIN_KEY=$KEY "$BUILD/bin/ragcore-server" --db "$STORE" --listen 127.0.0.1:0 \
    --port-file "$W/port" --access-log off --max-inflight 100000 ${SERVER_FLAGS:-} 2> "$W/server.log" &
SERVER_PID=$!
URL=$(server_url "$W/port")
SEARCH=$URL/v1/collections/$COLL/search
embedder=$(curl -sf "$URL/readyz" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("embedder","?"))')

run() { # SECONDS DELAY_MS -> JSON line with cpu_ms
    local t0 t1 r
    t0=$(cpu_ticks "$SERVER_PID")
    r=$(WRK_DELAY=$2 BODIES=$W/bodies.jsonl KEY=$KEY wrk -t1 -c"$CONC" -d"$1s" --timeout 10s \
        -s "$HERE/wrk_search.lua" "$SEARCH" | grep '^{"requests"')
    t1=$(cpu_ticks "$SERVER_PID")
    python3 -c "import json,sys; r=json.loads(sys.argv[1]); r['cpu_ms']=round(($t1-$t0)*1000.0/$(getconf CLK_TCK)/r['requests'],2); print(json.dumps(r))" "$r"
}
BODIES=$W/bodies.jsonl KEY=$KEY wrk -t1 -c2 -d3s -s "$HERE/wrk_search.lua" "$SEARCH" >/dev/null
max=$(run "$SECONDS_MAX" 0)
target=$(python3 -c "print(round($(field "$max" qps) * $FRACTION, 1))")
delay=$(python3 -c "print(1000.0 * $CONC / $target)")  # at most the target: each connection also waits for its replies
paced=$(run "$SECONDS_PACED" "$delay")
echo "Store $STORE (collection $COLL, embedder $embedder), $(wc -l < "$W/bodies.jsonl") queries round-robin, k 10, hybrid; wrk -t1 -c$CONC on the same $(nproc)-CPU machine."
echo
echo "| run | QPS | p50 ms | p95 ms | p99 ms | server CPU ms/request | errors + non-2xx |"
echo "|---|---|---|---|---|---|---|"
for r in "max:$max" "paced at ${FRACTION} of max (target $target QPS):$paced"; do
    j=${r#*:}
    echo "| ${r%%:*} | $(field "$j" qps) | $(field "$j" p50_ms) | $(field "$j" p95_ms) | $(field "$j" p99_ms) | $(field "$j" cpu_ms) | $(($(field "$j" errors) + $(field "$j" non2xx))) |"
done
