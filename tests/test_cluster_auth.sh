#!/usr/bin/env bash
# test_cluster_auth.sh - API keys on a cluster's routers: a local cluster (tools/cluster_dev.sh,
# 2 routers, loopback ports chosen per run) whose cluster file names a bootstrap admin key.
# /healthz answers without a key (HAProxy's checks); every other route answers 401 without a
# key or with a wrong one; a key created through router 1 (read-only, granted collection a)
# works on router 2 within the bound, cannot write (403) nor read collection b (403); a
# write key can upsert but not create a collection with settings (admin); keys are listed
# without secret nor hash and the brokers' files hold the key's SHA-256, never the secret;
# a key revoked through router 2 fails on both routers within the bound; the bootstrap key
# cannot be revoked; a replica's HTTP port serves no collection route; a router whose
# admin_key_file is missing or short refuses to start naming the file; a router whose
# key_request_rate is small answers a key 429 "rate_limited" with Retry-After once its
# budget is spent, serves another key, and counts the refusal in /metrics; two routers share
# a key's budget (key_rate_scope "cluster", the default) or keep their own ("router"), and
# a bad key_rate_scope stops a router naming the field; `ragcore cluster
# keys` creates, lists and revokes keys through a router and names the URL and the status
# (401, 403) or the unreachable router in its errors.
# Skipped (77) without nats-server or haproxy.
set -euo pipefail
src=${RAGCORE_SOURCE_DIR:?}
. "$src/tests/cluster_lib.sh"
cl_setup auth

cl_python <<'PY'
import hashlib, json, os, subprocess, sys, time, urllib.error, urllib.request
from cluster_lib import Cluster

tmp, bin_, dev = sys.argv[1:4]
BOUND_S = 5.0  # CLUSTER_KEYS_RELOAD_MS: a change reaches every router within this at most
c = Cluster(tmp, bin_, dev)
r1, r2 = c.router(1), c.router(2)

def wait_status(front, method, path, key, want, body=None):
    """Seconds until `path` answers `want` on `front` with `key`; None past 3 x BOUND_S."""
    t0 = time.time()
    while time.time() - t0 < 3 * BOUND_S:
        st, _ = c.call(method, path, body, key=key, front=front)
        if st == want:
            return time.time() - t0
        time.sleep(0.05)
    return None

# open routes and 401s
for front in (c.front, r1, r2):
    st, r = c.call("GET", "/healthz", key="", front=front)
    c.check(st == 200, f"/healthz without a key on {front}: {st} {r}")
for method, path in (("GET", "/v1/collections/a"), ("POST", "/v1/collections"),
                     ("GET", "/metrics"), ("GET", "/v1/keys"), ("GET", "/v1/cluster/status"),
                     ("POST", "/v1/collections/a/search")):
    st, r = c.call(method, path, {"name": "a"} if method == "POST" else None, key="")
    c.check(st == 401, f"{method} {path} without a key: {st} {r}")
    st, r = c.call(method, path, {"name": "a"} if method == "POST" else None,
                   key="rck_" + "0" * 48)
    c.check(st == 401 and "unknown or revoked" in json.dumps(r),
            f"{method} {path} with a wrong key: {st} {r}")

base = {"shards": 2, "embedder": "hash", "dim": 32, "index_spec": "Flat"}
for name in ("a", "b"):
    st, r = c.call("POST", "/v1/collections", dict(base, name=name), front=r1)
    c.check(st == 201, f"admin creates {name}: {st} {r}")

# a read key for collection a, created through router 1
st, rk = c.call("POST", "/v1/keys", {"name": "reader", "scopes": ["read"], "collections": ["a"]},
                front=r1)
c.check(st == 201 and rk.get("key", "").startswith("rck_") and "sha256" not in rk,
        f"create a read key: {st} {rk}")
reader, reader_id = rk.get("key", ""), rk.get("id", "")
st, r = c.call("POST", "/v1/keys", {"name": "bad", "scopes": ["read", "root"],
                                    "collections": ["a"]}, front=r1)
c.check(st == 400 and "scopes[1]" in json.dumps(r), f"a bad scope is named: {st} {r}")
st, r = c.call("POST", "/v1/keys", {"name": "bad", "scopes": ["read"],
                                    "collections": ["a.b"]}, front=r1)
c.check(st == 400 and "collections[0]" in json.dumps(r), f"a bad collection is named: {st} {r}")
t = wait_status(r2, "GET", "/v1/collections/a", reader, 200)
print(f"a key created on router 1 works on router 2 after {t} s", flush=True)
c.check(t is not None and t <= BOUND_S, f"router 2 knows the new key within {BOUND_S} s: {t}")
st, r = c.call("GET", "/v1/collections/a", key=reader, front=r1)
c.check(st == 200, f"reader reads a on router 1: {st} {r}")
# (replicas find a new collection within a second)
t = wait_status(c.front, "POST", "/v1/collections/a/search", reader, 200, {"query": "x", "k": 3})
c.check(t is not None, "reader searches a")
st, r = c.call("POST", "/v1/collections/a/documents",
               {"documents": [{"id": "d1", "text": "hello world"}]}, key=reader)
c.check(st == 403 and "'write'" in json.dumps(r), f"reader cannot write a: {st} {r}")
for front in (r1, r2):
    st, r = c.call("GET", "/v1/collections/b", key=reader, front=front)
    c.check(st == 403 and "collection 'b'" in json.dumps(r), f"reader cannot read b: {st} {r}")
st, r = c.call("GET", "/v1/keys", key=reader)
c.check(st == 403, f"reader cannot list keys: {st} {r}")

# a write key for a: upserts, but settings at creation need admin
st, wk = c.call("POST", "/v1/keys", {"name": "writer", "scopes": ["read", "write"],
                                     "collections": ["a", "c"]}, front=r2)
c.check(st == 201, f"create a write key: {st} {wk}")
writer = wk.get("key", "")
c.check(wait_status(r1, "GET", "/v1/collections/a", writer, 200) is not None,
        "router 1 knows the write key")
st, r = c.call("POST", "/v1/collections/a/documents",
               {"documents": [{"id": "d1", "text": "hello world"}]}, key=writer, front=r1)
c.check(st == 200, f"writer upserts into a: {st} {r}")
st, r = c.call("POST", "/v1/collections", dict(base, name="c", settings={"pii": "mask"}),
               key=writer, front=r1)
c.check(st == 403 and "'admin'" in json.dumps(r), f"settings at creation need admin: {st} {r}")
st, r = c.call("POST", "/v1/collections", dict(base, name="d"), key=writer, front=r1)
c.check(st == 403, f"writer cannot create an ungranted collection: {st} {r}")

# the list: no secret, no hash; the brokers' files: the hash, never the secret
st, r = c.call("GET", "/v1/keys", front=r2)
ids = {k["id"] for k in r.get("keys", [])}
c.check(st == 200 and {reader_id, wk.get("id")} <= ids and "sha256" not in json.dumps(r) and
        reader not in json.dumps(r), f"key list: {st} {r}")
digest = hashlib.sha256(reader.encode()).hexdigest()
blob = b""
for root, _, files in os.walk(f"{tmp}/nats"):
    for f in files:
        with open(os.path.join(root, f), "rb") as fh:
            blob += fh.read()
c.check(reader.encode() not in blob and writer.encode() not in blob,
        "no broker file holds a key's secret")
c.check(digest.encode() in blob, "the brokers' files hold the key's SHA-256")

# revoke through router 2: both routers refuse it within the bound
st, r = c.call("DELETE", f"/v1/keys/{reader_id}", front=r2)
c.check(st == 200 and r.get("revoked") is True, f"revoke: {st} {r}")
for name, front in (("router 2", r2), ("router 1", r1)):
    t = wait_status(front, "GET", "/v1/collections/a", reader, 401)
    print(f"the revoked key fails on {name} after {t} s", flush=True)
    c.check(t is not None and t <= BOUND_S, f"{name} refuses the revoked key within "
            f"{BOUND_S} s: {t}")
st, r = c.call("DELETE", "/v1/keys/000000000000", front=r1)
c.check(st == 404, f"revoke an unknown key: {st} {r}")
for front in (r1, r2):
    st, r = c.call("DELETE", "/v1/keys/bootstrap", front=front)
    c.check(st == 400 and "admin_key_file" in json.dumps(r),
            f"the bootstrap key cannot be revoked: {st} {r}")
    st, r = c.call("GET", "/v1/collections/a", front=front)
    c.check(st == 200, f"the bootstrap key still works: {st} {r}")

# a replica's HTTP port: health, metrics and status only
port = int(open(f"{tmp}/run/r0a.port").read())
rep = f"http://127.0.0.1:{port}"
st, r = c.call("POST", "/v1/collections/a/search", {"query": "x"}, key="", front=rep)
c.check(st == 404, f"a replica serves no collection route: {st} {r}")
st, r = c.call("GET", "/v1/collections/a", key="", front=rep)
c.check(st == 404, f"a replica serves no collection metadata: {st} {r}")

# ragcore cluster keys: create, list and revoke through a router; clear errors
def cli(*args, key=None):
    out = subprocess.run([f"{bin_}/ragcore", "cluster", "keys", *args, "--key",
                          c.key if key is None else key], capture_output=True, text=True,
                         timeout=60)
    return out.returncode, out.stdout, out.stderr
rc, out, err = cli("--router", r1, "create", "cli-made", "--scopes", "read", "--collections", "a")
made = json.loads(out) if rc == 0 else {}
c.check(rc == 0 and made.get("key", "").startswith("rck_") and made.get("name") == "cli-made",
        f"ragcore cluster keys create: {rc} {out} {err}")
rc, out, err = cli("--router", r2, "list")
c.check(rc == 0 and made.get("id") in {k["id"] for k in json.loads(out or "{}").get("keys", [])},
        f"ragcore cluster keys list shows the new key: {rc} {out} {err}")
c.check(wait_status(r2, "GET", "/v1/collections/a", made.get("key", ""), 200) is not None,
        "the key made by the command works on router 2")
rc, out, err = cli("--router", r2, "revoke", made.get("id", ""))
c.check(rc == 0 and json.loads(out or "{}").get("revoked") is True,
        f"ragcore cluster keys revoke: {rc} {out} {err}")
rc, out, err = cli("--router", r1, "list", key="rck_" + "0" * 48)
c.check(rc == 2 and f"{r1}/v1/keys" in err and "401" in err and "unknown or revoked" in err,
        f"a wrong key: 401 naming the URL: {rc} {err}")
rc, out, err = cli("--router", r1, "list", key=writer)
c.check(rc == 2 and f"{r1}/v1/keys" in err and "403" in err and "not an admin key" in err,
        f"a key without admin: 403 naming the URL: {rc} {err}")
rc, out, err = cli("--router", "http://127.0.0.1:1", "list")
c.check(rc == 2 and "http://127.0.0.1:1/v1/keys" in err,
        f"an unreachable router is named: {rc} {err}")
rc, out, err = cli("list")
c.check(rc == 1 and "--router URL is required" in err, f"no --router: {rc} {err}")

# a router whose key_request_rate is 3: the write key gets 429 with Retry-After after its
# budget (3 requests, the bucket holding one second's worth, plus what refills meanwhile);
# another key (the admin) is unaffected; /metrics counts the refusals
cfg = json.load(open(f"{tmp}/cluster.json"))
json.dump(dict(cfg, key_request_rate=3), open(f"{tmp}/rated.json", "w"))
rated = subprocess.Popen([f"{bin_}/ragcore-server", "cluster", "router", "--config",
                          f"{tmp}/rated.json", "--listen", "127.0.0.1:0", "--name", "rated",
                          "--port-file", f"{tmp}/run/rated.port"],
                         stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/log/rated.log", "w"))
try:
    t0 = time.time()
    while not os.path.exists(f"{tmp}/run/rated.port") and time.time() - t0 < 30:
        time.sleep(0.05)
    r3 = f"http://127.0.0.1:{int(open(f'{tmp}/run/rated.port').read())}"
    codes, refusal = [], None
    t0 = time.time()
    while len(codes) < 40:
        req = urllib.request.Request(r3 + "/v1/collections/a",
                                     headers={"Authorization": f"Bearer {writer}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                codes.append(resp.status)
        except urllib.error.HTTPError as e:
            codes.append(e.code)
            refusal = (e.headers.get("Retry-After"), json.loads(e.read() or b"{}"))
            break
    elapsed = time.time() - t0
    print(f"rated router: {codes} in {elapsed:.3f} s; refusal {refusal}", flush=True)
    c.check(codes[:3] == [200, 200, 200], f"the first 3 requests pass: {codes}")
    c.check(codes[-1] == 429 and codes.count(200) <= 3 + 3 * elapsed + 1,
            f"429 once the budget of 3 a second is spent: {codes} in {elapsed:.3f} s")
    err = (refusal or (None, {}))[1].get("error", {})
    c.check(refusal is not None and refusal[0] is not None and int(refusal[0]) >= 1 and
            err.get("code") == "rate_limited" and f"'{wk.get('id')}'" in err.get("message", "")
            and "3 requests a second" in err.get("message", ""),
            f"the 429 names the key and its budget, with Retry-After: {refusal}")
    st, r = c.call("GET", "/v1/collections/a", front=r3)
    c.check(st == 200, f"another key is unaffected: {st} {r}")
    st, r = c.call("GET", "/v1/collections/a", key=writer, front=r1)
    c.check(st == 200, f"a router with a larger key_request_rate still serves the key: {st} "
            f"{r}")
    req = urllib.request.Request(r3 + "/metrics",
                                 headers={"Authorization": f"Bearer {c.key}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
    c.check('ragcore_rate_limited_total{budget="requests"} 1' in text,
            "the router's /metrics counts the refusal")
finally:
    rated.terminate()
    rated.wait(timeout=60)

# Two routers with key_request_rate 5 and the default key_rate_scope "cluster": a key's
# requests sent to both in turn for 4 s get about 5 a second in all (each router's bucket
# starts full, so up to 5 + 5 at once, then what refills: 5 x 4), not 5 a second on each
# (2 x (5 + 5 x 4) = 50); with key_rate_scope "router" they get about that.
st, sk = c.call("POST", "/v1/keys", {"name": "shared", "scopes": ["read"], "collections": ["a"]},
                front=r1)
c.check(st == 201, f"a key for the shared budget: {st} {sk}")
shared_key = sk.get("key", "")
wait_status(r2, "GET", "/v1/collections/a", shared_key, 200)  # known on the routers' bucket

def rated_pair(scope):
    """Two routers at 5 requests a second in key_rate_scope `scope`: (200s, 429s, seconds)
    of shared_key's requests sent to them in turn as fast as they answer for 4 s."""
    json.dump(dict(cfg, key_request_rate=5, key_rate_scope=scope),
              open(f"{tmp}/rated-{scope}.json", "w"))
    procs, fronts = [], []
    try:
        for i in (1, 2):
            name = f"rated-{scope}-{i}"
            procs.append(subprocess.Popen(
                [f"{bin_}/ragcore-server", "cluster", "router", "--config",
                 f"{tmp}/rated-{scope}.json", "--listen", "127.0.0.1:0", "--name", name,
                 "--port-file", f"{tmp}/run/{name}.port"], stdout=subprocess.DEVNULL,
                stderr=open(f"{tmp}/log/{name}.log", "w")))
        for i in (1, 2):
            pf = f"{tmp}/run/rated-{scope}-{i}.port"
            t0 = time.time()
            while not os.path.exists(pf) and time.time() - t0 < 30:
                time.sleep(0.05)
            fronts.append(f"http://127.0.0.1:{int(open(pf).read())}")
        for front in fronts:  # the key is loaded on both before the clock starts
            c.check(wait_status(front, "GET", "/healthz", "", 200) is not None,
                    f"{front} is up")
        time.sleep(1.2)  # both buckets full again
        ok = refused = 0
        t0 = time.time()
        while time.time() - t0 < 4.0:
            st, _ = c.call("GET", "/v1/collections/a", key=shared_key,
                           front=fronts[(ok + refused) % 2])
            ok += st == 200
            refused += st == 429
        return ok, refused, time.time() - t0
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=60)

ok, refused, secs = rated_pair("cluster")
print(f"two routers at 5/s, key_rate_scope cluster: {ok} passed, {refused} refused in "
      f"{secs:.2f} s", flush=True)
c.check(refused > 0 and 5 * secs * 0.6 <= ok <= 5 + 5 + 5 * secs + 4,
        f"the routers share the key's budget: {ok} passed in {secs:.2f} s (at most "
        f"{10 + 5 * secs + 4:.0f})")
ok_r, refused_r, secs_r = rated_pair("router")
print(f"two routers at 5/s, key_rate_scope router: {ok_r} passed, {refused_r} refused in "
      f"{secs_r:.2f} s", flush=True)
c.check(ok_r > 10 + 5 * secs_r + 4,
        f"with key_rate_scope router each router has its own budget: {ok_r} passed in "
        f"{secs_r:.2f} s")
json.dump(dict(cfg, key_rate_scope="everywhere"), open(f"{tmp}/badscope.json", "w"))
p = subprocess.run([f"{bin_}/ragcore-server", "cluster", "router", "--config",
                    f"{tmp}/badscope.json", "--listen", "127.0.0.1:0"], capture_output=True,
                   text=True, timeout=60)
c.check(p.returncode != 0 and '"key_rate_scope" must be "cluster" or "router", got '
        '"everywhere"' in p.stderr, f"a bad key_rate_scope is refused: {p.returncode} "
        f"{p.stderr[-400:]}")
# a misspelt setting is refused, naming it, instead of silently keeping its default
json.dump(dict(cfg, key_request_rat=5), open(f"{tmp}/misspelt.json", "w"))
p = subprocess.run([f"{bin_}/ragcore-server", "cluster", "router", "--config",
                    f"{tmp}/misspelt.json", "--listen", "127.0.0.1:0"], capture_output=True,
                   text=True, timeout=60)
c.check(p.returncode != 0 and 'unknown setting "key_request_rat"' in p.stderr,
        f"an unknown cluster setting is refused: {p.returncode} {p.stderr[-400:]}")

# a router with a missing or short admin key file does not start
for label, content in (("missing", None), ("short", "abc\n")):
    path = f"{tmp}/bad-{label}.key"
    if content is not None:
        open(path, "w").write(content)
    cfg["admin_key_file"] = path
    json.dump(cfg, open(f"{tmp}/bad.json", "w"))
    out = subprocess.run([f"{bin_}/ragcore-server", "cluster", "router", "--config",
                          f"{tmp}/bad.json", "--listen", "127.0.0.1:0"],
                         capture_output=True, text=True, timeout=60)
    c.check(out.returncode == 1 and path in out.stderr,
            f"a {label} admin_key_file is refused naming it: {out.returncode} {out.stderr}")
print(f"{c.failures} failures", flush=True)
sys.exit(1 if c.failures else 0)
PY
