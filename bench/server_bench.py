#!/usr/bin/env python3
"""server_bench.py - data and measurements for bench_server.sh (standard library only,
except `recall`/`chroma-*`, which need numpy / chromadb from the Chroma virtualenv).

  gen DIR N              synthetic corpus: DIR/batches/NNN.json (2,000 docs each) + queries.txt
  gen-scifact DIR N DATA real text: up to N chunks cut from the SciFact abstracts in DATA
                         (each sentence, each window of 2 and of 3 adjacent sentences, each title),
                         queries.txt from DATA/queries.jsonl
  bodies DIR URL KEY     query bodies: DIR/text_bodies.jsonl, DIR/vec_bodies.jsonl (vectors
                         from the server's /v1/embeddings) and DIR/queries.f32, then b64bodies
  b64bodies DIR          DIR/vec-b64_bodies.jsonl: the vectors of DIR/queries.f32 as base64
                         float32 strings (the server's other "vector" encoding)
  docvecs DIR URL KEY    document vectors from /v1/embeddings -> DIR/docs.f32 (+ ids)
  recall DIR URL KEY     recall@10 of ragcore's vector search against exact search, raw and
                         adjusted (exact-text duplicates one slot; documents stored as
                         several chunks left out, listed in DIR/split_docs.txt)
  chroma-load DIR URL    loads the same vectors into a Chroma server, writes chroma bodies
  chroma-recall DIR URL  recall@10 of Chroma against exact search (same adjustment)
"""
import base64, json, os, random, struct, sys, time, urllib.parse, urllib.request

K = 10


def post(url, body, key=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", "Bearer " + key)
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def gen(d, n):
    rnd = random.Random(42)
    vocab = ["w%x" % rnd.getrandbits(24) for _ in range(20000)]
    cum, total = [], 0.0
    for i in range(len(vocab)):  # Zipf-like word frequencies
        total += 1.0 / (i + 1) ** 1.1
        cum.append(total)
    os.makedirs(os.path.join(d, "batches"), exist_ok=True)
    batch, b = [], 0
    for i in range(n):
        words = rnd.choices(vocab, cum_weights=cum, k=rnd.randint(25, 60))
        batch.append({"id": "doc-%06d" % i, "text": " ".join(words) + ".", "source": "bench/%03d" % (i % 1000)})
        if len(batch) == 2000 or i == n - 1:
            with open(os.path.join(d, "batches", "%03d.json" % b), "w") as f:
                json.dump({"documents": batch}, f)
            batch, b = [], b + 1
    with open(os.path.join(d, "queries.txt"), "w") as f:
        for _ in range(500):
            f.write(" ".join(rnd.choices(vocab, cum_weights=cum, k=rnd.randint(3, 8))) + "\n")


def write_batches(d, docs):
    os.makedirs(os.path.join(d, "batches"), exist_ok=True)
    for b in range(0, len(docs), 2000):
        with open(os.path.join(d, "batches", "%03d.json" % (b // 2000)), "w") as f:
            json.dump({"documents": docs[b:b + 2000]}, f)


def gen_scifact(d, n, data):
    """Chunks a RAG pipeline with overlapping windows would store: every sentence of every
    abstract, every window of 2 and of 3 adjacent sentences and every title, each of at most
    450 characters, shuffled (seed 42), the first n kept; one document per chunk so that
    each is searched as ingested."""
    import gzip, re
    chunks = []
    with gzip.open(os.path.join(data, "corpus.jsonl.gz"), "rt") as f:
        for line in f:
            doc = json.loads(line)
            sents = [x for x in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9(])", doc["text"]) if len(x.split()) >= 3]
            src = "scifact/%s" % doc["_id"]
            if doc.get("title"):
                chunks.append((src + "#t", doc["title"], src))
            for i in range(len(sents)):
                for w in (1, 2, 3):  # at most 450 characters, so that each stays one chunk
                    text = " ".join(sents[i:i + w])
                    if i + w <= len(sents) and len(text) <= 450:
                        chunks.append((src + "#w%d-%d" % (w, i), text, src))
    random.Random(42).shuffle(chunks)
    write_batches(d, [{"id": i, "text": t, "source": s} for i, t, s in chunks[:n]])
    with open(os.path.join(d, "queries.txt"), "w") as f:
        for line in list(open(os.path.join(data, "queries.jsonl")))[:500]:
            f.write(json.loads(line)["text"].replace("\n", " ") + "\n")


def embed(url, key, texts, input_type):
    out = []
    for i in range(0, len(texts), 500):
        r = post(url + "/v1/embeddings", {"input": texts[i:i + 500], "encoding_format": "base64",
                                           "input_type": input_type}, key)
        out += [base64.b64decode(e["embedding"]) for e in r["data"]]
    return out


def bodies(d, url, key):
    qs = [l.strip() for l in open(os.path.join(d, "queries.txt")) if l.strip()]
    vecs = embed(url, key, qs, "query")
    with open(os.path.join(d, "queries.f32"), "wb") as f:
        f.write(b"".join(vecs))
    with open(os.path.join(d, "text_bodies.jsonl"), "w") as f:
        for q in qs:
            f.write(json.dumps({"query": q, "k": K}) + "\n")
    with open(os.path.join(d, "vec_bodies.jsonl"), "w") as f:
        for v in vecs:
            fl = struct.unpack("<%df" % (len(v) // 4), v)
            # plain top-k, as Chroma answers: no collapsing of near-identical chunks
            f.write(json.dumps({"vector": [round(x, 6) for x in fl], "k": K,
                                "collapse_threshold": 2}) + "\n")
    b64bodies(d)


def b64bodies(d):
    dim = len(json.loads(open(os.path.join(d, "vec_bodies.jsonl")).readline())["vector"])
    raw = open(os.path.join(d, "queries.f32"), "rb").read()
    with open(os.path.join(d, "vec-b64_bodies.jsonl"), "w") as f:
        for i in range(0, len(raw), 4 * dim):
            v = base64.b64encode(raw[i:i + 4 * dim]).decode()
            f.write(json.dumps({"vector": v, "k": K, "collapse_threshold": 2}) + "\n")


def docvecs(d, url, key):
    ids, blobs = [], []
    for name in sorted(os.listdir(os.path.join(d, "batches"))):
        docs = json.load(open(os.path.join(d, "batches", name)))["documents"]
        ids += [x["id"] for x in docs]
        blobs += embed(url, key, [x["text"] for x in docs], "document")
    with open(os.path.join(d, "docs.f32"), "wb") as f:
        f.write(b"".join(blobs))
    with open(os.path.join(d, "docs.ids"), "w") as f:
        f.write("\n".join(ids) + "\n")


def exact(d, nq=200):
    """Query vectors and each query's exact top-K document ids (as a list, best first)."""
    import numpy as np
    dim = len(json.loads(open(os.path.join(d, "vec_bodies.jsonl")).readline())["vector"])
    X = np.fromfile(os.path.join(d, "docs.f32"), dtype="<f4").reshape(-1, dim)
    Q = np.fromfile(os.path.join(d, "queries.f32"), dtype="<f4").reshape(-1, dim)[:nq]
    ids = open(os.path.join(d, "docs.ids")).read().split()
    S = Q @ X.T
    top = np.argsort(-S, axis=1)[:, :K]
    return Q, [[ids[j] for j in row] for row in top]


def text_groups(d):
    """Document id -> a key shared by documents of the same normalised text (the server
    returns one of a set of exact duplicates)."""
    key = {}
    for name in sorted(os.listdir(os.path.join(d, "batches"))):
        for x in json.load(open(os.path.join(d, "batches", name)))["documents"]:
            key[x["id"]] = " ".join(x["text"].lower().split())
    return key


def recall_pair(d, truth, results):
    """(raw, adjusted) recall@K. Adjusted: exact-text duplicates in a truth list count as
    one slot, found when any of them is returned; documents the server stored as more
    than one chunk (listed in DIR/split_docs.txt) are left out of the truth, since the
    reference vector (the whole text) is not a vector the index holds."""
    groups = text_groups(d)
    split_path = os.path.join(d, "split_docs.txt")
    split = set(open(split_path).read().split()) if os.path.exists(split_path) else set()
    raw = adj_hit = adj_n = 0
    for t, got in zip(truth, results):
        raw += len(set(t) & set(got))
        slots = {}
        for doc in t:
            if doc not in split:
                slots.setdefault(groups[doc], False)
        for doc in got:
            if doc in groups and groups[doc] in slots:
                slots[groups[doc]] = True
        adj_n += len(slots)
        adj_hit += sum(slots.values())
    return raw / (K * len(truth)), adj_hit / adj_n if adj_n else 0.0


def recall(d, url, key):
    Q, truth = exact(d)
    results = []
    for q in Q:
        r = post(url + "/v1/collections/bench/search",
                 {"vector": [float(x) for x in q], "k": K, "collapse_threshold": 2}, key)
        results.append([h["doc_id"] for h in r["results"]])
    split = []
    for doc in sorted(set(x for t in truth for x in t)):  # which truth documents are split
        req = urllib.request.Request(url + "/v1/collections/bench/documents/" +
                                     urllib.parse.quote(doc, safe=""))
        req.add_header("Authorization", "Bearer " + key)
        with urllib.request.urlopen(req, timeout=60) as f:
            if len(json.loads(f.read()).get("chunks", [])) > 1:
                split.append(doc)
    with open(os.path.join(d, "split_docs.txt"), "w") as f:
        f.write("".join(x + "\n" for x in split))
    raw, adj = recall_pair(d, truth, results)
    print(json.dumps({"recall_at_10": raw, "recall_adjusted": adj, "queries": len(truth),
                      "split_truth_docs": len(split)}))


def chroma_client(url):
    import chromadb
    host, port = url.split("//")[1].split(":")
    return chromadb.HttpClient(host=host, port=int(port))


def chroma_load(d, url):
    import numpy as np
    c = chroma_client(url)
    dim = len(json.loads(open(os.path.join(d, "vec_bodies.jsonl")).readline())["vector"])
    X = np.fromfile(os.path.join(d, "docs.f32"), dtype="<f4").reshape(-1, dim)
    ids = open(os.path.join(d, "docs.ids")).read().split()
    coll = c.get_or_create_collection("bench", metadata={"hnsw:space": "cosine"}, embedding_function=None)
    texts = {}
    for name in sorted(os.listdir(os.path.join(d, "batches"))):
        for x in json.load(open(os.path.join(d, "batches", name)))["documents"]:
            texts[x["id"]] = x["text"]
    t0 = time.time()
    for i in range(0, len(ids), 2000):
        coll.add(ids=ids[i:i + 2000], embeddings=X[i:i + 2000].tolist(),
                 documents=[texts[j] for j in ids[i:i + 2000]])
    print(json.dumps({"chroma_load_seconds": round(time.time() - t0, 1), "count": coll.count()}))
    # request bodies for Chroma's REST query endpoint (same vectors, same k)
    with open(os.path.join(d, "chroma_bodies.jsonl"), "w") as f:
        for line in open(os.path.join(d, "vec_bodies.jsonl")):
            v = json.loads(line)["vector"]
            f.write(json.dumps({"query_embeddings": [v], "n_results": K,
                                "include": ["documents", "distances", "metadatas"]}) + "\n")
    with open(os.path.join(d, "chroma_collection_id"), "w") as f:
        f.write(str(coll.id))


def chroma_recall(d, url):
    Q, truth = exact(d)
    coll = chroma_client(url).get_collection("bench")
    results = [coll.query(query_embeddings=[q.tolist()], n_results=K)["ids"][0] for q in Q]
    raw, adj = recall_pair(d, truth, results)
    print(json.dumps({"recall_at_10": raw, "recall_adjusted": adj, "queries": len(truth)}))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"gen": lambda: gen(args[0], int(args[1])), "bodies": lambda: bodies(*args),
     "b64bodies": lambda: b64bodies(*args),
     "gen-scifact": lambda: gen_scifact(args[0], int(args[1]), args[2]),
     "docvecs": lambda: docvecs(*args), "recall": lambda: recall(*args),
     "chroma-load": lambda: chroma_load(*args), "chroma-recall": lambda: chroma_recall(*args)}[cmd]()
