#!/usr/bin/env python3
"""A stand-in for `baton-takeoverd --parent-fd N` (takeover/daemon/parent_link.h) for
kv_agent_supervisor_test: speaks the agent link protocol (takeover/daemon/agent_link_protocol.h,
version PROTOCOL_VERSION below) without any kernel or network access.

On start it reads the config line, checks its version, says {"ev":"started"} and reports slot 0 held with epoch
5 + (number of starts so far); answers status requests; on {"op":"shutdown"} reports the slot
released and exits 0; on EOF exits 0. Every line it receives is appended to
$FAKE_AGENT_DIR/lines-<pid>; each start appends its pid to $FAKE_AGENT_DIR/starts.
FAKE_AGENT_MODE=fail: exit 1 before saying started (a daemon that cannot start).
FAKE_AGENT_MODE=version: say started with another protocol version (a mismatched binary).
FAKE_AGENT_MODE=orphan: after reporting the slot, start a process of its own that keeps the link's
descriptor open for 60 s (its pid in $FAKE_AGENT_DIR/orphan), so that the agent's death is no EOF."""
import json
import os
import socket
import sys
import time

# agent_link::kVersion: the server refuses an agent that says another one.
PROTOCOL_VERSION = 1

fd = int(sys.argv[sys.argv.index("--parent-fd") + 1])
d = os.environ["FAKE_AGENT_DIR"]
if os.environ.get("FAKE_AGENT_MODE") == "fail":
    sys.exit(1)
with open(os.path.join(d, "starts"), "a") as f:
    f.write("%d\n" % os.getpid())
with open(os.path.join(d, "starts")) as f:
    starts = len(f.read().split())
sock = socket.socket(fileno=fd)
rf = sock.makefile("r")
log = open(os.path.join(d, "lines-%d" % os.getpid()), "a", buffering=1)


def send(obj):
    sock.sendall((json.dumps(obj) + "\n").encode())


config = json.loads(rf.readline())
log.write(json.dumps({"op": config["op"], "version": config.get("version", 0)}) + "\n")
if config["op"] != "config" or config.get("version", 0) != PROTOCOL_VERSION:
    sys.exit(2)
epoch = 5 + starts
mode = os.environ.get("FAKE_AGENT_MODE")
send({"ev": "started", "version": PROTOCOL_VERSION + 1 if mode == "version" else PROTOCOL_VERSION})
send({"ev": "slot", "slot": 0, "address": "10.0.0.1", "held": True, "epoch": epoch})
if mode == "orphan" and starts == 1:
    orphan = os.fork()
    if orphan == 0:
        time.sleep(60)
        os._exit(0)
    with open(os.path.join(d, "orphan"), "w") as f:
        f.write("%d\n" % orphan)
for line in rf:
    log.write(line)
    msg = json.loads(line)
    if msg["op"] == "status":
        send({"ev": "status", "id": msg["id"],
              "status": {"fake": True, "slots": [{"slot": 0, "held_by_me": True}]}})
    elif msg["op"] == "shutdown":
        send({"ev": "slot", "slot": 0, "address": "10.0.0.1", "held": False, "epoch": epoch})
        sys.exit(0)
sys.exit(0)
