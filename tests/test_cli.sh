#!/usr/bin/env bash
# test_cli.sh - the `ragcore` CLI end to end: ingest of files, directories and JSONL with
# bad items, JSON output shapes, restrictions, delete, help, --version and exit codes.
set -uo pipefail
: "${RAGCORE_BIN:?}" "${RAGCORE_TEST_TMP:?}"
rc_bin="$RAGCORE_BIN/ragcore"
work="$RAGCORE_TEST_TMP/cli"
rm -rf "$work" && mkdir -p "$work/corpus/sub" "$work/corpus/.hidden"
fails=0
check() { # check DESCRIPTION COMMAND... : the command must succeed
    local what=$1; shift
    if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); fi
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }

cat > "$work/corpus/install.md" <<'MD'
# Install

Intro text about installing the widget framework.

## Linux

Use the package manager: apt-get install widget. Linux users need glibc.

## Windows

Download the installer and run it as administrator.
MD
printf 'Plain text about quantum chromodynamics and gluons.\n' > "$work/corpus/sub/physics.txt"
printf 'hidden file must be skipped\n' > "$work/corpus/.hidden/secret.txt"
printf 'binary \xff\xfe junk\n' > "$work/corpus/sub/broken.txt"
printf 'ignored extension\n' > "$work/corpus/notes.rst"
cat > "$work/beir.jsonl" <<'JL'
{"_id": "d1", "title": "Gluon fields", "text": "Gluons mediate the strong force between quarks."}
{"_id": "d2", "title": "", "text": "Photosynthesis converts light into chemical energy.", "metadata": {"year": 2020}}
{"_id": "d3", "text": 
{"title": "no id", "text": "x"}
{"_id": 42, "text": "Numeric ids become strings."}
JL
gzip -c "$work/beir.jsonl" > "$work/beir.jsonl.gz"

db="$work/db"
out=$("$rc_bin" ingest --db "$db" --embedder hash --quiet "$work/corpus" "$work/beir.jsonl.gz" 2>"$work/err")
code=$?
cat "$work/err"
check "ingest exits 2 when some items were bad" [ "$code" -eq 2 ]
check "invalid UTF-8 file is named with its byte offset" grep -q "broken.txt: invalid UTF-8 at byte 7" "$work/err"
check "malformed JSON line is named with file and line" grep -q "beir.jsonl.gz line 3: invalid JSON" "$work/err"
check "missing _id is named with its line" grep -q "line 4: missing \"_id\"" "$work/err"
check "summary counts 5 good documents" grep -q "ingested 5 documents" <<<"$out"

stats=$("$rc_bin" stats --db "$db" --json)
check "stats --json has collections with counts" json 'c=d["collections"][0]; assert c["name"]=="default" and c["documents"]==5 and c["chunks"]>=5, d' <<<"$stats"

s=$("$rc_bin" search --db "$db" --json -k 3 "strong force quarks gluons")
check "search --json returns provenance" json 'r=d["results"]; assert len(r)==3; h=r[0]; assert h["doc_id"]=="d1" and h["source"].endswith("beir.jsonl.gz#d1") and all(k in h for k in ("chunk_id","score","text","ingested_at","source_mtime","start","end")), h' <<<"$s"
s=$("$rc_bin" search --db "$db" --json -k 5 "Linux package manager")
check "Markdown chunks carry heading paths" json 'r=d["results"]; assert r[0]["heading_path"]=="Install > Linux", r[0]' <<<"$s"
check "document ids are paths as walked" json 'assert any(h["doc_id"].endswith("corpus/install.md") for h in d["results"])' <<<"$s"
s=$("$rc_bin" search --db "$db" --json -k 10 --doc d2 "anything")
check "--doc restricts to one document" json 'assert [h["doc_id"] for h in d["results"]]==["d2"] and d["results"][0]["metadata"]=={"year":2020}' <<<"$s"
s=$("$rc_bin" search --db "$db" --json -k 10 --source-prefix "$work/corpus/sub" "anything")
check "--source-prefix restricts by source" json 'assert [h["doc_id"] for h in d["results"]]==["'"$work"'/corpus/sub/physics.txt"]' <<<"$s"
check "hidden and unknown files are skipped" bash -c "! '$rc_bin' search --db '$db' --json -k 50 'hidden skipped ignored' | grep -q -e secret.txt -e notes.rst"

# Re-ingesting the same document replaces it.
printf '{"_id": "d2", "text": "Replaced text about volcanoes."}\n' > "$work/update.jsonl"
out=$("$rc_bin" ingest --db "$db" --quiet "$work/update.jsonl")
check "re-ingest replaces" grep -q "(1 replaced)" <<<"$out"
s=$("$rc_bin" search --db "$db" --json -k 1 --doc d2 "volcano")
check "replacement is what search returns" json 'assert "volcanoes" in d["results"][0]["text"]' <<<"$s"

"$rc_bin" delete --db "$db" d1 42 >/dev/null
check "delete removes documents" json 'assert d["collections"][0]["documents"]==3, d' <<<"$("$rc_bin" stats --db "$db" --json)"
"$rc_bin" delete --db "$db" no-such-doc 2>"$work/err"; code=$?
check "deleting an unknown id exits 2 and says so" bash -c "[ $code -eq 2 ] && grep -q no-such-doc '$work/err'"

for cmd in ingest search stats delete; do
    check "$cmd --help exits 0" bash -c "'$rc_bin' $cmd --help | grep -q usage"
done
"$rc_bin" search --db "$db" >/dev/null 2>&1; code=$?
check "missing query is a usage error (1)" [ "$code" -eq 1 ]
"$rc_bin" search --db "$db" -k 0 q >/dev/null 2>&1; code=$?
check "bad -k is a usage error (1)" [ "$code" -eq 1 ]
"$rc_bin" frobnicate >/dev/null 2>&1; code=$?
check "unknown command is a usage error (1)" [ "$code" -eq 1 ]
v=$("$rc_bin" --version)
check "--version names the version and this CPU's kernels" \
    grep -Eq '^ragcore [0-9]+\.[0-9]+\.[0-9]+ \(int8 GEMM (AVX-512 VNNI|AVX-VNNI|AVX2|scalar), fp32 GEMM (AVX-512|AVX2|scalar)\)$' <<<"$v"
v=$(RAGCORE_INT8_ISA=scalar "$rc_bin" --version)
check "RAGCORE_INT8_ISA=scalar lowers the int8 kernel" grep -q "(int8 GEMM scalar, " <<<"$v"
# avx-vnni: the best at or below it that this CPU has (AVX2 here without VNNI), never more
v=$(RAGCORE_INT8_ISA=avx-vnni "$rc_bin" --version)
check "RAGCORE_INT8_ISA=avx-vnni caps the int8 kernel at AVX-VNNI" \
    grep -Eq "\(int8 GEMM (AVX-VNNI|AVX2|scalar), " <<<"$v"
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
    check "RAGCORE_INT8_ISA=avx-vnni keeps a kernel this CPU has (AVX2 at least)" \
        grep -Eq "\(int8 GEMM (AVX-VNNI|AVX2), " <<<"$v"
fi
v=$(RAGCORE_INT8_ISA=avx512 "$rc_bin" --version)
check "an unknown RAGCORE_INT8_ISA is named as ignored, the best kernel kept" \
    grep -Eq "^ragcore [0-9.]+ \(int8 GEMM [^,]+, fp32 GEMM [^;]+; RAGCORE_INT8_ISA 'avx512' ignored: not avx-vnni, avx2 or scalar\)$" <<<"$v"
best=$("$rc_bin" --version | sed -n 's/.*(int8 GEMM \([^,]*\),.*/\1/p')
check "an unknown RAGCORE_INT8_ISA keeps the kernel chosen without it ($best)" \
    grep -q "(int8 GEMM $best, " <<<"$v"
# Search options come from the library's one table: same names, ranges and messages in
# search, context and eval.
"$rc_bin" search --db "$db" --candidates 20000 q 2>"$work/err"; code=$?
check "--candidates above the library's range is a usage error naming it" \
    bash -c "[ $code -eq 1 ] && grep -q \"candidates must be an integer in 1..10000, got '20000'\" '$work/err'"
"$rc_bin" context --db "$db" --budget 100 --candidates 20000 q 2>"$work/err"; code=$?
check "context refuses the same --candidates with the same message" \
    bash -c "[ $code -eq 1 ] && grep -q \"candidates must be an integer in 1..10000, got '20000'\" '$work/err'"
"$rc_bin" eval --db "$db" --queries /dev/null --qrels /dev/null --compare "candidates=20000" "mode=dense" 2>"$work/err"; code=$?
check "eval configurations use the same table" \
    bash -c "[ $code -eq 1 ] && grep -q \"candidates must be an integer in 1..10000, got '20000'\" '$work/err'"
s=$("$rc_bin" search --db "$db" --json -k 5 --per-doc 1 --mmr-lambda 0.5 --fusion weighted --dense-weight 0.3 "Linux package manager")
check "named search flags apply (per_doc caps hits per document)" json 'ids=[h["doc_id"] for h in d["results"]]; assert len(ids)==len(set(ids)), ids' <<<"$s"
s=$("$rc_bin" search --db "$db" --json -k 5 --mmr 0.5 --mode lexical "Linux package manager")
check "the old --mmr flag is an alias of --mmr-lambda" json 'assert len(d["results"])>0' <<<"$s"
"$rc_bin" search --db "$work/nonexistent" q 2>"$work/err"; code=$?
check "missing store is a data error (2) naming it" bash -c "[ $code -eq 2 ] && grep -q nonexistent '$work/err'"
"$rc_bin" ingest --db "$db" --embedder hash-64 --quiet "$work/update.jsonl" 2>"$work/err"; code=$?
check "another embedder on an existing store is refused" bash -c "[ $code -eq 1 ] && grep -q \"created with embedder 'hash'\" '$work/err'"
"$rc_bin" check --db "$db" --repair --ef-construction 100 >/dev/null 2>"$work/err"; code=$?
check "check --repair --ef-construction runs on a consistent store" [ "$code" -eq 0 ]
"$rc_bin" check --db "$db" --ef-construction 100 >/dev/null 2>"$work/err"; code=$?
check "--ef-construction without --repair is a usage error naming it" \
    bash -c "[ $code -eq 1 ] && grep -q -- '--ef-construction applies to --repair only' '$work/err'"
"$rc_bin" check --db "$db" --repair --ef-construction 0 >/dev/null 2>"$work/err"; code=$?
check "a bad --ef-construction is a usage error naming the value" \
    bash -c "[ $code -eq 1 ] && grep -q \"must be 1..100000, got '0'\" '$work/err'"

echo "$(( $(grep -c . /dev/null) )) " >/dev/null
if [ $fails -ne 0 ]; then echo "$fails CLI checks failed"; exit 1; fi
echo "all CLI checks passed"
