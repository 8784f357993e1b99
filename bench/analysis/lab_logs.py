"""What the fail-over labs' analyses share: the logs they read and the figures they derive.

Used by bench/failover_analyze.py, bench/kv_failover/analyze.py, bench/kv_pool/analyze.py and
the lab tests' tests/integration/takeover_analyze.py and kv_lab.py. Those scripts add this folder
to sys.path (they run by path from any directory):

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "<up>", "bench", "analysis"))

Times are wall-clock seconds since the epoch (float) unless a name says otherwise.

  log_time(line)                  the time of a line that starts "[<ISO time>]" (`ip -ts monitor`,
                                  spdlog)
  address_events(path, vip)       [(t, "add"|"del")] of VIP in an `ip -ts monitor address` log
  hold_intervals(events, ...)     [(start, end)] during which a host held an address
  daemon_removals(path, vip)      times a take-over daemon's log says the kernel removed VIP
  end_by_removals(iv, removals)   hold intervals ended no later than the daemon's own removals
  down_windows(crashes, restores) [(crash, restore or inf)] of one host
  overlap_seconds(a, b)           time two hosts' hold intervals overlap
  two_holders(intervals, skew)    the pairs of (start, end, host) intervals of different hosts
                                  that overlap by more than skew: an address held twice at once
                                  (MONITOR_SKEW: the monitor logs' own timestamp error)
  prober_log(path)                [(seq, send time, status, host)] of a baton-udp-prober log
  load_events(path)               "key value" lines (a run's events file) as a dict
  load_jsonl(path)                the objects of a JSON-lines file (a line being written skipped)
  percentile(values, p)           nearest rank at round(p * (n - 1)), the definition of
                                  bench/lib/stats.h (medians: statistics.median)
"""
import datetime
import json
import os

INF = float("inf")


def log_time(line):
    """The time of a line that starts "[2026-11-26 17:18:32.423456]" (`ip -ts`, spdlog)."""
    return datetime.datetime.fromisoformat(line[1:line.index("]")]).timestamp()


def address_events(path, vip):
    """[(t, 'add'|'del')] of `vip` from an `ip -ts monitor address` log, in log order; [] when
    the log does not exist (the host never started). A valid_lft refresh is logged as another
    add: hold_intervals ignores an add while held."""
    out = []
    if not os.path.exists(path):
        return out
    for line in open(path, errors="replace"):
        if line.startswith("[") and f" {vip}/" in line:
            out.append((log_time(line), "del" if "Deleted" in line else "add"))
    return out


def down_windows(crashes, restores=()):
    """[(crash, the next restore after it or inf)] of one host: the times it holds nothing."""
    return [(c, min((r for r in restores if r > c), default=INF)) for c in crashes]


def hold_intervals(events, start=-INF, end=INF, holds_at_start=False, down=()):
    """Intervals [(from, to)] within [start, end] during which a host held the address, from its
    address_events. holds_at_start: it held the address at `start` (checked there). down: the
    windows (down_windows) in which it holds nothing whatever its log says (from a crash, when
    its ports went down, to its restore): an interval open at a crash ends there. An interval
    still open at `end` ends at `end` (inf: still held)."""
    marks = [(t, 0, "down") for t, _ in down] + [(t, 0, "up") for _, t in down if t != INF]
    timeline = sorted([(t, 1, k) for t, k in events] + marks)
    dead = any(c <= start < r for c, r in down)
    iv, since = [], (start if holds_at_start and not dead else None)
    for t, _, kind in timeline:
        if t < start or t > end:
            continue
        if kind == "down":
            if since is not None:
                iv.append((since, t))
            since, dead = None, True
        elif kind == "up":
            since, dead = None, False
        elif dead:
            continue
        elif kind == "add" and since is None:
            since = t
        elif kind == "del" and since is not None:
            iv.append((since, t))
            since = None
    if since is not None:
        iv.append((since, end))
    return [(a, b) for a, b in iv if b > a]


def daemon_removals(path, vip):
    """Times of the "address driver: removed <vip>/" lines of a baton-takeoverd (spdlog) log, whose
    lines start "2026-12-06T19:12:10.913642 info ...": the daemon logs that line after the
    kernel acknowledged the removal, so the address was gone by then. [] when there is no log."""
    out = []
    if not os.path.exists(path):
        return out
    needle = f"address driver: removed {vip}/"
    for line in open(path, errors="replace"):
        if needle in line:
            try:
                out.append(datetime.datetime.fromisoformat(line.split(" ", 1)[0]).timestamp())
            except ValueError:
                continue
    return sorted(out)


def end_by_removals(intervals, removals):
    """`intervals` (hold_intervals of one host) with each one ended at the first of the host's
    daemon_removals within it, when that is earlier than what the monitor log says. The monitor
    stamps an event when its `ip` process reads it; on a loaded machine that can be milliseconds
    after the kernel removed the address, while the daemon's line is logged right after the
    kernel's acknowledgement (seen in CI: 5.6 ms apart). Both are upper bounds of the removal,
    so the earlier one is too."""
    out = []
    for s, e in intervals:
        r = next((t for t in removals if s <= t < e), None)
        out.append((s, r if r is not None else e))
    return [(a, b) for a, b in out if b > a]


def overlap_seconds(a, b):
    """Total time the intervals of `a` and of `b` (one host each) overlap."""
    tot = 0.0
    for s1, e1 in a:
        for s2, e2 in b:
            lo, hi = max(s1, s2), min(e1, e2)
            if hi > lo:
                tot += hi - lo
    return tot


# How far apart two hosts' `ip -ts monitor` logs may place one instant. `ip -ts` stamps a
# message with the time its `ip` process *read* it, not when the kernel sent it, and every host
# has its own monitor process: on a loaded machine the one that logs a removal can be scheduled
# a little after the one that logs the next holder's add, although the removal came first (the
# daemon removes the address, with the kernel's acknowledgement, before it sends the release
# that lets a peer take it). Seen: 51 us at load 12 on 2 cores; 5.6 ms once in CI, which the
# daemon's own removal line bounds (end_by_removals). A lease error keeps an address
# on two hosts far longer (until a lease runs out: milliseconds at the shortest heartbeat).
MONITOR_SKEW = 0.001


def two_holders(intervals, skew=0.0):
    """The pairs ((s1, e1, h1), (s2, e2, h2)) of intervals of different hosts that overlap by
    more than `skew` seconds (use MONITOR_SKEW for `ip -ts monitor` logs of several hosts)."""
    iv = sorted(intervals)
    bad = []
    for i, (s1, e1, h1) in enumerate(iv):
        for s2, e2, h2 in iv[i + 1:]:
            if s2 >= e1:
                break
            if h1 != h2 and s1 < e2 and min(e1, e2) - max(s1, s2) > skew:
                bad.append(((s1, e1, h1), (s2, e2, h2)))
    return bad


def prober_log(path):
    """[(seq, send time, status, host)] of the lines "<seq> <send time> OK|FAIL|LATE|DUP <host>|-
    <rtt ms>|-" of a baton-udp-prober log, in log order ([] when missing)."""
    out = []
    if not os.path.exists(path):
        return out
    for line in open(path):
        f = line.split()
        if len(f) == 5:
            out.append((int(f[0]), float(f[1]), f[2], f[3]))
    return out


def load_events(path, last_wins=False):
    """{key: value} of the "key value" lines of `path` ({} when missing). A key written twice
    keeps its first value, or its last with last_wins."""
    ev = {}
    if not os.path.exists(path):
        return ev
    for line in open(path):
        parts = line.split(None, 1)
        if len(parts) == 2:
            if last_wins:
                ev[parts[0]] = parts[1].strip()
            else:
                ev.setdefault(parts[0], parts[1].strip())
    return ev


def load_jsonl(path):
    """The objects of a JSON-lines file in file order ([] when missing); a line that does not
    parse (being written) is skipped."""
    rows = []
    if not os.path.exists(path):
        return rows
    for line in open(path):
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass
    return rows


def percentile(values, p):
    """Nearest rank: the sorted value at index round(p * (n - 1)), p in [0, 1]; None if empty."""
    if not values:
        return None
    s = sorted(values)
    p = min(1.0, max(0.0, p))
    return s[min(len(s) - 1, int(p * (len(s) - 1) + 0.5))]
