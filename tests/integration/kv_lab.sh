#!/usr/bin/env bash
# kv_lab: the whole system across three hosts (scripts/kvlab.sh): baton-kvserver with the embedded
# take-over agent and fencing on each host, an etcd member on each host, baton-kv-driver in the
# client sending INCRs and PUTs to the service address the whole time while this script
#   - crashes the holder host CRASHES times (default 3; the holder is made etcd's leader first until
#     one crash has taken the etcd leader down with it), restoring each crashed host
#     (etcd member + kv server) and waiting for a healthy etcd before the next crash, so quorum stays;
#   - kills the holder's kv server 3 times (kill -9; host, etcd and agent child stay), restarting it;
#   - cuts the holder from the other two hosts (partition), then heals.
# Asserts: the driver's end-to-end check (every acknowledged PUT readable with its value, every
# counter equal to its acknowledged INCRs within the unknown ones: lost = 0, duplicated = 0, INCR
# replies increasing); no fresh write acknowledged by a host whose fence for the slot was not
# written yet (kv server logs vs the driver's timeline); never two holders (ip addr polled in every host + the time-stamped
# `ip -ts monitor address` logs, cut at crashes); a host other than the faulty one holds the
# address and the service answers again within BOUND seconds (default 20) after every fault; the
# requests in flight at a server kill are answered well before their attempt timeout (median of
# the 3 kills < 150 ms, where waiting for the 300 ms attempt timeout shows as ~220 ms: the dead
# server's connections end at once).
# Environment (CTest sets them, tests/integration/kv_lab.cmake): KVSERVER, KV_DRIVER.
# Root only (exit 77 = skip outside root).
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=../testing/require_root.sh
. "$REPO/tests/testing/require_root.sh"
: "${KVSERVER:?set KVSERVER to baton-kvserver}"
: "${KV_DRIVER:?set KV_DRIVER to baton-kv-driver}"
export KVSERVER KV_DRIVER
KVLAB=$REPO/scripts/kvlab.sh
PY=$(command -v python3)
ANALYZE=$HERE/kv_lab.py
command -v etcd >/dev/null || { echo "SKIP: no etcd binary (etcd-server)"; exit 77; }

PFX=kl$$; PFX=${PFX:0:12}
WORK=$(mktemp -d /tmp/baton-kv_lab.XXXXXX)
LABDIR=$WORK/lab
DRV=$WORK/driver
CRASHES=${CRASHES:-3}
BOUND=${BOUND:-20}
HB=${HB:-50ms}
BG_PIDS=()
DRIVER_PID=""

log() { printf '%s %s\n' "$(date +%H:%M:%S.%3N)" "$*"; }
fail() { log "FAIL: $*"; exit 1; }
cleanup() {
  local rc=$? p
  [[ -n $DRIVER_PID ]] && kill "$DRIVER_PID" 2>/dev/null || true
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  "$KVLAB" down -p "$PFX" -d "$LABDIR" >/dev/null 2>&1 || true
  if (( rc != 0 )) || [[ -n ${KEEP:-} ]]; then
    log "logs in $WORK (exit $rc); last kv server lines:"
    for f in "$LABDIR"/kv-h*.log; do [[ -f $f ]] && { echo "--- $f"; tail -n 12 "$f"; }; done
    [[ -f $DRV/out ]] && { echo "--- driver"; tail -n 5 "$DRV/out"; }
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

kvlab() { "$KVLAB" "$1" -p "$PFX" -d "$LABDIR" "${@:2}"; }
now() { printf '%s' "$EPOCHREALTIME"; }
event() { echo "$(now) $*" >> "$LABDIR/events"; }
wait_until() {   # wait_until SECONDS CMD...
  local end=$(( ${EPOCHREALTIME/./} + ${1%.*} * 1000000 )); shift
  while ! "$@"; do (( ${EPOCHREALTIME/./} < end )) || return 1; sleep 0.02; done
}
holder() { kvlab holder 0; }
sole_holder_not() { local h; h=$(holder); [[ -n $h && $h != *" "* && $h != "$1" ]]; }
any_sole_holder() { local h; h=$(holder); [[ -n $h && $h != *" "* ]]; }
# settled_holder: within 15 s, one host has held the address alone for 1.5 s in a row.
settled_holder() {
  local end=$(( ${EPOCHREALTIME/./} + 15000000 )) h prev="" since=0
  while (( ${EPOCHREALTIME/./} < end )); do
    h=$(holder)
    if [[ -n $h && $h != *" "* && $h == "$prev" ]]; then
      (( ${EPOCHREALTIME/./} - since >= 1500000 )) && return 0
    else
      prev=$h; since=${EPOCHREALTIME/./}
    fi
    sleep 0.05
  done
  return 1
}
answered_after() { "$PY" "$ANALYZE" answered "$DRV" "$1" > "$WORK/answered" 2>/dev/null; }
etcd_healthy() {
  local h
  for h in h1 h2 h3; do
    ETCDCTL_API=3 timeout 5 ip netns exec "${PFX}$h" etcdctl --dial-timeout=1s --command-timeout=2s \
      --endpoints="http://$NET2.1:2379,http://$NET2.2:2379,http://$NET2.3:2379" endpoint health >/dev/null 2>&1 \
      && return 0
  done
  return 1
}

# A background poller: every 50 ms reads `ip addr` in every host whose service port is up; two
# holders in two readings in a row (a clean move read half before, half after, can look like two
# once) is recorded. The time-stamped monitor logs are the exact check.
poll_holders() {
  local h out=()
  for h in h1 h2 h3; do
    ip -n "${PFX}sw" -o link show "sw-$h" 2>/dev/null | grep -q '[<,]UP[,>]' || continue
    ip -n "${PFX}$h" -4 -o addr show dev eth0 2>/dev/null | grep -q " $VIP/" && out+=("$h")
  done
  echo "${out[*]:-}"
}
start_poller() {
  (
    end=$(( ${EPOCHREALTIME/./} + 300000000 )); prev=""
    while (( ${EPOCHREALTIME/./} < end )); do
      h=$(poll_holders)
      if [[ $h == *" "* ]]; then
        [[ -n $prev ]] && echo "$EPOCHREALTIME $h" >> "$WORK/double"
        prev=1
      else
        prev=""
      fi
      sleep 0.05
    done
  ) &
  BG_PIDS+=($!)
}

# after_fault WHAT OLD T: within BOUND s a host other than OLD holds the address, and a request
# sent after that was acknowledged (the service answers again).
after_fault() {
  local what=$1 old=$2 t=$3 h t2
  wait_until "$BOUND" sole_holder_not "$old" || fail "$what: no other host took the address in ${BOUND}s (holders: '$(holder)')"
  t2=$(now); h=$(holder)
  wait_until "$BOUND" answered_after "$t2" || fail "$what: the service did not answer within ${BOUND}s of $h taking the address"
  log "$what: $h holds the address $(awk -v a="$t" -v b="$t2" 'BEGIN { printf "%.0f", (b - a) * 1000 }') ms after the fault (as polled); the service answers"
  echo "$what $old->$h" >> "$WORK/faults"
}

log "lab $PFX in $WORK (heartbeat $HB)"
kvlab up -i "$HB" > "$WORK/up.out" 2>&1 || { cat "$WORK/up.out"; fail "kvlab up"; }
eval "$(kvlab env)"
: > "$LABDIR/events"
any_sole_holder || fail "no sole holder after up"
log "up: $(holder) holds $VIP"
start_poller

mkdir -p "$DRV"
kvlab driver -- --clients 4 --counters 4 --seconds 0 --max-requests 200000 --interval-ms 2 \
  --stop-file "$DRV/stop" --timeline "$DRV/timeline.jsonl" --summary "$DRV/summary.json" \
  --start-file "$DRV/start_unix" --attempt-timeout-ms 300 --connect-timeout-ms 20 \
  --max-backoff-ms 100 \
  --deadline-ms 30000 --gap-ms 100 > "$DRV/out" 2>&1 &
DRIVER_PID=$!
wait_until 10 test -s "$DRV/start_unix" || fail "driver did not start"
wait_until 15 answered_after "$(cat "$DRV/start_unix")" || fail "driver got no answer before any fault"
sleep 1

for (( round = 1; round <= CRASHES; round++ )); do
  # The victim must still hold the address when it crashes: a restored higher-priority host may
  # get the address back a few seconds after its restore (agent behaviour), so pick a settled
  # holder and check it again right before the crash.
  for (( try = 0; try < 5; try++ )); do
    settled_holder || fail "round $round: no settled sole holder ('$(holder)')"
    v=$(holder)
    if ! grep -qs 'etcd-leader' "$WORK/faults"; then
      # One crash takes etcd's leader with it: make the holder the leader first (until it worked).
      [[ $(kvlab etcd-leader) == "$v" ]] || kvlab move-leader "$v" || log "warning: move-leader $v failed"
      wait_until 5 eval '[[ $(kvlab etcd-leader) == "$v" ]]' || log "warning: etcd leader is $(kvlab etcd-leader), not $v"
    fi
    [[ $(holder) == "$v" ]] && break
    log "round $round: the address moved from $v to $(holder) before the crash; picking again"
  done
  [[ $(holder) == "$v" ]] || fail "round $round: the address keeps moving without a fault ('$(holder)')"
  leader=$(kvlab etcd-leader)
  log "round $round: crash $v (etcd leader: $leader)"
  t=$(now)
  event "crash of $v$( [[ $leader == "$v" ]] && echo ' (etcd leader)')"
  kvlab crash "$v"
  after_fault "crash-$round$( [[ $leader == "$v" ]] && echo '-etcd-leader')" "$v" "$t"
  sleep 0.5
  kvlab restore "$v" || fail "restore $v"
  event "$v restored"
  wait_until 30 etcd_healthy || fail "etcd not healthy after restoring $v"
  sleep 1
done
grep -q 'etcd-leader' "$WORK/faults" || fail "no crash took etcd's leader down"

# Process crashes: kill -9 of the holder's kv server (its host, etcd member and agent child stay).
# The requests in flight at the kill must be answered well before their 300 ms attempt timeout:
# the server's connections end at once (FIN/RST), the clients retry, the address moves.
KILLS=()
for (( k = 1; k <= 3; k++ )); do
  settled_holder || fail "kill $k: no settled sole holder ('$(holder)')"
  v=$(holder)
  t=$(now)
  event "kill -9 of $v's kv server"
  kvlab kill-server "$v"
  # Just after the kill (it landed in [t, now]): whatever is in flight now was in flight at it or
  # was sent to a dead server.
  KILLS+=("$(now)")
  after_fault "kill-server-$k" "$v" "$t"
  kvlab start-server "$v" || fail "start-server $v"
  event "$v's kv server restarted"
  sleep 1
done
# With the dead server's FIN/RST lost (the address removed before its last thread closed the
# connections) they took about 220 ms from this instant (the 300 ms attempt timeout); with it, 20.
"$PY" "$ANALYZE" inflight "$DRV" 150 "${KILLS[@]}" > "$WORK/inflight" || { cat "$WORK/inflight"; fail "requests in flight at a server crash waited for their attempt timeout"; }
cat "$WORK/inflight"

settled_holder || fail "partition: no settled sole holder ('$(holder)')"
v=$(holder)
log "partition: cut $v from the other hosts"
t=$(now)
event "$v cut from the other hosts"
kvlab cut "$v"
after_fault "partition" "$v" "$t"
sleep 1
kvlab heal
event "healed"
log "healed"
sleep 2
t=$(now)
wait_until "$BOUND" answered_after "$t" || fail "the service did not answer after healing"

touch "$DRV/stop"
# Verification reads every key back: bounded.
for (( i = 0; i < 1200; i++ )); do kill -0 "$DRIVER_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$DRIVER_PID" 2>/dev/null && fail "driver did not finish its verification in 120 s"
rc=0; wait "$DRIVER_PID" || rc=$?
DRIVER_PID=""
tail -n 1 "$DRV/out"
[[ -s $DRV/summary.json ]] || fail "driver wrote no summary (exit $rc)"
"$PY" - "$DRV/summary.json" <<'EOF' || fail "driver's check"
import json, sys
s = json.load(open(sys.argv[1]))
bad = {k: s[k] for k in ("lost", "duplicated", "unverified", "incr_not_increasing") if s[k]}
print(f"driver: {s['requests']} requests, {s['acked']} acked, {s['retried']} retried, "
      f"{s['replays']} replays, {s['unknown']} unknown, by node {s['by_node']}")
if s["acked_puts"] == 0 or s["acked_incrs"] == 0:
    print("FAIL: no acknowledged PUT or INCR"); sys.exit(1)
if bad:
    print("FAIL:", bad); sys.exit(1)
EOF
(( rc == 0 )) || fail "driver exited $rc"

[[ -s $WORK/double ]] && fail "two hosts held $VIP at once (ip addr polling): $(head -3 "$WORK/double")"
"$PY" "$ANALYZE" holds "$LABDIR" "$VIP" > "$WORK/holds" || { cat "$WORK/holds"; fail "ip monitor shows two holders at once"; }
# The fencing contract from outside: no fresh write acknowledged by a host whose fence for the
# slot was not yet written (it must answer 503 until then).
"$PY" "$ANALYZE" fence-check "$LABDIR" "$DRV" > "$WORK/fence" || { cat "$WORK/fence"; fail "writes acknowledged before the answering host's fence was ready"; }
"$PY" "$ANALYZE" faults "$LABDIR" "$DRV" || true
log "PASS: $CRASHES crashes + a partition, lost 0, duplicated 0, never two holders"
