#!/usr/bin/env python3
"""Analysis of bench/kv_pool.sh.

  run RUN_DIR --targets A:P,B:P,...   one JSON object for one run (printed)
  line                                one run's JSON (stdin) as a line
  table OUTDIR                        summary over OUTDIR/runs.jsonl: table printed, OUTDIR/kv_pool.json

Client i of baton-kv-driver uses target i mod len(targets). Throughput = acknowledged requests per
100 ms bin (shown as req/s). Phases (wall clock from RUN_DIR/events): before = the 1 s before the
drain; drain = the 1 s after it; crash = the 1 s after the crash; after = from crash + 1 s to the
end. Per-address gap = the longest interval without an acknowledged request of that address's
clients that ends within [event, event + 1.5 s], measured from the acknowledgement before it.
An address "moved" when its holder just before the event and 1 s after it differ (kernel-
timestamped `ip -ts monitor address` logs of the hosts, RUN_DIR/mon-hK.log).
"""
import glob
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "analysis"))
from lab_logs import load_events, load_jsonl, log_time  # noqa: E402

BIN = 0.1


def load(d):
    ev = load_events(os.path.join(d, "events"))
    drv = json.load(open(os.path.join(d, "driver.json"))) if os.path.exists(os.path.join(d, "driver.json")) else {}
    return ev, drv, load_jsonl(os.path.join(d, "driver-timeline.jsonl"))


def holders(path):
    h = {}
    if os.path.exists(path):
        for line in open(path):
            f = line.split()
            if len(f) >= 2:
                h[f[0]] = f[1] if len(f) == 2 else "+".join(f[1:])
    return h


def transitions(d, crash_host, tc):
    """{address: [(unix time, host, 'add'|'del')]} from the time-stamped monitor logs
    RUN_DIR/mon-hK.log (valid_lft refreshes, logged as repeated adds, are dropped); the crashed
    host's addresses end at the crash."""
    ev = {}
    for path in glob.glob(os.path.join(d, "mon-h*.log")):
        h = os.path.basename(path)[len("mon-"):-len(".log")]
        for line in open(path, errors="replace"):
            if not line.startswith("[") or " inet " not in line:
                continue
            ts = log_time(line)
            addr = line.split(" inet ", 1)[1].split("/", 1)[0]
            ev.setdefault(addr, []).append((ts, h, "del" if "Deleted" in line else "add"))
    out = {}
    for addr, es in ev.items():
        es.sort()
        state, seq = {}, []
        for ts, h, k in es:
            if h == crash_host and tc is not None and ts >= tc:
                continue
            if state.get(h) == k:
                continue
            state[h] = k
            seq.append((ts, h, k))
        if crash_host and tc is not None and state.get(crash_host) == "add":
            seq.append((tc, crash_host, "del"))
        out[addr] = sorted(seq)
    return out


def holder_at(seq, t):
    held = set()
    for ts, h, k in seq:
        if ts > t:
            break
        (held.add if k == "add" else held.discard)(h)
    return "+".join(sorted(held)) or "-"


def rate(ts, a, b):
    n = sum(1 for t in ts if a <= t < b)
    return n / (b - a) if b > a else None


def gap_around(ts, t, window=1.5):
    prev = max((x for x in ts if x <= t), default=t)
    worst = 0.0
    for x in sorted(x for x in ts if t < x <= t + window):
        worst = max(worst, x - prev)
        prev = x
    if prev < t + window and not any(x > prev for x in ts):
        worst = max(worst, t + window - prev)  # nothing acknowledged until the window's end
    return worst


def run(d, targets):
    ev, drv, rows = load(d)
    res = {"run": os.path.basename(d)}
    for k in ("requests", "acked", "retried", "replays", "unknown", "errors", "lost", "duplicated", "unverified"):
        res[k] = drv.get(k)
    if "error" in ev:
        res["error"] = ev["error"]
    start = drv.get("start_unix")
    if start is None or "crash" not in ev or "drain" not in ev:
        res.setdefault("error", "incomplete run")
        return res
    tgt = [t.rsplit(":", 1)[0] for t in targets.split(",")]
    ok = [(start + r["finish_ms"] / 1e3, r["client"]) for r in rows if r.get("outcome") == "ok"]
    all_t = sorted(t for t, _ in ok)
    td, tc, tend = float(ev["drain"]), float(ev["crash"]), float(ev["end"])
    t0 = float(ev["start"])
    bins = []
    b = t0
    while b < tend:
        bins.append(round(rate(all_t, b, min(b + BIN, tend)) or 0, 1))
        b += BIN
    res["throughput_bins_rps"] = bins
    res["bin_start_unix"] = t0
    res["tp_before_rps"] = rate(all_t, td - 1, td)
    res["tp_drain_rps"] = rate(all_t, td, td + 1)
    res["tp_before_crash_rps"] = rate(all_t, tc - 1, tc)
    res["tp_crash_rps"] = rate(all_t, tc, tc + 1)
    res["tp_after_rps"] = rate(all_t, tc + 1, tend)
    res["min_bin_crash_rps"] = min(bins[int((tc - t0) / BIN):int((tc + 1 - t0) / BIN) + 1] or [0])
    res["min_bin_drain_rps"] = min(bins[int((td - t0) / BIN):int((td + 1 - t0) / BIN) + 1] or [0])
    # Holders from the kernel timestamps: just before each event and 1 s after it.
    tr = transitions(d, ev.get("crash_host"), tc)
    per = []
    for i, a in enumerate(tgt):
        ts = sorted(t for t, c in ok if c % len(tgt) == i)
        seq = tr.get(a, [])
        hb_d, ha_d = holder_at(seq, td - 0.001), holder_at(seq, td + 1.0)
        hb_c, ha_c = holder_at(seq, tc - 0.001), holder_at(seq, tc + 1.0)
        # Moments without a holder outside the two events (a moving pool at rest should have none).
        per.append(dict(address=a, holder_before_drain=hb_d, holder_after_drain=ha_d,
                        holder_before_crash=hb_c, holder_after_crash=ha_c,
                        holder_changes=sum(1 for _, _, k in seq if k == "add"),
                        drain_moved=hb_d != ha_d, crash_moved=hb_c != ha_c,
                        drain_gap_ms=round(gap_around(ts, td) * 1e3, 1),
                        crash_gap_ms=round(gap_around(ts, tc) * 1e3, 1)))
    res["addresses"] = per
    res["drain_host"] = ev.get("drain_host")
    res["crash_host"] = ev.get("crash_host")
    mv = lambda key, moved: [p[key] for p in per if p[key.replace("_gap_ms", "_moved")] == moved]
    for kind in ("drain", "crash"):
        m, s = mv(f"{kind}_gap_ms", True), mv(f"{kind}_gap_ms", False)
        res[f"{kind}_moved"] = len(m)
        res[f"{kind}_gap_moved_max_ms"] = max(m) if m else None
        res[f"{kind}_gap_moved_median_ms"] = statistics.median(m) if m else None
        res[f"{kind}_gap_stayed_max_ms"] = max(s) if s else None
    return res


def line():
    r = json.loads(sys.stdin.read())
    f = lambda v: "-" if v is None else (f"{v:.0f}" if isinstance(v, float) else str(v))
    print(f"  {r['run']}: throughput before {f(r.get('tp_before_rps'))}/s, drain {f(r.get('tp_drain_rps'))}/s, "
          f"crash {f(r.get('tp_crash_rps'))}/s, after {f(r.get('tp_after_rps'))}/s; drain of {r.get('drain_host')} moved "
          f"{r.get('drain_moved')} (gap max {f(r.get('drain_gap_moved_max_ms'))} ms, others {f(r.get('drain_gap_stayed_max_ms'))} ms); "
          f"crash of {r.get('crash_host')} moved {r.get('crash_moved')} (gap max {f(r.get('crash_gap_moved_max_ms'))} ms, "
          f"others {f(r.get('crash_gap_stayed_max_ms'))} ms); lost {r.get('lost')}, dup {r.get('duplicated')}"
          + (f"; ERROR {r['error']}" if "error" in r else ""))


def table(out):
    runs = [json.loads(l) for l in open(os.path.join(out, "runs.jsonl")) if l.strip()]
    good = [r for r in runs if "error" not in r]
    med = lambda k: (statistics.median([r[k] for r in good if r.get(k) is not None])
                     if any(r.get(k) is not None for r in good) else None)
    mx = lambda k: max((r[k] for r in good if r.get(k) is not None), default=None)
    s = dict(runs=len(runs), failed_runs=len(runs) - len(good),
             tp_before_rps=med("tp_before_rps"), tp_drain_rps=med("tp_drain_rps"),
             tp_before_crash_rps=med("tp_before_crash_rps"), tp_crash_rps=med("tp_crash_rps"),
             tp_after_rps=med("tp_after_rps"), min_bin_drain_rps=med("min_bin_drain_rps"),
             min_bin_crash_rps=med("min_bin_crash_rps"),
             drain_gap_moved_median_ms=med("drain_gap_moved_median_ms"), drain_gap_moved_max_ms=mx("drain_gap_moved_max_ms"),
             drain_gap_stayed_max_ms=mx("drain_gap_stayed_max_ms"),
             crash_gap_moved_median_ms=med("crash_gap_moved_median_ms"), crash_gap_moved_max_ms=mx("crash_gap_moved_max_ms"),
             crash_gap_stayed_max_ms=mx("crash_gap_stayed_max_ms"),
             lost=sum(r.get("lost") or 0 for r in good), duplicated=sum(r.get("duplicated") or 0 for r in good),
             retried=sum(r.get("retried") or 0 for r in good), replays=sum(r.get("replays") or 0 for r in good))
    if s["drain_gap_moved_median_ms"] and s["crash_gap_moved_median_ms"]:
        s["drain_over_crash_gap"] = round(s["drain_gap_moved_median_ms"] / s["crash_gap_moved_median_ms"], 3)
    f = lambda v: "-" if v is None else f"{v:.0f}"
    lines = [f"runs {len(runs)} (failed {s['failed_runs']}); medians over runs",
             "throughput (acknowledged req/s):   before drain  1 s after drain  before crash  1 s after crash  after",
             f"                                   {f(s['tp_before_rps']):>12} {f(s['tp_drain_rps']):>16} "
             f"{f(s['tp_before_crash_rps']):>13} {f(s['tp_crash_rps']):>16} {f(s['tp_after_rps']):>6}",
             f"lowest 100 ms bin (req/s):         drain {f(s['min_bin_drain_rps'])}, crash {f(s['min_bin_crash_rps'])}",
             "per-address gap (ms)               moved: median  max    not moved: max",
             f"  drain (planned)                         {f(s['drain_gap_moved_median_ms']):>6} {f(s['drain_gap_moved_max_ms']):>6}"
             f"               {f(s['drain_gap_stayed_max_ms']):>6}",
             f"  crash (host)                            {f(s['crash_gap_moved_median_ms']):>6} {f(s['crash_gap_moved_max_ms']):>6}"
             f"               {f(s['crash_gap_stayed_max_ms']):>6}",
             f"drain gap / crash gap (medians of moved addresses): {s.get('drain_over_crash_gap', '-')}",
             f"lost {s['lost']}, duplicated {s['duplicated']}, retried {s['retried']}, replays {s['replays']}"]
    for r in runs:
        if "error" in r:
            lines.append(f"  {r['run']}: ERROR {r['error']}")
    with open(os.path.join(out, "kv_pool.json"), "w") as fh:
        json.dump({"benchmark": "kv_pool", "summary": s, "runs": runs}, fh, indent=1)
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "run" and sys.argv[3] == "--targets":
        print(json.dumps(run(sys.argv[2], sys.argv[4])))
    elif len(sys.argv) == 2 and sys.argv[1] == "line":
        line()
    elif len(sys.argv) == 3 and sys.argv[1] == "table":
        table(sys.argv[2])
    else:
        print(__doc__)
        sys.exit(2)
