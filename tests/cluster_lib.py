"""cluster_lib.py - the Python side of the cluster fault and partition tests
(tests/test_cluster_faults.sh, tests/test_cluster_partition.sh): HTTP calls to the cluster,
the acknowledged documents, convergence checks on `ragcore-server cluster status`, and a
background load (writes retried with the same request_id, hybrid queries) that counts the
errors and latency a fault causes."""
import json
import os
import random
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

WORDS = ("raft log replica shard vector index query stream lmdb faiss token router lag digest "
         "batch sequence commit leader follower snapshot quorum partition latency apply "
         "consumer publish retry backoff jitter health").split()
QUERIES = ["replica log apply", "vector index faiss lmdb", "leader quorum partition",
           "retry backoff jitter publish", "snapshot consumer stream lag"]


def fnv_shard(doc_id, shards=2):
    """cluster_shard_of: FNV-1a 64 of the id modulo shards."""
    h = 1469598103934665603
    for b in doc_id.encode():
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h % shards


# Text for the duplicate-detection tests: words of a small vocabulary, copies with k words
# edited (1 of 60: Jaccard about 0.9, a near duplicate; 25: not one).
DUP_VOCAB = [f"w{i:03d}x" for i in range(600)]


def random_text(rnd, n=60):
    return " ".join(rnd.choice(DUP_VOCAB) for _ in range(n))


def edit_words(rnd, t, k):
    w = t.split()
    for j in rnd.sample(range(len(w)), k):
        w[j] = "zz" + w[j]
    return " ".join(w)


def other_shard_id(prefix, shard):
    """The first id prefix-0, prefix-1, ... that is not on shard `shard` (of 2)."""
    i = 0
    while fnv_shard(f"{prefix}-{i}") == shard:
        i += 1
    return f"{prefix}-{i}"


class Cluster:
    """A cluster started by tools/cluster_dev.sh in `tmp`; collection `t`, 2 shards."""

    def __init__(self, tmp, bin_, dev, seed=7):
        self.tmp, self.bin, self.dev = tmp, bin_, dev
        self.front = f"http://127.0.0.1:{int(os.environ['RAGCORE_CLUSTER_HTTP'])}"
        # the routers' bootstrap admin key (tools/cluster_dev.sh); ragcore ingest --cluster
        # reads it from RAGCORE_API_KEY
        self.key = open(f"{tmp}/admin.key").read().strip()
        os.environ["RAGCORE_API_KEY"] = self.key
        self.failures = 0
        self.acked = set()
        self.rnd = random.Random(seed)
        self.lock = threading.Lock()

    def check(self, cond, what):
        if not cond:
            self.failures += 1
            print("FAIL:", what, flush=True)
        return cond

    def call(self, method, path, body=None, timeout=10, key=None, front=None):
        """(status, JSON body) of a request with `key` (default: the admin key; "": none)."""
        data = json.dumps(body).encode() if body is not None else None
        key = self.key if key is None else key
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request((front or self.front) + path, data=data, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            raw = e.read() or b"{}"
            try:  # a proxy's error page (HAProxy while a router is down) is not JSON
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, {"error": raw[:200].decode("utf-8", "replace")}
        except Exception as e:  # connection refused, timeout
            return 0, {"error": str(e)}

    def router(self, i):
        """The URL of router i (1, 2, ...) itself, not through HAProxy."""
        return f"http://127.0.0.1:{int(open(f'{self.tmp}/run/router{i}.port').read())}"

    def make_doc(self, i):
        with self.lock:
            text = " ".join(self.rnd.choice(WORDS) for _ in range(60))
        return {"id": f"doc-{i:05d}", "text": text + ".", "metadata": {"n": i}}

    def create(self):
        st, r = self.call("POST", "/v1/collections",
                          {"name": "t", "shards": 2, "embedder": "hash", "dim": 32,
                           "index_spec": "Flat", "chunk_tokens": 24, "chunk_overlap": 4})
        self.check(st == 201, f"create collection: {st} {r}")

    def ingest(self, docs, request_id=None, timeout=30):
        body = {"documents": docs}
        if request_id:
            body["request_id"] = request_id
        st, r = self.call("POST", "/v1/collections/t/documents", body, timeout=timeout)
        if st == 200:
            with self.lock:
                self.acked.update(d["id"] for d in docs)
        return st, r

    def search(self, query, mode="hybrid", k=10, timeout=10):
        return self.call("POST", "/v1/collections/t/search",
                         {"query": query, "mode": mode, "k": k}, timeout=timeout)

    def pid(self, name):
        return int(open(f"{self.tmp}/pid/{name}").read())

    def respawn(self, name, env=None):
        subprocess.run([self.dev, "respawn", name, self.tmp], check=True,
                       env={**os.environ, **(env or {})})

    def wait_exit(self, name, timeout=30):
        """Waits until process `name` has exited; True when it has."""
        end = time.time() + timeout
        while time.time() < end:
            try:
                os.kill(self.pid(name), 0)
            except ProcessLookupError:
                return True
            time.sleep(0.1)
        return False

    def log_text(self, name):
        with open(f"{self.tmp}/log/{name}.log") as f:
            return f.read()

    def status(self):
        out = subprocess.run([f"{self.bin}/ragcore-server", "cluster", "status", "--config",
                              f"{self.tmp}/cluster.json", "--json"],
                             capture_output=True, text=True)
        try:
            return json.loads(out.stdout) if out.returncode == 0 else {}
        except ValueError:
            return {}

    def converged(self, label, replicas=(2, 2), timeout=60, coll="t", ids=None):
        """Every replica of every shard (replicas[s] of shard s) of collection `coll` at its
        log's end, with equal digests at that sequence and exactly the acknowledged documents
        of the shard (or those of `ids`, when given)."""
        with self.lock:
            ids = self.acked if ids is None else ids
            want = [sum(1 for i in ids if fnv_shard(i) == s) for s in range(2)]
        end = time.time() + timeout
        last = None
        t0 = time.time()
        while time.time() < end:
            shards = self.status().get("collections", {}).get(coll, {}).get("shards", [])
            ok = len(shards) == 2
            for sh in shards:
                reps = sh["replicas"]
                ok &= len(reps) == replicas[sh["shard"]] and not sh["diverged"]
                ok &= all(r["seq"] == sh["log_last"] and
                          r.get("digest", {}).get("seq") == r["seq"] for r in reps)
                ok &= len({r.get("digest", {}).get("hash") for r in reps}) == 1
                ok &= all(r.get("digest", {}).get("documents") == want[sh["shard"]]
                          for r in reps)
            last = shards
            if ok:
                print(f"{label}: converged in {time.time() - t0:.1f} s: shard logs at "
                      f"{[sh['log_last'] for sh in shards]}, documents {want}, "
                      f"{list(replicas)} replicas, digests equal", flush=True)
                return True
            time.sleep(0.5)
        self.check(False, f"{label}: not converged: want {want} documents, "
                          f"status {json.dumps(last)}")
        return False


class Load:
    """A sustained writer (batches of 5 new documents; a failed batch is sent again with the
    same request_id until acknowledged, so nothing is stored twice) and a query loop, in the
    background while a fault happens; counts failures and latency."""
    serial = 0

    def __init__(self, cluster, write=True):
        self.c = cluster
        self.stop = False
        self.q_err = self.q_ok = self.w_err = self.w_ok = 0
        self.lat = []
        self.by_replica = {}     # shard 1's answering replica -> latencies
        self.serial = Load.serial
        Load.serial += 1
        self.threads = [threading.Thread(target=self.query_loop)]
        if write:
            self.threads.append(threading.Thread(target=self.write_loop))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *a):
        self.stop = True
        for t in self.threads:
            t.join()

    def query_loop(self):
        while not self.stop:
            t0 = time.time()
            st, r = self.c.search(self.c.rnd.choice(QUERIES), timeout=5)
            self.lat.append(time.time() - t0)
            if st == 200:
                self.q_ok += 1
                rep = r.get("shards", {}).get("1", {}).get("replica", "?")
                self.by_replica.setdefault(rep, []).append(self.lat[-1])
            else:
                self.q_err += 1
            time.sleep(0.02)

    def write_loop(self):
        n = 0
        while not self.stop:
            docs = [self.c.make_doc(10000 + self.serial * 1000 + n * 5 + j) for j in range(5)]
            rid = f"load-{self.serial}-{n}"
            for _ in range(50):  # the client's retry: same request_id, no duplicates
                st, _ = self.c.ingest(docs, rid)
                if st == 200:
                    self.w_ok += 1
                    break
                self.w_err += 1
                time.sleep(0.2)
            else:
                self.c.check(False, f"batch {rid} never acknowledged")
            n += 1
            time.sleep(0.05)

    def report(self, label, per_replica=False):
        def pct(v):
            v = sorted(v) or [0]
            return (f"p50 {v[len(v) // 2] * 1000:.0f} ms p99 {v[int(len(v) * 0.99)] * 1000:.0f} "
                    f"ms max {v[-1] * 1000:.0f} ms")
        line = (f"{label}: queries ok {self.q_ok} failed {self.q_err}, latency {pct(self.lat)}; "
                f"write batches acknowledged {self.w_ok}, failed attempts {self.w_err}")
        if per_replica:
            line += "".join(f"\n  shard 1 answered by {k}: {len(v)} queries, {pct(v)}"
                            for k, v in sorted(self.by_replica.items()))
        print(line, flush=True)
        return line
