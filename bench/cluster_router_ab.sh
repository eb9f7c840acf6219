#!/usr/bin/env bash
# cluster_router_ab.sh - a router's request cost, two builds side by side: for each build
# (directories of ragcore-server) a local cluster (tools/cluster_dev.sh: 3 NATS, 2 shards x
# 2 replicas, 2 routers) gets a 2-shard collection (hash dim 32, Flat) of 300 documents,
# then QUERIES sequential hybrid searches (k 10) and 100 single-document upserts through
# router 1, with the admin key (a build that checks no key ignores it). The builds alternate
# in each of ROUNDS rounds; prints p50 and p95 milliseconds of each run.
# Usage: bench/cluster_router_ab.sh BASE_BIN_DIR NEW_BIN_DIR [ROUNDS, default 2] [QUERIES, 300]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
base=${1:?usage: bench/cluster_router_ab.sh BASE_BIN_DIR NEW_BIN_DIR [ROUNDS] [QUERIES]}
new=${2:?usage: bench/cluster_router_ab.sh BASE_BIN_DIR NEW_BIN_DIR [ROUNDS] [QUERIES]}
rounds=${3:-2}
queries=${4:-300}
dir=${TMPDIR:-/tmp}/ragcore-cluster-router-ab
export RAGCORE_CLUSTER_BASE=36222 RAGCORE_CLUSTER_HTTP=37000
dev=$here/tools/cluster_dev.sh
trap '"$dev" stop "$dir"' EXIT
for round in $(seq 1 "$rounds"); do
    for build in base new; do
        bin=$base; [ "$build" = new ] && bin=$new
        "$dev" stop "$dir" 2>/dev/null || true
        rm -rf "$dir"
        RAGCORE_BIN=$bin "$dev" start "$dir" 2>/dev/null
        python3 - "$dir" "$build" "$round" "$queries" <<'PY'
import json, random, statistics, sys, time, urllib.request
dir_, build, round_, queries = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
key = open(f"{dir_}/admin.key").read().strip()
front = f"http://127.0.0.1:{int(open(f'{dir_}/run/router1.port').read())}"
def call(method, path, body=None):
    req = urllib.request.Request(front + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json",
                                          "Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())
rnd = random.Random(5)
words = [f"w{i}" for i in range(2000)]
text = lambda: " ".join(rnd.choice(words) for _ in range(60))
call("POST", "/v1/collections", {"name": "ab", "shards": 2, "embedder": "hash", "dim": 32,
                                 "index_spec": "Flat"})
for k in range(0, 300, 50):
    call("POST", "/v1/collections/ab/documents",
         {"documents": [{"id": f"d{i}", "text": text()} for i in range(k, k + 50)]})
time.sleep(2)
def timed(f, n):
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        f(i)
        out.append((time.perf_counter() - t0) * 1000)
    out.sort()
    return statistics.median(out), out[int(len(out) * 0.95)]
for _ in range(20):  # warm-up
    call("POST", "/v1/collections/ab/search", {"query": text()[:60], "k": 10, "mode": "hybrid"})
s = timed(lambda i: call("POST", "/v1/collections/ab/search",
                         {"query": " ".join(rnd.choice(words) for _ in range(4)), "k": 10,
                          "mode": "hybrid"}), queries)
w = timed(lambda i: call("POST", "/v1/collections/ab/documents",
                         {"documents": [{"id": f"w{i}", "text": text()}]}), 100)
print(f"round {round_} {build}: search p50 {s[0]:.2f} p95 {s[1]:.2f} ms; "
      f"upsert p50 {w[0]:.2f} p95 {w[1]:.2f} ms", flush=True)
PY
    done
done
