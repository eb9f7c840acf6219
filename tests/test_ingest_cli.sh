#!/usr/bin/env bash
# test_ingest_cli.sh - `ragcore ingest` and `ragcore sync` as front doors of the library's
# one ingest path: ids stable for relative and absolute paths, --metadata and front matter
# as filterable metadata, skipped files listed with their reason, a file that fails to
# extract kept by sync, an emptied root refused (--allow-empty deletes), and policy flags
# on new and existing collections (`ragcore collection show|set`).
set -uo pipefail
: "${RAGCORE_BIN:?}" "${RAGCORE_TEST_TMP:?}"
bin="$RAGCORE_BIN/ragcore"
work="$RAGCORE_TEST_TMP/ingest_cli"
rm -rf "$work" && mkdir -p "$work/kb/sub"
fails=0
check() { local what=$1; shift; if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails+1)); fi; }
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read())$1)"; }

printf -- '---\ntitle: Pump Manual\nlang: de\nyear: 2022\n---\n# Pumps\n\nPrime the centrifugal pump before starting it.\n' > "$work/kb/pump.md"
echo "Valves must be inspected for leaks every quarter." > "$work/kb/sub/valves.txt"
printf 'PK\003\004\024\000\006\000fake word document' > "$work/kb/spec.docx"
db="$work/db"

# ---- ingest: relative path, --metadata, front matter, skipped files -------------------------
out=$(cd "$work" && "$bin" ingest --db db --embedder hash --json --quiet --metadata team=ops \
      --metadata year=1999 kb 2>"$work/err")
code=$?
check "a skipped .docx makes the exit status 2" [ "$code" -eq 2 ]
check "the .docx is listed as an unsupported format, not binary data" bash -c "
grep -q 'spec.docx: unsupported format (.docx' '$work/err' && ! grep -q 'binary' '$work/err'"
check "summary lists the skipped file with its reason" python3 -c "
import json,sys; d=json.loads(sys.argv[1]); f=d['skipped']['files']
assert d['documents'] == 2 and d['skipped']['reasons'] == {'unsupported': 1}, d
assert f[0]['path'].endswith('spec.docx') and 'unsupported format' in f[0]['reason'], f" "$out"
s=$("$bin" search --db "$db" --json --mode lexical --filter 'lang = "de" AND team = "ops" AND year = 2022' "centrifugal pump")
check "front matter and --metadata are filterable metadata (the file's own keys win)" python3 -c "
import json,sys; r=json.loads(sys.argv[1])['results']
assert len(r) == 1 and r[0]['title'] == 'Pump Manual' and 'lang:' not in r[0]['text'], r
assert r[0]['doc_id'] == sys.argv[2], r" "$s" "$work/kb/pump.md"

# ---- sync: absolute after relative ingest changes nothing -----------------------------------
rm "$work/kb/spec.docx"
out=$("$bin" sync --db "$db" --json "$work/kb")
check "absolute sync after a relative ingest: 0 added, 0 deleted" python3 -c "
import json,sys; d=json.loads(sys.argv[1]); assert d['added'] == 0 and d['deleted'] == 0, d" "$out"
out=$(cd "$work" && "$bin" sync --db db --json kb)
check "relative sync after it: 0 added, 0 deleted, 2 unchanged" python3 -c "
import json,sys; d=json.loads(sys.argv[1])
assert d['added'] == 0 and d['deleted'] == 0 and d['unchanged'] == 2, d" "$out"

# ---- a file that fails to extract keeps its stored version ----------------------------------
printf 'Valves\000now binary' > "$work/kb/sub/valves.txt"
out=$("$bin" sync --db "$db" --json "$work/kb" 2>"$work/err")
check "a file that fails to extract is kept, not deleted" python3 -c "
import json,sys; d=json.loads(sys.argv[1]); assert d['kept'] == 1 and d['deleted'] == 0, d" "$out"
check "the failure is reported with the file's name" grep -q 'valves.txt: binary data' "$work/err"
s=$("$bin" search --db "$db" --json --mode lexical "valves inspected leaks")
check "its stored version is still searchable" python3 -c "
import json,sys; r=json.loads(sys.argv[1])['results']; assert r and r[0]['doc_id'].endswith('valves.txt'), r" "$s"

# ---- an emptied root is refused unless --allow-empty ------------------------------------------
mkdir -p "$work/empty" && echo "Gaskets seal flanges." > "$work/empty/g.txt"
"$bin" sync --db "$db" --collection parts --json "$work/empty" >/dev/null
rm "$work/empty/g.txt"
"$bin" sync --db "$db" --collection parts "$work/empty" 2>"$work/err"; code=$?
check "an emptied root is refused and names --allow-empty" bash -c "
[ $code -eq 2 ] && grep -q 'yielded no document' '$work/err' && grep -q -- '--allow-empty' '$work/err'"
check "nothing was deleted" bash -c "'$bin' stats --db '$db' --json | python3 -c '
import json,sys; c=[c for c in json.load(sys.stdin)[\"collections\"] if c[\"name\"]==\"parts\"][0]; assert c[\"documents\"]==1, c'"
out=$("$bin" sync --db "$db" --collection parts --allow-empty --json "$work/empty")
check "--allow-empty deletes them" [ "$(field "['deleted']" <<<"$out")" = 1 ]

# ---- policy flags: a new collection's policy; refused on an existing one ------------------------
echo "Contact ops@example.com about pump failures." > "$work/kb/contact.txt"
"$bin" ingest --db "$db" --collection masked --pii mask --quiet "$work/kb/contact.txt" >/dev/null
check "collection show reports the policy set by the flags" bash -c "
'$bin' collection show --db '$db' --collection masked --json | grep -q '\"pii\":\"mask\"'"
"$bin" ingest --db "$db" --collection masked --pii off --quiet "$work/kb/contact.txt" 2>"$work/err"; code=$?
check "a contradicting flag is refused, naming collection set" bash -c "
[ $code -eq 1 ] && grep -q 'ragcore collection set --db' '$work/err'"
"$bin" ingest --db "$db" --collection masked --quiet "$work/kb/contact.txt" >/dev/null
check "without flags the stored policy applies (masked on re-ingest)" bash -c "
! grep -r -a -q 'ops@example.com' '$db'"
check "sync --help documents --allow-empty and the policy flags" bash -c "
'$bin' sync --help | grep -q -- '--allow-empty' && '$bin' sync --help | grep -q -- '--pii MODE'"
check "ingest --help documents JSONL metadata fields and --metadata" bash -c "
'$bin' ingest --help | grep -q 'EVERY OTHER FIELD' && '$bin' ingest --help | grep -q -- '--metadata KEY=VALUE'"

# ---- toxicity: flag (metadata a filter excludes), drop (counted by detector) ---------------
"$bin" model pull better-profanity profanity-check >/dev/null || echo "FAIL model pull"
mkdir -p "$work/tox"
echo "Mitochondria produce most of the energy of the cell." > "$work/tox/a.txt"
echo "Shut up, the cell produces energy, you pathetic loser." > "$work/tox/b.txt"
echo "The cell is sh1t at producing energy today." > "$work/tox/c.txt"
out=$("$bin" ingest --db "$db" --collection tox --toxicity flag --toxicity-detectors both \
      --json --quiet "$work/tox")
check "--toxicity flag stores all, flags two" python3 -c "
import json,sys; t=json.loads(sys.argv[1])['toxicity']
assert t['mode'] == 'flag' and t['checked'] == 3 and t['flagged'] == 2 and t['dropped'] == 0, t" "$out"
check "search --filter 'toxicity < 0.5' leaves the flagged documents out" bash -c "
'$bin' search --db '$db' --collection tox --mode lexical --json --filter 'toxicity < 0.5' 'cell energy' |
python3 -c 'import json,sys; h=json.load(sys.stdin)[\"results\"]; assert [x[\"doc_id\"].rsplit(\"/\",1)[1] for x in h] == [\"a.txt\"], h'"
out=$("$bin" sync --db "$db" --collection tox2 --toxicity drop --toxicity-detectors wordlist \
      --json "$work/tox")
check "sync --toxicity drop --toxicity-detectors wordlist drops the list's hit only" python3 -c "
import json,sys; t=json.loads(sys.argv[1])['toxicity']
assert t['dropped'] == 1 and t['dropped_by'] == {'wordlist': 1, 'classifier': 0}, t" "$out"
"$bin" ingest --db "$db" --collection tox --toxicity maybe "$work/tox" 2>"$work/err"; code=$?
check "a bad --toxicity value is refused, naming the choices" bash -c "
[ $code -eq 1 ] && grep -q 'off|flag|drop' '$work/err'"

[ $fails -eq 0 ] || { echo "$fails ingest CLI checks failed"; exit 1; }
echo "all ingest CLI checks passed"
