#!/usr/bin/env bash
# test_python_wheel.sh - the wheel of `make wheel` (<build>/wheel) installs into a fresh venv
# with pip alone (no compiler, no network: --no-index) and works from outside the source
# tree; its extension module carries ragcore and FAISS (no libragcore/libfaiss to load) and
# needs only shared libraries that Debian runtime packages provide (none from a -dev
# package, none missing). Skipped (77) when no wheel was built.
set -uo pipefail
build=${RAGCORE_BUILD_DIR:?run through ctest}
whl=$(ls "$build"/wheel/ragcore-*-cp39-abi3-*.whl 2>/dev/null | head -1)
if [ -z "$whl" ]; then
    echo "SKIP: no wheel in $build/wheel (make wheel builds it)"
    exit 77
fi
tmp=$(mktemp -d "${RAGCORE_TEST_TMP:-/tmp}/wheel.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
# The fresh venv gets its pip from the test venv when there is one (pip --python; ensurepip
# alone takes most of a minute on a busy machine), else its own.
pyvenv=${RAGCORE_PYTHON_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ragcore/python-venv}
if [ -x "$pyvenv/bin/pip" ]; then
    python3 -m venv --without-pip "$tmp/venv" || { echo "FAIL python3 -m venv"; exit 1; }
    pip=("$pyvenv/bin/pip" --python "$tmp/venv/bin/python")
else
    python3 -m venv "$tmp/venv" || { echo "FAIL python3 -m venv"; exit 1; }
    pip=("$tmp/venv/bin/pip")
fi
"${pip[@]}" install -q --no-index --no-deps "$whl" || { echo "FAIL pip install $whl"; exit 1; }
so=$(ls "$tmp"/venv/lib/python3*/site-packages/ragcore/_native.abi3.so)
[ -f "$so" ] || fail "no ragcore/_native.abi3.so in the installed wheel"
ldd "$so" > "$tmp/ldd" 2>&1
grep -q "not found" "$tmp/ldd" && fail "unresolved libraries: $(grep 'not found' "$tmp/ldd")"
grep -Eq "libragcore|libfaiss" "$tmp/ldd" && fail "the module loads libragcore or libfaiss"
# Each library's owning package, in one dpkg query over every name a library may be
# recorded under (as linked, resolved, and resolved under /lib: Debian's merged /usr).
awk '/=> \//{print $3}' "$tmp/ldd" | sort -u > "$tmp/libs"
while read -r lib; do
    r=$(readlink -f "$lib")
    printf '%s\n%s\n%s\n' "$lib" "$r" "${r/#\/usr\/lib\//\/lib\/}"
done < "$tmp/libs" | sort -u > "$tmp/names"
xargs -r dpkg -S < "$tmp/names" > "$tmp/owners" 2>/dev/null
while read -r lib; do
    r=$(readlink -f "$lib")
    pkg=$(grep -F -e ": $lib" -e ": $r" -e ": ${r/#\/usr\/lib\//\/lib\/}" "$tmp/owners" |
          head -1 | cut -d: -f1)
    case "$pkg" in
        "") fail "$lib: no Debian package owns it" ;;
        *-dev) fail "$lib comes from development package $pkg" ;;
    esac
done < "$tmp/libs"
[ $fails -eq 0 ] &&
    echo "ok   $(wc -l < "$tmp/libs") shared libraries, all from Debian runtime packages"
cd "$tmp" && "$tmp/venv/bin/python" - <<'PY' || fail "smoke test in the fresh venv"
import ragcore, tempfile, os
assert ragcore.__file__.startswith(os.getcwd()), ragcore.__file__   # the installed copy
with ragcore.open(tempfile.mkdtemp() + "/s", embedder="hash") as db:
    db.ingest([{"id": "a", "text": "wheels carry the library"}, ("b", "unrelated words")])
    hits = db.search("library wheels", k=1)
    assert hits[0].doc_id == "a", hits
    assert "[1]" in db.context("library").text
print("ok   installed wheel: ingest, search, context (no NumPy)")
PY
[ $fails -eq 0 ] || exit 1
echo "ok   wheel $(basename "$whl")"
