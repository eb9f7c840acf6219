#!/usr/bin/env python3
"""python_bench.py - the Python binding against the C library, and ragcore against chromadb,
side by side in one run (a benchmark, not a test; figures go to docs/performance.md and dated
runs to bench/JOURNAL.md).

  overhead  search: the same read-only store and queries (SciFact claims), k=10, through
            bench_search_loop (C, rag_search) and through ragcore.DB.search, rounds
            interleaved; ingest: the same corpus through `ragcore ingest` (C), DB.ingest(path)
            and DB.ingest(documents parsed in Python), fresh stores, interleaved, each path
            leading a round in turn. Embedder
            "hash", so that the embedding does not hide the binding's cost.
  chroma    ragcore vs chromadb, both in process, both embedding with all-MiniLM-L6-v2
            through ragcore's encoder (chromadb's own ONNX model is downloaded from outside
            PyPI at run time; an embedding function over ragcore.Embedder gives it the same
            model and the same encoder cost): ingest docs/s including embedding, query
            latency p50/p95 text in -> top-10 documents out, nDCG@10 on the 505 queries.
            --docs N: a subset of N documents, every document relevant to a query (365)
            and then the corpus's first others in its order, so that all 505 queries keep
            their relevant documents (the figures are then not the full corpus's).
            Threads: whatever RAGCORE_THREADS / OPENBLAS_NUM_THREADS say, for both sides
            (chromadb embeds through the same encoder; its own ONNX Runtime is not used).

usage: python_bench.py --build build --data /work/shared/data/scifact-dev [--parts overhead,chroma]
                       [--docs N]
Run chroma with a Python that has chromadb (bench venv) and PYTHONPATH=<build>/python.
"""
import argparse
import gzip
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def load(data):
    corpus = [json.loads(l) for l in gzip.open(os.path.join(data, "corpus.jsonl.gz"), "rt")]
    queries = {}
    for l in open(os.path.join(data, "queries.jsonl")):
        q = json.loads(l)
        queries[str(q["_id"])] = q["text"]
    qrels = {}
    with open(os.path.join(data, "qrels", "train.tsv")) as f:
        for line in f:
            p = line.split()
            if len(p) == 3 and p[2].isdigit() and int(p[2]) > 0:
                qrels.setdefault(p[0], {})[p[1]] = int(p[2])
    qids = [q for q in queries if q in qrels]
    return corpus, queries, qrels, qids


def subset(corpus, qrels, n):
    """The documents relevant to any query, then the corpus's first others, n in all (in
    corpus order)."""
    rel = set().union(*(set(r) for r in qrels.values()))
    keep, others = set(), 0
    for d in corpus:
        i = str(d["_id"])
        if i in rel:
            keep.add(i)
        elif others < n - len(rel):
            keep.add(i)
            others += 1
    return [d for d in corpus if str(d["_id"]) in keep]


def ndcg10(ranked, rel):
    dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(rel.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def timed(fn):
    t = time.perf_counter()
    r = fn()
    return time.perf_counter() - t, r


def timed_cpu(fn):
    """(wall s, CPU s of the whole process, fn's result)"""
    c, t = time.process_time(), time.perf_counter()
    r = fn()
    return time.perf_counter() - t, time.process_time() - c, r


def overhead(args, ragcore, corpus, queries, qids, out):
    tmp = tempfile.mkdtemp(prefix="pybench-")
    cli = os.path.join(args.build, "bin", "ragcore")
    loop = os.path.join(args.build, "bin", "bench_search_loop")
    path = os.path.join(args.data, "corpus.jsonl.gz")
    docs = [{"id": str(d["_id"]), "text": d["text"], "title": d.get("title")} for d in corpus]
    ing = {"c_cli": [], "py_path": [], "py_docs": []}
    kinds = list(ing)
    for r in range(args.rounds):
        for kind in kinds[r % 3:] + kinds[:r % 3]:   # each kind leads a round in turn
            store = os.path.join(tmp, f"{kind}{r}")
            if kind == "c_cli":
                t, _ = timed(lambda: subprocess.run(
                    [cli, "ingest", "--db", store, "--embedder", "hash", "--near-dup", "off",
                     path], check=True, capture_output=True))
            else:
                def run():
                    with ragcore.open(store, embedder="hash") as db:
                        db.ingest(path if kind == "py_path" else docs)
                t, _ = timed(run)
            ing[kind].append(t)
            print(f"  ingest {kind} round {r}: {t:.2f} s", file=sys.stderr)
    store = os.path.join(tmp, "c_cli0")
    qfile = os.path.join(tmp, "queries.txt")
    with open(qfile, "w") as f:
        for q in qids:
            f.write(queries[q].replace("\n", " ") + "\n")
    srch = {"c": [], "py": []}
    qtexts = [queries[q].replace("\n", " ") for q in qids]
    with ragcore.open(store, read_only=True) as db:
        for _ in qtexts[:50]:
            db.search(_, k=10)                      # warm the page cache
        for r in range(args.rounds):
            res = subprocess.run([loop, store, qfile, "10", "hybrid", str(args.passes)],
                                 check=True, capture_output=True, text=True)
            srch["c"].append(json.loads(res.stdout)["us_per_search"])
            t0 = time.perf_counter()
            for _ in range(args.passes):
                for q in qtexts:
                    db.search(q, k=10)
            srch["py"].append((time.perf_counter() - t0) * 1e6 / (args.passes * len(qtexts)))
            print(f"  search round {r}: C {srch['c'][-1]:.1f} us, Python {srch['py'][-1]:.1f} us",
                  file=sys.stderr)
        t0 = time.perf_counter()
        n = 200000
        for _ in range(n):
            ragcore._native.noop(db._h)
        noop_us = (time.perf_counter() - t0) * 1e6 / n
    shutil.rmtree(tmp, ignore_errors=True)
    c, py = statistics.median(srch["c"]), statistics.median(srch["py"])
    out["overhead"] = {
        "documents": len(docs), "queries": len(qtexts), "rounds": args.rounds,
        "ingest_s": {k: statistics.median(v) for k, v in ing.items()},
        "ingest_s_all": ing,
        "search_us": {"c": c, "python": py, "overhead_pct": 100 * (py - c) / c},
        "search_us_all": srch, "binding_call_us": noop_us}


def chroma_vs_ragcore(args, ragcore, corpus, queries, qrels, qids, out):
    import chromadb
    model = "all-MiniLM-L6-v2"
    tmp = tempfile.mkdtemp(prefix="pybench-chroma-")
    docs = [{"id": str(d["_id"]), "text": d["text"], "title": d.get("title")} for d in corpus]
    qtexts = [queries[q] for q in qids]
    res = {}
    if "ragcore" in args.sides:
        res["ragcore"] = ragcore_side(args, ragcore, model, tmp, docs, qids, qtexts, qrels)
    if "chromadb" in args.sides:
        res["chromadb"] = chroma_side(ragcore, chromadb, model, tmp, docs, qids, qtexts, qrels)
    shutil.rmtree(tmp, ignore_errors=True)
    out["chroma"] = res


def ragcore_side(args, ragcore, model, tmp, docs, qids, qtexts, qrels):
    with ragcore.open(os.path.join(tmp, "rc"), embedder=model) as db:
        t, cpu, _ = timed_cpu(lambda: db.ingest(docs))
        r = {"ingest_s": t, "ingest_cpu_s": cpu, "docs_per_s": len(docs) / t,
             "docs_per_cpu_s": len(docs) / cpu, "load1_after_ingest": os.getloadavg()[0]}
        for mode in ("hybrid", "dense"):
            lat, cpus, nd = [], [], []
            for qid, q in zip(qids, qtexts):
                t, cpu, hits = timed_cpu(lambda: db.search(q, k=10, mode=mode, per_doc=1))
                lat.append(t * 1000)
                cpus.append(cpu * 1000)
                nd.append(ndcg10([h.doc_id for h in hits], qrels[qid]))
            r[mode] = {"p50_ms": pct(lat, .5), "p95_ms": pct(lat, .95),
                       "cpu_p50_ms": pct(cpus, .5), "cpu_p95_ms": pct(cpus, .95),
                       "ndcg10": statistics.mean(nd)}
        r["chunks"] = db.stats("default")["chunks"]
    print(f"  ragcore: {r}", file=sys.stderr)
    return r


def chroma_side(ragcore, chromadb, model, tmp, docs, qids, qtexts, qrels):
    """chromadb with the same model through ragcore's encoder."""
    emb = ragcore.Embedder(model)

    class MiniLM(chromadb.EmbeddingFunction):
        def __init__(self):
            pass

        def __call__(self, input):
            return [row for row in emb.embed(list(input))]

        @staticmethod
        def name():
            return "ragcore-minilm"

    client = chromadb.PersistentClient(path=os.path.join(tmp, "chroma"))
    col = client.create_collection("scifact", embedding_function=MiniLM(),
                                   metadata={"hnsw:space": "cosine"})

    def add_all():
        b = 256
        for i in range(0, len(docs), b):
            part = docs[i:i + b]
            col.add(ids=[d["id"] for d in part],
                    documents=[((d["title"] or "") + "\n" + d["text"]).strip() for d in part])
    t, cpu, _ = timed_cpu(add_all)
    c = {"ingest_s": t, "ingest_cpu_s": cpu, "docs_per_s": len(docs) / t,
         "docs_per_cpu_s": len(docs) / cpu, "load1_after_ingest": os.getloadavg()[0]}
    lat, cpus, nd = [], [], []
    for qid, q in zip(qids, qtexts):
        t, cpu, r = timed_cpu(lambda: col.query(query_texts=[q], n_results=10))
        lat.append(t * 1000)
        cpus.append(cpu * 1000)
        nd.append(ndcg10(r["ids"][0], qrels[qid]))
    c["dense"] = {"p50_ms": pct(lat, .5), "p95_ms": pct(lat, .95), "cpu_p50_ms": pct(cpus, .5),
                  "cpu_p95_ms": pct(cpus, .95), "ndcg10": statistics.mean(nd)}
    c["version"] = chromadb.__version__
    print(f"  chromadb: {c}", file=sys.stderr)
    return c


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--data", default="/work/shared/data/scifact-dev")
    ap.add_argument("--parts", default="overhead,chroma")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--sides", default="ragcore,chromadb",
                    help="chroma: which of ragcore,chromadb to run (each alone: two processes "
                         "side by side)")
    ap.add_argument("--docs", type=int, default=0,
                    help="chroma: a subset of this many documents (0: the whole corpus)")
    ap.add_argument("--out", default=None, help="write the JSON result here too")
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(args.build, "python"))
    import ragcore
    corpus, queries, qrels, qids = load(args.data)
    out = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
           "python": platform.python_version(), "ragcore": ragcore.version()}
    parts = args.parts.split(",")
    if "overhead" in parts:
        overhead(args, ragcore, corpus, queries, qids, out)
    if "chroma" in parts:
        if args.docs:
            corpus = subset(corpus, qrels, args.docs)
        out["chroma_documents"] = len(corpus)
        out["threads"] = {k: os.environ.get(k) for k in ("RAGCORE_THREADS", "OPENBLAS_NUM_THREADS")}
        chroma_vs_ragcore(args, ragcore, corpus, queries, qrels, qids, out)
    js = json.dumps(out, indent=1)
    print(js)
    if args.out:
        with open(args.out, "w") as f:
            f.write(js)


if __name__ == "__main__":
    main()
