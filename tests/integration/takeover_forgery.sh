#!/usr/bin/env bash
# Lab test (d): an attacker on the cluster network captures the daemons' datagrams and injects
# them again -- replayed byte for byte, re-sealed with a wrong key, tampered, and random garbage --
# all from the real sender's spoofed address and port. Nothing may change: same holder, same
# epoch everywhere, no address moves; the daemons' counters must show every injected datagram
# rejected for the right reason.
TEST_NAME=takeover_forgery TEST_TAG=d
. "$(dirname "$0")/takeover_lib.sh"
: "${INJECT:?set INJECT to baton-udp-inject}"
N=${N:-40}   # datagrams captured per target

lab_up
for h in h1 h2 h3; do write_config "$h"; done
for h in h1 h2 h3; do start_host "$h"; done
start_poller
wait_until 15 sole_holder_is h1 || fail "h1 did not become the sole holder: '$(holders)'"
wait_until 5 bash -c "[[ \$('$TAKEOVERD' status --socket '$WORK/h3.sock' --json | '$PY' -c 'import json,sys; print(json.load(sys.stdin)[\"holder\"])') == 1 ]]" \
  || fail "h3 does not see h1 as holder"

# Capture genuine traffic to h2 (from h1 and h3) and to the holder h1 (from h2 and h3).
for h in h1 h2; do
  "$LAB" exec -p "$PFX" "$h" "$INJECT" capture --iface eth1 --port "$DPORT" --count "$N" \
    --out "$WORK/cap-$h.txt" --timeout-ms 10000 2>> "$WORK/inject.log" &
  CAP_PIDS+=($!)
done
for p in "${CAP_PIDS[@]}"; do wait "$p" || fail "capture failed: $(cat "$WORK/inject.log")"; done
sleep 0.2   # the captured datagrams are now all older than ones the daemons accepted

snapshot() {   # snapshot hK -> "holder epoch replay bad_mac bad_magic delivered"
  status_field "$1" 'j["holder"], j["epoch"], j["transport"]["dropped"]["replay"], j["transport"]["dropped"]["bad_mac"], j["transport"]["dropped"]["bad_magic"] + j["transport"]["dropped"]["truncated"], j["transport"]["delivered"]' | tr -d '(),'
}
declare -A B
for h in h1 h2 h3; do B[$h]=$(snapshot "$h"); log "before $h: holder epoch replay bad_mac bad_magic delivered = ${B[$h]}"; done

# The attack, from h3's namespace (a host on the cluster network), spoofing the real senders.
inject() { "$LAB" exec -p "$PFX" h3 "$INJECT" "$@" 2>> "$WORK/inject.log" || fail "inject $* failed: $(tail -3 "$WORK/inject.log")"; }
for round in 1 2 3; do
  inject replay --in "$WORK/cap-h2.txt"
  inject replay --in "$WORK/cap-h1.txt"
done
inject forge --in "$WORK/cap-h2.txt" --mode wrong-key
inject forge --in "$WORK/cap-h1.txt" --mode wrong-key
inject forge --in "$WORK/cap-h2.txt" --mode tamper
inject forge --in "$WORK/cap-h2.txt" --mode garbage
sleep 1   # 20 heartbeats: time for any effect to show

declare -A A
for h in h1 h2 h3; do A[$h]=$(snapshot "$h"); log "after  $h: holder epoch replay bad_mac bad_magic delivered = ${A[$h]}"; done
[[ $(holders) == h1 ]] || fail "holder changed under attack: '$(holders)'"
for h in h1 h2 h3; do
  read -r bh be br bm bg bd <<< "${B[$h]}"
  read -r ah ae ar am ag ad <<< "${A[$h]}"
  [[ $ah == 1 && $ae == "$be" && $bh == 1 ]] || fail "$h: holder/epoch changed under attack ($bh/$be -> $ah/$ae)"
  (( ad > bd )) || fail "$h: stopped receiving genuine datagrams"
done
read -r _ _ br2 bm2 bg2 _ <<< "${B[h2]}"; read -r _ _ ar2 am2 ag2 _ <<< "${A[h2]}"
read -r _ _ br1 bm1 _ _ <<< "${B[h1]}";   read -r _ _ ar1 am1 _ _ <<< "${A[h1]}"
(( ar2 - br2 >= 3 * N )) || fail "h2 counted $((ar2 - br2)) replays, expected >= $((3 * N))"
(( ar1 - br1 >= 3 * N )) || fail "h1 counted $((ar1 - br1)) replays, expected >= $((3 * N))"
(( am2 - bm2 >= 2 * N )) || fail "h2 counted $((am2 - bm2)) bad MACs, expected >= $((2 * N)) (wrong key + tampered)"
(( am1 - bm1 >= N )) || fail "h1 counted $((am1 - bm1)) bad MACs, expected >= $N"
(( ag2 - bg2 >= N * 9 / 10 )) || fail "h2 counted $((ag2 - bg2)) malformed, expected ~$N garbage datagrams"
log "rejected: h2 replay +$((ar2 - br2)), bad_mac +$((am2 - bm2)), malformed +$((ag2 - bg2)); h1 replay +$((ar1 - br1)), bad_mac +$((am1 - bm1))"
assert_never_two_holders
log "PASS"
