#!/usr/bin/env python3
"""Analysis of bench/kv_failover.sh.

  run RUN_DIR --system S --scenario C --interval I --vip A --monitors DIR
        one JSON object for one run (printed; kv_failover.sh appends it to OUTDIR/runs.jsonl) and
        RUN_DIR/timeline.jsonl in the suite's format: {"t_ms", "ok", "node"} per request, t_ms =
        when it finished, ms since the driver started.
  cell LIST --system S --vip A --monitors DIR --out RUNS_JSONL
        every run of LIST (lines "RUN_DIR SCENARIO INTERVAL") as `run`, appended to RUNS_JSONL,
        one line each printed (one python process for a whole lab).
  line  reads one run's JSON on stdin, prints it as one line.
  table OUTDIR
        the per-cell summary (system x scenario x interval) from OUTDIR/runs.jsonl: printed as a
        table, one JSON object per cell in OUTDIR/summary.jsonl.

Inputs of a run: RUN_DIR/events ("key value" lines written by kv_failover.sh: victim, start,
fault, dead, heal, end, error, in wall-clock seconds), RUN_DIR/driver.json (baton-kv-driver's
summary: start_unix, retried, replays, lost, duplicated, ...), RUN_DIR/driver-timeline.jsonl
(one line a request: finish_ms, outcome, node) and DIR/monitor-hK.log (`ip -ts monitor address`
of every host, over the whole lab's life).

Definitions:
  outage        (outage_ms) the longest interval without an acknowledged request that ends after
                the fault, starting from the last acknowledgement before it (all clients
                together); open (to the end of the run) when nothing was acknowledged after the
                fault. fault_outage_ms: the same among the intervals that begin before the heal
                (= outage_ms except for a partition); the table's "outage" is fault_outage_ms.
  split brain   two hosts held the address at the same time within the run, from the kernel
                timestamps: the victim holds it from the run's start (checked before the fault),
                a crashed host stops holding at its crash, every add/removal moves the rest.
  post-heal stuck  (partition) the longest time after healing during which nothing was
                acknowledged, counting only gaps of at least 100 ms (one attempt timeout of the
                driver; shorter gaps are latency) or 10 x the median interval between
                acknowledgements before the fault if that is more; 0 when never interrupted.
"""
import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "analysis"))
from lab_logs import (address_events, hold_intervals, load_events, load_jsonl,  # noqa: E402
                      overlap_seconds, percentile)

STUCK_MIN_S = 0.100


def gaps_after(ok_times, t, end):
    """[(gap start, gap end)] between consecutive acknowledgements that end after t; the last one
    may end at `end` (open)."""
    prev = max((x for x in ok_times if x <= t), default=None)
    out = []
    later = [x for x in ok_times if x > t]
    if prev is None:
        prev = t
    for x in later:
        out.append((prev, x, False))
        prev = x
    if end > prev:
        out.append((prev, end, True))
    return out


def run(args):
    d = args.run_dir
    ev = load_events(os.path.join(d, "events"))
    res = dict(system=args.system, scenario=args.scenario, interval_s=float(args.interval),
               run=os.path.basename(d))
    if "error" in ev:
        res["error"] = ev["error"]
    res["verified"] = "unverified" not in ev
    drv = {}
    if os.path.exists(os.path.join(d, "driver.json")):
        try:
            drv = json.load(open(os.path.join(d, "driver.json")))
        except ValueError:
            drv = {}
    rc_path = os.path.join(d, "driver.rc")
    res["driver_rc"] = int(open(rc_path).read().strip() or -1) if os.path.exists(rc_path) else None
    for k in ("requests", "acked", "retried", "replays", "unknown", "errors", "lost", "duplicated",
              "unverified", "incr_not_increasing"):
        res[k] = drv.get(k)
    rows = sorted(load_jsonl(os.path.join(d, "driver-timeline.jsonl")),
                  key=lambda r: r.get("finish_ms", 0))
    start_unix = drv.get("start_unix")
    if start_unix is None and os.path.exists(os.path.join(d, "driver.start")):
        start_unix = float(open(os.path.join(d, "driver.start")).read())
    # The suite's timeline format.
    with open(os.path.join(d, "timeline.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps({"t_ms": round(r.get("finish_ms", 0), 3), "ok": r.get("outcome") == "ok",
                                "node": r.get("node", "")}) + "\n")
    if not rows or start_unix is None or "fault" not in ev:
        if "error" not in res:
            res["error"] = "no fault or no client timeline"
        return res
    tf = float(ev["fault"])
    tend = float(ev.get("end", start_unix + rows[-1]["finish_ms"] / 1e3))
    ok_t = [start_unix + r["finish_ms"] / 1e3 for r in rows if r.get("outcome") == "ok"]
    before = [x for x in ok_t if x <= tf]
    if not before:
        res.setdefault("error", "the client had no acknowledged request before the fault")
    steady = [b - a for a, b in zip(before, before[1:])]
    med_gap = statistics.median(steady) if steady else 0.001
    # A gap shorter than one attempt timeout of the driver (100 ms) is latency, not an interruption
    # (steady-state p99.9 on the loaded 2-core lab machine reaches ~85 ms).
    threshold = max(STUCK_MIN_S, 10 * med_gap)
    res["steady_gap_median_ms"] = round(med_gap * 1e3, 2)
    g = gaps_after(ok_t, tf, tend)
    worst = max(g, key=lambda x: x[1] - x[0]) if g else None
    res["outage_ms"] = round((worst[1] - worst[0]) * 1e3, 1) if worst else None
    res["outage_open"] = bool(worst and worst[2])
    first_after = next((x for x in ok_t if x > tf), None)
    # The outage the fault itself caused: the longest gap that begins before the heal (a
    # partition's post-heal gap is reported apart).
    th_ = float(ev["heal"]) if "heal" in ev else float("inf")
    fg = [b - a for a, b, _ in g if a < th_]
    res["fault_outage_ms"] = round(max(fg) * 1e3, 1) if fg else None
    res["fault_to_first_ack_ms"] = round((first_after - tf) * 1e3, 1) if first_after else None
    # Who answered after the fault (the last acknowledgement's node).
    nodes_after = [r.get("node", "") for r in rows
                   if r.get("outcome") == "ok" and start_unix + r["finish_ms"] / 1e3 > tf]
    res["answered_after"] = sorted(set(n for n in nodes_after if n))
    victim = ev.get("victim", "")
    res["victim"] = victim
    # Address holders from the kernel timestamps.
    # The victim was checked to be the sole holder right before the fault ("checked").
    tstart = float(ev.get("checked", ev.get("start", start_unix)))
    dead_host, dead_at = None, None
    # "dead": crashed host; "dark": baton's kernel fence darkened the address of a dead agent.
    for key in ("dead", "dark"):
        if key in ev:
            dead_host, dead_at = ev[key].split()[0], float(ev[key].split()[1])
    hosts = sorted(f[len("monitor-"):-len(".log")] for f in os.listdir(args.monitors)
                   if f.startswith("monitor-") and f.endswith(".log"))
    iv = {}
    first_add = None
    for h in hosts:
        evs = address_events(os.path.join(args.monitors, f"monitor-{h}.log"), args.vip)
        down = [(dead_at, float("inf"))] if h == dead_host else []
        iv[h] = hold_intervals(evs, tstart, tend, holds_at_start=h == victim, down=down)
        if h != victim:
            a = next((ts for ts, k in evs if k == "add" and tf <= ts <= tend), None)
            if a is not None and (first_add is None or a < first_add[0]):
                first_add = (a, h)
    both = sum(overlap_seconds(iv[a], iv[b]) for i, a in enumerate(hosts) for b in hosts[i + 1:])
    res["split_brain"] = both > 0
    res["split_brain_ms"] = round(both * 1e3, 1)
    res["new_holder"] = first_add[1] if first_add else None
    res["fault_to_new_holder_ms"] = round((first_add[0] - tf) * 1e3, 1) if first_add else None
    if "heal" in ev:
        th = float(ev["heal"])
        stuck = 0.0
        for a, b, _ in gaps_after(ok_t, th, tend):
            if b - a >= threshold:
                stuck = max(stuck, b - max(a, th))
        res["post_heal_stuck_ms"] = round(stuck * 1e3, 1)
        res["post_heal_open"] = bool(ok_t and ok_t[-1] < th) or any(
            o and b - a >= threshold for a, b, o in gaps_after(ok_t, th, tend))
    return res


def line(r=None):
    if r is None:
        r = json.loads(sys.stdin.read())
    keys = ["outage_ms", "fault_outage_ms", "fault_to_new_holder_ms", "new_holder", "retried", "replays", "lost",
            "duplicated", "unknown", "split_brain_ms", "post_heal_stuck_ms", "driver_rc", "error"]
    print(f"  {r['system']} {r['scenario']} {r['interval_s']:g}s {r['run']} victim {r.get('victim')}: "
          + ", ".join(f"{k}={r[k]}" for k in keys if k in r and r[k] is not None))


def table(out):
    runs = [json.loads(l) for l in open(os.path.join(out, "runs.jsonl")) if l.strip()]
    cells = {}
    for r in runs:
        cells.setdefault((r["interval_s"], r["scenario"], r["system"]), []).append(r)
    order = {"process": 0, "host": 1, "partition": 2, "drain": 3, "freeze": 4, "lossy": 5,
             "etcdleader": 6}
    summary, lines = [], []
    hdr = (f"{'interval':>8} {'scenario':<9} {'system':<10} {'runs':>4} {'fail':>4} "
           f"{'outage med':>10} {'p99':>8} {'max':>8} {'move med':>8} {'retried':>7} {'replays':>7} "
           f"{'lost':>4} {'dup':>4} {'unknown':>7} {'split':>5} {'stuck med':>9} {'max':>8}")
    lines += [hdr, "-" * len(hdr)]
    f = lambda v: "-" if v is None else f"{v:.1f}"
    med = {}
    for key in sorted(cells, key=lambda k: (k[0], order.get(k[1], 9), k[2])):
        iv, scen, system = key
        rs = cells[key]
        good = [r for r in rs if "error" not in r]
        out_ms = [r["fault_outage_ms"] for r in good if r.get("fault_outage_ms") is not None]
        move = [r["fault_to_new_holder_ms"] for r in good if r.get("fault_to_new_holder_ms") is not None]
        stuck = [r["post_heal_stuck_ms"] for r in good if r.get("post_heal_stuck_ms") is not None]
        tot = lambda k: sum((r.get(k) or 0) for r in good)
        unverified = sum(not r.get("verified", True) for r in good)
        s = dict(system=system, scenario=scen, interval_s=iv, runs=len(rs), failed_runs=len(rs) - len(good),
                 outage_median_ms=statistics.median(out_ms) if out_ms else None,
                 outage_p99_ms=percentile(out_ms, 0.99), outage_max_ms=max(out_ms) if out_ms else None,
                 outage_open_runs=sum(bool(r.get("outage_open")) for r in good),
                 move_median_ms=statistics.median(move) if move else None,
                 requests=tot("requests"), retried=tot("retried"), replays=tot("replays"),
                 lost=tot("lost"), duplicated=tot("duplicated"), unknown=tot("unknown"),
                 errors=tot("errors"), unverified_runs=unverified, runs_with_lost=sum((r.get("lost") or 0) > 0 for r in good),
                 runs_with_duplicated=sum((r.get("duplicated") or 0) > 0 for r in good),
                 split_brain_runs=sum(bool(r.get("split_brain")) for r in good),
                 split_brain_max_ms=max((r.get("split_brain_ms") or 0) for r in good) if good else None,
                 post_heal_stuck_median_ms=statistics.median(stuck) if stuck else None,
                 post_heal_stuck_max_ms=max(stuck) if stuck else None,
                 post_heal_open_runs=sum(bool(r.get("post_heal_open")) for r in good))
        summary.append(s)
        med[key] = s["outage_median_ms"]
        lines.append(f"{iv:>7g}s {scen:<9} {system:<10} {len(rs):>4} {s['failed_runs']:>4} "
                     f"{f(s['outage_median_ms']):>10} {f(s['outage_p99_ms']):>8} {f(s['outage_max_ms']):>8} "
                     f"{f(s['move_median_ms']):>8} {s['retried']:>7} {s['replays']:>7} {s['lost']:>4} "
                     f"{s['duplicated']:>4} {s['unknown']:>7} {s['split_brain_runs']:>2}/{len(good):<2} "
                     f"{f(s['post_heal_stuck_median_ms']):>9} {f(s['post_heal_stuck_max_ms']):>8}")
    lines.append("")
    lines.append("outage: longest time without an acknowledged request from the fault on (until the heal for a "
                 "partition, the resume of a frozen server or the end of a lossy link; ms); move: "
                 "fault -> address added on another host (ms); split: runs with two holders at once; "
                 "stuck: post-heal (partition)")
    for (iv, scen, system), m in sorted(med.items()):
        if system != "baton":
            continue
        k = med.get((iv, scen, "keepalived"))
        if m is not None and k:
            lines.append(f"interval {iv:g}s {scen}: baton/keepalived median outage = {m:.1f}/{k:.1f} ms = {m / k:.2f}")
    with open(os.path.join(out, "summary.jsonl"), "w") as fh:
        for s in summary:
            fh.write(json.dumps(s) + "\n")
    print("\n".join(lines))


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "run":
        ap = argparse.ArgumentParser()
        ap.add_argument("cmd")
        ap.add_argument("run_dir")
        ap.add_argument("--system", required=True)
        ap.add_argument("--scenario", required=True)
        ap.add_argument("--interval", required=True)
        ap.add_argument("--vip", required=True)
        ap.add_argument("--monitors", required=True)
        print(json.dumps(run(ap.parse_args())))
    elif len(sys.argv) >= 2 and sys.argv[1] == "cell":
        # cell LIST --system S --vip A --monitors DIR --out RUNS_JSONL; LIST: "RUN_DIR SCENARIO INTERVAL"
        ap = argparse.ArgumentParser()
        ap.add_argument("cmd")
        ap.add_argument("list")
        ap.add_argument("--system", required=True)
        ap.add_argument("--vip", required=True)
        ap.add_argument("--monitors", required=True)
        ap.add_argument("--out", required=True)
        a = ap.parse_args()
        with open(a.out, "a") as out:
            for entry in open(a.list):
                f = entry.split()
                if len(f) != 3:
                    continue
                try:
                    r = run(argparse.Namespace(run_dir=f[0], system=a.system, scenario=f[1], interval=f[2],
                                               vip=a.vip, monitors=a.monitors))
                except Exception as e:  # one broken run must not lose the others
                    r = dict(system=a.system, scenario=f[1], interval_s=float(f[2]),
                             run=os.path.basename(f[0]), error=f"analysis failed: {e}")
                out.write(json.dumps(r) + "\n")
                line(r)
    elif len(sys.argv) == 2 and sys.argv[1] == "line":
        line()
    elif len(sys.argv) == 3 and sys.argv[1] == "table":
        table(sys.argv[2])
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
