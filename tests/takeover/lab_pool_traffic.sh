#!/usr/bin/env bash
# Lab check of the lease traffic (issue 15; docs/takeover.md "Lease traffic"): NHOSTS
# baton-takeoverd hosts (POOL_HOSTS, default 8) share NSLOTS addresses (default 128) at heartbeat HB (default
# 10ms) in network namespaces (scripts/lab.sh, cluster network on eth1). Once every address is held
# it counts what each host sends on its cluster link for MEASURE_SECONDS (default 5: datagrams per round,
# bytes per datagram incl. the transport's 72 B and the 42 B of Ethernet/IP/UDP headers, Mbit/s),
# then crashes the host holding the most addresses and times until every address is held again.
# Root only; not a ctest (prints figures, asserts only that the pool forms and recovers). Run:
#   TAKEOVERD=build-ci/takeover/daemon/baton-takeoverd RESPONDER=... PROBER=... \
#     tests/takeover/lab_pool_traffic.sh
TEST_NAME=takeover_traffic TEST_TAG=t
. "$(dirname "$0")/../integration/takeover_lib.sh"
NHOSTS=${POOL_HOSTS:-8}  # takeover_lib.sh set 3
NSLOTS=${NSLOTS:-128}
HB=${HB:-10ms}
SECONDS_MEASURED=${MEASURE_SECONDS:-5}
(( NSLOTS <= 140 )) || fail "at most 140 addresses (.100-.239 of the lab's /24)"
# Capacity: the survivors of one crash can hold every address.
CAPACITY=$(( (NSLOTS + NHOSTS - 2) / (NHOSTS - 1) ))
lab_up
NET=${VIP%.*}
ADDRS=()
for (( s = 0; s < NSLOTS; s++ )); do ADDRS+=("$NET.$((100 + s))"); done
list=$(printf '%s/24, ' "${ADDRS[@]}")
for (( i = 1; i <= NHOSTS; i++ )); do
  {
    echo "node_id: $i"
    echo "interface: eth0"
    echo "service_addresses: [${list%, }]"
    echo "key_file: $WORK/cluster.key"
    echo "bind_host: $("$LAB" cip -p "$PFX" "h$i")"
    echo "status_socket: $WORK/h$i.sock"
    echo "incarnation_file: $WORK/h$i.incarnation"
    echo "state_file: $WORK/h$i.state"
    # Lease 5 heartbeats and 100 heartbeats of start-up quiet: daemons on a shared, loaded
    # machine start one after the other and are starved at times (takeover_pool_lib.sh).
    echo "timing: {heartbeat: $HB, lease: 5, peer_timeout: 5, discovery: 100}"
    echo "peers:"
    for (( j = 1; j <= NHOSTS; j++ )); do
      echo "  - {id: $j, priority: $(( 200 - j )), capacity: $CAPACITY, address: \"$("$LAB" cip -p "$PFX" "h$j"):$DPORT\"}"
    done
  } > "$WORK/h$i.yaml"
done
for (( i = 1; i <= NHOSTS; i++ )); do start_daemon "h$i"; done

DEAD=""
held() {   # number of distinct pool addresses on the live hosts' eth0
  local i
  for (( i = 1; i <= NHOSTS; i++ )); do
    [[ " $DEAD " == *" h$i "* ]] && continue
    ip -n "$(ns "h$i")" -4 -o addr show dev eth0 2>/dev/null || true
  done | awk -v net="$NET." '{ split($4, a, "/"); if (index(a[1], net) == 1) { n = substr(a[1], length(net) + 1) + 0; if (n >= 100 && n < 240) s[n] = 1 } } END { print length(s) }'
}
all_held() { [[ $(held) -eq $NSLOTS ]]; }
wait_until 60 all_held || fail "not all $NSLOTS addresses held after 60 s ($(held) held)"
log "all $NSLOTS addresses held"
sleep 2
tx() {   # "bytes packets" sent on hK's cluster link
  ip -n "$(ns "$1")" -s -j link show eth1 | "$PY" -c 'import json,sys; s=json.load(sys.stdin)[0]["stats64"]["tx"]; print(s["bytes"], s["packets"])'
}
declare -A B0 P0
for (( i = 1; i <= NHOSTS; i++ )); do read -r B0[h$i] P0[h$i] < <(tx "h$i"); done
start=${EPOCHREALTIME/./}
sleep "$SECONDS_MEASURED"
elapsed_us=$(( ${EPOCHREALTIME/./} - start ))
hb_us=$(( ${HB%ms} * 1000 ))
for (( i = 1; i <= NHOSTS; i++ )); do
  read -r b p < <(tx "h$i")
  db=$(( b - B0[h$i] )) dp=$(( p - P0[h$i] ))
  "$PY" -c "print('h$i: %.1f datagrams/round, %.0f B/datagram on the wire (Ethernet+IP+UDP 42 B + transport 72 B + payload), %.2f Mbit/s' % ($dp * $hb_us / $elapsed_us, $db / max($dp, 1), $db * 8 / $elapsed_us))"
done
# Crash the host holding the most addresses.
most="" n_most=-1
for (( i = 1; i <= NHOSTS; i++ )); do
  n=$(ip -n "$(ns "h$i")" -4 -o addr show dev eth0 | grep -c " $NET\.1[0-9][0-9]/\| $NET\.2[0-3][0-9]/" || true)
  (( n > n_most )) && { most=h$i; n_most=$n; }
done
t0=${EPOCHREALTIME/./}
"$LAB" crash -p "$PFX" "$most" >/dev/null
DEAD=$most
wait_until 30 all_held || fail "the addresses of $most were not re-served within 30 s"
log "crash of $most ($n_most addresses): all $NSLOTS held again after $(( (${EPOCHREALTIME/./} - t0) / 1000 )) ms (poll every 10 ms, reads included)"
FAILED=0
