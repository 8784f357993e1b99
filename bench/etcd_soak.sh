#!/usr/bin/env bash
# etcd_soak.sh -- the etcd capacity soak (issue 15 item 4): baton-kvserver on a loopback etcd with
# a small quota and a scaled-down record retention and compaction interval, driven by key-only
# clients (bench/kv_soak/keyload.py: PUT on a bounded key space and INCR on 8 counters, each
# request with its own `Idempotency-Key`, never acknowledged: every request leaves a completion
# record that only the retention collects) as fast as the server answers. It must end with the
# store writable and etcd's database size flat.
#
# Started and stopped by the script (cleanup by PID, trap on EXIT): one etcd member on
# 127.0.0.1 (free ports; --quota-backend-bytes QUOTA, no auto-compaction: baton compacts),
# one baton-kvserver (HTTP + admin on free loopback ports, store: etcd with record_retention
# RETENTION, compaction_interval COMPACT, quota_backend_bytes QUOTA; pipeline.retention
# RETENTION, gc_interval GC), and the load. Every SAMPLE s: etcd's `endpoint status` (dbSize,
# dbSizeInUse, revision), the server's /baton/stats (store statistics) and the load's progress.
# At the end (load stopped): a PUT with a fresh Idempotency-Key must answer 200, and etcd must
# have no alarm.
# Flat (the criterion): over the second half of the run, the largest dbSize sampled is at most
# FLAT_PCT % (default 10) above the first sample of that half, and so is the dbSize at the end.
# Capacity planning (docs/etcd.md): the quota holds 0.5 * QUOTA / ((RETENTION + 2 * COMPACT) * b)
# commits/s with b ~ 412 B; the defaults (128 MiB, 60 s, 20 s) hold about 1600/s, above what this
# machine sustains (about 950/s on 2 idle cores), so the rate is the highest the server answers.
# CPU_QUOTA_US (root, cgroup v1): the whole soak (etcd, server, load) runs in a cpu cgroup
# /sys/fs/cgroup/cpu/baton-etcdsoak-<PID> with that quota per 100 ms (e.g. 60000: 0.6 core), so
# that it can run beside other soaks; removed at the end.
#
# Usage: etcd_soak.sh [-t 1800] [-o OUTDIR] [-b BUILD_DIR]
#   -t  seconds of load (default 1800)
#   -b  build dir with samples/kvservice/baton-kvserver (default: ../build, else ../build-ci)
# Env: QUOTA (bytes, default 67108864), RETENTION (default 60s), COMPACT (default 20s),
#      GC (pipeline gc_interval, default 10s), GC_BATCH (pipeline gc_batch, default: the
#      server's, capped by the store to fit etcd's max-txn-ops), THREADS (load threads, default 8), KEYS (default
#      1000), RATE (requests/s in all, default 0 = as fast as answered), SAMPLE (s, default 30),
#      FLAT_PCT (default 10), CPU_QUOTA_US (default: none, see above).
# Output: OUTDIR/{samples.jsonl, summary.json, etcd.log, kv.log, kv.yaml, load.json}; prints the
#      curve (start / mid / end sizes, rate) and the verdict. Exit status: 0 writable and flat,
#      1 not (or a start failed), 2 usage error.
# Needs etcd-server (etcd, etcdctl), curl, python3. Root only for CPU_QUOTA_US.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
DUR=1800; OUT=""; BUILD=""
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [[ $# -gt 0 ]]; do
  case $1 in
    -t) DUR=$2; shift 2 ;; -o) OUT=$2; shift 2 ;; -b) BUILD=$2; shift 2 ;;
    -h|--help) usage 0 ;; *) usage 2 ;;
  esac
done
[[ $DUR =~ ^[1-9][0-9]*$ ]] || { echo "bad -t $DUR" >&2; exit 2; }
QUOTA=${QUOTA:-134217728}; RETENTION=${RETENTION:-60s}; COMPACT=${COMPACT:-20s}; GC=${GC:-10s}
GC_BATCH=${GC_BATCH:-}; THREADS=${THREADS:-8}; KEYS=${KEYS:-1000}; RATE=${RATE:-0}; SAMPLE=${SAMPLE:-30}; FLAT_PCT=${FLAT_PCT:-10}
[[ $QUOTA =~ ^[0-9]+$ && $SAMPLE =~ ^[1-9][0-9]*$ && $FLAT_PCT =~ ^[0-9]+$ ]] || { echo "bad QUOTA/SAMPLE/FLAT_PCT" >&2; exit 2; }
if [[ -z $BUILD ]]; then
  for b in "$REPO/build" "$REPO/build-ci"; do [[ -x $b/samples/kvservice/baton-kvserver ]] && { BUILD=$b; break; }; done
fi
KVSERVER=$(cd "${BUILD:-.}" && pwd)/samples/kvservice/baton-kvserver
[[ -x $KVSERVER ]] || { echo "missing $KVSERVER (cmake --build BUILD --target baton-kvserver)" >&2; exit 1; }
command -v etcd >/dev/null && command -v etcdctl >/dev/null || { echo "needs etcd and etcdctl (etcd-server)" >&2; exit 1; }
PY=$(command -v python3)
OUT=${OUT:-/tmp/baton-etcd-soak.$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
rm -rf "$OUT/etcd-data" "$OUT/kvdata"; : > "$OUT/samples.jsonl"

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
CPORT=$(free_port); PPORT=$(free_port); HPORT=$(free_port); APORT=$(free_port)
EP=127.0.0.1:$CPORT
ETCD_PID=""; KV_PID=""; LOAD_PID=""; CG=""
cg_remove() {
  [[ -n $CG && -d $CG ]] || return 0
  echo $$ > /sys/fs/cgroup/cpu/cgroup.procs 2>/dev/null || true
  rmdir "$CG" 2>/dev/null || echo "warning: could not remove $CG" >&2
}
cleanup() {
  local p
  for p in "$LOAD_PID" "$KV_PID" "$ETCD_PID"; do [[ -n $p ]] && kill -TERM "$p" 2>/dev/null || true; done
  for p in "$LOAD_PID" "$KV_PID" "$ETCD_PID"; do
    [[ -n $p ]] || continue
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true
  done
  LOAD_PID=""; KV_PID=""; ETCD_PID=""
  cg_remove
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM
if [[ -n ${CPU_QUOTA_US:-} ]]; then
  [[ $CPU_QUOTA_US =~ ^[1-9][0-9]*$ && -w /sys/fs/cgroup/cpu/cgroup.procs ]] || { echo "CPU_QUOTA_US needs root and cgroup v1 cpu" >&2; exit 2; }
  CG=/sys/fs/cgroup/cpu/baton-etcdsoak-$$
  mkdir -p "$CG"; echo 100000 > "$CG/cpu.cfs_period_us"; echo "$CPU_QUOTA_US" > "$CG/cpu.cfs_quota_us"
  echo $$ > "$CG/cgroup.procs"   # everything started from here on inherits it
fi
ectl() { ETCDCTL_API=3 timeout 10 etcdctl --endpoints="$EP" --dial-timeout=2s --command-timeout=5s "$@"; }

etcd --name soak --data-dir "$OUT/etcd-data" --listen-client-urls "http://$EP" --advertise-client-urls "http://$EP" \
  --listen-peer-urls "http://127.0.0.1:$PPORT" --initial-advertise-peer-urls "http://127.0.0.1:$PPORT" \
  --initial-cluster "soak=http://127.0.0.1:$PPORT" --quota-backend-bytes "$QUOTA" \
  --logger zap --log-level warn > "$OUT/etcd.log" 2>&1 < /dev/null &
ETCD_PID=$!
for _ in $(seq 100); do ectl endpoint health >/dev/null 2>&1 && break; sleep 0.2; done
ectl endpoint health >/dev/null 2>&1 || { echo "etcd did not start (see $OUT/etcd.log)" >&2; exit 1; }
cat > "$OUT/kv.yaml" <<EOF
# baton-kvserver of bench/etcd_soak.sh
listen: 127.0.0.1:$HPORT
admin: {listen: 127.0.0.1:$APORT}
data_dir: $OUT/kvdata
log_level: info
store:
  kind: etcd
  endpoints: [$EP]
  record_retention: $RETENTION
  compaction_interval: $COMPACT
  quota_backend_bytes: $QUOTA
  statistics_interval: 10s
pipeline:
  retention: $RETENTION
  gc_interval: $GC
EOF
# (Before 1a40037 the default gc_batch, 256 records = 768 operations, exceeded etcd's
# --max-txn-ops of 128 and every GC commit was refused: this soak found it. GC_BATCH overrides.)
if [[ -n $GC_BATCH ]]; then echo "  gc_batch: $GC_BATCH" >> "$OUT/kv.yaml"; fi
"$KVSERVER" --config "$OUT/kv.yaml" > "$OUT/kv.log" 2>&1 < /dev/null &
KV_PID=$!
for _ in $(seq 100); do curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$APORT/readyz" && break; sleep 0.2; done
curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$APORT/readyz" || { echo "kv server did not start (see $OUT/kv.log)" >&2; exit 1; }

sample() {  # one JSON line: time, etcd status, the server's store statistics, the load's progress
  local st stats load
  st=$(ectl endpoint status -w json 2>/dev/null || echo null)
  stats=$(curl -s --max-time 3 "http://127.0.0.1:$APORT/baton/stats" 2>/dev/null || true)
  load=$(cat "$OUT/load.json" 2>/dev/null || true)
  "$PY" - "$st" "${stats:-null}" "${load:-null}" >> "$OUT/samples.jsonl" <<'EOF'
import json, sys, time
def j(s):
    try: return json.loads(s)
    except ValueError: return None
st, stats, load = (j(x) for x in sys.argv[1:4])
e = (st or [{}])[0].get("Status", {}) if isinstance(st, list) else {}
print(json.dumps({"t": time.time(), "db_size": e.get("dbSize"), "db_size_in_use": e.get("dbSizeInUse"),
                  "revision": (e.get("header") or {}).get("revision"), "stats": stats, "load": load}))
EOF
}

T0=$(date +%s.%N)
echo "# $0 -t $DUR -o $OUT; etcd $EP quota $QUOTA, retention $RETENTION, compaction $COMPACT, gc $GC; load: $THREADS threads, $KEYS keys, rate ${RATE:-max}; cpu quota ${CPU_QUOTA_US:-none} us/100 ms; load average $(cut -d' ' -f1-3 /proc/loadavg)"
sample
"$PY" "$HERE/kv_soak/keyload.py" --port "$HPORT" --threads "$THREADS" --keys "$KEYS" --rate "$RATE" \
  --seconds "$DUR" --progress-file "$OUT/load.json" --progress "$SAMPLE" > "$OUT/load.log" 2>&1 < /dev/null &
LOAD_PID=$!
END=$(( $(date +%s) + DUR ))
while kill -0 "$LOAD_PID" 2>/dev/null; do
  # (in the background: a signal is handled at once, not after the sleep)
  sleep "$(( SAMPLE < END - $(date +%s) ? SAMPLE : (END - $(date +%s) > 1 ? END - $(date +%s) : 1) ))" &
  wait $! || true
  sample
done
wait "$LOAD_PID" || true; LOAD_PID=""
sample
# Still writable after the soak: one more PUT, and no alarm raised.
code=$(curl -s -o "$OUT/final_put.out" -w '%{http_code}' --max-time 10 -X PUT -H "Idempotency-Key: final-$$-$RANDOM" \
  -H 'Content-Type: application/json' -d '{"value":"after the soak"}' "http://127.0.0.1:$HPORT/kv/soak-final" || echo 000)
alarms=$(ectl alarm list 2>&1 || true)
"$PY" - "$OUT" "$code" "$alarms" "$FLAT_PCT" "$T0" "$DUR" "$QUOTA" <<'EOF'
import json, sys
out, code, alarms, flat_pct, t0, dur, quota = sys.argv[1], sys.argv[2], sys.argv[3].strip(), float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
rows = [json.loads(l) for l in open(out + "/samples.jsonl") if l.strip()]
rows = [r for r in rows if r.get("db_size")]
mid_t = t0 + dur / 2
second = [r for r in rows if r["t"] >= mid_t]
start, mid, end = rows[0], (second[0] if second else rows[-1]), rows[-1]
peak2 = max(r["db_size"] for r in second) if second else end["db_size"]
flat = peak2 <= mid["db_size"] * (1 + flat_pct / 100) and end["db_size"] <= mid["db_size"] * (1 + flat_pct / 100)
load = end.get("load") or {}
def ok_at(r): return (r.get("load") or {}).get("ok", 0)
rate = load.get("ok", 0) / dur if dur else None
rate2 = (ok_at(end) - ok_at(mid)) / (end["t"] - mid["t"]) if end["t"] > mid["t"] else None
def store(r, k):
    s = r.get("stats") or {}
    s = s.get("store", s) if isinstance(s, dict) else {}
    return s.get(k) if isinstance(s, dict) else None
summary = {
    "seconds": dur, "quota_bytes": quota, "samples": len(rows),
    "db_size": {"start": start["db_size"], "mid": mid["db_size"], "end": end["db_size"], "max_second_half": peak2},
    "db_size_in_use": {"start": start.get("db_size_in_use"), "mid": mid.get("db_size_in_use"), "end": end.get("db_size_in_use")},
    "revision_end": end.get("revision"),
    "acked": load.get("ok"), "errors": load.get("errors"), "status": load.get("status"),
    "rate_per_s": round(rate, 1) if rate else None, "rate_second_half_per_s": round(rate2, 1) if rate2 else None,
    "keys_end": store(end, "keys"), "compactions_end": store(end, "compactions"),
    "final_put_status": code, "alarms": alarms, "flat_pct": flat_pct, "flat": flat,
    "writable": code == "200" and alarms == "",
}
json.dump(summary, open(out + "/summary.json", "w"), indent=1)
mb = lambda b: "%.1f MB" % (b / 1e6) if b else "-"
print(f"db size: start {mb(start['db_size'])}, mid {mb(mid['db_size'])}, end {mb(end['db_size'])}, second-half max {mb(peak2)} "
      f"(quota {mb(quota)}); in use: start {mb(start.get('db_size_in_use'))}, mid {mb(mid.get('db_size_in_use'))}, end {mb(end.get('db_size_in_use'))}")
print(f"load: {load.get('ok')} acked, {load.get('errors')} errors {load.get('status')}; {summary['rate_per_s']}/s "
      f"(second half {summary['rate_second_half_per_s']}/s); keys {summary['keys_end']}, compactions {summary['compactions_end']}")
print(f"after the soak: PUT -> {code}; alarms: '{alarms}'; flat (second-half max and end <= mid + {flat_pct:g} %): {flat}")
print("verdict:", "OK (writable, flat)" if summary["writable"] and flat else "FAILED")
sys.exit(0 if summary["writable"] and flat else 1)
EOF
