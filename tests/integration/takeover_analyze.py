#!/usr/bin/env python3
"""Analysis helpers of the take-over lab tests (timestamps: wall clock, seconds since the epoch).

  single-holder VIP [--until HOST=T ...] [--revived HOST=T ...] MON...
                                                  exit 1 if the `ip -ts monitor address` logs
                                                  (mon-<host>.log) show two hosts holding VIP at
                                                  once; a host listed in --until holds nothing
                                                  from T (it crashed: ports down) until a later
                                                  --revived time of it (both may repeat).
  order VIP T OLD_MON NEW_MON                     exit 1 unless OLD's first "Deleted VIP" after T
                                                  precedes NEW's first add of VIP after T; prints
                                                  both times and the gap.
  outage CLIENT_LOG T OLD NEW                     prints the client outage (ms) between the last
                                                  answer from OLD and the first from NEW after T;
                                                  exit 1 if NEW never answered.
  first-ok CLIENT_LOG T HOST                      prints ms from T to the first answer from HOST.
  gap CLIENT_LOG T NEW                            prints the client outage (ms) around a fault at T:
                                                  from the last answer (any host) to a request sent
                                                  before T to the first answer from NEW to one sent
                                                  at or after T; exit 1 if NEW never answered.
  agreed DAEMON_LOG T MEMBERS                     prints ms from T to the first line of the daemon
                                                  log that reports the committed membership MEMBERS
                                                  (e.g. 2,3,6); exit 1 if there is none.
"""
import datetime
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench",
                                "analysis"))
from lab_logs import (MONITOR_SKEW, address_events, daemon_removals, down_windows,  # noqa: E402
                      end_by_removals, hold_intervals, prober_log, two_holders)


def host_of(path):
    return os.path.basename(path)[len("mon-"):-len(".log")]


def single_holder(args):
    vip, crashes, revivals, mons = args[0], {}, {}, []
    i = 1
    while i < len(args):
        if args[i] in ("--until", "--revived"):
            h, t = args[i + 1].split("=")
            (crashes if args[i] == "--until" else revivals).setdefault(h, []).append(float(t))
            i += 2
        else:
            mons.append(args[i])
            i += 1

    intervals = []  # (start, end, host)
    for m in mons:
        h = host_of(m)
        # From a crash (recorded just before the ports went down) to the next revival a host
        # serves nobody: what its dying daemon did in that window (e.g. a valid_lft refresh,
        # which `ip monitor` prints like an add) is no hold.
        down = down_windows(crashes.get(h, []), revivals.get(h, []))
        held = hold_intervals(address_events(m, vip), down=down)
        # The host's daemon log (h<K>.log beside mon-h<K>.log) bounds each removal too.
        held = end_by_removals(held, daemon_removals(os.path.join(os.path.dirname(m), f"{h}.log"), vip))
        intervals += [(s, e, h) for s, e in held]
    bad = two_holders(intervals, MONITOR_SKEW)
    for (sa, ea, ha), (sb, eb, hb) in bad:
        print(f"two holders: {ha} [{sa:.6f}, {ea:.6f}] and {hb} [{sb:.6f}, {eb:.6f}]")
    for (sa, ea, ha), (sb, eb, hb) in two_holders(intervals):
        if ((sa, ea, ha), (sb, eb, hb)) not in bad:
            print(f"within the monitor logs' timestamp error ({MONITOR_SKEW * 1e3:.0f} ms): {ha} "
                  f"[{sa:.6f}, {ea:.6f}] and {hb} [{sb:.6f}, {eb:.6f}], "
                  f"{(min(ea, eb) - max(sa, sb)) * 1e6:.0f} us")
    print(f"hold intervals: {len(intervals)}, overlaps between hosts: {len(bad)}")
    return 1 if bad else 0


def order(args):
    vip, t, old, new = args[0], float(args[1]), args[2], args[3]
    dels = [ts for ts, k in address_events(old, vip) if k == "del" and ts >= t]
    adds = [ts for ts, k in address_events(new, vip) if k == "add" and ts >= t]
    if not dels:
        print(f"{host_of(old)} never removed {vip} after the partition")
        return 1
    if not adds:
        print(f"{host_of(new)} never added {vip} after the partition")
        return 1
    gap = (adds[0] - dels[0]) * 1e3
    print(f"{host_of(old)} Deleted at +{(dels[0] - t) * 1e3:.1f} ms, {host_of(new)} added at "
          f"+{(adds[0] - t) * 1e3:.1f} ms (removal precedes add by {gap:.1f} ms)")
    return 0 if dels[0] < adds[0] else 1


def rows(path):
    return [(t, st, h) for _, t, st, h in prober_log(path) if st in ("OK", "FAIL")]


def first_answer(log, t, host):
    """Send time of the first request sent at or after t that HOST answered, or None."""
    return next((ts for ts, st, h in rows(log) if st == "OK" and h == host and ts >= t), None)


def print_gap(last, first, new):
    if first is None or last is None:
        print(f"no answer from {new} after the fault")
        return 1
    print(f"{(first - last) * 1e3:.1f}")
    return 0


def outage(args):
    log, t, old, new = args[0], float(args[1]), args[2], args[3]
    last_old = max((ts for ts, st, h in rows(log) if st == "OK" and h == old), default=None)
    return print_gap(last_old, first_answer(log, t, new), new)


def first_ok(args):
    log, t, host = args[0], float(args[1]), args[2]
    first = first_answer(log, t, host)
    if first is None:
        print(f"no answer from {host} after {t}")
        return 1
    print(f"{(first - t) * 1e3:.1f}")
    return 0


def gap(args):
    log, t, new = args[0], float(args[1]), args[2]
    last = max((ts for ts, st, h in rows(log) if st == "OK" and ts < t), default=None)
    return print_gap(last, first_answer(log, t, new), new)


def agreed(args):
    log, t, members = args[0], float(args[1]), args[2]
    want = f"members [{members}]"
    for line in open(log, errors="replace"):
        # "2026-12-06T11:47:10.680452 info [node 2] group membership version 1: members [2,3,4,5]"
        if "group membership version" not in line or not line.rstrip().endswith(want):
            continue
        ts = datetime.datetime.fromisoformat(line.split()[0]).timestamp()
        if ts >= t:
            print(f"{(ts - t) * 1e3:.1f}")
            return 0
    print(f"no committed membership [{members}] in {log} after {t}")
    return 1


if __name__ == "__main__":
    cmds = {"single-holder": single_holder, "order": order, "outage": outage, "first-ok": first_ok,
            "gap": gap, "agreed": agreed}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        print(__doc__)
        sys.exit(2)
    sys.exit(cmds[sys.argv[1]](sys.argv[2:]))
