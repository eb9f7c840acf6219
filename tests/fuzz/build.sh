#!/usr/bin/env bash
# build.sh - builds the fuzz targets into OUTDIR: the white-box targets of internal modules
# (core/tests/fuzz, built with core/'s headers) and the server targets (tests/fuzz, built
# with the public header and server/'s only).
#   build.sh OUTDIR            libFuzzer binaries (clang, -fsanitize=fuzzer,address,undefined)
#   build.sh OUTDIR replay     replay binaries (cc + replay_main.c, ASan+UBSan) that run a
#                              target on files; used when clang/libFuzzer is unavailable
# Only the core modules the targets exercise are compiled (no FAISS, no LMDB), except for
# the targets that need the whole library (full_target below: the server targets, which
# run server/*.c but main.c on a real store, the log batch decoder, the cluster's message
# decoders, a replica's backup protocol and the config parsers): they need every core module
# and FAISS (RAGCORE_FAISS_ROOT, else the tools/setup.sh cache
# ~/.cache/ragcore/faiss-1.7.3-*), the cluster targets also cluster/*.c and libnats; without
# them they are skipped with a message.
set -euo pipefail
out=${1:?usage: build.sh OUTDIR [replay]}
mode=${2:-libfuzzer}
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out/obj"
modules=(chunker filter corpus extract frontmatter text status safetensors tokenizer embed_openai)
pkgs=(jansson libutf8proc libxxhash libxml-2.0 libcmark yaml-0.1 zlib libcurl)
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

# 0 when target $1 links the whole library (and the server's and cluster's objects)
full_target() {
    case $1 in
    fuzz_http* | fuzz_logbatch | fuzz_cluster* | fuzz_config* | fuzz_replica*) return 0 ;;
    esac
    return 1
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
    spkgs=("${pkgs[@]}" lmdb openblas libmicrohttpd libcrypto libsodium)
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

# The cluster's objects (cluster/*.c: router, replica and their decoders), with libnats.
cl_objs=()
cl_libs=""
if [ -n "$srv_libs" ] && pkg-config --exists libnats; then
    mkdir -p "$out/obj/cluster"
    clflags="$scflags $(pkg-config --cflags libnats) -I$src/cluster"
    for c in "$src"/cluster/*.c; do
        o="$out/obj/cluster/$(basename "$c" .c).o"
        if stale "$o" "$c" || [ -n "$(find "$src/cluster" -name '*.h' -newer "$o" -print -quit)" ]; then
            # shellcheck disable=SC2086
            $cc "${common[@]}" "${objsan[@]}" $clflags -c "$c" -o "$o"
        fi
        cl_objs+=("$o")
    done
    cl_libs=$(pkg-config --libs libnats)
fi

for t in "$src"/core/tests/fuzz/fuzz_*.c "$src"/tests/fuzz/fuzz_*.c; do
    name=$(basename "$t" .c)
    extra=("$src/core/tests/fuzz/support.c")
    [ "$mode" = replay ] && extra+=("$src/tests/fuzz/replay_main.c")
    if full_target "$name"; then
        cluster=0
        case $name in fuzz_cluster* | fuzz_config* | fuzz_replica*) cluster=1 ;; esac
        if [ -z "$srv_libs" ] || { [ $cluster = 1 ] && [ -z "$cl_libs" ]; }; then
            echo "build.sh: $name skipped: FAISS not found (set RAGCORE_FAISS_ROOT)" \
                 "$([ $cluster = 1 ] && echo "or libnats not found")" >&2
            rm -f "$out/$name"
            continue
        fi
        # C objects first, then a C++ link (FAISS); support.c is not needed (the library
        # is linked whole). White-box targets (core/tests/fuzz) see core/'s headers.
        tinc=()
        [ "$(dirname "$t")" = "$src/core/tests/fuzz" ] && tinc=("${internal[@]}")
        tsrc=("$t")
        case $name in
        fuzz_http*) tsrc+=("$src/tests/fuzz/http_support.c") ;;
        fuzz_cluster* | fuzz_replica*) tsrc+=("$src/tests/fuzz/cluster_support.c") ;;
        esac
        tflags=$scflags
        tlink=("${objs[@]}" "${srv_objs[@]}")
        if [ $cluster = 1 ]; then
            tflags="$clflags"
            tlink+=("${cl_objs[@]}")
        fi
        tobjs=()
        for c in "${tsrc[@]}" "${extra[@]:1}"; do
            o="$out/obj/$(basename "$c" .c).o"
            # shellcheck disable=SC2086
            $cc "${common[@]}" "${tinc[@]}" "${objsan[@]}" $tflags -c "$c" -o "$o"
            tobjs+=("$o")
        done
        # shellcheck disable=SC2086
        $cxx "${san[@]}" "${tobjs[@]}" "${tlink[@]}" $srv_libs $cl_libs -lm -lpthread \
            -o "$out/$name"
        continue
    fi
    # shellcheck disable=SC2086
    $cc "${common[@]}" "${internal[@]}" "${san[@]}" $cflags "$t" "${extra[@]}" "${objs[@]}" $libs -lm \
        -lpthread -o "$out/$name"
done
echo "fuzz targets ($mode) in $out"
