#!/usr/bin/env bash
# test_install.sh - installs ragcore into a scratch prefix and builds the quickstart example
# against the INSTALLED library twice: through pkg-config and through find_package(ragcore).
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
# Only the public API is exported: no FAISS, LMDB or internal symbols.
exported=$(nm -D --defined-only "$libdir/libragcore.so" | awk '{print $3}')
if echo "$exported" | grep -v '^rag_' | grep -v '^_' | grep -q .; then
    echo "unexpected exported symbols:"; echo "$exported" | grep -v '^rag_' | head; exit 1
fi
echo "$exported" | grep -qx rag_open
if echo "$exported" | grep -q '^rag_store_'; then echo "internal symbols exported"; exit 1; fi

src="$RAGCORE_SOURCE_DIR/docs/examples/quickstart.c"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
san=()
if [ "${RAGCORE_SANITIZE:-OFF}" = ON ]; then san=(-fsanitize=address,undefined); fi
cc -Wall -Wextra -Werror "${san[@]}" "$src" $(pkg-config --cflags --libs ragcore) -o "$work/quickstart"
out=$(LD_LIBRARY_PATH="$libdir" "$work/quickstart" "$work/store1")
echo "$out"
echo "$out" | head -1 | grep -q '^1 faiss '
[ "$(echo "$out" | wc -l)" -eq 2 ]

cmake -S "$RAGCORE_SOURCE_DIR/tests/install" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
      -DQUICKSTART_SOURCE="$src" -DCMAKE_C_FLAGS="${san[*]}" -DCMAKE_EXE_LINKER_FLAGS="${san[*]}" >/dev/null
cmake --build "$work/consumer" >/dev/null
out2=$(LD_LIBRARY_PATH="$libdir" "$work/consumer/quickstart_cmake" "$work/store2")
[ "$out2" = "$(LD_LIBRARY_PATH="$libdir" "$work/quickstart" "$work/store3")" ]
echo "install test passed"
