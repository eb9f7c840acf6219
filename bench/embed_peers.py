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

usage: bench/embed_peers.py --model-dir DIR [--data DIR] [--docs N] [--threads 1,2]
                            [--batch 32] [--venv DIR]
                            [--paired BENCH_EMBED [--rounds 5] [--chunk 32]]

--paired runs ragcore (bench_embed --serve) and ONNX Runtime alternately on chunks of the
same documents, which keeps the ratio steady on a host whose speed drifts.
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
    pooling_cls = "cls" in json.dumps(json.load(open(os.path.join(
        args.model_dir, "1_Pooling", "config.json")))).lower() and json.load(open(os.path.join(
            args.model_dir, "1_Pooling", "config.json"))).get("pooling_mode_cls_token", False)

    order = sorted(range(len(texts)), key=lambda i: len(enc["input_ids"][i]))
    if args.paired:
        return paired(args, texts, enc, maxlen, onnx_path, pooling_cls, ort, np, tok)
    for th in args.threads:
        torch.set_num_threads(th)
        so = ort.SessionOptions()
        so.intra_op_num_threads = th
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])

        def run_ort():
            out = np.zeros((len(texts), st.get_sentence_embedding_dimension()), np.float32)
            for idx, v in ort_batches(sess, tok, texts, order, args.batch, maxlen,
                                      pooling_cls, np):
                out[idx] = v
            return out

        run_ort()  # warm-up
        t0 = time.perf_counter()
        ov = run_ort()
        dt = time.perf_counter() - t0
        print("onnxruntime %s threads=%d: %.0f tokens/s, %.1f chunks/s" % (
            ort.__version__, th, ntok / dt, len(texts) / dt))
        st.encode(texts[:16], batch_size=args.batch)
        t0 = time.perf_counter()
        sv = st.encode(texts, batch_size=args.batch, normalize_embeddings=True)
        dt = time.perf_counter() - t0
        print("sentence-transformers (torch %s) threads=%d: %.0f tokens/s, %.1f chunks/s" % (
            torch.__version__, th, ntok / dt, len(texts) / dt))
        cos = (ov * sv).sum(1)
        print("  onnx vs sentence-transformers: min cosine %.6f" % cos.min())
        sys.stdout.flush()


def paired(args, texts, enc, maxlen, onnx_path, pooling_cls, ort, np, tok):
    """ragcore (a `bench_embed --serve` process) and ONNX Runtime alternated chunk by chunk:
    each chunk of --chunk documents is embedded by both engines back to back, the first one
    alternating, so that the host's drift (tens of percent within minutes) reaches both
    alike. Prints each round's tokens/s and ratio, then the median ratio over rounds."""
    import statistics
    th = args.threads[0]
    so = ort.SessionOptions()
    so.intra_op_num_threads = th
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    env = dict(os.environ, RAGCORE_THREADS=str(th), OPENBLAS_NUM_THREADS="1",
               OMP_NUM_THREADS="1")
    rc = subprocess.Popen([args.paired, "--model", args.model_dir, "--data", args.data,
                           "--docs", str(len(texts)), "--threads", str(th), "--serve"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    ready = rc.stdout.readline().split()
    if ready != ["ready", str(len(texts))]:
        sys.exit("bench_embed --serve did not start (%r)" % ready)

    def run_rc(idx):
        rc.stdin.write(" ".join(map(str, idx)) + "\n")
        rc.stdin.flush()
        line = rc.stdout.readline()
        if not line:
            sys.exit("bench_embed --serve stopped")
        return float(line)

    def run_ort(idx):
        t0 = time.perf_counter()
        for _ in ort_batches(sess, tok, texts, idx, args.batch, maxlen, pooling_cls, np):
            pass
        return time.perf_counter() - t0

    # chunks are consecutive slices of the length order, as each engine's own batches are
    order = sorted(range(len(texts)), key=lambda i: len(enc["input_ids"][i]))
    chunks = [order[f:f + args.chunk] for f in range(0, len(order), args.chunk)]
    run_rc(chunks[-1])  # warm-up, both
    run_ort(chunks[-1])
    ratios = []
    print("paired, %d thread(s), chunks of %d documents, first engine alternating:" % (
        th, args.chunk))
    for rnd in range(args.rounds):
        t_rc = t_ort = 0.0
        ntok = 0
        for k, idx in enumerate(chunks):
            ntok += sum(len(enc["input_ids"][i]) for i in idx)
            if (k + rnd) % 2 == 0:
                t_rc += run_rc(idx)
                t_ort += run_ort(idx)
            else:
                t_ort += run_ort(idx)
                t_rc += run_rc(idx)
        ratios.append(t_ort / t_rc)
        print("round %d: ragcore %.0f tokens/s, onnxruntime %.0f tokens/s, ratio %.2fx "
              "(load %.2f)" % (rnd + 1, ntok / t_rc, ntok / t_ort, ratios[-1],
                               os.getloadavg()[0]))
        sys.stdout.flush()
    rc.stdin.close()
    rc.wait()
    print("paired ratio ragcore / onnxruntime, %d thread(s): median %.2fx, min %.2fx, "
          "max %.2fx over %d rounds" % (th, statistics.median(ratios), min(ratios),
                                        max(ratios), len(ratios)))


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
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--chunk", type=int, default=32)
    args = ap.parse_args()
    args.threads = [int(x) for x in args.threads.split(",")]
    if os.environ.get("RAGCORE_PEERS_INSIDE"):
        return inside(args)
    venv = args.venv or os.path.join(tempfile.gettempdir(), "ragcore-bench-venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", venv])
        subprocess.check_call([py, "-m", "pip", "install", "-q"] + PKGS)
    env = dict(os.environ, RAGCORE_PEERS_INSIDE="1", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1")
    return subprocess.call([py, os.path.abspath(__file__)] + sys.argv[1:], env=env)


if __name__ == "__main__":
    sys.exit(main() or 0)
