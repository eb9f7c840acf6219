#!/usr/bin/env bash
# cluster_dedup_bench.sh - the cost of duplicate detection across shards on a cluster's
# ingest: a local cluster (tools/cluster_dev.sh: 3 NATS, 2 shards x 2 replicas, 2 routers
# behind HAProxy) and a synthetic corpus (DOCS documents of 120 words, COPIES % of them
# exact copies of earlier ones under other ids) posted in requests of 64 documents by 2
# client threads into fresh collections with dedup off and skip, the runs alternated (off,
# skip, skip, off) REPEAT times; prints acknowledged documents/s of each run and the size
# of the duplicate logs. Usage: bench/cluster_dedup_bench.sh [REPEAT, default 2]
# (env DOCS, default 2000; COPIES, default 10; EMBEDDER, default hash; DIM, default 384)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
repeat=${1:-2}
dir=${TMPDIR:-/tmp}/ragcore-cluster-dedup-bench
export RAGCORE_CLUSTER_BASE=${RAGCORE_CLUSTER_BASE:-36222} RAGCORE_CLUSTER_HTTP=${RAGCORE_CLUSTER_HTTP:-39400}
export RAGCORE_BIN=${RAGCORE_BIN:-$here/build/bin}
dev=$here/tools/cluster_dev.sh
"$dev" stop "$dir" 2>/dev/null || true
rm -rf "$dir"
trap '"$dev" stop "$dir"' EXIT
"$dev" start "$dir"

RAGCORE_CLUSTER_DIR=$dir python3 - "$repeat" <<'PY'
import json, os, random, sys, threading, time, urllib.error, urllib.request

repeat = int(sys.argv[1])
front = f"http://127.0.0.1:{os.environ['RAGCORE_CLUSTER_HTTP']}"
ndocs = int(os.environ.get("DOCS", "2000"))
emb, dim = os.environ.get("EMBEDDER", "hash"), int(os.environ.get("DIM", "384"))
rnd = random.Random(5)
vocab = [f"w{i:04d}" for i in range(5000)]
docs = [{"id": f"d{i:06d}", "text": " ".join(rnd.choice(vocab) for _ in range(120))}
        for i in range(ndocs)]
every = int(100 / pct) if (pct := float(os.environ.get("COPIES", "10"))) > 0 else 0
for i in range(every, ndocs, every) if every else ():  # copies of earlier documents
    docs[i]["text"] = docs[rnd.randrange(0, i)]["text"]

KEY = open(f"{os.environ['RAGCORE_CLUSTER_DIR']}/admin.key").read().strip()

def call(path, body):
    req = urllib.request.Request(front + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "Authorization": f"Bearer {KEY}"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        print(f"{path}: {e.code} {e.read()[:500]!r}", flush=True)
        raise

def run(name, dedup):
    call("/v1/collections", {"name": name, "shards": 2, "embedder": emb, "dim": dim,
                             "index_spec": "HNSW32", "settings": {"dedup": dedup}})
    batches = [docs[i:i + 64] for i in range(0, ndocs, 64)]
    stored = [0]
    lock = threading.Lock()
    def worker(k):
        for b in batches[k::2]:
            r = call(f"/v1/collections/{name}/documents", {"documents": b})
            with lock:
                stored[0] += r["documents"]
    t0 = time.time()
    ths = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    dt = time.time() - t0
    print(f"{name:8s} dedup {dedup:4s}: {ndocs} documents in {dt:6.2f} s = "
          f"{ndocs / dt:7.1f} docs/s ({stored[0]} stored)", flush=True)
    return ndocs / dt

res = {"off": [], "skip": []}
for r in range(repeat):
    for k, mode in enumerate(("off", "skip", "skip", "off")):
        res[mode].append(run(f"b{r}{k}{mode}", mode))
for mode, v in res.items():
    v = sorted(v)
    print(f"{mode}: median {v[len(v) // 2]:.1f} docs/s over {len(v)} runs (min {v[0]:.1f}, "
          f"max {v[-1]:.1f})", flush=True)
PY
du -sh "$dir"/nats/*/jetstream/*/streams/RAG_*_dup 2>/dev/null | head -3 || true
