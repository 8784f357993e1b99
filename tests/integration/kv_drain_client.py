#!/usr/bin/env python3
"""A keep-alive HTTP client for kv_drain.sh: one persistent connection to the service address,
INCRs back to back, each with its own Idempotency-Key (so a retry after a lost reply is safe).

Like any keep-alive client (and unlike baton's retrying client, which has its own handshake
timeout) it reconnects only when its connection ends: a reset or a close from the server makes it
retry the same key at once (after 1 ms); an attempt that gets no answer within --attempt-timeout
is what a drain must never cause. Writes one JSON line per attempt to --out:
  {"t0": start (unix s), "t1": end, "node": Baton-Node or null, "outcome": "ok" | "timeout" |
   "reset" | "closed" | "refused" | "http-<code>" | "error", "conn": connection number, "key"}
and runs until --stop-file exists."""
import argparse
import http.client
import json
import os
import socket
import time

p = argparse.ArgumentParser()
p.add_argument("--host", required=True)
p.add_argument("--port", type=int, default=8080)
p.add_argument("--attempt-timeout", type=float, default=1.0)
p.add_argument("--out", required=True)
p.add_argument("--stop-file", required=True)
p.add_argument("--id", default="ka")
a = p.parse_args()

out = open(a.out, "w", buffering=1)
conn = None
conns = 0
n = 0
while not os.path.exists(a.stop_file):
    n += 1
    key = "%s-%d" % (a.id, n)
    while True:  # attempts of one request
        if conn is None:
            conn = http.client.HTTPConnection(a.host, a.port, timeout=a.attempt_timeout)
            conns += 1
        t0 = time.time()
        rec = {"t0": t0, "key": key, "conn": conns, "node": None}
        try:
            conn.request("POST", "/kv/%s/incr" % a.id, body='{"by":1}',
                         headers={"Idempotency-Key": '"%s"' % key,
                                  "Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            rec["node"] = r.getheader("Baton-Node")
            rec["outcome"] = "ok" if r.status == 200 else "http-%d" % r.status
            if r.will_close:
                conn.close()
                conn = None
        except socket.timeout:
            rec["outcome"] = "timeout"
        except ConnectionRefusedError:
            rec["outcome"] = "refused"
        except ConnectionResetError:
            rec["outcome"] = "reset"
        except (http.client.RemoteDisconnected, BrokenPipeError, http.client.BadStatusLine):
            rec["outcome"] = "closed"
        except OSError as e:
            rec["outcome"] = "error"
            rec["error"] = str(e)
        rec["t1"] = time.time()
        out.write(json.dumps(rec) + "\n")
        if rec["outcome"] == "ok":
            break
        if conn is not None and rec["outcome"] != "http-503":
            conn.close()
            conn = None
        time.sleep(0.001)
        if os.path.exists(a.stop_file):
            break
