#!/usr/bin/env python3
"""Analysis of bench/kv_soak.sh: false fail-overs of one soak, and the table of several.

  analyze.py run RUN_DIR --vip V --interval S --mode M --attempt-ms N [--hogs N --quota-us N
             --period-us N] --out SUMMARY.jsonl
      reads RUN_DIR/events (start, end), RUN_DIR/lab/mon-hK.log (`ip -ts monitor address`),
      RUN_DIR/lab/kv-hK.log (the kv servers' and agents' logs), RUN_DIR/driver.json and the
      cgroup's cpu.stat.{start,end}; appends one JSON line to SUMMARY.jsonl and prints it short.
  analyze.py table SUMMARY.jsonl
      one line per soak.

Counts (between the driver's start and end; no fault was injected, so every one is false):
  acquisitions  hold intervals of any host that begin after the start (an address added)
  moves         acquisitions by a host other than the previous holder
  flaps         acquisitions by the previous holder after it had given the address up
  no_holder_ms  time within the soak when no host held the address
  two_holders   pairs of hosts' hold intervals overlapping by more than the monitor skew
  role_changes  "role ..." lines of the agents' logs after the start (each a slot changing hands)
  unhealthy     "external health: unhealthy" lines (the server judged itself hung or its store dead)
  silent        "no message from the server for N ms (stopped or hung)" lines (the agent's
                watchdog gave a silent server up)
  excused       "waits for a CPU" lines (a silent server the agent found starved, not hung)
  self_hung     the server's own "event loop made no progress ...: hung" lines (addresses given
                away); store_excused: its "... requests waited on the store ...: not hung" lines
  lease_losses  "lease not renewed" debug lines (only with the agents at log_level debug) and the
                damping's "lost its lease" warnings
"""
import argparse
import datetime
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "analysis"))
import lab_logs  # noqa: E402

HOSTS = ("h1", "h2", "h3")


def cpu_stat(path):
    out = {}
    if os.path.exists(path):
        for line in open(path):
            k, v = line.split()
            out[k] = int(v)
    return out


# The server logs "[2026-12-06 17:34:50.203] [info] ...", its agent "2026-12-06T17:34:50.131222 info ...".
STAMP = re.compile(r"^\[?(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d(?:\.\d+)?)")


def count_log(path, pattern, start, end):
    """Lines of a kv server's log (its own and its agent's lines) matching `pattern` with a time
    stamp in [start, end]."""
    n = 0
    if not os.path.exists(path):
        return 0
    rx = re.compile(pattern)
    for line in open(path, errors="replace"):
        m = STAMP.match(line)
        if not m or not rx.search(line):
            continue
        try:
            t = datetime.datetime.fromisoformat(f"{m.group(1)} {m.group(2)}").timestamp()
        except ValueError:
            continue
        if start <= t <= end:
            n += 1
    return n


def run(a):
    ev = lab_logs.load_events(os.path.join(a.run_dir, "events"))
    start, end = float(ev["start"]), float(ev["end"])
    first = ev.get("holder", "").split()[0] if ev.get("holder") else None
    lab = os.path.join(a.run_dir, "lab")
    intervals = []
    for h in HOSTS:
        events = lab_logs.address_events(os.path.join(lab, f"mon-{h}.log"), a.vip)
        for s, e in lab_logs.hold_intervals(events, start=start, end=end, holds_at_start=(h == first)):
            intervals.append((s, e, h))
    intervals.sort()
    acquisitions = [iv for iv in intervals if iv[0] > start]
    moves = flaps = 0
    prev = first
    for s, e, h in intervals:
        if s <= start:
            continue
        if h == prev:
            flaps += 1
        else:
            moves += 1
        prev = h
    # Time without a holder: the union of hold intervals, subtracted from the soak.
    covered, cur_s, cur_e = 0.0, None, None
    for s, e, _ in intervals:
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                covered += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        covered += cur_e - cur_s
    two = lab_logs.two_holders(intervals, lab_logs.MONITOR_SKEW)
    role = unhealthy = damped = silent = excused = hung = on_store = 0
    for h in HOSTS:
        log = os.path.join(lab, f"kv-{h}.log")
        role += count_log(log, r"role .*slot \d+ holder", start, end)
        unhealthy += count_log(log, r"external health: unhealthy", start, end)
        damped += count_log(log, r"lost its lease", start, end)
        silent += count_log(log, r"no message from the server for \d+ ms \(stopped or hung\)", start, end)
        excused += count_log(log, r"waits for a CPU", start, end)
        hung += count_log(log, r"event loop made no progress for .*: hung;", start, end)
        on_store += count_log(log, r"requests waited on the store .*: not hung", start, end)
    d = {}
    dp = os.path.join(a.run_dir, "driver.json")
    if os.path.exists(dp):
        d = json.load(open(dp))
    gaps = d.get("gaps", [])
    c0, c1 = cpu_stat(os.path.join(a.run_dir, "cpu.stat.start")), cpu_stat(os.path.join(a.run_dir, "cpu.stat.end"))
    secs = end - start
    row = {
        "interval_s": a.interval, "mode": a.mode, "hogs": a.hogs,
        "quota_us": a.quota_us if a.mode == "cgroup" else None,
        "period_us": a.period_us if a.mode == "cgroup" else None,
        "seconds": round(secs, 1), "first_holder": first,
        "acquisitions": len(acquisitions), "moves": moves, "flaps": flaps,
        "no_holder_ms": round((secs - covered) * 1e3, 1),
        "two_holders": len(two),
        "role_changes": role, "unhealthy_reports": unhealthy, "lease_loss_warnings": damped,
        "watchdog_silent": silent, "watchdog_excused": excused, "self_hung": hung,
        "store_excused": on_store,
        "requests": d.get("requests"), "acked": d.get("acked"),
        "rate_per_s": round(d["acked"] / secs, 1) if d.get("acked") else None,
        "retried": d.get("retried"), "unknown": d.get("unknown"),
        "lost": d.get("lost"), "duplicated": d.get("duplicated"), "unverified": d.get("unverified"),
        "gaps_over_attempt": len(gaps),
        "longest_gap_ms": (d.get("outage") or {}).get("duration_ms"),
        "throttled_periods": (c1.get("nr_throttled", 0) - c0.get("nr_throttled", 0)) if c1 else None,
        "periods": (c1.get("nr_periods", 0) - c0.get("nr_periods", 0)) if c1 else None,
        "throttled_ms": round((c1.get("throttled_time", 0) - c0.get("throttled_time", 0)) / 1e6, 1) if c1 else None,
        "loadavg": [ev.get("loadavg_start"), ev.get("loadavg_end")],
        "attempt_ms": a.attempt_ms, "run_dir": a.run_dir,
    }
    with open(a.out, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"  heartbeat {a.interval}s hog {a.mode}: moves {moves}, flaps {flaps}, no holder "
          f"{row['no_holder_ms']} ms, two holders {len(two)}; client gaps > {a.attempt_ms} ms "
          f"{len(gaps)} (longest {row['longest_gap_ms']} ms), lost {row['lost']}, duplicated "
          f"{row['duplicated']}; {row['acked']} acked ({row['rate_per_s']}/s); throttled "
          f"{row['throttled_periods']}/{row['periods']} periods; agent watchdog gave up {silent}, "
          f"excused {excused}; server judged itself hung {hung}, waiting on its store (not hung) "
          f"{on_store}; damping {damped}")


def table(path):
    rows = lab_logs.load_jsonl(path)
    print(f"{'heartbeat':>9} {'hog':>6} {'secs':>5} {'moves':>5} {'flaps':>5} {'noholder':>9} "
          f"{'2hold':>5} {'silent':>6} {'unhlth':>6} {'gaps>at':>7} {'longest':>7} {'lost':>4} "
          f"{'dup':>4} {'acked/s':>7} {'throttled':>11} load")
    for r in rows:
        thr = f"{r['throttled_periods']}/{r['periods']}" if r.get("periods") else "-"
        print(f"{r['interval_s']:>9} {r['mode']:>6} {r['seconds']:>5.0f} {r['moves']:>5} {r['flaps']:>5} "
              f"{r['no_holder_ms']:>7}ms {r['two_holders']:>5} {r.get('watchdog_silent', 0):>6} "
              f"{r['unhealthy_reports']:>6} {r['gaps_over_attempt']:>7} {r['longest_gap_ms'] or 0:>7.0f} "
              f"{str(r['lost']):>4} {str(r['duplicated']):>4} {str(r['rate_per_s']):>7} {thr:>11} "
              f"{r['loadavg'][0]}..{r['loadavg'][1]}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("run_dir")
    r.add_argument("--vip", required=True)
    r.add_argument("--interval", required=True)
    r.add_argument("--mode", required=True)
    r.add_argument("--attempt-ms", type=int, required=True)
    r.add_argument("--hogs", type=int, default=0)
    r.add_argument("--quota-us", type=int, default=0)
    r.add_argument("--period-us", type=int, default=0)
    r.add_argument("--out", required=True)
    t = sub.add_parser("table")
    t.add_argument("summary")
    a = p.parse_args()
    if a.cmd == "run":
        run(a)
    else:
        table(a.summary)


if __name__ == "__main__":
    main()
