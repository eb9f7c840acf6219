#!/usr/bin/env bash
# test_cluster_faults.sh - faults of a local cluster (tools/cluster_dev.sh: 3 NATS servers,
# 2 shards x 2 replicas, 2 routers, HAProxy; loopback ports chosen per run) while a writer
# and a query loop run: the applier killed (SIGKILL, test hook RAGCORE_CLUSTER_TEST_KILL)
# between fetching a batch and committing it, and between its commit and the point where a
# consumer with acknowledgements would acknowledge it; kill -9 of a router (the other keeps
# serving behind HAProxy); SIGSTOP of a replica for 5 s (hung, connection open), then
# SIGCONT. After each: every acknowledged document on every replica of its shard exactly
# once (counts, digests equal at the log's last sequence, no gap), and the query errors and
# latency during the fault printed. Kill -9 of a NATS server and of a whole replica are in
# test_cluster.sh. Also `ragcore ingest --cluster` (parallel workers through the routers)
# and its errors. Skipped (77) without nats-server or haproxy.
set -euo pipefail
src=${RAGCORE_SOURCE_DIR:?}
. "$src/tests/cluster_lib.sh"
cl_setup faults

cl_python <<'PY'
import json, os, signal, subprocess, sys, time
from cluster_lib import Cluster, Load

c = Cluster(*sys.argv[1:4])
c.create()
for k in range(0, 100, 50):
    st, r = c.ingest([c.make_doc(i) for i in range(k, k + 50)])
    c.check(st == 200, f"initial ingest: {st} {r}")
c.converged("initial")

# bulk ingest through the routers with parallel workers (ragcore ingest --cluster)
with open(f"{c.tmp}/bulk.jsonl", "w") as f:
    for i in range(100, 220):
        d = c.make_doc(i)
        f.write(json.dumps({"_id": d["id"], "text": d["text"]}) + "\n")
cli = [f"{c.bin}/ragcore", "ingest", "--cluster", c.front, "--collection", "t", "--quiet"]
out = subprocess.run(cli + ["--workers", "3", "--batch", "16", f"{c.tmp}/bulk.jsonl"],
                     capture_output=True, text=True)
c.check(out.returncode == 0 and "ingested 120 documents" in out.stdout,
        f"ingest --cluster: {out.returncode} {out.stdout} {out.stderr}")
if out.returncode == 0:
    c.acked.update(f"doc-{i:05d}" for i in range(100, 220))
print("ingest --cluster:", out.stdout.strip().splitlines()[0] if out.stdout else "", flush=True)
out = subprocess.run(cli[:-3] + ["--collection", "nope", f"{c.tmp}/bulk.jsonl"],
                     capture_output=True, text=True)
c.check(out.returncode != 0 and "no collection 'nope'" in out.stderr,
        f"ingest --cluster into a missing collection: {out.returncode} {out.stderr}")
out = subprocess.run(cli + ["--workers", "0", f"{c.tmp}/bulk.jsonl"], capture_output=True,
                     text=True)
c.check(out.returncode != 0 and "--workers must be 1..64" in out.stderr,
        f"ingest --cluster --workers 0: {out.returncode} {out.stderr}")
c.converged("after ingest --cluster")

# The applier of r0b, then of r1b, is killed at a test kill point of its 3rd batch while
# the writer goes on; the replica restarts without the hook and catches up.
for name, point, where in (("r0b", "before_commit", "between fetch and commit"),
                           ("r1b", "after_commit", "between commit and ack")):
    with Load(c) as load:
        time.sleep(0.5)
        os.kill(c.pid(name), signal.SIGTERM)
        c.check(c.wait_exit(name), f"{name} stopped on SIGTERM")
        c.respawn(name, {"RAGCORE_CLUSTER_TEST_KILL": f"{point}:3"})
        c.check(c.wait_exit(name), f"{name} killed at its kill point {point}")
        c.check(f"killed {where}" in c.log_text(name), f"{name}'s log names the kill point")
        c.respawn(name)
        time.sleep(2)
    load.report(f"applier of {name} killed {where}")
    c.converged(f"after the applier of {name} was killed {where}")

# kill -9 of a router: HAProxy sends requests to the other one; restarted after 3 s
with Load(c) as load:
    time.sleep(0.5)
    os.kill(c.pid("router1"), signal.SIGKILL)
    time.sleep(3)
    c.respawn("router1")
    time.sleep(1.5)
load.report("kill -9 router1 (3 s down)")
c.check(load.q_ok > 0 and load.w_ok > 0, "queries and writes answered while a router was down")
c.converged("after kill -9 router1")

# SIGSTOP of a replica for 5 s: it holds its connection and its place in the queue group;
# queries it receives time out and their one retry goes to every replica of the shard (no
# hedging here), so the other replica answers: no query fails
with Load(c) as load:
    time.sleep(0.5)
    os.kill(c.pid("r0a"), signal.SIGSTOP)
    time.sleep(5)
    os.kill(c.pid("r0a"), signal.SIGCONT)
    time.sleep(1)
load.report("SIGSTOP replica r0a (5 s)")
c.check(load.q_ok > 0 and load.q_err == 0,
        f"queries while a replica was stopped: {load.q_ok} answered, {load.q_err} failed")
c.converged("after SIGSTOP r0a")

print(f"{len(c.acked)} acknowledged documents; {c.failures} failures", flush=True)
sys.exit(1 if c.failures else 0)
PY
