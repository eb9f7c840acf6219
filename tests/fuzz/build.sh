#!/usr/bin/env bash
# build.sh - builds the fuzz targets into OUTDIR: the white-box targets of internal modules
# (core/tests/fuzz, built with core/'s headers) and the server targets (tests/fuzz, built
# with the public header and server/'s only).
#   build.sh OUTDIR            libFuzzer binaries (clang, -fsanitize=fuzzer,address,undefined)
#   build.sh OUTDIR replay     replay binaries (cc + replay_main.c, ASan+UBSan) that run a
#                              target on files; used when clang/libFuzzer is unavailable
# Only the core modules the targets exercise are compiled (no FAISS, no LMDB), except for
# the fuzz_http* targets: they run the server (server/*.c but main.c) on a real store, so
# they need every core module and FAISS (RAGCORE_FAISS_ROOT, else the tools/setup.sh cache
# ~/.cache/ragcore/faiss-1.7.3-*); without FAISS they are skipped with a message.
set -euo pipefail
out=${1:?usage: build.sh OUTDIR [replay]}
mode=${2:-libfuzzer}
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out/obj"
modules=(chunker filter corpus extract frontmatter text status safetensors tokenizer)
pkgs=(jansson libutf8proc libxxhash libxml-2.0 libcmark yaml-0.1 zlib)
defs=(-D_GNU_SOURCE -DRAGCORE_BUILDING)
if pkg-config --exists poppler-glib; then pkgs+=(poppler-glib); defs+=(-DRAGCORE_HAVE_POPPLER); fi
cflags=$(pkg-config --cflags "${pkgs[@]}")
libs=$(pkg-config --libs "${pkgs[@]}")
if [ "$mode" = replay ]; then
    cc=${CC:-cc}
    cxx=${CXX:-c++}
    san=(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
    objsan=("${san[@]}")
else
    cc=${CC:-clang}
    cxx=${CXX:-clang++}
    san=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
    objsan=(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
            -fno-omit-frame-pointer)
fi
common=(-g -O1 -std=gnu11 "${defs[@]}" -I"$src/include")
internal=(-I"$src/core") # core modules and white-box targets only

# stale OBJ SRC: the object is missing, or older than its source or any project header.
stale() {
    [ ! -f "$1" ] || [ "$2" -nt "$1" ] ||
        [ -n "$(find "$src/core" "$src/server" "$src/include" -name '*.h' -newer "$1" -print -quit)" ]
}

objs=()
for m in "${modules[@]}"; do
    o="$out/obj/$m.o"
    if stale "$o" "$src/core/$m.c"; then
        # shellcheck disable=SC2086
        $cc "${common[@]}" "${internal[@]}" "${objsan[@]}" $cflags -c "$src/core/$m.c" -o "$o"
    fi
    objs+=("$o")
done

# The server targets: every core module, the server but main.c, its embedded assets.
faiss=${RAGCORE_FAISS_ROOT:-}
if [ -z "$faiss" ]; then
    for d in "${RAGCORE_FAISS_PREFIX:-}" "$HOME"/.cache/ragcore/faiss-1.7.3-*; do
        [ -n "$d" ] && [ -f "$d/lib/libfaiss_c.a" ] && { faiss=$d; break; }
    done
fi
srv_objs=()
srv_libs=""
if [ -n "$faiss" ] && [ -f "$faiss/lib/libfaiss_c.a" ]; then
    mkdir -p "$out/obj/srv"
    spkgs=("${pkgs[@]}" lmdb openblas libcurl libmicrohttpd libcrypto libsodium)
    scflags="$(pkg-config --cflags "${spkgs[@]}") -I$faiss/include -I$src/server"
    for c in "$src"/core/*.c "$src"/server/*.c; do
        m=$(basename "$c" .c)
        [ "$c" = "$src/server/main.c" ] && continue
        inc=()
        if [ "$(dirname "$c")" = "$src/core" ]; then
            case " ${modules[*]} " in *" $m "*) continue ;; esac
            inc=("${internal[@]}")
        fi
        o="$out/obj/srv/$m.o"
        if stale "$o" "$c"; then
            # shellcheck disable=SC2086
            $cc "${common[@]}" "${inc[@]}" "${objsan[@]}" $scflags -c "$c" -o "$o"
        fi
        srv_objs+=("$o")
    done
    # embedded files: the server's assets, and the toxicity classifier's converter that
    # `model pull` runs (core/CMakeLists.txt builds it into the library the same way)
    for asset in server/openapi.json:srv_asset_openapi server/dashboard.html:srv_asset_dashboard \
                 tools/profanity_convert.py:rag_profanity_convert_py; do
        f=${asset%%:*}
        sym=${asset##*:}
        a="$out/obj/srv/$sym.c"
        if [ ! -f "$a" ] || [ "$src/$f" -nt "$a" ]; then
            cmake -DINPUT="$src/$f" -DOUTPUT="$a" -DNAME="$sym" \
                  -P "$src/server/embed_asset.cmake"
            $cc -c "$a" -o "$out/obj/srv/$sym.o"
        fi
        srv_objs+=("$out/obj/srv/$sym.o")
    done
    srv_libs="$faiss/lib/libfaiss_c.a $(ls "$faiss"/lib/libfaiss.a "$faiss"/lib/libfaiss_avx2.a \
              2>/dev/null | head -1) $(pkg-config --libs "${spkgs[@]}") -lstemmer -lgomp"
fi

for t in "$src"/core/tests/fuzz/fuzz_*.c "$src"/tests/fuzz/fuzz_*.c; do
    name=$(basename "$t" .c)
    extra=("$src/core/tests/fuzz/support.c")
    [ "$mode" = replay ] && extra+=("$src/tests/fuzz/replay_main.c")
    case $name in
    fuzz_http*)
        if [ -z "$srv_libs" ]; then
            echo "build.sh: $name skipped: FAISS not found (set RAGCORE_FAISS_ROOT)" >&2
            rm -f "$out/$name"
            continue
        fi
        # C objects first, then a C++ link (FAISS); support.c is not needed (the library
        # is linked whole).
        tobjs=()
        for c in "$t" "$src/tests/fuzz/http_support.c" "${extra[@]:1}"; do
            o="$out/obj/$(basename "$c" .c).o"
            # shellcheck disable=SC2086
            $cc "${common[@]}" "${objsan[@]}" $scflags -c "$c" -o "$o"
            tobjs+=("$o")
        done
        # shellcheck disable=SC2086
        $cxx "${san[@]}" "${tobjs[@]}" "${objs[@]}" "${srv_objs[@]}" $srv_libs -lm -lpthread \
            -o "$out/$name"
        ;;
    *)
        # shellcheck disable=SC2086
        $cc "${common[@]}" "${internal[@]}" "${san[@]}" $cflags "$t" "${extra[@]}" "${objs[@]}" $libs -lm \
            -lpthread -o "$out/$name"
        ;;
    esac
done
echo "fuzz targets ($mode) in $out"
