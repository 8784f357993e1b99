#!/usr/bin/env bash
# failover.sh -- baton's fail-over benchmark, run side by side with the reference keepalived
# measurement (/work/shared/peers/keepalived-failover.sh, run unchanged) in one invocation, at equal
# heartbeat / advert intervals.
#
# baton's lab (scripts/lab.sh, namespace prefix bfo by default, subnet 10.78.0.0/24):
#     bfoh1 10.78.0.1  baton-takeoverd prio 150 + UDP responder --.
#     bfoh2 10.78.0.2  baton-takeoverd prio 100 + UDP responder --+-- bridge br0 in bfosw
#     bfoh3 10.78.0.3  baton-takeoverd prio  50 + UDP responder --+
#     bfoc  10.78.0.250 client: 1 UDP request / 2 ms to 10.78.0.100, 20 ms timeout
#   The daemons talk over a second bridge (br1, 10.79.0.0/24, "cluster network"). Three hosts,
#   because a majority-lease protocol cannot survive the loss of one of two hosts; keepalived runs
#   in its own two-host lab (prefix kfo by default), exactly as its script builds it.
# Per run (fresh lab each time): h1 must hold the address alone, the client must see 2 s of
# uninterrupted answers from h1, and h1 must have held it for SETTLE s; then, after a random delay
# in [0, interval), the fault:
#   crash      h1's bridge ports go down and every process on h1 is SIGKILLed.
#              outage = send time of the first answer from another host - last answer from h1.
#   partition  h1 is cut from h2 and h3 (cluster link down); the client still reaches all three.
#              split brain = two hosts held the address at the same time: overlapping hold
#              intervals in the time-stamped `ip -ts monitor address` logs of every host, or
#              `ip addr` polling that sees two holders in two readings in opposite host order. After HOLD s (+ random phase) the cut heals; post-heal
#              stuck time = the longest client gap after healing (0 when never interrupted).
# The keepalived runs use the reference script's own definitions (same client period, timeout,
# steady period, random phase; its SETTLE is 6 s because of keepalived's delayed GARP burst).
#
# -6: the same with an IPv6 service address: baton's lab with fd78::K/64 beside the IPv4
# addresses on the service network (scripts/lab.sh up -6: duplicate address detection off in every
# namespace), service address fd78::100/64 (announced by unsolicited NA, fenced by nftables
# including its neighbour discovery), responders and client over IPv6; the cluster network stays
# IPv4 (10.79.0.0/24: the daemons' own traffic, which no client sees) unless -C, which moves the
# daemons to fd79::K on the same cluster bridge (an IPv6-only deployment). keepalived: our harness
# bench/failover/keepalived6.sh (the reference's two-host lab and definitions, VRRPv3 over IPv6,
# the same client as baton's IPv6 runs), as the reference script is IPv4 only.
#
# Usage: failover.sh [-i 1,0.1,0.01] [-n 10] [-s crash,partition] [-o OUTDIR] [-b BUILD_DIR]
#                    [-p PREFIX] [-P KA_PREFIX] [-K] [-B] [-6 [-C]]
#   -i  comma separated intervals in seconds (baton heartbeat = keepalived advert_int)
#   -n  runs per scenario, system and interval (default 10)
#   -K  baton only (skip keepalived);  -B  keepalived only (skip baton)
#   -6  IPv6 service address (rows baton6, keepalived6) instead of IPv4
#   -C  (with -6) baton's cluster network over IPv6 too
#   -b  build directory with takeover/daemon/baton-takeoverd and tools/baton-udp-{responder,prober}
#       (default: ../build, the README's preset; build the targets named below first)
# Output: OUTDIR/{baton,keepalived}[6]-<interval>/ (per-run logs, results.jsonl), OUTDIR/summary.jsonl,
# and the table (also OUTDIR/table.txt). Needs root, iproute2, keepalived, python3.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
LAB=$REPO/scripts/lab.sh
# shellcheck source=failover/lib.sh
. "$HERE/failover/lib.sh"
KA_SCRIPT=${KA_SCRIPT:-/work/shared/peers/keepalived-failover.sh}
KA6_SCRIPT=$HERE/failover/keepalived6.sh
INTERVALS=1,0.1,0.01; N=10; SCENARIOS=crash,partition; OUT=""; BUILD=""; PFX=bfo; KA_PFX=kfo
RUN_KA=1; RUN_BATON=1; FAM=4; CLUSTER6=0
while getopts "i:n:s:o:b:p:P:KB6Ch" opt; do
  case $opt in
    i) INTERVALS=$OPTARG ;; n) N=$OPTARG ;; s) SCENARIOS=$OPTARG ;; o) OUT=$OPTARG ;;
    b) BUILD=$OPTARG ;; p) PFX=$OPTARG ;; P) KA_PFX=$OPTARG ;; K) RUN_KA=0 ;; B) RUN_BATON=0 ;; 6) FAM=6 ;; C) CLUSTER6=1 ;;
    h) usage 0 ;; *) usage 2 ;;
  esac
done
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "bad -n $N" >&2; exit 2; }
[[ $PFX != "$KA_PFX" ]] || { echo "-p and -P must differ" >&2; exit 2; }
(( ! CLUSTER6 || FAM == 6 )) || { echo "-C needs -6" >&2; exit 2; }
[[ $EUID -eq 0 ]] || { echo "must run as root" >&2; exit 1; }
if [[ -z $BUILD ]]; then
  for b in "$REPO/build"; do
    [[ -x $b/takeover/daemon/baton-takeoverd ]] && { BUILD=$b; break; }
  done
fi
[[ -d $BUILD ]] && BUILD=$(cd "$BUILD" && pwd)   # the daemons run with another working directory
TAKEOVERD=$BUILD/takeover/daemon/baton-takeoverd
RESPONDER=$BUILD/tools/baton-udp-responder
PROBER=$BUILD/tools/baton-udp-prober
for f in "$TAKEOVERD" "$RESPONDER" "$PROBER"; do
  [[ -x $f ]] || { echo "missing $f (build: ninja baton-takeoverd baton-udp-responder baton-udp-prober)" >&2; exit 1; }
done
(( RUN_KA == 0 || FAM == 6 )) || [[ -x $KA_SCRIPT ]] || { echo "missing $KA_SCRIPT" >&2; exit 1; }
PY=$(command -v python3)
OUT=${OUT:-/tmp/baton-failover.$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
CMDLINE="$0 $*"

if (( FAM == 6 )); then
  VIP=fd78::100; PLEN=64; LAB_FAM=(-6); RESPONDER_FAM=(--ipv6); TAG=6
else
  VIP=10.78.0.100; PLEN=24; LAB_FAM=(); RESPONDER_FAM=(); TAG=""
fi
SPORT=7777; DPORT=7946
PERIOD_MS=2; TIMEOUT_MS=20; STEADY=2; SETTLE=2; HOLD=2; POST_HEAL=2
declare -A PRIO=([h1]=150 [h2]=100 [h3]=50)

cleanup() { "$LAB" down -p "$PFX" >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

ns() { echo "${PFX}$1"; }
# The daemons' address on the cluster network, and as a peer address with the port.
cip() { if (( CLUSTER6 )); then "$LAB" cip6 -p "$PFX" "$1"; else "$LAB" cip -p "$PFX" "$1"; fi; }
peer_addr() { if (( CLUSTER6 )); then echo "[$(cip "$1")]:$DPORT"; else echo "$(cip "$1"):$DPORT"; fi; }
has_vip() { local out; out=$(ip -n "$(ns "$1")" -"$FAM" -o addr show dev eth0 2>/dev/null) && [[ $out == *" $VIP/"* ]]; }
holders() {   # holders [h1 h2 h3 | h3 h2 h1]: hosts holding the address, checked in that order
  local h out=() order=("$@"); (( $# )) || order=(h1 h2 h3)
  for h in "${order[@]}"; do grep -qx "$h" "$RUN/dead" 2>/dev/null && continue; has_vip "$h" && out+=("$h"); done
  echo "${out[*]:-}"
}
# Two holders by polling. One `ip addr` per host is not a snapshot: a clean move (removal, then
# add) can look like two holders when the old holder is read before its removal and the new one
# after its add. So a hit is confirmed by a second reading in the opposite order, which a clean
# move cannot fool; the kernel timestamps of `ip -ts monitor` are the exact check (analysis).
two_holders() {
  [[ $(holders h1 h2 h3) == *" "* ]] || return 1
  [[ $(holders h3 h2 h1) == *" "* ]] && return 0
  echo "$(now) unconfirmed" >> "$RUN/poll_race"; return 1
}
h1_sole() { [[ $(holders) == h1 ]]; }
new_sole() { local h; h=$(holders); [[ -n $h && $h != *" "* && $h != h1 ]]; }
client_saw_other() { awk -v t="$1" '$3 == "OK" && $4 != "h1" && $2 >= t { f = 1; exit } END { exit !f }' "$RUN/client.log" 2>/dev/null; }
addrs() { ip -n "$(ns "$1")" -"$FAM" -o addr show dev eth0 scope global | awk '{print $4}' | paste -sd, -; }

baton_run() {   # baton_run SCENARIO INTERVAL I
  local scen=$1 iv=$2 i=$3 h k t t_master
  RUN=$BOUT/$scen-$i; rm -rf "$RUN"; mkdir -p "$RUN"; : > "$RUN/events"
  "$LAB" up -p "$PFX" -n 3 -k "${LAB_FAM[@]}" >/dev/null
  openssl rand -hex 32 > "$RUN/cluster.key"; chmod 600 "$RUN/cluster.key"
  for h in h1 h2 h3; do
    {
      echo "node_id: ${h#h}"; echo "interface: eth0"; echo "service_address: $VIP/$PLEN"
      echo "key_file: $RUN/cluster.key"; echo "bind_host: $(cip "$h")"
      echo "status_socket: $RUN/$h.sock"; echo "incarnation_file: $RUN/$h.incarnation"
      # A fresh lab each run, state included: the default /var/lib/baton/takeoverd-N.state would
      # carry the group a previous run shrank after its crash into this one (h1 not a member).
      echo "state_file: $RUN/$h.state"
      echo "timing: {heartbeat: ${iv}s}"; echo "peers:"
      for k in 1 2 3; do echo "  - {id: $k, priority: ${PRIO[h$k]}, address: \"$(peer_addr "h$k")\"}"; done
    } > "$RUN/$h.yaml"
    ip -n "$(ns "$h")" -ts monitor address > "$RUN/monitor-$h.log" 2>&1 & disown $!
    "$LAB" exec -p "$PFX" "$h" "$RESPONDER" --name "$h" --port "$SPORT" "${RESPONDER_FAM[@]}" --max-seconds 300 > /dev/null 2>&1 & disown $!
  done
  # h1 starts first, as the reference starts keepalived on h1 in state MASTER: a "simultaneous"
  # start elects the highest priority only if the daemons start within the discovery window
  # (3 heartbeats = 30 ms at 10 ms), which `ip netns exec` start-up on a loaded machine can exceed.
  "$LAB" exec -p "$PFX" h1 "$TAKEOVERD" --config "$RUN/h1.yaml" > "$RUN/takeoverd-h1.log" 2>&1 & disown $!
  wait_until 5 test -S "$RUN/h1.sock" || true
  for h in h2 h3; do "$LAB" exec -p "$PFX" "$h" "$TAKEOVERD" --config "$RUN/$h.yaml" > "$RUN/takeoverd-$h.log" 2>&1 & disown $!; done
  if ! wait_until "$(calc "10 + 5*$iv")" h1_sole; then
    event error "h1 did not become sole holder: $(holders)"
  else
    t_master=$(now)
    "$LAB" exec -p "$PFX" c "$PROBER" --target "$VIP" --port "$SPORT" --period-ms "$PERIOD_MS" \
      --timeout-ms "$TIMEOUT_MS" --max-seconds 120 --steady-seconds "$STEADY" --steady-file "$RUN/steady" \
      --stop-file "$RUN/stop" --log "$RUN/client.log" > "$RUN/prober.err" 2>&1 & disown $!
    if ! wait_until 15 test -s "$RUN/steady"; then
      event error "client never saw ${STEADY}s of steady answers"
    elif [[ $(cat "$RUN/steady") != h1 ]]; then
      event error "steady answers came from $(cat "$RUN/steady"), not h1"
    else
      sleep_until "$(calc "$t_master + $SETTLE + $(rand_phase "$iv")")"
      if ! h1_sole; then
        event error "address not on h1 alone before the fault: $(holders)"
      elif [[ $scen == crash ]]; then
        echo h1 > "$RUN/dead"
        # As the reference does: the time stamp, then at once the ports (both of h1's links in one
        # netlink batch: a power loss), then SIGKILL of everything on h1.
        t=$(now)
        ip -n "$(ns sw)" -batch - <<< $'link set sw-h1 down\nlink set cl-h1 down'
        "$LAB" crash -p "$PFX" h1
        event crash "$t"
        wait_until "$(calc "5 + 5*$iv")" client_saw_other "$t" || event error "no answer from another host within $(calc "5 + 5*$iv")s"
        two_holders && event split_brain 1
        sleep 1
        two_holders && event split_brain 1
      else
        t=$(now)
        ip -n "$(ns sw)" link set cl-h1 down      # = lab.sh cut h1, without the script's start-up time
        event partition "$t"
        local t_end split=0
        t_end=$(calc "$t + 5 + 5*$iv")
        # watch for two holders until a new holder is alone, then hold the partition
        while awk -v e="$t_end" -v n="$(now)" 'BEGIN { exit !(n < e) }'; do
          if two_holders; then split=1; event split_evidence "$(now) h1: $(addrs h1) | h2: $(addrs h2) | h3: $(addrs h3)"; fi
          new_sole && break
          sleep 0.005
        done
        event split_brain "$split"
        sleep_until "$(calc "$(now) + $HOLD + $(rand_phase "$iv")")"
        two_holders && event split_brain 1
        t=$(now); "$LAB" heal -p "$PFX"; event heal "$t"
        sleep "$POST_HEAL"
        two_holders && event split_brain 1
      fi
    fi
    touch "$RUN/stop"; sleep 0.1
  fi
  event end "$(now)"   # the analysis ignores what teardown does to the addresses
  "$LAB" down -p "$PFX" >/dev/null
  # A failed analysis must not end the whole benchmark.
  "$PY" "$HERE/failover_analyze.py" run "$scen" "$RUN" "$VIP" | tee -a "$BOUT/results.jsonl" \
    | print_result "baton$TAG" || echo "  baton$TAG $scen-$i: analysis failed"
}

echo "# $CMDLINE"
if (( FAM == 6 )); then KA_WHAT="2 hosts, $KA6_SCRIPT (VRRPv3 over IPv6)"; else KA_WHAT="2 hosts, reference $KA_SCRIPT"; fi
echo "# output: $OUT; baton build: $BUILD; keepalived: $KA_WHAT"
for iv in ${INTERVALS//,/ }; do
  [[ $iv =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "bad interval $iv" >&2; exit 2; }
  if (( RUN_BATON )); then
    BOUT=$OUT/baton$TAG-$iv; mkdir -p "$BOUT"; : > "$BOUT/results.jsonl"
    echo "== baton, IPv$FAM service address $VIP, heartbeat ${iv}s, N=$N, $SCENARIOS"
    for scen in ${SCENARIOS//,/ }; do
      for (( i = 1; i <= N; i++ )); do baton_run "$scen" "$iv" "$i"; done
    done
  fi
  if (( RUN_KA && FAM == 6 )); then
    echo "== keepalived, IPv6 VIP $VIP, advert_int ${iv}s, N=$N, $SCENARIOS: $KA6_SCRIPT -i $iv -n $N -s $SCENARIOS -p $KA_PFX -b $BUILD -o $OUT/keepalived6-$iv"
    "$KA6_SCRIPT" -i "$iv" -n "$N" -s "$SCENARIOS" -p "$KA_PFX" -b "$BUILD" -o "$OUT/keepalived6-$iv" | sed 's/^/  /'
  elif (( RUN_KA )); then
    echo "== keepalived, advert_int ${iv}s, N=$N, $SCENARIOS: $KA_SCRIPT -i $iv -n $N -s $SCENARIOS -p $KA_PFX -o $OUT/keepalived-$iv"
    "$KA_SCRIPT" -i "$iv" -n "$N" -s "$SCENARIOS" -p "$KA_PFX" -o "$OUT/keepalived-$iv" | sed 's/^/  /'
  fi
done
echo
echo "# $CMDLINE   (IPv$FAM service address, IPv$( (( CLUSTER6 )) && echo 6 || echo 4) cluster network; client: 1 UDP request / ${PERIOD_MS} ms, ${TIMEOUT_MS} ms timeout; baton: 3 hosts; keepalived: $KA_WHAT)" | tee "$OUT/table.txt"
"$PY" "$HERE/failover_analyze.py" table "$OUT" | tee -a "$OUT/table.txt"
echo "JSON lines: $OUT/summary.jsonl"
