#!/usr/bin/env bash
# kvlab.sh -- the whole baton system on three hosts: baton's kv service (baton-kvserver with the
# embedded take-over agent, fencing, and an etcd store replicated over the hosts) in network
# namespaces built by scripts/lab.sh -k. Used by the kv lab test (tests/integration/kv_lab.sh),
# the demo (scripts/demo.sh) and the kv benchmarks (bench/kv_failover.sh, bench/kv_pool.sh).
#
#     ns ${P}hK  eth0 NET.K   service network (br0): the client reaches the kv servers; the
#                             service address(es) NET.100.. live here
#                eth1 NET2.K  cluster network (br1): etcd peers, the agents' heartbeats
#       etcd member hK     peers http://NET2.K:2380, clients http://NET2.K:2379 + 127.0.0.1:2379,
#                          data in DIR/etcd-hK (kept across crash/restore)
#       baton-kvserver     HTTP on 0.0.0.0:8080 (so on every address the host gets), node_name hK,
#                          store: etcd (its own member first, then the others), takeover: group
#                          h1..hN on the cluster network (priorities 150/100/50/..), the service
#                          addresses on eth0, heartbeat -i, kernel fence on
#       ip -ts monitor address > DIR/mon-hK.log  time-stamped holds (restarted by restore)
#     ns ${P}c   NET.250     the client (baton-kv-driver via `kvlab.sh driver`)
# With `cut` a host loses the cluster network (its etcd peers and the other agents) and keeps the
# client: a partition. Everything started runs inside the lab's namespaces, with its PID in
# DIR/WHAT.hK.pid; `down` kills all of it by PID (lab.sh down) and deletes the namespaces.
#
# Usage: kvlab.sh CMD -p PREFIX [-d DIR] [args]
#   up [-i HEARTBEAT] [-a N_ADDRESSES] [-c CAPACITY] [-n N_HOSTS] [-b BUILD_DIR] [-s NET] [-S NET2]
#                         build the lab and start everything; returns once every service address
#                         has exactly one holder. HEARTBEAT: "50ms", "1s", or a bare number of
#                         seconds ("0.05"); default 50ms. N_ADDRESSES default 1 (NET.100, NET.101,
#                         ...). CAPACITY: most addresses per host, default N_ADDRESSES. N_HOSTS
#                         default 3. BUILD_DIR default ./build (needs samples/kvservice/
#                         baton-kvserver; tools/baton-kv-driver for `driver`); env KVSERVER /
#                         KV_DRIVER override the binaries; KV_NICE the servers' nice (default
#                         -10); KV_GRPC_PORT: the servers also serve gRPC on 0.0.0.0:that port.
#                         NET/NET2 as lab.sh (10.78.0 / 10.79.0).
#   down                  kill everything (by PID), delete the namespaces; keeps DIR (rm it yourself)
#   holder [SLOT]         one line per service address: "ADDRESS HOST[ HOST..]" ("-" = nobody),
#                         read from `ip addr` in every host whose service port is up; with SLOT
#                         (0-based) only that address's holders, space-separated, on one line
#   etcd-leader           the host of etcd's leader (empty if none / no quorum)
#   move-leader hK        move etcd's leadership to hK
#   status                per host: links, etcd, kv server, held addresses, the agent's view
#                         (GET /baton/status); and the etcd leader
#   crash hK              host crash: hK's links go down at once, then everything on it is
#                         SIGKILLed (lab.sh crash); recorded in DIR/crashes ("hK=UNIXTIME")
#   restore hK            reboot: the service addresses are flushed from hK, links up (recorded in
#                         DIR/restores "hK=UNIXTIME"), monitor,
#                         etcd member (same data dir) and kv server restarted; waits until the
#                         server answers
#   cut hK | heal [hK..]  cut hK from the other hosts (cluster network) / heal
#   kill-server hK        SIGKILL only hK's kv server (process crash; etcd stays). Its agent
#                         child (takeover_mode: process, the default) sees the socket close and
#                         hands the addresses over at once (removed from hK within ms). With
#                         takeover_mode: thread the agent dies too: the addresses then stay in
#                         hK's `ip addr` until their valid_lft (2 s), fenced by nftables from the
#                         lease end, so `holder` may list hK beside the new holder meanwhile
#   start-server hK       (re)start hK's kv server (also: restart hK) and wait until it answers
#   drain hK [--undo]     POST /baton/drain (?undo=1) to hK's kv server (also: undrain hK)
#   driver [-- ARGS]      run baton-kv-driver in the client against every service address
#                         (--target NET.100:8080[,...]) with ARGS (e.g. --seconds 10 --clients 4)
#   env                   print VIPS, VIP, PORT, NET, NET2, HOSTS, DIR, KVSERVER, KV_DRIVER
#                         (eval-able)
# DIR (default /tmp/baton-kvlab-PREFIX) holds the configs, logs, etcd data, PID files, monitor logs.
# Needs root, iproute2, etcd-server, curl, python3. Exit status: 0 ok, 1 failure, 2 usage error.
set -Eeuo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
LAB=$HERE/lab.sh
usage() { sed -n '2,/^set -Eeuo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit "${1:-0}"; }
die() { echo "kvlab.sh: $*" >&2; exit 1; }
[[ $# -ge 1 ]] || usage 2
CMD=$1; shift
[[ $CMD == -h || $CMD == --help || $CMD == help ]] && usage 0

PFX=""; DIR=""; HB_ARG=50ms; NADDR=1; CAP=""; NHOSTS=3; BUILD=""
NET=${BATON_LAB_NET:-10.78.0}; NET2=${BATON_LAB_NET2:-10.79.0}; ARGS=()
while [[ $# -gt 0 ]]; do
  case $1 in
    -p) PFX=${2:-}; shift 2 ;;
    -d) DIR=${2:-}; shift 2 ;;
    -i) HB_ARG=${2:-}; shift 2 ;;
    -a) NADDR=${2:-}; shift 2 ;;
    -c) CAP=${2:-}; shift 2 ;;
    -n) NHOSTS=${2:-}; shift 2 ;;
    -b) BUILD=${2:-}; shift 2 ;;
    -s) NET=${2:-}; shift 2 ;;
    -S) NET2=${2:-}; shift 2 ;;
    -h|--help) usage 0 ;;
    --) shift; ARGS+=("$@"); break ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
[[ $PFX =~ ^[A-Za-z0-9_-]{1,12}$ ]] || { echo "kvlab.sh: -p PREFIX is required ([A-Za-z0-9_-]{1,12})" >&2; exit 2; }
DIR=${DIR:-/tmp/baton-kvlab-$PFX}
[[ $EUID -eq 0 ]] || die "must run as root"
PORT=8080
ADMIN_PORT=8081  # each kv server's operator plane (loopback of its namespace)
DPORT=7946

ns() { echo "${PFX}$1"; }
now() { printf '%s' "$EPOCHREALTIME"; }
wait_until() {   # wait_until SECONDS CMD...: poll CMD every 20 ms until it succeeds (0) or time runs out (1)
  local end=$(( ${EPOCHREALTIME/./} + $(awk -v l="$1" 'BEGIN { printf "%d", l*1000000 }') )); shift
  while ! "$@"; do (( ${EPOCHREALTIME/./} < end )) || return 1; sleep 0.02; done
}
host_arg() {  # host_arg: the first positional argument, checked to be a host of this lab
  local h=${ARGS[0]:-}
  [[ $h =~ ^h([1-9][0-9]?)$ ]] || { echo "kvlab.sh: $CMD needs a host (h1..h$NHOSTS)" >&2; exit 2; }
  (( ${BASH_REMATCH[1]} <= NHOSTS )) || { echo "kvlab.sh: no host $h (h1..h$NHOSTS)" >&2; exit 2; }
  echo "$h"
}

# ---------------------------------------------------------------- state (DIR/env, written by up)
load_env() {
  [[ -f $DIR/env ]] || die "no lab state in $DIR (kvlab.sh up -p $PFX first, or pass the same -d)"
  # shellcheck disable=SC1091
  . "$DIR/env"
  HOSTS=(); local k
  for (( k = 1; k <= NHOSTS; k++ )); do HOSTS+=("h$k"); done
  read -r -a VIPS_A <<< "${VIPS//,/ }"
}

# ---------------------------------------------------------------- processes
alive_in() { [[ -n ${1:-} && -e /proc/$1 && $(ip netns identify "$1" 2>/dev/null) == "$2" ]]; }
pid_of() { cat "$DIR/$1.$2.pid" 2>/dev/null || true; }   # pid_of WHAT hK
# bg WHAT hK LOG cmd...: start cmd in hK's namespace (ip netns exec execs it: $! is its PID),
# remember the PID in DIR/WHAT.hK.pid.
bg() {
  local what=$1 h=$2 log=$3; shift 3
  ip netns exec "$(ns "$h")" "$@" >> "$log" 2>&1 < /dev/null &
  echo $! > "$DIR/$what.$h.pid"; disown $!
}
start_monitor() { bg monitor "$1" "$DIR/mon-$1.log" ip -ts monitor address; }

cluster_urls() { local h s=""; for h in "${HOSTS[@]}"; do s+="${s:+,}$h=http://$NET2.${h#h}:2380"; done; echo "$s"; }
etcd_endpoints() { local h s=""; for h in "${HOSTS[@]}"; do s+="${s:+,}http://$NET2.${h#h}:2379"; done; echo "$s"; }
port_up() { ip -n "$(ns sw)" -o link show "$1" 2>/dev/null | grep -q '[<,]UP[,>]'; }
# A host whose cluster port is up (etcdctl runs there: the cluster network reaches nowhere else).
live_host() { local h; for h in "${HOSTS[@]}"; do port_up "cl-$h" && { echo "$h"; return; }; done; echo h1; }
etcdctl_in() { local h=$1; shift; ETCDCTL_API=3 timeout 5 ip netns exec "$(ns "$h")" etcdctl --dial-timeout=1s --command-timeout=2s "$@"; }
etcd_healthy() { etcdctl_in "$(live_host)" --endpoints="$(etcd_endpoints)" endpoint health >/dev/null 2>&1; }
# etcd timing for a LAN (docs/etcd.md, "Tuning etcd for a LAN"): 50 ms heartbeat, 500 ms election
# (etcd's defaults are 100 / 1000), pre-vote; the same as the tests' launcher, which holds on a
# loaded 2-core CI machine. ETCD_HB=25 ETCD_ELECTION=250 elects about twice as fast again, but the
# leader then misses its heartbeat deadline under heavy load (etcd warns).
start_etcd() {   # start_etcd hK new|existing
  local h=$1 k=${1#h}
  bg etcd "$h" "$DIR/etcd-$h.log" etcd --name "$h" --data-dir "$DIR/etcd-$h" \
    --listen-client-urls "http://$NET2.$k:2379,http://127.0.0.1:2379" \
    --advertise-client-urls "http://$NET2.$k:2379" \
    --listen-peer-urls "http://$NET2.$k:2380" --initial-advertise-peer-urls "http://$NET2.$k:2380" \
    --initial-cluster "$(cluster_urls)" --initial-cluster-token "kvlab-$PFX" --initial-cluster-state "$2" \
    --heartbeat-interval "${ETCD_HB:-50}" --election-timeout "${ETCD_ELECTION:-500}" \
    --pre-vote --logger zap --log-level warn
}
server_up() {  # the kv server of hK answers HTTP (any status) on its own address
  timeout 3 ip netns exec "$(ns "$1")" curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$ADMIN_PORT/baton/status"
}
# wait_server SECONDS hK: until hK's kv server answers; fails at once when it exited.
wait_server() {
  local end=$(( ${EPOCHREALTIME/./} + $1 * 1000000 )) p
  p=$(pid_of kv "$2")
  while ! server_up "$2"; do
    # Only that the process still exists: right after the start it may not have entered the
    # namespace yet (ip netns exec), so alive_in would be wrong.
    if [[ -z $p || ! -e /proc/$p ]] || (( ${EPOCHREALTIME/./} >= end )); then
      echo "kvlab.sh: kv server on $2 does not answer (log $DIR/kv-$2.log: $(tail -n 3 "$DIR/kv-$2.log" 2>/dev/null | tr '\n' ' '))" >&2
      return 1
    fi
    sleep 0.05
  done
}
# The kv server runs at nice KV_NICE (default -10), as baton-takeoverd does by default: its
# embedded agent must renew a lease of 2.5 heartbeats, and this machine is shared with compilers
# (at normal priority a 50 ms holder starved of CPU gives its address up, and gets it back).
start_server() {
  local h=$1
  bg kv "$h" "$DIR/kv-$h.log" nice -n "${KV_NICE:--10}" "$KVSERVER" --config "$DIR/kv-$h.yaml"
}

write_configs() {
  local h k o i
  openssl rand -hex 32 > "$DIR/cluster.key"
  chmod 600 "$DIR/cluster.key"
  for h in "${HOSTS[@]}"; do
    k=${h#h}
    {
      echo "# baton-kvserver on $h (written by scripts/kvlab.sh)"
      echo "listen: 0.0.0.0:$PORT"
      [[ -z ${KV_GRPC_PORT:-} ]] || echo "grpc_listen: 0.0.0.0:$KV_GRPC_PORT"
      echo "admin: {listen: 127.0.0.1:$ADMIN_PORT}"
      echo "data_dir: $DIR/kvdata-$h"
      echo "log_level: ${KV_LOG_LEVEL:-info}"
      echo "node_name: $h"
      echo "store:"
      echo "  kind: etcd"
      printf '  endpoints: [%s' "$NET2.$k:2379"
      for o in "${HOSTS[@]}"; do [[ $o == "$h" ]] || printf ', %s' "$NET2.${o#h}:2379"; done
      echo "]"
      echo "  dial_timeout: ${ETCD_DIAL_TIMEOUT:-500ms}"
      echo "  request_timeout: ${ETCD_REQUEST_TIMEOUT:-500ms}"
      echo "takeover:"
      echo "  node_id: $k"
      echo "  interface: eth0"
      printf '  service_addresses: ['
      for (( i = 0; i < ${#VIPS_A[@]}; i++ )); do printf '%s%s/24' "$( (( i )) && echo ', ')" "${VIPS_A[i]}"; done
      echo "]"
      echo "  key_file: $DIR/cluster.key"
      echo "  bind_host: $NET2.$k"
      echo "  status_socket: $DIR/$h.sock"
      echo "  incarnation_file: $DIR/$h.incarnation"
      echo "  state_file: $DIR/$h.state"
      echo "  kernel_fence: true"
      echo "  timing: {heartbeat: ${HB_MS}ms}"
      echo "  peers:"
      for o in "${HOSTS[@]}"; do
        echo "    - {id: ${o#h}, priority: $(( (NHOSTS - ${o#h} + 1) * 50 )), capacity: $CAP, address: \"$NET2.${o#h}:$DPORT\"}"
      done
    } > "$DIR/kv-$h.yaml"
  done
}

# ---------------------------------------------------------------- holders
has_addr() { ip -n "$(ns "$1")" -4 -o addr show dev eth0 2>/dev/null | grep -q " $2/"; }
# Hosts whose service port is down crashed: an address left in a dead namespace reaches nobody.
holders_of() {   # holders_of ADDRESS -> live hosts holding it, space-separated
  local h out=()
  for h in "${HOSTS[@]}"; do
    port_up "sw-$h" || continue
    has_addr "$h" "$1" && out+=("$h")
  done
  echo "${out[*]:-}"
}
all_sole() { local a h; for a in "${VIPS_A[@]}"; do h=$(holders_of "$a"); [[ -n $h && $h != *" "* ]] || return 1; done; }

etcd_leader() {
  etcdctl_in "$(live_host)" --endpoints="$(etcd_endpoints)" endpoint status -w json 2>/dev/null | python3 -c '
import json, sys
for e in json.load(sys.stdin):
    if e["Status"]["header"]["member_id"] == e["Status"]["leader"]:
        print("h" + e["Endpoint"].split("//")[1].split(":")[0].rsplit(".", 1)[1]); break' 2>/dev/null || true
}

# ---------------------------------------------------------------- commands
case $CMD in
  up)
    if [[ $HB_ARG =~ ^([0-9]+)ms$ ]]; then HB_MS=${BASH_REMATCH[1]}
    elif [[ $HB_ARG =~ ^([0-9.]+)s?$ ]]; then HB_MS=$(awk -v s="${BASH_REMATCH[1]}" 'BEGIN { printf "%d", s * 1000 + 0.5 }')
    else echo "kvlab.sh: bad -i $HB_ARG (50ms, 1s, 0.05)" >&2; exit 2; fi
    (( HB_MS >= 1 )) || { echo "kvlab.sh: -i $HB_ARG is below 1 ms" >&2; exit 2; }
    [[ $NADDR =~ ^[1-9][0-9]?$ ]] || { echo "kvlab.sh: bad -a $NADDR (1..99)" >&2; exit 2; }
    CAP=${CAP:-$NADDR}
    [[ $CAP =~ ^[1-9][0-9]?$ ]] || { echo "kvlab.sh: bad -c $CAP" >&2; exit 2; }
    [[ $NHOSTS =~ ^[1-9]$ ]] || { echo "kvlab.sh: bad -n $NHOSTS (1..9)" >&2; exit 2; }
    BUILD=${BUILD:-$REPO/build}
    KVSERVER=${KVSERVER:-$BUILD/samples/kvservice/baton-kvserver}
    KV_DRIVER=${KV_DRIVER:-$BUILD/tools/baton-kv-driver}
    [[ -x $KVSERVER ]] || die "missing $KVSERVER (ninja -C BUILD baton-kvserver, or -b BUILD_DIR)"
    command -v etcd >/dev/null || die "no etcd (apt-get install etcd-server)"
    if "$LAB" list -p "$PFX" | grep -q .; then die "lab '$PFX' is already up (kvlab.sh down -p $PFX first)"; fi
    mkdir -p "$DIR"
    rm -rf "$DIR"/etcd-h* "$DIR"/kvdata-h* "$DIR"/*.pid "$DIR"/*.state "$DIR"/*.incarnation "$DIR"/crashes "$DIR"/restores "$DIR"/mon-h*.log
    VIPS=""
    for (( i = 0; i < NADDR; i++ )); do VIPS+="${VIPS:+,}$NET.$(( 100 + i ))"; done
    {
      echo "NHOSTS=$NHOSTS"; echo "NET=$NET"; echo "NET2=$NET2"; echo "PORT=$PORT"
      echo "VIPS=$VIPS"; echo "VIP=${VIPS%%,*}"; echo "HB_MS=$HB_MS"; echo "CAP=$CAP"
      echo "KVSERVER=$KVSERVER"; echo "KV_DRIVER=$KV_DRIVER"
    } > "$DIR/env"
    load_env
    # On a failure half-way, take down what was started.
    trap '"$LAB" down -p "$PFX" >/dev/null 2>&1 || true' ERR
    "$LAB" up -p "$PFX" -n "$NHOSTS" -k -s "$NET" -S "$NET2" > /dev/null
    write_configs
    for h in "${HOSTS[@]}"; do start_monitor "$h"; start_etcd "$h" new; done
    wait_until 30 etcd_healthy || { "$LAB" down -p "$PFX" >/dev/null 2>&1 || true; die "etcd not healthy in 30 s (logs: $DIR/etcd-h*.log)"; }
    for h in "${HOSTS[@]}"; do start_server "$h"; done
    for h in "${HOSTS[@]}"; do wait_server 20 "$h" || { "$LAB" down -p "$PFX" >/dev/null 2>&1 || true; exit 1; }; done
    if ! wait_until "$(awk -v h="$HB_MS" 'BEGIN { print 15 + h / 50 }')" all_sole; then
      "$0" holder -p "$PFX" -d "$DIR" >&2 || true
      "$LAB" down -p "$PFX" >/dev/null 2>&1 || true
      die "not every service address got exactly one holder (logs: $DIR/kv-h*.log)"
    fi
    trap - ERR
    echo "kvlab '$PFX' up: hosts h1..h$NHOSTS ($NET.1.., cluster $NET2.1..), service $VIPS port $PORT, heartbeat ${HB_MS}ms, capacity $CAP; dir $DIR"
    "$0" holder -p "$PFX" -d "$DIR"
    ;;
  down)
    "$LAB" down -p "$PFX"
    if [[ -d $DIR ]]; then rm -f "$DIR"/*.pid "$DIR"/*.sock; fi
    ;;
  holder)
    load_env
    if [[ ${#ARGS[@]} -ge 1 ]]; then
      [[ ${ARGS[0]} =~ ^[0-9]+$ && ${ARGS[0]} -lt ${#VIPS_A[@]} ]] || { echo "kvlab.sh: bad slot ${ARGS[0]}" >&2; exit 2; }
      holders_of "${VIPS_A[${ARGS[0]}]}"
    else
      for a in "${VIPS_A[@]}"; do h=$(holders_of "$a"); echo "$a ${h:--}"; done
    fi
    ;;
  etcd-leader) load_env; etcd_leader ;;
  move-leader)
    load_env; h=$(host_arg)
    id=$(etcdctl_in "$(live_host)" --endpoints="http://$NET2.${h#h}:2379" endpoint status -w json | python3 -c '
import json, sys; print("%x" % json.load(sys.stdin)[0]["Status"]["header"]["member_id"])') || die "no etcd member on $h"
    leader=$(etcd_leader)
    [[ -n $leader ]] || die "etcd has no leader"
    [[ $leader == "$h" ]] || etcdctl_in "$(live_host)" --endpoints="http://$NET2.${leader#h}:2379" move-leader "$id" > /dev/null
    ;;
  status)
    load_env
    for h in "${HOSTS[@]}"; do
      links="service $(port_up "sw-$h" && echo up || echo DOWN), cluster $(port_up "cl-$h" && echo up || echo CUT)"
      e=$(pid_of etcd "$h"); alive_in "$e" "$(ns "$h")" && e="etcd $e" || e="etcd -"
      p=$(pid_of kv "$h"); alive_in "$p" "$(ns "$h")" && p="kvserver $p" || p="kvserver -"
      held=""; for a in "${VIPS_A[@]}"; do has_addr "$h" "$a" && held+=" $a"; done
      agent=$(timeout 3 ip netns exec "$(ns "$h")" curl -s --max-time 1 "http://127.0.0.1:$ADMIN_PORT/baton/status" 2>/dev/null | python3 -c '
import json, sys
try:
    j = json.load(sys.stdin)
except ValueError:
    j = None
if not isinstance(j, dict) or "node_id" not in j:
    print("no status"); sys.exit(0)
slots = " ".join("%s:%s@%s" % (s.get("slot"), s.get("holder"), s.get("epoch")) for s in j.get("slots", []))
print("view %s, slots %s%s%s" % (j.get("view"), slots, " DRAINING" if j.get("draining") else "",
      "" if j.get("healthy", True) else " UNHEALTHY"))' 2>/dev/null || echo "no status")
      echo "$h: $links; $e; $p; holds${held:- nothing}; agent: $agent"
    done
    echo "etcd leader: $(etcd_leader)"
    ;;
  crash)
    load_env; h=$(host_arg)
    t=$(now)
    "$LAB" crash -p "$PFX" "$h"
    echo "$h=$t" >> "$DIR/crashes"
    ;;
  restore)
    load_env; h=$(host_arg)
    # A rebooted host comes up without the service addresses (and stale processes).
    for a in "${VIPS_A[@]}"; do ip -n "$(ns "$h")" addr del "$a/24" dev eth0 2>/dev/null || true; done
    for w in kv etcd monitor; do p=$(pid_of "$w" "$h"); alive_in "$p" "$(ns "$h")" && kill -KILL "$p" 2>/dev/null || true; done
    "$LAB" restore -p "$PFX" "$h"
    echo "$h=$(now)" >> "$DIR/restores"
    start_monitor "$h"
    start_etcd "$h" existing
    start_server "$h"
    wait_server 30 "$h" || exit 1
    ;;
  cut) load_env; h=$(host_arg); "$LAB" cut -p "$PFX" "$h" ;;
  heal) load_env; "$LAB" heal -p "$PFX" "${ARGS[@]}" ;;
  kill-server)
    load_env; h=$(host_arg); p=$(pid_of kv "$h")
    alive_in "$p" "$(ns "$h")" || die "no kv server on $h"
    kill -KILL "$p"
    ;;
  start-server|restart)
    load_env; h=$(host_arg); p=$(pid_of kv "$h")
    if alive_in "$p" "$(ns "$h")"; then
      kill -TERM "$p"
      wait_until 10 eval '! alive_in "$p" "$(ns "$h")"' || kill -KILL "$p" 2>/dev/null || true
    fi
    start_server "$h"
    wait_server 20 "$h" || exit 1
    ;;
  drain|undrain)
    load_env; h=$(host_arg); q=""
    [[ $CMD == undrain || ${ARGS[1]:-} == --undo ]] && q="?undo=1"
    out=$(timeout 5 ip netns exec "$(ns "$h")" curl -s --max-time 3 -w ' HTTP %{http_code}' -X POST "http://127.0.0.1:$ADMIN_PORT/baton/drain$q") \
      || die "drain: $h's kv server did not answer"
    [[ $out == *" HTTP 2"* ]] || die "drain: $h answered $out"
    ;;
  driver)
    load_env
    [[ -x $KV_DRIVER ]] || die "missing $KV_DRIVER (ninja -C BUILD baton-kv-driver)"
    targets=""; for a in "${VIPS_A[@]}"; do targets+="${targets:+,}$a:$PORT"; done
    exec ip netns exec "$(ns c)" "$KV_DRIVER" --target "$targets" "${ARGS[@]}"
    ;;
  env)
    load_env
    echo "DIR=$DIR"; echo "VIPS=$VIPS"; echo "VIP=$VIP"; echo "PORT=$PORT"; echo "NET=$NET"; echo "NET2=$NET2"
    echo "HOSTS=\"${HOSTS[*]}\""; echo "HB_MS=$HB_MS"; echo "KVSERVER=$KVSERVER"; echo "KV_DRIVER=$KV_DRIVER"
    ;;
  *) echo "kvlab.sh: unknown command '$CMD'" >&2; usage 2 ;;
esac
