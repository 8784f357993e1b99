#!/usr/bin/env bash
# demo.sh -- baton in one command: a kv service on three hosts survives the crash of the host that
# serves it, and no client request is lost or executed twice.
#
# It installs what is missing (scripts/install-deps.sh), builds baton-kvserver and
# baton-kv-driver (cmake --preset default, build/), builds a network-namespace lab of three hosts
# and a client (scripts/kvlab.sh: an etcd member and a baton-kvserver with the embedded take-over
# agent on each host, the service address 10.78.0.100:8080 held by one of them), runs 4 retrying
# clients (INCR on shared counters, PUT of unique keys) against the service address, crashes the
# host that holds the address (its links go down and every process on it is killed at once), and
# prints a timeline: who held the address when (kernel timestamps), the client outage, requests
# retried, replays served, and the end-to-end check -- lost = 0, duplicated = 0. Then it cleans up
# (also on Ctrl-C). docs/demo.md explains what you see.
#
# Usage: sudo scripts/demo.sh [-n CRASHES] [-L] [-s SECONDS_BETWEEN] [-i HEARTBEAT] [-b BUILD_DIR]
#                             [--no-build] [--keep]
#   -n  holder crashes (default 1); each crashed host is restored before the next crash; with
#       more than one, a table of the outage per crash follows the timeline
#   -L  make the holder etcd's leader before each crash (the crash then also costs an etcd
#       election); by default etcd's leadership is moved off the holder first, so the crash shows
#       the take-over alone
#   -s  seconds of traffic before, between and after the crashes (default 3)
#   -i  heartbeat of the take-over agents (default 50ms)
#   -b  use this build directory (default build/, the preset's); with --no-build nothing is built
#   --keep  leave the logs (configs, kernel monitor logs, driver timeline) in the work directory
# Env: PFX (namespace prefix, default demo<pid>); ATTEMPT_MS (the clients' attempt timeout,
# default 300: a request in flight to the crashed host is sent again after it). Needs root.
set -Eeuo pipefail
export LC_ALL=C

cd "$(dirname "$0")/.."
REPO=$PWD
usage() { sed -n '2,/^set -Eeuo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit "${1:-0}"; }
CRASHES=1; SECS=3; HB=50ms; BUILD=""; DO_BUILD=1; KEEP=0; LEADER=0
while [[ $# -gt 0 ]]; do
  case $1 in
    -n) CRASHES=$2; shift 2 ;; -L) LEADER=1; shift ;; -s) SECS=$2; shift 2 ;; -i) HB=$2; shift 2 ;;
    -b) BUILD=$2; shift 2 ;; --no-build) DO_BUILD=0; shift ;; --keep) KEEP=1; shift ;;
    -h|--help) usage 0 ;; *) usage 2 ;;
  esac
done
[[ $CRASHES =~ ^[1-9][0-9]*$ ]] || { echo "demo.sh: bad -n $CRASHES" >&2; exit 2; }
[[ $SECS =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "demo.sh: bad -s $SECS" >&2; exit 2; }
[[ $EUID -eq 0 ]] || { echo "demo.sh: must run as root (network namespaces)" >&2; exit 1; }

say() { printf '\n== %s\n' "$*"; }
if (( DO_BUILD )) && [[ -z $BUILD ]]; then
  say "installing what is missing and building baton-kvserver + baton-kv-driver (build/)"
  ./scripts/install-deps.sh
  cmake --preset default > /dev/null
  cmake --build --preset default --target baton-kvserver baton-kv-driver
elif (( DO_BUILD )); then
  say "building baton-kvserver + baton-kv-driver in $BUILD"
  cmake --build "$BUILD" --target baton-kvserver baton-kv-driver
fi
BUILD=$(cd "${BUILD:-build}" && pwd)

KVLAB=$REPO/scripts/kvlab.sh
ANALYZE=$REPO/tests/integration/kv_lab.py
PFX=${PFX:-demo$$}; PFX=${PFX:0:12}
WORK=$(mktemp -d /tmp/baton-demo.XXXXXX)
LABDIR=$WORK/lab; DRV=$WORK/driver
DRIVER_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -n $DRIVER_PID ]] && kill "$DRIVER_PID" 2>/dev/null || true
  "$KVLAB" down -p "$PFX" -d "$LABDIR" > /dev/null 2>&1 || true
  if (( KEEP || rc != 0 )); then echo "logs kept in $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo; echo "interrupted: cleaning up"; exit 130' INT TERM

kvlab() { "$KVLAB" "$1" -p "$PFX" -d "$LABDIR" "${@:2}"; }
now() { printf '%s' "$EPOCHREALTIME"; }
event() { echo "$(now) $*" >> "$LABDIR/events"; }
wait_until() {
  local end=$(( ${EPOCHREALTIME/./} + $1 * 1000000 )); shift
  while ! "$@"; do (( ${EPOCHREALTIME/./} < end )) || return 1; sleep 0.02; done
}
holder() { kvlab holder 0; }
sole_holder_not() { local h; h=$(holder); [[ -n $h && $h != *" "* && $h != "${1:-}" ]]; }
etcd_healthy() {
  ETCDCTL_API=3 timeout 5 ip netns exec "${PFX}$(kvlab holder 0 | cut -d' ' -f1)" etcdctl \
    --dial-timeout=1s --command-timeout=2s --endpoints="http://$NET2.1:2379,http://$NET2.2:2379,http://$NET2.3:2379" \
    endpoint health > /dev/null 2>&1
}
answered_after() { python3 "$ANALYZE" answered "$DRV" "$1" > /dev/null 2>&1; }

say "starting three hosts (etcd member + baton-kvserver with the take-over agent on each), heartbeat $HB"
KVSERVER=${KVSERVER:-$BUILD/samples/kvservice/baton-kvserver} \
  KV_DRIVER=${KV_DRIVER:-$BUILD/tools/baton-kv-driver} kvlab up -i "$HB" -b "$BUILD"
eval "$(kvlab env)"
: > "$LABDIR/events"
kvlab status

say "4 clients send INCRs and PUTs to $VIP:$PORT (each request keeps its id across retries)"
mkdir -p "$DRV"
kvlab driver -- --clients 4 --counters 4 --seconds 0 --max-requests 200000 --interval-ms 2 \
  --stop-file "$DRV/stop" --timeline "$DRV/timeline.jsonl" --summary "$DRV/summary.json" \
  --start-file "$DRV/start_unix" --attempt-timeout-ms "${ATTEMPT_MS:-300}" --max-backoff-ms 100 \
  --deadline-ms 30000 --gap-ms 100 --quiet > "$DRV/out" 2>&1 &
DRIVER_PID=$!
wait_until 10 test -s "$DRV/start_unix" || { echo "the driver did not start: $(cat "$DRV/out")" >&2; exit 1; }
sleep "$SECS"

for (( k = 1; k <= CRASHES; k++ )); do
  # Crash the host that holds the address at that moment: a rebooted higher-priority host may
  # get the address back a few seconds after its reboot, so re-check right before the crash.
  for (( try = 0; try < 5; try++ )); do
    wait_until 10 sole_holder_not "" || { echo "no sole holder: '$(holder)'" >&2; exit 1; }
    v=$(holder)
    if (( LEADER )); then
      kvlab move-leader "$v" || true
      wait_until 5 eval '[[ $(kvlab etcd-leader) == "$v" ]]' || true
    elif [[ $(kvlab etcd-leader) == "$v" ]]; then
      # By default the crash shows the take-over alone: etcd's leadership moves off the victim.
      other=h1; [[ $v == h1 ]] && other=h2
      kvlab move-leader "$other" || true
      wait_until 5 eval '[[ $(kvlab etcd-leader) != "$v" ]]' || true
    fi
    [[ $(holder) == "$v" ]] && break
    sleep 0.5
  done
  leader=$(kvlab etcd-leader)
  note=""; [[ $leader == "$v" ]] && note=", etcd leader"
  say "crash $k/$CRASHES: $v holds $VIP$note -- pulling its plug (links down, every process killed)"
  t=$(now)
  event "crash of $v$note"
  kvlab crash "$v"
  if wait_until 20 sole_holder_not "$v"; then echo "$(holder) holds $VIP now"; else echo "nobody took $VIP over in 20 s" >&2; exit 1; fi
  wait_until 20 answered_after "$t" || { echo "the service did not answer in 20 s" >&2; exit 1; }
  sleep "$SECS"
  if (( k < CRASHES )); then
    echo "rebooting $v (etcd member rejoins with its data, kv server restarts)"
    kvlab restore "$v"
    event "$v restored"
    wait_until 30 etcd_healthy || { echo "etcd not healthy after restoring $v" >&2; exit 1; }
    sleep "$SECS"
  fi
done

say "stopping the clients; reading every acknowledged write back through the service"
touch "$DRV/stop"
for (( i = 0; i < 1200; i++ )); do kill -0 "$DRIVER_PID" 2>/dev/null || break; sleep 0.1; done
rc=0; wait "$DRIVER_PID" || rc=$?
DRIVER_PID=""
[[ -s $DRV/summary.json ]] || { echo "the driver wrote no summary: $(tail -n 5 "$DRV/out")" >&2; exit 1; }

say "timeline"
rep=0; python3 "$ANALYZE" report "$LABDIR" "$VIP" "$DRV" || rep=$?
if (( CRASHES > 1 )); then
  say "outage per crash (last completed request before the crash -> first after it)"
  python3 "$ANALYZE" faults "$LABDIR" "$DRV"
fi
if (( rc != 0 || rep != 0 )); then echo; echo "demo FAILED (driver exit $rc)"; exit 1; fi
echo; echo "demo passed: the crash cost the clients an outage, not a lost or duplicated request."
