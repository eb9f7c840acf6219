#!/usr/bin/env bash
# build.sh - builds the fuzz targets of tests/fuzz into OUTDIR.
#   build.sh OUTDIR            libFuzzer binaries (clang, -fsanitize=fuzzer,address,undefined)
#   build.sh OUTDIR replay     replay binaries (cc + replay_main.c, ASan+UBSan) that run a
#                              target on files; used when clang/libFuzzer is unavailable
# Only the core modules the targets exercise are compiled (no FAISS, no LMDB).
set -euo pipefail
out=${1:?usage: build.sh OUTDIR [replay]}
mode=${2:-libfuzzer}
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out/obj"
modules=(chunker filter corpus extract text status safetensors tokenizer)
pkgs=(jansson libutf8proc libxxhash libxml-2.0 libcmark zlib)
defs=(-D_GNU_SOURCE -DRAGCORE_BUILDING)
if pkg-config --exists poppler-glib; then pkgs+=(poppler-glib); defs+=(-DRAGCORE_HAVE_POPPLER); fi
cflags=$(pkg-config --cflags "${pkgs[@]}")
libs=$(pkg-config --libs "${pkgs[@]}")
if [ "$mode" = replay ]; then
    cc=${CC:-cc}
    san=(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
    objsan=("${san[@]}")
else
    cc=${CC:-clang}
    san=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
    objsan=(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
            -fno-omit-frame-pointer)
fi
common=(-g -O1 -std=gnu11 "${defs[@]}" -I"$src/include" -I"$src/core")
objs=()
for m in "${modules[@]}"; do
    o="$out/obj/$m.o"
    if [ ! -f "$o" ] || [ "$src/core/$m.c" -nt "$o" ]; then
        # shellcheck disable=SC2086
        $cc "${common[@]}" "${objsan[@]}" $cflags -c "$src/core/$m.c" -o "$o"
    fi
    objs+=("$o")
done
for t in "$src"/tests/fuzz/fuzz_*.c; do
    name=$(basename "$t" .c)
    extra=("$src/tests/fuzz/support.c")
    [ "$mode" = replay ] && extra+=("$src/tests/fuzz/replay_main.c")
    # shellcheck disable=SC2086
    $cc "${common[@]}" "${san[@]}" $cflags "$t" "${extra[@]}" "${objs[@]}" $libs -lm -lpthread \
        -o "$out/$name"
done
echo "fuzz targets ($mode) in $out"
