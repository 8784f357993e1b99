#!/usr/bin/env bash
# Stops an etcd started by scripts/etcd-start.sh: kills exactly the PIDs in
# DIR/pids (SIGTERM, then SIGKILL after 5 s) and removes DIR unless --keep.
#
#   scripts/etcd-stop.sh [--keep] DIR
set -euo pipefail

keep=0
if [ "${1:-}" = "--keep" ]; then keep=1; shift; fi
dir="${1:?usage: etcd-stop.sh [--keep] DIR}"
if [ ! -f "$dir/pids" ]; then
  echo "etcd-stop: no $dir/pids" >&2
  exit 1
fi
mapfile -t pids < "$dir/pids"
for pid in "${pids[@]}"; do
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
done
for pid in "${pids[@]}"; do
  [ -z "$pid" ] && continue
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
done
if [ "$keep" -eq 0 ]; then rm -rf "$dir"; fi
