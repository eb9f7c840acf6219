#!/usr/bin/env bash
# test_cluster_dedup.sh - duplicate detection across shards (cluster/dedup.c): a local cluster
# (tools/cluster_dev.sh, 2 shards x 2 replicas, 2 routers, loopback ports chosen per run,
# message-id window 3 s). A corpus with planted exact and near duplicates under ids on the
# other shard than their canonical, sent in requests alternating between the two routers,
# gives the same stored set and the same duplicate counts as a single-node store with the
# same policy (`ragcore ingest --near-dup skip`); a canonical re-sent under its own id is
# not a duplicate; the same text sent at once through both routers under two ids is stored
# once; deleting a canonical releases its keys (a later copy is stored); a router killed
# between its claim and its append (test hook) leaves a claim that a later copy finds
# without a document and, once older than the window, releases; flag mode stores the copy
# with duplicate_of. Replicas converge to equal digests. Skipped (77) without nats-server or
# haproxy.
set -euo pipefail
src=${RAGCORE_SOURCE_DIR:?}
. "$src/tests/cluster_lib.sh"
export RAGCORE_CLUSTER_DEDUP_WINDOW_S=3
cl_setup dedup

cl_python <<'PY'
import json, os, random, subprocess, sys, threading, time
from cluster_lib import (Cluster, edit_words, fnv_shard, other_shard_id,
                         random_text)

tmp, bin_, dev = sys.argv[1:4]
c = Cluster(tmp, bin_, dev)
http = int(os.environ["RAGCORE_CLUSTER_HTTP"])
routers = [f"http://127.0.0.1:{http + 80}", f"http://127.0.0.1:{http + 81}"]
base = {"shards": 2, "embedder": "hash", "dim": 32, "index_spec": "Flat",
        "chunk_tokens": 24, "chunk_overlap": 4}
rnd = random.Random(11)


def text(n=60):
    return random_text(rnd, n)


def edit(t, k):
    return edit_words(rnd, t, k)


def post(router, coll, docs):
    old = c.front
    c.front = routers[router]
    try:
        return c.call("POST", f"/v1/collections/{coll}/documents", {"documents": docs},
                      timeout=30)
    finally:
        c.front = old


for name, mode in (("d", "skip"), ("f", "flag")):
    st, r = c.call("POST", "/v1/collections",
                   {"name": name, **base, "settings": {"dedup": mode, "near_dup_threshold": 0.8}})
    c.check(st == 201 and r.get("settings", {}).get("dedup") == mode, f"create {name}: {st} {r}")

# ---- the corpus: canonicals, then planted copies on the other shard -------------------------
canon = [{"id": f"can-{i:02d}", "text": text()} for i in range(24)]
copies, far = [], []
for i, d in enumerate(canon[:16]):
    other = 1 - fnv_shard(d["id"])
    if i < 8:  # exact: case and spacing differ, the normalised text is the same
        t = "  " + d["text"].upper().replace(" ", "   ") + " "
    else:      # near: 1 word of 60 edited (Jaccard about 0.9)
        t = edit(d["text"], 1)
    copies.append({"id": other_shard_id(f"dup{i:02d}", 1 - other), "text": t})
for i, d in enumerate(canon[16:20]):  # 25 words of 60 edited: not duplicates
    far.append({"id": other_shard_id(f"far{i:02d}", fnv_shard(d["id"])), "text": edit(d["text"], 25)})
c.check(all(fnv_shard(x["id"]) != fnv_shard(y["id"]) for x, y in zip(copies, canon)),
        "every planted copy is on the other shard than its canonical")
batches = [canon, copies[:6] + far[:2] + [canon[20]], copies[6:] + far[2:]]

# the single-node reference: the same batches, the same policy, one store
ref_db = f"{tmp}/ref"
ref_stored, ref_counts = set(), []
for k, b in enumerate(batches):
    path = f"{tmp}/batch{k}.jsonl"
    with open(path, "w") as f:
        for d in b:
            f.write(json.dumps({"_id": d["id"], "text": d["text"]}) + "\n")
    out = subprocess.run([f"{bin_}/ragcore", "ingest", "--db", ref_db, "--collection", "d",
                          "--embedder", "hash-32", "--near-dup", "skip",
                          "--near-dup-threshold", "0.8", "--json", "--verbose", "--quiet",
                          path], capture_output=True, text=True)
    js = json.loads(out.stdout[out.stdout.index("{"):])
    skipped = {e["id"] for e in js.get("events", []) if e.get("action") == "duplicate"}
    ref_stored |= {d["id"] for d in b} - skipped
    dup = js["duplicates"]
    ref_counts.append((js["documents"], dup["exact"], dup["near"], dup["skipped"]))
print(f"single node: {len(ref_stored)} stored; per batch (documents, exact, near, skipped) "
      f"{ref_counts}", flush=True)
c.check(ref_counts[1][3] + ref_counts[2][3] == 16, f"the reference skips the 16 copies: {ref_counts}")

# the cluster: the same batches, alternating between the routers
got = []
for k, b in enumerate(batches):
    st, r = post(k % 2, "d", b)
    s = r.get("summary", {})
    got.append((r.get("documents"), s.get("dup_exact"), s.get("dup_near"), s.get("dup_skipped")))
    c.check(st == 200 and r.get("not_stored") == s.get("dup_skipped") and
            r.get("duplicates") == (s.get("dup_exact") or 0) + (s.get("dup_near") or 0),
            f"batch {k}: {st} {r}")
print(f"cluster: per batch (documents, exact, near, skipped) {got}", flush=True)
c.check(got == ref_counts, f"the cluster decides as one store: {got} vs {ref_counts}")
c.converged("planted duplicates", coll="d", ids=ref_stored)
# the same ids: each copy's text finds its canonical and never a skipped copy; the far
# edits are stored under their own ids
skipped = {d["id"] for b in batches for d in b} - ref_stored
for doc, orig in list(zip(copies, canon)) + list(zip(far, canon[16:20])):
    st, r = c.call("POST", "/v1/collections/d/search",
                   {"query": " ".join(doc["text"].split()[:12]), "mode": "lexical", "k": 20})
    found = {h.get("doc_id") for h in r.get("hits", [])}
    want = orig["id"] if doc["id"] in skipped else doc["id"]
    c.check(st == 200 and want in found and not found & skipped,
            f"{doc['id']}: {want} found, no skipped copy: {st} {sorted(found)}")

# ---- two routers race the same text under two ids (on different shards) -------------------
stored = set(ref_stored)
for k in range(4):
    t = text()
    a = other_shard_id(f"raceA{k}", 1)
    b = other_shard_id(f"raceB{k}", 0)
    res = [None, None]
    def go(j, doc):
        res[j] = post(j, "d", [doc])
    ths = [threading.Thread(target=go, args=(0, {"id": a, "text": t})),
           threading.Thread(target=go, args=(1, {"id": b, "text": t}))]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    docs = [r[1].get("documents") for r in res]
    c.check(all(r[0] == 200 for r in res) and sorted(docs) == [0, 1] and
            sum(r[1].get("summary", {}).get("dup_skipped", 0) for r in res) == 1,
            f"race {k}: exactly one of two stored: {res}")
    stored.add(a if res[0][1].get("documents") == 1 else b)
c.converged("races", coll="d", ids=stored)

# ---- deleting the canonical releases its keys ------------------------------------------------
victim = canon[0]
st, r = c.call("DELETE", f"/v1/collections/d/documents/{victim['id']}")
c.check(st == 200, f"delete {victim['id']}: {st} {r}")
stored.discard(victim["id"])
late = {"id": other_shard_id("late-copy", fnv_shard(victim["id"])), "text": victim["text"]}
st, r = post(1, "d", [late])
c.check(st == 200 and r.get("documents") == 1 and r.get("summary", {}).get("dup_skipped") == 0,
        f"a copy of a deleted canonical is stored: {st} {r}")
stored.add(late["id"])
st, r = post(0, "d", [{"id": "late-copy-2", "text": victim["text"]}])
c.check(st == 200 and r.get("documents") == 0 and r.get("summary", {}).get("dup_exact") == 1,
        f"... and is the canonical now: {st} {r}")

# ---- a router killed between claim and append ------------------------------------------------
def restart_router1(env=None):
    try:
        os.kill(c.pid("router1"), 9)
    except ProcessLookupError:  # already gone (the test hook)
        pass
    c.check(c.wait_exit("router1", 10), "router1 stopped")
    c.respawn("router1", env=env)
    end = time.time() + 30
    while time.time() < end:
        c.front, old = routers[0], c.front
        st, _ = c.call("GET", "/healthz", timeout=2)
        c.front = old
        if st == 200:
            return
        time.sleep(0.2)
    c.check(False, "router1 answers again")


orphan = {"id": "orphan-0", "text": text()}
restart_router1({"RAGCORE_CLUSTER_TEST_KILL": "after_claim"})
st, r = post(0, "d", [orphan])
c.check(st != 200 and c.wait_exit("router1", 10), f"router1 died after its claim: {st} {r}")
restart_router1()
t0 = time.time()
st, r = post(1, "d", [{"id": other_shard_id("orphan-copy", fnv_shard("orphan-0")),
                       "text": orphan["text"]}])
c.check(st == 200 and r.get("documents") == 1,
        f"a copy of a claim that was never written is stored: {st} {r}")
print(f"orphaned claim released after {time.time() - t0:.1f} s", flush=True)
stored.add(other_shard_id("orphan-copy", fnv_shard("orphan-0")))
c.converged("after the orphaned claim", coll="d", ids=stored)

# ---- flag mode: the copy is stored and names its canonical -----------------------------------
a, b = canon[1], copies[1]
st, r = post(0, "f", [a])
c.check(st == 200 and r.get("documents") == 1, f"flag: canonical: {st} {r}")
st, r = post(1, "f", [b])
c.check(st == 200 and r.get("documents") == 1 and r.get("summary", {}).get("dup_flagged") == 1,
        f"flag: the copy is stored and flagged: {st} {r}")
c.converged("flag", coll="f", ids={a["id"], b["id"]})
st, r = c.call("POST", "/v1/collections/f/search",
               {"query": " ".join(a["text"].split()[:8]), "mode": "lexical", "k": 10})
meta = [h.get("metadata") or {} for h in r.get("hits", []) if h.get("doc_id") == b["id"]]
c.check(meta and all(m.get("duplicate_of") == a["id"] and m.get("duplicate_kind") == "exact"
                     for m in meta), f"flag: duplicate_of in the copy's metadata: {r}")
print(f"{c.failures} failures", flush=True)
sys.exit(1 if c.failures else 0)
PY
