#!/usr/bin/env bash
# Lab test: a pair of hosts plus a witness (issue 17, "two-host deployments"). h1 and h2 serve the
# address; h3 runs `baton-takeoverd` with `witness: true` (grants only: no interface, no address,
# no responder). Heartbeat 50 ms, shrink_after 20 heartbeats (1 s). Checked in the kernel (ip
# polling every 10 ms, time-stamped `ip monitor` logs) and by a client probing every 2 ms:
#   (a) the pair's own link is cut (lab.sh split h1 h2: both still reach the witness) for 3 s:
#       exactly one host serves throughout -- the holder, h1 -- and nothing moves when it heals;
#   (b) h1 (holder) crashes: h2 serves; the group shrinks to {2,3}; h1 comes back and is added
#       again, the address stays on h2;
#   (c) h2 (now holder) crashes: h1 serves; back to {1,3}, then h2 returns;
#   (d) the holder is cut off from both others (its cluster link goes down; the client still
#       reaches it): the other serves and the cut-off host removes the address.
# Never two holders; the witness never has the address. Also checks the status socket's mode
# (0600) and the metrics endpoint (metrics_listen) on a host and on the witness. Prints the client
# outage of each crash and the time from each crash to the smaller group being agreed.
TEST_NAME=takeover_witness TEST_TAG=w
. "$(dirname "$0")/takeover_lib.sh"
NHOSTS=3
WITNESSES="h3"
PRIO[h3]=10
SHRINK_AFTER=${SHRINK_AFTER:-20}
DISCOVERY=${DISCOVERY:-20}   # 1 s: all daemons heard before the first election (h1 must win)
METRICS="metrics_listen: \"127.0.0.1:9464\""

metrics() { "$LAB" exec -p "$PFX" "$1" curl -sf --max-time 2 http://127.0.0.1:9464/metrics; }

lab_up
write_config h1 "$METRICS"
write_config h2
write_config h3 "$METRICS"
start_host h1
start_host h2
start_monitor h3
start_daemon h3
start_poller
wait_until 15 sole_holder_is h1 || fail "h1 (highest priority) did not become the sole holder: '$(holders)'"
wait_until 10 members_are "[1, 2, 3]" h1 h2 h3 || fail "initial membership is not the peer list"
start_prober
wait_until 15 test -s "$WORK/steady" || fail "client never saw 1 s of steady answers"

# The witness is a witness; the status sockets are owner-only; the metrics are served.
[[ $(status_field h3 'j["role"]') == witness ]] || fail "h3's role is $(status_field h3 'j["role"]'), not witness"
for h in h1 h2 h3; do
  mode=$(stat -c %a "$WORK/$h.sock")
  [[ $mode == 600 ]] || fail "$h's status socket has mode $mode, not 600"
done
m1=$(metrics h1) || fail "no metrics from h1 on 127.0.0.1:9464"
grep -qx "baton_takeover_slot_held{slot=\"0\",address=\"$VIP/24\"} 1" <<< "$m1" \
  || fail "h1's metrics do not show slot 0 held: $(grep slot_held <<< "$m1")"
grep -q '^baton_takeover_datagrams_rejected_total{reason="bad_mac"} 0$' <<< "$m1" \
  || fail "h1's metrics lack the transport's reject counters"
m3=$(metrics h3) || fail "no metrics from the witness"
grep -qx "baton_takeover_slot_held{slot=\"0\",address=\"$VIP/24\"} 0" <<< "$m3" || fail "witness metrics: $m3"
grep -qx "baton_takeover_capacity 0" <<< "$m3" || fail "the witness reports a capacity"
log "witness h3 up (role witness, capacity 0); status sockets 0600; metrics served"

# (a) The pair's link is cut; both hosts still reach the witness.
"$LAB" split -p "$PFX" h1 h2
TA=$EPOCHREALTIME
log "(a) split h1 | h2 (both reach the witness)"
end=$(( ${TA/./} + 3000000 ))
while (( ${EPOCHREALTIME/./} < end )); do
  h=$(holders)
  [[ $h == h1 ]] || fail "(a) during the split the holders are '$h', expected h1 alone"
  sleep 0.1
done
members_are "[1, 2, 3]" h1 h3 || fail "(a) the group shrank although the witness hears both: $(status_field h1 'j["membership"]')"
"$LAB" heal -p "$PFX"
sleep 1
[[ $(holders) == h1 ]] || fail "(a) after the heal the holders are '$(holders)'"
answered_since "$TA" h2 && fail "(a) h2 answered the client during or after the split"
log "(a) h1 served alone for 3 s of split and after the heal; group stayed [1, 2, 3]"

# (b) h1 (holder) crashes: h2 serves, the group shrinks to {2, 3}; h1 returns and is added again.
T=$(crash_host h1)
wait_until 15 sole_holder_is h2 || fail "(b) h2 did not take over after h1 crashed: '$(holders)'"
wait_until 10 answered_since "$T" h2 || fail "(b) client never answered by h2"
wait_until 15 members_are "[2, 3]" h2 h3 || fail "(b) the group did not shrink to [2, 3]: $(status_field h2 'j["membership"]')"
GAP_B=$("$PY" "$HERE/takeover_analyze.py" gap "$WORK/client.log" "$T" h2) || fail "$GAP_B"
AGREE_B=$("$PY" "$HERE/takeover_analyze.py" agreed "$WORK/h2.log" "$T" 2,3) || fail "$AGREE_B"
log "(b) crash of h1: client outage $GAP_B ms; group [2,3] agreed $AGREE_B ms after the crash"
revive_host h1
start_host h1
wait_until 20 members_are "[1, 2, 3]" h1 h2 h3 || fail "(b) h1 was not added again: $(status_field h2 'j["membership"]')"
[[ $(holders) == h2 ]] || fail "(b) the address moved when h1 came back: '$(holders)'"
log "(b) h1 back and added again; h2 still serves"

# (c) h2 (holder) crashes: h1 serves; h2 returns.
T=$(crash_host h2)
wait_until 15 sole_holder_is h1 || fail "(c) h1 did not take over after h2 crashed: '$(holders)'"
wait_until 10 answered_since "$T" h1 || fail "(c) client never answered by h1"
wait_until 15 members_are "[1, 3]" h1 h3 || fail "(c) the group did not shrink to [1, 3]"
GAP_C=$("$PY" "$HERE/takeover_analyze.py" gap "$WORK/client.log" "$T" h1) || fail "$GAP_C"
AGREE_C=$("$PY" "$HERE/takeover_analyze.py" agreed "$WORK/h1.log" "$T" 1,3) || fail "$AGREE_C"
log "(c) crash of h2: client outage $GAP_C ms; group [1,3] agreed $AGREE_C ms after the crash"
revive_host h2
start_host h2
wait_until 20 members_are "[1, 2, 3]" h1 h2 h3 || fail "(c) h2 was not added again"
[[ $(holders) == h1 ]] || fail "(c) the address moved when h2 came back: '$(holders)'"

# (d) The holder (h1) is cut off from h2 and the witness; the client still reaches it.
"$LAB" cut -p "$PFX" h1
T=$EPOCHREALTIME
log "(d) cut h1's cluster link"
wait_until 15 sole_holder_is h2 || fail "(d) h2 did not take over from the cut-off h1: '$(holders)'"
wait_until 10 answered_since "$T" h2 || fail "(d) client never answered by h2"
GAP_D=$("$PY" "$HERE/takeover_analyze.py" gap "$WORK/client.log" "$T" h2) || fail "$GAP_D"
sleep 1
[[ $(holders) == h2 ]] || fail "(d) holders during the cut: '$(holders)'"
"$LAB" heal -p "$PFX"
sleep 2
[[ $(holders) == h2 ]] || fail "(d) after the heal the holders are '$(holders)'"
log "(d) cut of h1: h1 removed the address, h2 serves (client outage $GAP_D ms)"

stop_prober
grep -q " $VIP/" "$WORK/mon-h3.log" && fail "the witness had the service address at some point"
assert_never_two_holders
log "RESULT pair+witness: crash outage ${GAP_B} / ${GAP_C} ms, group agreed ${AGREE_B} / ${AGREE_C} ms after the crash (shrink_after $SHRINK_AFTER x $HB); cut outage ${GAP_D} ms"
log "PASS"
