#!/usr/bin/env bash
# test_ingest_hygiene.sh - `ragcore ingest` corpus hygiene end to end: HTML, PDF and UTF-16
# extraction, near-duplicate skipping with records, PII mask/hash/drop before storage (raw
# values absent from every byte of the store), quality filters, boilerplate, dry runs.
set -uo pipefail
: "${RAGCORE_BIN:?}" "${RAGCORE_TEST_TMP:?}"
rc_bin="$RAGCORE_BIN/ragcore"
work="$RAGCORE_TEST_TMP/ingest_hygiene"
rm -rf "$work" && mkdir -p "$work/corpus/notes" "$work/bad" "$work/site"
fails=0
check() { # check DESCRIPTION COMMAND... : the command must succeed
    local what=$1; shift
    if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); fi
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }
EMAIL=alice.smith@example.com
CARD="4111 1111 1111 1111"
PDF_EMAIL=bob.jones@example.org

# ---- the corpus ------------------------------------------------------------------------------
cat > "$work/corpus/page.html" <<'HTML'
<!DOCTYPE html>
<html><head><title>Widget Handbook</title>
<script>var trackingCode = "zzscriptzz";</script><style>.x { color: red }</style></head>
<body><nav>Home | About | zznavzz</nav>
<h1>Widget Handbook</h1>
<p>This handbook explains how widgets are assembled and maintained in the field.</p>
<h2>Calibration</h2>
<p>Turn the calibration dial slowly until the brass needle points to magnetic north.</p>
</body></html>
HTML
python3 - "$work/corpus/report.pdf" "$PDF_EMAIL" <<'PY'
import sys
path, email = sys.argv[1], sys.argv[2]
pages = ["BT /F1 14 Tf 72 700 Td (Quarterly report written by %s about turbines.) Tj ET" % email,
         "BT /F1 14 Tf 72 700 Td (Second page discusses offshore wind turbine blades.) Tj ET"]
objs = {1: "<< /Type /Catalog /Pages 2 0 R >>",
        2: "<< /Type /Pages /Kids [3 0 R 5 0 R] /Count 2 >>",
        7: "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        8: "<< /Title (Turbine Report) >>"}
for i, c in enumerate(pages):
    objs[3 + 2 * i] = ("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                       "/Resources << /Font << /F1 7 0 R >> >> /Contents %d 0 R >>" % (4 + 2 * i))
    objs[4 + 2 * i] = "<< /Length %d >>\nstream\n%s\nendstream" % (len(c) + 1, c)
out, offs = "%PDF-1.4\n", {}
for k in sorted(objs):
    offs[k] = len(out)
    out += "%d 0 obj\n%s\nendobj\n" % (k, objs[k])
xref = len(out)
out += "xref\n0 9\n0000000000 65535 f \n" + "".join("%010d 00000 n \n" % offs[k] for k in range(1, 9))
out += "trailer\n<< /Size 9 /Root 1 0 R /Info 8 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref
open(path, "wb").write(out.encode("latin-1"))
PY
python3 -c "
import sys
open(sys.argv[1], 'wb').write('\ufeffZebras migrate across the Serengeti plains every single year.\n'.encode('utf-16-le'))
" "$work/corpus/zebra.txt"
cat > "$work/corpus/contacts.txt" <<TXT
Support escalations go to $EMAIL during business hours.
The test payment card $CARD must never appear in the store.
TXT
base="Lighthouses guided ships along dangerous rocky coastlines for centuries, and their keepers \
lived isolated lives maintaining lamps, lenses and fog signals through storms, long winters and \
endless nights while recording weather observations in careful logbooks for the coast guard."
printf '%s\n' "$base" > "$work/corpus/notes/a.txt"
printf '%s\n' "${base/careful/meticulous}" > "$work/corpus/notes/b.txt"   # near duplicate
printf '%s\n' "$base" | tr 'a-z' 'A-Z' > "$work/corpus/notes/c.txt"       # exact (case folded)
printf 'Too short.\n' > "$work/corpus/tiny.txt"
printf '#### $$$$ %%%%%%%% &&&& **** (((( )))) ---- ++++ ==== ~~~~ !!!! ????\n' > "$work/corpus/symbols.txt"

# ---- dry run first: nothing may be created ----------------------------------------------------
db="$work/db"
dry=$("$rc_bin" ingest --db "$db" --quality --pii mask --dry-run --json --verbose --quiet "$work/corpus")
code=$?
check "dry run exits 0" [ "$code" -eq 0 ]
check "dry run creates no store directory" [ ! -e "$db" ]
check "dry run reports what would happen" json '
assert d["dry_run"] is True and d["documents"] == 5, d
assert d["duplicates"]["exact"] == 1 and d["duplicates"]["near"] == 1 and d["duplicates"]["recorded"] == 0, d
assert d["quality"]["too_short"] == 1 and d["quality"]["symbols"] == 1, d
assert d["pii"]["found"]["EMAIL"] == 2 and d["pii"]["found"]["CARD"] == 1, d
assert d["chunks"] >= 6, d
acts = {(e["action"], e["id"].split("/")[-1]) for e in d["events"]}
assert ("duplicate", "b.txt") in acts and ("duplicate", "c.txt") in acts and ("filtered", "tiny.txt") in acts, acts' <<<"$dry"

# ---- the real run with masking -----------------------------------------------------------------
out=$("$rc_bin" ingest --db "$db" --embedder hash --quality --pii mask --json --verbose --quiet "$work/corpus" 2>"$work/err")
code=$?
cat "$work/err"
check "ingest exits 0" [ "$code" -eq 0 ]
check "summary counts every category" json '
assert d["documents"] == 5 and d["dry_run"] is False and d["errors"] == 0, d
dd = d["duplicates"]
assert dd["mode"] == "skip" and dd["exact"] == 1 and dd["near"] == 1 and dd["skipped"] == 2 and dd["recorded"] == 2, dd
q = d["quality"]
assert q["filtered"] == 2 and q["too_short"] == 1 and q["symbols"] == 1 and q["too_long"] == 0, q
p = d["pii"]
assert p["mode"] == "mask" and p["documents"] == 2 and p["found"]["EMAIL"] == 2 and p["found"]["CARD"] == 1, p
assert d["skipped"]["total"] == 0 and d["documents_seen"] == 9, d
ev = {e["id"].split("/")[-1]: e for e in d["events"] if e["action"] == "duplicate"}
assert ev["b.txt"]["detail"].startswith("of ") and ev["b.txt"]["detail"].split()[1].endswith("notes/a.txt") and "near" in ev["b.txt"]["detail"], ev
assert "exact" in ev["c.txt"]["detail"], ev' <<<"$out"
txt=$("$rc_bin" ingest --db "$work/db_txt" --embedder hash --quality --quiet --verbose "$work/corpus")
check "text summary names duplicates with their canonical" \
    grep -q "duplicate .*notes/b.txt of .*notes/a.txt (near" <<<"$txt"
check "text summary counts quality and PII lines" \
    bash -c 'grep -q "quality: 2 filtered" <<<"$1" && grep -q "duplicates (skip, threshold 0.80): 1 exact, 1 near; 2 skipped" <<<"$1" && grep -q "^  pii (off)" <<<"$1"' _ "$txt"

search() { "$rc_bin" search --db "$db" --json "$@"; }
s=$(search -k 3 "calibration dial brass needle")
check "HTML: visible text with heading path, no script or nav" json '
h = d["results"][0]
assert h["doc_id"].endswith("page.html") and h["heading_path"] == "Widget Handbook > Calibration", h
assert h["title"] == "Widget Handbook", h
assert all("zzscriptzz" not in r["text"] and "zznavzz" not in r["text"] for r in d["results"]), d' <<<"$s"
s=$(search -k 3 "Zebras migrate Serengeti")
check "UTF-16 file is decoded" json 'h=d["results"][0]; assert h["doc_id"].endswith("zebra.txt") and h["text"].startswith("Zebras migrate"), h' <<<"$s"
have_pdf=1
grep -q "report.pdf" "$work/err" && have_pdf=0
if [ $have_pdf -eq 1 ]; then
    s=$(search -k 3 "offshore wind turbine blades")
    check "PDF: text, title and page offsets that survive masking" json '
h = [r for r in d["results"] if r["doc_id"].endswith("report.pdf")][0]
assert h["title"] == "Turbine Report", h
pages = h["metadata"]["pages"]
assert len(pages) == 2 and pages[0] == 0, h
assert "[EMAIL]" in h["text"] and "Quarterly report" in h["text"], h
second = h["text"][pages[1] - h["start"]:]
assert second.startswith("Second page discusses"), (pages, h["text"])' <<<"$s"
else
    echo "skip PDF checks (built without poppler)"
fi
check "raw e-mail is nowhere under the store" bash -c "! grep -r -a -q -F '$EMAIL' '$db'"
check "raw PDF e-mail is nowhere under the store" bash -c "! grep -r -a -q -F '$PDF_EMAIL' '$db'"
check "raw card number is nowhere under the store" \
    bash -c "! grep -r -a -q -e '$CARD' -e '${CARD// /}' '$db'"
check "control: the unmasked store does hold the raw e-mail" grep -r -a -q -F "$EMAIL" "$work/db_txt"
s=$(search -k 5 "support escalations business hours payment card")
check "the [EMAIL] and [CARD] placeholders are stored and searchable" json '
h = [r for r in d["results"] if r["doc_id"].endswith("contacts.txt")][0]
assert "[EMAIL]" in h["text"] and "[CARD]" in h["text"], h' <<<"$s"
check "duplicate records are kept in the store with their canonical" bash -c "
grep -a -q 'dup:default/.*notes/b.txt' '$db/data.mdb' &&
grep -a -q '\"canonical\":\"[^\"]*notes/a.txt\",\"kind\":\"near\"' '$db/data.mdb' &&
grep -a -q '\"canonical\":\"[^\"]*notes/a.txt\",\"kind\":\"exact\"' '$db/data.mdb'"
s=$(search -k 10 "lighthouse keepers logbooks")
check "skipped duplicates are not stored" json '
ids = {r["doc_id"].split("/")[-1] for r in d["results"]}
assert "a.txt" in ids and "b.txt" not in ids and "c.txt" not in ids, ids' <<<"$s"

# ---- dry run on an existing store leaves every byte unchanged --------------------------------
snap() { (cd "$1" && find . -type f -exec sha256sum {} + | sort; ls -la --time-style=full-iso .); }
before=$(snap "$db")
"$rc_bin" ingest --db "$db" --pii hash --dry-run --quiet "$work/corpus" >/dev/null
check "dry run does not touch an existing store" [ "$before" == "$(snap "$db")" ]

# ---- hash mode: stable within a store, different across stores --------------------------------
mkdir -p "$work/hash" && cp "$work/corpus/contacts.txt" "$work/hash/"
placeholder() { "$rc_bin" search --db "$1" --json -k 1 "support escalations" |
    python3 -c 'import json,re,sys; print(re.search(r"\[EMAIL:[0-9a-f]+\]", json.load(sys.stdin)["results"][0]["text"]).group(0))'; }
"$rc_bin" ingest --db "$work/db_hash" --pii hash --quiet "$work/hash" >/dev/null
p1=$(placeholder "$work/db_hash")
"$rc_bin" ingest --db "$work/db_hash" --pii hash --quiet "$work/hash" >/dev/null
p2=$(placeholder "$work/db_hash")
"$rc_bin" ingest --db "$work/db_hash2" --pii hash --quiet "$work/hash" >/dev/null
p3=$(placeholder "$work/db_hash2")
check "hash mode gives a keyed placeholder" grep -q -x '\[EMAIL:[0-9a-f]\{12\}\]' <<<"$p1"
check "hash placeholder is stable across runs on one store" bash -c '[ -n "$1" ] && [ "$1" == "$2" ]' _ "$p1" "$p2"
check "another store has another key" [ "$p1" != "$p3" ]
check "hash mode keeps no raw value and no key file" \
    bash -c "! grep -r -a -q -F '$EMAIL' '$work/db_hash' && [ ! -e '$work/db_hash/pii.key' ]"

# ---- JSONL metadata strings are masked too ------------------------------------------------------
printf '{"_id": "m1", "text": "Ordinary record text about river deltas and sediment.", "metadata": {"owner": "%s", "tags": ["x", "%s"]}}\n' \
    "$EMAIL" "$PDF_EMAIL" > "$work/meta.jsonl"
"$rc_bin" ingest --db "$work/db_meta" --pii mask --quiet "$work/meta.jsonl" >/dev/null
s=$("$rc_bin" search --db "$work/db_meta" --json -k 1 "river deltas")
check "metadata strings are masked" json '
m = d["results"][0]["metadata"]
assert m == {"owner": "[EMAIL]", "tags": ["x", "[EMAIL]"]}, m' <<<"$s"
check "no raw metadata e-mail under the store" bash -c "! grep -r -a -q -e '$EMAIL' -e '$PDF_EMAIL' '$work/db_meta'"

# ---- drop mode, and removal of an older stored version ---------------------------------------
"$rc_bin" ingest --db "$work/db_drop" --pii off --quiet "$work/hash" >/dev/null
check "control: without --pii the raw value is stored" grep -r -a -q -F "$EMAIL" "$work/db_drop"
cp "$work/corpus/notes/a.txt" "$work/hash/clean.txt"
# The stored policy (pii off) rules the collection: a different flag is refused, naming the
# explicit command; after `collection set` the same flag agrees with it.
"$rc_bin" ingest --db "$work/db_drop" --pii drop --quiet "$work/hash" >/dev/null 2>"$work/err"; code=$?
check "a flag that contradicts the stored policy is refused" bash -c "
[ $code -eq 1 ] && grep -q 'ragcore collection set --db .*db_drop --collection default --pii drop' '$work/err'"
"$rc_bin" collection set --db "$work/db_drop" --collection default --pii drop >/dev/null
check "collection show prints the changed policy" bash -c "
'$rc_bin' collection show --db '$work/db_drop' --json | grep -q '\"pii\":\"drop\"'"
out=$("$rc_bin" ingest --db "$work/db_drop" --pii drop --json --quiet "$work/hash")
check "drop mode stores only the clean document" json '
assert d["documents"] == 1 and d["pii"]["dropped"] == 1 and d["stale_removed"] == 1, d' <<<"$out"
s=$("$rc_bin" search --db "$work/db_drop" --json -k 10 "support escalations")
check "the dropped document's older version is gone" json '
assert all(not r["doc_id"].endswith("contacts.txt") for r in d["results"]), d' <<<"$s"

# ---- quality options --------------------------------------------------------------------------
out=$("$rc_bin" ingest --db "$work/db_q" --json --quiet --min-chars 0 --max-symbol-ratio 1 \
      --max-chars 100 --near-dup off "$work/corpus")
check "quality options are applied and counted" json '
q = d["quality"]
# over 100 characters: page.html, report.pdf, contacts.txt and the three notes
assert q["too_short"] == 0 and q["symbols"] == 0 and q["too_long"] == 6 and q["filtered"] == 6, q
assert d["duplicates"]["mode"] == "off" and d["duplicates"]["exact"] == 0, d' <<<"$out"
"$rc_bin" ingest --db "$work/db_q" --quiet --max-symbol-ratio 2 "$work/corpus" 2>"$work/err"; code=$?
check "a bad option value is a usage error naming it" bash -c "[ $code -eq 1 ] && grep -q -- '--max-symbol-ratio' '$work/err'"
"$rc_bin" ingest --db "$work/db_q" --quiet --pii scramble "$work/corpus" 2>"$work/err"; code=$?
check "an unknown --pii mode is a usage error naming it" bash -c "[ $code -eq 1 ] && grep -q scramble '$work/err'"

# ---- near-dup flag mode -----------------------------------------------------------------------
out=$("$rc_bin" ingest --db "$work/db_flag" --json --quiet --near-dup flag "$work/corpus/notes")
check "flag mode stores duplicates" json 'assert d["documents"] == 3 and d["duplicates"]["flagged"] == 2, d' <<<"$out"
s=$("$rc_bin" search --db "$work/db_flag" --json -k 3 --doc "$work/corpus/notes/b.txt" "lighthouse")
check "a flagged duplicate names its canonical in metadata" json '
m = d["results"][0]["metadata"]
assert m["duplicate_of"].endswith("notes/a.txt") and m["duplicate_kind"] == "near" and 0.8 <= m["duplicate_similarity"] < 1, m' <<<"$s"

# ---- skipped files by reason ------------------------------------------------------------------
printf 'binary\0data\0here' > "$work/bad/blob.txt"
printf 'caf\xe9 au lait is a latin-1 drink description\n' > "$work/bad/latin1.txt"
printf 'This clean file about glaciers is perfectly fine to ingest.\n' > "$work/bad/ok.txt"
printf 'not really a pdf\n' > "$work/bad/fake.pdf"
out=$("$rc_bin" ingest --db "$work/db_bad" --json --quiet "$work/bad" 2>"$work/err")
code=$?
check "skipped files make the exit code 2" [ "$code" -eq 2 ]
check "skip reasons are counted" json '
r = d["skipped"]["reasons"]
assert d["documents"] == 1 and d["skipped"]["total"] == 3 and r.get("binary") == 1 and r.get("encoding") == 1, d
assert r.get("malformed", 0) + r.get("unsupported", 0) == 1, r' <<<"$out"
check "each skipped file is named with its reason" bash -c "
grep -q 'blob.txt: binary data (NUL byte at offset 6); file skipped' '$work/err' &&
grep -q 'latin1.txt: invalid UTF-8 at byte 3' '$work/err' && grep -q 'fake.pdf: ' '$work/err'"

# ---- boilerplate stripping ----------------------------------------------------------------------
for i in 1 2 3 4; do
    topic=(x volcanoes glaciers deserts rainforests)
    printf 'Copyright 2024 Example Corp. All rights reserved.\nThis page describes %s and how they shape the landscape of planet %s.\n' \
        "${topic[$i]}" "$i" > "$work/site/p$i.txt"
done
out=$("$rc_bin" ingest --db "$work/db_bp" --json --quiet --strip-boilerplate "$work/site")
check "boilerplate lines are removed and counted" json '
b = d["boilerplate"]
assert b["enabled"] is True and b["lines_removed"] == 4 and d["documents"] == 4, d' <<<"$out"
s=$("$rc_bin" search --db "$work/db_bp" --json -k 4 "Copyright Example Corp rights reserved")
check "stored text has no boilerplate line" json '
assert len(d["results"]) == 4 and all("Copyright" not in r["text"] for r in d["results"]), d' <<<"$s"

check "ingest --help documents the hygiene options" bash -c "
'$rc_bin' ingest --help | grep -q -e '--pii MODE' && '$rc_bin' ingest --help | grep -q -e '--near-dup-threshold' &&
'$rc_bin' ingest --help | grep -q -e '--dry-run' && '$rc_bin' ingest --help | grep -q -e '--strip-boilerplate'"

if [ $fails -ne 0 ]; then echo "$fails ingest hygiene checks failed"; exit 1; fi
echo "all ingest hygiene checks passed"
