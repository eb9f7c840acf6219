#!/usr/bin/env bash
# test_lock_cli.sh - one writer per store, seen from the command line: while ragcore-server
# holds a store, every writing command (ingest, sync, delete, gc, check --repair, restore,
# keys) is refused with exit 2, naming the server and how to proceed, and changes nothing;
# reading commands work beside it and see its writes; delete and keys work through the
# server with --server; a second server is refused; kill -9 of the server frees the store.
set -uo pipefail
: "${RAGCORE_BIN:?}" "${RAGCORE_TEST_TMP:?}"
bin="$RAGCORE_BIN"
work="$RAGCORE_TEST_TMP/lock_cli"
rm -rf "$work" && mkdir -p "$work"
fails=0
check() { # check DESCRIPTION COMMAND... : the command must succeed
    local what=$1; shift
    if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); fi
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }
admin=lock-test-admin-key-0123
unset RAGCORE_API_KEY
spid=

# start_server LOG: starts ragcore-server on $db, sets $spid and $url, and waits until it is
# ready (it writes the port file before it opens the store).
start_server() {
    rm -f "$work/port"
    RAGCORE_ADMIN_KEY=$admin "$bin/ragcore-server" --db "$db" --listen 127.0.0.1:0 \
        --port-file "$work/port" --threads 2 2>>"$work/$1" &
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
# http METHOD PATH [BODY] with the admin key: prints the body, then the status on a line.
http() {
    curl -s -w '\n%{http_code}' -X "$1" -H "Authorization: Bearer ${KEY:-$admin}" \
        -H 'Content-Type: application/json' ${3:+--data "$3"} "$url$2"
}
status() { tail -n 1; }
docs() { "$bin/ragcore" stats --db "$db" --json | json 'print(d["collections"][0]["documents"])'; }

printf '{"_id":"d1","text":"Cats sleep most of the day in the sun."}\n{"_id":"d2","text":"Dogs guard the house at night."}\n{"_id":"dir/with space","text":"An id with a slash and a space."}\n' \
    > "$work/a.jsonl"
printf '{"_id":"n1","text":"Ferries cross the fjord every hour."}\n' > "$work/b.jsonl"
db="$work/db"
"$bin/ragcore" ingest --db "$db" --embedder hash --quiet "$work/a.jsonl" >/dev/null
"$bin/ragcore" backup --db "$db" "$work/bak" >/dev/null
check "server starts on the store" start_server server.log
holder="is open for writing by pid $spid (ragcore-server)"

# Writing commands are refused, name the holder, say how to proceed, and change nothing.
refused() { # refused NAME ADVICE COMMAND...: exit 2, message naming the server and ADVICE
    local name=$1 advice=$2; shift 2
    "$@" >"$work/out" 2>"$work/err"; local code=$?
    check "$name is refused with exit 2 while the server holds the store" [ "$code" -eq 2 ]
    check "$name names the holder and says how to proceed" \
        grep -q -e "$holder.*$advice" "$work/err"
}
remote="stop it first, or use --server URL to send the change to the running server"
refused "ingest" "$remote" "$bin/ragcore" ingest --db "$db" --quiet "$work/b.jsonl"
refused "sync" "$remote" "$bin/ragcore" sync --db "$db" "$work/b.jsonl"
refused "delete" "$remote" "$bin/ragcore" delete --db "$db" d1
refused "gc" "stop it first" "$bin/ragcore" gc --db "$db"
refused "check --repair" "stop it first" "$bin/ragcore" check --db "$db" --repair
refused "keys create" "$remote" "$bin/ragcore" keys --db "$db" create x --scopes read --collections '*'
check "nothing was written" [ "$(docs)" = 3 ]

# restore --force under the server: refused, and a write the server acknowledged after the
# backup survives the server's restart.
r=$(http POST /v1/collections/default/documents \
    '{"documents":[{"id":"ack","text":"An acknowledged write after the backup."}]}')
check "the server acknowledges an upsert" [ "$(status <<<"$r")" = 200 ]
refused "restore --force" "stop it first" "$bin/ragcore" restore --db "$db" --force "$work/bak"
check "a read-only check works beside the server" "$bin/ragcore" check --db "$db"
check "stats beside the server see its write" [ "$(docs)" = 4 ]
s=$("$bin/ragcore" search --db "$db" --json -k 5 --mode lexical "acknowledged write")
check "search beside the server finds its write" json 'assert d["results"][0]["doc_id"]=="ack", d' <<<"$s"
stop_server
check "server restarts" start_server server.log
holder="is open for writing by pid $spid (ragcore-server)"
check "the acknowledged write survived the refused restore" \
    [ "$(http GET /v1/collections/default/documents/ack | status)" = 200 ]

# keys: refused locally (the key keeps working), done through the server with --server.
out=$("$bin/ragcore" keys --server "$url" --key "$admin" create reader --scopes read --collections '*')
check "keys create --server returns the key" json 'assert d["key"].startswith("rck_") and d["name"]=="reader"' <<<"$out"
kid=$(json 'print(d["id"])' <<<"$out")
rkey=$(json 'print(d["key"])' <<<"$out")
search='{"query":"cats","k":1}'
check "the new key works" [ "$(KEY=$rkey http POST /v1/collections/default/search "$search" | status)" = 200 ]
refused "keys revoke" "$remote" "$bin/ragcore" keys --db "$db" revoke "$kid"
check "a locally refused revoke leaves the key working" \
    [ "$(KEY=$rkey http POST /v1/collections/default/search "$search" | status)" = 200 ]
out=$("$bin/ragcore" keys --db "$db" list)
check "keys list works beside the server" json 'assert "'"$kid"'" in [k["id"] for k in d["keys"]]' <<<"$out"
out=$(RAGCORE_API_KEY=$admin "$bin/ragcore" keys --server "$url" list)
check "keys list --server (key from RAGCORE_API_KEY)" json 'assert "'"$kid"'" in [k["id"] for k in d["keys"]]' <<<"$out"
out=$("$bin/ragcore" keys --server "$url" --key "$admin" revoke "$kid")
check "keys revoke --server prints what the local command prints" \
    json 'assert d=={"id":"'"$kid"'","revoked":True}, d' <<<"$out"
check "the revoked key stops working at once" \
    [ "$(KEY=$rkey http POST /v1/collections/default/search "$search" | status)" = 401 ]
"$bin/ragcore" keys --server "$url" --key "$admin" revoke no-such-key 2>"$work/err"; code=$?
check "keys revoke --server of an unknown id exits 2 with the server's message" \
    bash -c "[ $code -eq 2 ] && grep -q \"DELETE $url/v1/keys/no-such-key: 404 no API key with id 'no-such-key'\" '$work/err'"

# delete --server: same summary as the local command; unknown ids named, exit 2.
out=$("$bin/ragcore" delete --server "$url" --key "$admin" "dir/with space" d2 nope 2>"$work/err"); code=$?
check "delete --server deletes and sums up like the local command" \
    bash -c "[ $code -eq 2 ] && [ '$out' = 'deleted 2 documents' ]"
check "delete --server names the missing id and the server's message" \
    grep -q "documents/nope: 404 document 'nope' does not exist in collection 'default'" "$work/err"
check "the deletes are visible beside the server" [ "$(docs)" = 2 ]
s=$("$bin/ragcore" search --db "$db" --json -k 10 "dogs guard the house at night")
check "search beside the server never returns a deleted document" \
    json 'assert all(h["doc_id"] not in ("d2","dir/with space") for h in d["results"]), d' <<<"$s"
"$bin/ragcore" delete --server "$url" --key wrong-key d1 2>"$work/err"; code=$?
check "delete --server with a bad key exits 2 with the server's 401" \
    bash -c "[ $code -eq 2 ] && grep -q ': 401 ' '$work/err'"
"$bin/ragcore" delete --server "$url" d1 2>"$work/err" </dev/null; code=$?
check "--server without a key is a usage error" \
    bash -c "[ $code -eq 1 ] && grep -q 'needs an API key' '$work/err'"
"$bin/ragcore" delete --db "$db" --server "$url" --key "$admin" d1 2>"$work/err"; code=$?
check "--db with --server is a usage error" [ "$code" -eq 1 ]

# A second server on the same store exits with the message.
RAGCORE_ADMIN_KEY=$admin timeout 60 "$bin/ragcore-server" --db "$db" --listen 127.0.0.1:0 \
    2>"$work/second.log"; code=$?
check "a second server on the store exits non-zero" bash -c "[ $code -ne 0 ] && [ $code -ne 124 ]"
check "a second server names the holder" grep -q "$holder" "$work/second.log"

# kill -9 of the holder frees the store at once.
kill -9 "$spid"; wait "$spid" 2>/dev/null; spid=
check "after kill -9 of the server an ingest runs at once" \
    "$bin/ragcore" ingest --db "$db" --quiet "$work/b.jsonl"
check "and its documents are there" [ "$(docs)" = 3 ]

if [ $fails -ne 0 ]; then echo "$fails lock CLI checks failed"; exit 1; fi
echo "all lock CLI checks passed"
