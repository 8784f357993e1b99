# Shared harness of the take-over lab tests (tests/integration/takeover_*.sh); sourced, not run.
# Builds a lab with scripts/lab.sh (three hosts, client, cluster network), runs baton-takeoverd and
# a UDP responder on every host, a prober in the client, `ip -ts monitor address` in every host,
# and a poller that records any instant at which two hosts hold the service address.
# Everything runs inside namespaces this test creates; `cleanup` (trap EXIT) removes them on every
# exit path. Environment (set by CTest, see takeover.cmake): TAKEOVERD, RESPONDER, PROBER, INJECT.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=../testing/require_root.sh
. "$REPO/tests/testing/require_root.sh"
: "${TAKEOVERD:?set TAKEOVERD to the baton-takeoverd binary}"
: "${RESPONDER:?set RESPONDER to baton-udp-responder}"
: "${PROBER:?set PROBER to baton-udp-prober}"
LAB=$REPO/scripts/lab.sh
PY=$(command -v python3)

# Unique per run: concurrent runs (other engineers, other tests) never share a namespace.
PFX=${PFX:-tk$$${TEST_TAG:-}}
PFX=${PFX:0:12}
WORK=$(mktemp -d "/tmp/baton-${TEST_NAME:-takeover}.XXXXXX")
HB=${HB:-50ms}            # heartbeat of the daemons under test
DPORT=7946                # daemons' UDP port (cluster network)
SPORT=7777                # responders' port
NHOSTS=3
declare -A PRIO=([h1]=150 [h2]=100 [h3]=50)
CAP_PIDS=()
BG_PIDS=()                # helpers running outside the namespaces (poller)
FAILED=1

log() { printf '%s %s\n' "$(date +%H:%M:%S.%3N)" "$*"; }
fail() { log "FAIL: $*"; exit 1; }

cleanup() {
  local rc=$? p
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  "$LAB" down -p "$PFX" || true
  if (( rc != 0 )) || [[ -n ${KEEP:-} ]]; then
    log "logs in $WORK (exit $rc); last daemon lines:"
    for f in "$WORK"/h*.log; do [[ -f $f ]] && { echo "--- $f"; tail -n 15 "$f"; }; done
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# wait_until SECONDS CMD... : poll CMD every 10 ms until it succeeds (0) or time runs out (1).
wait_until() {
  local end=$(( ${EPOCHREALTIME/./} + ${1%.*} * 1000000 )); shift
  while ! "$@"; do
    (( ${EPOCHREALTIME/./} < end )) || return 1
    sleep 0.01
  done
}

ns() { echo "${PFX}$1"; }
lab_up() {   # extra lab.sh options in LAB_UP_ARGS (e.g. -6)
  # shellcheck disable=SC2086
  "$LAB" up -p "$PFX" -n "$NHOSTS" -k ${LAB_UP_ARGS:-} >/dev/null
  VIP=$("$LAB" ip -p "$PFX" vip)
  openssl rand -hex 32 > "$WORK/cluster.key"
  chmod 600 "$WORK/cluster.key"
}

# write_config hK [extra yaml lines]: hK's daemon config (cluster network, heartbeat $HB). Hosts
# listed in WITNESSES (e.g. "h3") are witnesses: capacity 0 in every peer list, and their own
# config says `witness: true` and has no interface. SHRINK_AFTER, when set, is
# timing.shrink_after (heartbeats; 0 = static group), DISCOVERY timing.discovery (heartbeats of
# start-up quiet: more than the default 3 lets daemons started one after the other on a loaded
# machine all hear each other before the first election); unset, the daemon's defaults.
write_config() {
  local h=$1 k=${1#h} i cap
  {
    echo "node_id: $k"
    if is_witness "$h"; then echo "witness: true"; else echo "interface: eth0"; fi
    echo "service_address: $VIP/24"
    echo "key_file: $WORK/cluster.key"
    echo "bind_host: $("$LAB" cip -p "$PFX" "$h")"
    echo "status_socket: $WORK/$h.sock"
    echo "incarnation_file: $WORK/$h.incarnation"
    echo "state_file: $WORK/$h.state"
    echo "timing: {heartbeat: $HB${SHRINK_AFTER:+, shrink_after: $SHRINK_AFTER}${DISCOVERY:+, discovery: $DISCOVERY}}"
    echo "peers:"
    for (( i = 1; i <= NHOSTS; i++ )); do
      cap=""; is_witness "h$i" && cap="capacity: 0, "
      echo "  - {id: $i, priority: ${PRIO[h$i]}, ${cap}address: \"$("$LAB" cip -p "$PFX" "h$i"):$DPORT\"}"
    done
    if [[ $# -ge 2 ]]; then printf "%s\n" "${@:2}"; fi
  } > "$WORK/$h.yaml"
}
is_witness() { [[ " ${WITNESSES:-} " == *" $1 "* ]]; }

start_daemon() {   # start_daemon hK  (config must exist)
  "$LAB" exec -p "$PFX" "$1" "$TAKEOVERD" --config "$WORK/$1.yaml" >> "$WORK/$1.log" 2>&1 &
  disown $!
}
start_responder() {   # extra responder options in RESPONDER_ARGS (e.g. --ipv6)
  # shellcheck disable=SC2086
  "$LAB" exec -p "$PFX" "$1" "$RESPONDER" --name "$1" --port "$SPORT" --max-seconds 300 ${RESPONDER_ARGS:-} \
    > "$WORK/resp-$1.log" 2>&1 &
  disown $!
}
start_monitor() {
  ip -n "$(ns "$1")" -ts monitor address >> "$WORK/mon-$1.log" 2>&1 &
  disown $!
}
start_prober() {   # writes $WORK/client.log; $WORK/steady after 1 s of answers from one host
  "$LAB" exec -p "$PFX" c "$PROBER" --target "$VIP" --port "$SPORT" --period-ms 2 --timeout-ms 20 \
    --max-seconds 240 --steady-seconds 1 --steady-file "$WORK/steady" --stop-file "$WORK/stop" \
    --log "$WORK/client.log" > "$WORK/prober.err" 2>&1 &
  disown $!
}
stop_prober() { touch "$WORK/stop"; sleep 0.2; }

# start_host hK: monitor, responder and daemon on hK.
start_host() { start_monitor "$1"; start_responder "$1"; start_daemon "$1"; }

has_vip() { ip -n "$(ns "$1")" -4 -o addr show dev eth0 2>/dev/null | grep -q " $VIP/"; }
# Hosts listed in $WORK/dead crashed (bridge port down): an address left in a dead host's
# namespace reaches nobody, as on a powered-off machine, so holders() ignores them.
holders() {   # space-separated live hosts that hold the address now; -r: read in reverse order
  local h i out=() order=()
  for (( i = 1; i <= NHOSTS; i++ )); do order+=("h$i"); done
  if [[ ${1:-} == -r ]]; then order=(); for (( i = NHOSTS; i >= 1; i-- )); do order+=("h$i"); done; fi
  for h in "${order[@]}"; do
    grep -qx "$h" "$WORK/dead" 2>/dev/null && continue
    has_vip "$h" && out+=("$h")
  done
  echo "${out[*]:-}"
}
# crash_host hK: bridge port down, every process in hK SIGKILLed; prints the crash time.
crash_host() {
  echo "$1" >> "$WORK/dead"
  local t=$EPOCHREALTIME
  "$LAB" crash -p "$PFX" "$1"
  # When lab.sh returns, the host is certainly cut off; under load that can be
  # well after $t, and requests sent in between may still be answered by it.
  echo "$EPOCHREALTIME" > "$WORK/crashed-$1"
  echo "$1=$t" >> "$WORK/until"
  echo "$t"
}
# revive_host hK: as after a reboot: the address the dead daemon left must be gone (the kernel
# valid_lft backstop removes it), then the port comes back up.
revive_host() {
  wait_until 10 bash -c "! ip -n $(ns "$1") -4 -o addr show dev eth0 | grep -q ' $VIP/'" \
    || fail "the address left on crashed $1 did not expire (valid_lft backstop)"
  "$LAB" restore -p "$PFX" "$1"
  echo "$1=$EPOCHREALTIME" >> "$WORK/revived"
  sed -i "/^$1\$/d" "$WORK/dead"
}
sole_holder_is() { [[ $(holders) == "$1" ]]; }
any_sole_holder() { local h; h=$(holders); [[ -n $h && $h != *" "* ]]; }

# A background poller: every 10 ms reads `ip addr` on all hosts and appends any instant with two
# holders to $WORK/double. One reading per host is not a snapshot (a clean move -- removal, then
# add -- can look like two holders if the old holder is read before its removal and the new one
# after its add), so a hit counts only if a second reading in the opposite order confirms it; the
# time-stamped monitor logs are the exact check (assert_never_two_holders). Bounded life.
start_poller() {
  (
    end=$(( ${EPOCHREALTIME/./} + 200000000 ))
    while (( ${EPOCHREALTIME/./} < end )); do
      h=$(holders)
      if [[ $h == *" "* ]]; then
        h2=$(holders -r)
        if [[ $h2 == *" "* ]]; then echo "$EPOCHREALTIME $h / $h2" >> "$WORK/double"; fi
      fi
      sleep 0.01
    done
  ) &
  BG_PIDS+=($!)
}
assert_never_two_holders() {
  if [[ -s $WORK/double ]]; then
    fail "two hosts held $VIP at once (ip addr polling): $(head -3 "$WORK/double")"
  fi
  local until=()
  if [[ -f $WORK/until ]]; then
    while read -r u; do until+=(--until "$u"); done < "$WORK/until"
  fi
  if [[ -f $WORK/revived ]]; then
    while read -r u; do until+=(--revived "$u"); done < "$WORK/revived"
  fi
  "$PY" "$HERE/takeover_analyze.py" single-holder "$VIP" "${until[@]}" "$WORK"/mon-h*.log \
    || fail "ip monitor shows two holders at once"
}

status() { "$TAKEOVERD" status --socket "$WORK/$1.sock" --json; }
# members_are LIST hK...: every listed host reports the committed membership LIST (python list).
members_are() {
  local want=$1 h; shift
  for h in "$@"; do
    [[ $(status_field "$h" "j.get('membership', {}).get('members') == $want and not j['membership']['old_members']" 2>/dev/null) == True ]] || return 1
  done
}
# answered_since T hK: the client log has an answer from hK to a request sent at or after T.
answered_since() { awk -v t="$1" -v h="$2" '$2 >= t && $3 == "OK" && $4 == h { f = 1; exit } END { exit !f }' "$WORK/client.log"; }
# status_field hK python-expression-on-j : e.g. status_field h1 'j["epoch"]'
status_field() { status "$1" | "$PY" -c "import json,sys; j=json.load(sys.stdin); print($2)"; }
