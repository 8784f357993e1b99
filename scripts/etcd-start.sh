#!/usr/bin/env bash
# Starts a throw-away etcd on loopback: one member, or a cluster of several,
# on free ephemeral ports, with its data, logs and PIDs in one directory.
# Stop it with scripts/etcd-stop.sh DIR (kills exactly those PIDs).
#
#   scripts/etcd-start.sh [--members 1|3|N] [--dir DIR]
#
# Prints `ETCD_DIR=...` and `ETCD_ENDPOINTS=host:port,...` (eval-able), and
# leaves DIR/pids (one PID a line) and DIR/endpoints. Loopback only; no root.
set -euo pipefail

members=1
dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --members) members="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "etcd-start: unknown argument $1" >&2; exit 2 ;;
  esac
done
etcd_bin="${BATON_ETCD_BINARY:-$(command -v etcd || true)}"
if [ -z "$etcd_bin" ]; then
  echo "etcd-start: no etcd binary (apt-get install etcd-server)" >&2
  exit 1
fi
if [ -z "$dir" ]; then dir="$(mktemp -d "${TMPDIR:-/tmp}/baton-etcd-XXXXXX")"; fi
mkdir -p "$dir"
: > "$dir/pids"

# 2 ports per member, held open together so they differ, then released.
read -r -a ports <<< "$(python3 - "$members" <<'PY'
import socket, sys
n = int(sys.argv[1]) * 2
socks = []
for _ in range(n):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)"

cluster=""
for ((i = 0; i < members; i++)); do
  cluster+="${cluster:+,}m$i=http://127.0.0.1:${ports[$((2 * i + 1))]}"
done
endpoints=""
for ((i = 0; i < members; i++)); do
  client="${ports[$((2 * i))]}"
  peer="${ports[$((2 * i + 1))]}"
  endpoints+="${endpoints:+,}127.0.0.1:$client"
  "$etcd_bin" --name "m$i" --data-dir "$dir/m$i" \
    --listen-client-urls "http://127.0.0.1:$client" \
    --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "$cluster" --initial-cluster-token "$(basename "$dir")" \
    --initial-cluster-state new --logger zap --log-level warn \
    > "$dir/m$i.log" 2>&1 &
  echo $! >> "$dir/pids"
done
echo "$endpoints" > "$dir/endpoints"

# Healthy = every member answers through raft (etcdctl endpoint health).
for _ in $(seq 1 100); do
  if ETCDCTL_API=3 etcdctl --endpoints="$endpoints" --dial-timeout=1s \
       endpoint health >/dev/null 2>&1; then
    echo "ETCD_DIR=$dir"
    echo "ETCD_ENDPOINTS=$endpoints"
    exit 0
  fi
  sleep 0.2
done
echo "etcd-start: not healthy after 20 s; logs in $dir" >&2
"$(dirname "$0")/etcd-stop.sh" --keep "$dir" || true
exit 1
