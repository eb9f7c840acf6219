#!/usr/bin/env bash
# test_eval_cli.sh - `ragcore eval` end to end on a tiny generated BEIR set: metrics of an
# exact-text match, JSON keys, --compare statistics, and errors naming the bad input.
set -uo pipefail
: "${RAGCORE_BIN:?}" "${RAGCORE_TEST_TMP:?}"
rc_bin="$RAGCORE_BIN/ragcore"
work="$RAGCORE_TEST_TMP/eval_cli"
rm -rf "$work" && mkdir -p "$work"
fails=0
check() { # check DESCRIPTION COMMAND... : the command must succeed
    local what=$1; shift
    if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); fi
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }

cat > "$work/corpus.jsonl" <<'JL'
{"_id": "d1", "text": "Gluons mediate the strong nuclear force between quarks inside protons."}
{"_id": "d2", "text": "Photosynthesis converts sunlight, water and carbon dioxide into glucose."}
{"_id": "d3", "text": "The Treaty of Westphalia ended the Thirty Years War in 1648."}
{"_id": "d4", "text": "Mitochondria produce adenosine triphosphate through oxidative phosphorylation."}
{"_id": "d5", "text": "Basalt forms from the rapid cooling of lava rich in magnesium and iron."}
{"_id": "d6", "text": "Sourdough bread rises thanks to wild yeast and lactic acid bacteria."}
JL
cat > "$work/queries.jsonl" <<'JL'
{"_id": "q1", "text": "Gluons mediate the strong nuclear force between quarks inside protons."}
{"_id": "q2", "text": "Mitochondria produce adenosine triphosphate through oxidative phosphorylation."}
{"_id": 3, "text": "Sourdough bread rises thanks to wild yeast and lactic acid bacteria."}
{"_id": "q4", "text": "a query nobody judged"}
JL
printf 'query-id\tcorpus-id\tscore\nq1\td1\t1\n' > "$work/qrels_one.tsv"
printf 'query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td4\t2\nq2\td5\t0\n3\td6\t1\nq9\td1\t1\n' \
    > "$work/qrels.tsv"

db="$work/db"
check "ingest the tiny corpus" "$rc_bin" ingest --db "$db" --embedder hash --quiet "$work/corpus.jsonl"

# one query whose relevant document has exactly its text: perfect scores
out=$("$rc_bin" eval --db "$db" --queries "$work/queries.jsonl" --qrels "$work/qrels_one.tsv" \
      --mode dense --json)
check "eval exits 0" test $? -eq 0
check "exact match: recall@10 = 1" json 'assert d["recall@10"] == 1.0, d' <<<"$out"
check "exact match: ndcg@10 = mrr@10 = recall@100 = 1" \
    json 'assert d["ndcg@10"] == 1.0 and d["mrr@10"] == 1.0 and d["recall@100"] == 1.0, d' <<<"$out"
check "one query evaluated, three without judgements skipped" \
    json 'assert d["queries"] == 1 and d["queries_unjudged"] == 3, d' <<<"$out"

# all judged queries: keys and value ranges
out=$("$rc_bin" eval --db "$db" --queries "$work/queries.jsonl" --qrels "$work/qrels.tsv" \
      --mode dense -k 5 --json)
check "eval on three queries exits 0" test $? -eq 0
check "JSON has every documented key" json '
for key in ("ndcg@10","recall@10","recall@100","mrr@10","queries","latency_ms_p50","latency_ms_p95",
            "cpu_ms_p50","cpu_ms_p95","mode"):
    assert key in d, key
assert d["mode"] == "dense" and d["queries"] == 3 and d["k"] == 5, d
assert all(0 <= d[m] <= 1 for m in ("ndcg@10","recall@10","recall@100","mrr@10")), d
assert d["recall@10"] == 1.0 and d["ndcg@10"] == 1.0, d
assert 0 <= d["latency_ms_p50"] <= d["latency_ms_p95"], d
assert 0 < d["cpu_ms_p50"] <= d["cpu_ms_p95"], d' <<<"$out"

txt=$("$rc_bin" eval --db "$db" --queries "$work/queries.jsonl" --qrels "$work/qrels.tsv" --mode dense)
check "text report names the metrics" grep -q "ndcg@10 *1.0000" <<<"$txt"

# --compare: identical configurations tie everywhere and show no evidence of a difference
out=$("$rc_bin" eval --db "$db" --queries "$work/queries.jsonl" --qrels "$work/qrels.tsv" \
      --json --compare "mode=dense" "mode=dense,candidates=50,rrf_k=30,fusion=weighted,dense_weight=0.7")
check "compare exits 0" test $? -eq 0
check "compare of equal rankings: all ties, p = 1" json '
assert d["queries"] == 3 and d["ties"] == 3 and d["wins"] == 0 and d["losses"] == 0, d
assert d["p_randomization"] == 1.0 and d["p_ttest"] == 1.0, d
assert d["a"]["config"] == "mode=dense" and d["b"]["mode"] == "dense", d
assert d["delta"]["ndcg@10"] == 0.0 and d["randomization_iterations"] == 10000, d' <<<"$out"

# compare against another store: an empty collection loses every query
mkdir -p "$work/other"
printf '{"_id": "x1", "text": "Completely unrelated text about knitting patterns."}\n' > "$work/other.jsonl"
check "ingest a second store" "$rc_bin" ingest --db "$work/db2" --embedder hash --quiet "$work/other.jsonl"
out=$("$rc_bin" eval --db "$db" --queries "$work/queries.jsonl" --qrels "$work/qrels.tsv" \
      --json --compare "mode=dense" "mode=dense,db=$work/db2")
check "compare across stores: B loses all three" json '
assert d["losses"] == 3 and d["wins"] == 0 and d["b"]["ndcg@10"] == 0.0, d
assert d["delta"]["ndcg@10"] == -1.0 and d["t"] is None and d["p_ttest"] == 0.0, d
assert abs(d["p_randomization"] - 0.25) < 0.03, d' <<<"$out"

# errors: usage (1) and data (2), with messages naming what was wrong
err=$("$rc_bin" eval --db "$db" --queries "$work/queries.jsonl" 2>&1); rc=$?
check "missing --qrels is a usage error" test $rc -eq 1
check "missing --qrels is named" grep -q -- "--qrels" <<<"$err"
err=$("$rc_bin" eval --db "$db" --queries "$work/queries.jsonl" --qrels "$work/qrels.tsv" \
      --compare "mode=dense" "mode=dense,bogus=1" 2>&1); rc=$?
check "unknown config key is a usage error naming it" \
    bash -c "test $rc -eq 1 && grep -q \"configuration B: unknown key 'bogus'\" <<<\"\$0\"" "$err"
err=$("$rc_bin" eval --db "$db" --queries "$work/queries.jsonl" --qrels "$work/qrels.tsv" \
      --compare "mode=sparse" "mode=dense" 2>&1); rc=$?
check "bad mode value is named" bash -c "test $rc -eq 1 && grep -q \"'sparse'\" <<<\"\$0\"" "$err"
err=$("$rc_bin" eval --db "$db" --queries "$work/queries.jsonl" --qrels "$work/qrels.tsv" \
      --compare "mode=dense" 2>&1); rc=$?
check "--compare needs two configurations" test $rc -eq 1
err=$("$rc_bin" eval --db "$db" --queries "$work/queries.jsonl" --qrels "$work/qrels.tsv" -k 0 2>&1); rc=$?
check "-k 0 is refused" test $rc -eq 1
printf 'query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td4\n' > "$work/bad_qrels.tsv"
err=$("$rc_bin" eval --db "$db" --queries "$work/queries.jsonl" --qrels "$work/bad_qrels.tsv" 2>&1); rc=$?
check "malformed qrels is a data error" test $rc -eq 2
check "malformed qrels names file and line" grep -q "bad_qrels.tsv line 3" <<<"$err"
printf '{"_id": "q1", "text": "ok"}\n{"_id": "q2" "text": "broken"}\n' > "$work/bad_queries.jsonl"
err=$("$rc_bin" eval --db "$db" --queries "$work/bad_queries.jsonl" --qrels "$work/qrels.tsv" 2>&1); rc=$?
check "malformed queries names file and line" \
    bash -c "test $rc -eq 2 && grep -q 'bad_queries.jsonl line 2' <<<\"\$0\"" "$err"
printf 'query-id\tcorpus-id\tscore\nq1\td1\t0\n' > "$work/no_rel.tsv"
err=$("$rc_bin" eval --db "$db" --queries "$work/queries.jsonl" --qrels "$work/no_rel.tsv" 2>&1); rc=$?
check "qrels without any relevant document is refused" \
    bash -c "test $rc -eq 2 && grep -q 'no query' <<<\"\$0\"" "$err"
err=$("$rc_bin" eval --db "$work/nope" --queries "$work/queries.jsonl" --qrels "$work/qrels.tsv" 2>&1); rc=$?
check "missing store is a data error" test $rc -eq 2
check "help exits 0" "$rc_bin" eval --help

echo "$fails failures"
[ "$fails" -eq 0 ]
