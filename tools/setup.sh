#!/usr/bin/env bash
# setup.sh - install ragcore's build dependencies (Debian 12) and build FAISS's C API into a cache.
#
# Idempotent: packages already present are not reinstalled and a finished FAISS build is reused.
# Environment:
#   RAGCORE_FAISS_PREFIX  where FAISS is installed (default: a cache dir keyed by version and ISA)
#   RAGCORE_FAISS_ISA     avx2 | generic (default: avx2 when the CPU has it)
#   RAGCORE_SKIP_APT=1    do not call apt-get (dependencies are known to be present)
# Prints the FAISS prefix on its last line of stdout.
set -euo pipefail

FAISS_VERSION=1.7.3
# Our patches to Debian's FAISS source, applied before the build; the cache directory's name
# carries a hash of them so that a changed set rebuilds. All change speed only:
#   faiss-hnsw-prefetch.patch     HNSW search requests a node's unvisited neighbour vectors
#                                 two ahead of each distance (1.7.3 computed them one by one,
#                                 each waiting on memory; later FAISS releases batch them)
#   faiss-ip-accumulators.patch   the AVX2 inner product sums in four independent registers
#                                 (one chain of dependent adds before; rounding may differ)
#   faiss-hnsw-visited-reuse.patch  each thread keeps its HNSW visited table between searches
#                                 (a malloc and a memset of one byte per vector per query before)
FAISS_PATCHES=(faiss-hnsw-prefetch.patch faiss-ip-accumulators.patch faiss-hnsw-visited-reuse.patch)
here=$(cd "$(dirname "$0")" && pwd)
PKGS=(cmake make g++ pkg-config dpkg-dev patch ca-certificates
      liblmdb-dev libopenblas-dev libjansson-dev libmicrohttpd-dev libcurl4-openssl-dev
      libutf8proc-dev libxxhash-dev libstemmer-dev zlib1g-dev
      unzip python3-pip python3-venv  # model pull; venvs of the API fuzz, Python tests, benches
      python3-dev  # headers of the Python extension module (python/, make wheel)
      libssl-dev openssl wrk chromium  # server: key hashing, TLS test, load bench, dashboard test
      libxml2-dev libcmark-dev libpoppler-glib-dev libssl-dev
      # static link of the installed libragcore.a: `pkg-config --static --libs libcurl` names
      # these libraries (-lnghttp2 -lidn2 -lrtmp -lssh2 -lpsl -lgssapi_krb5 -lldap -lzstd -lbrotlidec)
      libnghttp2-dev libidn2-dev librtmp-dev libssh2-1-dev libpsl-dev libkrb5-dev libldap-dev
      libzstd-dev libbrotli-dev
      libyaml-dev  # Markdown front matter as document metadata
      libsodium-dev  # encryption at rest (core/crypt.c)
      libsimde-dev  # test_bert: the AVX-512 VNNI int8 kernel checked on CPUs without VNNI
      nats-server libnats-dev haproxy)  # cluster mode: the replicated log (NATS JetStream), HAProxy in front

log() { echo "setup: $*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@";
    else log "need root to run: $*"; exit 1; fi
}

install_packages() {
    [ "${RAGCORE_SKIP_APT:-0}" = 1 ] && return 0
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# The Debian archive URI this system already uses (so no host name is hard-coded here).
debian_uri() {
    local uri=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        uri=$(awk '/^URIs:/{u=$2} /^Suites:/{ if ($0 ~ /bookworm( |$)/ && u !~ /security/) {print u; exit} }' \
              /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list)
    fi
    [ -n "$uri" ] || { log "cannot find a Debian bookworm archive in the apt configuration"; exit 1; }
    echo "$uri"
}

# Downloads Debian's FAISS source into $1 (a new directory) and applies our patches; prints
# the source directory.
fetch_faiss_source() {
    local work=$1
    mkdir -p "$work/lists/partial"
    echo "deb-src $(debian_uri) bookworm main" > "$work/sources.list"
    local aopt=(-o "Dir::Etc::sourcelist=$work/sources.list" -o "Dir::Etc::sourceparts=-"
                -o "Dir::State::Lists=$work/lists" -o "APT::Sandbox::User=root")
    apt-get "${aopt[@]}" update -qq >&2
    (cd "$work" && apt-get "${aopt[@]}" source -qq "faiss=$FAISS_VERSION-2" >&2 ||
                   apt-get "${aopt[@]}" source -qq faiss >&2)
    local src; src=$(ls -d "$work"/faiss-*/ | head -1)
    local p
    for p in "${FAISS_PATCHES[@]}"; do
        patch -d "$src" -p1 -s < "$here/$p" >&2
    done
    echo "$src"
}

# Compiles FAISS's C API from source $1 into archive $2. With NDEBUG: without it the C API
# prints every C++ exception's text to stderr before returning the error code (c_api/
# macros_impl.h), which a caller such as a server with a JSON log cannot stop; ragcore reads
# the text with faiss_get_last_error() and reports it itself.
build_capi() {
    local src=$1 out=$2 jobs; jobs=$(nproc)
    local objdir; objdir=$(mktemp -d "${TMPDIR:-/tmp}/ragcore-capi.XXXXXX")
    local f objs=()
    for f in $(cd "$src/c_api" && ls *.cpp impl/*.cpp utils/*.cpp); do
        local o="$objdir/$(echo "$f" | tr / _).o"
        g++ -std=c++11 -O2 -DNDEBUG -fPIC -fopenmp -I"$src" -I"$src/c_api" -c "$src/c_api/$f" -o "$o" &
        objs+=("$o")
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
    done
    wait
    rm -f "$out.tmp" && ar rcs "$out.tmp" "${objs[@]}" && mv "$out.tmp" "$out"
    rm -rf "$objdir"
}

# The C API recipe: a cache built before it is given a new C API archive (below).
CAPI_RECIPE="capi-ndebug-1"

build_faiss() {
    local prefix=$1 isa=$2
    local work; work=$(mktemp -d "${TMPDIR:-/tmp}/ragcore-faiss.XXXXXX")
    # removed when this function returns (the trap then clears itself: a RETURN trap stays
    # set for every later function return, where $work is out of scope)
    trap 'rm -rf "${work:-}"; trap - RETURN' RETURN
    log "building FAISS $FAISS_VERSION ($isa) into $prefix (several minutes, once)"
    local src; src=$(fetch_faiss_source "$work")
    local jobs; jobs=$(nproc)
    local target=faiss lib=libfaiss.a
    if [ "$isa" = avx2 ]; then target=faiss_avx2; lib=libfaiss_avx2.a; fi
    cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
          -DFAISS_ENABLE_GPU=OFF -DFAISS_ENABLE_PYTHON=OFF -DFAISS_ENABLE_C_API=ON \
          -DFAISS_OPT_LEVEL="$isa" -DBUILD_TESTING=OFF -DBUILD_SHARED_LIBS=OFF \
          -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DBLA_VENDOR=OpenBLAS >&2
    cmake --build "$work/build" --target "$target" -j "$jobs" >&2
    # The C API is compiled against the chosen library only (the stock faiss_c target
    # would also build the generic library).
    rm -rf "$prefix.tmp" && mkdir -p "$prefix.tmp/lib" "$prefix.tmp/include"
    build_capi "$src" "$prefix.tmp/lib/libfaiss_c.a"
    cp "$work/build/faiss/$lib" "$prefix.tmp/lib/libfaiss.a"
    (cd "$src" && find faiss -name '*.h' -exec cp --parents {} "$prefix.tmp/include/" \;)
    mkdir -p "$prefix.tmp/include/faiss/c_api"
    (cd "$src/c_api" && find . -name '*.h' -not -path './gpu/*' \
         -exec cp --parents {} "$prefix.tmp/include/faiss/c_api/" \;)
    echo "$FAISS_VERSION $isa ${FAISS_PATCHES[*]}" > "$prefix.tmp/VERSION"
    echo "$CAPI_RECIPE" > "$prefix.tmp/CAPI"
    rm -rf "$prefix" && mv "$prefix.tmp" "$prefix"
}

# A cache whose C API was built by an older recipe gets a new libfaiss_c.a (a minute or two;
# FAISS itself is not rebuilt).
update_capi() {
    local prefix=$1
    local work; work=$(mktemp -d "${TMPDIR:-/tmp}/ragcore-faiss.XXXXXX")
    trap 'rm -rf "${work:-}"; trap - RETURN' RETURN
    log "rebuilding FAISS's C API in $prefix ($CAPI_RECIPE)"
    local src; src=$(fetch_faiss_source "$work")
    build_capi "$src" "$prefix/lib/libfaiss_c.a"
    echo "$CAPI_RECIPE" > "$prefix/CAPI"
}

main() {
    if [ "${1:-}" = --fuzz ]; then  # make fuzz: clang with libFuzzer (tests/fuzz)
        install_packages clang libclang-rt-14-dev
        return 0
    fi
    install_packages "${PKGS[@]}"
    local isa=${RAGCORE_FAISS_ISA:-}
    if [ -z "$isa" ]; then
        if grep -qw avx2 /proc/cpuinfo; then isa=avx2; else isa=generic; fi
    fi
    local tag; tag=$(cd "$here" && cat "${FAISS_PATCHES[@]}" | sha256sum | cut -c1-8)
    local prefix=${RAGCORE_FAISS_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/ragcore/faiss-$FAISS_VERSION-$isa-$tag}
    if [ ! -f "$prefix/VERSION" ]; then
        mkdir -p "$(dirname "$prefix")"
        build_faiss "$prefix" "$isa"
    elif [ "$(cat "$prefix/CAPI" 2>/dev/null)" != "$CAPI_RECIPE" ]; then
        update_capi "$prefix"
    fi
    echo "$prefix"
}

main "$@"
