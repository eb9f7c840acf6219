#!/usr/bin/env python3
"""lexical_ab.py - BM25 query latency of two builds side by side: rounds of bench_lexical
(--title 0 --repeat 5, and --chunk-tokens 256 --repeat 3) and `ragcore eval --mode lexical`
on one ingested SciFact store (the 505 queries once, and the same queries ten times over
under new ids: the second pass on warm pages), each round running every build once in
turn, the first build of a round alternating. Prints one JSON line per run (with the
1-minute load average when it started), then per measurement and build the median and
range of cpu_ms_p50 / cpu_ms_p95 and the ratio of the medians (A over B), and checks
that nDCG@10 is the same for both builds.

usage: lexical_ab.py [--rounds N] [--data DIR] [--work DIR] A_BUILD B_BUILD
  A_BUILD, B_BUILD: build directories holding bin/bench_lexical and bin/ragcore
  (e.g. a build of the base commit, then this tree's build). The store is ingested once
  with A's ragcore (--embedder hash); both builds read it.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys


def run_json(cmd):
    load = os.getloadavg()[0]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr[-2000:]}")
    d = json.loads(p.stdout.strip().splitlines()[0])
    d["load1"] = round(load, 2)
    return d


def repeated_queries(data, work, times):
    """The queries and qrels of DIR `times` over, each copy under new query ids."""
    qs = [json.loads(l) for l in open(os.path.join(data, "queries.jsonl"))]
    rows = open(os.path.join(data, "qrels", "train.tsv")).read().splitlines()
    qpath, rpath = os.path.join(work, "queries_x.jsonl"), os.path.join(work, "qrels_x.tsv")
    with open(qpath, "w") as f:
        for r in range(times):
            for q in qs:
                f.write(json.dumps(dict(q, _id=f"{q['_id']}_{r}")) + "\n")
    with open(rpath, "w") as f:
        f.write(rows[0] + "\n")
        for r in range(times):
            for row in rows[1:]:
                p = row.split("\t")
                f.write("\t".join([f"{p[0]}_{r}"] + p[1:]) + "\n")
    return qpath, rpath


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--data", default="/work/shared/data/scifact-dev")
    ap.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                   "lexical_ab"))
    ap.add_argument("builds", nargs=2)
    a = ap.parse_args()
    names = ["A", "B"]
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    store = os.path.join(a.work, "store")
    ing = subprocess.run([os.path.join(a.builds[0], "bin", "ragcore"), "ingest", "--db", store,
                          "--embedder", "hash", "--quiet",
                          os.path.join(a.data, "corpus.jsonl.gz")], capture_output=True, text=True)
    if ing.returncode != 0:
        sys.exit(f"ingest failed: {ing.stderr[-2000:]}")
    qx, rx = repeated_queries(a.data, a.work, 10)
    q1, r1 = os.path.join(a.data, "queries.jsonl"), os.path.join(a.data, "qrels", "train.tsv")

    def cmds(build, name):
        bench = os.path.join(build, "bin", "bench_lexical")
        cli = os.path.join(build, "bin", "ragcore")
        st = os.path.join(a.work, f"bench_{name}")
        ev = [cli, "eval", "--db", store, "--mode", "lexical", "--json"]
        return {
            "bench_title0": [bench, "--data", a.data, "--store", st, "--title", "0",
                             "--repeat", "5"],
            "bench_chunk256": [bench, "--data", a.data, "--store", st, "--chunk-tokens", "256",
                               "--repeat", "3"],
            "eval_once": ev + ["--queries", q1, "--qrels", r1],
            "eval_x10": ev + ["--queries", qx, "--qrels", rx],
        }

    res = {}
    for rnd in range(a.rounds):
        order = [0, 1] if rnd % 2 == 0 else [1, 0]
        for what in cmds(a.builds[0], "A"):
            for i in order:
                d = run_json(cmds(a.builds[i], names[i])[what])
                rec = {"round": rnd, "build": names[i], "what": what, "load1": d["load1"],
                       "ndcg@10": round(d["ndcg@10"], 4), "cpu_ms_p50": d["cpu_ms_p50"],
                       "cpu_ms_p95": d["cpu_ms_p95"]}
                print(json.dumps(rec), flush=True)
                res.setdefault((what, names[i]), []).append(rec)
    ok = True
    for what in cmds(a.builds[0], "A"):
        ra, rb = res[(what, "A")], res[(what, "B")]
        line = {"what": what}
        for m in ("cpu_ms_p50", "cpu_ms_p95"):
            va, vb = [r[m] for r in ra], [r[m] for r in rb]
            line[m] = {"A_median": round(statistics.median(va), 3),
                       "A_range": [round(min(va), 3), round(max(va), 3)],
                       "B_median": round(statistics.median(vb), 3),
                       "B_range": [round(min(vb), 3), round(max(vb), 3)],
                       "A_over_B": round(statistics.median(va) / statistics.median(vb), 2)}
        nd = {r["ndcg@10"] for r in ra + rb}
        line["ndcg@10"] = sorted(nd)
        line["load1_median"] = round(statistics.median(r["load1"] for r in ra + rb), 2)
        ok &= len(nd) == 1
        print(json.dumps(line))
    shutil.rmtree(a.work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
