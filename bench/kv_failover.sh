#!/usr/bin/env bash
# kv_failover.sh -- the fail-over a kv user feels: baton's kv service (baton-kvserver with the
# embedded take-over agent + fencing, scripts/kvlab.sh) versus the same kv server moved by
# keepalived (bench/kv_failover/kalab.sh), both on a 3-member etcd store, both driven by the same
# retrying client (baton-kv-driver, 4 clients, INCR + PUT, end-to-end verification), at equal
# heartbeat / advert intervals.
#
# Each lab has 3 hosts (etcd member + kv server + address mover each), a client namespace, a
# service network (br0: client <-> hosts, the service address 10.78.0.100) and a cluster network
# (br1: etcd peers, the agents' heartbeats / the VRRP adverts). A lab is built once per system and
# interval; the runs of every scenario follow each other in it. The victim of a run is whichever
# host holds the address then; the etcd leader is moved off it first (etcdctl move-leader), so no
# run waits for an etcd election: the figures isolate the address mover (+ fencing); except in
# the etcdleader scenario, which moves the leadership onto the victim.
# One run: the driver starts, after STEADY s (and a random phase in [0, interval)) the fault:
#   process    SIGKILL of the holder's kv server; the host stays up. baton: its agent (in the
#              server, or a baton-takeoverd process beside it) and the kernel fence release the
#              address, another host takes it.
#              keepalived: the server runs under a supervisor that writes 1 to a track_file the
#              moment it exits (inotify: immediate, the fastest health check keepalived offers in a
#              network namespace: vrrp_track_process needs the proc connector, which only works in
#              the initial namespace, and vrrp_script's interval is whole seconds); weight 0 -> FAULT.
#   host       lab.sh crash: the holder's bridge ports go down, everything on it is SIGKILLed.
#   partition  the holder is cut from the other hosts on the cluster network (nftables drop on its
#              switch port, carrier kept: keepalived cannot see a link-down), the client still
#              reaches it; healed after HOLD s; post-heal stuck time measured for POST s.
#   drain      planned: baton POST /baton/drain to the holder; keepalived SIGTERM (priority 0).
#   freeze     the holder's kv server is frozen (SIGSTOP) for FREEZE s (default 2), then continued
#              (SIGCONT): a hung server. baton: its supervised agent misses the server's keepalives
#              (sent only while the server's event loop passes a probe) and hands the address over
#              after health_check.liveness (300 ms); keepalived: the server process lives, nothing
#              moves.
#   lossy      a gray failure: LOSS % (default 25) of the frames to and from the holder's cluster
#              port are dropped in the switch (nftables numgen; this kernel has no sch_netem, so no
#              delay) for LOSSY s (default 5), then the loss ends. baton: a holder that lost its
#              lease twice within 5 s steps back (damping) and a healthy host takes the address.
#   etcdleader host crash of the holder while it is also etcd's leader (the leadership is moved
#              ONTO the victim first): the store loses its leader with the address holder.
# then, once another host holds the address, OBS s more; the driver stops and verifies; the
# victim is restored (server restarted / host rebooted without the address / undrained).
# Figures per system x scenario x interval: client outage (longest interval without a completed
# request, from the last completion before the fault) median / p99 / max, requests retried,
# replays served, lost acknowledged writes, duplicate executions (from the driver's verification),
# split brain (two hosts held the address at once: time-stamped `ip -ts monitor address`
# logs of every host), post-heal stuck time (partition: longest gap after healing).
#
# Usage: kv_failover.sh [-i 0.01,0.1] [-n 20] [-s process,host,partition,drain] [-o OUTDIR]
#                       [-b BUILD_DIR] [-K|-B] [--quick]
#   -i  intervals in seconds (baton heartbeat = keepalived advert_int; default 0.01,0.1;
#       the full comparison adds 1: -i 0.01,0.1,1)
#   -n  runs per system x scenario x interval (default 20)
#   -s  scenarios (default process,host,partition,drain; also freeze, lossy, etcdleader)
#   -K  baton only;  -B  keepalived only
#   --quick  -n 3 -i 0.1
#   -b  build dir with baton-kvserver and baton-kv-driver (default: ../build, else ../build-kvbench)
# Env: ATTEMPT_MS (driver's attempt timeout, default 100), CONNECT_MS (its handshake timeout
#      within an attempt, default 20: a SYN lost while the address is between hosts is resent
#      after 20 ms instead of waiting out the attempt; 0 = off), BACKOFF_MS (its longest backoff,
#      default 20), CLIENTS (default 4), PFX_B / PFX_K (namespace prefixes, default kvb<PID> /
#      kvk<PID>: concurrent invocations do not share labs), DRIVER_ARGS (more baton-kv-driver
#      options for both systems' client, e.g. "--adaptive-timeout --hedge-delay-ms 0": attempt
#      timeouts from the observed latency and hedged attempts, docs/client.md).
# Output: OUTDIR/<system>-<scenario>-<interval>/run-<k>/{timeline.jsonl,driver.json,events,...},
# OUTDIR/runs.jsonl (one JSON per run), OUTDIR/summary.jsonl (one JSON per cell), OUTDIR/table.txt.
# Needs root, iproute2, nftables, etcd, keepalived, python3.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
KALAB=$HERE/kv_failover/kalab.sh
KVLAB=$REPO/scripts/kvlab.sh
LAB=$REPO/scripts/lab.sh
ANALYZE=$HERE/kv_failover/analyze.py
INTERVALS=0.01,0.1; N=20; SCENARIOS=process,host,partition,drain; OUT=""; BUILD=""
RUN_B=1; RUN_K=1
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit "${1:-0}"; }
ARGV=("$@")
while [[ $# -gt 0 ]]; do
  case $1 in
    -i) INTERVALS=$2; shift 2 ;; -n|--runs) N=$2; shift 2 ;; -s) SCENARIOS=$2; shift 2 ;;
    -o) OUT=$2; shift 2 ;; -b) BUILD=$2; shift 2 ;; -K) RUN_K=0; shift ;; -B) RUN_B=0; shift ;;
    --quick) N=3; INTERVALS=0.1; shift ;; -h|--help) usage 0 ;; *) usage 2 ;;
  esac
done
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "bad -n $N" >&2; exit 2; }
for s in ${SCENARIOS//,/ }; do [[ $s =~ ^(process|host|partition|drain|freeze|lossy|etcdleader)$ ]] || { echo "bad scenario $s" >&2; exit 2; }; done
[[ $EUID -eq 0 ]] || { echo "must run as root" >&2; exit 1; }
if [[ -z $BUILD ]]; then
  for b in "$REPO/build" "$REPO/build-kvbench"; do [[ -x $b/tools/baton-kv-driver ]] && { BUILD=$b; break; }; done
fi
BUILD=$(cd "${BUILD:-.}" && pwd)
DRIVER=$BUILD/tools/baton-kv-driver
for f in "$DRIVER" "$BUILD/samples/kvservice/baton-kvserver"; do
  [[ -x $f ]] || { echo "missing $f (ninja -C BUILD baton-kvserver baton-kv-driver)" >&2; exit 1; }
done
(( RUN_B == 0 )) || [[ -x $KVLAB ]] || { echo "missing $KVLAB (baton's kv lab); -B runs keepalived only" >&2; exit 1; }
PY=$(command -v python3)
OUT=${OUT:-/tmp/baton-kv-failover.$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"; : > "$OUT/runs.jsonl"
RERUN="${DRIVER_ARGS:+DRIVER_ARGS=\"$DRIVER_ARGS\" }$0 -i $INTERVALS -n $N -s $SCENARIOS$( (( RUN_B )) || echo " -B")$( (( RUN_K )) || echo " -K") -o $OUT -b $BUILD"
# Namespace prefixes unique to this invocation (concurrent runs must not take down each other's labs).
PFX_B=${PFX_B:-kvb$$}; PFX_K=${PFX_K:-kvk$$}; PFX_B=${PFX_B:0:12}; PFX_K=${PFX_K:0:12}
ATTEMPT_MS=${ATTEMPT_MS:-100}; CONNECT_MS=${CONNECT_MS:-20}; BACKOFF_MS=${BACKOFF_MS:-20}; CLIENTS=${CLIENTS:-4}
NET=10.78.0; NET2=10.79.0; VIP=$NET.100; PORT=8080
# Phases (s): steady load before the fault; after the move, watch this long; a partition lasts
# max(HOLD, 5 intervals) (long enough for either system to move the address), then POST after healing.
STEADY=0.25; OBS=0.25; HOLD=0.5; POST=1
FREEZE=${FREEZE:-2}; LOSSY=${LOSSY:-5}; LOSS=${LOSS:-25}
HOSTS=(h1 h2 h3)

calc() { awk "BEGIN { printf \"%.6f\", $* }"; }
now() { printf '%s' "$EPOCHREALTIME"; }
wait_until() {   # wait_until SECONDS CMD...
  local end=$(( ${EPOCHREALTIME/./} + $(awk -v l="$1" 'BEGIN { printf "%d", l*1000000 }') )); shift
  while ! "$@"; do (( ${EPOCHREALTIME/./} < end )) || return 1; sleep 0.02; done
}
sleep_until() { local d; d=$(calc "$1 - $(now)"); awk -v d="$d" 'BEGIN { exit !(d > 0) }' && sleep "$d" || true; }
rand_phase() { awk -v r="$RANDOM" -v a="$1" 'BEGIN { printf "%.6f", r / 32768 * a }'; }

# ---------------------------------------------------------------- the two labs, one interface
# sys_* use SYS (baton|keepalived), PFX, CELL (the cell's directory: lab state, monitor logs).
ns() { echo "${PFX}$1"; }
port_up() { ip -n "$(ns sw)" -o link show "$1" 2>/dev/null | grep -q '[<,]UP[,>]'; }
# A crashed host (service port down) holds nothing that anyone can reach.
has_vip() { port_up "sw-$1" && ip -n "$(ns "$1")" -4 -o addr show dev eth0 2>/dev/null | grep -q " $VIP/"; }
holders() { local h out=(); for h in "${HOSTS[@]}"; do has_vip "$h" && out+=("$h"); done; echo "${out[*]:-}"; }
holder_is() { [[ $(holders) == "$1" ]]; }
sole_holder() { local h; h=$(holders); [[ -n $h && $h != *" "* ]]; }
# stable_holder SECONDS: one holder, the same one for SECONDS (a restored baton host may take the
# address back by priority a moment after it rejoined: that move must not fall into a run).
stable_holder() {
  local h0 t0; h0=$(holders); t0=${EPOCHREALTIME/./}
  [[ -n $h0 && $h0 != *" "* ]] || return 1
  while (( ${EPOCHREALTIME/./} - t0 < $(awk -v s="$1" 'BEGIN { printf "%d", s * 1000000 }') )); do
    sleep 0.05; [[ $(holders) == "$h0" ]] || return 1
  done
}
other_holds() { local h; for h in "${HOSTS[@]}"; do [[ $h != "$1" ]] && has_vip "$h" && return 0; done; return 1; }
start_monitor() {  # time-stamped address events of hK, appended (restarted after a host crash)
  ip -n "$(ns "$1")" -ts monitor address >> "$CELL/monitor-$1.log" 2>&1 < /dev/null & disown $!
}
sys_up() {   # sys_up INTERVAL
  local h
  if [[ $SYS == keepalived ]]; then
    "$KALAB" up -p "$PFX" -d "$CELL/lab" -i "$1" -b "$BUILD" -P "$PORT" || return 1
  else
    "$KVLAB" up -p "$PFX" -d "$CELL/lab" -i "$1" -b "$BUILD" || return 1
  fi
  for h in "${HOSTS[@]}"; do start_monitor "$h"; done
}
sys_down() {
  if [[ $SYS == keepalived ]]; then "$KALAB" down -p "$PFX" -d "$CELL/lab" >/dev/null 2>&1 || true
  else "$KVLAB" down -p "$PFX" -d "$CELL/lab" >/dev/null 2>&1 || true; fi
}
lab_cmd() {  # lab_cmd CMD hK: the lab script of SYS
  if [[ $SYS == keepalived ]]; then "$KALAB" "$1" -p "$PFX" -d "$CELL/lab" "${@:2}"
  else "$KVLAB" "$1" -p "$PFX" -d "$CELL/lab" "${@:2}"; fi
}
# The partition, the same for both systems: every frame to or from hK's cluster port is dropped
# in the switch, the link stays up (lab.sh cut takes the carrier down, which keepalived sees as
# an interface fault and answers by releasing the address at once -- not what a partition does).
cut_host() {
  ip netns exec "$(ns sw)" nft -f - <<EOF
table bridge kvfcut {
  chain cut { type filter hook forward priority 0; policy accept; iifname "cl-$1" drop; oifname "cl-$1" drop; }
}
EOF
}
heal_all() { ip netns exec "$(ns sw)" nft delete table bridge kvfcut 2>/dev/null || true; }
# The gray failure: LOSS % of the frames to and from hK's cluster port are dropped (each frame
# independently; nftables numgen random), the link stays up.
lossy_host() {
  ip netns exec "$(ns sw)" nft -f - <<EOF
table bridge kvfloss {
  chain loss { type filter hook forward priority 0; policy accept;
    iifname "cl-$1" numgen random mod 100 < $LOSS drop
    oifname "cl-$1" numgen random mod 100 < $LOSS drop
  }
}
EOF
}
unloss_all() { ip netns exec "$(ns sw)" nft delete table bridge kvfloss 2>/dev/null || true; }
kv_pid() { cat "$CELL/lab/kv.$1.pid" 2>/dev/null; }
# A power loss: both of hK's ports go down in one netlink batch right after the fault's time stamp,
# as bench/failover.sh does; the lab's crash command (which does the same, then SIGKILLs every
# process on hK) starts two scripts and several `ip` commands first, 50-75 ms on this machine, which
# were counted as outage of both systems.
ports_down() { ip -n "$(ns sw)" -batch - <<< "link set sw-$1 down"$'\n'"link set cl-$1 down"; }
sys_fault() {  # sys_fault SCENARIO hK (both lab scripts have the same commands)
  case $1 in
    process) lab_cmd kill-server "$2" ;;
    host) ports_down "$2"; lab_cmd crash "$2" ;;
    partition) cut_host "$2" ;;
    drain) lab_cmd drain "$2" ;;
    freeze) kill -STOP "$(kv_pid "$2")" ;;
    lossy) lossy_host "$2" ;;
    etcdleader) ports_down "$2"; lab_cmd crash "$2" ;;
  esac
}
# The end of a fault that lasts (partition, freeze, lossy): the heal.
sys_heal() {
  case $1 in
    partition) heal_all ;;
    freeze) kill -CONT "$(kv_pid "$2")" ;;
    lossy) unloss_all ;;
  esac
}
fault_length() {  # fault_length SCENARIO INTERVAL: how long a lasting fault lasts (s)
  case $1 in
    partition) awk -v h="$HOLD" -v i="$2" 'BEGIN { print (5 * i > h ? 5 * i : h) }' ;;
    freeze) echo "$FREEZE" ;;
    lossy) echo "$LOSSY" ;;
  esac
}
sys_restore() {  # sys_restore SCENARIO hK: undo the fault (between runs)
  case $1 in
    process) lab_cmd start-server "$2" ;;
    host|etcdleader) lab_cmd restore "$2"; start_monitor "$2" ;;
    partition) heal_all ;;
    drain) lab_cmd undrain "$2" ;;
    freeze) kill -CONT "$(kv_pid "$2")" 2>/dev/null || true ;;
    lossy) unloss_all ;;
  esac
}
move_leader_to() {  # move_leader_to VICTIM: the etcd leadership onto the victim
  local v=$1 from id
  for from in "${HOSTS[@]}"; do [[ $from != "$v" ]] && break; done
  LEADER=$(etcd_leader "$from")
  [[ $LEADER == "$v" ]] && return 0
  [[ -n $LEADER ]] || return 1
  id=$(etcdctl_in "$v" --endpoints="http://$NET2.${v#h}:2379" endpoint status -w json | "$PY" -c '
import json, sys; print("%x" % json.load(sys.stdin)[0]["Status"]["header"]["member_id"])') || return 1
  etcdctl_in "$from" --endpoints="http://$NET2.${LEADER#h}:2379" move-leader "$id" >/dev/null 2>&1 || return 1
  wait_until 3 eval '[[ $(etcd_leader "$from") == "$v" ]]' && LEADER=$v
}
# baton's kernel fence: after the server (and its agent) died, the address stays configured until
# valid_lft runs out, but the nftables lease (set leased4, element timeout = lease end) darkens it
# at the lease end. Recorded as "dark hK TIME" (the analysis ends hK's hold there).
fence_dark_at() {
  local t out ms
  t=$(now)
  out=$(ip netns exec "$(ns "$1")" nft list ruleset 2>/dev/null | grep -o "$VIP timeout [0-9a-z]* expires [0-9a-z]*" | head -1) || true
  # "expires 1s228ms" / "228ms" / "" (already expired: dark now)
  ms=$(awk -v e="${out##* }" 'BEGIN { t = 0; while (match(e, /^[0-9]+(ms|s|m|h|d)/)) { u = substr(e, RSTART, RLENGTH); n = u + 0;
        sub(/^[0-9]+/, "", u); t += n * (u == "ms" ? 1 : u == "s" ? 1000 : u == "m" ? 60000 : u == "h" ? 3600000 : 86400000);
        e = substr(e, RLENGTH + 1) } printf "%.3f", t }')
  event dark "$1 $(calc "$t + $ms / 1000")"
  event fence "${out:-none}"
}
# etcd: members at NET2.K:2379 in both labs; etcdctl runs in a host whose cluster port is up.
etcdctl_in() { local h=$1; shift; ETCDCTL_API=3 timeout 5 ip netns exec "$(ns "$h")" etcdctl --dial-timeout=1s --command-timeout=2s "$@"; }
etcd_eps() { local h s=""; for h in "${HOSTS[@]}"; do s+="${s:+,}http://$NET2.${h#h}:2379"; done; echo "$s"; }
etcd_healthy() { etcdctl_in "$1" --endpoints="$(etcd_eps)" endpoint health >/dev/null 2>&1; }
etcd_leader() {  # etcd_leader FROM_HOST -> hK
  etcdctl_in "$1" --endpoints="$(etcd_eps)" endpoint status -w json 2>/dev/null | "$PY" -c '
import json, sys
for e in json.load(sys.stdin):
    if e["Status"]["header"]["member_id"] == e["Status"]["leader"]:
        print("h" + e["Endpoint"].split("//")[1].split(":")[0].rsplit(".", 1)[1]); break' || true
}
# LEADER caches the etcd leader between runs that cannot change it (process crash, drain).
move_leader_off() {  # move_leader_off VICTIM: the etcd leadership to another host
  local v=$1 from to id
  for from in "${HOSTS[@]}"; do [[ $from != "$v" ]] && break; done
  [[ -n ${LEADER:-} ]] || LEADER=$(etcd_leader "$from")
  [[ -n $LEADER && $LEADER != "$v" ]] && return 0
  LEADER=
  for to in "${HOSTS[@]}"; do [[ $to != "$v" ]] && break; done
  id=$(etcdctl_in "$to" --endpoints="http://$NET2.${to#h}:2379" endpoint status -w json | "$PY" -c '
import json, sys; print("%x" % json.load(sys.stdin)[0]["Status"]["header"]["member_id"])') || return 1
  etcdctl_in "$from" --endpoints="http://$NET2.${v#h}:2379" move-leader "$id" >/dev/null 2>&1 || return 1
  wait_until 3 eval '[[ $(etcd_leader "$from") == "$to" ]]' && LEADER=$to
}

# ---------------------------------------------------------------- one run
driver_ok_since() {  # the driver's timeline holds an acknowledged request finished after T (wall s)
  "$PY" - "$RUN/driver-timeline.jsonl" "$1" "$RUN/driver.start" <<'EOF' 2>/dev/null
import json, sys
p, t = sys.argv[1], float(sys.argv[2])
start = float(open(sys.argv[3]).read())
for l in open(p):
    try: r = json.loads(l)
    except ValueError: continue
    if r.get("outcome") == "ok" and start + r["finish_ms"] / 1e3 > t: sys.exit(0)
sys.exit(1)
EOF
}
event() { echo "$1 $2" >> "$RUN/events"; }
one_run() {   # one_run SCENARIO INTERVAL K
  local scen=$1 iv=$2 k=$3 v t tf th dpid ok=1
  RUN=$OUT/$SYS-$scen-$iv/run-$k; rm -rf "$RUN"; mkdir -p "$RUN"; : > "$RUN/events"
  wait_until "$(calc "10 + 20*$iv")" stable_holder "$(awk -v i="$iv" 'BEGIN { print (3 * i > 0.1 ? 3 * i : 0.1) }')" \
    || { event error "no stable sole holder before the run: '$(holders)'"; ok=0; }
  v=$(holders)
  [[ -n $v && $v != *" "* ]] || { (( ok == 0 )) || event error "no sole holder at the start: '$v'"; ok=0; }
  if (( ok )); then
    if [[ $scen == etcdleader ]]; then
      move_leader_to "$v" || { event error "etcd leader could not be moved onto $v"; ok=0; }
    else
      move_leader_off "$v" || event warning "etcd leader could not be moved off $v"
    fi
  fi
  if (( ok )); then
    event start "$(now)"
    ip netns exec "$(ns c)" "$DRIVER" --target "$VIP:$PORT" --clients "$CLIENTS" --seconds 0 \
      --stop-file "$RUN/stop" --timeline "$RUN/driver-timeline.jsonl" --summary "$RUN/driver.json" \
      --run-id "${SYS:0:1}${scen:0:2}${iv/./}r$k$RANDOM" --attempt-timeout-ms "$ATTEMPT_MS" \
      --connect-timeout-ms "$CONNECT_MS" --max-backoff-ms "$BACKOFF_MS" --deadline-ms 10000 --quiet \
      ${DRIVER_ARGS:-} > "$RUN/driver.out" 2>&1 < /dev/null &
    dpid=$!
    now > "$RUN/driver.start"   # approximate; the analysis uses the driver's own start_unix
    sleep_until "$(calc "$(now) + $STEADY + $(rand_phase "$iv")")"
    # (whether the client had answers before the fault is judged from its timeline afterwards: the
    # driver writes it in blocks)
    if [[ $(holders) != "$v" ]]; then
      # baton sometimes gives the address back to a returned host of higher priority seconds
      # after it rejoined: fault the new holder once it is stable.
      event note "the address moved before the fault: '$v' -> '$(holders)'"
      if wait_until 5 stable_holder 0.3; then
        v=$(holders)
        if [[ $scen == etcdleader ]]; then move_leader_to "$v" || event warning "etcd leader could not be moved onto $v"
        else move_leader_off "$v" || event warning "etcd leader could not be moved off $v"; fi
      else
        event error "the address moved before the fault and did not settle: '$(holders)'"; ok=0
      fi
    fi
    event victim "$v"; event etcd_leader "${LEADER:-}"; event checked "$(now)"
  fi
  if (( ok )); then
    tf=$(now); sys_fault "$scen" "$v" >> "$RUN/fault.log" 2>&1 || event error "fault injection failed (fault.log)"
    event fault "$tf"
    [[ $SYS == baton && $scen == process ]] && fence_dark_at "$v"
    [[ $scen == host || $scen == etcdleader ]] && event dead "$v $tf"
    if [[ $scen == partition || $scen == freeze || $scen == lossy ]]; then
      local hold; hold=$(fault_length "$scen" "$iv")
      wait_until "$hold" other_holds "$v" || true
      sleep_until "$(calc "$tf + $hold + $( [[ $scen == partition ]] && rand_phase "$iv" || echo 0)")"
      th=$(now); sys_heal "$scen" "$v"; event heal "$th"
      sleep "$POST"
    else
      # Another host holds it (the victim may still have it configured: baton's dead agent leaves
      # it to the kernel fence and valid_lft).
      if wait_until "$(calc "5 + 10*$iv")" other_holds "$v"; then event moved "$(now) $(holders)"
      else event error "no other holder within $(calc "5 + 10*$iv") s: '$(holders)'"; fi
      sleep "$OBS"
      # (python per check: polled slowly, not to load the machine during the measurement)
      local i; for (( i = 0; i < 50; i++ )); do driver_ok_since "$tf" && break; sleep 0.1; done
      (( i < 50 )) || event error "the client got no answer within 5 s after the fault"
    fi
  fi
  if [[ -n ${dpid:-} ]]; then
    touch "$RUN/stop"; event end "$(now)"
    # The read-back goes through the service address too: a client still stuck after the run
    # (keepalived after a partition) may not finish it; then the run keeps its timeline figures
    # and has no lost/duplicated figures.
    local i; for (( i = 0; i < 150 && $(kill -0 "$dpid" 2>/dev/null; echo $?) == 0; i++ )); do sleep 0.1; done
    kill -0 "$dpid" 2>/dev/null && { kill -KILL "$dpid" 2>/dev/null || true; event unverified "driver did not finish its read-back within 15 s"; }
    local rc=0; wait "$dpid" 2>/dev/null || rc=$?; echo "$rc" > "$RUN/driver.rc"
  else
    event end "$(now)"
  fi
  [[ -n $v && $v != *" "* ]] && { sys_restore "$scen" "$v" >> "$RUN/restore.log" 2>&1 || event warning "restore of $v failed"; }
  # Analysed after the cell (python here would load the machine between runs).
  echo "$RUN $scen $iv" >> "$CELL/runs"
  # Ready for the next run: after a host crash or a partition every etcd member healthy again
  # (and the leader looked up afresh).
  if [[ $scen == host || $scen == partition || $scen == etcdleader || $scen == lossy ]]; then
    LEADER=""
    local from; for from in "${HOSTS[@]}"; do [[ $from != "$v" ]] && break; done
    wait_until 20 etcd_healthy "$from" || echo "  warning: etcd not healthy after run $k" >&2
  fi
}
analyze_cell() {   # one python for the whole cell: appends to OUTDIR/runs.jsonl, prints a line a run
  "$PY" "$ANALYZE" cell "$CELL/runs" --system "$SYS" --vip "$VIP" --monitors "$CELL" --out "$OUT/runs.jsonl" \
    || echo "  $SYS: analysis of $CELL failed"
}

for p in "$PFX_B" "$PFX_K"; do
  if "$LAB" list -p "$p" | grep -q .; then
    echo "a lab with prefix $p is up (another run? else: scripts/lab.sh down -p $p)" >&2; exit 1
  fi
done
UP_LAB=""   # the lab this invocation has up ("SYS PFX CELL"): the only one cleanup takes down
cleanup() {
  [[ -n $UP_LAB ]] || return 0
  read -r SYS PFX CELL <<< "$UP_LAB"; sys_down
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

T0=$(now)
echo "# $RERUN"
echo "# output $OUT; build $BUILD; client: $CLIENTS x baton-kv-driver, attempt timeout ${ATTEMPT_MS} ms, connect timeout ${CONNECT_MS} ms, backoff <= ${BACKOFF_MS} ms${DRIVER_ARGS:+, $DRIVER_ARGS}"
for iv in ${INTERVALS//,/ }; do
  [[ $iv =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "bad interval $iv" >&2; exit 2; }
  for SYS in baton keepalived; do
    [[ $SYS == baton ]] && (( ! RUN_B )) && continue
    [[ $SYS == keepalived ]] && (( ! RUN_K )) && continue
    PFX=$([[ $SYS == baton ]] && echo "$PFX_B" || echo "$PFX_K")
    CELL=$OUT/lab-$SYS-$iv; rm -rf "$CELL"; mkdir -p "$CELL"; : > "$CELL/runs"; LEADER=""
    echo "== $SYS, interval ${iv}s: lab up"
    UP_LAB="$SYS $PFX $CELL"
    if ! sys_up "$iv" > "$CELL/up.log" 2>&1; then
      echo "  lab did not come up (see $CELL/up.log)"; sys_down; UP_LAB=""; continue
    fi
    for scen in ${SCENARIOS//,/ }; do
      echo "== $SYS $scen ${iv}s x $N"
      for (( k = 1; k <= N; k++ )); do
        one_run "$scen" "$iv" "$k"
      done
    done
    sys_down; UP_LAB=""
    analyze_cell
  done
done
echo
{
  echo "# $RERUN"
  echo "# took $(calc "$(now) - $T0") s; client: $CLIENTS x baton-kv-driver (attempt ${ATTEMPT_MS} ms, connect ${CONNECT_MS} ms, backoff <= ${BACKOFF_MS} ms); 3 hosts per system (etcd member + kv server each)"
  "$PY" "$ANALYZE" table "$OUT"
} | tee "$OUT/table.txt"
echo "per run: $OUT/runs.jsonl; per cell: $OUT/summary.jsonl"
echo "rerun: $RERUN"
