#!/usr/bin/env bash
# cluster_dev.sh - a whole local ragcore cluster on loopback ports: 3 NATS servers (one
# JetStream cluster), 2 shards x 2 replicas, 2 routers and HAProxy in front.
#
#   tools/cluster_dev.sh start [DIR]   start everything; state, logs and stores under DIR
#   tools/cluster_dev.sh stop [DIR]    stop every process it started (TERM, then KILL)
#   tools/cluster_dev.sh status [DIR]  `ragcore-server cluster status`
#   tools/cluster_dev.sh respawn NAME [DIR]  start process NAME (nats0..2, r0a, r0b, r1a,
#                                      r1b, router1, router2, haproxy) again as it was
#                                      started (after a test killed it)
#   tools/cluster_dev.sh spawn NAME DIR CMD...  start one more process NAME (e.g. a replica
#                                      in a network namespace) that respawn and stop know
#
# DIR defaults to ./cluster-dev. Ports: NATS clients BASE+0..2 (BASE default 14222, env
# RAGCORE_CLUSTER_BASE), NATS routes BASE+100.., NATS monitoring BASE+200.., routers 18080
# and 18081, HAProxy 18000 (deploy/haproxy.cfg; env RAGCORE_CLUSTER_HTTP shifts these three).
# Env RAGCORE_BIN: directory of ragcore-server (default: build/bin of this checkout).
# Env RAGCORE_CLUSTER_ROUTERS=1 starts one router; RAGCORE_CLUSTER_NO_HAPROXY=1 none.
# Env RAGCORE_CLUSTER_NATS_HOST: the local address NATS listens on and the cluster file
# names (default 127.0.0.1; a veth address lets a network namespace reach it).
# Env RAGCORE_CLUSTER_STREAM_MAX_MSGS: retention of each shard log in messages (0: none).
# Env RAGCORE_CLUSTER_DEDUP_WINDOW_S: the message-id window (and duplicate-claim grace), s.
# Env RAGCORE_CLUSTER_NATS_PING_S: the brokers' ping interval, s (a client silent for 3 of
# them is disconnected; default 120).
# The routers' bootstrap admin key is generated into DIR/admin.key (the cluster file's
# admin_key_file): curl -H "Authorization: Bearer $(cat DIR/admin.key)" ...; their PII hash
# key (pii "hash") into DIR/pii.key (pii_key_file).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-}
dir=$(realpath -m "${2:-cluster-dev}")
base=${RAGCORE_CLUSTER_BASE:-14222}
nhost=${RAGCORE_CLUSTER_NATS_HOST:-127.0.0.1}
http=${RAGCORE_CLUSTER_HTTP:-18000}
bin=${RAGCORE_BIN:-$here/build/bin}
server=$bin/ragcore-server

log() { echo "cluster_dev: $*" >&2; }

# Starts a background process whose pid is recorded as NAME.
spawn() {
    local name=$1; shift
    mkdir -p "$dir/cmd"
    printf '%q ' "$@" >"$dir/cmd/$name"
    "$@" >>"$dir/log/$name.log" 2>&1 &
    echo $! >"$dir/pid/$name"
}

respawn() {
    local name=$1
    [ -f "$dir/cmd/$name" ] || { log "no process named $name in $dir"; exit 1; }
    eval "set -- $(cat "$dir/cmd/$name")"
    "$@" >>"$dir/log/$name.log" 2>&1 &
    echo $! >"$dir/pid/$name"
}

# Waits are long enough for a loaded machine (a JetStream meta leader, a process's start).
wait_port_file() {
    local f=$1 i
    for i in $(seq 1 600); do
        [ -s "$f" ] && return 0
        sleep 0.05
    done
    log "timed out waiting for $f"; return 1
}

wait_http() {
    local url=$1 i
    for i in $(seq 1 200); do
        curl -fs -o /dev/null "$url" && return 0
        sleep 0.1
    done
    log "timed out waiting for $url"; return 1
}

write_nats_config() {
    local i=$1 routes=""
    for j in 0 1 2; do routes+="${routes:+, }nats-route://$nhost:$((base + 100 + j))"; done
    cat >"$dir/nats/n$i.conf" <<CONF
server_name: n$i
listen: $nhost:$((base + i))
ping_interval: ${RAGCORE_CLUSTER_NATS_PING_S:-120}
http: $nhost:$((base + 200 + i))
jetstream {
    store_dir: "$dir/nats/n$i"
    max_memory_store: 64MB
    max_file_store: 2GB
}
cluster {
    name: ragcore-dev
    listen: $nhost:$((base + 100 + i))
    routes: [ $routes ]
}
CONF
}

start_nats() {
    local i=$1
    spawn "nats$i" nats-server -c "$dir/nats/n$i.conf"
}

# Starts replica NAME hosting shard SHARD.
start_replica() {
    local name=$1 shard=$2
    rm -f "$dir/run/$name.port"
    spawn "$name" "$server" cluster replica --config "$dir/cluster.json" --data "$dir/data/$name" \
        --shards "$shard" --name "$name" --port-file "$dir/run/$name.port"
}

start_router() {
    local i=$1
    spawn "router$i" "$server" cluster router --config "$dir/cluster.json" \
        --listen "127.0.0.1:$((http + 80 + i - 1))" --name "router$i" --port-file "$dir/run/router$i.port"
}

start() {
    command -v nats-server >/dev/null || { log "nats-server not installed (tools/setup.sh installs it)"; exit 1; }
    [ -x "$server" ] || { log "$server not built (make build)"; exit 1; }
    mkdir -p "$dir"/{log,pid,run,nats,data}
    local i
    for i in 0 1 2; do write_nats_config "$i"; start_nats "$i"; done
    for i in 0 1 2; do wait_http "http://$nhost:$((base + 200 + i))/healthz?js-enabled-only=true"; done
    local k
    for k in admin:24 pii:32; do
        [ -s "$dir/${k%:*}.key" ] ||
            (umask 077; head -c "${k#*:}" /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/${k%:*}.key")
    done
    cat >"$dir/cluster.json" <<CONF
{"nats": ["nats://$nhost:$base", "nats://$nhost:$((base + 1))", "nats://$nhost:$((base + 2))"],
 "stream_replicas": 3, "dedup_window_s": ${RAGCORE_CLUSTER_DEDUP_WINDOW_S:-120}, "max_lag": ${RAGCORE_CLUSTER_MAX_LAG:-1000},
 "query_timeout_ms": ${RAGCORE_CLUSTER_QUERY_TIMEOUT_MS:-1000}, "ryw_wait_ms": 2000,
 "stream_max_msgs": ${RAGCORE_CLUSTER_STREAM_MAX_MSGS:-0}, "admin_key_file": "$dir/admin.key",
 "dup_compact_every": ${RAGCORE_CLUSTER_DUP_COMPACT_EVERY:-100000},
 "pii_key_file": "$dir/pii.key"}
CONF
    # JetStream elects its meta leader after the servers meet: the first client may have to wait
    for i in $(seq 1 600); do
        curl -fs "http://$nhost:$((base + 200))/jsz" | grep -q '"meta_cluster"' && \
            curl -fs "http://$nhost:$((base + 200))/jsz?leader-only=false" | grep -q '"leader"' && break
        sleep 0.1
    done
    start_replica r0a 0; start_replica r0b 0; start_replica r1a 1; start_replica r1b 1
    local routers=${RAGCORE_CLUSTER_ROUTERS:-2}
    for i in $(seq 1 "$routers"); do start_router "$i"; done
    for f in r0a r0b r1a r1b; do wait_port_file "$dir/run/$f.port"; done
    for i in $(seq 1 "$routers"); do wait_port_file "$dir/run/router$i.port"; done
    if [ "${RAGCORE_CLUSTER_NO_HAPROXY:-0}" != 1 ] && command -v haproxy >/dev/null; then
        sed -e "s/127.0.0.1:18000/127.0.0.1:$http/" -e "s/127.0.0.1:18080/127.0.0.1:$((http + 80))/" \
            -e "s/127.0.0.1:18081/127.0.0.1:$((http + 81))/" "$here/deploy/haproxy.cfg" >"$dir/haproxy.cfg"
        [ "$routers" = 1 ] && sed -i '/server router2/d' "$dir/haproxy.cfg"
        spawn haproxy haproxy -db -f "$dir/haproxy.cfg"
        wait_http "http://127.0.0.1:$http/healthz"
    fi
    log "up: HAProxy http://127.0.0.1:$http, routers $(cat "$dir"/run/router*.port | tr '\n' ' ')(config $dir/cluster.json, admin key in $dir/admin.key)"
}

stop() {
    [ -d "$dir/pid" ] || return 0
    local f pid
    for f in "$dir"/pid/*; do
        [ -e "$f" ] || continue
        pid=$(cat "$f")
        kill -CONT "$pid" 2>/dev/null || true
        kill -TERM "$pid" 2>/dev/null || true
    done
    for f in "$dir"/pid/*; do
        [ -e "$f" ] || continue
        pid=$(cat "$f")
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$f"
    done
}

case "$cmd" in
    start) start ;;
    respawn) name=${2:?respawn NAME [DIR]}; dir=$(realpath -m "${3:-cluster-dev}"); respawn "$name" ;;
    spawn) name=${2:?spawn NAME DIR CMD...}; dir=$(realpath -m "${3:?spawn NAME DIR CMD...}")
        shift 3; mkdir -p "$dir/log" "$dir/pid"; spawn "$name" "$@" ;;
    stop) stop ;;
    status) "$server" cluster status --config "$dir/cluster.json" ;;
    *) echo "usage: $0 start|stop|status [DIR] | respawn NAME [DIR] | spawn NAME DIR CMD..." >&2; exit 1 ;;
esac
