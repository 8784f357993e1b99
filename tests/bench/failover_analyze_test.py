#!/usr/bin/env python3
"""Unit tests of bench/failover_analyze.py on hand-written runs with an IPv6 service address:
the two-host keepalived runs of bench/failover/keepalived6.sh and the table's IPv6 rows
(bench/failover.sh -6), from `ip -ts monitor address` logs, prober logs and events files."""
import contextlib
import datetime
import io
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import failover_analyze  # noqa: E402

VIP = "fd78::100"
T0 = 1_800_000_000.0  # epoch seconds of the runs' start


def stamp(t):
    """`ip -ts` prints local time; lab_logs.log_time reads it back as local time."""
    return "[" + datetime.datetime.fromtimestamp(T0 + t).isoformat(timespec="microseconds") + "]"


def monitor(events):
    """An `ip -ts monitor address` log of eth0 with the VIP added/deleted at the given times."""
    lines = [f"{stamp(0)} 2: eth0    inet6 fe80::1/64 scope link \n"]
    for t, kind in events:
        lines.append(f"{stamp(t)} {'Deleted ' if kind == 'del' else ''}2: eth0    inet6 {VIP}/64 "
                     "scope global \n       valid_lft forever preferred_lft forever\n")
    return "".join(lines)


def client(spans):
    """A prober log: one request every 10 ms over [start, end) per (start, end, host|None)."""
    out, seq = [], 0
    for start, end, host in spans:
        n = round((end - start) / 0.01)
        for i in range(n):
            t = T0 + start + i * 0.01
            out.append(f"{seq} {t:.6f} OK {host} 0.2\n" if host else f"{seq} {t:.6f} FAIL - -\n")
            seq += 1
    return "".join(out)


def write_run(d, monitors, client_log, events):
    os.makedirs(d)
    for h, ev in monitors.items():
        with open(os.path.join(d, f"monitor-{h}.log"), "w") as f:
            f.write(monitor(ev))
    with open(os.path.join(d, "client.log"), "w") as f:
        f.write(client_log)
    with open(os.path.join(d, "events"), "w") as f:
        for k, v in events:
            f.write(f"{k} {T0 + v if isinstance(v, float) else v}\n")


class TwoHostRunsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def test_keepalived_partition_is_split_brain_and_post_heal_stuck(self):
        # Both hold the VIP from 10.3 to 13.2 (h2 steps down 0.2 s after the heal at 13.0); the
        # client, still sent to h2's MAC, gets nothing from 13.0 to 14.0.
        d = os.path.join(self.tmp.name, "partition-1")
        write_run(d, {"h1": [(1.0, "add")], "h2": [(10.3, "add"), (13.2, "del")]},
                  client([(8.0, 13.0, "h1"), (13.0, 14.0, None), (14.0, 15.0, "h1")]),
                  [("partition", 10.0), ("split_brain", "1"), ("isolation_check", "h1->h2 blocked"),
                   ("heal", 13.0), ("end", 15.5)])
        r = failover_analyze.run("partition", d, VIP)
        self.assertTrue(r["split_brain"])
        self.assertAlmostEqual(r["split_brain_ms"], 2900.0, delta=0.5)
        self.assertAlmostEqual(r["partition_to_new_vip_ms"], 300.0, delta=0.5)
        self.assertIsNone(r["partition_to_h1_vip_gone_ms"])
        self.assertAlmostEqual(r["post_heal_outage_ms"], 1010.0, delta=0.5)
        self.assertEqual(r["post_heal_final_host"], "h1")
        self.assertEqual(r["isolation_check"], "h1->h2 blocked")

    def test_keepalived_crash_outage_and_new_holder(self):
        d = os.path.join(self.tmp.name, "crash-1")
        write_run(d, {"h1": [(1.0, "add")], "h2": [(10.3, "add")]},
                  client([(8.0, 10.0, "h1"), (10.0, 10.3, None), (10.3, 11.0, "h2")]),
                  [("crash", 10.0), ("end", 11.5)])
        r = failover_analyze.run("crash", d, VIP)
        self.assertEqual(r["new_host"], "h2")
        self.assertAlmostEqual(r["outage_ms"], 310.0, delta=0.5)
        self.assertAlmostEqual(r["crash_to_new_vip_ms"], 300.0, delta=0.5)
        self.assertFalse(r["two_holders"])
        self.assertTrue(r["recovered"])

    def test_three_hosts_clean_move_is_no_split_brain(self):
        # baton: h1 removes the address before h2 adds it.
        d = os.path.join(self.tmp.name, "partition-2")
        write_run(d, {"h1": [(1.0, "add"), (10.2, "del")], "h2": [(10.25, "add")], "h3": []},
                  client([(8.0, 10.2, "h1"), (10.2, 10.26, None), (10.26, 15.0, "h2")]),
                  [("partition", 10.0), ("split_brain", "0"), ("heal", 13.0), ("end", 15.5)])
        r = failover_analyze.run("partition", d, VIP)
        self.assertFalse(r["split_brain"])
        self.assertTrue(r["removal_before_add"])
        self.assertEqual(r["post_heal_outage_ms"], 0.0)

    def test_start_up_overlap_is_reported_apart_from_the_partition(self):
        # Start-up under load: h2 and h3 both hold it for 20 ms at 5 s, long before the partition
        # at 10 s (h1 settled from 6 s on); the move after the partition is clean.
        d = os.path.join(self.tmp.name, "partition-3")
        write_run(d, {"h1": [(6.0, "add"), (10.2, "del")],
                      "h2": [(4.9, "add"), (5.02, "del"), (10.25, "add")],
                      "h3": [(5.0, "add"), (5.9, "del")]},
                  client([(8.0, 10.2, "h1"), (10.2, 10.26, None), (10.26, 15.0, "h2")]),
                  [("partition", 10.0), ("split_brain", "0"), ("heal", 13.0), ("end", 15.5)])
        r = failover_analyze.run("partition", d, VIP)
        self.assertFalse(r["split_brain"])
        self.assertEqual(r["split_brain_ms"], 0.0)
        self.assertAlmostEqual(r["two_holders_before_partition_ms"], 20.0, delta=0.5)
        # The same overlap after the partition is split brain.
        d = os.path.join(self.tmp.name, "partition-4")
        write_run(d, {"h1": [(6.0, "add"), (10.22, "del")], "h2": [(10.2, "add")], "h3": []},
                  client([(8.0, 10.2, "h1"), (10.2, 15.0, "h2")]),
                  [("partition", 10.0), ("split_brain", "0"), ("heal", 13.0), ("end", 15.5)])
        r = failover_analyze.run("partition", d, VIP)
        self.assertTrue(r["split_brain"])
        self.assertAlmostEqual(r["split_brain_ms"], 20.0, delta=0.5)


class TableTest(unittest.TestCase):
    def test_ipv6_rows_and_their_ratio(self):
        with tempfile.TemporaryDirectory() as out:
            for name, outages in (("baton6-0.1", [200.0, 250.0, 220.0]),
                                  ("keepalived6-0.1", [300.0, 340.0, 320.0])):
                os.makedirs(os.path.join(out, name))
                with open(os.path.join(out, name, "results.jsonl"), "w") as f:
                    for i, o in enumerate(outages):
                        f.write(json.dumps(dict(mode="crash", run=f"crash-{i}", outage_ms=o,
                                                recovered=True)) + "\n")
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                failover_analyze.table(out)
            with open(os.path.join(out, "summary.jsonl")) as f:
                summary = [json.loads(l) for l in f]
        self.assertEqual({s["system"]: s["crash_outage_median_ms"] for s in summary},
                         {"baton6": 220.0, "keepalived6": 320.0})
        self.assertIn("baton6/keepalived6 median crash outage = 220.0/320.0 ms = 0.69",
                      buf.getvalue())


if __name__ == "__main__":
    unittest.main()
