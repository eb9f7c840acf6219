#!/usr/bin/env bash
# test_cluster_partition.sh - a network partition of one replica: a local cluster
# (tools/cluster_dev.sh) whose NATS servers listen on the host end of a veth pair, plus a
# third replica of shard 1 (r1c) in its own network namespace behind that veth pair.
#   partition: r1c's end of the link is set down for 8 s while a writer and a query loop
#     run, then up again; r1c must converge: equal digests at the log's last sequence, every
#     acknowledged document exactly once, no gap;
#   slow link: r1c reaches NATS through a proxy that delays every transfer 50 +- 10 ms each
#     way, and the query latency is printed beside the undisturbed baseline (this kernel
#     has no sch_netem, so `tc netem` delay and loss are not used; see docs/cluster.md);
#   lossy link: the same proxy also stalls 3 % of transfers as TCP stalls a stream on a lost
#     segment (0.2 s, doubled per further loss); writes go on and r1c must converge.
# Skipped (77) when not root, without `ip netns`, nats-server or haproxy. The namespace, the
# veth pair and every process are removed on exit, on failure too (trap).
set -euo pipefail
src=${RAGCORE_SOURCE_DIR:?}
. "$src/tests/cluster_lib.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: network namespaces need root (running as uid $(id -u))"; exit 77; }
command -v ip >/dev/null || { echo "SKIP: no ip command (iproute2)"; exit 77; }
cl_require
ns=rcpart$$
veth_host=rch$$ veth_ns=rcn$$
cleanup() {
    local st=$1
    cl_stop "$st" || st=$?
    ip link del "$veth_host" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$tmp"
    exit "$st"
}
tmp=${RAGCORE_TEST_TMP:-/tmp}/cluster-partition-$$
trap 'cleanup $?' EXIT
ip netns add "$ns" 2>/dev/null || { echo "SKIP: cannot create a network namespace (ip netns add failed)"; exit 77; }
# a /30 of 10.201.0.0/16 from the process id, apart from concurrent runs
net=$(( ($$ % 16384) * 4 ))
host_ip=10.201.$(( net / 256 )).$(( net % 256 + 1 ))
ns_ip=10.201.$(( net / 256 )).$(( net % 256 + 2 ))
ip link add "$veth_host" type veth peer name "$veth_ns"
ip link set "$veth_ns" netns "$ns"
ip addr add "$host_ip/30" dev "$veth_host"
ip link set "$veth_host" up
ip -n "$ns" addr add "$ns_ip/30" dev "$veth_ns"
ip -n "$ns" link set "$veth_ns" up
ip -n "$ns" link set lo up

cl_pick_ports
export RAGCORE_CLUSTER_QUERY_TIMEOUT_MS=400 RAGCORE_CLUSTER_NATS_HOST=$host_ip
cl_start "$tmp"

PYTHONPATH="$src/tests" python3 - "$tmp" "$RAGCORE_BIN" "$src/tools/cluster_dev.sh" \
    "$ns" "$veth_ns" "$host_ip" <<'PY'
import asyncio, json, os, random, signal, subprocess, sys, threading, time
from cluster_lib import Cluster, Load

tmp, bin_, dev, ns, veth_ns, host_ip = sys.argv[1:7]
c = Cluster(tmp, bin_, dev)
base = int(os.environ["RAGCORE_CLUSTER_BASE"])

def start_r1c(config):
    subprocess.run([dev, "spawn", "r1c", tmp, "ip", "netns", "exec", ns,
                    f"{bin_}/ragcore-server", "cluster", "replica", "--config", config,
                    "--data", f"{tmp}/data/r1c", "--shards", "1", "--name", "r1c"], check=True)

def link(state):
    subprocess.run(["ip", "-n", ns, "link", "set", veth_ns, state], check=True)

c.create()
start_r1c(f"{tmp}/cluster.json")
for k in range(0, 100, 50):
    st, r = c.ingest([c.make_doc(i) for i in range(k, k + 50)])
    c.check(st == 200, f"initial ingest: {st} {r}")
c.converged("initial", replicas=(2, 3))

with Load(c, write=False) as load:
    time.sleep(6)
load.report("baseline (no fault)", per_replica=True)

# partition r1c for 8 s while writing, then heal
with Load(c) as load:
    time.sleep(0.5)
    link("down")
    time.sleep(6)
    shards = c.status().get("collections", {}).get("t", {}).get("shards", [])
    seen = [r["replica"] for sh in shards for r in sh["replicas"]]
    c.check(shards and "r1c" not in seen, f"r1c unreachable while partitioned: {seen}")
    time.sleep(2)
    link("up")
    time.sleep(1)
load.report("r1c partitioned (link down 8 s)", per_replica=True)
c.converged("after the partition of r1c healed", replicas=(2, 3), timeout=120)

# A slow link: r1c talks to NATS through a proxy that delays each transfer 50 +- 10 ms in
# each direction (order kept). A lossy link, since this kernel has no sch_netem: TCP turns
# a lost segment into a stall of the stream until its retransmission (Linux's minimum
# retransmission timeout is 200 ms, doubled for each further loss of the same segment), so
# with probability `loss` a transfer and everything behind it in that direction wait
# 0.2 s x 2^n, n the number of further losses.
async def pipe(reader, writer, loss=0.0):
    q = asyncio.Queue()
    async def send():
        while True:
            at, data = await q.get()
            if data is None:
                break
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            writer.write(data)
            await writer.drain()
        writer.close()
    task = asyncio.ensure_future(send())
    last = 0.0
    while True:
        data = await reader.read(65536)
        stall = 0.0
        if random.random() < loss:
            stall = 0.2
            while random.random() < loss and stall < 3.2:
                stall *= 2
        last = max(last, time.monotonic() + max(0.0, random.gauss(0.050, 0.010)) + stall)
        await q.put((last, data or None))
        if not data:
            break
    await task

async def serve_proxy(port, started, loss=0.0):
    async def conn(r1, w1):
        try:
            r2, w2 = await asyncio.open_connection(host_ip, base)
        except OSError:
            w1.close()
            return
        await asyncio.gather(pipe(r1, w2, loss), pipe(r2, w1, loss), return_exceptions=True)
    server = await asyncio.start_server(conn, host_ip, port)
    started.set()
    async with server:
        await server.serve_forever()

def behind_proxy(port, loss, name):
    """Restarts r1c so that it reaches NATS only through a proxy on port."""
    started = threading.Event()
    threading.Thread(target=lambda: asyncio.run(serve_proxy(port, started, loss)),
                     daemon=True).start()
    started.wait(10)
    cfg = json.load(open(f"{tmp}/cluster.json"))
    cfg["nats"] = [f"nats://{host_ip}:{port}"]
    json.dump(cfg, open(f"{tmp}/{name}.json", "w"))
    os.kill(c.pid("r1c"), signal.SIGTERM)
    c.check(c.wait_exit("r1c"), "r1c stopped on SIGTERM")
    start_r1c(f"{tmp}/{name}.json")

behind_proxy(base + 390, 0.0, "cluster-slow")
c.converged("r1c back behind the slow link", replicas=(2, 3))
with Load(c, write=False) as load:
    time.sleep(8)
load.report("r1c's link delayed 50 +- 10 ms each way", per_replica=True)
with Load(c) as load:
    time.sleep(3)
load.report("writing, r1c's link delayed")
c.converged("after writes over the slow link", replicas=(2, 3))

# a lossy link: 3 % of transfers stalled as a lost segment would stall them
behind_proxy(base + 391, 0.03, "cluster-lossy")
c.converged("r1c back behind the lossy link", replicas=(2, 3), timeout=120)
with Load(c) as load:
    time.sleep(8)
load.report("writing, r1c's link losing 3 % of transfers", per_replica=True)
c.check(load.q_ok > 0 and load.w_ok > 0,
        f"queries and writes went on over the lossy link: {load.q_ok} / {load.w_ok}")
c.converged("after writes over the lossy link", replicas=(2, 3), timeout=120)

print(f"{len(c.acked)} acknowledged documents; {c.failures} failures", flush=True)
sys.exit(1 if c.failures else 0)
PY
