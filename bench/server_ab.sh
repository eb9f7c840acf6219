#!/usr/bin/env bash
# server_ab.sh - side-by-side search-by-vector load on a store kept by bench_server.sh
# (KEEP=DIR): each round starts each given ragcore-server build in turn on DIR/store, warms
# it for 3 s, then runs wrk for DURATION s, so that host drift hits every build alike.
#
# usage: bench/server_ab.sh DIR EF BUILD:BODIES[:EF2[:DIR2]] [BUILD:BODIES... ...]
#   BODIES: vec (JSON numbers, DIR/vec_bodies.jsonl) or vec-b64 (base64 float32 strings)
#   EF2, DIR2: this run's efSearch and store directory instead of EF and DIR (e.g. a copy
#   of the store whose index was built with another efConstruction)
# env:   ROUNDS=3 DURATION=10 CONC=16 WRK_THREADS=2
# Prints one line per run: build, bodies, QPS, p50/p95/p99/p99.9 ms, server CPU ms per
# request, and the sizes of the server's epoll sets 2 s into the run: one per HTTP event
# loop, each holding that loop's connections and its wake-up descriptor (and, in builds
# before server/acceptor.c, the listening socket), so they show how evenly the
# connections were spread.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/server_lib.sh"
W=$1 EF=$2
shift 2
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-10} CONC=${CONC:-16} WRK_THREADS=${WRK_THREADS:-2}
KEY=ab-admin-key-$$ PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; true' EXIT
for round in $(seq 1 "$ROUNDS"); do
    for spec in "$@"; do
        IFS=: read -r build bodies ef dir <<< "$spec"
        ef=${ef:-$EF} dir=${dir:-$W} port=$(mktemp) label=$build
        [ "$dir" = "$W" ] || label="$build@$dir"
        RAGCORE_ADMIN_KEY=$KEY "$build/bin/ragcore-server" --db "$dir/store" --listen 127.0.0.1:0 \
            --port-file "$port" --access-log off --max-inflight 100000 --ef-search "$ef" \
            2>> "$W/server_ab.log" &
        PID=$!
        url=$(server_url "$port")/v1/collections/bench/search
        rm -f "$port"
        BODIES=$W/${bodies}_bodies.jsonl KEY=$KEY wrk -t"$WRK_THREADS" -c"$CONC" -d3s \
            -s "$HERE/wrk_search.lua" "$url" > /dev/null
        t0=$(cpu_ticks "$PID")
        out=$(mktemp)
        BODIES=$W/${bodies}_bodies.jsonl KEY=$KEY wrk -t"$WRK_THREADS" -c"$CONC" \
            -d"${DURATION}s" -s "$HERE/wrk_search.lua" "$url" > "$out" &
        wpid=$!
        sleep 2
        sets=$(epoll_sets "$PID")
        wait "$wpid"
        r=$(grep '^{"requests"' "$out")
        rm -f "$out"
        t1=$(cpu_ticks "$PID")
        kill "$PID"
        wait "$PID" || true
        PID=""
        python3 -c "import json,sys; r=json.loads(sys.argv[1]); print('round %s %-28s %-8s ef %-3s QPS %7.1f  p50 %5.2f p95 %5.2f p99 %5.2f p99.9 %5.2f ms  CPU %.3f ms/req  epoll sets %s' % (sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[9], r['qps'], r['p50_ms'], r['p95_ms'], r['p99_ms'], r['p999_ms'], (int(sys.argv[6]) - int(sys.argv[5])) * 1000.0 / int(sys.argv[7]) / r['requests'], sys.argv[8]))" \
            "$r" "$round" "$label" "$bodies" "$t0" "$t1" "$(getconf CLK_TCK)" "$sets" "$ef"
    done
done
