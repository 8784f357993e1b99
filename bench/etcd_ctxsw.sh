#!/usr/bin/env bash
# Context switches per request of the kv server on etcd at one client.
#
# Runs baton-kv-throughput (PUT on a loopback etcd, one client, HTTP and/or
# gRPC), attaches `perf stat -e context-switches` to its server child for the
# child's whole life, and divides by the requests the child executed (its own
# count, printed when it stops). Server-side switches only: the client and
# etcd are other processes.
#
#   bench/etcd_ctxsw.sh [BUILD_DIR] [--protos http] [--seconds 5] [--reps 1]
#                       [--etcd-members 1]
#
# Needs perf (linux-perf) and permission to attach to the child (root, or
# kernel.perf_event_paranoid <= 1 for one's own processes).
set -euo pipefail

build=build-ci
if [[ $# -gt 0 && $1 != --* ]]; then build=$1; shift; fi
protos=http seconds=5 reps=1 members=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --protos) protos=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --etcd-members) members=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
bench=$build/bench/baton-kv-throughput
[[ -x $bench ]] || { echo "no $bench (build target baton-kv-throughput)" >&2; exit 2; }
command -v perf >/dev/null || { echo "perf not installed" >&2; exit 2; }

tmp=$(mktemp -d)
perf_pid=""
bench_pid=""
cleanup() {
  [[ -n $perf_pid ]] && kill -INT "$perf_pid" 2>/dev/null || true
  [[ -n $bench_pid ]] && kill "$bench_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$bench" --stores etcd --baselines "" --protos "$protos" --ops put --clients 1 \
  --seconds "$seconds" --reps "$reps" --etcd-members "$members" \
  >"$tmp/out" 2>"$tmp/err" &
bench_pid=$!
child=""
for _ in $(seq 1 600); do
  child=$(pgrep -P "$bench_pid" -f -- '--serve' || true)
  [[ -n $child ]] && break
  sleep 0.05
done
[[ -n $child ]] || { echo "server child not found" >&2; cat "$tmp/err" >&2; exit 1; }
perf stat -e context-switches,cpu-migrations -x, -o "$tmp/perf" -p "$child" &
perf_pid=$!
wait "$bench_pid" || { cat "$tmp/err" >&2; exit 1; }
bench_pid=""
wait "$perf_pid" 2>/dev/null || true
perf_pid=""
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"

cat "$tmp/out"
executed=$(sed -n 's/.*executed \([0-9]*\),.*/\1/p' "$tmp/err" | tail -1)
switches=$(awk -F, '$3=="context-switches"{print $1}' "$tmp/perf")
[[ -n $executed && $executed -gt 0 && -n $switches ]] || {
  echo "could not read the counts" >&2; cat "$tmp/err" "$tmp/perf" >&2; exit 1; }
grep -h 'serve (etcd)' "$tmp/err" || true
awk -v s="$switches" -v n="$executed" \
  'BEGIN{printf "server context switches: %d for %d requests = %.2f per request\n", s, n, s/n}'
