#!/usr/bin/env bash
# Lab test (e): planned hand-overs. (1) The holder's health check fails: it drains, the next host
# takes over, the old holder's removal precedes the new holder's add, and the client outage is
# well below a crash fail-over. (2) Healthy again, it campaigns again but, without preempt, the
# address stays where it is. (3) SIGTERM to the holder's daemon: graceful hand-over (remove,
# release, exit 0), the next host takes over in about one round trip.
TEST_NAME=takeover_handover TEST_TAG=e
. "$(dirname "$0")/takeover_lib.sh"
MAX_HANDOVER_MS=${MAX_HANDOVER_MS:-100}   # a crash fail-over at HB 50 ms takes ~120-250 ms

lab_up
for h in h1 h2 h3; do
  write_config "$h" "health_check: {command: \"test ! -e $WORK/$h.sick\", period: 50ms, timeout: 500ms, fall: 2, rise: 2}"
done
for h in h1 h2 h3; do start_host "$h"; done
start_poller
wait_until 15 sole_holder_is h1 || fail "h1 did not become the sole holder: '$(holders)'"
start_prober
wait_until 15 test -s "$WORK/steady" || fail "client never saw 1 s of steady answers"

# (1) health check fails on h1 -> drain -> h2
T=$EPOCHREALTIME
touch "$WORK/h1.sick"
wait_until 10 sole_holder_is h2 || fail "h2 did not take over after h1 turned unhealthy: '$(holders)'"
ORDER=$("$PY" "$HERE/takeover_analyze.py" order "$VIP" "$T" "$WORK/mon-h1.log" "$WORK/mon-h2.log") || fail "$ORDER"
wait_until 5 grep -q " OK h2 " "$WORK/client.log" || fail "client never answered by h2"
sleep 0.3
OUT1=$("$PY" "$HERE/takeover_analyze.py" outage "$WORK/client.log" "$T" h1 h2) || fail "$OUT1"
log "drain on failed health check: $ORDER; client outage $OUT1 ms"
[[ $(status_field h1 'j["role"]') == drained ]] || fail "unhealthy h1 is not 'drained': $(status_field h1 'j["role"]')"
awk -v g="$OUT1" -v m="$MAX_HANDOVER_MS" 'BEGIN { exit !(g <= m) }' || fail "drain outage $OUT1 ms > $MAX_HANDOVER_MS ms"

# (2) h1 healthy again -> campaigns again, but h2 keeps the address (no preempt)
rm -f "$WORK/h1.sick"
wait_until 10 bash -c "[[ \$('$TAKEOVERD' status --socket '$WORK/h1.sock' --json | '$PY' -c 'import json,sys; print(json.load(sys.stdin)[\"role\"])') == backup ]]" \
  || fail "h1 did not come back as backup after recovering"
sleep 1
[[ $(holders) == h2 ]] || fail "address moved after h1 recovered: '$(holders)'"
log "h1 healthy again: backup; h2 keeps the address"

# (3) SIGTERM to h2's daemon -> graceful hand-over to h1 (highest priority)
D2=""
for p in $(ip netns pids "$(ns h2)"); do
  [[ $(cat "/proc/$p/comm" 2>/dev/null) == baton-takeove* ]] && D2=$p
done
[[ -n $D2 ]] || fail "no baton-takeoverd process in h2"
T=$EPOCHREALTIME
kill -TERM "$D2"
wait_until 10 sole_holder_is h1 || fail "h1 did not take over after h2's SIGTERM: '$(holders)'"
ORDER=$("$PY" "$HERE/takeover_analyze.py" order "$VIP" "$T" "$WORK/mon-h2.log" "$WORK/mon-h1.log") || fail "$ORDER"
wait_until 3 bash -c "! kill -0 $D2 2>/dev/null" || fail "h2's daemon did not exit after SIGTERM"
grep -q "stopped (address held: false)" "$WORK/h2.log" || fail "h2's daemon did not log a clean stop"
# A function, not `grep <(awk ...)`: a process substitution is read once, so a retry would never
# see lines the client logs later.
answered_by_h1_since() { awk -v t="$1" '$2 >= t' "$WORK/client.log" | grep -q " OK h1 "; }
wait_until 5 answered_by_h1_since "$T" || fail "client never answered by h1"
sleep 0.3
stop_prober
OUT3=$("$PY" "$HERE/takeover_analyze.py" outage "$WORK/client.log" "$T" h2 h1) || fail "$OUT3"
log "SIGTERM hand-over: $ORDER; client outage $OUT3 ms"
awk -v g="$OUT3" -v m="$MAX_HANDOVER_MS" 'BEGIN { exit !(g <= m) }' || fail "SIGTERM hand-over outage $OUT3 ms > $MAX_HANDOVER_MS ms"
assert_never_two_holders
log "PASS"
