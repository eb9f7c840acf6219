#!/usr/bin/env bash
# test_cluster_backup_wait.sh - a new replica waits for a peer's backup at most
# RAGCORE_CLUSTER_BACKUP_WAIT_S, and a failed backup ends its wait at once: a local cluster
# (tools/cluster_dev.sh) whose shard logs keep only their last 20 messages. After 100
# documents both replicas of shard 0 are stopped; r0a is started again with its first backup
# "making" for 40 s (RAGCORE_CLUSTER_TEST_BACKUP=slow:40, a hung disk) and a new replica r0c
# (RAGCORE_CLUSTER_BACKUP_WAIT_S=4) starts with an empty directory. r0c must log the wait's
# progress, give up on r0a after 4 s and tell it so; r0a must then decline new backups of the
# shard while the abandoned one is still being made. r0b is started again with its first
# backup failing (RAGCORE_CLUSTER_TEST_BACKUP=fail): r0c must report r0b's message without
# waiting for its limit, then copy r0b's next backup and converge; r0a removes the abandoned
# backup once made, r0b its failed one. A bad RAGCORE_CLUSTER_BACKUP_WAIT_S stops a replica at
# its start with a message naming the variable. Skipped (77) without nats-server or haproxy.
set -euo pipefail
src=${RAGCORE_SOURCE_DIR:?}
. "$src/tests/cluster_lib.sh"
export RAGCORE_CLUSTER_STREAM_MAX_MSGS=20 RAGCORE_CLUSTER_NATS_PING_S=1
cl_setup backup_wait

cl_python <<'PY'
import glob, os, re, signal, subprocess, sys, time
from cluster_lib import Cluster

tmp, bin_, dev = sys.argv[1:4]
c = Cluster(tmp, bin_, dev)
server = f"{bin_}/ragcore-server"


def wait_for(what, cond, timeout):
    """True once cond() holds, within timeout seconds."""
    end = time.time() + timeout
    while not cond():
        if time.time() > end:
            c.check(False, f"within {timeout} s: {what}")
            return False
        time.sleep(0.2)
    return True


def log(name):
    """Process name's log so far ("" before a just spawned process opened it)."""
    try:
        return c.log_text(name)
    except FileNotFoundError:
        return ""


def stop(name):
    os.kill(c.pid(name), signal.SIGTERM)
    c.check(c.wait_exit(name), f"{name} stopped")


# a bad limit is refused at the start, naming the variable
for bad in ("0", "-3", "4s", "abc"):
    p = subprocess.run([server, "cluster", "replica", "--config", f"{tmp}/cluster.json",
                        "--data", f"{tmp}/data/bad", "--shards", "0"], capture_output=True,
                       text=True, timeout=30,
                       env={**os.environ, "RAGCORE_CLUSTER_BACKUP_WAIT_S": bad})
    c.check(p.returncode == 1 and f"RAGCORE_CLUSTER_BACKUP_WAIT_S='{bad}': expected a positive "
            "whole number of seconds" in p.stderr,
            f"RAGCORE_CLUSTER_BACKUP_WAIT_S={bad}: exit {p.returncode}: {p.stderr[-500:]}")

c.create()
c.converged("created", replicas=(2, 2))
for k in range(0, 100, 4):  # 25 batches: shard 0's log keeps only the last 20
    st, r = c.ingest([c.make_doc(i) for i in range(k, k + 4)])
    c.check(st == 200, f"ingest: {st} {r}")
c.converged("initial", replicas=(2, 2))

stop("r0b")
stop("r0a")
c.respawn("r0a", env={"RAGCORE_CLUSTER_TEST_BACKUP": "slow:40"})
wait_for("r0a hosts t/0 again", lambda: log("r0a").count("hosting t/0") == 2, 30)

t0 = time.time()
subprocess.run([dev, "spawn", "r0c", tmp, server, "cluster", "replica", "--config",
                f"{tmp}/cluster.json", "--data", f"{tmp}/data/r0c", "--shards", "0", "--name",
                "r0c"], check=True, env={**os.environ, "RAGCORE_CLUSTER_BACKUP_WAIT_S": "4"})
gave_up = "from rag.peer.r0a still being made after 4 s (the limit, " \
          "RAGCORE_CLUSTER_BACKUP_WAIT_S): gave up on that peer"
wait_for("r0c gives up on r0a's backup", lambda: gave_up in log("r0c"), 30)
print(f"r0c gave up on r0a after {time.time() - t0:.1f} s", flush=True)
text = log("r0c")
progress = re.findall(r"from rag\.peer\.r0a still being made after \d+ s\n", text)
c.check(len(progress) >= 2, f"r0c logged its wait every second: {text[-2000:]}")
wait_for("r0a is told that r0c gave up", lambda: "the replica that asked for it gave up "
         "waiting after" in log("r0a"), 10)
wait_for("r0a declines another backup while the abandoned one is being made",
         lambda: "on r0a, given up on by the replica that asked, is still being made after" in
         log("r0c"), 15)

c.respawn("r0b", env={"RAGCORE_CLUSTER_TEST_BACKUP": "fail"})
wait_for("r0c reports r0b's failed backup",
         lambda: "from rag.peer.r0b failed: backup: test hook: the backup failed" in
         log("r0c"), 45)
wait_for("r0c copies r0b's store", lambda: "bootstrapped from rag.peer.r0b" in
         log("r0c"), 45)
print(f"r0c bootstrapped from r0b {time.time() - t0:.1f} s after its start", flush=True)
text = log("r0c")
c.check("rag.peer.r0b still being made" not in text,
        f"r0c waited for r0b's failed backup no longer than for its answer: {text[-3000:]}")
c.converged("r0c after its bootstrap", replicas=(3, 2), timeout=120)

# the abandoned backup is removed once made (40 s after it began), the failed one at once
wait_for("r0a removes the abandoned backup",
         lambda: "removed: the replica that asked for it gave up waiting after" in
         log("r0a") and not glob.glob(f"{tmp}/data/r0a/.backups/*"), 75)
wait_for("r0b removes its backups", lambda: not glob.glob(f"{tmp}/data/r0b/.backups/*"), 30)
print(f"{len(c.acked)} acknowledged documents; {c.failures} failures", flush=True)
sys.exit(1 if c.failures else 0)
PY
