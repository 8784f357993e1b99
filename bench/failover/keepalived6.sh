#!/usr/bin/env bash
# keepalived6.sh -- keepalived moving an IPv6 virtual address, measured the way the reference
# keepalived measurement (/work/shared/peers/keepalived-failover.sh, IPv4 only) measures its IPv4
# one: the IPv6 counterpart bench/failover.sh -6 runs beside baton.
#
# The reference's two-host lab, built by scripts/lab.sh (up -n 2 -6, namespace prefix kfo):
#     ns ${P}h1  fd78::1    keepalived prio 150 (MASTER) + UDP responder  --.
#     ns ${P}h2  fd78::2    keepalived prio 100 (BACKUP) + UDP responder  --+-- bridge br0 in ${P}sw
#     ns ${P}c   fd78::250  client: 1 request / 2 ms to VIP fd78::100       --'
# (the hosts also carry the lab's IPv4 addresses, unused here). Differences to the reference:
#   * IPv6 is on in the namespaces, with duplicate address detection off (accept_dad=0 in every
#     namespace, so the VIP, keepalived's and baton's, is usable the instant it is added);
#   * VRRPv3 over IPv6 at every interval (RFC 5798; VRRPv2 is IPv4 only): adverts to ff02::12 from
#     the link-local address, the VIP in virtual_ipaddress. Not an IPv4 instance carrying the IPv6
#     address in virtual_ipaddress_excluded: that would fence the IPv6 address by IPv4 adverts,
#     which is not how a deployment with an IPv6 service address would run VRRP;
#   * keepalived's announcement settings are its defaults, as in the reference: on becoming master
#     5 unsolicited neighbour advertisements (override flag) at once (vrrp_garp_master_repeat 5,
#     vrrp_gna_interval 0), a second burst 5 s later (vrrp_garp_master_delay 5), no refresh;
#   * client and responders are baton's (tools/baton-udp-{prober,responder}, the IPv4
#     reference's Python client is IPv4 only): the same period, timeout, steady rule and log format,
#     and the same programs as baton's IPv6 row, so both IPv6 rows are measured by one client.
# Scenarios, timing and random phase as the reference: the fault after >= 2 s of steady answers
# from h1 and h1 master for SETTLE = 6 s, plus a random delay in [0, ADVERT_INT) (-J: none);
#   crash      h1's port goes down, then everything on h1 is SIGKILLed (scripts/lab.sh crash).
#   partition  bridge port isolation between h1 and h2 (the client reaches both), held 2 s (+ the
#              random delay) after the split was seen, then healed; the client is watched for up to
#              15 s after healing.
# Each run's JSON line is failover_analyze.py's (the same keys as baton's runs).
#
# Usage: keepalived6.sh -b BUILD_DIR [-i ADVERT_INT] [-n N] [-s crash,partition] [-o OUTDIR]
#                       [-p PREFIX] [-J]
#   -b  build directory with tools/baton-udp-{responder,prober}
#   -i  VRRP advert interval in seconds (default 1; keepalived accepts 0.01 .. 255 for VRRPv3)
#   -n  repetitions per scenario (default 5)
#   -p  namespace prefix for scripts/lab.sh (default kfo)
#   -J  no random phase delay before the fault / the heal
# Output: OUTDIR/<scenario>-<i>/ per run (client.log, events, keepalived logs, monitor logs) and
# OUTDIR/results.jsonl. Needs root, iproute2, keepalived, python3.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LAB=$REPO/scripts/lab.sh
# shellcheck source=lib.sh
. "$HERE/lib.sh"
ADV=1; N=5; SCENARIOS=crash,partition; OUT=""; PFX=kfo; BUILD=""; JITTER=1
while getopts "i:n:s:o:p:b:Jh" opt; do
  case $opt in
    i) ADV=$OPTARG ;; n) N=$OPTARG ;; s) SCENARIOS=$OPTARG ;; o) OUT=$OPTARG ;;
    p) PFX=$OPTARG ;; b) BUILD=$OPTARG ;; J) JITTER=0 ;;
    h) usage 0 ;; *) usage 2 ;;
  esac
done
[[ $ADV =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "bad -i $ADV" >&2; exit 2; }
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "bad -n $N" >&2; exit 2; }
[[ $EUID -eq 0 ]] || { echo "must run as root" >&2; exit 1; }
[[ -n $BUILD ]] || usage 2
BUILD=$(cd "$BUILD" && pwd)
RESPONDER=$BUILD/tools/baton-udp-responder
PROBER=$BUILD/tools/baton-udp-prober
for f in "$RESPONDER" "$PROBER"; do [[ -x $f ]] || { echo "missing $f" >&2; exit 1; }; done
command -v keepalived >/dev/null || { echo "missing keepalived" >&2; exit 1; }

VIP=fd78::100; PLEN=64; PORT=7777; VRID=77
PERIOD_MS=2; TIMEOUT_MS=20; STEADY=2; SETTLE=6; HOLD=2; POST_HEAL_MAX=15
T_MASTER_WAIT=$(calc "10 + 5*$ADV")
T_FAILOVER=$(calc "5 + 5*$ADV")
CLIENT_MAX=$(calc "40 + 20*$ADV + $POST_HEAL_MAX")
OUT=${OUT:-/tmp/keepalived6-failover.${ADV}s.$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: > "$RESULTS"

cleanup() { "$LAB" down -p "$PFX" >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

NS_SW=${PFX}sw
ns() { echo "${PFX}$1"; }
phase() { if (( JITTER )); then rand_phase "$ADV"; else echo 0; fi; }
vip_on() { local out; out=$(ip -n "$(ns "$1")" -6 -o addr show dev eth0 2>/dev/null) && [[ $out == *" $VIP/"* ]]; }
h1_sole_master() { vip_on h1 && ! vip_on h2; }
both_hold_vip() { vip_on h1 && vip_on h2; }
h2_free() { ! vip_on h2; }
addrs() { ip -n "$(ns "$1")" -6 -o addr show dev eth0 scope global | awk '{print $4}' | paste -sd, -; }
client_saw() { grep -q " OK $1 " "$RUN/client.log" 2>/dev/null; }
client_saw_after_line() { tail -n "+$1" "$RUN/client.log" 2>/dev/null | grep -q " OK $2 "; }
can_ping() { timeout 3 ip netns exec "$(ns "$1")" ping -6 -n -q -c 1 -W 1 "$2" >/dev/null 2>&1; }

# start_keepalived HOST STATE PRIORITY: the reference's configuration with the IPv6 VIP.
start_keepalived() {
  local h=$1 d=$RUN/ka-$1
  mkdir -p "$d"
  cat > "$d/keepalived.conf" <<CONF
global_defs {
    router_id $h
    vrrp_version 3
}
vrrp_instance VI_$VRID {
    state $2
    interface eth0
    virtual_router_id $VRID
    priority $3
    advert_int $ADV
    virtual_ipaddress {
        $VIP/$PLEN dev eth0
    }
}
CONF
  # -P vrrp only, -n foreground, -R no respawn, -G no syslog, -l -D log to the console
  "$LAB" exec -p "$PFX" "$h" keepalived -P -n -R -G -l -D -f "$d/keepalived.conf" \
    -p "$d/keepalived.pid" -r "$d/vrrp.pid" > "$d/keepalived.log" 2>&1 & disown $!
}

scenario_crash() {
  local t
  echo h1 > "$RUN/dead"
  t=$(now)
  ip -n "$NS_SW" link set sw-h1 down
  "$LAB" crash -p "$PFX" h1
  event crash "$t"
  wait_until "$T_FAILOVER" client_saw h2 || event error "no answer from h2 within ${T_FAILOVER}s"
  sleep 1
}

scenario_partition() {
  local t t_split line
  t=$(now)
  bridge -n "$NS_SW" link set dev sw-h1 isolated on && bridge -n "$NS_SW" link set dev sw-h2 isolated on
  event partition "$t"
  if wait_until "$T_FAILOVER" both_hold_vip; then event split_brain 1; else event split_brain 0; fi
  t_split=$(now)
  event split_evidence "$t_split h1: $(addrs h1) | h2: $(addrs h2)"
  event isolation_check "h1->h2 $(can_ping h1 fd78::2 && echo open || echo blocked), c->h1 $(can_ping c fd78::1 && echo ok || echo FAIL), c->h2 $(can_ping c fd78::2 && echo ok || echo FAIL)"
  sleep_until "$(calc "$t_split + $HOLD + $(phase)")"
  line=$(( $(wc -l < "$RUN/client.log") + 1 ))
  t=$(now)
  bridge -n "$NS_SW" link set dev sw-h1 isolated off && bridge -n "$NS_SW" link set dev sw-h2 isolated off
  event heal "$t"
  wait_until "$T_FAILOVER" h2_free || true
  wait_until "$POST_HEAL_MAX" client_saw_after_line "$line" h1 || true
  sleep 1
}

run_one() {   # run_one SCENARIO I
  local scen=$1 i=$2 h t_master
  RUN=$OUT/$scen-$i; rm -rf "$RUN"; mkdir -p "$RUN"; : > "$RUN/events"
  "$LAB" up -p "$PFX" -n 2 -6 >/dev/null
  for h in h1 h2; do
    ip -n "$(ns "$h")" -ts monitor address > "$RUN/monitor-$h.log" 2>&1 & disown $!
    "$LAB" exec -p "$PFX" "$h" "$RESPONDER" --name "$h" --port "$PORT" --ipv6 \
      --max-seconds "$CLIENT_MAX" > "$RUN/responder-$h.log" 2>&1 & disown $!
  done
  start_keepalived h1 MASTER 150
  start_keepalived h2 BACKUP 100
  if ! wait_until "$T_MASTER_WAIT" h1_sole_master; then
    event error "h1 did not become sole master within ${T_MASTER_WAIT}s"
  else
    t_master=$(now)
    "$LAB" exec -p "$PFX" c "$PROBER" --target "$VIP" --port "$PORT" --period-ms "$PERIOD_MS" \
      --timeout-ms "$TIMEOUT_MS" --max-seconds "$CLIENT_MAX" --steady-seconds "$STEADY" \
      --steady-file "$RUN/steady" --stop-file "$RUN/stop" --log "$RUN/client.log" \
      > "$RUN/prober.err" 2>&1 & disown $!
    if ! wait_until 15 test -s "$RUN/steady"; then
      event error "client never saw ${STEADY}s of steady answers"
    elif [[ $(cat "$RUN/steady") != h1 ]]; then
      event error "steady answers came from $(cat "$RUN/steady"), not h1"
    else
      sleep_until "$(calc "$t_master + $SETTLE + $(phase)")"
      if h1_sole_master; then
        "scenario_$scen"
      else
        event error "VIP not on h1 alone before the fault: h1 $(addrs h1), h2 $(addrs h2)"
      fi
    fi
    touch "$RUN/stop"; sleep 0.1
  fi
  event end "$(now)"
  "$LAB" down -p "$PFX" >/dev/null
  python3 "$HERE/../failover_analyze.py" run "$scen" "$RUN" "$VIP" | tee -a "$RESULTS" \
    | print_result keepalived6 || echo "  keepalived6 $scen-$i: analysis failed"
}

echo "keepalived $(keepalived --version 2>&1 | head -1 | awk '{print $2}'), VRRPv3 over IPv6, VIP $VIP/$PLEN, advert_int ${ADV}s, N=$N, scenarios $SCENARIOS, random phase $JITTER, output $OUT"
for scen in ${SCENARIOS//,/ }; do
  [[ $scen == crash || $scen == partition ]] || { echo "unknown scenario $scen" >&2; exit 2; }
  for (( i = 1; i <= N; i++ )); do run_one "$scen" "$i"; done
done
