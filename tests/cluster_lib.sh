# cluster_lib.sh - sourced by the cluster tests: skips without the cluster's programs, ports
# that no concurrent cluster test uses, and a local cluster (tools/cluster_dev.sh) that is
# stopped on exit. Their Python side is tests/cluster_lib.py. A test starts with
#   set -euo pipefail
#   src=${RAGCORE_SOURCE_DIR:?}
#   . "$src/tests/cluster_lib.sh"
#   cl_setup NAME
#   cl_python <<'PY'
#   ... c = Cluster(*sys.argv[1:4]) ...
#   PY

# Exits 77 (ctest's skip) without nats-server or haproxy; fails without cluster mode.
cl_require() {
    command -v nats-server >/dev/null || { echo "SKIP: nats-server not installed (tools/setup.sh installs it)"; exit 77; }
    command -v haproxy >/dev/null || { echo "SKIP: haproxy not installed (tools/setup.sh installs it)"; exit 77; }
    "${RAGCORE_BIN:?}/ragcore-server" cluster --help >/dev/null 2>&1 || { echo "FAIL: ragcore-server built without cluster mode"; exit 1; }
}

# Exports RAGCORE_CLUSTER_BASE (NATS: BASE..BASE+202) and RAGCORE_CLUSTER_HTTP (HAProxy and
# routers: HTTP, HTTP+80, HTTP+81) in a 400-port slot of 20000..29999 chosen from the
# process id, one where nothing listens yet.
cl_pick_ports() {
    local k slot base used
    used=$(ss -Hltn 2>/dev/null | awk '{n = split($4, a, ":"); print a[n]}')
    for k in $(seq 0 24); do
        slot=$(( ($$ + k) % 25 ))
        base=$(( 20000 + slot * 400 ))
        if ! echo "$used" | awk -v lo="$base" -v hi=$((base + 399)) '$1 >= lo && $1 <= hi {f = 1} END {exit !f}'; then
            export RAGCORE_CLUSTER_BASE=$base RAGCORE_CLUSTER_HTTP=$((base + 300))
            return 0
        fi
    done
    echo "FAIL: no free port slot in 20000..29999"; exit 1
}

# Starts the local cluster in DIR (cl_dir); cl_stop stops every process it started.
cl_start() {
    cl_dir=$1
    "${RAGCORE_SOURCE_DIR:?}/tools/cluster_dev.sh" stop "$cl_dir" 2>/dev/null || true
    rm -rf "$cl_dir"
    mkdir -p "$cl_dir"
    "$RAGCORE_SOURCE_DIR/tools/cluster_dev.sh" start "$cl_dir"
}

# The start of a cluster test called NAME: skips without the cluster's programs (cl_require),
# picks its ports, sets the routers' shard timeout to 400 ms (unless
# RAGCORE_CLUSTER_QUERY_TIMEOUT_MS is set), and starts a local cluster in tmp
# ($RAGCORE_TEST_TMP/cluster-NAME-PID) that an EXIT trap stops and removes (a sanitizer
# report in a process's log fails the test).
cl_setup() {
    cl_require
    cl_pick_ports
    export RAGCORE_CLUSTER_QUERY_TIMEOUT_MS=${RAGCORE_CLUSTER_QUERY_TIMEOUT_MS:-400}
    tmp=${RAGCORE_TEST_TMP:-/tmp}/cluster-$1-$$
    trap 'st=$?; cl_stop $st || st=$?; rm -rf "$tmp"; exit $st' EXIT
    cl_start "$tmp"
}

# Runs the Python program on stdin with tests/ on its path and the arguments cluster_lib.py's
# Cluster takes: the cluster's directory, the programs' directory, tools/cluster_dev.sh.
cl_python() {
    PYTHONPATH="$RAGCORE_SOURCE_DIR/tests" python3 - "$tmp" "$RAGCORE_BIN" \
        "$RAGCORE_SOURCE_DIR/tools/cluster_dev.sh" "$@"
}

# Stops the cluster and returns STATUS (default 0), or 1 when a process's log holds a
# sanitizer report (their exit codes are not seen); a failed test (STATUS not 0) prints the
# end of every process's log. For an EXIT trap:
#   trap 'st=$?; cl_stop $st || st=$?; ...; exit $st' EXIT
cl_stop() {
    local rc=${1:-0}
    [ -n "${cl_dir:-}" ] || return "$rc"
    "${RAGCORE_SOURCE_DIR:?}/tools/cluster_dev.sh" stop "$cl_dir" || true
    if [ "$rc" -ne 0 ]; then  # a failed test: what each process said last, for the diagnosis
        for f in "$cl_dir"/log/*.log; do
            [ -f "$f" ] && { echo "--- ${f##*/} (last 25 lines)"; tail -n 25 "$f"; }
        done
    fi
    if grep -l -E "ERROR: [A-Za-z]+Sanitizer|runtime error:" "$cl_dir"/log/*.log 2>/dev/null; then
        echo "FAIL: sanitizer reports in the logs above:"
        grep -h -A20 -E "ERROR: [A-Za-z]+Sanitizer|runtime error:" "$cl_dir"/log/*.log | head -80
        rc=1
    fi
    return $rc
}
