#!/usr/bin/env bash
# server_ab.sh - side-by-side search-by-vector load on a store kept by bench_server.sh
# (KEEP=DIR): each round starts each given ragcore-server build in turn on DIR/store, warms
# it for 3 s, then runs wrk for DURATION s, so that host drift hits every build alike.
#
# usage: bench/server_ab.sh DIR EF BUILD:BODIES [BUILD:BODIES ...]
#   BODIES: vec (JSON numbers, DIR/vec_bodies.jsonl) or vec-b64 (base64 float32 strings)
# env:   ROUNDS=3 DURATION=10 CONC=16
# Prints one line per run: build, bodies, QPS, p50/p95/p99 ms, server CPU ms per request.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/server_lib.sh"
W=$1 EF=$2
shift 2
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-10} CONC=${CONC:-16}
KEY=ab-admin-key-$$ PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; true' EXIT
for round in $(seq 1 "$ROUNDS"); do
    for spec in "$@"; do
        build=${spec%%:*} bodies=${spec#*:} port=$(mktemp)
        RAGCORE_ADMIN_KEY=$KEY "$build/bin/ragcore-server" --db "$W/store" --listen 127.0.0.1:0 \
            --port-file "$port" --access-log off --max-inflight 100000 --ef-search "$EF" \
            2>> "$W/server_ab.log" &
        PID=$!
        url=$(server_url "$port")/v1/collections/bench/search
        rm -f "$port"
        BODIES=$W/${bodies}_bodies.jsonl KEY=$KEY wrk -t2 -c"$CONC" -d3s -s "$HERE/wrk_search.lua" \
            "$url" > /dev/null
        t0=$(cpu_ticks "$PID")
        r=$(BODIES=$W/${bodies}_bodies.jsonl KEY=$KEY wrk -t2 -c"$CONC" -d"${DURATION}s" \
            -s "$HERE/wrk_search.lua" "$url" | grep '^{"requests"')
        t1=$(cpu_ticks "$PID")
        kill "$PID"
        wait "$PID" || true
        PID=""
        python3 -c "import json,sys; r=json.loads(sys.argv[1]); print('round %s %-28s %-8s QPS %7.1f  p50 %5.2f p95 %5.2f p99 %5.2f ms  CPU %.3f ms/req' % (sys.argv[2], sys.argv[3], sys.argv[4], r['qps'], r['p50_ms'], r['p95_ms'], r['p99_ms'], (int(sys.argv[6]) - int(sys.argv[5])) * 1000.0 / int(sys.argv[7]) / r['requests']))" \
            "$r" "$round" "$build" "$bodies" "$t0" "$t1" "$(getconf CLK_TCK)"
    done
done
