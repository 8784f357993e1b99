#!/usr/bin/env python3
"""Key-only load for bench/etcd_soak.sh: THREADS HTTP/1.1 keep-alive clients of baton-kvserver that
send PUT /kv/k<N> (N in [0, KEYS): a bounded key space, overwritten) and POST /kv/c<M>/incr
(M in [0, 8)), each request with its own `Idempotency-Key` and never an acknowledgement: every
request leaves a completion record that only the retention collects. As fast as the server
answers (or RATE requests/s in all, if given). Every PROGRESS s (and at the end) it rewrites
PROGRESS_FILE with {"t": unix time, "ok": n, "errors": n, "status": {code: n}}.
Stops on SIGTERM / SIGINT or after SECONDS.

  keyload.py --port P [--host 127.0.0.1] [--threads 4] [--keys 1000] [--seconds 0]
             [--rate 0] --progress-file F [--progress 5]
"""
import argparse
import http.client
import json
import os
import random
import signal
import threading
import time
import uuid

stop = threading.Event()
lock = threading.Lock()
counts = {"ok": 0, "errors": 0, "status": {}}


def worker(a, seed):
    rnd = random.Random(seed)
    conn = None
    gap = a.threads / a.rate if a.rate > 0 else 0.0
    nxt = time.monotonic()
    while not stop.is_set():
        if gap:
            nxt += gap
            d = nxt - time.monotonic()
            if d > 0:
                time.sleep(d)
        if rnd.random() < 0.5:
            method, path, body = "PUT", f"/kv/k{rnd.randrange(a.keys)}", json.dumps({"value": uuid.uuid4().hex})
        else:
            method, path, body = "POST", f"/kv/c{rnd.randrange(8)}/incr", json.dumps({"by": 1})
        headers = {"Idempotency-Key": uuid.uuid4().hex, "Content-Type": "application/json"}
        try:
            if conn is None:
                conn = http.client.HTTPConnection(a.host, a.port, timeout=5)
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            r.read()
            code = r.status
        except (OSError, http.client.HTTPException):
            code = "conn"
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.05)
        with lock:
            if code == 200:
                counts["ok"] += 1
            else:
                counts["errors"] += 1
            counts["status"][str(code)] = counts["status"].get(str(code), 0) + 1


def write_progress(path):
    with lock:
        snap = {"t": time.time(), "ok": counts["ok"], "errors": counts["errors"], "status": dict(counts["status"])}
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(snap, f)
    os.replace(tmp, path)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--keys", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=0)
    p.add_argument("--rate", type=float, default=0)
    p.add_argument("--progress-file", required=True)
    p.add_argument("--progress", type=float, default=5)
    a = p.parse_args()
    if not 1 <= a.threads <= 256 or not 1 <= a.keys <= 10**7:
        p.error("--threads 1..256, --keys 1..10^7")
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    ts = [threading.Thread(target=worker, args=(a, i), daemon=True) for i in range(a.threads)]
    for t in ts:
        t.start()
    end = time.monotonic() + a.seconds if a.seconds > 0 else float("inf")
    while not stop.is_set() and time.monotonic() < end:
        stop.wait(min(a.progress, max(0.0, end - time.monotonic())))
        write_progress(a.progress_file)
    stop.set()
    for t in ts:
        t.join(6)
    write_progress(a.progress_file)


if __name__ == "__main__":
    main()
