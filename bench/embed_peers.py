#!/usr/bin/env python3
"""embed_peers.py - CPU peers for bench_embed: ONNX Runtime and sentence-transformers (PyTorch).

Runs in a bench virtual environment (created with --venv DIR when absent: torch,
transformers, sentence-transformers, onnx, onnxruntime). Embeds the same texts as
bench_embed (the first --docs SciFact documents, "title. text", truncated at the model's
max_seq_length) at each thread count and prints tokens/s and chunks/s.

ONNX Runtime gets the model exported once with torch.onnx.export (the file fastembed would
download, produced locally), length-sorted batches of --batch texts, graph optimisations
on, intra-op threads = the thread count. sentence-transformers runs model.encode with the
same batch size (it sorts by length itself).

ONNX Runtime int8 is the same export through onnxruntime.quantization.quantize_dynamic
(int8 weights per output channel, activations u8 per tensor at run time: what
`optimum`'s dynamic AVX2/AVX-512 configurations produce).

usage: bench/embed_peers.py --model-dir DIR [--data DIR] [--docs N] [--threads 1,2]
                            [--batch 32] [--venv DIR]
                            [--paired BENCH_EMBED [--rounds 5] [--chunk 32]]
                            [--paired-queries BENCH_EMBED [--rounds 1]]

--paired runs ragcore fp32 and int8 (two bench_embed --serve processes) and ONNX Runtime
fp32 and int8 in turn on chunks of the same documents, which keeps the ratios steady on a
host whose speed drifts. --paired-queries encodes every query of DIR/queries.jsonl alone
on one thread with the same four engines in turn (ragcore through bench_embed
--serve-queries; ONNX Runtime timed from the text: tokenizer, run, pooling) and prints
each engine's latency percentiles.
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

PKGS = ["torch", "transformers", "sentence-transformers", "onnx", "onnxruntime"]


def load_texts(data, n):
    out = []
    with gzip.open(os.path.join(data, "corpus.jsonl.gz"), "rt", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            t = d.get("title") or ""
            out.append((t + ". " if t else "") + d["text"])
            if len(out) >= n:
                break
    return out


def ort_batches(sess, tok, texts, order, batch, maxlen, pooling_cls, np):
    """Embeds texts[i] for i in `order` with ONNX Runtime in batches of `batch` (padded to
    the batch's longest, pooled as the model says, L2-normalised); yields (indices,
    vectors) per batch."""
    for b in range(0, len(order), batch):
        idx = order[b:b + batch]
        x = tok([texts[i] for i in idx], truncation=True, max_length=maxlen,
                padding=True, return_tensors="np")
        h = sess.run(None, {"input_ids": x["input_ids"].astype(np.int64),
                            "attention_mask": x["attention_mask"].astype(np.int64),
                            "token_type_ids": x["token_type_ids"].astype(np.int64)})[0]
        if pooling_cls:
            v = h[:, 0]
        else:
            m = x["attention_mask"][..., None].astype(np.float32)
            v = (h * m).sum(1) / m.sum(1)
        yield idx, v / np.linalg.norm(v, axis=1, keepdims=True)


def inside(args):
    import numpy as np
    import torch
    from transformers import AutoTokenizer, AutoModel
    from sentence_transformers import SentenceTransformer
    import onnxruntime as ort

    texts = load_texts(args.data, args.docs)
    st = SentenceTransformer(args.model_dir, device="cpu")
    maxlen = st.max_seq_length
    tok = AutoTokenizer.from_pretrained(args.model_dir)
    enc = tok(texts, truncation=True, max_length=maxlen)
    ntok = sum(len(x) for x in enc["input_ids"])
    print("peers: %d texts, %d tokens, max_seq_length %d" % (len(texts), ntok, maxlen))

    onnx_path = os.path.join(tempfile.gettempdir(), "ragcore-bench-%s.onnx" %
                             os.path.basename(os.path.normpath(args.model_dir)))
    if not os.path.exists(onnx_path):
        base = AutoModel.from_pretrained(args.model_dir).eval()

        class Wrap(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.m(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

        model = Wrap(base).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        dummy = tok(["hello world"], return_tensors="pt")
        torch.onnx.export(model, (dummy["input_ids"], dummy["attention_mask"],
                                  dummy["token_type_ids"]), onnx_path,
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["last_hidden_state"],
                          dynamic_axes={k: {0: "b", 1: "s"} for k in
                                        ["input_ids", "attention_mask", "token_type_ids",
                                         "last_hidden_state"]},
                          opset_version=17, dynamo=False)
    onnx_int8 = onnx_path.replace(".onnx", "-int8.onnx")
    if not os.path.exists(onnx_int8):
        from onnxruntime.quantization import QuantType, quantize_dynamic
        quantize_dynamic(onnx_path, onnx_int8, per_channel=True, weight_type=QuantType.QInt8)
    pooling_cls = "cls" in json.dumps(json.load(open(os.path.join(
        args.model_dir, "1_Pooling", "config.json")))).lower() and json.load(open(os.path.join(
            args.model_dir, "1_Pooling", "config.json"))).get("pooling_mode_cls_token", False)

    order = sorted(range(len(texts)), key=lambda i: len(enc["input_ids"][i]))
    models = {"fp32": onnx_path, "int8": onnx_int8}
    if args.paired_queries:
        return paired_queries(args, maxlen, models, pooling_cls, ort, np, tok)
    if args.paired:
        return paired(args, texts, enc, maxlen, models, pooling_cls, ort, np, tok)
    for th in args.threads:
        torch.set_num_threads(th)
        ov = {}
        for prec, path in models.items():
            sess = ort_session(ort, path, th)

            def run_ort():
                out = np.zeros((len(texts), st.get_sentence_embedding_dimension()), np.float32)
                for idx, v in ort_batches(sess, tok, texts, order, args.batch, maxlen,
                                          pooling_cls, np):
                    out[idx] = v
                return out

            run_ort()  # warm-up
            t0 = time.perf_counter()
            ov[prec] = run_ort()
            dt = time.perf_counter() - t0
            print("onnxruntime %s %s threads=%d: %.0f tokens/s, %.1f chunks/s" % (
                ort.__version__, prec, th, ntok / dt, len(texts) / dt))
        print("  onnx int8 vs fp32: min cosine %.6f, mean %.6f" % (
            (ov["int8"] * ov["fp32"]).sum(1).min(), (ov["int8"] * ov["fp32"]).sum(1).mean()))
        ov = ov["fp32"]
        st.encode(texts[:16], batch_size=args.batch)
        t0 = time.perf_counter()
        sv = st.encode(texts, batch_size=args.batch, normalize_embeddings=True)
        dt = time.perf_counter() - t0
        print("sentence-transformers (torch %s) threads=%d: %.0f tokens/s, %.1f chunks/s" % (
            torch.__version__, th, ntok / dt, len(texts) / dt))
        cos = (ov * sv).sum(1)
        print("  onnx vs sentence-transformers: min cosine %.6f" % cos.min())
        sys.stdout.flush()


def ort_session(ort, path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


ENGINES = ["ragcore fp32", "ragcore int8", "onnxruntime fp32", "onnxruntime int8"]


def paired(args, texts, enc, maxlen, models, pooling_cls, ort, np, tok):
    """ragcore fp32 and int8 (two `bench_embed --serve` processes) and ONNX Runtime fp32 and
    int8 in turn chunk by chunk: each chunk of --chunk documents is embedded by all four
    engines back to back, the first one rotating, so that the host's drift (tens of percent
    within minutes) reaches all alike. Prints each round's tokens/s per engine and the ratios
    to ragcore fp32, then the median ratios over rounds."""
    import statistics
    th = args.threads[0]
    sess = {p: ort_session(ort, m, th) for p, m in models.items()}
    env = dict(os.environ, RAGCORE_THREADS=str(th), OPENBLAS_NUM_THREADS="1",
               OMP_NUM_THREADS="1")
    procs = {}
    for prec in ("fp32", "int8"):
        pr = subprocess.Popen([args.paired, "--model", args.model_dir, "--data", args.data,
                               "--docs", str(len(texts)), "--threads", str(th),
                               "--precision", prec, "--serve"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        ready = pr.stdout.readline().split()
        if ready != ["ready", str(len(texts))]:
            sys.exit("bench_embed --serve did not start (%r)" % ready)
        procs[prec] = pr

    def run_rc(pr, idx):
        pr.stdin.write(" ".join(map(str, idx)) + "\n")
        pr.stdin.flush()
        line = pr.stdout.readline()
        if not line:
            sys.exit("bench_embed --serve stopped")
        return float(line)

    def run_ort(s, idx):
        t0 = time.perf_counter()
        for _ in ort_batches(s, tok, texts, idx, args.batch, maxlen, pooling_cls, np):
            pass
        return time.perf_counter() - t0

    run = [lambda idx: run_rc(procs["fp32"], idx), lambda idx: run_rc(procs["int8"], idx),
           lambda idx: run_ort(sess["fp32"], idx), lambda idx: run_ort(sess["int8"], idx)]
    # chunks are consecutive slices of the length order, as each engine's own batches are
    order = sorted(range(len(texts)), key=lambda i: len(enc["input_ids"][i]))
    chunks = [order[f:f + args.chunk] for f in range(0, len(order), args.chunk)]
    for r in run:  # warm-up, all
        r(chunks[-1])
    ratios = [[] for _ in ENGINES]
    print("paired, %d thread(s), chunks of %d documents, first engine rotating:" % (
        th, args.chunk))
    for rnd in range(args.rounds):
        t = [0.0] * len(ENGINES)
        ntok = 0
        for k, idx in enumerate(chunks):
            ntok += sum(len(enc["input_ids"][i]) for i in idx)
            for j in range(len(ENGINES)):
                e = (j + k + rnd) % len(ENGINES)
                t[e] += run[e](idx)
        for e in range(len(ENGINES)):
            ratios[e].append(t[0] / t[e])
        print("round %d (load %.2f): " % (rnd + 1, os.getloadavg()[0]) + ", ".join(
            "%s %.0f tokens/s (%.2fx)" % (ENGINES[e], ntok / t[e], t[0] / t[e])
            for e in range(len(ENGINES))))
        sys.stdout.flush()
    for pr in procs.values():
        pr.stdin.close()
        pr.wait()
    print("paired tokens/s relative to ragcore fp32, %d thread(s), median (min-max) over %d "
          "rounds: " % (th, args.rounds) + ", ".join(
              "%s %.2fx (%.2f-%.2f)" % (ENGINES[e], statistics.median(ratios[e]),
                                         min(ratios[e]), max(ratios[e]))
              for e in range(1, len(ENGINES))))


def paired_queries(args, maxlen, models, pooling_cls, ort, np, tok):
    """Every query of DIR/queries.jsonl encoded alone on one thread by ragcore fp32, ragcore
    int8 (one `bench_embed --serve-queries` process) and ONNX Runtime fp32 and int8 (from
    the text: tokenizer, session run, pooling, normalisation), the engines in turn per query
    with the first one rotating; --rounds passes over the queries. Prints wall p50 / p95 /
    mean per engine, ragcore's thread-CPU p50, and the p50 ratios."""
    import statistics
    queries = []
    with open(os.path.join(args.data, "queries.jsonl"), encoding="utf-8") as f:
        for line in f:
            queries.append(json.loads(line)["text"].replace("\t", " ").replace("\n", " "))
    sess = {p: ort_session(ort, m, 1) for p, m in models.items()}
    env = dict(os.environ, RAGCORE_THREADS="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    pr = subprocess.Popen([args.paired_queries, "--model", args.model_dir, "--serve-queries"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    if pr.stdout.readline().split() != ["ready", "queries"]:
        sys.exit("bench_embed --serve-queries did not start")

    def run_rc(prec, q):
        pr.stdin.write("%s\t%s\n" % (prec, q))
        pr.stdin.flush()
        w, c = pr.stdout.readline().split()
        return float(w), float(c)

    def run_ort(s, q):
        t0, c0 = time.perf_counter(), time.thread_time()
        for _ in ort_batches(s, tok, [q], [0], 1, maxlen, pooling_cls, np):
            pass
        return time.perf_counter() - t0, time.thread_time() - c0

    run = [lambda q: run_rc("fp32", q), lambda q: run_rc("int8", q),
           lambda q: run_ort(sess["fp32"], q), lambda q: run_ort(sess["int8"], q)]
    for q in queries[:20]:  # warm-up
        for r in run:
            r(q)
    wall = [[] for _ in ENGINES]
    cpu = [[] for _ in ENGINES]
    for rnd in range(args.rounds):
        for k, q in enumerate(queries):
            for j in range(len(ENGINES)):
                e = (j + k + rnd) % len(ENGINES)
                w, c = run[e](q)
                wall[e].append(w * 1e3)
                cpu[e].append(c * 1e3)
    pr.stdin.close()
    pr.wait()

    def pct(v, q):
        v = sorted(v)
        return v[max(0, min(len(v) - 1, int(round(q * len(v))) - 1))]

    print("query encode, one thread, %d queries x %d round(s), engines in turn (load %.2f):" % (
        len(queries), args.rounds, os.getloadavg()[0]))
    for e in range(len(ENGINES)):
        print("  %-17s wall p50 %6.2f p95 %6.2f mean %6.2f ms | cpu p50 %6.2f ms | "
              "p50 vs ragcore fp32 %.2fx, vs onnxruntime fp32 %.2fx" % (
                  ENGINES[e], pct(wall[e], 0.5), pct(wall[e], 0.95), statistics.mean(wall[e]),
                  pct(cpu[e], 0.5), pct(wall[0], 0.5) / pct(wall[e], 0.5),
                  pct(wall[2], 0.5) / pct(wall[e], 0.5)))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   "..", "..", "shared", "data", "scifact-dev"))
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--venv")
    ap.add_argument("--paired", metavar="BENCH_EMBED",
                    help="alternate ONNX Runtime with this bench_embed binary (--serve) chunk "
                         "by chunk at the first --threads count")
    ap.add_argument("--paired-queries", metavar="BENCH_EMBED",
                    help="encode each query alone with ragcore fp32/int8 (this bench_embed "
                         "binary, --serve-queries) and ONNX Runtime fp32/int8 in turn")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--chunk", type=int, default=32)
    args = ap.parse_args()
    args.threads = [int(x) for x in args.threads.split(",")]
    if args.rounds is None:
        args.rounds = 1 if args.paired_queries else 5
    if os.environ.get("RAGCORE_PEERS_INSIDE"):
        return inside(args)
    probe = ("import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in "
             "('torch', 'onnx', 'onnxruntime', 'sentence_transformers')))")
    return rerun_in_venv(args.venv, PKGS, probe, __file__,
                         HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")


def rerun_in_venv(venv, pkgs, probe, script, **env_extra):
    """Runs `script` with this process's arguments in the bench venv (default
    $TMPDIR/ragcore-bench-venv; created when absent, `pkgs` installed when `probe`, a line
    of Python, fails there) with RAGCORE_PEERS_INSIDE=1 set; returns its exit status."""
    venv = venv or os.path.join(tempfile.gettempdir(), "ragcore-bench-venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", venv])
    if subprocess.call([py, "-c", probe], stderr=subprocess.DEVNULL):
        subprocess.check_call([py, "-m", "pip", "install", "-q"] + pkgs)
    env = dict(os.environ, RAGCORE_PEERS_INSIDE="1", **env_extra)
    return subprocess.call([py, os.path.abspath(script)] + sys.argv[1:], env=env)


if __name__ == "__main__":
    sys.exit(main() or 0)
