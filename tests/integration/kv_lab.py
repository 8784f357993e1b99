#!/usr/bin/env python3
"""Analysis of a kv lab run (scripts/kvlab.sh + baton-kv-driver): used by the whole-system test
(tests/integration/kv_lab.sh) and the demo (scripts/demo.sh). Wall-clock times are seconds since
the epoch; the driver's timeline is in ms since its start (summary "start_unix").

  holds LABDIR VIP               hold intervals of VIP per host from the time-stamped
                                 `ip -ts monitor address` logs (LABDIR/mon-hK.log), cut at each
                                 host crash (LABDIR/crashes: the host holds nothing from its crash
                                 until its restore, LABDIR/restores); prints one line per interval;
                                 exit 1 if two hosts ever held VIP at once.
  answered DRIVERDIR T           exit 0 if the driver's timeline (DRIVERDIR/timeline.jsonl,
                                 DRIVERDIR/start_unix) has an acknowledged request sent after wall
                                 time T; prints the ms from T to its completion.
  report LABDIR VIP DRIVERDIR    a readable timeline of the run: who held VIP when, the faults
                                 (LABDIR/events: "T what"), the client's outages around them, and
                                 the driver's totals (DRIVERDIR/summary.json).
  fence-check LABDIR DRIVERDIR   the fencing contract seen from outside: no host acknowledged a
                                 fresh write (not a replay) while its fence for the slot was not
                                 ready (between "slot S ... taken here, epoch E" and "fence of slot
                                 S ... ready: epoch E" in LABDIR/kv-hK.log; 50 ms slack each side);
                                 prints the violations; exit 1 if any.
  faults LABDIR DRIVERDIR        per fault in LABDIR/events (lines "T crash of hK...", "T cut of
                                 hK..."): the client outage it caused (the longest interval
                                 without a completed request, all clients together, that begins
                                 within 2 s after T), the requests retried and replays served
                                 that completed in it (or 1 s after); then median / p90 / max.
"""
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench",
                                "analysis"))
from lab_logs import (address_events, down_windows, hold_intervals as host_holds,  # noqa: E402
                      load_jsonl, log_time, percentile, two_holders, MONITOR_SKEW)


def read_pairs(path):
    """Lines "hK=T" -> list of (host, t)."""
    out = []
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if "=" in line:
                h, t = line.split("=", 1)
                out.append((h, float(t)))
    return out


crashed_ends = set()


def hold_intervals(labdir, vip):
    """[(start, end, host)] of VIP, end = inf while still held. Ends at a crash are also in
    crashed_ends."""
    crashes = read_pairs(os.path.join(labdir, "crashes"))
    restores = read_pairs(os.path.join(labdir, "restores"))
    hosts = sorted(f[len("mon-"):-len(".log")] for f in os.listdir(labdir)
                   if f.startswith("mon-") and f.endswith(".log"))
    intervals = []
    for h in hosts:
        crashed = [t for hh, t in crashes if hh == h]
        down = down_windows(crashed, [t for hh, t in restores if hh == h])
        for s, e in host_holds(address_events(os.path.join(labdir, f"mon-{h}.log"), vip), down=down):
            intervals.append((s, e, h))
            if e in crashed:
                crashed_ends.add((h, e))
    intervals.sort()
    return intervals


def overlaps(intervals):
    return [(h1, s1, e1, h2, s2, e2) for (s1, e1, h1), (s2, e2, h2) in two_holders(intervals, MONITOR_SKEW)]


def fmt(t, t0):
    return "   open" if t == float("inf") else f"{t - t0:7.3f}"


def cmd_holds(labdir, vip):
    iv = hold_intervals(labdir, vip)
    t0 = iv[0][0] if iv else 0
    for s, e, h in iv:
        print(f"{h} held {vip} from {fmt(s, t0)} s to {fmt(e, t0)} s")
    bad = overlaps(iv)
    for b in bad:
        print(f"TWO HOLDERS: {b[0]} [{b[1]:.6f}, {b[2]:.6f}] and {b[3]} [{b[4]:.6f}, {b[5]:.6f}]")
    return 1 if bad else 0


def timeline(driverdir):
    start = float(open(os.path.join(driverdir, "start_unix")).read())
    return start, load_jsonl(os.path.join(driverdir, "timeline.jsonl"))


def cmd_answered(driverdir, t):
    start, recs = timeline(driverdir)
    best = None
    for r in recs:
        if r.get("outcome") == "ok" and start + r["send_ms"] / 1e3 > t:
            f = start + r["finish_ms"] / 1e3
            best = f if best is None else min(best, f)
    if best is None:
        return 1
    print(f"{(best - t) * 1e3:.0f}")
    return 0


def cmd_report(labdir, vip, driverdir):
    iv = hold_intervals(labdir, vip)
    start, recs = timeline(driverdir)
    summary = json.load(open(os.path.join(driverdir, "summary.json")))
    start = summary.get("start_unix", start)
    events = read_events(labdir)
    rows = []  # (time, order at the same instant: an outage's end first, text)
    for s, e, h in iv:
        rows.append((s, 1, f"{h} takes {vip} (kernel: address added)"))
        if (h, e) in crashed_ends:
            rows.append((e, 2, f"{h} is dead: {vip} is gone with it"))
        elif e != float("inf"):
            rows.append((e, 1, f"{h} removes {vip} (kernel: address deleted)"))
    rows += [(t, 1, what) for t, what in events]
    for g in summary.get("gaps", []):
        who = ""
        if g.get("node_before") or g.get("node_after"):
            who = f" (answered by {g.get('node_before') or '?'} before, {g.get('node_after') or '?'} after)"
        rows.append((start + g["start_ms"] / 1e3, 1,
                     f"client outage begins: no request completes for {g['duration_ms']:.0f} ms{who}"))
        rows.append((start + g["end_ms"] / 1e3, 0, "client outage ends: requests complete again"))
    rows.sort()
    t0 = start
    print(f"{'time (s)':>9}  event   (0 = the driver's start)")
    for t, _, what in rows:
        print(f"{t - t0:9.3f}  {what}")
    retried_replayed = [r for r in recs if r.get("outcome") == "ok" and r.get("attempts", 1) > 1]
    print()
    print(f"requests {summary['requests']}, acknowledged {summary['acked']}, "
          f"retried {summary['retried']} (a request sent again with the same id after a failure), "
          f"replays served {summary['replays']} (a retry answered from the stored reply, "
          f"not executed twice), unknown outcome {summary['unknown']}")
    if retried_replayed:
        r = max(retried_replayed, key=lambda r: r["attempts"])
        print(f"most attempts for one request: {r['attempts']} ({r['op']} {r['key']}, "
              f"answered by {r.get('node') or '?'}{', a replay' if r.get('replayed') else ''})")
    by = ", ".join(f"{k}: {v}" for k, v in summary.get("by_node", {}).items())
    print(f"answered by: {by}")
    o = summary["outage"]
    print(f"longest client outage: {o['duration_ms']:.0f} ms")
    print(f"lost acknowledged writes: {summary['lost']}   duplicated executions: "
          f"{summary['duplicated']}   (checked by reading every key back through the service)")
    bad = overlaps(iv)
    print("two holders at once: " + ("YES -- " + str(bad[0]) if bad else "never"))
    return 1 if bad or summary["lost"] or summary["duplicated"] else 0


def read_events(labdir):
    events = []
    ev_path = os.path.join(labdir, "events")
    if os.path.exists(ev_path):
        for line in open(ev_path):
            if " " in line.strip():
                t, what = line.strip().split(" ", 1)
                events.append((float(t), what))
    return events


def not_ready_windows(labdir):
    """host -> [(taken, end)] where the host held a slot whose fence was not ready."""
    out = {}
    for f in sorted(os.listdir(labdir)):
        if not (f.startswith("kv-h") and f.endswith(".log")):
            continue
        h = f[len("kv-"):-len(".log")]
        windows, open_at = [], None
        for line in open(os.path.join(labdir, f), errors="replace"):
            if not line.startswith("[20"):
                continue
            closes = (" ready: epoch" in line or " released here" in line
                      or " serving on " in line or " taken here, epoch" in line)
            if closes and open_at is not None:
                windows.append((open_at, log_time(line)))
                open_at = None
            if " taken here, epoch" in line:
                open_at = log_time(line)
        if open_at is not None:
            windows.append((open_at, float("inf")))
        out[h] = windows
    return out


def cmd_fence_check(labdir, driverdir):
    start, recs = timeline(driverdir)
    windows = not_ready_windows(labdir)
    slack = 0.05
    bad = []
    for r in recs:
        if r.get("outcome") != "ok" or r.get("replayed") or not r.get("node"):
            continue
        f = start + r["finish_ms"] / 1e3
        for a, b in windows.get(r["node"], []):
            if a + slack < f < b - slack:
                bad.append((r, f - a))
                break
    for r, dt in bad[:10]:
        print(f"fence not ready on {r['node']}: {r['op']} {r['key']} (client {r['client']} seq "
              f"{r['seq']}) acknowledged {dt * 1e3:.0f} ms after the slot was taken")
    if bad:
        print(f"{len(bad)} fresh writes acknowledged while the answering host's fence was not ready")
    return 1 if bad else 0


WINDOW = 2.0  # s after a fault in which its outage must begin


def cmd_faults(labdir, driverdir):
    start, recs = timeline(driverdir)
    done = sorted(start + r["finish_ms"] / 1e3 for r in recs if r.get("outcome") == "ok")
    faults = [(t, w) for t, w in read_events(labdir) if w.startswith(("crash", "cut"))]
    outages = []
    print(f"{'#':>3} {'fault':<28} {'outage ms':>9} {'retried':>7} {'replays':>7}")
    for i, (t, what) in enumerate(faults, 1):
        # The fault's outage: the longest interval between consecutive completions that ends
        # after T and begins before T + WINDOW (requests already on their way when the fault
        # struck may still complete just after T).
        best = None
        for a, b in zip(done, done[1:]):
            if b > t and a < t + WINDOW and (best is None or b - a > best[1] - best[0]):
                best = (a, b)
        if best is None:
            continue
        a, b = best
        retried = sum(1 for r in recs if r.get("attempts", 1) > 1
                      and a <= start + r["finish_ms"] / 1e3 <= b + 1)
        replays = sum(1 for r in recs if r.get("replayed")
                      and a <= start + r["finish_ms"] / 1e3 <= b + 1)
        outages.append((b - a) * 1e3)
        print(f"{i:>3} {what[:28]:<28} {outages[-1]:9.0f} {retried:7d} {replays:7d}")
    if outages:
        print(f"{len(outages)} faults: outage median {statistics.median(outages):.0f} ms, "
              f"p90 {percentile(outages, 0.9):.0f} ms, max {max(outages):.0f} ms")
    return 0


def cmd_inflight(driverdir, kill_times, limit_ms):
    """For each kill time: how long after it the requests in flight at that instant were all
    answered. A server that dies must not leave its clients waiting for their attempt timeout:
    its connections end with a FIN or RST that the clients see at once (the agent child waits
    for the server's process to end before it removes the address). Passes when the median over
    the kills is below limit_ms (one kill may meet an unlucky retry)."""
    start, recs = timeline(driverdir)
    waits = []
    for t in kill_times:
        inflight = [r for r in recs
                    if start + r["send_ms"] / 1e3 < t < start + r["finish_ms"] / 1e3]
        if not inflight:
            print(f"kill at {t:.3f}: no request in flight")
            continue
        w = max((start + r["finish_ms"] / 1e3 - t) * 1e3 for r in inflight)
        waits.append(w)
        print(f"kill at {t:.3f}: {len(inflight)} requests in flight, all answered "
              f"{w:.0f} ms later (attempts {[r['attempts'] for r in inflight]})")
    if not waits:
        print("no kill had a request in flight")
        return 1
    median = percentile(waits, 0.5)
    print(f"median {median:.0f} ms (limit {limit_ms:.0f} ms)")
    return 0 if median < limit_ms else 1


def main(argv):
    if len(argv) >= 3 and argv[0] == "fence-check":
        return cmd_fence_check(argv[1], argv[2])
    if len(argv) >= 3 and argv[0] == "faults":
        return cmd_faults(argv[1], argv[2])
    if len(argv) >= 3 and argv[0] == "holds":
        return cmd_holds(argv[1], argv[2])
    if len(argv) >= 3 and argv[0] == "answered":
        return cmd_answered(argv[1], float(argv[2]))
    if len(argv) >= 4 and argv[0] == "inflight":
        return cmd_inflight(argv[1], [float(x) for x in argv[3:]], float(argv[2]))
    if len(argv) >= 4 and argv[0] == "report":
        return cmd_report(argv[1], argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
