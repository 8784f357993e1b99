#!/usr/bin/env python3
"""Per-run analysis and the summary table of bench/failover.sh.

  run MODE RUN_DIR VIP        one JSON object for one run of baton (bench/failover.sh) or of
                              keepalived with an IPv6 address (bench/failover/keepalived6.sh),
                              appended to results.jsonl; the same keys as the reference keepalived
                              script's analysis. The hosts are those with a monitor-hK.log.
  table OUT_DIR               the side-by-side table from OUT_DIR/{baton,keepalived}-<i>/results.jsonl
                              (printed; JSON lines to OUT_DIR/summary.jsonl)
Client log lines: "<seq> <send time> OK|FAIL <host>|- <rtt ms>|-" (+ LATE/DUP lines).
"""
import glob
import itertools
import json
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "analysis"))
from lab_logs import address_events, hold_intervals, load_events, overlap_seconds, prober_log  # noqa: E402


def load_client(d):
    rows, extra = [], []
    for seq, t, st, host in prober_log(f"{d}/client.log"):  # none if the run failed before it
        (rows if st in ("OK", "FAIL") else extra).append(dict(seq=seq, t=t, st=st, host=host))
    rows.sort(key=lambda r: r["seq"])
    return rows, extra


def ms(a, b):
    return None if a is None or b is None else round((b - a) * 1e3, 1)


def first(seq, cond):
    return next((x for x in seq if cond(x)), None)


def max_gap(rs):
    """As in the reference: (longest interval without an answer in ms, #FAIL in it, still open?)."""
    best, last_ok, cur = (0.0, 0, False), None, 0
    for r in rs:
        if r["st"] == "OK":
            if last_ok is not None and cur and (r["t"] - last_ok) * 1e3 > best[0]:
                best = (round((r["t"] - last_ok) * 1e3, 1), cur, False)
            last_ok, cur = r["t"], 0
        else:
            cur += 1
    if cur and last_ok is not None and (rs[-1]["t"] - last_ok) * 1e3 > best[0]:
        best = (round((rs[-1]["t"] - last_ok) * 1e3, 1), cur, True)
    return best


def holds(path, vip, until):
    return hold_intervals(address_events(path, vip), end=until)


def overlap_ms(a, b):
    return overlap_seconds(a, b) * 1e3


def overlap_before_after(iv, hosts, t):
    """Total time (ms) two of `hosts` held the address at once, before and from `t` (the fault)
    on. Overlaps before the fault belong to start-up (e.g. a daemon starved past its lease under
    load, whose address the kernel fence silences until it is removed), not to the scenario."""
    def clip(intervals, lo, hi):
        return [(max(a, lo), min(b, hi)) for a, b in intervals if min(b, hi) > max(a, lo)]
    pairs = list(itertools.combinations(hosts, 2))
    inf = float("inf")
    before = sum(overlap_ms(clip(iv[a], -inf, t), clip(iv[b], -inf, t)) for a, b in pairs)
    after = sum(overlap_ms(clip(iv[a], t, inf), clip(iv[b], t, inf)) for a, b in pairs)
    return before, after


def hosts_of(d):
    """The run's hosts, h1 first: those whose `ip monitor` log exists."""
    hs = [m.group(1) for m in (re.match(r"monitor-(h\d+)\.log$", os.path.basename(p))
                               for p in glob.glob(f"{d}/monitor-h*.log")) if m]
    return sorted(hs, key=lambda h: int(h[1:]))


def run(mode, d, vip):
    ev = load_events(f"{d}/events", last_wins=True)
    rows, extra = load_client(d)
    res = dict(mode=mode, run=os.path.basename(d), requests=len(rows),
               dup=sum(r["st"] == "DUP" for r in extra), late=sum(r["st"] == "LATE" for r in extra))
    if "error" in ev:
        res["error"] = ev["error"]
    ok = [r for r in rows if r["st"] == "OK"]
    hosts = hosts_of(d)
    others = [h for h in hosts if h != "h1"]
    # The measurement ends when the client stops, before the lab is torn down: teardown SIGTERMs
    # the daemons (a cascade of hand-overs) and the monitors at once, so a monitor may die before
    # it logs its host's removal. Hold intervals are clipped there.
    end = float(ev["end"]) if "end" in ev else (rows[-1]["t"] + 0.1 if rows else float("inf"))
    if mode == "crash" and "crash" in ev:
        T = float(ev["crash"])
        last_h1 = max((r["t"] for r in ok if r["host"] == "h1"), default=None)
        first_new = first(ok, lambda r: r["host"] != "h1" and r["t"] >= T)
        new_host = first_new["host"] if first_new else None
        first_new_t = first_new["t"] if first_new else None
        add = None
        for h in others:
            a = first(address_events(f"{d}/monitor-{h}.log", vip), lambda e: e[1] == "add" and e[0] >= T)
            if a and (add is None or a[0] < add):
                add = a[0]
        # two live holders at once among the survivors (h1 is dead from T on)
        iv = {h: holds(f"{d}/monitor-{h}.log", vip, end) for h in others}
        before_ms, after_ms = overlap_before_after(iv, others, T)
        res.update(
            outage_ms=ms(last_h1, first_new_t),
            new_host=new_host,
            crash_to_new_vip_ms=ms(T, add),
            crash_to_client_ok_ms=ms(T, first_new_t),
            last_h1_ok_vs_crash_ms=ms(T, last_h1),
            fails_in_outage=sum(r["st"] == "FAIL" for r in rows
                                if last_h1 and first_new_t and last_h1 < r["t"] < first_new_t),
            h1_ok_after_first_new=sum(r["host"] == "h1" for r in ok if first_new_t and r["t"] > first_new_t),
            fails_after_first_new=sum(r["st"] == "FAIL" for r in rows if first_new_t and r["t"] > first_new_t),
            fails_before_crash=sum(r["st"] == "FAIL" for r in rows if T - 2 <= r["t"] < T),
            two_holders=after_ms > 0 or ev.get("split_brain") == "1",
            two_holders_before_crash_ms=round(before_ms, 1),
            recovered=first_new is not None)
    elif mode == "partition" and "partition" in ev:
        Tp, Th = float(ev["partition"]), float(ev.get("heal", "inf"))
        iv = {h: holds(f"{d}/monitor-{h}.log", vip, end) for h in hosts}
        holder_changes_after_heal = sum(
            1 for h in hosts for ts, k in address_events(f"{d}/monitor-{h}.log", vip)
            if k == "del" and Th <= ts < end)
        before_ms, both_ms = overlap_before_after(iv, hosts, Tp)
        h1_del = first(address_events(f"{d}/monitor-h1.log", vip), lambda e: e[1] == "del" and e[0] >= Tp)
        new_add = None
        for h in others:
            a = first(address_events(f"{d}/monitor-{h}.log", vip), lambda e: e[1] == "add" and e[0] >= Tp)
            if a and (new_add is None or a[0] < new_add):
                new_add = a[0]
        c_new = first(ok, lambda r: r["host"] != "h1" and r["t"] >= Tp)
        during = [r for r in rows if Tp <= r["t"] < Th]
        after = [r for r in rows if r["t"] >= Th]
        gap_after = max_gap([r for r in rows if r["t"] >= Th - 0.05])
        last = after[-1] if after else None
        res.update(
            split_brain=ev.get("split_brain") == "1" or both_ms > 0,
            split_brain_ms=round(both_ms, 1),
            two_holders_before_partition_ms=round(before_ms, 1),
            poll_races=sum(1 for _ in open(f"{d}/poll_race")) if os.path.exists(f"{d}/poll_race") else 0,
            split_evidence=ev.get("split_evidence", ""),
            **({"isolation_check": ev["isolation_check"]} if "isolation_check" in ev else {}),
            partition_to_h1_vip_gone_ms=ms(Tp, h1_del[0] if h1_del else None),
            partition_to_new_vip_ms=ms(Tp, new_add),
            removal_before_add=bool(h1_del and new_add and h1_del[0] < new_add),
            partition_to_client_on_new_ms=ms(Tp, c_new["t"] if c_new else None),
            hosts_seen_during=sorted({r["host"] for r in during if r["st"] == "OK"}),
            fails_during=sum(r["st"] == "FAIL" for r in during),
            gap_during_ms=max_gap(during)[0],
            post_heal_outage_ms=gap_after[0], post_heal_fails=gap_after[1],
            removals_after_heal=holder_changes_after_heal,   # 0 = nothing moved after healing
            post_heal_outage_open=gap_after[2],
            post_heal_final_host=(last["host"] if last and last["st"] == "OK" else "none"),
            post_heal_recovered=bool(last and last["st"] == "OK"))
    return res


def table(out):
    systems = []
    for path in sorted(glob.glob(f"{out}/*/results.jsonl")):
        sysname, interval = os.path.basename(os.path.dirname(path)).split("-", 1)
        rs = [json.loads(l) for l in open(path) if l.strip()]
        systems.append((float(interval), sysname, rs))
    systems.sort(key=lambda x: (-x[0], x[1]))
    lines, summary = [], []
    hdr = (f"{'interval':>8} {'system':<10} {'crash outage median':>19} {'max':>8} {'runs':>5} "
           f"{'split brain':>11} {'post-heal stuck median':>22} {'max':>8} {'runs':>5} {'failed':>6}")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    med = {}
    for interval, name, rs in systems:
        good = [r for r in rs if "error" not in r]
        crash = [r["outage_ms"] for r in good if r["mode"] == "crash" and r.get("outage_ms") is not None]
        part = [r for r in good if r["mode"] == "partition"]
        stuck = [r["post_heal_outage_ms"] for r in part if r.get("post_heal_outage_ms") is not None]
        sb = sum(bool(r.get("split_brain")) for r in part)
        failed = len(rs) - len(good)
        not_recovered = sum(not r.get("recovered", True) for r in good if r["mode"] == "crash")
        s = dict(system=name, interval_s=interval,
                 crash_runs=len(crash), crash_outage_median_ms=statistics.median(crash) if crash else None,
                 crash_outage_max_ms=max(crash) if crash else None,
                 crash_outage_min_ms=min(crash) if crash else None,
                 crash_not_recovered=not_recovered,
                 partition_runs=len(part), split_brain_runs=sb,
                 post_heal_stuck_median_ms=statistics.median(stuck) if stuck else None,
                 post_heal_stuck_max_ms=max(stuck) if stuck else None,
                 post_heal_still_stuck_at_end=sum(bool(r.get("post_heal_outage_open")) for r in part),
                 failed_runs=failed)
        summary.append(s)
        med[(interval, name)] = s["crash_outage_median_ms"]
        f = lambda v: "n/a" if v is None else f"{v:.1f}"
        lines.append(f"{interval:>7g}s {name:<10} {f(s['crash_outage_median_ms']):>16} ms {f(s['crash_outage_max_ms']):>5} ms "
                     f"{len(crash):>5} {sb:>5}/{len(part):<5} {f(s['post_heal_stuck_median_ms']):>19} ms "
                     f"{f(s['post_heal_stuck_max_ms']):>5} ms {len(stuck):>5} {failed:>6}")
    lines.append("")
    for interval in sorted({k[0] for k in med}, reverse=True):
        for fam in ("", "6"):   # IPv4 rows, IPv6 rows (failover.sh -6)
            b, k = med.get((interval, "baton" + fam)), med.get((interval, "keepalived" + fam))
            if b is not None and k:
                lines.append(f"interval {interval:g}s: baton{fam}/keepalived{fam} median crash outage = "
                             f"{b:.1f}/{k:.1f} ms = {b / k:.2f}")
    with open(f"{out}/summary.jsonl", "w") as fh:
        for s in summary:
            fh.write(json.dumps(s) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "run":
        print(json.dumps(run(sys.argv[2], sys.argv[3], sys.argv[4])))
    elif len(sys.argv) == 3 and sys.argv[1] == "table":
        table(sys.argv[2])
    else:
        print(__doc__)
        sys.exit(2)
