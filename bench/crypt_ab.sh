#!/usr/bin/env bash
# crypt_ab.sh - cost of encryption at rest: the SciFact dev corpus ingested into a plain and
# an encrypted store by the same build (hash embedder; MODEL=name with NEURAL_DOCS=N adds a
# pair of stores of the first N documents with that model), then `ragcore eval` (505 queries)
# runs every mode on the plain store then the encrypted one, ROUNDS times alternated, so a
# loaded machine slows both alike: only the ratios count. Prints ingest times, one JSON line
# per run and a median line per (store, mode, encryption) with the encrypted/plain ratios of
# the p50 latency and of the p50 CPU time of the searching thread.
# usage: bench/crypt_ab.sh [BUILD] [ROUNDS]
#   env: SCIFACT_DIR (default ../shared/data/scifact-dev), MODEL, NEURAL_DOCS (default 0),
#        DOCS (the hash stores hold the first DOCS documents; default all 5,183)
set -euo pipefail
. "$(dirname "$0")/eval_lib.sh"
build=${1:-build}
rounds=${2:-3}
data=${SCIFACT_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data/scifact-dev}
model=${MODEL:-all-MiniLM-L6-v2}
neural_docs=${NEURAL_DOCS:-0}
bin="$build/bin/ragcore"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "${DOCS:-}" ]; then
    gzip -dc "$data/corpus.jsonl.gz" | sed -n "1,${DOCS}p" > "$work/corpus.jsonl" # reads all: no SIGPIPE
else
    gzip -dc "$data/corpus.jsonl.gz" > "$work/corpus.jsonl"
fi
head -n "$neural_docs" "$work/corpus.jsonl" > "$work/subset.jsonl"
qrels=$data/qrels/test.tsv
[ -f "$qrels" ] || qrels=$(ls "$data"/qrels/*.tsv | head -n 1)
python3 -c 'import os; print(os.urandom(32).hex())' > "$work/key"

stores=(hash)
[ "$neural_docs" -gt 0 ] && stores+=(neural)
ingest() { # ingest STORE ENC
    local emb=hash src="$work/corpus.jsonl" flags=()
    [ "$1" = neural ] && emb=$model && src="$work/subset.jsonl"
    [ "$2" = enc ] && flags=(--key-file "$work/key")
    local t0=$(date +%s.%N)
    "$bin" ingest --db "$work/$1-$2" --embedder "$emb" --quiet "${flags[@]}" "$src" > /dev/null
    echo "{\"ingest\":\"$1-$2\",\"seconds\":$(echo "$(date +%s.%N) - $t0" | bc)}"
}
for store in "${stores[@]}"; do
    ingest "$store" plain
    ingest "$store" enc
done
du -sb "$work"/*-plain "$work"/*-enc | sed 's/^/# bytes: /'

{
for ((r = 1; r <= rounds; r++)); do
    for store in "${stores[@]}"; do
        for mode in dense lexical hybrid; do
            for enc in plain enc; do
                flags=()
                [ "$enc" = enc ] && flags=(--key-file "$work/key")
                eval_line "$bin" "$work/$store-$enc" "$mode" "$data/queries.jsonl" "$qrels" \
                    "{\"enc\":\"$enc\",\"store\":\"$store\"}" "${flags[@]}"
            done
        done
    done
done
} | tee "$work/runs.jsonl"
python3 - "$work/runs.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = {}
for key in sorted({(r["store"], r["mode"], r["enc"]) for r in rows}):
    sel = [r for r in rows if (r["store"], r["mode"], r["enc"]) == key]
    med[key] = {"ndcg10": sel[0]["ndcg10"],
                "p50_ms": statistics.median(r["p50_ms"] for r in sel),
                "p95_ms": statistics.median(r["p95_ms"] for r in sel),
                "cpu_p50_ms": statistics.median(r["cpu_p50_ms"] for r in sel)}
for (store, mode, enc), m in med.items():
    line = {"median": f"{store}/{mode}", "enc": enc, **m}
    if enc == "enc":
        p = med[(store, mode, "plain")]
        line["p50_ratio"] = round(m["p50_ms"] / p["p50_ms"], 3)
        line["cpu_p50_ratio"] = round(m["cpu_p50_ms"] / p["cpu_p50_ms"], 3)
        line["same_ndcg"] = m["ndcg10"] == p["ndcg10"]
    print(json.dumps(line))
PY
