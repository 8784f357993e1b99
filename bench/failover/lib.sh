# Helpers of the fail-over benchmark scripts (bench/failover.sh, bench/failover/keepalived6.sh);
# sourced, not run. Times are wall-clock epoch seconds with microseconds ($EPOCHREALTIME), the
# clock of the client logs and of `ip -ts monitor`. Needs LC_ALL=C ('.' as decimal separator).

calc() { awk "BEGIN { printf \"%.6f\", $* }"; }
now() { printf '%s' "$EPOCHREALTIME"; }
# wait_until SECONDS CMD...: poll CMD every 10 ms until it succeeds (0) or time runs out (1).
wait_until() {
  local limit_us; limit_us=$(awk -v l="$1" 'BEGIN { printf "%d", l*1000000 }'); shift
  local end=$(( ${EPOCHREALTIME/./} + limit_us ))
  while ! "$@"; do (( ${EPOCHREALTIME/./} < end )) || return 1; sleep 0.01; done
}
# sleep_until EPOCH_S: returns at once if that time has passed.
sleep_until() { local d; d=$(calc "$1 - $(now)"); awk -v d="$d" 'BEGIN { exit !(d > 0) }' && sleep "$d" || true; }
# rand_phase INTERVAL: a random delay in [0, INTERVAL) s, so that a fault hits a random phase of
# the heartbeat / advert cycle, as a real one would.
rand_phase() { awk -v r="$RANDOM" -v a="$1" 'BEGIN { printf "%.6f", r / 32768 * a }'; }
# event KEY VALUE: one line of the run's events file ($RUN/events), read by failover_analyze.py.
event() { echo "$1 $2" >> "$RUN/events"; }
# print_result SYSTEM: the per-run JSON line on stdin, shortened to one readable line.
print_result() {
  python3 -c '
import json, sys
r = json.loads(sys.stdin.read()); keys = [k for k in r if k not in ("mode", "run", "split_evidence", "isolation_check")]
print("  " + sys.argv[1] + " " + r["run"] + ": " + ", ".join(f"{k}={r[k]}" for k in keys))' "$1"
}
# usage [STATUS]: the calling script's header comment (line 2 up to `set -euo`), then exit.
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit "${1:-0}"; }
