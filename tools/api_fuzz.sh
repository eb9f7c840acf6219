#!/usr/bin/env bash
# api_fuzz.sh - schema-based API fuzzing: starts ragcore-server on a temporary store with an
# admin key, creates collection "docs" with a few documents, and runs schemathesis against
# the server's own GET /openapi.json with that key, checking that no response is a 5xx,
# that status codes, headers, content types and bodies conform to the document, and that
# schema-violating requests are refused (every schemathesis check but
# positive_data_acceptance; --checks LIST picks others). Prints the number of requests.
# Exit status: 0 clean, 1 failures found, 2 setup error, 3 no schemathesis (create the
# venv: python3 -m venv ~/.cache/ragcore/schemathesis-venv &&
# ~/.cache/ragcore/schemathesis-venv/bin/pip install schemathesis).
#   api_fuzz.sh [--bin DIR] [--examples N] [--max-time SECONDS] [--seed N] [--workers N]
#               [--checks LIST] [--keep DIR]
# --bin: the directory holding ragcore-server (default $RAGCORE_BIN, else build/bin);
# --examples: test cases per operation and phase (default 50); --keep: work directory
# (store, server log, schemathesis reports) kept there instead of a removed temp dir.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
bin=${RAGCORE_BIN:-$src/build/bin}
venv=${SCHEMATHESIS_VENV:-$HOME/.cache/ragcore/schemathesis-venv}
examples=50
max_time=""
seed=""
workers=1
# Every check but positive_data_acceptance: a schema-valid request may still be refused
# for what a schema cannot say (a vector of the store's dimension, a filter expression
# that parses, the configured limits).
checks=all
exclude=positive_data_acceptance
keep=""
while [ $# -gt 0 ]; do
    case $1 in
    --bin) bin=$2; shift 2 ;;
    --examples) examples=$2; shift 2 ;;
    --max-time) max_time=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --checks) checks=$2; exclude=""; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "api_fuzz.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
st=$venv/bin/st
if [ ! -x "$st" ]; then
    echo "api_fuzz.sh: schemathesis not found at $st (see --help to create the venv)" >&2
    exit 3
fi
server=$bin/ragcore-server
[ -x "$server" ] || { echo "api_fuzz.sh: $server not found (build first or pass --bin)" >&2; exit 2; }

if [ -n "$keep" ]; then
    work=$keep
    rm -rf "$work/store" "$work/report" "$work/port" "$work/.schemathesis"
    mkdir -p "$work"
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/ragcore-api-fuzz.XXXXXX")
fi
key=api-fuzz-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
pid=""
cleanup() {
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    [ -n "$keep" ] || rm -rf "$work"
}
trap cleanup EXIT

# The server: hash embedder (no model needed), small limits so large generated bodies
# are refused quickly, no access log (the log keeps the server's own warnings).
RAGCORE_ADMIN_KEY=$key "$server" --db "$work/store" --listen 127.0.0.1:0 \
    --port-file "$work/port" --embedder hash --dim 64 --threads 4 --access-log off \
    >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
    [ -s "$work/port" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "api_fuzz.sh: server exited:" >&2; cat "$work/server.log" >&2; exit 2; }
    sleep 0.1
done
port=$(cat "$work/port" 2>/dev/null)
[ -n "$port" ] || { echo "api_fuzz.sh: server did not start" >&2; exit 2; }
base=http://127.0.0.1:$port
for _ in $(seq 1 300); do
    curl -fs "$base/readyz" >/dev/null && break
    sleep 0.1
done
auth=(-H "Authorization: Bearer $key" -H "Content-Type: application/json")
curl -fs "${auth[@]}" -d '{"name":"docs"}' "$base/v1/collections" >/dev/null &&
curl -fs "${auth[@]}" -d '{"documents":[
    {"id":"d1","text":"Refunds are processed within five business days.","title":"Refunds",
     "source":"https://example.org/faq","metadata":{"lang":"en","year":2021}},
    {"id":"d2","text":"# Fractures\n\nVitamin D and calcium prevent fractures.",
     "format":"markdown","metadata":{"lang":"en","year":2015}}]}' \
    "$base/v1/collections/docs/documents" >/dev/null ||
    { echo "api_fuzz.sh: cannot create the collection" >&2; exit 2; }

args=(run "$base/openapi.json" --url "$base" -H "Authorization: Bearer $key"
      --checks "$checks" --max-examples "$examples" --workers "$workers" --no-color
      --report junit,ndjson --report-dir "$work/report" --request-timeout 30
      --suppress-health-check all)
[ -n "$exclude" ] && args+=(--exclude-checks "$exclude")
[ -n "$max_time" ] && args+=(--max-time "$max_time")
[ -n "$seed" ] && args+=(--seed "$seed")
echo "api_fuzz.sh: $st ${args[*]/$key/KEY}"
# (from the work directory: schemathesis keeps its example database in ./.schemathesis)
(cd "$work" && "$st" "${args[@]}") 2>&1 | tee "$work/schemathesis.log"
rc=${PIPESTATUS[0]}

# Requests sent: one per recorded interaction in the NDJSON event stream.
requests=$(grep -o '"request": *{' "$work/report"/*.ndjson 2>/dev/null | wc -l)
fivexx=$(grep -c '"status_code": *5[0-9][0-9]' "$work/report"/*.ndjson 2>/dev/null |
         awk -F: '{s+=$NF} END {print s+0}')
echo "api_fuzz.sh: $requests requests generated; $fivexx answered with 5xx; schemathesis exit $rc"
if ! kill -0 "$pid" 2>/dev/null; then
    echo "api_fuzz.sh: the server died during the run:" >&2
    tail -20 "$work/server.log" >&2
    pid=""
    exit 1
fi
[ "$rc" -eq 0 ] || exit 1
exit 0
