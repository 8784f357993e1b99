#!/usr/bin/env bash
# Lab test: partitions after the group shrank (issue 17: "a partition can shrink at most one
# side"). Five hosts, heartbeat 50 ms, shrink_after 20 heartbeats (1 s).
#   1. h1 (holder) crashes: h2 serves, the group shrinks to {2,3,4,5}.
#   2. The cluster network splits 2 | 2 ({h2,h3} | {h4,h5}) for 3 s: neither side is a majority of
#      the four members, so nobody may serve and nobody may change the group (a minority cannot
#      shrink it); after the heal one host serves again and the group is still {2,3,4,5}.
#   3. One host that does not hold the address is cut off (3 | 1) for 3 s: the three keep serving
#      and shrink the group without it; the cut-off host never serves; after the heal it is added
#      again and the address does not move.
# At no instant two holders (ip polling every 10 ms, time-stamped `ip monitor` logs).
TEST_NAME=takeover_shrink_partition TEST_TAG=s
. "$(dirname "$0")/takeover_lib.sh"
NHOSTS=5
PRIO[h4]=40
PRIO[h5]=30
SHRINK_AFTER=${SHRINK_AFTER:-20}
DISCOVERY=${DISCOVERY:-20}   # 1 s: all daemons heard before the first election (h1 must win)

lab_up
for (( i = 1; i <= NHOSTS; i++ )); do write_config "h$i"; done
for (( i = 1; i <= NHOSTS; i++ )); do start_host "h$i"; done
start_poller
wait_until 15 sole_holder_is h1 || fail "h1 (highest priority) did not become the sole holder: '$(holders)'"
start_prober
wait_until 15 test -s "$WORK/steady" || fail "client never saw 1 s of steady answers"

# 1. Shrink: h1 crashes.
T=$(crash_host h1)
wait_until 15 sole_holder_is h2 || fail "1: h2 did not take over: '$(holders)'"
wait_until 15 members_are "[2, 3, 4, 5]" h2 h3 h4 h5 || fail "1: the group did not shrink to [2, 3, 4, 5]"
log "1: h1 crashed; h2 serves; group [2, 3, 4, 5] agreed $("$PY" "$HERE/takeover_analyze.py" agreed "$WORK/h2.log" "$T" 2,3,4,5) ms after the crash"

# 2. Split 2 | 2.
for a in h2 h3; do for b in h4 h5; do "$LAB" split -p "$PFX" "$a" "$b"; done; done
T2=$EPOCHREALTIME
log "2: split {h2, h3} | {h4, h5}"
no_holder() { [[ -z $(holders) ]]; }
wait_until 5 no_holder || fail "2: a host of a two-of-four side still serves: '$(holders)'"
log "2: nobody serves ($(( (${EPOCHREALTIME/./} - ${T2/./}) / 1000 )) ms after the split)"
end=$(( ${T2/./} + 3000000 ))
while (( ${EPOCHREALTIME/./} < end )); do
  [[ -z $(holders) ]] || fail "2: '$(holders)' serves during the 2 | 2 split"
  sleep 0.1
done
members_are "[2, 3, 4, 5]" h2 h3 h4 h5 \
  || fail "2: a minority side changed the group: $(for h in h2 h3 h4 h5; do status_field $h 'j["membership"]'; done)"
"$LAB" heal -p "$PFX"
wait_until 15 any_sole_holder || fail "2: nobody serves after the heal: '$(holders)'"
HOLDER=$(holders)
wait_until 10 answered_since "$T2" "$HOLDER" || fail "2: client never answered by $HOLDER after the heal"
log "2: healed; $HOLDER serves; the group is still [2, 3, 4, 5]"

# 3. Cut one host that does not hold the address: 3 | 1.
for h in h5 h4 h3 h2; do [[ $h != "$HOLDER" ]] && { CUT=$h; break; }; done
REST=()
for h in h2 h3 h4 h5; do [[ $h != "$CUT" ]] && REST+=("$h"); done
IDS=$(printf '%s\n' "${REST[@]#h}" | paste -sd, | sed 's/,/, /g')
"$LAB" cut -p "$PFX" "$CUT"
T3=$EPOCHREALTIME
log "3: cut $CUT off (3 | 1)"
wait_until 15 members_are "[$IDS]" "${REST[@]}" || fail "3: the majority side did not shrink to [$IDS]"
log "3: group [$IDS] agreed $("$PY" "$HERE/takeover_analyze.py" agreed "$WORK/$HOLDER.log" "$T3" "${IDS//, /,}") ms after the cut"
end=$(( ${T3/./} + 3000000 ))
while (( ${EPOCHREALTIME/./} < end )); do
  [[ $(holders) == "$HOLDER" ]] || fail "3: holders during the cut: '$(holders)', expected $HOLDER"
  sleep 0.1
done
"$LAB" heal -p "$PFX"
wait_until 20 members_are "[2, 3, 4, 5]" h2 h3 h4 h5 || fail "3: $CUT was not added again"
sleep 1
[[ $(holders) == "$HOLDER" ]] || fail "3: the address moved after the heal: '$(holders)'"
answered_since "$T3" "$CUT" && fail "3: the cut-off $CUT answered the client"
log "3: healed; $CUT added again; $HOLDER still serves"
stop_prober
assert_never_two_holders
log "PASS"
