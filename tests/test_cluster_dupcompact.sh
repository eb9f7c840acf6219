#!/usr/bin/env bash
# test_cluster_dupcompact.sh - compaction of a collection's duplicate log (cluster/dedup.c,
# cluster/dupsnap.c): a local cluster (tools/cluster_dev.sh, 2 shards, 2 routers) whose
# routers compact every 8 messages. Documents with planted exact and near copies, sent in
# many requests alternating between the routers, compact the log at least twice (each
# compaction in a thread beside the writes): the log's first sequence moves past 1 (NATS
# monitoring, /jsz). A router restarted after that
# loads the snapshot and decides as before: a copy of a document claimed before the purge
# is a duplicate (exact and near), a new document is stored, a re-sent document is not its
# own duplicate, a deleted document's copy is stored. A router loads the snapshot the
# record of the current snapshot names (metadata key dupsnap.<collection>), not a corrupt
# newer message of the stream (a part published by hand with a wrong checksum, and bytes of
# no snapshot); with the record corrupt too, it walks the stream, skips those with a log
# line and falls back to the previous snapshot, deciding the same. Two compactions far
# apart at once (test hook RAGCORE_CLUSTER_TEST_COMPACT_STALL: a router's older snapshot
# written after another router's two newer ones): every router restarted afterwards still
# rebuilds its index and decides the same. A negative dup_compact_every is refused with a
# message naming it. Skipped (77) without nats-server or haproxy.
set -euo pipefail
src=${RAGCORE_SOURCE_DIR:?}
. "$src/tests/cluster_lib.sh"
export RAGCORE_CLUSTER_DEDUP_WINDOW_S=3 RAGCORE_CLUSTER_DUP_COMPACT_EVERY=8
cl_setup dupcompact

# a negative interval is refused, naming the field and the file
sed 's/"dup_compact_every": 8/"dup_compact_every": -1/' "$tmp/cluster.json" >"$tmp/bad.json"
if out=$("$RAGCORE_BIN/ragcore-server" cluster status --config "$tmp/bad.json" 2>&1); then
    echo "FAIL: a negative dup_compact_every was accepted: $out"; exit 1
fi
echo "$out" | grep -q 'dup_compact_every' || { echo "FAIL: the error does not name dup_compact_every: $out"; exit 1; }

cl_python <<'PY'
import json, os, random, socket, struct, sys, time, urllib.request
from cluster_lib import (Cluster, edit_words, fnv_shard, other_shard_id,
                         random_text)

tmp, bin_, dev = sys.argv[1:4]
c = Cluster(tmp, bin_, dev)
http = int(os.environ["RAGCORE_CLUSTER_HTTP"])
base_port = int(os.environ["RAGCORE_CLUSTER_BASE"])
routers = [f"http://127.0.0.1:{http + 80}", f"http://127.0.0.1:{http + 81}"]
rnd = random.Random(5)


def text(n=60):
    return random_text(rnd, n)


def edit(t, k):
    return edit_words(rnd, t, k)


def post(router, docs):
    st, r = c.call("POST", "/v1/collections/d/documents", {"documents": docs}, timeout=30,
                   front=routers[router])
    s = r.get("summary", {})
    return st, r, (r.get("documents"), s.get("dup_exact", 0), s.get("dup_near", 0))


def dup_stream():
    """The duplicate log's state as NATS monitoring reports it."""
    url = f"http://127.0.0.1:{base_port + 200}/jsz?accounts=true&streams=true"
    js = json.load(urllib.request.urlopen(url, timeout=5))
    for acc in js.get("account_details", []):
        for s in acc.get("stream_detail", []):
            if s.get("name") == "RAG_d_dup":
                return s.get("state", {})
    return {}


def nats_pub(subject, payload):
    """Publishes payload on subject with the NATS protocol (the stream stores it)."""
    s = socket.create_connection(("127.0.0.1", base_port), timeout=5)
    f = s.makefile("rb")
    f.readline()  # INFO
    s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n' +
              f"PUB {subject} {len(payload)}\r\n".encode() + payload + b"\r\nPING\r\n")
    line = f.readline()
    s.close()
    c.check(line.startswith(b"PONG"), f"publish on {subject}: {line}")


def restart(i, env=None):
    name = f"router{i + 1}"
    os.kill(c.pid(name), 9)
    c.check(c.wait_exit(name, 10), f"{name} stopped")
    open(f"{tmp}/log/{name}.log", "a").write("--- restarted by the test\n")
    c.respawn(name, env)
    end = time.time() + 30
    while time.time() < end:
        if c.call("GET", "/healthz", timeout=2, front=routers[i])[0] == 200:
            return
        time.sleep(0.2)
    c.check(False, f"{name} answers again")


def after_restart(name):
    return c.log_text(name).split("--- restarted by the test")[-1]


st, r = c.call("POST", "/v1/collections",
               {"name": "d", "shards": 2, "embedder": "hash", "dim": 32, "index_spec": "Flat",
                "chunk_tokens": 24, "chunk_overlap": 4,
                "settings": {"dedup": "skip", "near_dup_threshold": 0.8}})
c.check(st == 201, f"create: {st} {r}")

# ---- canonicals and copies in many small requests: the log is compacted ----------------
canon = [{"id": f"can-{i:02d}", "text": text()} for i in range(40)]
for k in range(0, len(canon), 2):
    st, r, got = post((k // 2) % 2, canon[k:k + 2])
    c.check(st == 200 and got == (2, 0, 0), f"canonicals {k}: {st} {r}")
# copies of early canonicals, on the other shard, through both routers
for i in range(4):
    d = canon[i]
    cp = {"id": other_shard_id(f"copy{i}", fnv_shard(d["id"])),
          "text": d["text"].upper() if i % 2 == 0 else edit(d["text"], 1)}
    st, r, got = post(i % 2, [cp])
    c.check(st == 200 and got == (0, 1 if i % 2 == 0 else 0, 0 if i % 2 == 0 else 1),
            f"copy of {d['id']} before the restart: {st} {r}")
# compaction runs beside the writes: its purge may come a moment after the last answer
end = time.time() + 20
while time.time() < end and dup_stream().get("first_seq", 0) <= 1:
    time.sleep(0.2)
logs = c.log_text("router1") + c.log_text("router2")
n_compact = logs.count("compacted: snapshot at message")
state = dup_stream()
print(f"compactions: {n_compact}; duplicate log: {state}", flush=True)
c.check(n_compact >= 2, f"the log was compacted at least twice: {n_compact}")
c.check(state.get("first_seq", 0) > 1, f"the duplicate log's first sequence moved: {state}")
c.check("compaction at message" not in logs,
        "no compaction failed: " + "\n".join(l for l in logs.splitlines() if "compaction" in l))


# ---- a router started after the purge decides the same -----------------------------------
def same_decisions(i, tag, victims):
    """Copies of canonicals claimed before the purge through router i (restarted)."""
    a, b, gone, again = victims
    cp = {"id": other_shard_id(f"{tag}-exact", fnv_shard(a["id"])), "text": "  " + a["text"]}
    st, r, got = post(i, [cp])
    c.check(st == 200 and got == (0, 1, 0), f"{tag}: exact copy of {a['id']}: {st} {r}")
    cp = {"id": other_shard_id(f"{tag}-near", fnv_shard(b["id"])), "text": edit(b["text"], 1)}
    st, r, got = post(i, [cp])
    c.check(st == 200 and got == (0, 0, 1), f"{tag}: near copy of {b['id']}: {st} {r}")
    st, r, got = post(i, [{"id": f"{tag}-new", "text": text()}])
    c.check(st == 200 and got == (1, 0, 0), f"{tag}: a new document is stored: {st} {r}")
    st, r, got = post(i, [again])
    c.check(st == 200 and got == (1, 0, 0), f"{tag}: {again['id']} re-sent: {st} {r}")
    st, r = c.call("DELETE", f"/v1/collections/d/documents/{gone['id']}", front=routers[i])
    c.check(st == 200, f"{tag}: delete {gone['id']}: {st} {r}")
    cp = {"id": other_shard_id(f"{tag}-late", fnv_shard(gone["id"])), "text": gone["text"]}
    st, r, got = post(i, [cp])
    c.check(st == 200 and got == (1, 0, 0), f"{tag}: a deleted document's copy: {st} {r}")


restart(1)
same_decisions(1, "after", canon[4:8])
c.check("snapshot at message" in after_restart("router2"),
        "the restarted router loaded a snapshot:\n" + after_restart("router2")[-2000:])

# ---- a corrupt newest snapshot: the recorded one used; with the record corrupt, skipped ---
body = b"RAGDUPX1" + struct.pack("<Q", 0)
last = dup_stream().get("last_seq", 0)
bad = struct.pack("<4sIQIIQQQ", b"RDSP", 1, last + 100, 0, 1, 0, len(body), 12345) + body
nats_pub("rag.dupsnap.d", bad)
nats_pub("rag.dupsnap.d", b"no snapshot at all")
time.sleep(0.5)
# the record of the current snapshot names a good one: the stream's newest is not read
restart(1)
same_decisions(1, "recorded", canon[12:16])
out = after_restart("router2")
c.check("snapshot at message" in out and "skipped" not in out,
        "the recorded snapshot was loaded, the corrupt newest not read:\n" + out[-2000:])
# the record itself corrupt: the stream is walked from its newest message back
# (published once the compaction the decisions above may have started is over: it would
# replace the record)
time.sleep(2)
nats_pub("rag.dupsnap.d", bad)
nats_pub("rag.dupsnap.d", b"no snapshot at all")
nats_pub("$KV.ragcore_meta.dupsnap.d", b'{"S": "no number"}')
time.sleep(0.5)
restart(0)
same_decisions(0, "corrupt", canon[8:12])
out = after_restart("router1")
c.check("is malformed" in out and "skipped" in out and "snapshot at message" in out,
        "the malformed record reported, the corrupt snapshot skipped and an older one "
        "loaded:\n" + out[-2000:])
c.check(c.call("GET", "/healthz", front=routers[0])[0] == 200, "router1 still answers")

# ---- two compactions far apart at once: the older written last ---------------------------
# router1's next compaction waits 12 s before writing (test hook) while router2 compacts at
# least twice at later positions; router1's older snapshot then reaches the stream after
# router2's. Every router restarted afterwards (a rolling deploy) must still rebuild its
# index: the log is never purged past a complete snapshot that can be found.
restart(0, {"RAGCORE_CLUSTER_TEST_COMPACT_STALL": "12"})
mark1b = len(c.log_text("router1"))
race = [{"id": f"race-{i:02d}", "text": text()} for i in range(60)]
k = 0
while k < 20 and "waits 12 s" not in c.log_text("router1")[mark1b:]:
    st, r, got = post(0, [race[k]])
    c.check(st == 200 and got == (1, 0, 0), f"race canonical {k} via router1: {st} {r}")
    k += 1
c.check("waits 12 s" in c.log_text("router1")[mark1b:], "router1 began a compaction")
t_wait = time.time()
mark2 = len(c.log_text("router2"))
while k < 50:
    st, r, got = post(1, [race[k]])
    c.check(st == 200 and got == (1, 0, 0), f"race canonical {k} via router2: {st} {r}")
    k += 1
n2 = c.log_text("router2")[mark2:].count("compacted: snapshot at message")
print(f"router2 compacted {n2} times while router1 waited; log: {dup_stream()}", flush=True)
c.check(n2 >= 2, f"router2 compacted at least twice meanwhile: {n2}")
# router1's compaction goes on once its wait is over (then written, read back, purged)
time.sleep(max(0.0, t_wait + 12 + 4 - time.time()))
print("router1 after the wait:\n" + "\n".join(
    l for l in c.log_text("router1")[mark1b:].splitlines() if "duplicate" in l), flush=True)
c.check("written but superseded" in c.log_text("router1")[mark1b:],
        "router1's older snapshot was not recorded and purged nothing")
restart(0)
restart(1)
a, b = canon[16], race[3]
for i, d in ((0, a), (1, b)):
    cp = {"id": other_shard_id(f"rolled{i}", fnv_shard(d["id"])), "text": "  " + d["text"]}
    st, r, got = post(i, [cp])
    c.check(st == 200 and got == (0, 1, 0),
            f"after restarting every router: exact copy of {d['id']} via router{i + 1}: "
            f"{st} {r}")
st, r, got = post(0, [{"id": "rolled-new", "text": text()}])
c.check(st == 200 and got == (1, 0, 0), f"after restarting every router: a new document: {st} {r}")
print(f"{c.failures} failures", flush=True)
sys.exit(1 if c.failures else 0)
PY
