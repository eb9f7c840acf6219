#!/usr/bin/env bash
# ingest_ab.sh - `ragcore ingest` speed of two builds side by side on the SciFact dev corpus:
# every configuration runs on build A then build B, ROUNDS times alternated, each into a
# fresh store, so a loaded machine slows both alike. Prints one JSON line per run and a
# median line per (build, configuration).
# usage: bench/ingest_ab.sh BUILD_A BUILD_B [ROUNDS]
#   env: SCIFACT_DIR (default ../shared/data/scifact-dev), NEURAL_DOCS (documents of the
#   neural subset, default 300; 0 skips it), MODEL (default all-MiniLM-L6-v2)
set -euo pipefail
a=$1
b=$2
rounds=${3:-3}
data=${SCIFACT_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data/scifact-dev}
neural_docs=${NEURAL_DOCS:-300}
model=${MODEL:-all-MiniLM-L6-v2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gzip -dc "$data/corpus.jsonl.gz" > "$work/corpus.jsonl"
head -n "$neural_docs" "$work/corpus.jsonl" > "$work/subset.jsonl"

# run BUILD NAME CORPUS EMBEDDER FLAGS...: one ingest into a fresh store; prints its JSON line
# with wall time and the CPU time (user + system) of the process, which a loaded machine
# disturbs less than the wall time
run() {
    local build=$1 name=$2 corpus=$3 emb=$4
    shift 4
    rm -rf "$work/db"
    python3 - "$build" "$name" "$corpus" "$emb" "$work/db" "$@" <<'PY'
import json, resource, subprocess, sys, time
build, name, corpus, emb, db = sys.argv[1:6]
flags = sys.argv[6:]
r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
t0 = time.monotonic()
p = subprocess.run([build + "/bin/ragcore", "ingest", "--db", db, "--embedder", emb, "--quiet",
                    "--json"] + flags + [corpus], capture_output=True, text=True)
wall = time.monotonic() - t0
r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
d = json.loads(p.stdout) if p.stdout.strip() else {}
print(json.dumps({"build": build, "config": name, "wall_s": round(wall, 3),
                  "cpu_s": round(cpu, 3), "documents": d.get("documents"),
                  "chunks": d.get("chunks"),
                  "skipped_dups": d.get("duplicates", {}).get("skipped")}), flush=True)
PY
}

{
for ((r = 1; r <= rounds; r++)); do
    for build in "$a" "$b"; do
        run "$build" hash_default "$work/corpus.jsonl" hash
        run "$build" hash_nodedup "$work/corpus.jsonl" hash --near-dup off
        run "$build" hash_pii_quality "$work/corpus.jsonl" hash --pii mask --quality
        if [ "$neural_docs" -gt 0 ]; then
            run "$build" "neural_${neural_docs}" "$work/subset.jsonl" "$model" --near-dup off
        fi
    done
done
} | tee "$work/runs.jsonl"
python3 - "$work/runs.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = sorted({(r["config"], r["build"]) for r in rows})
for cfg, build in keys:
    sel = [r for r in rows if r["config"] == cfg and r["build"] == build]
    print(json.dumps({"median": cfg, "build": build,
                      "wall_s": statistics.median(r["wall_s"] for r in sel),
                      "cpu_s": statistics.median(r["cpu_s"] for r in sel),
                      "cpu_runs": [r["cpu_s"] for r in sel]}))
PY
