#!/usr/bin/env bash
# sync_bench.sh - sync cost on the SciFact dev corpus: initial sync (= ingest), re-sync of
# the unchanged corpus, and re-sync with 1% and 10% of the documents changed.
# usage: bench/sync_bench.sh [BUILD_DIR] [EMBEDDER]   (figures go to stdout as JSON lines)
set -euo pipefail
build=${1:-build}
embedder=${2:-hash}
bin="$build/bin/ragcore"
data=${SCIFACT_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data/scifact-dev}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gzip -dc "$data/corpus.jsonl.gz" > "$work/corpus.jsonl"
change() { # change FRACTION: rewrite that fraction of the documents' texts
    python3 - "$work/corpus.jsonl" "$1" <<'PY'
import json, sys
path, frac = sys.argv[1], float(sys.argv[2])
rows = [json.loads(l) for l in open(path)]
step = max(1, int(round(1 / frac)))
for i in range(0, len(rows), step):
    rows[i]["text"] += " (revised %d)" % i
with open(path, "w") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")
PY
}
echo "{\"phase\":\"initial\",\"result\":$("$bin" sync --db "$work/db" --embedder "$embedder" --json "$work/corpus.jsonl")}"
echo "{\"phase\":\"unchanged\",\"result\":$("$bin" sync --db "$work/db" --json "$work/corpus.jsonl")}"
change 0.01
echo "{\"phase\":\"changed_1pct\",\"result\":$("$bin" sync --db "$work/db" --json "$work/corpus.jsonl")}"
change 0.10
echo "{\"phase\":\"changed_10pct\",\"result\":$("$bin" sync --db "$work/db" --json "$work/corpus.jsonl")}"
