#!/usr/bin/env bash
# Lab test (g): serial host failures with group shrink. Five hosts, timing.shrink_after 20
# heartbeats (1 s at HB 50 ms). The holder crashes three times in a row, each crash after the
# survivors have shrunk the group to exclude the previous one (status JSON "membership"):
# 5 -> 4 -> 3 -> 2 members. A static 5-host group stops after the third crash (2 of 5 is no
# majority); with shrink the address must still be held by one of the two survivors and answer
# the client, and at no instant may two live hosts hold it. Each daemon keeps its state file
# (the membership) as the core requires.
TEST_NAME=takeover_serial TEST_TAG=g
. "$(dirname "$0")/takeover_lib.sh"
NHOSTS=5
PRIO[h4]=40
PRIO[h5]=30
# Heartbeats. SHRINK_AFTER=0 is the control (static group): it must fail in round 3.
SHRINK_AFTER=${SHRINK_AFTER:-20}

lab_up
for (( i = 1; i <= NHOSTS; i++ )); do write_config "h$i"; done
for (( i = 1; i <= NHOSTS; i++ )); do start_host "h$i"; done
start_poller
wait_until 15 sole_holder_is h1 || fail "h1 (highest priority) did not become the sole holder: '$(holders)'"
wait_until 10 members_are "[1, 2, 3, 4, 5]" h1 h2 h3 h4 h5 || fail "initial membership is not the peer list"
start_prober
wait_until 15 test -s "$WORK/steady" || fail "client never saw 1 s of steady answers"

SURVIVORS=(h1 h2 h3 h4 h5)
for round in 1 2 3; do
  OLD=$(holders)
  [[ -n $OLD && $OLD != *" "* ]] || fail "round $round: no single holder before the crash: '$OLD'"
  T=$(crash_host "$OLD")
  SURVIVORS=("${SURVIVORS[@]/$OLD}")
  read -r -a SURVIVORS <<< "${SURVIVORS[*]}"
  log "round $round: crashed holder $OLD; survivors ${SURVIVORS[*]}"
  wait_until 15 any_sole_holder || fail "round $round: nobody took $VIP over after $OLD crashed: '$(holders)'"
  NEW=$(holders)
  [[ " ${SURVIVORS[*]} " == *" $NEW "* ]] || fail "round $round: holder $NEW is not a survivor"
  wait_until 10 answered_since "$T" "$NEW" || fail "round $round: client never answered by $NEW"
  IDS=$(printf '%s\n' "${SURVIVORS[@]#h}" | paste -sd, | sed 's/,/, /g')
  if (( SHRINK_AFTER == 0 )); then sleep 1.5; continue; fi   # control run: static group
  T0=$EPOCHREALTIME
  wait_until 15 members_are "[$IDS]" "${SURVIVORS[@]}" \
    || fail "round $round: survivors did not shrink the group to [$IDS]: $(status_field "$NEW" 'j.get("membership")')"
  log "round $round: $NEW holds $VIP (epoch $(status_field "$NEW" 'j["epoch"]')); group shrunk to [$IDS] $(( (${EPOCHREALTIME/./} - ${T0/./}) / 1000 )) ms after the take-over"
done

sleep 1   # watch for flapping
[[ $(holders) == "$NEW" ]] || fail "holder changed after the last take-over: '$(holders)' (was $NEW)"
TEND=$EPOCHREALTIME
wait_until 5 answered_since "$TEND" "$NEW" || fail "client not answered by $NEW at the end"
stop_prober
for h in "${SURVIVORS[@]}"; do
  [[ -s $WORK/$h.state ]] || fail "$h wrote no state file"
done
assert_never_two_holders
log "PASS"
