#!/usr/bin/env bash
# test_cluster_bootstrap.sh - a new replica whose log no longer holds its beginning copies a
# peer's store: a local cluster (tools/cluster_dev.sh, loopback ports chosen per run) whose
# shard logs keep only their last 20 messages; after 200 documents a third replica of shard
# 0 (r0c) starts with an empty directory while a writer runs. It must copy a peer's backup
# (its log names the peer), read the log from the copy's position + 1 and converge: equal
# digests at the log's last sequence, every acknowledged document exactly once; the peer
# removes its backup afterwards. Every peer withholds its answer to the first backup request
# and to the first part request it gets (RAGCORE_CLUSTER_TEST_DROP, as if NATS had lost
# them): the new replica must ask again, and a backup nobody asks about any more is removed
# after RAGCORE_CLUSTER_BACKUP_IDLE_S. Then replica r0b is stopped (SIGSTOP) while 30 batches pass
# through shard 0's log, so the log no longer holds its next sequence, and continued: it
# must copy a peer's store while running (no restart; queries go on meanwhile) and
# converge. Skipped (77) without nats-server or haproxy.
set -euo pipefail
src=${RAGCORE_SOURCE_DIR:?}
. "$src/tests/cluster_lib.sh"
export RAGCORE_CLUSTER_STREAM_MAX_MSGS=20 RAGCORE_CLUSTER_NATS_PING_S=1
export RAGCORE_CLUSTER_TEST_DROP=start:1,get:1 RAGCORE_CLUSTER_BACKUP_IDLE_S=15
cl_setup bootstrap

cl_python <<'PY'
import glob, json, os, signal, subprocess, sys, time, urllib.request
from cluster_lib import Cluster, Load

tmp, bin_, dev = sys.argv[1:4]
c = Cluster(tmp, bin_, dev)


def backups_removed(pattern, timeout=45):
    """No backup left under the peers' DATA/.backups within timeout (a lost answer's
    backup is removed once nobody asked about it for RAGCORE_CLUSTER_BACKUP_IDLE_S)."""
    end = time.time() + timeout
    while glob.glob(pattern) and time.time() < end:
        time.sleep(0.5)
    return not glob.glob(pattern)

c.create()
c.converged("created", replicas=(2, 2))  # r0a, r0b host the shard from sequence 1
for k in range(0, 200, 5):
    st, r = c.ingest([c.make_doc(i) for i in range(k, k + 5)])
    c.check(st == 200, f"ingest: {st} {r}")
c.converged("initial", replicas=(2, 2))

# the log of shard 0 no longer starts at 1 (NATS monitoring: the stream's first sequence)
base = int(os.environ["RAGCORE_CLUSTER_BASE"])
jsz = json.load(urllib.request.urlopen(
    f"http://127.0.0.1:{base + 200}/jsz?streams=true", timeout=5))
first = {s["name"]: s["state"]["first_seq"]
         for a in jsz.get("account_details", []) for s in a.get("stream_detail", [])}
print(f"first sequences the logs hold: {first}", flush=True)
c.check(first.get("RAG_t_0", 1) > 1, f"the log of shard 0 was trimmed: {first}")

with Load(c) as load:
    t0 = time.time()
    subprocess.run([dev, "spawn", "r0c", tmp, f"{bin_}/ragcore-server", "cluster", "replica",
                    "--config", f"{tmp}/cluster.json", "--data", f"{tmp}/data/r0c",
                    "--shards", "0", "--name", "r0c"], check=True)
    time.sleep(4)
load.report("a new replica r0c bootstraps from a peer while writing")
c.converged("r0c after its bootstrap", replicas=(3, 2), timeout=120)
log = c.log_text("r0c")
c.check("bootstrapped from rag.peer.r0" in log, f"r0c copied a peer's store: {log[-2000:]}")
c.check("no answer to the backup request in 5 s: asking again" in log,
        f"r0c asked again for the backup whose answer was withheld: {log[-2000:]}")
c.check("no answer in 10 s: asking again" in log,
        f"r0c asked again for the part whose answer was withheld: {log[-2000:]}")
c.check(backups_removed(f"{tmp}/data/r0[ab]/.backups/*"), "the peers removed their backups")

# a running replica whose position the log's retention passes (stopped meanwhile) copies
# a peer's store without a restart, while queries go on
pid = c.pid("r0b")
os.kill(pid, signal.SIGSTOP)
time.sleep(5)  # the brokers drop its connection (ping every 1 s, 2 unanswered): nothing
               # written from now on is on its way to it
for k in range(200, 350, 5):  # 30 batches: shard 0's log keeps only the last 20
    st, r = c.ingest([c.make_doc(i) for i in range(k, k + 5)])
    c.check(st == 200, f"ingest while r0b is stopped: {st} {r}")
with Load(c, write=False) as load:
    os.kill(pid, signal.SIGCONT)
    c.converged("r0b after its position left the log", replicas=(3, 2), timeout=120)
load.report("queries while r0b replaced its store")
c.check(c.pid("r0b") == pid and not c.wait_exit("r0b", 0.5), "r0b kept running")
log = c.log_text("r0b")
c.check("copying a peer's store while running" in log and "bootstrapped from rag.peer." in log,
        f"r0b copied a peer's store while running: {log[-2000:]}")
c.check(backups_removed(f"{tmp}/data/r0[ac]/.backups/*"), "the peers removed their backups")
print(f"{len(c.acked)} acknowledged documents; {c.failures} failures", flush=True)
sys.exit(1 if c.failures else 0)
PY
