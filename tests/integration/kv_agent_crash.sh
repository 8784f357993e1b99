#!/usr/bin/env bash
# baton-kvserver with its take-over agent in a supervised child process (takeover_mode: process,
# baton-takeoverd --parent-fd), in ONE network namespace this test creates (etcd on its loopback,
# a group of one moving a service address on a veth interface; heartbeat 50 ms, health period
# 200 ms; the child's watchdog is health_check.liveness, 300 ms by default). Asserts:
#   (a) kill -9 of the server: the child sees EOF, removes the address within CRASH_BOUND (about
#       two heartbeats; the bound is generous for a loaded machine, the time is printed) and exits;
#   (b) a hung server (SIGSTOP): the child's watchdog removes the address within HANG_BOUND and the
#       child exits; after SIGCONT the server starts a new child and the address comes back;
#   (c) kill -9 of the child: the server marks its slot released at once (an INCR through the
#       address still in the kernel answers 503), starts a new child after its back-off (1.5 s
#       here, --test-agent-restart-ms) and INCRs work again under a new fence;
#   (d) a server restarted right after kill -9 starts at once (its new child waits for the old
#       one's hand-over instead of failing to bind) and serves the address again.
# Root only (skip outside root, fail under CI=true). Every process is ended by its PID; the
# namespace is deleted on every exit path. Environment (CTest, kv_agent.cmake): KVSERVER.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=../testing/require_root.sh
. "$REPO/tests/testing/require_root.sh"
: "${KVSERVER:?set KVSERVER to the baton-kvserver binary}"

NS="kvc$$"
NS=${NS:0:12}
WORK=$(mktemp -d /tmp/baton-kv_agent_crash.XXXXXX)
VIP=10.79.0.100
HTTP=8080
ADMIN=8081  # the operator plane (status, drain)
# Bounds (ms). Crash: EOF + removal, ~2 heartbeats expected. Hang: the 300 ms watchdog + removal
# (below the 600 ms that three missed 200 ms health periods cost before the liveness keepalive).
# Generous for a loaded 2-core machine; the measured times are printed.
CRASH_BOUND_MS=1000
HANG_BOUND_MS=600
# shellcheck source=kv_agent_lib.sh
. "$HERE/kv_agent_lib.sh"
write_kv_yaml "process" 50ms

start_kv() {
  rm -f "$WORK/ready"
  ip netns exec "$NS" "$KVSERVER" --config "$WORK/kv.yaml" --ready-file "$WORK/ready" \
    --test-agent-restart-ms 1500 >> "$WORK/kv.log" 2>&1 &
  KV_PID=$!
  wait_until 20 test -s "$WORK/ready" || fail "server did not listen"
  wait_until 10 has_vip || fail "service address did not appear"
}
# The pid of the server's agent child (from /proc: the child of KV_PID running baton-takeoverd).
agent_of() {
  local c
  for c in $(cat "/proc/$1/task/"*/children 2>/dev/null); do
    if grep -q baton-takeoverd "/proc/$c/cmdline" 2>/dev/null; then echo "$c"; return 0; fi
  done
  return 1
}
gone() { ! kill -0 "$1" 2>/dev/null; }
# The pid's state letter (T: stopped). Zombies count as gone for the child checks.
alive() { [[ -e /proc/$1 ]] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
not_alive() { ! alive "$1"; }

# --- (a) kill -9 of the server ------------------------------------------------------------------
start_kv
AGENT=$(agent_of "$KV_PID") || fail "no agent child under the server $KV_PID"
CHILDREN+=("$AGENT")
wait_until 5 incr a1 >/dev/null || fail "no INCR through the service address"
t0=$(now_ms)
kill -9 "$KV_PID"; wait "$KV_PID" 2>/dev/null || true; KV_PID=""
wait_until 5 no_vip || fail "address still present 5 s after the server was killed"
took=$(( $(now_ms) - t0 ))
(( took <= CRASH_BOUND_MS )) || fail "address removed only ${took} ms after kill -9 (bound ${CRASH_BOUND_MS} ms)"
wait_until 3 not_alive "$AGENT" || fail "agent child $AGENT still alive 3 s after its server died"
log "(a) kill -9 server: address removed after ${took} ms; agent child $AGENT exited"

# --- (b) hung server (SIGSTOP) ------------------------------------------------------------------
start_kv
AGENT=$(agent_of "$KV_PID") || fail "no agent child under the server $KV_PID"
CHILDREN+=("$AGENT")
wait_until 5 incr b1 >/dev/null || fail "no INCR through the service address"
t0=$(now_ms)
kill -STOP "$KV_PID"
wait_until 5 no_vip || { kill -CONT "$KV_PID"; fail "address still present 5 s after SIGSTOP"; }
took=$(( $(now_ms) - t0 ))
wait_until 3 not_alive "$AGENT" || { kill -CONT "$KV_PID"; fail "agent child $AGENT alive 3 s after its server stopped"; }
kill -CONT "$KV_PID"
(( took <= HANG_BOUND_MS )) || fail "address removed only ${took} ms after SIGSTOP (bound ${HANG_BOUND_MS} ms)"
log "(b) SIGSTOP server: address removed after ${took} ms (watchdog 300 ms); agent child $AGENT exited"
wait_until 10 has_vip || fail "address not back after SIGCONT (no new agent child?)"
AGENT2=$(agent_of "$KV_PID") || fail "no new agent child after SIGCONT"
CHILDREN+=("$AGENT2")
[[ $AGENT2 != "$AGENT" ]] || fail "the agent child did not change"
wait_until 5 incr b2 >/dev/null || fail "no INCR after SIGCONT"
log "(b) SIGCONT: new agent child $AGENT2, address back, INCR works"

# --- (c) kill -9 of the child -------------------------------------------------------------------
epoch1=$(status | jq_py 'd["slots"][0]["fence"]["epoch"]')
kill -9 "$AGENT2"
wait_until 3 not_alive "$AGENT2" || fail "agent child $AGENT2 survived kill -9"
# The address stays in the kernel (nobody removed it), but the server no longer serves it: within
# a moment of the child's death (the server reads EOF) writes there are refused. A new key per
# attempt: a key that was answered once is replayed from its saved reply.
code=""
for i in $(seq 1 25); do
  code=$(in_ns curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X POST \
         "http://$VIP:$HTTP/kv/c/incr" -H "Idempotency-Key: \"c1-$i\"" -d '{"by":1}' || true)
  [[ $code == 503 ]] && break
  sleep 0.02
done
[[ $code == 503 ]] || fail "INCR through $VIP answered $code after the agent child died, want 503"
grep -q "every slot marked released" "$WORK/kv.log" || fail "the server did not log the released slots"
log "(c) agent child killed: INCR through the address answers 503"
wait_until 10 incr c2 >/dev/null || fail "no INCR after the agent child came back"
AGENT3=$(agent_of "$KV_PID") || fail "no new agent child"
CHILDREN+=("$AGENT3")
epoch2=$(status | jq_py 'd["slots"][0]["fence"]["epoch"]')
(( epoch2 > epoch1 )) || fail "the fence epoch did not grow across the restart ($epoch1 -> $epoch2)"
log "(c) new agent child $AGENT3; INCR works under epoch $epoch2 (was $epoch1)"

# --- (d) restart right after kill -9 (as a service manager does) ---------------------------------
# The old child is still handing over (it waits for its server's end, then a grace period) when
# the new server starts its own child: the new child waits for the old one's exit (the node's
# instance lock) instead of failing to bind the take-over port; the server starts at once.
AGENT4=$(agent_of "$KV_PID") || fail "no agent child under the server $KV_PID"
kill -9 "$KV_PID"; wait "$KV_PID" 2>/dev/null || true; KV_PID=""
t0=$(now_ms)
start_kv
took=$(( $(now_ms) - t0 ))
kill -0 "$KV_PID" 2>/dev/null || fail "the restarted server exited"
not_alive "$AGENT4" || fail "the old agent child $AGENT4 still runs beside the new one"
AGENT5=$(agent_of "$KV_PID") || fail "no agent child under the restarted server"
CHILDREN+=("$AGENT5")
wait_until 5 incr d1 >/dev/null || fail "no INCR after the restart"
log "(d) restarted right after kill -9: serving again after ${took} ms (old child $AGENT4 gone, new child $AGENT5)"

# --- SIGTERM still hands over and ends the child -------------------------------------------------
kill -TERM "$KV_PID"
wait "$KV_PID" || fail "server exited with $? after SIGTERM"
KV_PID=""
no_vip || fail "address still present after the server exited"
wait_until 3 not_alive "$AGENT5" || fail "agent child $AGENT5 alive after the server's SIGTERM"
log "PASS"
