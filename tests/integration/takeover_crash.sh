#!/usr/bin/env bash
# Lab test (a): the host holding the service address crashes (its bridge port goes down and every
# process on it is SIGKILLed). Another host must take the address over, the client must be
# answered again, and at no instant may two live hosts hold the address. Prints the outage.
TEST_NAME=takeover_crash TEST_TAG=a
. "$(dirname "$0")/takeover_lib.sh"

lab_up
for h in h1 h2 h3; do write_config "$h"; done
for h in h1 h2 h3; do start_host "$h"; done
start_poller
wait_until 15 sole_holder_is h1 || fail "h1 (highest priority) did not become the sole holder: '$(holders)'"
log "h1 holds $VIP (epoch $(status_field h1 'j["epoch"]'))"
start_prober
wait_until 15 test -s "$WORK/steady" || fail "client never saw 1 s of steady answers"
[[ $(cat "$WORK/steady") == h1 ]] || fail "steady answers from $(cat "$WORK/steady"), not h1"

T=$(crash_host h1)
log "crashed h1"
wait_until 15 any_sole_holder || fail "nobody took $VIP over after the crash: '$(holders)'"
NEW=$(holders)
log "$NEW took over (epoch $(status_field "$NEW" 'j["epoch"]'))"
[[ $NEW == h2 ]] || fail "expected h2 (next priority) to take over, got $NEW"
wait_until 10 grep -q " OK $NEW " "$WORK/client.log" || fail "client never answered by $NEW"
sleep 1   # watch for flapping
stop_prober
OUT=$("$PY" "$HERE/takeover_analyze.py" outage "$WORK/client.log" "$T" h1 "$NEW") || fail "$OUT"
TAKE=$("$PY" "$HERE/takeover_analyze.py" first-ok "$WORK/client.log" "$T" "$NEW")
log "client outage (last h1 answer -> first $NEW answer): $OUT ms; crash -> first $NEW answer: $TAKE ms"
[[ $(holders) == "$NEW" ]] || fail "holder changed after the take-over: '$(holders)'"
if grep -q " OK h1 " <(awk -v t="$(cat "$WORK/crashed-h1")" '$2 > t' "$WORK/client.log"); then
  fail "h1 answered a request sent after it was cut off"
fi
assert_never_two_holders
log "PASS"
