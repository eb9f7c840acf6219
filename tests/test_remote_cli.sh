#!/usr/bin/env bash
# test_remote_cli.sh - `ragcore ingest --server` and `ragcore sync --server` against a real
# ragcore-server, side by side with the same commands on a local store: the same summary
# counts and the same document ids after every step (first ingest, unchanged re-sync,
# relative then absolute roots, a modified, a renamed, a deleted and a new file, a file
# that fails to extract and keeps its version, an emptied root refused unless
# --allow-empty), batches smaller than the corpus, and the errors of a missing or wrong key.
set -uo pipefail
: "${RAGCORE_BIN:?}" "${RAGCORE_TEST_TMP:?}"
bin=$RAGCORE_BIN
work="$RAGCORE_TEST_TMP/remote_cli"
rm -rf "$work" && mkdir -p "$work/src/sub"
fails=0
check() { local what=$1; shift; if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails+1)); fi; }
admin=remote-cli-admin-key-0123456789
spid=
stop_server() { [ -n "$spid" ] && kill "$spid" 2>/dev/null && wait "$spid"; spid=; }
trap 'stop_server' EXIT
RAGCORE_ADMIN_KEY=$admin "$bin/ragcore-server" --db "$work/remote" --listen 127.0.0.1:0 \
    --port-file "$work/port" --embedder hash --threads 2 2>>"$work/server.log" &
spid=$!
for _ in $(seq 1 100); do [ -s "$work/port" ] && break; sleep 0.1; done
url="http://127.0.0.1:$(cat "$work/port")"
for _ in $(seq 1 100); do curl -fs "$url/readyz" >/dev/null && break; sleep 0.1; done
check "server is ready" curl -fs "$url/readyz" -o /dev/null

# counts KEYS...: the summary JSON's fields, one line
counts() { python3 -c "import json,sys; d=json.loads(sys.stdin.read()); print(' '.join(str(d[k]) for k in sys.argv[1:]))" "$@"; }
# the ids of the remote collection (through the listing, 2 per page) and of the local store
remote_ids() {
    python3 - "$url" "$admin" <<'PY'
import json, sys, urllib.request, urllib.parse
url, key = sys.argv[1], sys.argv[2]
ids, after = [], None
while True:
    q = "limit=2" + ("&after=" + urllib.parse.quote(after, safe="") if after else "")
    req = urllib.request.Request(url + "/v1/collections/default/documents?" + q,
                                 headers={"Authorization": "Bearer " + key})
    page = json.load(urllib.request.urlopen(req))
    ids += [d["id"] for d in page["documents"]]
    after = page["next"]
    if not after:
        break
print(" ".join(ids))
PY
}
local_ids() {
    "$bin/ragcore" search --db "$work/local" --json -k 100 --mode lexical \
        "alpha beta gamma delta epsilon jsonl notes" |
        python3 -c "import json,sys; print(' '.join(sorted({h['doc_id'] for h in json.load(sys.stdin)['results']})))"
}
# both KEYS -- ARGS...: runs the command on the local store and through the server with
# --json; the named counts must agree. Sets $lout, $rout and $lcode, $rcode.
both() {
    local keys=() cmd
    while [ "$1" != "--" ]; do keys+=("$1"); shift; done
    shift
    cmd=$1; shift
    lout=$("$bin/ragcore" "$cmd" --db "$work/local" --json "$@" 2>"$work/local.err"); lcode=$?
    rout=$(RAGCORE_API_KEY=$admin "$bin/ragcore" "$cmd" --server "$url" --json "$@" 2>"$work/remote.err"); rcode=$?
    local l r
    l=$(counts "${keys[@]}" <<<"$lout" 2>/dev/null) r=$(counts "${keys[@]}" <<<"$rout" 2>/dev/null)
    [ -n "$l" ] && [ "$l" = "$r" ] && [ "$lcode" = "$rcode" ] ||
        { echo "  local ($lcode): $lout"; echo "  remote ($rcode): $rout"; cat "$work/remote.err"; return 1; }
}
same_ids() {
    local l r
    l=$(local_ids) r=$(remote_ids)
    [ -n "$r" ] && [ "$l" = "$r" ] || { echo "  local:  $l"; echo "  remote: $r"; return 1; }
}

echo "alpha document one" >"$work/src/a.txt"
echo "beta document two" >"$work/src/b.txt"
printf '# Gamma\n\ngamma notes\n' >"$work/src/sub/c.md"
printf '{"_id":"j1","text":"jsonl alpha one","lang":"de"}\n{"_id":"j2","text":"jsonl two"}\n' \
    >"$work/src/c.jsonl"
printf 'PK\003\004' >"$work/src/x.docx"
cd "$work" || exit 1

# ingest: same counts, exit 2 for the skipped .docx in both, same ids
check "ingest --server counts as a local ingest" \
    both documents replaced chunks errors documents_seen -- ingest --embedder hash src
check "ingest exits 2 (a skipped file) both ways" [ "$lcode" = 2 ]
check "the .docx is listed as unsupported by the remote ingest" grep -q "x.docx: unsupported format" "$work/remote.err"
check "ids agree after ingest" same_ids
check "file ids are absolute paths" grep -q "$work/src/a.txt" <<<"$(remote_ids)"

# sync right after: all unchanged; twice; then with the absolute root: ids stable
check "first sync: 0 added 0 deleted, all unchanged" both added updated unchanged deleted kept -- sync src
check "  ... 5 unchanged" [ "$(counts unchanged <<<"$rout")" = 5 ]
check "second sync: 0 added 0 deleted" both added updated unchanged deleted -- sync src
check "  ... 0 added, 0 deleted" [ "$(counts added deleted <<<"$rout")" = "0 0" ]
check "absolute root: 0 added 0 deleted" both added updated unchanged deleted -- sync "$work/src"
check "  ... remote: 0 added, 0 deleted" [ "$(counts added deleted <<<"$rout")" = "0 0" ]

# modified, renamed, deleted, new
echo "beta document two, revised" >"$work/src/b.txt"
mv "$work/src/sub/c.md" "$work/src/sub/d.md"
echo "delta appears" >"$work/src/e.txt"
check "changes: same added/updated/unchanged/deleted" both added updated unchanged deleted -- sync src
check "  ... 2 added, 1 updated, 1 deleted" [ "$(counts added updated deleted <<<"$rout")" = "2 1 1" ]
check "ids agree after the changes" same_ids
check "the renamed file is stored under its new name" grep -q "$work/src/sub/d.md" <<<"$(remote_ids)"

# a file that fails to extract keeps its stored version
printf '\377\376\000\330bad' >"$work/src/a.txt"
check "an unreadable file is kept both ways" both added deleted kept -- sync src
check "  ... 1 kept, 0 deleted" [ "$(counts kept deleted <<<"$rout")" = "1 0" ]
check "ids agree (a.txt kept)" same_ids
echo "alpha document one" >"$work/src/a.txt"

# an emptied root that held documents is refused, unless --allow-empty
rm "$work/src/sub/d.md"
both documents_seen -- sync src/sub >/dev/null
check "an emptied root is refused both ways, with exit 2" [ "$lcode" = 2 ] && [ "$rcode" = 2 ]
check "  ... naming --allow-empty" grep -q "allow-empty" "$work/remote.err"
check "  ... and nothing was deleted" same_ids
check "--allow-empty deletes it both ways" both deleted -- sync --allow-empty src/sub
check "  ... 1 deleted" [ "$(counts deleted <<<"$rout")" = 1 ]
check "ids agree at the end" same_ids

# batches smaller than the corpus: the same result
for i in $(seq 1 9); do echo "epsilon file $i" >"$work/src/sub/f$i.txt"; done
check "an ingest in batches of 2 counts as a local one" \
    both documents replaced chunks errors -- ingest --batch 2 src
check "  ... 9 new files, 5 replaced" [ "$(counts documents replaced <<<"$rout")" = "14 5" ]
check "ids agree after the batched ingest" same_ids

# keys: none, or a wrong one
out=$(env -u RAGCORE_API_KEY "$bin/ragcore" ingest --server "$url" src 2>&1); code=$?
check "no key: exit 1 naming --key" [ "$code" = 1 ] && grep -q -- "--key" <<<"$out"
out=$("$bin/ragcore" sync --server "$url" --key wrong-key src 2>&1); code=$?
check "a wrong key: exit 2 with the server's 401 message" [ "$code" = 2 ] && grep -q "401" <<<"$out"
out=$("$bin/ragcore" sync --server "$url" --db "$work/local" src 2>&1); code=$?
check "--server with --db is refused" [ "$code" = 1 ]

stop_server
[ "$fails" -eq 0 ] && echo "all remote CLI checks passed" || { echo "$fails failed"; exit 1; }
