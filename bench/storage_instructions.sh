#!/usr/bin/env bash
# bench/storage_instructions.sh -- instructions per durable commit of the
# RocksDB StableStore (Commit and CommitAsync) and of raw RocksDB synced Puts,
# counted by valgrind's callgrind: a figure that a machine loaded by other
# work does not move (wall-clock rates do; `perf stat -e instructions` is not
# available in every VM).
#
# Each system runs twice under callgrind with a fixed number of commits per
# writer, N and 2N; instructions per commit = (Ir(2N) - Ir(N)) / (W x N), so
# the start-up and shut-down of the process and of the database cancel out.
# Everything the process executes counts: the writers, the store's threads and
# RocksDB's. Under valgrind threads run one at a time, so groups are formed
# differently than on real cores; the commits per fsync and per WAL batch of
# each run are printed beside the count.
#
#   bench/storage_instructions.sh [--build-dir build-ci] [--writers 16]
#       [--ops 1000] [--systems raw,store,async] [--shape put|request]
#       [--dir /var/tmp] [--sync true|false]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD="$HERE/../build-ci"
WRITERS=16
OPS=1000
SYSTEMS=raw,store,async
SHAPE=put
DIR=/var/tmp
SYNC=true
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) BUILD=$2; shift 2 ;;
    --writers) WRITERS=$2; shift 2 ;;
    --ops) OPS=$2; shift 2 ;;
    --systems) SYSTEMS=$2; shift 2 ;;
    --shape) SHAPE=$2; shift 2 ;;
    --dir) DIR=$2; shift 2 ;;
    --sync) SYNC=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
BIN="$BUILD/bench/baton-storage-bench"
[[ -x "$BIN" ]] || { echo "no $BIN (build target baton-storage-bench)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# Ir of one run under callgrind, and the run's commits per fsync.
run() {  # system ops
  local file="$OUT/cg.$1.$2"
  valgrind --tool=callgrind --callgrind-out-file="$file" "$BIN" \
    --systems "$1" --writers "$WRITERS" --ops-per-writer "$2" --reps 1 \
    --shape "$SHAPE" --dir "$DIR" --sync "$SYNC" >"$OUT/log.$1.$2" 2>&1
  local ir per_fsync
  ir=$(awk '/^(totals|summary):/ {print $2; exit}' "$file")
  per=$(awk -v s="$1" '$2 == s && $3 == "|" {print $8 "/" $9}' "$OUT/log.$1.$2")
  echo "$ir ${per:--}"
}

echo "writers=$WRITERS, commits per writer $OPS and $((2 * OPS)), shape $SHAPE, sync $SYNC; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s | %19s | %s\n' system "instructions/commit" "commits per fsync/per batch"
IFS=, read -ra LIST <<<"$SYSTEMS"
for s in "${LIST[@]}"; do
  read -r ir1 _ < <(run "$s" "$OPS")
  read -r ir2 group < <(run "$s" $((2 * OPS)))
  per=$(( (ir2 - ir1) / (WRITERS * OPS) ))
  printf '%-6s | %19d | %s\n' "$s" "$per" "$group"
done
