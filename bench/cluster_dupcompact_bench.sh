#!/usr/bin/env bash
# cluster_dupcompact_bench.sh - what compacting a duplicate log saves a router that starts:
# a local cluster (tools/cluster_dev.sh: 3 NATS, 2 shards, 2 routers) and two collections
# with duplicate detection, DOCS documents each in requests of 250: "full" written with
# compaction off (its log holds every claim), "snap" with dup_compact_every EVERY (a
# snapshot and the log's tail). Then, compaction off again, router2 is restarted before
# each first write (one new document through router2), alternating the two collections
# REPEAT times: the time of that first write is the time to rebuild the collection's
# duplicate state (replay of the whole log, or snapshot load plus the tail). Prints each
# write's time, the snapshot load lines of the router's log, the snapshot's bytes per
# document and the duplicate logs' sizes. Usage: bench/cluster_dupcompact_bench.sh
# [REPEAT, default 3] (env DOCS, default 20000; EVERY, default 40)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
repeat=${1:-3}
dir=${TMPDIR:-/tmp}/ragcore-cluster-dupcompact-bench
export RAGCORE_CLUSTER_BASE=${RAGCORE_CLUSTER_BASE:-31622} RAGCORE_CLUSTER_HTTP=${RAGCORE_CLUSTER_HTTP:-34800}
export RAGCORE_BIN=${RAGCORE_BIN:-$here/build/bin} RAGCORE_CLUSTER_DUP_COMPACT_EVERY=0
dev=$here/tools/cluster_dev.sh
"$dev" stop "$dir" 2>/dev/null || true
rm -rf "$dir"
trap '"$dev" stop "$dir"' EXIT
"$dev" start "$dir"

RAGCORE_CLUSTER_DIR=$dir python3 - "$repeat" "$dev" <<'PY'
import json, os, random, re, subprocess, sys, time, urllib.error, urllib.request

repeat, dev = int(sys.argv[1]), sys.argv[2]
d = os.environ["RAGCORE_CLUSTER_DIR"]
http = int(os.environ["RAGCORE_CLUSTER_HTTP"])
r1, r2 = f"http://127.0.0.1:{http + 80}", f"http://127.0.0.1:{http + 81}"
ndocs, every = int(os.environ.get("DOCS", "20000")), int(os.environ.get("EVERY", "40"))
rnd = random.Random(3)
vocab = [f"w{i:04d}" for i in range(5000)]
KEY = open(f"{d}/admin.key").read().strip()


def call(front, path, body=None, method="POST"):
    req = urllib.request.Request(front + path, data=json.dumps(body).encode() if body else None,
                                 method=method, headers={"Content-Type": "application/json",
                                                         "Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def set_every(n):
    cfg = open(f"{d}/cluster.json").read()
    open(f"{d}/cluster.json", "w").write(re.sub(r'"dup_compact_every": \d+',
                                                f'"dup_compact_every": {n}', cfg))


def restart(name, front):
    os.kill(int(open(f"{d}/pid/{name}").read()), 9)
    time.sleep(0.5)
    subprocess.run([dev, "respawn", name, d], check=True)
    for _ in range(300):
        try:
            urllib.request.urlopen(front + "/healthz", timeout=2)
            return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"{name} did not come back")


def fill(name):
    call(r1, "/v1/collections", {"name": name, "shards": 2, "embedder": "hash", "dim": 32,
                                 "index_spec": "Flat", "settings": {"dedup": "skip"}})
    t0 = time.time()
    for i in range(0, ndocs, 250):
        docs = [{"id": f"{name}{j:06d}", "text": " ".join(rnd.choice(vocab) for _ in range(40))}
                for j in range(i, min(i + 250, ndocs))]
        call(r1 if (i // 250) % 2 == 0 else r2, f"/v1/collections/{name}/documents",
             {"documents": docs})
    print(f"{name}: {ndocs} documents written in {time.time() - t0:.1f} s", flush=True)


fill("full")
set_every(every)
restart("router1", r1)
restart("router2", r2)
fill("snap")
set_every(0)
times = {"full": [], "snap": []}
for k in range(repeat):
    for name in ("full", "snap") if k % 2 == 0 else ("snap", "full"):
        restart("router2", r2)
        t0 = time.time()
        r = call(r2, f"/v1/collections/{name}/documents",
                 {"documents": [{"id": f"probe{k}", "text": f"probe {k} {name} " * 10}]})
        dt = time.time() - t0
        times[name].append(dt)
        print(f"first write to {name} after a restart: {dt * 1000:8.1f} ms ({r['documents']} "
              f"stored)", flush=True)
for name, v in times.items():
    v = sorted(v)
    print(f"{name}: median {v[len(v) // 2] * 1000:.1f} ms over {len(v)} (min "
          f"{v[0] * 1000:.1f}, max {v[-1] * 1000:.1f})", flush=True)
logs = open(f"{d}/log/router1.log").read() + open(f"{d}/log/router2.log").read()
for l in logs.splitlines():
    if "snapshot at message" in l and "loaded" in l:
        print("router2:", l, flush=True)
comp = [l for l in logs.splitlines() if "compacted: snapshot" in l]
if comp:
    m = re.search(r"at message (\d+) \((\d+) bytes\) in ([\d.]+) ms", comp[-1])
    docs = re.search(rf"compacting at message {m.group(1)} \((\d+) documents", logs) if m else None
    print(f"compactions: {len(comp)}; last: {comp[-1]}", flush=True)
    if docs:
        print(f"snapshot: {int(m.group(2)) / int(docs.group(1)):.0f} bytes per document, "
              f"written and read back in {m.group(3)} ms", flush=True)
js = json.load(urllib.request.urlopen(
    f"http://127.0.0.1:{int(os.environ['RAGCORE_CLUSTER_BASE']) + 200}/jsz?accounts=true&streams=true"))
for acc in js.get("account_details", []):
    for s in acc.get("stream_detail", []):
        if s["name"].startswith(("RAG_full_dup", "RAG_snap_dup")):
            st = s["state"]
            print(f"{s['name']}: {st['messages']} messages, {st['bytes']} bytes "
                  f"(first {st['first_seq']}, last {st['last_seq']})", flush=True)
PY
