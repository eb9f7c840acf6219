# server_lib.sh - shell helpers shared by the server benchmarks (sourced, not run).

# field JSON KEY: prints JSON[KEY]
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

# cpu_ticks PID: the process's user + system CPU time in clock ticks
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# epoll_sets PID: the number of descriptors in each of the process's epoll sets, as a/b/...
epoll_sets() {
    local fd sets=""
    for fd in /proc/"$1"/fd/*; do
        [ "$(readlink "$fd" 2>/dev/null)" = "anon_inode:[eventpoll]" ] || continue
        sets="$sets${sets:+/}$(grep -c '^tfd:' /proc/"$1"/fdinfo/"${fd##*/}")"
    done
    echo "$sets"
}

# wait_http URL [SECONDS]: waits (default 60 s) until URL answers 2xx; 1 when it never does
wait_http() {
    for _ in $(seq 1 $((${2:-60} * 10))); do
        curl -sf -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "$1 did not come up" >&2
    return 1
}

# server_url PORT_FILE: waits until ragcore-server wrote its port, then until /readyz
# answers; prints http://127.0.0.1:PORT
server_url() {
    for _ in $(seq 1 600); do [ -s "$1" ] && break; sleep 0.1; done
    [ -s "$1" ] || { echo "no port in $1" >&2; return 1; }
    local url=http://127.0.0.1:$(cat "$1")
    wait_http "$url/readyz" && echo "$url"
}
