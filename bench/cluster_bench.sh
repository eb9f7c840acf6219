#!/usr/bin/env bash
# cluster_bench.sh - cluster figures on one machine (tools/cluster_dev.sh layout, loopback):
#   read QPS through one router with 4, 2 and 1 replicas of a 1-shard collection (wrk,
#     CPU seconds of the replicas per query),
#   write throughput (documents/s, 4 concurrent clients, 20 documents per request) into a
#     collection whose logs have 3 stream replicas and one with 1,
#   apply lag (batches) sampled every 100 ms during the sustained writes.
# Same machine for everything: replicas, routers, NATS and the load generator share its
# CPUs, so read scaling stops at the core count. Prints one line per figure.
# Usage: bench/cluster_bench.sh [SECONDS per read run, default 10]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-10}
dir=${TMPDIR:-/tmp}/ragcore-cluster-bench
export RAGCORE_CLUSTER_BASE=34222 RAGCORE_CLUSTER_HTTP=38000 RAGCORE_CLUSTER_ROUTERS=1
export RAGCORE_CLUSTER_NO_HAPROXY=1 RAGCORE_BIN=${RAGCORE_BIN:-$here/build/bin}
dev=$here/tools/cluster_dev.sh
"$dev" stop "$dir" 2>/dev/null || true
rm -rf "$dir"
trap '"$dev" stop "$dir"' EXIT
"$dev" start "$dir"
router=http://127.0.0.1:38080

python3 - "$dir" "$router" "$dev" "$secs" "$here" <<'PY'
import json, os, random, signal, subprocess, sys, threading, time, urllib.request

dir_, router, dev, secs, here = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
bin_ = os.environ["RAGCORE_BIN"]

KEY = open(f"{dir_}/admin.key").read().strip()  # the routers' bootstrap admin key

def call(method, url, body=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body else None,
                                 method=method, headers={"Content-Type": "application/json",
                                                         "Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())

rnd = random.Random(3)
vocab = [f"w{i}" for i in range(5000)]
def doc(i):
    return {"id": f"d{i}", "text": " ".join(rnd.choice(vocab) for _ in range(80))}

def cpu_of(pids):
    t = 0
    for p in pids:
        with open(f"/proc/{p}/stat") as f:
            v = f.read().rsplit(")", 1)[1].split()
        t += (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")
    return t

def pid(name):
    return int(open(f"{dir_}/pid/{name}").read())

# ---- reads: 1-shard collection, 20,000 documents ----
call("POST", f"{router}/v1/collections", {"name": "r", "shards": 1, "embedder": "hash",
     "dim": 384, "index_spec": "HNSW32"})
NREAD = int(os.environ.get("RAGCORE_BENCH_DOCS", "5000"))
for k in range(0, NREAD, 500):
    call("POST", f"{router}/v1/collections/r/documents",
         {"documents": [doc(i) for i in range(k, k + 500)]})
def caught_up(names):
    for _ in range(600):
        st = json.loads(subprocess.run([f"{bin_}/ragcore-server", "cluster", "status",
                                        "--config", f"{dir_}/cluster.json", "--json"],
                                       capture_output=True, text=True).stdout)
        reps = [r for sh in st["collections"]["r"]["shards"] for r in sh["replicas"]]
        if len(reps) >= len(names) and all(r["lag"] == 0 and r["seq"] > 0 for r in reps):
            return
        time.sleep(0.5)
# extra replicas of shard 0 for the 4-replica run
for name in ("r0c", "r0d"):
    subprocess.Popen([f"{bin_}/ragcore-server", "cluster", "replica", "--config",
                      f"{dir_}/cluster.json", "--data", f"{dir_}/data/{name}", "--shards", "0",
                      "--name", name], stdout=open(f"{dir_}/log/{name}.log", "w"),
                     stderr=subprocess.STDOUT)
    time.sleep(0.2)
procs = subprocess.run(["pgrep", "-f", "cluster replica .*--name r0[cd]"], capture_output=True,
                       text=True).stdout.split()
for p in procs:
    open(f"{dir_}/pid/{'r0c' if 'r0c' in open(f'/proc/{p}/cmdline').read() else 'r0d'}", "w").write(p)
caught_up(["r0a", "r0b", "r0c", "r0d"])
with open(f"{dir_}/bodies", "w") as f:
    for i in range(200):
        f.write(json.dumps({"query": " ".join(rnd.choice(vocab) for _ in range(4)), "k": 10,
                            "mode": "dense"}) + "\n")
def wrk():
    out = subprocess.run(["wrk", "-t2", "-c16", f"-d{secs}s", "-s", f"{here}/bench/wrk_search.lua",
                          f"{router}/v1/collections/r/search"], capture_output=True, text=True,
                         env={**os.environ, "BODIES": f"{dir_}/bodies", "KEY": ""}).stdout
    return json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
reps = ["r0a", "r0b", "r0c", "r0d"]
for n, stopped in ((4, []), (2, ["r0c", "r0d"]), (1, ["r0b", "r0c", "r0d"])):
    for s in stopped:  # a stopped replica drains its queue subscription and exits
        if os.path.exists(f"/proc/{pid(s)}"):
            os.kill(pid(s), signal.SIGTERM)
    time.sleep(2 if stopped else 0)
    live = [r for r in reps if r not in stopped and os.path.exists(f"/proc/{pid(r)}")]
    c0 = cpu_of([pid(r) for r in live])
    w = wrk()
    c1 = cpu_of([pid(r) for r in live])
    print(f"read, {n} replica(s) of 1 shard, {NREAD} docs (dim 128), dense k=10, 16 connections: "
          f"{w.get('qps', 0):.0f} req/s, p50 {w.get('p50_ms', 0):.1f} ms, p99 "
          f"{w.get('p99_ms', 0):.1f} ms, errors {w.get('errors', 0) + w.get('non2xx', 0)}, replica CPU "
          f"{(c1 - c0) * 1000 / max(1, w.get('requests', 1)):.2f} ms/query", flush=True)

# ---- writes: 3 vs 1 stream replicas, with apply lag ----
cfg = json.load(open(f"{dir_}/cluster.json"))
cfg1 = dict(cfg, stream_replicas=1)
json.dump(cfg1, open(f"{dir_}/cluster1.json", "w"))
r1 = subprocess.Popen([f"{bin_}/ragcore-server", "cluster", "router", "--config",
                       f"{dir_}/cluster1.json", "--listen", "127.0.0.1:38090"],
                      stderr=open(f"{dir_}/log/router-r1.log", "w"))
time.sleep(1)
try:
    for name, url, reps_ in (("w3", router, 3), ("w1", "http://127.0.0.1:38090", 1)):
        call("POST", f"{url}/v1/collections", {"name": name, "shards": 2, "embedder": "hash",
             "dim": 128, "index_spec": "HNSW32"})
        time.sleep(1.5)  # replicas discover the collection
        N, per, clients = 1200, 20, 4
        lag_max = [0]
        stop = [False]
        def sample():
            while not stop[0]:
                for r in ("r0a", "r1a"):
                    port = open(f"{dir_}/run/{r}.port").read().strip()
                    m = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
                    for line in m.splitlines():
                        if line.startswith("ragcore_cluster_apply_lag") and f'"{name}"' in line:
                            lag_max[0] = max(lag_max[0], int(line.split()[-1]))
                time.sleep(0.1)
        def client(c):
            for k in range(c * per, N, per * clients):
                call("POST", f"{url}/v1/collections/{name}/documents",
                     {"documents": [doc(100000 + i) for i in range(k, k + per)]})
        ts = threading.Thread(target=sample)
        ts.start()
        t0 = time.time()
        th = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        for t in th: t.start()
        for t in th: t.join()
        dt = time.time() - t0
        stop[0] = True
        ts.join()
        print(f"write, {reps_} stream replica(s), 2 shards, {clients} clients x {per} docs/request: "
              f"{N / dt:.0f} docs/s ({N / per / dt:.1f} requests/s); max apply lag "
              f"{lag_max[0]} batches", flush=True)
finally:
    r1.terminate()
    r1.wait()
PY
