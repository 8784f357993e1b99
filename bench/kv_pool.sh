#!/usr/bin/env bash
# kv_pool.sh -- issue 5's measurement: baton's kv service on 3 hosts sharing a pool of 6 service
# addresses (capacity 3 per host, so that the two survivors of a host loss can hold all six),
# clients spread over the 6 addresses (baton-kv-driver --target a1,...,a6: client i uses address
# i mod 6). Lab: scripts/kvlab.sh up -a 6 -c 3 (etcd member + kv server with embedded agent per
# host). Per run (fresh lab):
#   BEFORE s of load, then a planned drain of the host holding the most addresses
#   (POST /baton/drain): its addresses move to the others; after GAP s it is undrained (it then
#   holds nothing: no rebalance), and after GAP s more the host holding the most addresses
#   crashes (lab.sh crash: links down, everything SIGKILLed); its addresses must move to the
#   undrained host; AFTER s more of load; the driver stops and verifies every write.
# Figures: throughput (acknowledged requests per 100 ms bin, as req/s) before / during / after
# the drain and the crash; per-address outage (longest gap between acknowledged requests of the
# clients of that address, in the window around the event) for the addresses that moved and for
# the ones that did not; the drain gap versus the crash gap; lost / duplicated writes.
#
# Usage: kv_pool.sh [-i 0.05] [-n 3] [-C 12] [-o OUTDIR] [-b BUILD_DIR]
#   -i  heartbeat in seconds (default 0.05)   -n  runs (default 3)   -C  driver clients (default 12)
# Output: OUTDIR/run-<k>/ (driver timeline + summary, events, lab dir), OUTDIR/kv_pool.json,
# OUTDIR/table.txt. Needs root, iproute2, etcd, python3.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
KVLAB=$REPO/scripts/kvlab.sh
ANALYZE=$HERE/kv_pool/analyze.py
HB=0.05; N=3; CLIENTS=12; OUT=""; BUILD=""; PFX=${PFX:-kvp$$}; PFX=${PFX:0:12}   # unique: concurrent runs keep apart
NADDR=6; CAP=3; BEFORE=2; GAP=2; AFTER=2.5
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit "${1:-0}"; }
ARGV=("$@")
while getopts "i:n:C:o:b:h" opt; do
  case $opt in
    i) HB=$OPTARG ;; n) N=$OPTARG ;; C) CLIENTS=$OPTARG ;; o) OUT=$OPTARG ;; b) BUILD=$OPTARG ;;
    h) usage 0 ;; *) usage 2 ;;
  esac
done
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "bad -n $N" >&2; exit 2; }
[[ $EUID -eq 0 ]] || { echo "must run as root" >&2; exit 1; }
if [[ -z $BUILD ]]; then
  for b in "$REPO/build" "$REPO/build-kvbench"; do [[ -x $b/tools/baton-kv-driver ]] && { BUILD=$b; break; }; done
fi
BUILD=$(cd "${BUILD:-.}" && pwd)
DRIVER=$BUILD/tools/baton-kv-driver
for f in "$DRIVER" "$BUILD/samples/kvservice/baton-kvserver" "$KVLAB"; do
  [[ -x $f ]] || { echo "missing $f (ninja -C BUILD baton-kvserver baton-kv-driver)" >&2; exit 1; }
done
PY=$(command -v python3)
OUT=${OUT:-/tmp/baton-kv-pool.$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
RERUN="$0 -i $HB -n $N -C $CLIENTS -o $OUT -b $BUILD"

calc() { awk "BEGIN { printf \"%.6f\", $* }"; }
now() { printf '%s' "$EPOCHREALTIME"; }
wait_until() {
  local end=$(( ${EPOCHREALTIME/./} + $(awk -v l="$1" 'BEGIN { printf "%d", l*1000000 }') )); shift
  while ! "$@"; do (( ${EPOCHREALTIME/./} < end )) || return 1; sleep 0.01; done
}
sleep_until() { local d; d=$(calc "$1 - $(now)"); awk -v d="$d" 'BEGIN { exit !(d > 0) }' && sleep "$d" || true; }
kv() { "$KVLAB" "$1" -p "$PFX" -d "$LABDIR" "${@:2}"; }
event() { echo "$1 $2" >> "$RUN/events"; }
# holdings: "ADDRESS HOST" lines -> the host holding the most addresses
busiest() { kv holder | awk '$2 != "-" && NF == 2 { n[$2]++ } END { for (h in n) if (n[h] > m) { m = n[h]; b = h }; print b }'; }
holds_none() { ! kv holder | awk -v h="$1" '{ for (i = 2; i <= NF; i++) if ($i == h) f = 1 } END { exit !f }'; }
all_sole() { kv holder | awk '$2 == "-" || NF != 2 { bad = 1 } END { exit bad }'; }

cleanup() { [[ -n ${LABDIR:-} ]] && kv down >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

T0=$(now)
echo "# $RERUN"
for (( k = 1; k <= N; k++ )); do
  RUN=$OUT/run-$k; rm -rf "$RUN"; mkdir -p "$RUN"; : > "$RUN/events"; LABDIR=$RUN/lab
  echo "== run $k: lab up (3 hosts, $NADDR addresses, capacity $CAP, heartbeat ${HB}s)"
  if ! kv up -i "$HB" -a "$NADDR" -c "$CAP" -b "$BUILD" > "$RUN/up.log" 2>&1; then
    echo "  lab did not come up (see $RUN/up.log)"; kv down >/dev/null 2>&1 || true; continue
  fi
  eval "$(kv env)"
  targets=""; for a in ${VIPS//,/ }; do targets+="${targets:+,}$a:$PORT"; done
  kv holder > "$RUN/holders.start"
  ip netns exec "${PFX}c" "$DRIVER" --target "$targets" --clients "$CLIENTS" --seconds 0 \
    --stop-file "$RUN/stop" --timeline "$RUN/driver-timeline.jsonl" --summary "$RUN/driver.json" \
    --run-id "pool$k$RANDOM" --attempt-timeout-ms 100 --max-backoff-ms 20 --deadline-ms 10000 \
    --quiet > "$RUN/driver.out" 2>&1 < /dev/null &
  dpid=$!
  t=$(now); event start "$t"
  sleep_until "$(calc "$t + $BEFORE")"
  d=$(busiest); event drain_host "$d"
  td=$(now); kv drain "$d" || event error "drain of $d failed"; event drain "$td"
  wait_until 5 holds_none "$d" || event error "drained $d still holds addresses"
  wait_until 5 all_sole || event error "addresses without a sole holder after the drain"
  kv holder > "$RUN/holders.drained"
  sleep_until "$(calc "$td + $GAP")"
  kv undrain "$d" || event error "undrain of $d failed"; event undrain "$(now)"
  sleep "$GAP"
  c=$(busiest); event crash_host "$c"
  # The etcd leader off the host that crashes: the figures are the address pool's, not an etcd
  # election's (kv_failover.sh does the same).
  if [[ $(kv etcd-leader) == "$c" ]]; then
    for o in h1 h2 h3; do [[ $o != "$c" && $o != "$d" ]] && break; done
    kv move-leader "$o" || event warning "could not move the etcd leader off $c"
    sleep 0.2
  fi
  event etcd_leader "$(kv etcd-leader)"
  kv holder > "$RUN/holders.precrash"
  tc=$(now); kv crash "$c" || event error "crash of $c failed"; event crash "$tc"
  wait_until 5 all_sole || event error "addresses without a sole holder after the crash"
  event moved "$(now)"
  kv holder > "$RUN/holders.crashed"
  sleep_until "$(calc "$tc + $AFTER")"
  touch "$RUN/stop"; event end "$(now)"
  for (( i = 0; i < 300; i++ )); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$dpid" 2>/dev/null || true
  rc=0; wait "$dpid" 2>/dev/null || rc=$?; echo "$rc" > "$RUN/driver.rc"
  cp "$LABDIR"/mon-h*.log "$RUN"/ 2>/dev/null || true
  kv down > /dev/null 2>&1 || true
  "$PY" "$ANALYZE" run "$RUN" --targets "$targets" | tee -a "$OUT/runs.jsonl" | "$PY" "$ANALYZE" line \
    || echo "  run $k: analysis failed"
done
{
  echo "# $RERUN"
  echo "# took $(calc "$(now) - $T0") s; 3 hosts, $NADDR addresses, capacity $CAP, heartbeat ${HB}s, $CLIENTS clients (client i -> address i mod $NADDR)"
  "$PY" "$ANALYZE" table "$OUT"
} | tee "$OUT/table.txt"
echo "JSON: $OUT/kv_pool.json"
echo "rerun: $RERUN"
