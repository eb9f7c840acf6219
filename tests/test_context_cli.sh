#!/usr/bin/env bash
# test_context_cli.sh - `ragcore context` end to end: text, Markdown and JSON output, the
# budget, templates, staleness, help and exit codes.
set -uo pipefail
: "${RAGCORE_BIN:?}" "${RAGCORE_TEST_TMP:?}"
rc_bin="$RAGCORE_BIN/ragcore"
work="$RAGCORE_TEST_TMP/context_cli"
rm -rf "$work" && mkdir -p "$work/docs"
fails=0
check() { # check DESCRIPTION COMMAND... : the command must succeed
    local what=$1; shift
    if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); fi
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }

printf 'Photosynthesis turns light into chemical energy. Chlorophyll absorbs red and blue light. The Calvin cycle fixes carbon dioxide into sugars.\n' > "$work/docs/plants.txt"
printf 'Volcanoes erupt when magma rises through the crust. Basaltic lava flows quickly.\n' > "$work/docs/volcano.txt"
touch -d '2026-01-02 00:00:00 UTC' "$work/docs/volcano.txt"
db="$work/db"
"$rc_bin" ingest --db "$db" --embedder hash --quiet "$work/docs" >/dev/null || { echo "FAIL ingest"; exit 1; }

out=$("$rc_bin" context --db "$db" --budget 200 "chlorophyll light")
check "text context starts with citation [1] of the best source" grep -q '^\[1\] plants.txt — .*/docs/plants.txt (updated [0-9-]*, just now)$' <<<"$out"
check "text context holds the document text" grep -qF 'Chlorophyll absorbs red and blue light.' <<<"$out"

out=$("$rc_bin" context --db "$db" --budget 200 --format markdown "chlorophyll light")
check "markdown context has a heading and a source line" \
    bash -c '[[ "$(sed -n 1p <<<"$1")" == "### [1] plants.txt" ]] && sed -n 2p <<<"$1" | grep -q "^Source: .*/docs/plants.txt · updated "' _ "$out"

out=$("$rc_bin" context --db "$db" --budget 200 --format markdown --json "chlorophyll light")
check "--json prints the JSON form whatever --format" json '
assert set(d) == {"context","sources","tokens","no_confident_context","stale_context"}, d
assert d["context"].startswith("### [1] "), d["context"]
s = d["sources"][0]
assert s["doc_id"].endswith("plants.txt") and s["chunks"][0]["start"] == 0, s
assert 0 < d["tokens"] <= 200 and d["stale_context"] is False' <<<"$out"

out=$("$rc_bin" context --db "$db" --budget 300 --format json --template '<{n}:{date}>' --stale-after 60 "magma volcanoes")
check "--format json, template and stale-after" json '
c = d["context"]
assert c.startswith("<1:2026-01-02>\n"), c
assert d["stale_context"] is False  # plants.txt (just ingested) also supports it
' <<<"$out"
out=$("$rc_bin" context --db "$db" --budget 300 --json --template '{age}' --stale-after 60 --filter 'doc_id ^= "'"$work"'/docs/volcano"' "magma volcanoes")
check "--filter restricts sources; an old source is stale" json '
assert len(d["sources"]) == 1 and d["stale_context"] is True, d' <<<"$out"

out=$("$rc_bin" context --db "$db" --budget 5 "chlorophyll light")
check "a budget below one header gives an empty context" [ -z "$out" ]
out=$("$rc_bin" context --db "$db" --budget 500 --mode lexical --json "qqqxyzzy")
check "no hits: empty context, no_confident_context" json '
assert d["context"] == "" and d["sources"] == [] and d["no_confident_context"] is True' <<<"$out"

"$rc_bin" context --help | grep -q "usage: ragcore context"
check "--help prints usage and exits 0" [ $? -eq 0 ]
"$rc_bin" context --db "$db" "q" 2>"$work/err"
check "missing --budget exits 1" [ $? -eq 1 ]
check "missing --budget is named" grep -q -- "--budget TOKENS is required" "$work/err"
"$rc_bin" context --db "$db" --budget 0 "q" 2>"$work/err"
check "--budget 0 exits 1" [ $? -eq 1 ]
"$rc_bin" context --db "$db" --budget 1000001 "q" 2>"$work/err"
check "--budget above 1000000 exits 1 naming the option" bash -c '[ $0 -eq 1 ] && grep -q "budget must be an integer in 1..1000000" "$1"' $? "$work/err"
"$rc_bin" context --db "$db" --budget 100 --format yaml "q" 2>"$work/err"
check "bad --format exits 1" [ $? -eq 1 ]
"$rc_bin" context --db "$db" --budget 100 --template '{bogus}' "q" 2>"$work/err"
check "unknown template placeholder exits 1 naming it" bash -c '[ $0 -eq 1 ] && grep -q "{bogus}" "$1"' $? "$work/err"
"$rc_bin" context --db "$db" --budget 100 --filter 'title = ' "q" 2>"$work/err"
check "malformed filter exits 1" [ $? -eq 1 ]
"$rc_bin" context --db "$work/nothing-here" --budget 100 "q" 2>"$work/err"
check "missing store exits 2" [ $? -eq 2 ]
"$rc_bin" context --db "$db" --collection nope --budget 100 "q" 2>"$work/err"
check "unknown collection exits 2" [ $? -eq 2 ]

echo "$fails failures"
[ "$fails" -eq 0 ]
