# Shared by kv_agent.sh and kv_agent_crash.sh (sourced right after their settings): the etcd
# binary check, log/fail, the cleanup trap (every process by its PID, the namespace, the work dir
# unless the test failed or KEEP is set), helpers that reach into the test's one namespace $NS,
# etcd on its loopback, the namespace itself (loopback + a veth end eth0 that carries the service
# address $VIP), the cluster key, and write_kv_yaml.
# Needs: NS, WORK, VIP, HTTP, KVSERVER. Sets ETCD, ETCD_PID; the caller sets KV_PID, MON_PID and
# appends the agent children it sees to CHILDREN.
# shellcheck shell=bash

ETCD=${ETCD:-$(command -v etcd || echo /usr/bin/etcd)}
[[ -x $ETCD ]] || { echo "FAIL: no etcd binary" >&2; exit 1; }
ETCD_PID=""
KV_PID=""
MON_PID=""
# The agent processes the test's servers started (recorded as they are seen).
CHILDREN=()

log() { printf '%s %s\n' "$(date +%H:%M:%S.%3N)" "$*"; }
fail() { log "FAIL: $*"; exit 1; }
child_pids() { local p; for p in "${CHILDREN[@]}"; do kill -0 "$p" 2>/dev/null && echo "$p"; done; true; }

cleanup() {
  local rc=$? p
  for p in "$KV_PID" "$ETCD_PID" "$MON_PID"; do
    # A stopped server (kv_agent_crash's SIGSTOP) is continued so that it can die.
    [[ -n $p ]] && { kill -CONT "$p"; kill -9 "$p"; } 2>/dev/null || true
  done
  # An agent child ends by itself on its server's death; make sure.
  for p in $(child_pids); do kill -9 "$p" 2>/dev/null || true; done
  for p in "$KV_PID" "$ETCD_PID" "$MON_PID"; do
    [[ -n $p ]] && wait "$p" 2>/dev/null || true
  done
  ip netns del "$NS" 2>/dev/null || true
  if (( rc != 0 )) || [[ -n ${KEEP:-} ]]; then
    log "logs in $WORK (exit $rc)"
    for f in "$WORK"/kv.log "$WORK"/etcd.log; do
      [[ -f $f ]] && { echo "--- $f"; tail -n 40 "$f"; }
    done
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

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
status() { kv "http://127.0.0.1:$ADMIN/baton/status"; }
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

# write_kv_yaml MODE HEARTBEAT: the kv server's config in $WORK/kv.yaml: etcd on the namespace's
# loopback, the agent (takeover_mode MODE) a group of one moving $VIP on eth0, the kernel fence
# per KERNEL_FENCE (default off), store health every 200 ms.
write_kv_yaml() {
  cat > "$WORK/kv.yaml" <<EOF
listen: 0.0.0.0:$HTTP
admin: {listen: 127.0.0.1:$ADMIN}
node_name: h1
log_level: info
store: {kind: etcd, endpoints: [127.0.0.1:2379], dial_timeout: 500ms, request_timeout: 1s}
takeover_mode: $1
takeover:
  node_id: 1
  interface: eth0
  service_addresses: [$VIP/24]
  key_file: $WORK/cluster.key
  bind_host: 127.0.0.1
  peers:
    - {id: 1, priority: 100, address: "127.0.0.1:7946"}
  timing: {heartbeat: $2}
  kernel_fence: ${KERNEL_FENCE:-false}
  health_check: {kind: external, period: 200ms, timeout: 500ms, fall: 3, rise: 2}
  status_socket: $WORK/agent.sock
  incarnation_file: $WORK/agent.incarnation
  state_file: $WORK/agent.state
EOF
}
