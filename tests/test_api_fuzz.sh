#!/usr/bin/env bash
# test_api_fuzz.sh - schema-based API fuzzing in CI: tools/api_fuzz.sh runs schemathesis
# against ragcore-server's own /openapi.json with a small budget (RAGCORE_API_FUZZ_EXAMPLES
# test cases per operation and phase, default 5): no 5xx, responses conforming to the
# document, schema-violating requests refused. Skipped (exit 77, ctest SKIP_RETURN_CODE)
# when the schemathesis venv (~/.cache/ragcore/schemathesis-venv) does not exist.
set -uo pipefail
src=${RAGCORE_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
venv=${SCHEMATHESIS_VENV:-$HOME/.cache/ragcore/schemathesis-venv}
if [ ! -x "$venv/bin/st" ]; then
    echo "SKIP: schemathesis not installed at $venv (python3 -m venv $venv &&" \
         "$venv/bin/pip install schemathesis)"
    exit 77
fi
tmp=$(mktemp -d "${RAGCORE_TEST_TMP:-/tmp}/api_fuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
bash "$src/tools/api_fuzz.sh" --bin "${RAGCORE_BIN:?run through ctest}" \
    --examples "${RAGCORE_API_FUZZ_EXAMPLES:-5}" --seed 1 --keep "$tmp" >"$tmp/out.log" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
    sed -n '/= FAILURES =/,$p' "$tmp/out.log" | head -80
    tail -5 "$tmp/out.log"
    echo "FAIL: tools/api_fuzz.sh exit $rc"
    exit 1
fi
grep 'api_fuzz.sh: .* requests generated' "$tmp/out.log"
# The run must have reached the API: requests were generated and none failed with a 5xx.
n=$(sed -n 's/^api_fuzz.sh: \([0-9]*\) requests generated.*/\1/p' "$tmp/out.log")
[ "${n:-0}" -ge 100 ] || { echo "FAIL: only ${n:-0} requests generated"; exit 1; }
echo "ok   api fuzz ($n requests)"
