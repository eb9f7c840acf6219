#!/usr/bin/env bash
# test_cluster_settings.sh - PATCH of a clustered collection's settings through the routers:
# a local cluster (tools/cluster_dev.sh, 2 routers, loopback ports chosen per run). A PATCH
# needs an admin key (401 without, 403 with a read key); a bad value, an unknown setting, a
# change of language and what a cluster cannot apply are refused naming the field (400); a
# missing collection is 404; a PATCH through router 1 applies to the next write through
# router 2 (a quality filter then keeps a short document out); two clients patching
# different fields of one collection at once through the two routers (compare-and-set on
# the metadata's revision, re-applied on a conflict) lose no change: both last values are
# there at the end. Skipped (77) without nats-server or haproxy.
set -euo pipefail
src=${RAGCORE_SOURCE_DIR:?}
. "$src/tests/cluster_lib.sh"
cl_setup settings

cl_python <<'PY'
import json, sys, threading, urllib.request
from cluster_lib import Cluster

tmp, bin_, dev = sys.argv[1:4]
c = Cluster(tmp, bin_, dev)
r1, r2 = c.router(1), c.router(2)
st, r = c.call("POST", "/v1/collections", {"name": "s", "shards": 2, "embedder": "hash",
                                           "dim": 32, "index_spec": "Flat"}, front=r1)
c.check(st == 201, f"create: {st} {r}")

st, r = c.call("PATCH", "/v1/collections/s", {"quality": "on"}, key="")
c.check(st == 401, f"PATCH without a key: {st} {r}")
st, rk = c.call("POST", "/v1/keys", {"name": "reader", "scopes": ["read", "write"],
                                     "collections": ["s"]})
st, r = c.call("PATCH", "/v1/collections/s", {"quality": "on"}, key=rk.get("key"), front=r1)
c.check(st == 403 and "'admin'" in json.dumps(r), f"PATCH with a write key: {st} {r}")
for body, field in (({"min_chars": "x"}, "min_chars"), ({"foo": 1}, "foo"),
                    ({"language": "german"}, "language"), ({"dedup": "skip"}, "dedup"),
                    ({"quality": "maybe"}, "quality")):
    st, r = c.call("PATCH", "/v1/collections/s", body, front=r1)
    c.check(st == 400 and field in r.get("error", {}).get("message", ""),
            f"PATCH {body} is refused naming {field}: {st} {r}")
st, r = c.call("PATCH", "/v1/collections/nope", {"quality": "on"})
c.check(st == 404, f"PATCH of a missing collection: {st} {r}")
st, r = c.call("GET", "/v1/collections/s", front=r2)
c.check(st == 200 and r["settings"]["quality"] == "off", f"refused PATCHes changed nothing: {r}")

# a PATCH through router 1 applies to the next write through router 2
st, r = c.call("PATCH", "/v1/collections/s", {"quality": "on", "min_chars": 40}, front=r1)
c.check(st == 200 and r["settings"]["quality"] == "on" and r["settings"]["min_chars"] == 40,
        f"PATCH: {st} {r}")
st, r = c.call("POST", "/v1/collections/s/documents",
               {"documents": [{"id": "short", "text": "too short"}]}, front=r2)
c.check(st == 200 and r.get("not_stored") == 1 and
        r.get("summary", {}).get("filtered_too_short") == 1,
        f"the next write through router 2 applies the new policy: {st} {r}")

# two clients at once, different fields, through different routers: no change lost
N = 25
answers, odd = {"min_chars": [], "max_chars": []}, []
def patcher(front, field, start):
    for i in range(N):
        while True:
            st, r = c.call("PATCH", "/v1/collections/s", {field: start + i}, front=front)
            answers[field].append(st)
            if st not in (200, 409):
                odd.append((st, r))
            if st != 409:
                break
ts = [threading.Thread(target=patcher, args=(r1, "min_chars", 41)),
      threading.Thread(target=patcher, args=(r2, "max_chars", 100001))]
for t in ts:
    t.start()
for t in ts:
    t.join()
st, r = c.call("GET", "/v1/collections/s")
got = (r["settings"]["min_chars"], r["settings"]["max_chars"])
print(f"concurrent PATCHes: answers {dict((k, sorted(set(v))) for k, v in answers.items())}, "
      f"final {got}", flush=True)
c.check(all(s in (200, 409) for v in answers.values() for s in v),
        f"every concurrent PATCH answered 200 or 409: {odd}")
c.check(got == (41 + N - 1, 100001 + N - 1), f"both last values kept: {got}")
conflicts = 0
for front in (r1, r2):
    req = urllib.request.Request(front + "/metrics", headers={"Authorization": f"Bearer {c.key}"})
    for line in urllib.request.urlopen(req, timeout=5).read().decode().splitlines():
        if line.startswith("ragcore_cluster_router_settings_conflicts_total "):
            conflicts += int(line.split()[1])
print(f"compare-and-set conflicts re-applied by the routers: {conflicts}", flush=True)
print(f"{c.failures} failures", flush=True)
sys.exit(1 if c.failures else 0)
PY
