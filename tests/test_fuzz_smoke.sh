#!/usr/bin/env bash
# test_fuzz_smoke.sh - CI fuzzing: each libFuzzer target of tests/fuzz replays its seed corpus
# and regression inputs, then fuzzes for RAGCORE_FUZZ_SECONDS (default 10). Without clang's
# libFuzzer the inputs are replayed through an ASan/UBSan build made with cc. The random seed
# is fixed (RAGCORE_FUZZ_SEED, default 1): longer, varied campaigns run tests/fuzz/run.sh.
set -uo pipefail
src=${RAGCORE_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
out=${RAGCORE_BUILD_DIR:-$src/build}/fuzz-smoke
export RAGCORE_FUZZ_SEED=${RAGCORE_FUZZ_SEED:-1}
exec bash "$src/tests/fuzz/run.sh" "$out" "${RAGCORE_FUZZ_SECONDS:-10}"
