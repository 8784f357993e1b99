#!/usr/bin/env bash
# Lab test (c): three daemons started at the same instant elect the highest priority (h1); after
# h1 crashes and h2 takes over, h1 comes back (port up, fresh daemon, as after a reboot) and must
# NOT take the address back: only a failure moves it (no preempt). The stale address the killed
# daemon left on h1 must disappear by itself (kernel valid_lft backstop) before h1 is revived.
# Also: a stale labelled address left on h3 by an "earlier run" is removed when its daemon starts.
TEST_NAME=takeover_priority TEST_TAG=c
. "$(dirname "$0")/takeover_lib.sh"

lab_up
for h in h1 h2 h3; do write_config "$h"; start_monitor "$h"; start_responder "$h"; done
# A leftover of an earlier run on the lowest-priority host (our label, long lifetime).
ip -n "$(ns h3)" addr add "$VIP/24" dev eth0 label eth0:bt valid_lft 300 preferred_lft 300
start_poller
# Simultaneous start: all three daemons are launched back to back, within a few milliseconds.
for h in h3 h2 h1; do start_daemon "$h"; done
wait_until 10 grep -q "removed stale address $VIP/24" "$WORK/h3.log" \
  || fail "h3 did not remove the stale address at start-up"
wait_until 15 any_sole_holder || fail "no single holder after a simultaneous start: '$(holders)'"
[[ $(holders) == h1 ]] || fail "simultaneous start elected $(holders), not the highest priority h1"
for h in h1 h2 h3; do
  wait_until 5 bash -c "[[ \$('$TAKEOVERD' status --socket '$WORK/$h.sock' --json | '$PY' -c 'import json,sys; print(json.load(sys.stdin)[\"holder\"])') == 1 ]]" \
    || fail "$h does not report h1 as holder"
done
E1=$(status_field h1 'j["epoch"]')
log "simultaneous start: h1 holds (epoch $E1), all agree"

crash_host h1 >/dev/null
wait_until 15 sole_holder_is h2 || fail "h2 did not take over after h1 crashed: '$(holders)'"
E2=$(status_field h2 'j["epoch"]')
(( E2 > E1 )) || fail "epoch did not grow on take-over ($E1 -> $E2)"
log "h1 crashed; h2 holds (epoch $E2); waiting for the address left on h1 to expire"

revive_host h1
start_monitor h1; start_responder h1; start_daemon h1
wait_until 10 bash -c "'$TAKEOVERD' status --socket '$WORK/h1.sock' --json 2>/dev/null | grep -q '\"role\": *\"backup\"\\|\"role\":\"backup\"'" \
  || fail "restarted h1 never settled as backup: $(status h1 2>&1 | head -c 300)"
sleep 2   # 40 heartbeats: plenty of time for a wrong preemption
[[ $(holders) == h2 ]] || fail "restarted higher-priority h1 took the address: holders '$(holders)'"
[[ $(status_field h2 'j["epoch"]') == "$E2" ]] || fail "epoch changed although no failure happened"
[[ $(status_field h1 'j["holder"]') == 2 ]] || fail "h1 does not see h2 as holder"
log "restarted h1 is backup; h2 keeps the address (epoch $E2)"
assert_never_two_holders
log "PASS"
