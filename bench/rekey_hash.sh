#!/usr/bin/env bash
# rekey_hash.sh - cost of `ragcore rekey --rotate-hash-key` against a plain `ragcore rekey`:
# the first DOCS SciFact dev documents ingested once into an encrypted store (hash
# embedder), then ROUNDS rounds that each rotate a fresh copy both ways, in alternating
# order, so a loaded machine slows both alike. Prints one JSON line per rotation (wall and
# CPU seconds of the process) and the medians with their ratio; checks that a query's
# lexical results are the same after either rotation.
# usage: bench/rekey_hash.sh [BUILD] [ROUNDS]
#   env: SCIFACT_DIR (default ../shared/data/scifact-dev), DOCS (default 1500)
set -euo pipefail
build=${1:-build}
rounds=${2:-3}
data=${SCIFACT_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data/scifact-dev}
docs=${DOCS:-1500}
bin="$build/bin/ragcore"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gzip -dc "$data/corpus.jsonl.gz" | sed -n "1,${docs}p" > "$work/corpus.jsonl"
python3 -c 'import os; print(os.urandom(32).hex())' > "$work/k1"
python3 -c 'import os; print(os.urandom(32).hex())' > "$work/k2"
"$bin" ingest --db "$work/base" --embedder hash --quiet --key-file "$work/k1" \
    "$work/corpus.jsonl" > /dev/null
q="protein expression in cancer cells"
"$bin" search --db "$work/base" --key-file "$work/k1" --mode lexical -k 10 --json "$q" |
    python3 -c 'import json,sys; print([r["chunk_id"] for r in json.load(sys.stdin)["results"]])' \
    > "$work/want"
echo "{\"store_mb\":$(du -sm "$work/base" | cut -f1),\"docs\":$docs}"
run() { # run KIND ROUND: rotate a fresh copy, print its JSON line
    local kind=$1 round=$2 dir="$work/$1-$2" flags=()
    [ "$kind" = hash ] && flags=(--rotate-hash-key)
    cp -r "$work/base" "$dir"
    local out
    out=$( { /usr/bin/time -f "%e %U %S" "$bin" rekey --db "$dir" --key-file "$work/k1" \
        --new-key-file "$work/k2" "${flags[@]}" > /dev/null; } 2>&1 | tail -n 1)
    "$bin" search --db "$dir" --key-file "$work/k2" --mode lexical -k 10 --json "$q" |
        python3 -c 'import json,sys; print([r["chunk_id"] for r in json.load(sys.stdin)["results"]])' \
        > "$work/got"
    cmp -s "$work/want" "$work/got" || { echo "results differ after $kind rekey" >&2; exit 1; }
    local wall user sys
    read -r wall user sys <<<"$out"
    echo "{\"kind\":\"$kind\",\"round\":$round,\"wall_s\":$wall,\"cpu_s\":$(awk "BEGIN{printf \"%.2f\", $user + $sys}")}"
    rm -rf "$dir"
}
for round in $(seq "$rounds"); do
    if [ $((round % 2)) = 1 ]; then run plain "$round"; run hash "$round"
    else run hash "$round"; run plain "$round"; fi
done | tee "$work/runs"
python3 - "$work/runs" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
med = {k: {m: statistics.median(r[m] for r in runs if r["kind"] == k) for m in ("wall_s", "cpu_s")}
       for k in ("plain", "hash")}
print(json.dumps({"median": med, "ratio_wall": round(med["hash"]["wall_s"] / med["plain"]["wall_s"], 2),
                  "ratio_cpu": round(med["hash"]["cpu_s"] / med["plain"]["cpu_s"], 2)}))
PY
