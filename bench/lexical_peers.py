#!/usr/bin/env python3
"""lexical_peers.py - bm25s on a BEIR set, scored as `ragcore eval` and bench_lexical score.

Runs in the bench virtual environment (created with --venv DIR when absent: bm25s,
PyStemmer, numpy, scipy). Indexes every document as title + " " + text with bm25s's
tokenizer (lowercase, `\\w\\w+` words, the 33 English stop words, PyStemmer's English
Snowball) and prints nDCG@10 / Recall@10 / Recall@100 / MRR@10 over the queries that have
a relevant document, for each --config (default: bm25s's own defaults, Lucene variant k1
1.5 b 0.75, and ragcore's k1 0.9 b 0.4).

--per-query FILE writes one line per query (id and nDCG@10 of each configuration) for a
paired comparison with `ragcore eval --per-query` (see --compare-with).

usage: bench/lexical_peers.py [--data DIR] [--venv DIR] [--config k1=1.5,b=0.75,method=lucene ...]
                              [--per-query FILE] [--compare-with RAGCORE_PER_QUERY_TSV]
"""
import argparse
import gzip
import json
import math
import os
import random
import sys

PKGS = ["bm25s", "PyStemmer", "numpy", "scipy"]


def load(data):
    docs = []
    with gzip.open(os.path.join(data, "corpus.jsonl.gz"), "rt", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            docs.append((d["_id"], (d.get("title") or "") + " " + d["text"]))
    queries = []
    with open(os.path.join(data, "queries.jsonl"), encoding="utf-8") as f:
        for line in f:
            q = json.loads(line)
            queries.append((q["_id"], q["text"]))
    qrels = {}
    with open(os.path.join(data, "qrels", "train.tsv"), encoding="utf-8") as f:
        next(f)
        for line in f:
            q, d, s = line.split()
            if int(s) > 0:
                qrels.setdefault(q, {})[d] = int(s)
    return docs, queries, qrels


def metrics(ranked, rel):
    """nDCG@10 (graded gains, as eval_metrics.c), Recall@10, Recall@100, MRR@10."""
    dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(rel.values(), reverse=True)
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal[:10]))
    r10 = sum(1 for d in ranked[:10] if d in rel) / len(rel)
    r100 = sum(1 for d in ranked[:100] if d in rel) / len(rel)
    mrr = next((1 / (i + 1) for i, d in enumerate(ranked[:10]) if d in rel), 0.0)
    return dcg / idcg if idcg else 0.0, r10, r100, mrr


def randomization_p(a, b, iters=10000, seed=1):
    diffs = [y - x for x, y in zip(a, b)]
    obs = abs(sum(diffs))
    rnd = random.Random(seed)
    hits = sum(1 for _ in range(iters)
               if abs(sum(d if rnd.random() < 0.5 else -d for d in diffs)) >= obs - 1e-12)
    return (hits + 1) / (iters + 1)


def inside(args):
    import bm25s
    import Stemmer

    docs, queries, qrels = load(args.data)
    queries = [(q, t) for q, t in queries if q in qrels]
    stemmer = Stemmer.Stemmer("english")
    ctok = bm25s.tokenize([t for _, t in docs], stopwords="en", stemmer=stemmer,
                          show_progress=False)
    qtok = bm25s.tokenize([t for _, t in queries], stopwords="en", stemmer=stemmer,
                          show_progress=False)
    per_query = {q: [] for q, _ in queries}
    names = []
    for cfg in args.config:
        kv = dict(x.split("=") for x in cfg.split(","))
        model = bm25s.BM25(k1=float(kv.get("k1", 1.5)), b=float(kv.get("b", 0.75)),
                           method=kv.get("method", "lucene"))
        model.index(ctok, show_progress=False)
        res, _ = model.retrieve(qtok, k=100, show_progress=False, n_threads=1)
        tot = [0.0] * 4
        for (qid, _), row in zip(queries, res):
            m = metrics([docs[int(i)][0] for i in row], qrels[qid])
            per_query[qid].append(m[0])
            tot = [t + x for t, x in zip(tot, m)]
        n = len(queries)
        names.append("bm25s " + cfg)
        print("bm25s %s (%s, %d docs, %d queries): nDCG@10 %.4f Recall@10 %.4f Recall@100 %.4f "
              "MRR@10 %.4f" % (bm25s.__version__, cfg, len(docs), n, tot[0] / n, tot[1] / n,
                               tot[2] / n, tot[3] / n))
    if args.per_query:
        with open(args.per_query, "w") as f:
            f.write("query\t" + "\t".join(names) + "\n")
            for q, v in per_query.items():
                f.write(q + "\t" + "\t".join("%.6f" % x for x in v) + "\n")
    if args.compare_with:
        theirs = {}
        with open(args.compare_with) as f:
            for line in f:
                p = line.split()
                if len(p) >= 2 and p[0] in per_query:
                    theirs[p[0]] = float(p[1])
        common = [q for q in per_query if q in theirs]
        for j, name in enumerate(names):
            a = [per_query[q][j] for q in common]
            b = [theirs[q] for q in common]
            wins = sum(1 for x, y in zip(a, b) if y > x + 1e-9)
            losses = sum(1 for x, y in zip(a, b) if y < x - 1e-9)
            print("ragcore (%s) vs %s over %d queries: %.4f vs %.4f, ragcore wins %d losses %d, "
                  "randomization p = %.4f" % (args.compare_with, name, len(common),
                                              sum(b) / len(b), sum(a) / len(a), wins, losses,
                                              randomization_p(a, b)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   "..", "..", "shared", "data", "scifact-dev"))
    ap.add_argument("--venv")
    ap.add_argument("--config", action="append")
    ap.add_argument("--per-query")
    ap.add_argument("--compare-with")
    args = ap.parse_args()
    if not args.config:
        args.config = ["k1=1.5,b=0.75,method=lucene", "k1=0.9,b=0.4,method=lucene"]
    if os.environ.get("RAGCORE_PEERS_INSIDE"):
        return inside(args)
    from embed_peers import rerun_in_venv
    return rerun_in_venv(args.venv, PKGS, "import bm25s, Stemmer", __file__)


if __name__ == "__main__":
    sys.exit(main() or 0)
