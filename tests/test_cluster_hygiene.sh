#!/usr/bin/env bash
# test_cluster_hygiene.sh - a collection's hygiene policy on the cluster's write path: a local
# cluster (tools/cluster_dev.sh, 2 shards x 2 replicas, loopback ports chosen per run). A
# collection created through the router with settings (pii mask, quality filter) shows them
# on GET; an upserted document with an email address and a phone number is stored masked
# (no file of any replica's store nor of the brokers' logs holds the raw values; a search
# returns the placeholders); a document the quality filter rejects is counted in the reply
# and its older version is gone from every replica; with the toxicity word list pulled, a
# toxic document is dropped and counted; under pii "hash" the same value sent through
# either router is stored as the same [TYPE:hex] (one key file for every router; a router
# without one refuses pii "hash" naming pii_key_file); an unknown dedup mode and unknown
# settings are refused naming the field; replicas converge to equal digests; `ragcore ingest
# --cluster` reports the policy's counts and sends no Authorization header without a key.
# Skipped (77) without nats-server or haproxy.
set -euo pipefail
src=${RAGCORE_SOURCE_DIR:?}
. "$src/tests/cluster_lib.sh"
cl_setup hygiene

cl_python <<'PY'
import http.server, json, os, re, subprocess, sys, threading, time
from cluster_lib import Cluster

tmp, bin_, dev = sys.argv[1:4]
c = Cluster(tmp, bin_, dev)
EMAIL, PHONE = "jane.doe@example.org", "415 555 0100"
base = {"shards": 2, "embedder": "hash", "dim": 32, "index_spec": "Flat",
        "chunk_tokens": 24, "chunk_overlap": 4}

# refused settings name what is wrong
for settings, word in (({"dedup": "sometimes"}, "sometimes"),
                       ({"pii": "shred"}, "shred"), ({"colour": "red"}, "colour"),
                       ({"min_chars": "ten"}, "min_chars")):
    st, r = c.call("POST", "/v1/collections", {"name": "bad", **base, "settings": settings})
    c.check(st == 400 and word in json.dumps(r), f"settings {settings} refused: {st} {r}")
st, r = c.call("GET", "/v1/collections/bad")
c.check(st == 404, f"no collection left by refused creations: {st} {r}")

settings = {"pii": "mask", "quality": "on", "min_chars": 20}
st, r = c.call("POST", "/v1/collections", {"name": "h", **base, "settings": settings})
c.check(st == 201, f"create h: {st} {r}")
st, r = c.call("GET", "/v1/collections/h")
s = r.get("settings", {})
c.check(st == 200 and s.get("pii") == "mask" and s.get("quality") == "on" and
        s.get("min_chars") == 20 and s.get("dedup") == "off", f"GET h shows its settings: {r}")

long_text = " ".join(["the replica applies the log in order"] * 4)
st, r = c.call("POST", "/v1/collections/h/documents",
               {"documents": [{"id": "short-1", "text": long_text}]})
c.check(st == 200 and r.get("documents") == 1, f"first version of short-1 stored: {st} {r}")
docs = [{"id": "pii-1", "title": "contact",
         "text": f"Write to {EMAIL} or call +1 {PHONE} about the replica lag."},
        {"id": "short-1", "text": "tiny"},
        {"id": "ok-1", "text": long_text + " and answers queries"}]
st, r = c.call("POST", "/v1/collections/h/documents", {"documents": docs})
summ = r.get("summary", {})
c.check(st == 200 and r.get("documents") == 2 and r.get("not_stored") == 1 and
        summ.get("filtered") == 1 and summ.get("filtered_too_short") == 1 and
        r.get("pii_documents") == 1 and r.get("pii_found", {}).get("EMAIL") == 1 and
        r.get("pii_found", {}).get("PHONE") == 1,
        f"upsert counts the filtered document and the findings: {st} {r}")

tox_ok = False
st, r = c.call("POST", "/v1/collections",
               {"name": "x", **base, "settings": {"toxicity": "drop",
                                                   "toxicity_detectors": "wordlist"}})
c.check(st == 201, f"create x: {st} {r}")
st, r = c.call("POST", "/v1/collections/x/documents",
               {"documents": [{"id": "tox-1", "text": "what a sh1t day, you b1tch"},
                              {"id": "fine-1", "text": "a calm day at the lake"}]})
if st == 503 and "toxicity" in json.dumps(r):
    print(f"SKIP (toxicity part): the word list is not pulled: {r}", flush=True)
else:
    tox_ok = True
    c.check(st == 200 and r.get("documents") == 1 and
            r.get("summary", {}).get("toxicity_dropped") == 1 and
            r.get("summary", {}).get("toxicity_dropped_wordlist") == 1,
            f"the toxic document is dropped and counted: {st} {r}")

# pii "hash": the same value hashes the same through either router (one key file)
r1, r2 = c.router(1), c.router(2)
st, r = c.call("POST", "/v1/collections", {"name": "ph", **base, "settings": {"pii": "hash"}},
               front=r1)
c.check(st == 201 and r.get("settings", {}).get("pii") == "hash", f"create ph: {st} {r}")
for i, front in ((1, r1), (2, r2)):
    st, r = c.call("POST", "/v1/collections/ph/documents",
                   {"documents": [{"id": f"ph-{i}", "text": f"router {i} mails {EMAIL} today"},
                                  {"id": f"ph-other-{i}", "text": f"router {i} mails x{i}@example.org"}]},
                   front=front)
    c.check(st == 200 and r.get("pii_found", {}).get("EMAIL") == 2,
            f"upsert under pii hash through router {i}: {st} {r}")
c.converged("ph: hashed", coll="ph", ids={"ph-1", "ph-2", "ph-other-1", "ph-other-2"})
st, r = c.call("POST", "/v1/collections/ph/search", {"query": "router mails today",
                                                      "mode": "lexical", "k": 10})
tags = {}
for h in r.get("hits", []):
    m = re.search(r"\[EMAIL:[0-9a-f]{12}\]", h.get("text", ""))
    tags[h.get("doc_id")] = m.group(0) if m else None
print(f"pii hash placeholders: {tags}", flush=True)
c.check(tags.get("ph-1") and tags.get("ph-1") == tags.get("ph-2"),
        f"the same address hashes the same through both routers: {tags}")
c.check(tags.get("ph-other-1") and tags.get("ph-other-1") != tags.get("ph-1") and
        tags.get("ph-other-1") != tags.get("ph-other-2"), f"other addresses differ: {tags}")
# a router without pii_key_file refuses pii "hash" naming it (a third router, its own file)
cfg = json.load(open(f"{tmp}/cluster.json"))
del cfg["pii_key_file"]
json.dump(cfg, open(f"{tmp}/nopii.json", "w"))
subprocess.run([dev, "spawn", "router3", tmp, f"{bin_}/ragcore-server", "cluster", "router",
                "--config", f"{tmp}/nopii.json", "--listen", "127.0.0.1:0", "--name", "router3",
                "--port-file", f"{tmp}/run/router3.port"], check=True)
for _ in range(300):
    if os.path.exists(f"{tmp}/run/router3.port"):
        break
    time.sleep(0.1)
r3 = c.router(3)
st, r = c.call("POST", "/v1/collections", {"name": "ph2", **base, "settings": {"pii": "hash"}},
               front=r3)
c.check(st == 400 and "pii_key_file" in json.dumps(r), f"no key file: create refused: {st} {r}")
st, r = c.call("PATCH", "/v1/collections/h", {"pii": "hash"}, front=r3)
c.check(st == 400 and "pii_key_file" in json.dumps(r), f"no key file: PATCH refused: {st} {r}")
st, r = c.call("POST", "/v1/collections/ph/documents",
               {"documents": [{"id": "ph-3", "text": f"mail {EMAIL}"}]}, front=r3)
c.check(st == 503 and "pii_key_file" in json.dumps(r), f"no key file: write refused: {st} {r}")

c.converged("h: masked and filtered", coll="h", ids={"pii-1", "ok-1"})
if tox_ok:
    c.converged("x: toxic dropped", coll="x", ids={"fine-1"})

# every replica: the masked text is served, the filtered document is gone
st, r = c.call("POST", "/v1/collections/h/search",
               {"query": "write call replica lag contact", "mode": "lexical", "k": 10})
texts = [h.get("text", "") for h in r.get("hits", []) if h.get("doc_id") == "pii-1"]
c.check(st == 200 and texts and all("[EMAIL]" in t or "[PHONE]" in t for t in texts) and
        not any(EMAIL in t or PHONE in t for t in texts),
        f"search returns the masked text: {st} {r}")
ids = {h.get("doc_id") for h in r.get("hits", [])}
c.check("short-1" not in ids, f"the filtered document is not found: {ids}")

# no file of any replica's store or of the brokers' logs holds the raw values
for value in (EMAIL, PHONE):
    out = subprocess.run(["grep", "-r", "-a", "-l", "-F", value, f"{tmp}/data", f"{tmp}/nats"],
                         capture_output=True, text=True)
    c.check(out.returncode == 1 and not out.stdout,
            f"raw '{value}' found in: {out.stdout.strip() or out.stderr.strip()}")
# ragcore ingest --cluster: the policy's counts come back; without a key no Authorization
# header is sent (a fake router records what it receives)
with open(f"{tmp}/bulk.jsonl", "w") as f:
    f.write(json.dumps({"_id": "bulk-1", "text": long_text + " in bulk"}) + "\n")
    f.write(json.dumps({"_id": "bulk-2", "text": "small"}) + "\n")
env = {k: v for k, v in os.environ.items() if k != "RAGCORE_API_KEY"}
cli = [f"{bin_}/ragcore", "ingest", "--cluster", c.front, "--collection", "h",
       f"{tmp}/bulk.jsonl"]
out = subprocess.run(cli + ["--key", c.key], capture_output=True, text=True, env=env)
c.check(out.returncode == 0 and "1 filtered" in out.stdout,
        f"ingest --cluster counts the filtered document: {out.returncode} {out.stdout} "
        f"{out.stderr}")
seen = []
class Fake(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # the collection exists
        self.do_POST()
    def do_POST(self):
        seen.append(self.headers.get("Authorization"))
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"name": "h", "documents": 2, "chunks": 2}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Fake)
threading.Thread(target=srv.serve_forever, daemon=True).start()
fake = f"http://127.0.0.1:{srv.server_address[1]}"
out = subprocess.run(cli[:3] + [fake] + cli[4:], capture_output=True, text=True, env=env)
c.check(out.returncode == 0 and seen == [None, None],
        f"keyless ingest --cluster sends no Authorization: {seen} {out.stderr}")
seen.clear()
out = subprocess.run(cli[:3] + [fake] + cli[4:] + ["--key", "k1"], capture_output=True,
                     text=True, env=env)
c.check(out.returncode == 0 and seen == ["Bearer k1"] * 2, f"--key is sent: {seen} {out.stderr}")
srv.shutdown()
print(f"{c.failures} failures", flush=True)
sys.exit(1 if c.failures else 0)
PY
