#!/usr/bin/env bash
# Lab test (b): the holder is cut off from the two other hosts (its cluster link goes down) while
# the client still reaches it. The old holder must remove the address before another host adds
# it -- checked on the kernel's own timestamps (`ip -ts monitor address` in every host) -- and two
# hosts never hold it at once (also polled with `ip addr`). After healing, the client keeps being
# answered by the holder without a gap longer than one announce round, and nothing flaps.
TEST_NAME=takeover_partition TEST_TAG=b
. "$(dirname "$0")/takeover_lib.sh"
HOLD=${HOLD:-2}   # seconds the partition lasts
MAX_POST_HEAL_GAP_MS=${MAX_POST_HEAL_GAP_MS:-250}

lab_up
for h in h1 h2 h3; do write_config "$h"; done
for h in h1 h2 h3; do start_host "$h"; done
start_poller
wait_until 15 sole_holder_is h1 || fail "h1 did not become the sole holder: '$(holders)'"
start_prober
wait_until 15 test -s "$WORK/steady" || fail "client never saw 1 s of steady answers"
E1=$(status_field h1 'j["epoch"]')
log "h1 holds $VIP, epoch $E1; cutting h1 from h2 and h3"

T=$EPOCHREALTIME
"$LAB" cut -p "$PFX" h1
wait_until 15 sole_holder_is h2 || fail "h2 did not become the sole holder during the partition: '$(holders)'"
ORDER=$("$PY" "$HERE/takeover_analyze.py" order "$VIP" "$T" "$WORK/mon-h1.log" "$WORK/mon-h2.log") \
  || fail "old holder did not remove the address before the new one added it: $ORDER"
log "$ORDER"
"$LAB" exec -p "$PFX" c ping -c1 -W1 "$("$LAB" ip -p "$PFX" h1)" >/dev/null || fail "client cannot reach h1 during the partition"
sleep "$HOLD"
has_vip h1 && fail "cut-off h1 holds the address again during the partition"
E2=$(status_field h2 'j["epoch"]')
(( E2 > E1 )) || fail "epoch did not grow on take-over ($E1 -> $E2)"

TH=$EPOCHREALTIME
"$LAB" heal -p "$PFX"
log "healed"
sleep 2
stop_prober
[[ $(holders) == h2 ]] || fail "holder changed after healing: '$(holders)' (no preempt: only failures move it)"
[[ $(status_field h1 'j["holder"]') == 2 ]] || fail "h1 does not see h2 as holder after healing"
[[ $(status_field h2 'j["epoch"]') == "$E2" ]] || fail "epoch changed after healing"
GAP=$("$PY" - "$WORK/client.log" "$TH" <<'PY'
import sys
log, th = sys.argv[1], float(sys.argv[2])
rows = [l.split() for l in open(log)]
rows = [(float(r[1]), r[2], r[3]) for r in rows if len(r) == 5 and r[2] in ("OK", "FAIL")]
after = [r for r in rows if r[0] >= th - 0.05]
gap, last_ok = 0.0, None
for t, st, h in after:
    if st == "OK":
        if last_ok is not None:
            gap = max(gap, t - last_ok)
        last_ok = t
end_host = next((h for t, st, h in reversed(after) if st == "OK"), "none")
print(f"{gap * 1e3:.1f} {end_host}")
PY
)
log "after healing: longest client gap ${GAP% *} ms, answered by ${GAP#* }"
[[ ${GAP#* } == h2 ]] || fail "client not answered by the holder h2 after healing"
awk -v g="${GAP% *}" -v m="$MAX_POST_HEAL_GAP_MS" 'BEGIN { exit !(g <= m) }' \
  || fail "client gap after healing ${GAP% *} ms > $MAX_POST_HEAL_GAP_MS ms"
assert_never_two_holders
log "PASS"
