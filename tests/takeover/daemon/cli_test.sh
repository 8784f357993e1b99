#!/usr/bin/env bash
# baton-takeoverd's command line, without root or a kernel: a bad config exits 2 with a message
# naming the key; a corrupt state file exits 2; --check-config accepts a good config without writing any state; `status` on a
# socket nobody listens on exits 3 (also `drain`); external health (an embedder's) is refused with 2; a
# pool of addresses is accepted; --parent-fd (a server's supervised agent) exits 0 when the server is
# gone before the config and 2 on a bad first line or config. Usage: cli_test.sh /path/to/baton-takeoverd
set -euo pipefail
D=${1:?usage: cli_test.sh BATON_TAKEOVERD}
W=$(mktemp -d /tmp/baton-takeoverd-cli.XXXXXX)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_rc() {  # expect_rc RC CMD... ; output in $W/out
  local want=$1 rc=0; shift
  "$@" > "$W/out" 2>&1 || rc=$?
  [[ $rc == "$want" ]] || fail "'$*' exited $rc, expected $want: $(cat "$W/out")"
}
openssl rand -hex 32 > "$W/key"; chmod 600 "$W/key"
cat > "$W/good.yaml" <<YAML
node_id: 1
interface: eth0
service_address: 10.78.0.100/24
key_file: $W/key
incarnation_file: $W/inc/state
peers: [{id: 1, priority: 2, address: "10.79.0.1:7946"}, {id: 2, priority: 1, address: "10.79.0.2"}]
YAML
expect_rc 0 "$D" --config "$W/good.yaml" --check-config
grep -q "config ok" "$W/out" || fail "no 'config ok'"
[[ ! -e $W/inc ]] || fail "--check-config wrote state"

sed 's/heartbeat: .*//; s/^node_id: 1/node_id: 7/' "$W/good.yaml" > "$W/bad.yaml"
expect_rc 2 "$D" --config "$W/bad.yaml"
grep -q "node_id 7 is not in the peer list" "$W/out" || fail "bad config message: $(cat "$W/out")"
printf 'node_id: 1\ntimming: {}\n' > "$W/typo.yaml"
expect_rc 2 "$D" --config "$W/typo.yaml" --check-config
grep -q "timming: unknown key" "$W/out" || fail "typo message: $(cat "$W/out")"
# A damaged state file stops the start-up with exit 2 (never silently ignored), before any kernel
# or network access, so this needs no root.
printf 'baton-takeoverd-state 1\nmembers 1\n' > "$W/bad.state"
sed "s|^key_file:.*|&\nstate_file: $W/bad.state|" "$W/good.yaml" > "$W/badstate.yaml"
expect_rc 2 "$D" --config "$W/badstate.yaml" --status-socket "$W/s.sock"
grep -q "corrupt state file" "$W/out" || fail "corrupt state message: $(cat "$W/out")"
expect_rc 3 "$D" drain --socket "$W/nobody.sock" --slot 1
# External health is for an embedding process (baton-kvserver): the standalone daemon refuses it.
sed 's/^service_address: .*/service_addresses: [10.78.0.100\/24, 10.78.0.101\/24]\nhealth_check: {kind: external}/' \
  "$W/good.yaml" > "$W/external.yaml"
expect_rc 2 "$D" --config "$W/external.yaml" --check-config
grep -q "health_check.kind: external" "$W/out" || fail "external health message: $(cat "$W/out")"
# A pool config is accepted.
sed 's/^service_address: .*/service_addresses: [10.78.0.100\/24, 10.78.0.101\/24]\nrebalance: true/' \
  "$W/good.yaml" > "$W/pool.yaml"
expect_rc 0 "$D" --config "$W/pool.yaml" --check-config
chmod 644 "$W/key"
expect_rc 2 "$D" --config "$W/good.yaml" --check-config
expect_rc 2 "$D"
expect_rc 2 "$D" --config "$W/missing.yaml"
expect_rc 3 "$D" status --socket "$W/nobody.sock"
# Supervised by a server (--parent-fd, takeover/daemon/parent_link.h): a server gone before it
# sent the config is a quiet exit 0; a first line that is not the config, a config of another
# protocol version (takeover/daemon/agent_link_protocol.h), or a config the daemon refuses (named
# under "takeover."), is 2 -- all before any kernel access.
expect_rc 0 "$D" --parent-fd 3 3</dev/null
expect_rc 2 "$D" --parent-fd 3 3< <(echo garbage)
grep -q 'not its config message' "$W/out" || fail "--parent-fd garbage message: $(cat "$W/out")"
expect_rc 2 "$D" --parent-fd 3 3< <(python3 -c 'import json,sys; print(json.dumps({"op": "config", "yaml": open(sys.argv[1]).read()}))' "$W/good.yaml")
grep -q 'agent protocol version 0 from the server, expected 1' "$W/out" || fail "--parent-fd version message: $(cat "$W/out")"
expect_rc 2 "$D" --parent-fd 3 3< <(python3 -c 'import json,sys; print(json.dumps({"op": "config", "version": 1, "yaml": open(sys.argv[1]).read()}))' "$W/bad.yaml")
grep -q "takeover.*node_id 7 is not in the peer list" "$W/out" || fail "--parent-fd bad config message: $(cat "$W/out")"
echo PASS
