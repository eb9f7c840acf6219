#!/usr/bin/env bash
# test_crypt.sh - encryption at rest end to end: a corpus with titles and metadata ingested
# into an encrypted store (with the embedding cache and the server's query log filled)
# leaves none of its words (>= 5 letters, titles and metadata values included) in any file
# of the store, while the same corpus in a plain store shows them all (so the grep can
# fail); no key and a wrong key are refused with RAG_EKEY's message; searches in every mode
# give the plain store's ids and scores, with either cipher (an unknown one is refused);
# `ragcore rekey` killed in the middle leaves a store
# that opens with the new key only, gives the same results, stays clean, and is finished
# by the next read-write open; `rekey --rotate-hash-key` killed at each of its kill points
# refuses lexical searches until a read-write open redoes it, then gives the same results.
set -uo pipefail
: "${RAGCORE_BIN:?}" "${RAGCORE_TEST_TMP:?}" "${RAGCORE_TEST_DATA:?}"
bin="$RAGCORE_BIN"
work="$RAGCORE_TEST_TMP/crypt"
rm -rf "$work" && mkdir -p "$work"
fails=0
check() { # check DESCRIPTION COMMAND... : the command must succeed
    local what=$1; shift
    if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); fi
}
unset RAGCORE_STORE_KEY RAGCORE_NEW_STORE_KEY RAGCORE_API_KEY
admin=crypt-test-admin-key-0123
key1="$work/key1" key2="$work/key2" bad="$work/bad"
python3 -c 'import os; print(os.urandom(32).hex())' > "$key1"
echo "a long passphrase for the rotated key" > "$key2"
python3 -c 'import os; print(os.urandom(32).hex())' > "$bad"

# The corpus: the embedder fixture's sentences as documents, each with a title and
# metadata values made of invented words (so titles and metadata are checked on their own).
python3 - "$RAGCORE_TEST_DATA/embed_all-MiniLM-L6-v2.json" "$work" <<'EOF'
import json, re, sys
fx, work = json.load(open(sys.argv[1])), sys.argv[2]
docs = [t for t, q in zip(fx["texts"], fx["is_query"]) if not q and len(t) > 20]
queries = [t for t, q in zip(fx["texts"], fx["is_query"]) if q][:4] or docs[:4]
syll = ["bar", "vel", "quo", "zin", "dra", "mok", "tep", "lus"]
def invented(i, salt):
    return "".join(syll[(i >> (3 * k) ^ salt) % 8] for k in range(3)) + "ix"
words = set()
with open(f"{work}/corpus.jsonl", "w") as out:
    for i, text in enumerate(docs):
        title = f"Chronicle {invented(i, 1)}"
        meta = {"category": invented(i, 2) + "wort", "author": invented(i, 5) + "berg"}
        out.write(json.dumps({"_id": "d%02d" % i, "title": title, "text": text, **meta}) + "\n")
        for s in [title, text, *meta.values()]:
            words.update(w.lower() for w in re.findall(r"[A-Za-z]{5,}", s))
open(f"{work}/words", "w").write("\n".join(sorted(words)) + "\n")
open(f"{work}/queries", "w").write("\n".join(q.replace("\n", " ") for q in queries) + "\n")
print(len(docs), "documents,", len(words), "distinct words of 5+ letters", file=sys.stderr)
EOF
echo '{"_id":"q1","text":"qq"}' > "$work/one.jsonl"

# The embedding cache needs a model embedder; the hash embedder keeps none.
emb=hash
if [ "${RAGCORE_SANITIZE:-OFF}" = ON ]; then # the encoder under ASan takes too long
    echo "note: sanitizer build: hash embedder, the embedding-cache part is not covered"
elif "$bin/ragcore" model pull all-MiniLM-L6-v2 >/dev/null 2>&1; then
    emb=all-MiniLM-L6-v2
else
    echo "note: all-MiniLM-L6-v2 is not available: the embedding-cache part is not covered"
fi

# found DIR: the corpus words found (case-insensitively) in the files under DIR, less the
# words of the store's own structure (table and meta key names: those found in a store
# holding one unrelated document, DIR's sibling "schema").
found() {
    python3 - "$1" "$work/words" "$work/schema" <<'EOF'
import os, sys
def blob(root):
    out = []
    for d, _, fs in os.walk(root):
        for f in fs:
            with open(os.path.join(d, f), "rb") as fh:
                out.append(fh.read().lower())
    return b"\n".join(out)
data, schema = blob(sys.argv[1]), blob(sys.argv[3])
words = [w for w in open(sys.argv[2]).read().split() if w.encode() not in schema]
hits = [w for w in words if w.encode() in data]
print(len(hits), " ".join(hits[:10]), file=sys.stderr)
print(len(hits))
EOF
}
ingest() { # ingest DIR [FLAGS...]
    local dir=$1; shift
    "$bin/ragcore" ingest --db "$dir" --embedder "$emb" --quiet "$@" "$work/corpus.jsonl" >/dev/null
}

# Fill the query log through the server.
spid=
stop_server() { [ -n "$spid" ] && kill "$spid" 2>/dev/null && wait "$spid"; spid=; }
trap 'stop_server' EXIT
serve_queries() { # serve_queries DIR [FLAGS...]: a few searches recorded with their raw text
    local dir=$1; shift
    rm -f "$work/port"
    RAGCORE_ADMIN_KEY=$admin "$bin/ragcore-server" --db "$dir" --listen 127.0.0.1:0 \
        --port-file "$work/port" --threads 2 --querylog-text raw "$@" 2>>"$work/server.log" &
    spid=$!
    local url=
    for _ in $(seq 1200); do
        if [ -s "$work/port" ]; then
            url="http://127.0.0.1:$(cat "$work/port")"
            [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/readyz")" = 200 ] && break
        fi
        kill -0 "$spid" 2>/dev/null || return 1
        sleep 0.1
    done
    while read -r q; do
        curl -s -o /dev/null -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
            --data "$(python3 -c 'import json,sys; print(json.dumps({"query": sys.argv[1]}))' "$q")" \
            "$url/v1/collections/default/search" || return 1
    done < "$work/queries"
    # The server writes its query log in 200 ms batches off the request path, so the
    # entries of the last searches show only after the next batch: wait for all of them.
    local n=0 want
    want=$(wc -l < "$work/queries")
    for _ in $(seq 100); do
        n=$(curl -s -H "Authorization: Bearer $admin" "$url/v1/querylog?limit=100" |
            python3 -c 'import json,sys; print(len(json.load(sys.stdin)["entries"]))')
        [ "$n" -ge "$want" ] && break
        sleep 0.1
    done
    stop_server
    [ "$n" = "$want" ] || { echo "query log: $n entries, expected $want"; return 1; }
}

# results DIR KEYFILE: ids and scores of every query in every mode.
results() {
    local dir=$1 kf=$2
    while read -r q; do
        for mode in dense lexical hybrid; do
            "$bin/ragcore" search --db "$dir" ${kf:+--key-file "$kf"} --mode "$mode" -k 5 --json "$q" |
                python3 -c 'import json,sys; print(" ".join("%s:%.6f" % (r["chunk_id"], r["score"]) for r in json.load(sys.stdin)["results"]))' ||
                echo "search failed"
        done
    done < "$work/queries"
}

"$bin/ragcore" ingest --db "$work/schema" --embedder "$emb" --key-file "$key1" --quiet "$work/one.jsonl" >/dev/null
ingest "$work/plain"
check "plain store: the server logs the queries" serve_queries "$work/plain"
ingest "$work/enc" --key-file "$key1"
check "encrypted store: the server (--key-file) logs the queries" serve_queries "$work/enc" --key-file "$key1"
check "the plain store shows the corpus words (the grep can fail)" \
    test "$(found "$work/plain")" -ge "$(($(wc -l < "$work/words") / 2))"
check "the encrypted store shows none of them" test "$(found "$work/enc")" = 0
check "its index file is sealed" sh -c "ls '$work/enc/index/'*.idx >/dev/null"

out=$("$bin/ragcore" search --db "$work/enc" 'anything' 2>&1); rc=$?
check "no key: exit 2" test "$rc" = 2
check "... naming the store as encrypted" grep -q "store '$work/enc' is encrypted" <<<"$out"
check "... and how to give the key" grep -q -- '--key-file, or RAGCORE_STORE_KEY' <<<"$out"
out=$("$bin/ragcore" search --db "$work/enc" --key-file "$bad" 'anything' 2>&1); rc=$?
check "wrong key: exit 2" test "$rc" = 2
check "... naming the wrong key" grep -q 'does not open it (wrong key)' <<<"$out"
out=$(RAGCORE_STORE_KEY=$(cat "$key1") "$bin/ragcore" search --db "$work/plain" 'anything' 2>&1); rc=$?
check "a key for a plain store: exit 2" test "$rc" = 2
check "... saying it is not encrypted" grep -q 'is not encrypted, but a key was given' <<<"$out"
check "RAGCORE_STORE_KEY opens the encrypted store" \
    sh -c "RAGCORE_STORE_KEY=\$(cat '$key1') '$bin/ragcore' search --db '$work/enc' -k 1 'cell' >/dev/null"

results "$work/plain" "" > "$work/r_plain"
results "$work/enc" "$key1" > "$work/r_enc"
check "results were produced" sh -c "! grep -q 'search failed' '$work/r_plain' && test \$(grep -c : '$work/r_plain') -ge 6"
check "encrypted results equal the plain store's (ids and scores, 3 modes)" cmp -s "$work/r_plain" "$work/r_enc"

# The records' cipher is chosen at creation (AES-256-GCM where the CPU has AES
# instructions); RAGCORE_STORE_CIPHER picks XChaCha20-Poly1305 for a portable store.
RAGCORE_STORE_CIPHER=xchacha20-poly1305 ingest "$work/enc_x" --key-file "$key1"
results "$work/enc_x" "$key1" > "$work/r_enc_x"
check "an XChaCha20-Poly1305 store gives the plain store's results" \
    cmp -s "$work/r_plain" "$work/r_enc_x"
check "... and stays clean" test "$(found "$work/enc_x")" = 0
check "... and rotates its key" \
    "$bin/ragcore" rekey --db "$work/enc_x" --key-file "$key1" --new-key-file "$key2"
results "$work/enc_x" "$key2" > "$work/r_enc_x2"
check "... after which it gives the same results" cmp -s "$work/r_plain" "$work/r_enc_x2"
# Records over about 2 KB (long chunks) lie on LMDB's overflow pages: a key rotation
# rewrites them in place and must keep every one under its key.
"$bin/ragcore" ingest --db "$work/enc_long" --embedder hash --chunk-tokens 1000 --quiet \
    --key-file "$key1" "$work/corpus.jsonl" >/dev/null
check "a store of long chunks rotates its key" \
    "$bin/ragcore" rekey --db "$work/enc_long" --key-file "$key1" --new-key-file "$key2"
check "... and ragcore check finds every record after it" \
    "$bin/ragcore" check --db "$work/enc_long" --key-file "$key2"
out=$(RAGCORE_STORE_CIPHER=rot13 "$bin/ragcore" ingest --db "$work/enc_bad" --key-file "$key1" \
    --embedder "$emb" --quiet "$work/one.jsonl" 2>&1); rc=$?
check "an unknown cipher is refused" test "$rc" != 0
check "... naming the variable and the ciphers" \
    grep -q "RAGCORE_STORE_CIPHER='rot13': the cipher must be 'xchacha20-poly1305' or 'aes-256-gcm'" <<<"$out"

check "ragcore check (key in RAGCORE_STORE_KEY) finds the encrypted store consistent" \
    sh -c "RAGCORE_STORE_KEY=\$(cat '$key1') '$bin/ragcore' check --db '$work/enc' >/dev/null"
check "... and refuses it without the key" \
    sh -c "! '$bin/ragcore' check --db '$work/enc' >/dev/null 2>&1"
check "ragcore check --key-file finds it consistent" \
    "$bin/ragcore" check --db "$work/enc" --key-file "$key1"
out=$("$bin/ragcore" check --db "$work/enc" --key-file "$bad" 2>&1); rc=$?
check "ragcore check --key-file with a wrong key: exit 2" test "$rc" = 2
check "... naming the wrong key" grep -q 'does not open it (wrong key)' <<<"$out"
check "ragcore check --repair --key-file runs on the encrypted store" \
    "$bin/ragcore" check --db "$work/enc" --repair --key-file "$key1"

# Key rotation killed after its first batch, then finished by a read-write open.
RAGCORE_TEST_REKEY_KILL=1 "$bin/ragcore" rekey --db "$work/enc" --key-file "$key1" \
    --new-key-file "$key2" >/dev/null 2>&1; rc=$?
check "rekey killed mid-way (kill point)" test "$rc" = 137
check "the old key is refused after the kill" \
    sh -c "! '$bin/ragcore' search --db '$work/enc' --key-file '$key1' x >/dev/null 2>&1"
results "$work/enc" "$key2" > "$work/r_mid"
check "mid-rotation results with the new key equal the plain store's" cmp -s "$work/r_plain" "$work/r_mid"
check "a read-write open with the new key finishes the rotation" \
    "$bin/ragcore" gc --db "$work/enc" --key-file "$key2"
results "$work/enc" "$key2" > "$work/r_after"
check "results after the rotation equal the plain store's" cmp -s "$work/r_plain" "$work/r_after"
check "the store is still clean" test "$(found "$work/enc")" = 0
check "a second rekey (back to a raw key) succeeds" \
    "$bin/ragcore" rekey --db "$work/enc" --key-file "$key2" --new-key-file "$bad"
check "... and the passphrase is refused then" \
    sh -c "! '$bin/ragcore' search --db '$work/enc' --key-file '$key2' x >/dev/null 2>&1"
results "$work/enc" "$bad" > "$work/r_after2"
check "... results unchanged" cmp -s "$work/r_plain" "$work/r_after2"
check "rekey of a plain store is refused" \
    sh -c "! '$bin/ragcore' rekey --db '$work/plain' --new-key-file '$key2' >/dev/null 2>&1"

# Exact duplicates are still found under the keyed hashes of an encrypted store (the
# duplicate index's exact keys): a copy of a document's text under another id is skipped
# as an exact duplicate, in both stores alike.
head -n 1 "$work/corpus.jsonl" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({**d, "_id": "copy"}))' > "$work/dup.jsonl"
for s in plain enc; do
    flags=(); [ "$s" = enc ] && flags=(--key-file "$bad")
    "$bin/ragcore" ingest --db "$work/$s" "${flags[@]}" "$work/dup.jsonl" > "$work/dup_$s.out" 2>&1
    check "$s store: an exact copy is skipped as a duplicate" \
        grep -q 'duplicates (skip, .*): 1 exact' "$work/dup_$s.out"
done

# backup and restore take --key-file like every other command (their copy is checked).
check "backup --key-file of the encrypted store" \
    "$bin/ragcore" backup --db "$work/enc" --key-file "$bad" "$work/bk"
check "restore --key-file of that backup" \
    "$bin/ragcore" restore "$work/bk" --db "$work/restored" --key-file "$bad"
results "$work/restored" "$bad" > "$work/r_restored"
check "... gives the plain store's results" cmp -s "$work/r_plain" "$work/r_restored"
check "backup without the key is refused" \
    sh -c "! '$bin/ragcore' backup --db '$work/enc' '$work/bk2' >/dev/null 2>&1"

# Hash-key rotation (rekey --rotate-hash-key) killed after each of its first transactions
# (1: the new hash key and the pending mark committed, nothing rewritten; then the lexical
# purge, the re-index with the chunk-hash counts, the duplicate index, the embedding
# cache): until a read-write open redoes it, a read-only lexical search refuses instead of
# mixing two hash keys; after it, every mode gives the plain store's results, the store
# checks clean and shows no corpus word.
ingest "$work/enc_h" --key-file "$key1"
cur=$key1 next=$key2
for n in 1 2 3 4 5; do
    RAGCORE_TEST_HASHROT_KILL=$n "$bin/ragcore" rekey --db "$work/enc_h" --key-file "$cur" \
        --new-key-file "$next" --rotate-hash-key >/dev/null 2>&1; rc=$?
    check "rekey --rotate-hash-key killed after $n transaction(s) (kill point)" test "$rc" = 137
    out=$("$bin/ragcore" search --db "$work/enc_h" --key-file "$next" --mode lexical cell 2>&1)
    check "... a lexical search refuses while the rotation is pending" \
        grep -q "hash key is being replaced" <<<"$out"
    check "... a read-write open redoes the rotation" \
        "$bin/ragcore" gc --db "$work/enc_h" --key-file "$next"
    results "$work/enc_h" "$next" > "$work/r_hash$n"
    check "... results then equal the plain store's" cmp -s "$work/r_plain" "$work/r_hash$n"
    check "... and ragcore check finds it consistent" \
        "$bin/ragcore" check --db "$work/enc_h" --key-file "$next"
    t=$cur cur=$next next=$t
done
check "rekey --rotate-hash-key runs to the end" "$bin/ragcore" rekey --db "$work/enc_h" \
    --key-file "$cur" --new-key-file "$next" --rotate-hash-key
results "$work/enc_h" "$next" > "$work/r_hash_end"
check "... with the plain store's results" cmp -s "$work/r_plain" "$work/r_hash_end"
check "... and shows no corpus word" test "$(found "$work/enc_h")" = 0

echo "$fails failure(s)"
[ "$fails" = 0 ]
