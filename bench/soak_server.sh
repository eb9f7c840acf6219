#!/usr/bin/env bash
# soak_server.sh - long-run soak of ragcore-server: wrk searches at about 80 % of the maximum
# QPS (measured while ingest runs) while a second client keeps upserting documents at a
# steady rate (replacing a rotating set of ids, so deletes, tombstones, checkpoints and
# index compactions happen throughout). Samples the server's resident memory every SAMPLE
# seconds and reports errors and memory growth.
#
# usage: bench/soak_server.sh [BUILD_DIR]          (default: build)
# env:   MINUTES=30 WARMUP_MINUTES=5 N=20000 (documents loaded first) LOAD=0.8 (fraction of
#        the measured max QPS) CONC=8 SAMPLE=10 BATCH=100 (documents per upsert request)
#        INGEST_RATE=50 (documents/s) CHECKPOINT_EVERY=5000 (server --checkpoint-every)
#        SERVER_FLAGS="" (more ragcore-server flags, e.g. "--querylog off")
#        OUT=DIR (keeps rss.tsv, wrk and ingest logs there; default: a temporary dir)
# Prints a Markdown summary on stdout; exits 1 when any request failed or anonymous memory
# grew by 5 % or more after warm-up.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/server_lib.sh"
BUILD=$(cd "${1:-build}" && pwd)
MINUTES=${MINUTES:-30}
WARMUP_MINUTES=${WARMUP_MINUTES:-5}
N=${N:-20000}
LOAD=${LOAD:-0.8}
CONC=${CONC:-8}
SAMPLE=${SAMPLE:-10}
BATCH=${BATCH:-100}
INGEST_RATE=${INGEST_RATE:-50}
CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-5000}
KEY=soak-admin-key-$$
W=$(mktemp -d "${TMPDIR:-/tmp}/ragcore-soak.XXXXXX")
OUT=${OUT:-$W}
mkdir -p "$OUT"
SERVER_PID="" INGEST_PID=""

log() { echo "soak: $*" >&2; }
cleanup() {
    [ -n "$INGEST_PID" ] && kill "$INGEST_PID" 2>/dev/null || true
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
    rm -rf "$W/store" "$W/batches"
    [ "$OUT" = "$W" ] || rm -rf "$W"
}
trap cleanup EXIT

command -v wrk >/dev/null || { log "wrk not found (apt-get install wrk)"; exit 1; }
[ -x "$BUILD/bin/ragcore-server" ] || { log "$BUILD/bin/ragcore-server not built"; exit 1; }
mem_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

log "generating $N documents"
python3 "$HERE/server_bench.py" gen "$W" "$N"
RAGCORE_ADMIN_KEY=$KEY "$BUILD/bin/ragcore-server" --db "$W/store" --listen 127.0.0.1:0 \
    --port-file "$W/port" --embedder hash --access-log off \
    --checkpoint-every "$CHECKPOINT_EVERY" ${SERVER_FLAGS:-} 2> "$OUT/server.log" &
SERVER_PID=$!
URL=$(server_url "$W/port")
curl -sf -H "Authorization: Bearer $KEY" -d '{"name":"bench"}' "$URL/v1/collections" >/dev/null
log "loading"
for f in "$W"/batches/*.json; do
    curl -sf -H "Authorization: Bearer $KEY" --data-binary @"$f" \
        "$URL/v1/collections/bench/documents" >/dev/null
done
python3 "$HERE/server_bench.py" bodies "$W" "$URL" "$KEY"
SEARCH=$URL/v1/collections/bench/search

# Ingest client: upserts batches of the original documents with changed text, replacing
# ids round-robin, INGEST_RATE documents per second, for as long as the soak runs.
python3 - "$W" "$URL" "$KEY" "$BATCH" "$INGEST_RATE" > "$OUT/ingest.log" 2>&1 <<'EOF' &
import json, os, sys, urllib.request, time
d, url, key, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
period = batch / float(sys.argv[5])
t_next = time.time()
docs = []
for name in sorted(os.listdir(os.path.join(d, "batches"))):
    docs += json.load(open(os.path.join(d, "batches", name)))["documents"]
ok = fail = rnd = 0
while True:
    for i in range(0, len(docs), batch):
        time.sleep(max(0.0, t_next - time.time()))
        t_next += period
        rnd += 1
        part = [dict(x, text=x["text"] + " revision %d" % rnd) for x in docs[i:i + batch]]
        req = urllib.request.Request(url + "/v1/collections/bench/documents",
                                     data=json.dumps({"documents": part}).encode(), method="POST")
        req.add_header("Content-Type", "application/json")
        req.add_header("Authorization", "Bearer " + key)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                r.read()
            ok += 1
        except Exception as e:  # counted and shown; the soak fails on any
            fail += 1
            print("ingest error: %s" % e, flush=True)
        print(json.dumps({"t": time.time(), "ok": ok, "fail": fail, "docs": ok * batch}), flush=True)
EOF
INGEST_PID=$!

log "measuring the maximum QPS (vector search, concurrency $CONC, 15 s, ingest running)"
max=$(BODIES=$W/vec_bodies.jsonl KEY=$KEY wrk -t1 -c"$CONC" -d15s --timeout 10s \
    -s "$HERE/wrk_search.lua" "$SEARCH" | grep '^{"requests"')
maxqps=$(field "$max" qps)
# Each connection waits DELAY ms after every response: CONC / (DELAY + latency) ~ target.
target=$(python3 -c "print(round($maxqps * $LOAD, 1))")
delay=$(python3 -c "print(max(0.0, 1000.0 * $CONC / $target - $(field "$max" p50_ms)))")
log "max $maxqps QPS; target $target QPS (delay $delay ms per connection)"


log "soak: $MINUTES minutes"
WRK_DELAY=$delay BODIES=$W/vec_bodies.jsonl KEY=$KEY wrk -t1 -c"$CONC" -d"${MINUTES}m" \
    --timeout 10s -s "$HERE/wrk_search.lua" "$SEARCH" > "$OUT/wrk.log" 2>&1 &
WRK_PID=$!
start=$(date +%s)
printf 't_s\trss_kb\tanon_kb\tfile_kb\n' > "$OUT/rss.tsv"
while kill -0 "$WRK_PID" 2>/dev/null; do
    printf '%s\t%s\t%s\t%s\n' $(($(date +%s) - start)) "$(mem_kb "$SERVER_PID" VmRSS)" \
        "$(mem_kb "$SERVER_PID" RssAnon)" "$(mem_kb "$SERVER_PID" RssFile)" >> "$OUT/rss.tsv"
    sleep "$SAMPLE"
done
wait "$WRK_PID" || true
kill "$INGEST_PID" 2>/dev/null; wait "$INGEST_PID" 2>/dev/null || true; INGEST_PID=""
res=$(grep '^{"requests"' "$OUT/wrk.log")
ing=$(grep '^{' "$OUT/ingest.log" | tail -1)

python3 - "$OUT/rss.tsv" "$WARMUP_MINUTES" "$res" "$ing" "$target" "$maxqps" "$MINUTES" <<'EOF'
import json, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n")[1:] if l.strip()]
rows = [(int(t), int(r), int(a), int(f)) for t, r, a, f in rows]
warm = int(sys.argv[2]) * 60
res, ing = json.loads(sys.argv[3]), json.loads(sys.argv[4])
after = [x for x in rows if x[0] >= warm]
base = after[0]
third = max(1, len(after) // 3)
first, last = after[:third], after[-third:]
def growth(i):  # peak of the last third against the peak of the first third
    return 100.0 * (max(x[i] for x in last) - max(x[i] for x in first)) / max(x[i] for x in first)
print("| figure | value |\n|---|---|")
print("| duration | %s min (%d memory samples) |" % (sys.argv[7], len(rows)))
print("| search load | %.1f QPS achieved (target %s = 80 %% of the measured max %s) |" %
      (res["qps"], sys.argv[5], sys.argv[6]))
print("| searches | %d, p50 %.2f ms, p99 %.2f ms, errors %d, non-2xx %d |" %
      (res["requests"], res["p50_ms"], res["p99_ms"], res["errors"], res["non2xx"]))
print("| concurrent ingest | %d upsert requests ok (%d documents replaced), %d failed |" %
      (ing["ok"], ing["docs"], ing["fail"]))
print("| RSS at warm-up end (%d s) | %d MB (anonymous %d MB, file-backed %d MB) |" %
      (base[0], base[1] // 1024, base[2] // 1024, base[3] // 1024))
print("| RSS at end | %d MB (anonymous %d MB, file-backed %d MB) |" %
      (after[-1][1] // 1024, after[-1][2] // 1024, after[-1][3] // 1024))
print("| peak RSS, first / last third after warm-up | %d / %d MB (anonymous %d / %d MB) |" %
      (max(x[1] for x in first) // 1024, max(x[1] for x in last) // 1024,
       max(x[2] for x in first) // 1024, max(x[2] for x in last) // 1024))
print("| growth after warm-up (last third's peak vs first third's) | RSS %+.1f %%, anonymous %+.1f %% |" %
      (growth(1), growth(2)))
bad = res["errors"] + res["non2xx"] + ing["fail"] > 0 or growth(2) >= 5.0
print("| verdict | %s |" % ("FAIL" if bad else "pass: zero errors, anonymous memory flat (< 5 %)"))
sys.exit(1 if bad else 0)
EOF
