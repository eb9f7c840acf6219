#!/usr/bin/env bash
# test_python.sh - the Python package's tests (python/tests: the embedded API, ragcore.Client
# against a running ragcore-server, langchain-tests' standard VectorStoreIntegrationTests,
# a LlamaIndex VectorStoreIndex built and queried, the README examples) on the extension
# module this build put in <build>/python, in the pinned venv of tools/python_venv.sh.
# Skipped (exit 77) when that venv does not exist (.ci/run creates it) or the module was not
# built (sanitizer builds, no Python headers).
set -uo pipefail
src=${RAGCORE_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
build=${RAGCORE_BUILD_DIR:?run through ctest}
venv=${RAGCORE_PYTHON_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ragcore/python-venv}
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.ragcore-requirements" ]; then
    echo "SKIP: no Python test venv at $venv (bash tools/python_venv.sh creates it)"
    exit 77
fi
if ! ls "$build"/python/ragcore/_native*.so >/dev/null 2>&1; then
    echo "SKIP: the extension module is not built in $build/python (sanitizer build?)"
    exit 77
fi
# The MiniLM tests (LlamaIndex embeddings, README) read the model cache; a pull is a no-op
# when it is there.
"${RAGCORE_BIN:?}/ragcore" model pull all-MiniLM-L6-v2 >/dev/null 2>&1 ||
    echo "note: all-MiniLM-L6-v2 could not be pulled; the tests that need it skip"
tmp=$(mktemp -d "${RAGCORE_TEST_TMP:-/tmp}/python.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$src/python/tests" &&
    PYTHONPATH="$build/python" TMPDIR="$tmp" "$venv/bin/python" -m pytest -q \
        -o cache_dir="$tmp/.pytest_cache" --basetemp="$tmp/pt" .
