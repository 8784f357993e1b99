# Pool-of-addresses helpers of the take-over lab tests (tests/integration/takeover_pool*.sh);
# sourced after takeover_lib.sh, not run. The paper's Figure 16 set-up: servers S1..S3 (h1..h3,
# capacity 2 each) and two grantor-only hosts G4, G5 (h4, h5, capacity 0) so that S1 alone with
# G4 and G5 is still a majority of the static 5-node group; three addresses in order of
# importance slot 0 = IP1, slot 1 = IP3, slot 2 = IP2 and priorities S1 > S3 > S2, so that the
# core's deterministic assignment puts IPi on Si at start (takeover/core/assignment.h).

NHOSTS=5
declare -A PRIO=([h1]=150 [h3]=100 [h2]=50 [h4]=20 [h5]=10)
declare -A CAP=([h1]=2 [h2]=2 [h3]=2 [h4]=0 [h5]=0)
# A longer start-up quiet period (20 heartbeats = 1 s at 50 ms) than the default 3: the daemons are
# started one after the other, under load seconds apart at worst, and each must have heard every
# peer before the first assignment, else an early starter could campaign for two slots.
DISCOVERY=${DISCOVERY:-20}
# Lease (and peer timeout) in heartbeats: 5 (250 ms at 50 ms) instead of the default 2.5, so that a
# daemon starved for ~100 ms on the shared 2-core machine (ctest runs two tests at once) does not
# lose its addresses and reshuffle the layout the test expects.
LEASE=${LEASE:-5}

# POOL_IPV6=1: one pool of both families (issue 17): IP1 stays IPv4, IP2 and IP3 are IPv6 (the
# lab's ULA fd78::/64, lab.sh up -6); the responders also answer on IPv6.
pool_lab_up() {
  if [[ ${POOL_IPV6:-0} == 1 ]]; then
    LAB_UP_ARGS="-6"
    RESPONDER_ARGS="--ipv6"
  fi
  lab_up
  local net=${VIP%.*}
  IP1=$net.100 IP2=$net.101 IP3=$net.102
  if [[ ${POOL_IPV6:-0} == 1 ]]; then IP2=fd78::101 IP3=fd78::102; fi
  SLOT_IPS=("$IP1" "$IP3" "$IP2")   # slot i = SLOT_IPS[i]
  declare -gA IP_NAME=(["$IP1"]=IP1 ["$IP2"]=IP2 ["$IP3"]=IP3)
  : > "$WORK/dead"
}

# prefixed IP: the address with the lab's prefix length (/24 for IPv4, /64 for IPv6).
prefixed() { if [[ $1 == *:* ]]; then echo "$1/64"; else echo "$1/24"; fi; }

# write_pool_config hK [extra yaml lines]
write_pool_config() {
  local h=$1 k=${1#h} i
  {
    echo "node_id: $k"
    echo "interface: eth0"
    echo "service_addresses: [$(prefixed "${SLOT_IPS[0]}"), $(prefixed "${SLOT_IPS[1]}"), $(prefixed "${SLOT_IPS[2]}")]"
    echo "key_file: $WORK/cluster.key"
    echo "bind_host: $("$LAB" cip -p "$PFX" "$h")"
    echo "status_socket: $WORK/$h.sock"
    echo "incarnation_file: $WORK/$h.incarnation"
    echo "state_file: $WORK/$h.state"
    echo "timing: {heartbeat: $HB, lease: $LEASE, peer_timeout: $LEASE, discovery: $DISCOVERY}"
    echo "peers:"
    for (( i = 1; i <= NHOSTS; i++ )); do
      echo "  - {id: $i, priority: ${PRIO[h$i]}, capacity: ${CAP[h$i]}, address: \"$("$LAB" cip -p "$PFX" "h$i"):$DPORT\"}"
    done
    if [[ $# -ge 2 ]]; then printf "%s\n" "${@:2}"; fi
  } > "$WORK/$h.yaml"
}

# Reads the whole listing first: `ip ... | grep -q` under pipefail fails when grep exits early
# and ip dies of SIGPIPE (more likely with several addresses), which would read as "not held".
has_ip() {
  local out
  out=$(ip -n "$(ns "$1")" -o addr show dev eth0 2>/dev/null) || return 1
  [[ $out == *" $2/"* ]]
}
# snapshot [-r]: reads every live host's addresses once (one `ip` per host, in host order, or
# reversed with -r) into SNAP[ip]="hA hB ..." (hosts in $WORK/dead are cut off: ignored). Cheap on
# purpose: the machine is shared and a starved daemon loses its lease.
snapshot() {
  declare -gA SNAP=()
  local order=() h a i dead=""
  [[ -f $WORK/dead ]] && dead=$'\n'$(<"$WORK/dead")$'\n'
  for (( i = 1; i <= NHOSTS; i++ )); do order+=("h$i"); done
  if [[ ${1:-} == -r ]]; then order=(); for (( i = NHOSTS; i >= 1; i-- )); do order+=("h$i"); done; fi
  for h in "${order[@]}"; do
    [[ $dead == *$'\n'$h$'\n'* ]] && continue
    # awk reads the whole listing: no SIGPIPE for ip (see has_ip)
    for a in $(ip -n "$(ns "$h")" -o addr show dev eth0 2>/dev/null | awk '{print $4}'); do
      SNAP[${a%/*}]+="$h "
    done
  done
}
# layout: "IP1=h1 IP3=h3 IP2=h2" in slot order ("-" = no live holder, "hA,hB" = two).
layout() {
  local ip out=() h
  snapshot
  for ip in "${SLOT_IPS[@]}"; do
    h=${SNAP[$ip]:-}; h=${h% }; h=${h// /,}
    out+=("${IP_NAME[$ip]}=${h:--}")
  done
  echo "${out[*]}"
}
layout_is() { [[ $(layout) == "$1" ]]; }

# Every 20 ms: any address with two live holders (confirmed by a second reading in the opposite
# host order, see start_poller in takeover_lib.sh) is appended to $WORK/double. Bounded life.
start_pool_poller() {
  (
    end=$(( ${EPOCHREALTIME/./} + 200000000 ))
    while (( ${EPOCHREALTIME/./} < end )); do
      snapshot
      for ip in "${SLOT_IPS[@]}"; do
        h=${SNAP[$ip]:-}
        if [[ ${h% } == *" "* ]]; then
          snapshot -r
          h2=${SNAP[$ip]:-}
          if [[ ${h2% } == *" "* ]]; then echo "$EPOCHREALTIME $ip $h / $h2" >> "$WORK/double"; fi
        fi
      done
      sleep 0.02
    done
  ) &
  BG_PIDS+=($!)
}

# revive_pool_host hK: as after a reboot: every address the dead daemon left must be gone (valid_lft
# backstop), then the ports come back up and monitor, responder and daemon start again.
revive_pool_host() {
  local ip
  for ip in "${SLOT_IPS[@]}"; do
    wait_until 10 bash -c "! ip -n $(ns "$1") -o addr show dev eth0 | grep -q ' $ip/'" \
      || fail "$ip left on crashed $1 did not expire (valid_lft backstop)"
  done
  "$LAB" restore -p "$PFX" "$1"
  echo "$1=$EPOCHREALTIME" >> "$WORK/revived"
  sed -i "/^$1\$/d" "$WORK/dead"
  start_host "$1"
}

# Overlap check on the kernel's own timestamps (`ip -ts monitor address` in every host): per
# address, the hold intervals of different hosts must not overlap. A crashed host holds nothing
# from its crash (its ports are down; the monitor died with it) until it is revived.
assert_pool_never_two_holders() {
  if [[ -s $WORK/double ]]; then
    fail "two hosts held an address at once (ip addr polling): $(head -3 "$WORK/double")"
  fi
  local times=() u ip bad=0
  if [[ -f $WORK/until ]]; then while read -r u; do times+=(--until "$u"); done < "$WORK/until"; fi
  if [[ -f $WORK/revived ]]; then while read -r u; do times+=(--revived "$u"); done < "$WORK/revived"; fi
  for ip in "${SLOT_IPS[@]}"; do
    printf '%s: ' "$ip"
    "$PY" "$HERE/takeover_analyze.py" single-holder "$ip" "${times[@]}" "$WORK"/mon-h*.log || bad=1
  done
  (( bad == 0 )) || fail "ip monitor shows two holders of an address at once"
}

# flaps: per live server, how often its daemon took and released an address (for failure messages:
# releases without a crash or drain mean a lease lapsed, e.g. a daemon starved of CPU).
flaps() {
  local h out=()
  for h in h1 h2 h3; do
    grep -qx "$h" "$WORK/dead" 2>/dev/null && continue
    out+=("$h $(pool_status "$h" '"takeovers %d releases %d" % (j["counters"]["takeovers"], j["counters"]["releases"])' 2>/dev/null)")
  done
  echo "(daemons: ${out[*]})"
}

# pool_status hK PYTHON-EXPR: evaluates the expression on the status JSON `j` of hK's daemon.
pool_status() { status "$1" | "$PY" -c "import json,sys; j=json.load(sys.stdin); print($2)"; }
