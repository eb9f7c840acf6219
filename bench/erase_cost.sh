#!/usr/bin/env bash
# erase_cost.sh - what an erasure costs: for a store of N synthetic documents (hash
# embedder, HNSW32), the wall time of `ragcore delete` (plain) and `ragcore delete --erase`
# of 1, 10 and 100 documents, and of one more erasure on a store already erased once (the
# steady state: the first erasure of a store zeroes the unused bytes every page holds
# since ingest). Each run gets a fresh copy of the same store; with --base, the same runs
# with a second build's binary, interleaved, so both see the same machine load. Usage:
#   bench/erase_cost.sh [--base BUILD_DIR] [--store DIR] BUILD_DIR [DOCS...]
#   (default 4000 documents; --store: an existing store instead of ingesting one)
set -euo pipefail
base_bin= store=
while [ $# -gt 0 ]; do
    case $1 in
    --base) base_bin=$2/bin; shift 2 ;;
    --store) store=$2; shift 2 ;;
    *) break ;;
    esac
done
bin=${1:?build dir}/bin
shift || true
sizes=${*:-4000}
work=$(mktemp -d /tmp/erase_cost.XXXXXX)
trap 'rm -rf "$work"' EXIT
ids() { seq 1000 $((999 + $1)) | sed 's/^/d/' | tr '\n' ' '; }
for n in $sizes; do
    rm -rf "$work/base"
    if [ -n "$store" ]; then
        cp -r "$store" "$work/base"
    else
        python3 - "$n" > "$work/docs.jsonl" <<'PY'
import json, os, random, sys
rnd = random.Random(7)
words = [w.strip() for w in open("/usr/share/dict/words")] if os.path.exists("/usr/share/dict/words") else ["alpha%d" % i for i in range(20000)]
for i in range(int(sys.argv[1])):
    text = " ".join(rnd.choice(words) for _ in range(180)) + " contact user%d@example.org" % i
    print(json.dumps({"_id": "d%d" % i, "text": text}))
PY
        "$bin/ragcore" ingest --db "$work/base" --embedder hash --quiet "$work/docs.jsonl" >/dev/null
    fi
    mb=$(du -m "$work/base/data.mdb" | cut -f1)
    ixmb=$(du -cm "$work/base/index" | tail -1 | cut -f1)
    echo "store: data.mdb $mb MB, index files $ixmb MB"
    for run in plain1 erase1 plain10 erase10 plain100 erase100 again1; do
        for b in ${base_bin:+base} new; do
            exe=$bin/ragcore
            [ "$b" = base ] && exe=$base_bin/ragcore
            rm -rf "$work/s" && cp -r "$work/base" "$work/s"
            flag=--erase
            case $run in
            plain*) flag= ;;
            again1) "$exe" delete --db "$work/s" --erase d500 >/dev/null 2>&1 ;;
            esac
            count=${run//[a-z]/}
            args=$(ids "$count")
            t0=$(date +%s.%N)
            # shellcheck disable=SC2086
            "$exe" delete --db "$work/s" $flag $args >/dev/null 2>"$work/err"
            t1=$(date +%s.%N)
            printf '%s docs, data.mdb %s MB, %-4s %-8s %7.2f s  %s\n' "$n" "$mb" "$b" "$run" \
                "$(echo "$t1 - $t0" | bc)" "$(tr '\n' ' ' < "$work/err")"
        done
    done
done
