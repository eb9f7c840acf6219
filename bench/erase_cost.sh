#!/usr/bin/env bash
# erase_cost.sh - what an erasure costs: for stores of N documents (hash embedder), the wall
# time of `ragcore delete` (plain) and `ragcore delete --erase` of 1 and of 100 documents,
# side by side on the same store copies, with the store's size. Usage:
#   bench/erase_cost.sh BUILD_DIR [DOCS...]   (default 20000 80000)
set -euo pipefail
bin=${1:?build dir}/bin
shift || true
sizes=${*:-20000 80000}
work=$(mktemp -d /tmp/erase_cost.XXXXXX)
trap 'rm -rf "$work"' EXIT
for n in $sizes; do
    python3 - "$n" > "$work/docs.jsonl" <<'PY'
import json, random, sys
rnd = random.Random(7)
words = [w.strip() for w in open("/usr/share/dict/words")] if __import__("os").path.exists("/usr/share/dict/words") else ["alpha%d" % i for i in range(20000)]
for i in range(int(sys.argv[1])):
    text = " ".join(rnd.choice(words) for _ in range(180)) + " contact user%d@example.org" % i
    print(json.dumps({"_id": "d%d" % i, "text": text}))
PY
    rm -rf "$work/base"
    "$bin/ragcore" ingest --db "$work/base" --embedder hash --quiet "$work/docs.jsonl" >/dev/null
    mb=$(du -m "$work/base/data.mdb" | cut -f1)
    ids100=$(seq 1000 1099 | sed 's/^/d/' | tr '\n' ' ')
    for run in plain1 erase1 plain100 erase100; do
        rm -rf "$work/s" && cp -r "$work/base" "$work/s"
        case $run in
        plain1) args="d500" ; flag= ;;
        erase1) args="d500" ; flag=--erase ;;
        plain100) args=$ids100 ; flag= ;;
        erase100) args=$ids100 ; flag=--erase ;;
        esac
        t0=$(date +%s.%N)
        # shellcheck disable=SC2086
        "$bin/ragcore" delete --db "$work/s" $flag $args >/dev/null 2>"$work/err"
        t1=$(date +%s.%N)
        printf '%s docs, data.mdb %s MB, %-8s %6.2f s  %s\n' "$n" "$mb" "$run" \
            "$(echo "$t1 - $t0" | bc)" "$(tr '\n' ' ' < "$work/err")"
    done
done
