#!/usr/bin/env bash
# crypt_ab_builds.sh - two builds' plain and encrypted stores side by side: each build
# ingests the first DOCS SciFact dev documents (hash embedder) into a plain and an
# encrypted store of its own, then `ragcore eval` (505 queries, k 10) runs each MODE on the
# four stores in turn, ROUNDS times, so a loaded machine slows all alike. Prints one JSON
# line per run and, per (mode, build), the medians of the searching thread's CPU p50 and
# the median of the per-round encrypted/plain ratios; per mode, the B/A ratio of plain CPU.
# usage: bench/crypt_ab_builds.sh BIN_A BIN_B [ROUNDS] [MODES]
#   env: SCIFACT_DIR (default ../shared/data/scifact-dev), DOCS (default 1500)
set -euo pipefail
. "$(dirname "$0")/eval_lib.sh"
bin_a=$1 bin_b=$2 rounds=${3:-7} modes=${4:-"lexical dense hybrid"}
data=${SCIFACT_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data/scifact-dev}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gzip -dc "$data/corpus.jsonl.gz" | sed -n "1,${DOCS:-1500}p" > "$work/corpus.jsonl"
qrels=$data/qrels/test.tsv
[ -f "$qrels" ] || qrels=$(ls "$data"/qrels/*.tsv | head -n 1)
python3 -c 'import os; print(os.urandom(32).hex())' > "$work/key"
for b in a b; do
    bin=$bin_a; [ "$b" = b ] && bin=$bin_b
    "$bin" ingest --db "$work/$b-plain" --embedder hash --quiet "$work/corpus.jsonl" >/dev/null
    "$bin" ingest --db "$work/$b-enc" --embedder hash --quiet --key-file "$work/key" \
        "$work/corpus.jsonl" >/dev/null
done
du -sb "$work"/?-plain "$work"/?-enc | sed 's/^/# bytes: /'
for ((r = 1; r <= rounds; r++)); do
    for mode in $modes; do
        for b in a b; do
            bin=$bin_a; [ "$b" = b ] && bin=$bin_b
            for enc in plain enc; do
                flags=(); [ "$enc" = enc ] && flags=(--key-file "$work/key")
                eval_line "$bin" "$work/$b-$enc" "$mode" "$data/queries.jsonl" "$qrels" \
                    "{\"round\":$r,\"build\":\"$b\",\"enc\":\"$enc\"}" "${flags[@]}"
            done
        done
    done
done | tee "$work/runs.jsonl"
python3 - "$work/runs.jsonl" <<'PY'
import json, statistics as st, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cpu = {(r["round"], r["mode"], r["build"], r["enc"]): r["cpu_p50_ms"] for r in rows}
nd = {(r["mode"], r["build"], r["enc"]): r["ndcg10"] for r in rows}
rounds = sorted({r["round"] for r in rows})
for mode in sorted({r["mode"] for r in rows}):
    for b in ("a", "b"):
        p = [cpu[(r, mode, b, "plain")] for r in rounds]
        e = [cpu[(r, mode, b, "enc")] for r in rounds]
        print(json.dumps({"mode": mode, "build": b, "plain_cpu_p50_ms": st.median(p),
                          "enc_cpu_p50_ms": st.median(e),
                          "ratio_of_medians": round(st.median(e) / st.median(p), 3),
                          "median_round_ratio": round(st.median(x / y for x, y in zip(e, p)), 3),
                          "round_ratios": [round(x / y, 2) for x, y in zip(e, p)],
                          "ndcg10": [nd[(mode, b, "plain")], nd[(mode, b, "enc")]]}))
    pa = [cpu[(r, mode, "a", "plain")] for r in rounds]
    pb = [cpu[(r, mode, "b", "plain")] for r in rounds]
    print(json.dumps({"mode": mode, "plain_b_over_a": round(st.median(pb) / st.median(pa), 3),
                      "median_round_plain_b_over_a": round(st.median(y / x for x, y in zip(pa, pb)), 3)}))
PY
