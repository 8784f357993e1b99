#!/usr/bin/env bash
# Lab test: the paper's property 2 down to the last host (issue 17). Five hosts h1..h5 serve the
# address, h6 is a witness (grants only). Heartbeat 50 ms, shrink_after 20 heartbeats (1 s). The
# holder crashes four times in a row, each time after the survivors agreed on the smaller group
# (6 -> 5 -> 4 -> 3 -> 2 members); after every crash the client is answered again, and after the
# fourth the last host serves with the witness. Then the four come back one by one: each is added
# to the group again and the address does not move (only a failure moves it). Never two holders
# (ip polling, time-stamped monitor logs). Prints, per crash, the client outage and the time
# from the crash to the smaller group being agreed (from the new holder's log).
TEST_NAME=takeover_lastman TEST_TAG=l
. "$(dirname "$0")/takeover_lib.sh"
NHOSTS=6
WITNESSES="h6"
PRIO[h4]=40
PRIO[h5]=30
PRIO[h6]=10
SHRINK_AFTER=${SHRINK_AFTER:-20}
DISCOVERY=${DISCOVERY:-20}   # 1 s: all daemons heard before the first election (h1 must win)

lab_up
for (( i = 1; i <= NHOSTS; i++ )); do write_config "h$i"; done
for (( i = 1; i <= 5; i++ )); do start_host "h$i"; done
start_monitor h6
start_daemon h6
start_poller
wait_until 15 sole_holder_is h1 || fail "h1 (highest priority) did not become the sole holder: '$(holders)'"
wait_until 10 members_are "[1, 2, 3, 4, 5, 6]" h1 h6 || fail "initial membership is not the peer list"
start_prober
wait_until 15 test -s "$WORK/steady" || fail "client never saw 1 s of steady answers"

SURVIVORS=(h1 h2 h3 h4 h5 h6)
CRASHED=()
GAPS=() AGREED=()
for round in 1 2 3 4; do
  OLD=$(holders)
  [[ -n $OLD && $OLD != *" "* ]] || fail "round $round: no single holder before the crash: '$OLD'"
  T=$(crash_host "$OLD")
  CRASHED+=("$OLD")
  SURVIVORS=("${SURVIVORS[@]/$OLD}")
  read -r -a SURVIVORS <<< "${SURVIVORS[*]}"
  log "round $round: crashed holder $OLD; survivors ${SURVIVORS[*]}"
  wait_until 15 any_sole_holder || fail "round $round: nobody took $VIP over after $OLD crashed: '$(holders)'"
  NEW=$(holders)
  [[ " ${SURVIVORS[*]} " == *" $NEW "* && $NEW != h6 ]] || fail "round $round: holder $NEW is not a surviving host"
  wait_until 10 answered_since "$T" "$NEW" || fail "round $round: client never answered by $NEW"
  IDS=$(printf '%s\n' "${SURVIVORS[@]#h}" | paste -sd, | sed 's/,/, /g')
  wait_until 15 members_are "[$IDS]" "${SURVIVORS[@]}" \
    || fail "round $round: survivors did not agree on [$IDS]: $(status_field "$NEW" 'j.get("membership")')"
  GAPS+=("$("$PY" "$HERE/takeover_analyze.py" gap "$WORK/client.log" "$T" "$NEW")") || fail "round $round: no outage figure"
  AGREED+=("$("$PY" "$HERE/takeover_analyze.py" agreed "$WORK/$NEW.log" "$T" "${IDS//, /,}")") \
    || fail "round $round: $NEW's log has no committed [$IDS]"
  [[ $(holders) == "$NEW" ]] || fail "round $round: the address moved while the group changed: '$(holders)'"
  log "round $round: $NEW serves (epoch $(status_field "$NEW" 'j["epoch"]')); client outage ${GAPS[-1]} ms; group [$IDS] agreed ${AGREED[-1]} ms after the crash"
done
LAST=$NEW
members_are "[${LAST#h}, 6]" "$LAST" h6 || fail "the last host and the witness are not the group"
sleep 1
[[ $(holders) == "$LAST" ]] || fail "the last host lost the address: '$(holders)'"
TL=$EPOCHREALTIME
wait_until 5 answered_since "$TL" "$LAST" || fail "the last host does not answer the client"
log "the last host $LAST serves with the witness"

# Back one by one: each is added to the group again; the address stays on $LAST.
MEMBERS=("${LAST#h}" 6)
for h in "${CRASHED[@]}"; do
  revive_host "$h"
  start_host "$h"
  MEMBERS+=("${h#h}")
  IDS=$(printf '%s\n' "${MEMBERS[@]}" | sort -n | paste -sd, | sed 's/,/, /g')
  wait_until 20 members_are "[$IDS]" "$LAST" "$h" || fail "$h was not added again: $(status_field "$LAST" 'j["membership"]')"
  [[ $(holders) == "$LAST" ]] || fail "the address moved when $h came back: '$(holders)'"
  log "$h back: group [$IDS], $LAST still serves"
done
TEND=$EPOCHREALTIME
wait_until 5 answered_since "$TEND" "$LAST" || fail "client not answered by $LAST at the end"
stop_prober
grep -q " $VIP/" "$WORK/mon-h6.log" && fail "the witness had the service address at some point"
assert_never_two_holders
log "RESULT last host standing: client outage per crash ${GAPS[*]} ms; failure -> smaller group agreed ${AGREED[*]} ms (shrink_after $SHRINK_AFTER x $HB)"
log "PASS"
