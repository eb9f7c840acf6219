#!/usr/bin/env bash
# test_privacy_cli.sh - privacy from the command line and over HTTP: `ragcore delete --erase`
# and `ragcore pii apply` leave no removed value in any file of the store (as UTF-8,
# UTF-16LE and digit-only forms), a plain delete does (so the grep can fail); the server's
# query log keeps queries masked by default (raw, hashed or not at all when configured),
# context entries hold chunk ids and scores, never passage text; POST .../erase and
# POST .../pii/apply erase through the server and drop the query-log entries naming the
# documents; `ragcore sync --erase` (a file changed, one removed), `ingest --erase`, an
# upsert with "erase" and a remote `sync --server --erase` leave no old value either; the
# access log never holds a request body; store files are 0600 in a 0700 directory.
set -uo pipefail
: "${RAGCORE_BIN:?}" "${RAGCORE_TEST_TMP:?}"
bin="$RAGCORE_BIN"
work="$RAGCORE_TEST_TMP/privacy_cli"
rm -rf "$work" && mkdir -p "$work"
fails=0
absent() { ! grep -q "$1" <<<"$2"; } # absent PATTERN TEXT
check() { # check DESCRIPTION COMMAND... : the command must succeed
    local what=$1; shift
    if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); fi
}
admin=privacy-test-admin-key-0123
unset RAGCORE_API_KEY
spid=
values=("zelda.quux@example.org" "4111 1111 1111 1111" "+44 20 7946 0111" "078-05-1120"
        "fr76 3000 6000 0112 3456 7890 189")

# found DIR: how many times any form of any value occurs in the files under DIR.
found() {
    python3 - "$1" "${values[@]}" <<'EOF'
import os, sys
root, vals = sys.argv[1], sys.argv[2:]
blobs = []
for d, _, fs in os.walk(root):
    for f in fs:
        with open(os.path.join(d, f), "rb") as fh:
            blobs.append(fh.read())
n = 0
for v in vals:
    forms = [v.encode(), v.encode("utf-16-le")]
    digits = "".join(c for c in v if c.isdigit())
    if len(digits) >= 9:
        forms.append(digits.encode())
    n += sum(b.count(f) for b in blobs for f in forms)
print(n)
EOF
}
text='Customer record: write to zelda.quux@example.org or call +44 20 7946 0111. Card 4111 1111 1111 1111, IBAN fr76 3000 6000 0112 3456 7890 189, SSN 078-05-1120.'
printf '{"_id":"secret","text":"%s"}\n{"_id":"other","text":"Gardening notes: tomatoes need sun."}\n' "$text" > "$work/docs.jsonl"
ingest() { "$bin/ragcore" ingest --db "$1" --embedder hash --quiet "$work/docs.jsonl" >/dev/null; }

# Plain delete: the values stay in the file.
ingest "$work/plain"
"$bin/ragcore" delete --db "$work/plain" secret >/dev/null
check "a plain delete leaves the values in the store's files" test "$(found "$work/plain")" -gt 0

# delete --erase
ingest "$work/erase"
check "delete --erase succeeds" "$bin/ragcore" delete --db "$work/erase" --erase secret
check "delete --erase leaves no value" test "$(found "$work/erase")" = 0
check "the other document stays" sh -c "'$bin/ragcore' stats --db '$work/erase' | grep -q 'documents: *1\|1 document\|\"documents\": *1' || '$bin/ragcore' stats --db '$work/erase' --json | grep -q '\"documents\":1'"
out=$("$bin/ragcore" delete --db "$work/erase" --erase nosuch 2>&1)
check "delete --erase of an absent id exits 2 naming it" sh -c "'$bin/ragcore' delete --db '$work/erase' --erase nosuch >/dev/null 2>&1; test \$? = 2"
check "... naming it" grep -q nosuch <<<"$out"

# pii apply
ingest "$work/apply"
check "pii apply refuses a collection whose policy is off" sh -c "'$bin/ragcore' pii apply --db '$work/apply' --collection default >/dev/null 2>&1; test \$? = 1"
"$bin/ragcore" collection set --db "$work/apply" --collection default --set pii=mask >/dev/null
check "pii apply succeeds" "$bin/ragcore" pii apply --db "$work/apply" --collection default
check "pii apply leaves no value" test "$(found "$work/apply")" = 0
check "the document is kept, masked" sh -c "'$bin/ragcore' search --db '$work/apply' --json 'customer record' | grep -q '\[EMAIL\]'"

# sync --erase: one file changed, one removed; ingest --erase replacing a document.
src="$work/src"
mkdir -p "$src"
printf '%s\n' "$text" > "$src/secret.txt"
printf 'Old ledger, kept apart: card 4111 1111 1111 1111 and SSN 078-05-1120 on file.\n' > "$src/gone.txt"
printf 'Gardening notes: tomatoes need sun.\n' > "$src/other.txt"
"$bin/ragcore" sync --db "$work/sync" --embedder hash "$src" >/dev/null
check "a synced store holds the values (the check can fail)" test "$(found "$work/sync")" -gt 0
printf 'Customer record, rewritten: nothing personal is left.\n' > "$src/secret.txt"
rm "$src/gone.txt"
out=$("$bin/ragcore" sync --db "$work/sync" --erase "$src")
check "sync --erase replaces one document and deletes one" grep -q '1 updated, 1 unchanged, 1 deleted' <<<"$out"
check "sync --erase leaves no value" test "$(found "$work/sync")" = 0
ingest "$work/replace"
printf '{"_id":"secret","text":"Customer record, rewritten: nothing personal is left."}\n' > "$work/new.jsonl"
check "ingest --erase replaces the document" sh -c "'$bin/ragcore' ingest --db '$work/replace' --erase --quiet '$work/new.jsonl' >/dev/null"
check "ingest --erase leaves no value of the old version" test "$(found "$work/replace")" = 0

# File modes.
check "store directory is 0700" test "$(stat -c %a "$work/erase")" = 700
check "data.mdb is 0600" test "$(stat -c %a "$work/erase/data.mdb")" = 600
check "lock.mdb is 0600" test "$(stat -c %a "$work/erase/lock.mdb")" = 600

# The server.
db="$work/srv"
ingest "$db"
start_server() { # start_server LOG [FLAGS...]
    local log=$1; shift
    rm -f "$work/port"
    RAGCORE_ADMIN_KEY=$admin "$bin/ragcore-server" --db "$db" --listen 127.0.0.1:0 \
        --port-file "$work/port" --threads 2 "$@" 2>>"$work/$log" &
    spid=$!
    for _ in $(seq 1200); do
        if [ -s "$work/port" ]; then
            url="http://127.0.0.1:$(cat "$work/port")"
            [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/readyz")" = 200 ] && return 0
        fi
        kill -0 "$spid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
stop_server() { [ -n "$spid" ] && kill "$spid" 2>/dev/null && wait "$spid"; spid=; }
trap 'stop_server' EXIT
http() {
    curl -s -w '\n%{http_code}' -X "$1" -H "Authorization: Bearer $admin" \
        -H 'Content-Type: application/json' ${3:+--data "$3"} "$url$2"
}
querylog() { sleep 0.5; curl -s -H "Authorization: Bearer $admin" "$url/v1/querylog?limit=1000"; }

check "server starts" start_server server.log
http POST /v1/collections/default/search '{"query":"mail zelda.quux@example.org about card 4111 1111 1111 1111"}' >/dev/null
http POST /v1/collections/default/search '{"query":"tomatoes","filter":"title = \"zelda.quux@example.org\""}' >/dev/null
http POST /v1/collections/default/context '{"query":"who is zelda.quux@example.org"}' >/dev/null
log=$(querylog)
check "queries are logged masked by default" grep -q '\[EMAIL\]' <<<"$log"
check "no raw value in the query log" absent 'zelda.quux\|4111 1111' "$log"
check "context entries hold hits" python3 -c "
import json,sys; d=json.loads(sys.argv[1]); e=[x for x in d['entries'] if x.get('endpoint')=='context'][0]
assert isinstance(e['context'], list) and e['context'] and 'chunk_id' in e['context'][0], e
assert 'text' not in json.dumps(e['context']) and 'Customer' not in json.dumps(e), e" "$log"
check "the access log holds no body" sh -c "! grep -q 'zelda\|tomatoes need' '$work/server.log'"
r=$(http POST /v1/collections/default/erase '{"ids":["secret"]}')
echo "$log" > "$work/querylog_before.json"
check "POST /erase answers 200" test "$(tail -n 1 <<<"$r")" = 200
check "... counting the query-log entries it removed" python3 -c "
import json,sys; d=json.loads(sys.argv[1]); assert d['documents']==1 and d['log_entries']>=2, d" "$(head -n -1 <<<"$r")"
check "no query-log entry names the document" absent '"secret"' "$(querylog)"
check "POST /erase of an absent id answers 404" test "$(http POST /v1/collections/default/erase '{"ids":["secret"]}' | tail -n 1)" = 404
check "POST /erase without ids answers 400" test "$(http POST /v1/collections/default/erase '{}' | tail -n 1)" = 400
check "pii apply with the policy off answers 400" test "$(http POST /v1/collections/default/pii/apply | tail -n 1)" = 400
# an upsert with "erase" replacing a document; a remote sync with --erase
http POST /v1/collections/default/documents "{\"documents\":[{\"id\":\"again\",\"text\":\"$text\"}]}" >/dev/null
r=$(http POST /v1/collections/default/documents '{"documents":[{"id":"again","text":"Rewritten: nothing personal."}],"erase":true}')
check "an upsert with erase answers 200" test "$(tail -n 1 <<<"$r")" = 200
check "an upsert with a non-boolean erase answers 400" test "$(http POST /v1/collections/default/documents '{"documents":[{"id":"x","text":"y"}],"erase":1}' | tail -n 1)" = 400
rsrc="$work/rsrc"
mkdir -p "$rsrc"
printf '%s\n' "$text" > "$rsrc/secret.txt"
printf 'Gardening notes: tomatoes need sun.\n' > "$rsrc/other.txt"
"$bin/ragcore" sync --server "$url" --key "$admin" --collection remote "$rsrc" >/dev/null
rm "$rsrc/secret.txt"
out=$("$bin/ragcore" sync --server "$url" --key "$admin" --collection remote --erase "$rsrc")
check "a remote sync --erase deletes the vanished document" grep -q '1 deleted' <<<"$out"
stop_server
check "the server's erasure left no value in the store" test "$(found "$db")" = 0

# Query texts raw, hashed, or not kept.
for mode in raw hash off; do
    check "server starts with --querylog-text $mode" start_server "server_$mode.log" --querylog-text "$mode"
    http POST /v1/collections/default/search "{\"query\":\"mail-$mode zelda.quux@example.org\"}" >/dev/null
    log=$(querylog)
    case $mode in
    raw) check "raw keeps the query" grep -q 'zelda.quux@example.org' <<<"$log" ;;
    hash) check "hash keeps a keyed hash" grep -q '\[EMAIL:[0-9a-f]\{12\}\]' <<<"$log" ;;
    off) check "off keeps no query text" absent 'mail-off' "$log" ;;
    esac
    stop_server
done
check "--querylog-text rejects other words" sh -c "! '$bin/ragcore-server' --db '$db' --querylog-text plain 2>/dev/null"

echo "$fails failure(s)"
[ "$fails" = 0 ]
