# eval_lib.sh - sourced by the A/B search benches: one `ragcore eval` run as a JSON line.

# eval_line BIN DB MODE QUERIES QRELS TAGS_JSON [FLAGS...]: runs `BIN eval` (k 10) on store DB
# in MODE and prints TAGS_JSON's fields with the mode, nDCG@10, the p50/p95 latencies and the
# searching thread's CPU time p50.
eval_line() {
    local bin=$1 db=$2 mode=$3 queries=$4 qrels=$5 tags=$6
    shift 6
    "$bin" eval --db "$db" "$@" --queries "$queries" --qrels "$qrels" --mode "$mode" -k 10 \
        --json |
        python3 -c 'import json,sys
d=json.load(sys.stdin); tags=json.loads(sys.argv[1])
print(json.dumps({**tags,"mode":sys.argv[2],"ndcg10":d["ndcg@10"],
                  "p50_ms":d["latency_ms_p50"],"p95_ms":d["latency_ms_p95"],
                  "cpu_p50_ms":d["cpu_ms_p50"]}), flush=True)' "$tags" "$mode"
}
