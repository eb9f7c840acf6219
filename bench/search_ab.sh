#!/usr/bin/env bash
# search_ab.sh - search latency and quality of two builds side by side on the SciFact dev set:
# each build ingests the corpus into its own store (hash embedder: no model needed; MODEL=name
# with NEURAL_DOCS=N adds a neural store of the first N documents), then `ragcore eval` runs
# every mode on build A then build B, ROUNDS times alternated, so a loaded machine slows both
# alike. Prints one JSON line per run and a median line per (build, store, mode).
# usage: bench/search_ab.sh BUILD_A BUILD_B [ROUNDS]
#   env: SCIFACT_DIR (default ../shared/data/scifact-dev), MODEL, NEURAL_DOCS (default 0),
#   FLAG_SETS: search flag sets separated by ';', each run in every round (default one empty
#   set), e.g. FLAG_SETS=';--mmr-lambda 0.5' compares MMR off and on
set -euo pipefail
. "$(dirname "$0")/eval_lib.sh"
a=$1
b=$2
rounds=${3:-3}
data=${SCIFACT_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data/scifact-dev}
model=${MODEL:-all-MiniLM-L6-v2}
neural_docs=${NEURAL_DOCS:-0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gzip -dc "$data/corpus.jsonl.gz" > "$work/corpus.jsonl"
head -n "$neural_docs" "$work/corpus.jsonl" > "$work/subset.jsonl"
qrels=$data/qrels/test.tsv
[ -f "$qrels" ] || qrels=$(ls "$data"/qrels/*.tsv | head -n 1)

IFS=';' read -r -a flag_sets <<< "${FLAG_SETS:-}"
[ ${#flag_sets[@]} -gt 0 ] || flag_sets=("")
stores=(hash)
[ "$neural_docs" -gt 0 ] && stores+=(neural)
for build in "$a" "$b"; do
    tag=$(echo "$build" | md5sum | cut -c1-8)
    "$build/bin/ragcore" ingest --db "$work/$tag-hash" --embedder hash --quiet \
        "$work/corpus.jsonl" > /dev/null
    if [ "$neural_docs" -gt 0 ]; then
        "$build/bin/ragcore" ingest --db "$work/$tag-neural" --embedder "$model" --quiet \
            "$work/subset.jsonl" > /dev/null
    fi
done

{
for ((r = 1; r <= rounds; r++)); do
    for store in "${stores[@]}"; do
        for flags in "${flag_sets[@]}"; do
            for mode in dense lexical hybrid; do
                for build in "$a" "$b"; do
                    tag=$(echo "$build" | md5sum | cut -c1-8)
                    # shellcheck disable=SC2086 # a flag set is split into its words
                    eval_line "$build/bin/ragcore" "$work/$tag-$store" "$mode" \
                        "$data/queries.jsonl" "$qrels" \
                        "{\"build\":\"$build\",\"store\":\"$store\",\"flags\":\"$flags\"}" $flags
                done
            done
        done
    done
done
} | tee "$work/runs.jsonl"
python3 - "$work/runs.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = sorted({(r["store"], r["flags"], r["mode"], r["build"]) for r in rows})
for store, flags, mode, build in keys:
    sel = [r for r in rows if (r["store"], r["flags"], r["mode"], r["build"]) ==
           (store, flags, mode, build)]
    print(json.dumps({"median": f"{store}/{mode}", "flags": flags, "build": build,
                      "ndcg10": sel[0]["ndcg10"],
                      "p50_ms": statistics.median(r["p50_ms"] for r in sel),
                      "p95_ms": statistics.median(r["p95_ms"] for r in sel)}))
PY
