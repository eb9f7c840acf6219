#!/usr/bin/env bash
# demo.sh - the main job end to end: pull the default embedding model, ingest the bundled
# sample corpus (this project's README and docs), and answer example queries with ranked,
# cited hits and a prompt-ready context block. Run through `make demo`.
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
bin="$build/bin/ragcore"
store="$build/demo-store"

# The default model is the first known model that can be obtained; hash needs none.
embedder=hash
for model in bge-small-en-v1.5 all-MiniLM-L6-v2; do
    if "$bin" model pull "$model" >/dev/null 2>&1; then embedder=$model; break; fi
done
echo "== embedder: $embedder"

rm -rf "$store"
echo "== ingesting README.md and docs/ into $store"
"$bin" ingest --db "$store" --embedder "$embedder" --collection docs --quiet README.md docs

"$bin" stats --db "$store"

ask() {
    echo
    echo "== query: $1"
    "$bin" search --db "$store" --collection docs -k 3 "$1"
}
ask "how do I build and run the tests?"
ask "what happens when the index file is corrupt?"
ask "which filter operators are supported?"
ask "how is freshness tracked and stale context flagged?"

echo
echo "== prompt-ready context (300 tokens) for: how does hybrid search fuse results?"
if "$bin" context --help >/dev/null 2>&1; then
    "$bin" context --db "$store" --collection docs --budget 300 "how does hybrid search fuse results?"
fi
