#!/usr/bin/env bash
# test_sync_cli.sh - `ragcore sync` on real files: modify, delete, rename and touch without
# change between syncs, with the exact outcome counts and the document set checked; `gc`.
set -uo pipefail
: "${RAGCORE_BIN:?}" "${RAGCORE_TEST_TMP:?}"
bin="$RAGCORE_BIN/ragcore"
work="$RAGCORE_TEST_TMP/sync_cli"
rm -rf "$work" && mkdir -p "$work/src/sub"
fails=0
check() { local what=$1; shift; if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails+1)); fi; }
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read())['$1'])"; }
ids() { "$bin" search --db "$work/db" --json -k 100 --mode lexical "alpha beta gamma delta" |
        python3 -c "import json,sys; print(' '.join(sorted({h['doc_id'] for h in json.load(sys.stdin)['results']})))"; }

echo "alpha document one" > "$work/src/a.txt"
echo "beta document two" > "$work/src/b.txt"
printf '# Gamma\n\ngamma notes\n' > "$work/src/sub/c.md"
out=$("$bin" sync --db "$work/db" --embedder hash --json "$work/src")
check "first sync adds 3" [ "$(field added <<<"$out")" = 3 ]

touch -d '2030-01-01' "$work/src/a.txt"                 # touched, same content
echo "beta document two, revised" > "$work/src/b.txt"   # modified
mv "$work/src/sub/c.md" "$work/src/sub/d.md"           # renamed
echo "delta appears" > "$work/src/e.txt"                # new
out=$("$bin" sync --db "$work/db" --json "$work/src")
check "touch without change is unchanged" [ "$(field unchanged <<<"$out")" = 1 ]
check "modified file is updated" [ "$(field updated <<<"$out")" = 1 ]
check "renamed + new file are added" [ "$(field added <<<"$out")" = 2 ]
check "renamed-away file is deleted" [ "$(field deleted <<<"$out")" = 1 ]
check "document set is exactly the files" [ "$(ids)" = "$work/src/a.txt $work/src/b.txt $work/src/e.txt $work/src/sub/d.md" ]
s=$("$bin" search --db "$work/db" --json -k 5 --mode lexical "revised")
check "updated text is searchable" python3 -c "import json,sys; r=json.loads(sys.argv[1])['results']; assert r and 'revised' in r[0]['text']" "$s"

rm "$work/src/e.txt"
out=$("$bin" sync --db "$work/db" --json "$work/src")
check "deleted file is removed" [ "$(field deleted <<<"$out")" = 1 ]
out=$("$bin" sync --db "$work/db" --json "$work/src")
check "steady state: all unchanged" [ "$(field unchanged <<<"$out")" = 3 ]
"$bin" sync --db "$work/db" "$work/missing" 2>"$work/err"; code=$?
check "a missing path is refused, nothing deleted" bash -c "[ $code -eq 2 ] && grep -q missing '$work/err'"
st=$("$bin" stats --db "$work/db" --json)
check "stats reports last sync and freshness" python3 -c "import json,sys; c=json.loads(sys.argv[1])['collections'][0]; assert c['documents']==3 and c['last_sync']>0 and c['sync_lag_s']>=0 and 'stale_documents' in c and 'expired_not_purged' in c, c" "$st"
out=$("$bin" gc --db "$work/db" --json)
check "gc with nothing expired purges 0" [ "$(field purged <<<"$out")" = 0 ]
"$bin" sync --db "$work/db" --embedder hash-64 "$work/src" 2>/dev/null; code=$?
check "sync with another embedder is refused" [ "$code" -eq 1 ]
# One SIGTERM only, sent to the process itself (timeout(1) would send a second one when its own
# alarm fires, which can land inside LeakSanitizer's exit-time scan); a hard kill after 120 s
# turns a hang into a failure instead of a stuck CI job.
"$bin" sync --db "$work/db" --watch 1 "$work/src" >"$work/watch.out" 2>&1 & wpid=$!
sleep 2.5; kill -TERM $wpid 2>/dev/null
for _ in $(seq 1200); do kill -0 $wpid 2>/dev/null || break; sleep 0.1; done
if kill -0 $wpid 2>/dev/null; then kill -KILL $wpid; wait $wpid; wcode=hung; else wait $wpid; wcode=$?; fi
check "--watch exits 0 on SIGTERM" [ "$wcode" = 0 ]
check "--watch prints a freshness line per cycle" [ "$(grep -c 'freshness:' "$work/watch.out")" -ge 2 ]
[ $fails -eq 0 ] || { echo "$fails sync checks failed"; exit 1; }
echo "all sync checks passed"
