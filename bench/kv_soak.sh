#!/usr/bin/env bash
# kv_soak.sh -- no false fail-overs on a busy host (issue 14 item 8): baton's kv service on 3 hosts
# (scripts/kvlab.sh: baton-kvserver with its supervised take-over agent, kernel fence, 3-member
# etcd store) under steady client load (baton-kv-driver: CLIENTS clients, INCR + PUT, end-to-end
# verification) for SECONDS, with a CPU hog on the address holder's host. No fault is injected:
# every address move, and every loss of the address by its holder, is a false one.
#
# The lab's hosts share this machine's cores, so "a CPU hog on the holder's host" is made real:
#   cgroup (default)  a cgroup v1 cpu cgroup /sys/fs/cgroup/cpu/baton-soak-<PFX> with
#                     cpu.cfs_period_us = PERIOD_US and cpu.cfs_quota_us = QUOTA_US (default
#                     100000 / 100000: one core), holding the holder's kv server (every thread)
#                     and its agent child (baton-takeoverd --parent-fd) and HOGS busy loops
#                     (`bash -c 'while :; do :; done'`, nice 0) started in the holder's
#                     namespace: the holder competes with the hogs inside one core's budget, as
#                     in a CPU-limited container of a busy host (the kv server keeps the lab's
#                     nice -10, so it wins the CFS share; when the hogs have spent the period's
#                     quota the whole cgroup is throttled until the next period).
#   nice              HOGS busy loops at nice 0 in the holder's namespace, no cgroup: they compete
#                     with everything on the machine (the servers run at nice -10).
#   none              no hog (a baseline).
# The hog follows the address: checked every 0.5 s, a new holder's kv server and agent are moved
# into the cgroup and the old holder's back to the root cgroup (mode cgroup), so a false move
# does not end the stress. The cgroup is removed at the end (and by the EXIT trap).
# Counted per interval (from the `ip -ts monitor address` logs of every host and the driver's
# summary): acquisitions of the address after the start, moves (acquired by another host than
# the last holder), flaps (the same host gave it up and took it back), time without a holder,
# two holders, client gaps longer than the attempt timeout, lost / duplicated writes; and from
# the kv servers' logs why (role changes, "external health: unhealthy" = the liveness watchdog).
#
# Usage: kv_soak.sh [-i 0.05,0.01] [-t 600] [-m cgroup|nice|none] [-o OUTDIR] [-b BUILD_DIR]
#   -i  heartbeat intervals in seconds, one soak each (default 0.05,0.01)
#   -t  seconds of load per interval (default 600)
#   -m  the hog (default cgroup, see above)
#   -b  build dir with baton-kvserver and baton-kv-driver (default: ../build, else ../build-ci)
# Env: HOGS (busy loops, default 2), QUOTA_US / PERIOD_US (cgroup quota, default 100000 / 100000),
#      RT_US (the cgroup's cpu.rt_runtime_us, default 50000 per 1 s: room for the agent's SCHED_RR
#      under CONFIG_RT_GROUP_SCHED, as a host would give its service's cgroup),
#      CLIENTS (default 4), INTERVAL_MS (each client's pause between requests, default 2),
#      ATTEMPT_MS (driver's attempt timeout, default 100), CONNECT_MS (default 20),
#      BACKOFF_MS (default 20), PFX (namespace prefix, default kvs<PID>: concurrent invocations
#      do not share labs), KV_NICE (the servers' nice, kvlab.sh's default -10).
# Output: OUTDIR/<mode>-<interval>/{lab/ (kvlab dir: kv-hK.log, mon-hK.log, etcd logs),
#      driver.json, driver-timeline.jsonl.gz, events, cpu.stat.*, summary.json},
#      OUTDIR/summary.jsonl (one JSON per interval), OUTDIR/table.txt.
# Exit status: 0 done (whatever the counts), 1 a lab did not come up, 2 usage error.
# Needs root, cgroup v1 cpu controller (mode cgroup), iproute2, etcd, python3.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
KVLAB=$REPO/scripts/kvlab.sh
LAB=$REPO/scripts/lab.sh
ANALYZE=$HERE/kv_soak/analyze.py
INTERVALS=0.05,0.01; SECONDS_RUN=600; MODE=cgroup; OUT=""; BUILD=""
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit "${1:-0}"; }
ARGV=("$@")
while [[ $# -gt 0 ]]; do
  case $1 in
    -i) INTERVALS=$2; shift 2 ;; -t) SECONDS_RUN=$2; shift 2 ;; -m) MODE=$2; shift 2 ;;
    -o) OUT=$2; shift 2 ;; -b) BUILD=$2; shift 2 ;; -h|--help) usage 0 ;; *) usage 2 ;;
  esac
done
[[ $SECONDS_RUN =~ ^[1-9][0-9]*$ ]] || { echo "bad -t $SECONDS_RUN" >&2; exit 2; }
[[ $MODE =~ ^(cgroup|nice|none)$ ]] || { echo "bad -m $MODE" >&2; exit 2; }
for iv in ${INTERVALS//,/ }; do [[ $iv =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "bad interval $iv" >&2; exit 2; }; done
[[ $EUID -eq 0 ]] || { echo "must run as root" >&2; exit 1; }
HOGS=${HOGS:-2}; QUOTA_US=${QUOTA_US:-100000}; PERIOD_US=${PERIOD_US:-100000}; RT_US=${RT_US:-50000}
CLIENTS=${CLIENTS:-4}; INTERVAL_MS=${INTERVAL_MS:-2}
ATTEMPT_MS=${ATTEMPT_MS:-100}; CONNECT_MS=${CONNECT_MS:-20}; BACKOFF_MS=${BACKOFF_MS:-20}
[[ $HOGS =~ ^[0-9]+$ && $QUOTA_US =~ ^-?[0-9]+$ && $PERIOD_US =~ ^[0-9]+$ && $RT_US =~ ^[0-9]+$ ]] || { echo "bad HOGS/QUOTA_US/PERIOD_US" >&2; exit 2; }
CGROOT=/sys/fs/cgroup/cpu
if [[ $MODE == cgroup ]]; then
  [[ -w $CGROOT/cgroup.procs ]] || { echo "no cgroup v1 cpu controller at $CGROOT (use -m nice)" >&2; exit 1; }
fi
if [[ -z $BUILD ]]; then
  for b in "$REPO/build" "$REPO/build-ci"; do [[ -x $b/tools/baton-kv-driver ]] && { BUILD=$b; break; }; done
fi
BUILD=$(cd "${BUILD:-.}" && pwd)
DRIVER=$BUILD/tools/baton-kv-driver
for f in "$DRIVER" "$BUILD/samples/kvservice/baton-kvserver"; do
  [[ -x $f ]] || { echo "missing $f (cmake --build BUILD --target baton-kvserver baton-kv-driver)" >&2; exit 1; }
done
PY=$(command -v python3)
OUT=${OUT:-/tmp/baton-kv-soak.$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
PFX=${PFX:-kvs$$}; PFX=${PFX:0:12}
CG=$CGROOT/baton-soak-$PFX
VIP=10.78.0.100; PORT=8080
HOSTS=(h1 h2 h3)

now() { printf '%s' "$EPOCHREALTIME"; }
ns() { echo "${PFX}$1"; }
event() { echo "$1 $2" >> "$RUN/events"; }
holder() { "$KVLAB" holder -p "$PFX" -d "$RUN/lab" 0 2>/dev/null || true; }
kv_pid() { cat "$RUN/lab/kv.$1.pid" 2>/dev/null || true; }
# The kv server of hK and its children (the supervised agent).
kv_procs() {
  local p c; p=$(kv_pid "$1"); [[ -n $p && -e /proc/$p ]] || return 0
  echo "$p"
  for c in /proc/"$p"/task/*/children; do cat "$c" 2>/dev/null; done | tr ' ' '\n' | grep -E '^[0-9]+$' || true
}
cg_add() { local p; for p in "$@"; do echo "$p" > "$CG/cgroup.procs" 2>/dev/null || true; done; }
cg_release() { local p; for p in "$@"; do echo "$p" > "$CGROOT/cgroup.procs" 2>/dev/null || true; done; }
HOG_PIDS=()
start_hogs() {  # start_hogs hK: HOGS busy loops in hK's namespace
  local i
  for (( i = 0; i < HOGS; i++ )); do
    ip netns exec "$(ns "$1")" nice -n 0 bash -c 'while :; do :; done' < /dev/null > /dev/null 2>&1 &
    HOG_PIDS+=("$!")
  done
}
stop_hogs() {
  local p
  for p in "${HOG_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${HOG_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  HOG_PIDS=()
}
cg_remove() {
  [[ -d $CG ]] || return 0
  local p
  while read -r p; do echo "$p" > "$CGROOT/cgroup.procs" 2>/dev/null || true; done < "$CG/cgroup.procs"
  rmdir "$CG" 2>/dev/null || echo "warning: could not remove $CG" >&2
}
LAB_UP=""; DPID=""
cleanup() {
  [[ -n $DPID ]] && { kill -TERM "$DPID" 2>/dev/null || true; }
  stop_hogs
  cg_remove
  [[ -n $LAB_UP ]] && { "$KVLAB" down -p "$PFX" -d "$LAB_UP" >/dev/null 2>&1 || true; }
  LAB_UP=""
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM
if "$LAB" list -p "$PFX" | grep -q .; then echo "a lab with prefix $PFX is up (scripts/lab.sh down -p $PFX)" >&2; exit 1; fi

T0=$(now)
RERUN="$0 -i $INTERVALS -t $SECONDS_RUN -m $MODE -o $OUT -b $BUILD"
echo "# $RERUN"
echo "# hog: $MODE, $HOGS busy loops$([[ $MODE == cgroup ]] && echo ", cgroup $CG quota $QUOTA_US/$PERIOD_US us"); client: $CLIENTS x baton-kv-driver, pause ${INTERVAL_MS} ms, attempt ${ATTEMPT_MS} ms; load average $(cut -d' ' -f1-3 /proc/loadavg)"
: > "$OUT/summary.jsonl"
for iv in ${INTERVALS//,/ }; do
  RUN=$OUT/$MODE-$iv; rm -rf "$RUN"; mkdir -p "$RUN"; : > "$RUN/events"
  echo "== heartbeat ${iv}s, hog $MODE: lab up"
  LAB_UP=$RUN/lab
  if ! "$KVLAB" up -p "$PFX" -d "$RUN/lab" -i "$iv" -b "$BUILD" > "$RUN/up.log" 2>&1; then
    echo "  lab did not come up (see $RUN/up.log)"; cleanup; exit 1
  fi
  sleep 2   # let the start-up elections settle
  h=$(holder)
  [[ -n $h && $h != *" "* ]] || { echo "  no sole holder: '$h'"; cleanup; exit 1; }
  event holder "$h $(now)"
  event loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)"
  if [[ $MODE == cgroup ]]; then
    mkdir -p "$CG"
    echo "$PERIOD_US" > "$CG/cpu.cfs_period_us"; echo "$QUOTA_US" > "$CG/cpu.cfs_quota_us"
    # A real-time budget for the cgroup (a kernel with CONFIG_RT_GROUP_SCHED refuses real-time
    # tasks in a cgroup without one): the agent runs SCHED_RR (takeover realtime_priority).
    [[ -e $CG/cpu.rt_runtime_us ]] && echo "$RT_US" > "$CG/cpu.rt_runtime_us"
    # shellcheck disable=SC2046
    cg_add $(kv_procs "$h")
  fi
  for x in "${HOSTS[@]}"; do   # the agents' scheduling, for the record
    for p in $(kv_procs "$x"); do [[ $p == "$(kv_pid "$x")" ]] || event sched "$x $p $(chrt -p "$p" 2>&1 | sed -n 's/.*policy: //p')"; done
  done
  [[ $MODE == none ]] || start_hogs "$h"
  [[ $MODE == cgroup ]] && { cg_add "${HOG_PIDS[@]}"; cp "$CG/cpu.stat" "$RUN/cpu.stat.start"; cat "$CG/cgroup.procs" > "$RUN/cgroup.procs.start"; }
  event start "$(now)"
  ip netns exec "$(ns c)" "$DRIVER" --target "$VIP:$PORT" --clients "$CLIENTS" --seconds "$SECONDS_RUN" \
    --interval-ms "$INTERVAL_MS" --timeline "$RUN/driver-timeline.jsonl" --summary "$RUN/driver.json" \
    --run-id "s${iv/./}$RANDOM" --attempt-timeout-ms "$ATTEMPT_MS" --connect-timeout-ms "$CONNECT_MS" \
    --max-backoff-ms "$BACKOFF_MS" --deadline-ms 10000 --gap-ms "$ATTEMPT_MS" --quiet > "$RUN/driver.out" 2>&1 < /dev/null &
  DPID=$!
  # Follow the address: the hog stays on whichever host holds it.
  cur=$h
  while kill -0 "$DPID" 2>/dev/null; do
    sleep 0.5
    n=$(holder)
    if [[ $n != "$cur" ]]; then
      event holders "$(now) '$cur' -> '$n'"
      if [[ -n $n && $n != *" "* && $MODE != none ]]; then
        # shellcheck disable=SC2046
        [[ $MODE == cgroup ]] && { cg_release $(kv_procs "$cur"); cg_add $(kv_procs "$n"); }
        cur=$n
      fi
    fi
  done
  rc=0; wait "$DPID" || rc=$?; DPID=""; echo "$rc" > "$RUN/driver.rc"
  event end "$(now)"
  event loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)"
  [[ $MODE == cgroup ]] && cp "$CG/cpu.stat" "$RUN/cpu.stat.end"
  stop_hogs; cg_remove
  "$KVLAB" down -p "$PFX" -d "$RUN/lab" >/dev/null 2>&1 || true; LAB_UP=""
  gzip -f "$RUN/driver-timeline.jsonl" 2>/dev/null || true
  "$PY" "$ANALYZE" run "$RUN" --vip "$VIP" --interval "$iv" --mode "$MODE" --attempt-ms "$ATTEMPT_MS" \
    --hogs "$HOGS" --quota-us "$QUOTA_US" --period-us "$PERIOD_US" --out "$OUT/summary.jsonl" \
    || echo "  analysis of $RUN failed"
done
{
  echo "# $RERUN"
  echo "# took $(awk -v a="$(now)" -v b="$T0" 'BEGIN { printf "%.0f", a - b }') s"
  "$PY" "$ANALYZE" table "$OUT/summary.jsonl"
} | tee "$OUT/table.txt"
