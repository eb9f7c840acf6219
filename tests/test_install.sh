#!/usr/bin/env bash
# test_install.sh - installs ragcore into a scratch prefix and builds the quickstart example
# against the INSTALLED library four ways: shared and static through pkg-config, shared
# (ragcore::ragcore) and static (ragcore::ragcore_static) through find_package(ragcore). Each
# binary runs against its own store; the static ones must not need libragcore.so, and the
# archive must carry FAISS (no FAISS symbol left undefined in it).
set -euo pipefail
: "${RAGCORE_BUILD_DIR:?}" "${RAGCORE_TEST_TMP:?}" "${RAGCORE_SOURCE_DIR:?}"
work="$RAGCORE_TEST_TMP/install"
rm -rf "$work" && mkdir -p "$work"
prefix="$work/prefix"
cmake --install "$RAGCORE_BUILD_DIR" --prefix "$prefix" >/dev/null
libdir=$(ls -d "$prefix"/lib* | head -1)
test -f "$prefix/include/ragcore.h"
test -f "$libdir/libragcore.so"
test -f "$libdir/libragcore.a"
test -f "$libdir/pkgconfig/ragcore.pc"
fail() { echo "FAIL: $*"; exit 1; }

# The shared library exports exactly the functions the public header declares: no FAISS,
# LMDB or internal symbols.
exported=$(nm -D --defined-only "$libdir/libragcore.so" | awk '{print $3}' | sort -u)
declared=$(grep -oE '\brag_[a-z0-9_]+ *\(' "$prefix/include/ragcore.h" | tr -d '( ' | sort -u)
if [ "$exported" != "$declared" ]; then
    echo "exported (<) vs declared in ragcore.h (>):"; diff <(echo "$exported") <(echo "$declared") || true
    fail "libragcore.so's exported symbols differ from the public API"
fi

# The archive is self-contained as far as FAISS goes: every FAISS symbol (C API or C++) that
# one of its members needs is defined by another member.
archive="$libdir/libragcore.a"
faiss_re='^faiss_|^_Z.*5faiss'
needed=$(nm "$archive" 2>/dev/null | awk -v re="$faiss_re" '$1 == "U" && $2 ~ re {print $2}' | sort -u)
defined=$(nm --defined-only "$archive" 2>/dev/null | awk -v re="$faiss_re" 'NF == 3 && $3 ~ re {print $3}' | sort -u)
[ -n "$needed" ] || fail "no FAISS reference found in libragcore.a (is nm output parsed right?)"
missing=$(comm -23 <(echo "$needed") <(echo "$defined"))
if [ -n "$missing" ]; then
    echo "$missing" | head -5
    fail "libragcore.a leaves $(echo "$missing" | wc -l) FAISS symbols undefined"
fi

src="$RAGCORE_SOURCE_DIR/docs/examples/quickstart.c"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
san=()
if [ "${RAGCORE_SANITIZE:-OFF}" = ON ]; then san=(-fsanitize=address,undefined); fi

# run NAME BINARY: runs BINARY on a fresh store (no LD_LIBRARY_PATH for static binaries)
# and checks its two result lines; the output is kept in $work/NAME.out for comparison.
run() {
    local name=$1 bin=$2 out deps
    deps=$(LD_LIBRARY_PATH="$libdir" ldd "$bin")  # whole, not piped: grep -q would cut it
    if [ "${name#static}" != "$name" ]; then
        if grep -q libragcore <<<"$deps"; then echo "$deps"; fail "$name needs libragcore.so"; fi
        out=$("$bin" "$work/store-$name")
    else
        grep -q 'libragcore\.so.* => .*/' <<<"$deps" || fail "$name does not use libragcore.so"
        out=$(LD_LIBRARY_PATH="$libdir" "$bin" "$work/store-$name")
    fi
    echo "$name: $out"
    [[ "$(head -1 <<<"$out")" == "1 faiss "* ]] || fail "$name: unexpected first hit"
    [ "$(wc -l <<<"$out")" -eq 2 ] || fail "$name: expected 2 hits"
    echo "$out" > "$work/$name.out"
}

# pkg-config: the shared library, then the archive (--static puts libragcore.a and every
# private dependency on the line).
cc -Wall -Wextra -Werror "${san[@]}" "$src" $(pkg-config --cflags --libs ragcore) -o "$work/shared_pc"
run shared_pc "$work/shared_pc"
cc -Wall -Wextra -Werror "${san[@]}" "$src" $(pkg-config --static --cflags --libs ragcore) -o "$work/static_pc"
run static_pc "$work/static_pc"

# CMake: find_package(ragcore COMPONENTS static) in a consumer project.
cmake -S "$RAGCORE_SOURCE_DIR/tests/install" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
      -DQUICKSTART_SOURCE="$src" -DCMAKE_C_FLAGS="${san[*]}" -DCMAKE_EXE_LINKER_FLAGS="${san[*]}" >/dev/null
cmake --build "$work/consumer" >/dev/null
run shared_cmake "$work/consumer/quickstart_shared"
run static_cmake "$work/consumer/quickstart_static"

for name in static_pc shared_cmake static_cmake; do
    cmp -s "$work/shared_pc.out" "$work/$name.out" || fail "$name's results differ from shared_pc's"
done
echo "install test passed"
