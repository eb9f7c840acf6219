#!/usr/bin/env bash
# test_cluster.sh - a local cluster (3 NATS servers with JetStream, 2 shards x 2 replicas,
# 2 routers, HAProxy; tools/cluster_dev.sh, loopback only) against a single store:
#   functional: dense results of the cluster equal the single store's exactly (documents,
#     spans, scores); hybrid top 10 overlap at least HYBRID_MIN_OVERLAP on average (per-shard
#     IDF, by document and by chunk);
#     with exact IDF lexical and hybrid equal the single store's, by document (the default)
#     and by chunk; MMR, recency and the per-document cap applied by the router equal the
#     single store's; a hedged query answers in about hedge_ms while a replica is stopped
#     (SIGSTOP);
#     read-your-writes with the write token; deletes through the log;
#   faults, each while writing and querying: kill -9 of a NATS server, of a replica, of the
#     applier between fetch and commit (test hook), of a router; SIGSTOP of a replica
#     (without hedging every query answers: a timed-out shard's retry reaches every replica).
#     After each: every replica caught up, every acknowledged document present exactly once
#     on both replicas of its shard (counts), digests equal at equal sequences, queries
#     answered (errors and latency during the fault are printed).
# Every process started is stopped (trap). Skipped (77) without nats-server or haproxy.
set -euo pipefail
src=${RAGCORE_SOURCE_DIR:?}
. "$src/tests/cluster_lib.sh"
cl_setup main

cl_python <<'PY'
import json, os, signal, subprocess, sys, time, urllib.request
from cluster_lib import QUERIES as queries, WORDS as words, Cluster, Load

c = Cluster(*sys.argv[1:4])
tmp, bin_, check, acked = c.tmp, c.bin, c.check, c.acked
HYBRID_MIN_OVERLAP = 0.6

rnd = c.rnd

def make_doc(i):
    """cluster_lib's document, with this test's ids and a source time two hours apart."""
    return {**c.make_doc(i), "id": f"doc-{i:04d}", "source_mtime": 1700000000 + i * 7200}

ingest = c.ingest
pid, respawn, converged = c.pid, c.respawn, c.converged

st, r = c.call("POST", "/v1/collections", {"name": "t", "shards": 2, "embedder": "hash",
             "dim": 32, "index_spec": "Flat", "chunk_tokens": 24, "chunk_overlap": 4})
check(st == 201, f"create collection: {st} {r}")
st, r = c.call("POST", "/v1/collections", {"name": "t", "shards": 2})
check(st == 409, f"a second create is refused: {st}")

corpus = [make_doc(i) for i in range(150)]
token = {}
for k in range(0, 150, 50):
    st, r = ingest(corpus[k:k + 50])
    check(st == 200, f"ingest: {st} {r}")
    token = r.get("write_token", token)

def single_store(coll, docs, chunk_tokens, overlap):
    """Collection coll of the single store: same documents, embedder, index and chunking."""
    with open(f"{tmp}/ref-{coll}.jsonl", "w") as f:
        for d in docs:
            f.write(json.dumps({"_id": d["id"], "text": d["text"],
                                "source_mtime": d["source_mtime"]}) + "\n")
    subprocess.run([f"{bin_}/ragcore", "ingest", "--db", f"{tmp}/ref", "--collection", coll,
                    "--embedder", "hash-32", "--index", "Flat", "--chunk-tokens",
                    str(chunk_tokens), "--overlap", str(overlap), "--quiet",
                    f"{tmp}/ref-{coll}.jsonl"], check=True, stdout=subprocess.DEVNULL)

single_store("t", corpus, 24, 4)

def single(query, mode, k=10, extra=None, coll="t"):
    flags = [f"--{name.replace('_', '-')}={v}" for name, v in (extra or {}).items()]
    out = subprocess.run([f"{bin_}/ragcore", "search", "--db", f"{tmp}/ref", "--collection", coll,
                          "--mode", mode, "-k", str(k), "--collapse-threshold", "2", "--json",
                          *flags, query], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["results"]

def cluster(query, mode, k=10, tok=None, timeout=10, extra=None, coll="t"):
    body = {"query": query, "mode": mode, "k": k, "collapse_threshold": 2, **(extra or {})}
    if tok:
        body["write_token"] = tok
    return c.call("POST", f"/v1/collections/{coll}/search", body, timeout=timeout)

def same_hits(label, a, b, tol=1e-6):
    """Equal lists: same chunks (document and span) in the same order, scores within tol."""
    check(len(a) == len(b) and len(a) > 0, f"{label}: {len(a)} vs {len(b)} hits")
    for x, y in zip(a, b):
        check((x["doc_id"], x["start"]) == (y["doc_id"], y["start"]) and
              abs(x["score"] - y["score"]) < tol,
              f"{label}: {x['doc_id']}@{x['start']} {x['score']:.7f} != "
              f"{y['doc_id']}@{y['start']} {y['score']:.7f}")

def router_metric(name):
    total = 0
    for i in (1, 2):
        port = int(open(f"{tmp}/run/router{i}.port").read())
        req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                     headers={"Authorization": f"Bearer {c.key}"})
        with urllib.request.urlopen(req, timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    total += float(line.split()[1])
    return total

converged("initial")  # every replica hosts its shard and serves it

overlaps = {"document": [], "chunk": []}
for q in queries:
    st, r = cluster(q, "dense", tok=token)
    check(st == 200, f"dense search: {st} {r}")
    a = [(h["doc_id"], h["start"], h["end"], h["score"]) for h in r.get("hits", [])]
    b = [(h["doc_id"], h["start"], h["end"], h["score"]) for h in single(q, "dense")]
    check(len(a) == 10 and len(a) == len(b), f"dense '{q}': {len(a)} vs {len(b)} hits")
    for x, y in zip(a, b):
        check(x[:3] == y[:3] and abs(x[3] - y[3]) < 1e-6, f"dense '{q}': {x} != {y}")
    for unit, ov in overlaps.items():
        opts = {"lexical_unit": unit}
        st, r = cluster(q, "hybrid", tok=token, extra=opts)
        check(st == 200, f"hybrid search: {st}")
        ca = {(h["doc_id"], h["start"]) for h in r.get("hits", [])}
        cb = {(h["doc_id"], h["start"]) for h in single(q, "hybrid", extra=opts)}
        ov.append(len(ca & cb) / 10)
print(f"dense: equal on {len(queries)} queries; hybrid top-10 overlap with one store (per-shard "
      f"IDF): " + "; ".join(f"by {unit} {', '.join(f'{o:.1f}' for o in ov)}"
                            for unit, ov in overlaps.items()), flush=True)
# per-shard IDF is an approximation: by document (every document of t has 60 words drawn
# from 30, so most terms are in most documents and their idf is small and sensitive to the
# shard's counts) a query may keep only half of the hits; on average most
for unit, ov in overlaps.items():
    check(sum(ov) / len(ov) >= HYBRID_MIN_OVERLAP and min(ov) >= 0.5,
          f"hybrid overlap by {unit} {ov}: mean under {HYBRID_MIN_OVERLAP} or a query under 0.5")

# exact IDF: the router sums every shard's BM25 statistics first (by chunk and by
# document), so lexical and hybrid results equal one store's, by document (the default) and
# by chunk. On collection x every document is one chunk of its own length, so no two BM25
# scores tie (tied chunks are ordered by chunk id, which a cluster assigns differently from
# one store); on collection y documents of distinct lengths have several chunks each, so
# scoring by document differs from scoring by chunk there (checked).
st, r = c.call("POST", "/v1/collections", {"name": "x", "shards": 2, "embedder": "hash",
             "dim": 32, "index_spec": "Flat", "chunk_tokens": 512, "chunk_overlap": 0})
check(st == 201, f"create collection x: {st} {r}")
xdocs = [{"id": f"x-{i:03d}", "text": " ".join(rnd.choice(words) for _ in range(20 + i)) + ".",
          "source_mtime": 1700000000 + i * 3600} for i in range(120)]
st, r = c.call("POST", "/v1/collections/x/documents", {"documents": xdocs}, timeout=30)
check(st == 200, f"ingest x: {st} {r}")
xtoken = r.get("write_token")
end = time.time() + 20  # replicas find a new collection within a second of its creation
while time.time() < end and cluster("log", "lexical", tok=xtoken, coll="x")[0] != 200:
    time.sleep(0.2)
single_store("x", xdocs, 512, 0)
st, r = c.call("POST", "/v1/collections", {"name": "y", "shards": 2, "embedder": "hash",
             "dim": 32, "index_spec": "Flat", "chunk_tokens": 24, "chunk_overlap": 4})
check(st == 201, f"create collection y: {st} {r}")
ydocs = [{"id": f"y-{i:03d}", "text": " ".join(rnd.choice(words) for _ in range(30 + 2 * i)) +
          ".", "source_mtime": 1700000000 + i * 3600} for i in range(80)]
st, r = c.call("POST", "/v1/collections/y/documents", {"documents": ydocs}, timeout=30)
check(st == 200, f"ingest y: {st} {r}")
ytoken = r.get("write_token")
end = time.time() + 20
while time.time() < end and cluster("log", "lexical", tok=ytoken, coll="y")[0] != 200:
    time.sleep(0.2)
single_store("y", ydocs, 24, 4)
shard_idf_differs = unit_differs = 0
for q in queries:
    for coll, tok, unit in (("x", xtoken, None), ("x", xtoken, "chunk"), ("y", ytoken, None)):
        opts = {"lexical_unit": unit} if unit else {}
        for mode in ("lexical", "hybrid"):
            st, r = cluster(q, mode, tok=tok, extra={"idf": "exact", **opts}, coll=coll)
            check(st == 200, f"exact-idf {mode} {opts} search: {st} {r}")
            same_hits(f"exact-idf {coll} {mode} {opts} '{q}'", r.get("hits", []),
                      single(q, mode, extra=opts, coll=coll))
    by_doc = single(q, "lexical", coll="y")
    by_chunk = single(q, "lexical", extra={"lexical_unit": "chunk"}, coll="y")
    unit_differs += [(h["doc_id"], h["score"]) for h in by_doc] != \
        [(h["doc_id"], h["score"]) for h in by_chunk]
    st, r = cluster(q, "lexical", tok=xtoken, extra={"idf": "shard"}, coll="x")
    ref = single(q, "lexical", coll="x")
    shard_idf_differs += any(abs(x["score"] - y["score"]) > 1e-4
                             for x, y in zip(r.get("hits", []), ref))
check(shard_idf_differs > 0, "per-shard IDF gave the single store's lexical scores")
check(unit_differs > 0, "scoring y by document and by chunk agree: the comparison proves nothing")
st, r = cluster(queries[0], "lexical", extra={"idf": "global"})
check(st == 400 and "idf" in r.get("error", {}).get("message", ""), f"bad idf: {st} {r}")
print(f"exact IDF: lexical and hybrid equal one store's on {len(queries)} queries, by document "
      f"and by chunk", flush=True)

# MMR, recency and the per-document cap at the router, on the merged lists: equal one
# store's with the same options
mmr_moved = 0
for q in queries:
    for coll, mode, opts in (("t", "dense", {"mmr_lambda": 0.5}),
                             ("t", "dense", {"mmr_lambda": 0.6, "per_doc": 1}),
                             ("t", "dense", {"half_life": 86400 * 20}),
                             ("t", "dense", {"half_life": 86400 * 5, "recency_weight": 0.6,
                                             "mmr_lambda": 0.8}),
                             ("x", "hybrid", {"mmr_lambda": 0.7}),
                             ("x", "hybrid", {"half_life": 86400, "time_basis": "source"})):
        st, r = cluster(q, mode, tok=token if coll == "t" else xtoken,
                        extra={**opts, "idf": "exact"}, coll=coll)
        check(st == 200, f"{mode} {opts}: {st} {r}")
        same_hits(f"{coll} {mode} {opts} '{q}'", r.get("hits", []),
                  single(q, mode, extra=opts, coll=coll),
                  tol=1e-5 if "half_life" in opts else 1e-6)
    plain = [h["doc_id"] for h in single(q, "dense")]
    mmr_moved += plain != [h["doc_id"] for h in single(q, "dense", extra={"mmr_lambda": 0.5})]
check(mmr_moved > 0, "MMR changed no ranking: the comparison proves nothing")
print(f"MMR, recency and per-document cap at the router: equal one store's on {len(queries)} "
      f"queries", flush=True)

# read-your-writes: a write token is honoured at once; a delete travels in the log
st, r = ingest([{"id": "ryw", "text": "zebra quagga okapi"}])
st, r = cluster("zebra quagga okapi", "lexical", k=1, tok=r["write_token"])
check(st == 200 and r["hits"] and r["hits"][0]["doc_id"] == "ryw", f"read-your-writes: {st} {r}")
st, r = c.call("DELETE", "/v1/collections/t/documents/ryw")
check(st == 200, f"delete: {st} {r}")
acked.discard("ryw")
st, r = cluster("zebra quagga okapi", "lexical", k=1, tok=r["write_token"])
check(st == 200 and all(h["doc_id"] != "ryw" for h in r["hits"]), f"deleted: {r}")

# kill -9 of a NATS server while writing and querying
with Load(c) as load:
    time.sleep(1)
    os.kill(pid("nats1"), signal.SIGKILL)
    time.sleep(3)
    respawn("nats1")
    time.sleep(2)
load.report("kill -9 nats1")
converged("after kill -9 nats1")

# kill -9 of a replica
with Load(c) as load:
    time.sleep(1)
    os.kill(pid("r0b"), signal.SIGKILL)
    time.sleep(2)
    respawn("r0b")
    time.sleep(1)
load.report("kill -9 replica r0b")
converged("after kill -9 r0b")

# the applier dies between fetching a batch and committing it (test hook: exit 137 before
# the commit of the 2nd batch it applies), then restarts
os.kill(pid("r1b"), signal.SIGTERM)
time.sleep(1)
for k in range(3):
    st, r = ingest([make_doc(20000 + k * 10 + j) for j in range(10)])
    check(st == 200, f"ingest while r1b is down: {st}")
respawn("r1b", {"RAGCORE_CLUSTER_TEST_EXIT_BEFORE_COMMIT": "2"})
c.wait_exit("r1b", timeout=20)
check("between fetch and commit" in c.log_text("r1b"), "the applier exited before its commit")
respawn("r1b")
converged("after the applier died between fetch and commit")

# SIGSTOP of a replica (hung, connection open), without hedging: a shard request that lands
# on it times out, and the one retry goes to every replica of the shard, so the other one
# answers it: every query is answered
timeouts0 = router_metric("ragcore_cluster_router_shard_timeouts_total")
with Load(c, write=False) as load:
    time.sleep(0.5)
    os.kill(pid("r0a"), signal.SIGSTOP)
    time.sleep(3)
    os.kill(pid("r0a"), signal.SIGCONT)
    time.sleep(0.5)
timeouts = router_metric("ragcore_cluster_router_shard_timeouts_total") - timeouts0
load.report(f"SIGSTOP replica r0a (3 s), no hedging, {timeouts:.0f} shard timeouts retried")
check(load.q_ok > 0 and load.q_err == 0,
      f"queries while a replica was stopped: {load.q_ok} answered, {load.q_err} failed")
check(timeouts > 0, "no shard request reached the stopped replica: the check proves nothing")
converged("after SIGSTOP r0a")

# hedged requests: with a replica of shard 0 stopped, a query whose request lands on it is
# sent to the shard's other replica after hedge_ms instead of waiting for the timeout
hedges0 = router_metric("ragcore_cluster_router_hedges_total")
timeouts0 = router_metric("ragcore_cluster_router_shard_timeouts_total")
os.kill(pid("r0a"), signal.SIGSTOP)
try:
    lat = []
    for i in range(12):
        t0 = time.time()
        st, r = cluster(queries[i % len(queries)], "hybrid", extra={"hedge_ms": 40})
        lat.append(time.time() - t0)
        check(st == 200, f"hedged query with r0a stopped: {st} {r}")
finally:
    os.kill(pid("r0a"), signal.SIGCONT)
hedges = router_metric("ragcore_cluster_router_hedges_total") - hedges0
timeouts = router_metric("ragcore_cluster_router_shard_timeouts_total") - timeouts0
print(f"hedge_ms 40, r0a stopped: 12 queries, max {max(lat) * 1000:.0f} ms (timeout "
      f"{os.environ['RAGCORE_CLUSTER_QUERY_TIMEOUT_MS']} ms), {hedges:.0f} hedges, "
      f"{timeouts:.0f} shard timeouts", flush=True)
check(hedges > 0, "no request was hedged while a replica was stopped")
# unhedged, a request on r0a waits the whole timeout (counted), then the retry; hedged,
# the other replica answers first (latency depends on the machine's load: printed only)
check(timeouts == 0, f"hedged queries waited for the timeout: {timeouts:.0f} shard timeouts, "
      f"latencies {lat}")
converged("after SIGSTOP r0a with hedging")

# kill -9 of a router: HAProxy sends requests to the other one
with Load(c) as load:
    time.sleep(0.5)
    os.kill(pid("router2"), signal.SIGKILL)
    time.sleep(2)
    respawn("router2")
    time.sleep(1)
load.report("kill -9 router2")
converged("after kill -9 router2")

print(f"{len(acked)} acknowledged documents; {c.failures} failures", flush=True)
sys.exit(1 if c.failures else 0)
PY
