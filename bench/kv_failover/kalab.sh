#!/usr/bin/env bash
# kalab.sh -- the keepalived side of the kv fail-over benchmark (bench/kv_failover.sh): the same kv
# service as baton's kv lab (scripts/kvlab.sh), with keepalived moving the service address instead
# of the embedded take-over agent. Built on scripts/lab.sh (-k: service network br0 + cluster
# network br1):
#
#     ns ${P}hK  eth0 NET.K   service network: the client reaches the kv server, the VIP lives here
#                eth1 NET2.K  cluster network: etcd peers + VRRP adverts
#       etcd member hK (peers NET2.K:2380, clients NET2.K:2379 + 127.0.0.1:2379)
#       baton-kvserver (NO take-over agent) on 0.0.0.0:PORT, store = the etcd cluster
#       keepalived (VRRP over eth1, VIP NET.100/24 on eth0, nopreempt, priorities 150/100/50),
#         tracking the kv server process (vrrp_track_file written by the server's supervisor the
#         moment it exits, weight 0: FAULT when it is gone; see kv_failover.sh for why not
#         vrrp_track_process / vrrp_script)
#
# Three hosts, not the reference script's two: the store is a 3-member etcd cluster (one per host,
# as on baton's side), and a 2-member etcd cluster cannot lose a host; with three, every scenario
# leaves a quorum, so what differs between the systems is only the address mover (+ fencing).
# VRRP runs over the cluster network so that `cut` separates a host from the others exactly as it
# separates baton's agents (the client still reaches the cut host over br0).
# nopreempt: a restored or restarted host rejoins as a backup instead of taking the address back
# (one move per fault, as with baton), so the benchmark always faults the current holder.
#
# Usage: kalab.sh CMD -p PREFIX -d DIR [args]
#   up -i ADVERT_S -b BUILD_DIR [-P PORT]   build the lab, start everything, wait for a sole holder
#   down                                  kill everything (by PID, lab.sh down), delete the namespaces
#   holder                                print the hosts that hold the VIP (space separated)
#   crash hK | restore hK                 host crash (ports down, everything SIGKILLed) / reboot:
#                                         VIP flushed, ports up, etcd + server + keepalived restarted
#   cut hK | heal                         cut hK's cluster link / heal all
#   kill-server hK | start-server hK      SIGKILL / restart the kv server (process crash)
#   drain hK | undrain hK                 stop keepalived with SIGTERM (priority 0 advert) / restart it
#   etcd-leader | move-leader hK          print the etcd leader's host / move the leadership to hK
# Exit status: 0 ok, 1 failure, 2 usage.
set -Eeuo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LAB=$REPO/scripts/lab.sh
usage() { sed -n '2,/^set -Eeuo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit "${1:-0}"; }
[[ $# -ge 1 ]] || usage 2
CMD=$1; shift
PFX=""; DIR=""; ADV=""; BUILD=""; PORT=8080; ARGS=()
while [[ $# -gt 0 ]]; do
  case $1 in
    -p) PFX=$2; shift 2 ;; -d) DIR=$2; shift 2 ;; -i) ADV=$2; shift 2 ;;
    -b) BUILD=$2; shift 2 ;; -P) PORT=$2; shift 2 ;; -h) usage 0 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
[[ -n $PFX && -n $DIR ]] || usage 2
HOSTS=(h1 h2 h3)
NET=${BATON_LAB_NET:-10.78.0}; NET2=${BATON_LAB_NET2:-10.79.0}
VIP=$NET.100
declare -A PRIO=([h1]=150 [h2]=100 [h3]=50)
# etcd as in scripts/kvlab.sh: LAN timing (50 ms heartbeat, 500 ms election) and pre-vote (a
# healed member does not depose the leader); kv_failover.sh keeps the etcd leader off the host it
# faults, so no run waits for an etcd election.
ETCD_HB=${ETCD_HB:-50}; ETCD_ELECTION=${ETCD_ELECTION:-500}

ns() { echo "${PFX}$1"; }
calc() { awk "BEGIN { printf \"%.6f\", $* }"; }
wait_until() {   # wait_until SECONDS CMD...
  local end=$(( ${EPOCHREALTIME/./} + $(awk -v l="$1" 'BEGIN { printf "%d", l*1000000 }') )); shift
  while ! "$@"; do (( ${EPOCHREALTIME/./} < end )) || return 1; sleep 0.01; done
}
alive_in() { [[ -n ${1:-} && -e /proc/$1 && $(ip netns identify "$1" 2>/dev/null) == "$2" ]]; }
pid_of() { cat "$DIR/$1.$2.pid" 2>/dev/null || true; }   # pid_of WHAT hK
# bg WHAT hK LOG cmd...: start cmd in hK's namespace, remember its PID in DIR/WHAT.hK.pid
bg() {
  local what=$1 h=$2 log=$3; shift 3
  ip netns exec "$(ns "$h")" "$@" >> "$log" 2>&1 < /dev/null &
  echo $! > "$DIR/$what.$h.pid"; disown $!
}
has_vip() { ip -n "$(ns "$1")" -4 -o addr show dev eth0 2>/dev/null | grep -q " $VIP/"; }
holders() { local h out=(); for h in "${HOSTS[@]}"; do has_vip "$h" && out+=("$h"); done; echo "${out[*]:-}"; }
sole_holder() { local h; h=$(holders); [[ -n $h && $h != *" "* ]]; }
cluster_urls() { local h s=""; for h in "${HOSTS[@]}"; do s+="${s:+,}$h=http://$NET2.${h#h}:2380"; done; echo "$s"; }
etcd_endpoints() { local h s=""; for h in "${HOSTS[@]}"; do s+="${s:+,}http://$NET2.${h#h}:2379"; done; echo "$s"; }
# A host whose cluster port is up (etcdctl runs there: the cluster network is not routed elsewhere).
live_host() { local h; for h in "${HOSTS[@]}"; do ip -n "$(ns sw)" -o link show "cl-$h" 2>/dev/null | grep -q ',UP' && { echo "$h"; return; }; done; echo h1; }
etcdctl_c() { ETCDCTL_API=3 timeout 5 ip netns exec "$(ns "$(live_host)")" etcdctl --dial-timeout=1s --command-timeout=2s "$@"; }

write_configs() {
  local h k
  for h in "${HOSTS[@]}"; do
    k=${h#h}
    # The kv server: same store as baton's kv lab (every etcd member, the local one first), no
    # take-over section: keepalived moves the address.
    {
      echo "listen: 0.0.0.0:$PORT"
      echo "data_dir: $DIR/kvdata-$h"
      echo "log_level: warn"
      if [[ ${KALAB_ROCKSDB:-0} != 1 ]]; then   # KALAB_ROCKSDB=1: lab mechanics only (no shared store)
        echo "node_name: $h"
        echo "store:"
        echo "  kind: etcd"
        echo "  endpoints: [$NET2.$k:2379$(for o in "${HOSTS[@]}"; do [[ $o == "$h" ]] || printf ', %s' "$NET2.${o#h}:2379"; done)]"
        echo "  dial_timeout: 2s"
        echo "  request_timeout: 2s"
      fi
    } > "$DIR/kv-$h.yaml"
    # VRRPv2 only allows whole seconds; below that VRRPv3 (centisecond adverts).
    local ver=3; [[ $ADV =~ ^[0-9]+$ ]] && ver=2
    cat > "$DIR/keepalived-$h.conf" <<EOF
global_defs {
    router_id $h
    vrrp_version $ver
    script_user root
    enable_script_security
}
# The fastest fair health check (see the header): the server's supervisor writes 1 here the moment
# the server exits; keepalived watches the file (inotify); weight 0 = FAULT (VIP released) on 1.
vrrp_track_file kvserver {
    file "$DIR/track-$h"
    weight 0
}
vrrp_instance VI_78 {
    state BACKUP
    nopreempt
    interface eth1
    virtual_router_id 78
    priority ${PRIO[$h]}
    advert_int $ADV
    virtual_ipaddress {
        $VIP/24 dev eth0
    }
    track_file {
        kvserver
    }
}
EOF
  done
}

start_etcd() {   # start_etcd hK STATE
  local h=$1 k=${1#h}
  bg etcd "$h" "$DIR/etcd-$h.log" etcd --name "$h" --data-dir "$DIR/etcd-$h" \
    --listen-client-urls "http://$NET2.$k:2379,http://127.0.0.1:2379" \
    --advertise-client-urls "http://$NET2.$k:2379" \
    --listen-peer-urls "http://$NET2.$k:2380" --initial-advertise-peer-urls "http://$NET2.$k:2380" \
    --initial-cluster "$(cluster_urls)" --initial-cluster-token "kalab-$PFX" --initial-cluster-state "$2" \
    --heartbeat-interval "$ETCD_HB" --election-timeout "$ETCD_ELECTION" --pre-vote --logger zap --log-level warn
}
etcd_healthy() { etcdctl_c --endpoints="$(etcd_endpoints)" endpoint health >/dev/null 2>&1; }
# The server runs under a supervisor shell that writes 1 to DIR/track-hK as soon as it exits (0 while
# it runs); its own PID goes to DIR/kv.hK.pid (kill-server SIGKILLs exactly that process).
start_server() {
  local h=$1
  ip netns exec "$(ns "$h")" sh -c 'echo 0 > "$1"; "$2" --config "$3" --grpc-listen off & echo $! > "$4"; wait $!; echo 1 > "$1"' \
    sh "$DIR/track-$h" "$KVSERVER" "$DIR/kv-$h.yaml" "$DIR/kv.$h.pid" >> "$DIR/kv-$h.log" 2>&1 < /dev/null &
  disown $!
  wait_until 5 test -s "$DIR/kv.$h.pid"
}
server_up() { timeout 2 ip netns exec "$(ns "$1")" curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/kv/kalab-ping"; }
start_keepalived() {
  local h=$1
  rm -f "$DIR/ka-$h.pid" "$DIR/vrrp-$h.pid"
  # -P vrrp only, -n foreground, -R no respawn, -G no syslog, -l -D log to console
  bg keepalived "$h" "$DIR/keepalived-$h.log" keepalived -P -n -R -G -l -D -f "$DIR/keepalived-$h.conf" \
    -p "$DIR/ka-$h.pid" -r "$DIR/vrrp-$h.pid"
}

resolve_build() {
  KVSERVER=$BUILD/samples/kvservice/baton-kvserver
  [[ -x $KVSERVER ]] || { echo "kalab.sh: missing $KVSERVER" >&2; exit 1; }
}

case $CMD in
  up)
    [[ -n $ADV && -n $BUILD ]] || usage 2
    resolve_build
    mkdir -p "$DIR"
    echo "KVSERVER=$KVSERVER" > "$DIR/env"; echo "ADV=$ADV" >> "$DIR/env"; echo "PORT=$PORT" >> "$DIR/env"
    "$LAB" up -p "$PFX" -n 3 -k > /dev/null
    write_configs
    for h in "${HOSTS[@]}"; do start_etcd "$h" new; done
    wait_until 20 etcd_healthy || { echo "kalab.sh: etcd not healthy" >&2; exit 1; }
    for h in "${HOSTS[@]}"; do start_server "$h"; done
    for h in "${HOSTS[@]}"; do wait_until 10 server_up "$h" || { echo "kalab.sh: kv server on $h not up" >&2; exit 1; }; done
    start_keepalived h1   # first, as the reference starts h1 as MASTER: h1 wins the first election
    sleep 0.05
    for h in h2 h3; do start_keepalived "$h"; done
    wait_until "$(calc "10 + 10*$ADV")" sole_holder || { echo "kalab.sh: no sole holder: $(holders)" >&2; exit 1; }
    ;;
  down) "$LAB" down -p "$PFX" ;;
  holder) holders ;;
  crash) "$LAB" crash -p "$PFX" "${ARGS[0]}" ;;
  restore)
    h=${ARGS[0]}; source "$DIR/env"
    # A rebooted host comes up without the service address: flush it before the ports come up.
    ip -n "$(ns "$h")" addr del "$VIP/24" dev eth0 2>/dev/null || true
    "$LAB" restore -p "$PFX" "$h"
    start_etcd "$h" existing
    wait_until 20 etcd_healthy || { echo "kalab.sh: etcd not healthy after restore" >&2; exit 1; }
    rm -f "$DIR/kv.$h.pid"; start_server "$h"; wait_until 10 server_up "$h" || { echo "kalab.sh: kv server on $h not up" >&2; exit 1; }
    start_keepalived "$h"
    ;;
  cut) "$LAB" cut -p "$PFX" "${ARGS[0]}" ;;
  heal) "$LAB" heal -p "$PFX" ;;
  kill-server)
    h=${ARGS[0]}; p=$(pid_of kv "$h")
    alive_in "$p" "$(ns "$h")" || { echo "kalab.sh: no kv server on $h" >&2; exit 1; }
    rm -f "$DIR/kv.$h.pid"; kill -KILL "$p"
    ;;
  start-server)
    h=${ARGS[0]}; source "$DIR/env"
    rm -f "$DIR/kv.$h.pid"; start_server "$h"; wait_until 10 server_up "$h" || { echo "kalab.sh: kv server on $h not up" >&2; exit 1; }
    ;;
  drain)
    h=${ARGS[0]}; p=$(pid_of keepalived "$h")
    alive_in "$p" "$(ns "$h")" || { echo "kalab.sh: no keepalived on $h" >&2; exit 1; }
    kill -TERM "$p"
    ;;
  undrain)
    h=${ARGS[0]}; source "$DIR/env"
    p=$(pid_of keepalived "$h")
    wait_until 5 eval '! alive_in "$p" "$(ns "$h")"' || kill -KILL "$p" 2>/dev/null || true
    start_keepalived "$h"
    ;;
  etcd-leader)
    etcdctl_c --endpoints="$(etcd_endpoints)" endpoint status -w json 2>/dev/null | python3 -c '
import json, sys
for e in json.load(sys.stdin):
    if e["Status"]["header"]["member_id"] == e["Status"]["leader"]:
        print(e["Endpoint"].split("//")[1].split(":")[0].rsplit(".", 1)[1].join(["h", ""])); break'
    ;;
  move-leader)
    h=${ARGS[0]}
    id=$(etcdctl_c --endpoints="http://$NET2.${h#h}:2379" endpoint status -w json | python3 -c '
import json, sys; print("%x" % json.load(sys.stdin)[0]["Status"]["header"]["member_id"])')
    leader=$("$0" etcd-leader -p "$PFX" -d "$DIR")
    etcdctl_c --endpoints="http://$NET2.${leader#h}:2379" move-leader "$id" > /dev/null
    ;;
  *) usage 2 ;;
esac
