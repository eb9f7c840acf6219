#!/usr/bin/env python3
"""toxicity_reference.py - the Python packages' own figures on a labelled set, for comparison
with bench_toxicity: alt-profanity-check 1.9.1 (predict) and better-profanity 0.7.0
(contains_profanity), alone and as a union, and their texts/s.

usage: python toxicity_reference.py FILE    (lines "LABEL<TAB>TEXT", as bench_toxicity reads;
       in a venv with alt-profanity-check==1.9.1, scikit-learn==1.9.1, joblib==1.6.0 and
       better-profanity==0.7.0)

toxicity_reference.py --olid DIR OUT writes OUT from an OLID checkout (idontflow/OLID:
olid-training-v1.0.tsv, testset-levela.tsv, labels-levela.csv): OFF -> 1, NOT -> 0.

toxicity_reference.py --compare FILE DECISIONS [N [SAMPLE]] sets better-profanity's
contains_profanity beside ragcore's word list text by text: DECISIONS is the output of
`bench_toxicity --labelled FILE --decisions DECISIONS`. Prints both detectors' figures, the
number of texts on which they disagree each way, and N (default 20) of each with ragcore's
matched words and better-profanity's censored text (which words it caught). SAMPLE: only
that many texts, drawn at random (seed 26) - better-profanity 0.7.0 takes about 70 ms of
CPU per tweet.
"""
import csv
import sys
import time


def escape(t):
    return t.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "")


def olid(d, out):
    rows = []
    with open(d + "/olid-training-v1.0.tsv", encoding="utf-8") as f:
        r = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(r)
        for row in r:
            rows.append((1 if row[2] == "OFF" else 0, row[1]))
    labels = {}
    with open(d + "/labels-levela.csv", encoding="utf-8") as f:
        for row in csv.reader(f):
            labels[row[0]] = 1 if row[1] == "OFF" else 0
    with open(d + "/testset-levela.tsv", encoding="utf-8") as f:
        r = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(r)
        for row in r:
            rows.append((labels[row[0]], row[1]))
    with open(out, "w", encoding="utf-8") as f:
        for y, t in rows:
            f.write("%d\t%s\n" % (y, escape(t)))
    print("%d texts (%d offensive) -> %s" % (len(rows), sum(y for y, _ in rows), out))


def unescape(t):
    out, i = [], 0
    while i < len(t):
        if t[i] == "\\" and i + 1 < len(t):
            out.append({"n": "\n", "t": "\t"}.get(t[i + 1], t[i + 1]))
            i += 2
        else:
            out.append(t[i])
            i += 1
    return "".join(out)


def report(name, pred, labels):
    tp = sum(1 for p, y in zip(pred, labels) if p and y)
    fp = sum(1 for p, y in zip(pred, labels) if p and not y)
    fn = sum(1 for p, y in zip(pred, labels) if not p and y)
    p = tp / (tp + fp) if tp + fp else 0
    r = tp / (tp + fn) if tp + fn else 0
    f = 2 * p * r / (p + r) if p + r else 0
    print("%-22s precision %.4f  recall %.4f  F1 %.4f  (tp %d fp %d fn %d)" % (name, p, r, f,
                                                                              tp, fp, fn))


def read_labelled(path):
    """{line number: (label, text)} of a labelled file's well-formed lines."""
    rows = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if line[:1] in ("0", "1") and line[1:2] == "\t":
                rows[n] = (line[0] == "1", unescape(line[2:]))
    return rows


def compare(path, decisions, show, sample=0):
    from better_profanity import profanity
    rows = read_labelled(path)
    ours = {}
    with open(decisions, encoding="utf-8") as f:
        for line in f:
            n, _, wl, _, match = line.rstrip("\n").split("\t")
            ours[int(n)] = (wl == "1", match)
    lines = sorted(ours)
    if sample:
        import random
        lines = sorted(random.Random(26).sample(lines, sample))
    profanity.load_censor_words()
    theirs = {n: profanity.contains_profanity(rows[n][1]) for n in lines}
    labels = [rows[n][0] for n in lines]
    report("better-profanity", [theirs[n] for n in lines], labels)
    report("ragcore word list", [ours[n][0] for n in lines], labels)
    sys.stdout.flush()
    for name, want in (("ragcore only", (True, False)), ("better-profanity only", (False, True))):
        diff = [n for n in lines if (ours[n][0], theirs[n]) == want]
        pos = sum(1 for n in diff if rows[n][0])
        print("\n%s: %d texts (%d labelled offensive)" % (name, len(diff), pos))
        for n in diff[:show]:
            print("  line %d label %d ragcore [%s]\n    text: %s\n    censored: %s"
                  % (n, rows[n][0], ours[n][1], rows[n][1], profanity.censor(rows[n][1])))


def main():
    if sys.argv[1] == "--olid":
        olid(sys.argv[2], sys.argv[3])
        return
    if sys.argv[1] == "--compare":
        compare(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 20,
                int(sys.argv[5]) if len(sys.argv) > 5 else 0)
        return
    from better_profanity import profanity
    from profanity_check import predict
    labels, texts = [], []
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            labels.append(line[0] == "1")
            texts.append(unescape(line[2:]))
    t0 = time.perf_counter()
    cls = [bool(x) for x in predict(texts)]
    t1 = time.perf_counter()
    profanity.load_censor_words()
    t2 = time.perf_counter()
    wl = [profanity.contains_profanity(t) for t in texts]
    t3 = time.perf_counter()
    print("%d texts: alt-profanity-check %.0f texts/s, better-profanity %.0f texts/s"
          % (len(texts), len(texts) / (t1 - t0), len(texts) / (t3 - t2)))
    report("better-profanity", wl, labels)
    report("alt-profanity-check", cls, labels)
    report("union", [a or b for a, b in zip(wl, cls)], labels)


main()
