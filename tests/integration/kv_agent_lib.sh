# Shared by kv_agent.sh and kv_agent_crash.sh (sourced after their cleanup trap is set): helpers
# that reach into the test's one namespace $NS, etcd on its loopback, and the namespace itself
# (loopback + a veth end eth0 that carries the service address $VIP), plus the cluster key.
# Needs: NS, WORK, VIP, HTTP, ETCD; sets ETCD_PID; uses the caller's log and fail.
# shellcheck shell=bash

in_ns() { ip netns exec "$NS" "$@"; }
now_ms() { echo $(( ${EPOCHREALTIME/./} / 1000 )); }
# wait_until SECONDS CMD... : poll CMD every 20 ms until it succeeds (0) or time runs out (1).
wait_until() {
  local end=$(( $(now_ms) + ${1%.*} * 1000 )); shift
  while ! "$@"; do
    (( $(now_ms) < end )) || return 1
    sleep 0.02
  done
}
has_vip() { in_ns ip -4 -o addr show dev eth0 | grep -q " $VIP/"; }
no_vip() { ! has_vip; }
# curl inside the namespace; prints the body, fails on any non-2xx or no answer.
kv() { in_ns curl -sf --max-time 2 "$@"; }
incr() {
  kv -X POST "http://$VIP:$HTTP/kv/c/incr" -H "Idempotency-Key: \"$1\"" -d '{"by":1}'
}
status() { kv "http://127.0.0.1:$HTTP/baton/status"; }
# The fence of slot 0 as etcd has it (key "kvservice/\xff" "fence/0", value: the epoch).
stored_fence() {
  in_ns env ETCDCTL_API=3 "$(dirname "$ETCD")/etcdctl" --endpoints 127.0.0.1:2379 \
    get --prefix kvservice/ | grep -a -A1 'fence/0$' | tail -n 1
}
jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

start_etcd() {
  # Not through in_ns: a backgrounded function is a subshell, and $! must be etcd itself.
  ip netns exec "$NS" "$ETCD" --name kva --data-dir "$WORK/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster kva=http://127.0.0.1:2380 --heartbeat-interval 50 --election-timeout 500 \
    >> "$WORK/etcd.log" 2>&1 &
  ETCD_PID=$!
  wait_until 20 in_ns curl -sf --max-time 1 http://127.0.0.1:2379/health >/dev/null ||
    fail "etcd did not start"
}

# --- the namespace (made when this file is sourced): loopback + an interface that carries the service address ----------------
ip netns add "$NS"
in_ns ip link set lo up
# A veth pair with both ends here (no dummy module on every kernel): eth0 carries the address.
in_ns ip link add eth0 type veth peer name eth0p
in_ns ip link set eth0 up
in_ns ip link set eth0p up
in_ns ip addr add 10.79.0.1/24 dev eth0
start_etcd
log "etcd up in $NS (pid $ETCD_PID)"

openssl rand -hex 32 > "$WORK/cluster.key"
chmod 600 "$WORK/cluster.key"
