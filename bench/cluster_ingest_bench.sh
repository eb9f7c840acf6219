#!/usr/bin/env bash
# cluster_ingest_bench.sh - `ragcore ingest --cluster` throughput on one machine: a local
# cluster (tools/cluster_dev.sh: 3 NATS, 2 shards x 2 replicas, 2 routers behind HAProxy)
# and a corpus ingested into fresh 2-shard collections (hash embedder, dim 384, HNSW32)
# with 1, 2 and 4 workers, the runs alternated REPEAT times; prints documents/s of each run
# (the CLI's summary) and the time until every replica had applied it.
# Usage: bench/cluster_ingest_bench.sh CORPUS.jsonl[.gz] [REPEAT, default 2]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
corpus=${1:?usage: bench/cluster_ingest_bench.sh CORPUS.jsonl[.gz] [REPEAT]}
repeat=${2:-2}
dir=${TMPDIR:-/tmp}/ragcore-cluster-ingest-bench
export RAGCORE_CLUSTER_BASE=35222 RAGCORE_CLUSTER_HTTP=39000
export RAGCORE_BIN=${RAGCORE_BIN:-$here/build/bin}
dev=$here/tools/cluster_dev.sh
"$dev" stop "$dir" 2>/dev/null || true
rm -rf "$dir"
trap '"$dev" stop "$dir"' EXIT
"$dev" start "$dir"

python3 - "$dir" "$corpus" "$repeat" <<'PY'
import json, os, re, subprocess, sys, time, urllib.request

dir_, corpus, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
bin_ = os.environ["RAGCORE_BIN"]
front = f"http://127.0.0.1:{os.environ['RAGCORE_CLUSTER_HTTP']}"
KEY = open(f"{dir_}/admin.key").read().strip()  # the routers' bootstrap admin key
os.environ["RAGCORE_API_KEY"] = KEY  # for ragcore ingest --cluster

def create(name):
    req = urllib.request.Request(f"{front}/v1/collections", method="POST",
                                 headers={"Authorization": f"Bearer {KEY}"},
                                 data=json.dumps({"name": name, "shards": 2, "embedder": "hash",
                                                  "dim": 384, "index_spec": "HNSW32"}).encode())
    urllib.request.urlopen(req, timeout=30).read()

def applied(name):
    out = subprocess.run([f"{bin_}/ragcore-server", "cluster", "status", "--config",
                          f"{dir_}/cluster.json", "--json"], capture_output=True, text=True)
    shards = json.loads(out.stdout)["collections"][name]["shards"]
    return all(r["seq"] == sh["log_last"] for sh in shards for r in sh["replicas"]) and \
        all(len(sh["replicas"]) == 2 for sh in shards)

for rnd in range(repeat):
    for workers in (1, 2, 4):
        name = f"c{rnd}w{workers}"
        create(name)
        time.sleep(2)  # the replicas open the new shard stores
        t0 = time.time()
        out = subprocess.run([f"{bin_}/ragcore", "ingest", "--cluster", front, "--collection",
                              name, "--workers", str(workers), "--quiet", corpus],
                             capture_output=True, text=True, check=True).stdout
        t1 = time.time()
        while not applied(name):
            time.sleep(0.2)
        t2 = time.time()
        rate = re.search(r"\((\d+) docs/s", out)
        print(f"workers {workers}: {out.splitlines()[0]}; applied on every replica "
              f"{t2 - t1:.1f} s after the last acknowledgement ({rate.group(1) if rate else '?'} "
              f"docs/s acknowledged)", flush=True)
PY
