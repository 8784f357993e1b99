#!/usr/bin/env python3
"""Unit tests of bench/analysis/lab_logs.py: the hold intervals and two-holder checks the
fail-over labs' verdicts rest on, from hand-written `ip -ts monitor address` logs."""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench",
                                "analysis"))
import lab_logs  # noqa: E402

INF = float("inf")
VIP = "10.77.0.100"

MONITOR_LOG = f"""\
[2026-12-06T10:00:00.000000] 4: veth0    inet 10.77.0.1/24 scope global veth0
[2026-12-06T10:00:01.000000] 4: veth0    inet {VIP}/32 scope global veth0
[2026-12-06T10:00:01.500000] 4: veth0    inet {VIP}/32 scope global veth0
[2026-12-06T10:00:03.250000] Deleted 4: veth0    inet {VIP}/32 scope global veth0
[2026-12-06T10:00:05.000000] 4: veth0    inet {VIP}/32 scope global veth0
"""


def t(hms):
    return lab_logs.log_time(f"[2026-12-06T{hms}]")


class AddressEventsTest(unittest.TestCase):
    def test_reads_only_the_vip_with_kernel_times(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "mon-h1.log")
            with open(path, "w") as f:
                f.write(MONITOR_LOG)
            ev = lab_logs.address_events(path, VIP)
        self.assertEqual([k for _, k in ev], ["add", "add", "del", "add"])
        self.assertAlmostEqual(ev[2][0] - ev[0][0], 2.25, places=6)

    def test_missing_log_is_no_events(self):
        self.assertEqual(lab_logs.address_events("/nonexistent/mon-h9.log", VIP), [])


class HoldIntervalsTest(unittest.TestCase):
    EV = [(1.0, "add"), (1.5, "add"), (3.25, "del"), (5.0, "add")]

    def test_a_refresh_is_no_new_hold_and_an_open_hold_lasts(self):
        self.assertEqual(lab_logs.hold_intervals(self.EV), [(1.0, 3.25), (5.0, INF)])

    def test_clipped_to_the_measurement(self):
        self.assertEqual(lab_logs.hold_intervals(self.EV, end=6.0), [(1.0, 3.25), (5.0, 6.0)])
        self.assertEqual(lab_logs.hold_intervals(self.EV, end=4.0), [(1.0, 3.25)])
        self.assertEqual(lab_logs.hold_intervals(self.EV, start=0.5, end=4.0, holds_at_start=True),
                         [(0.5, 3.25)])

    def test_a_crashed_host_holds_nothing_until_restored(self):
        # Crash at 2: the hold ends there; its log's adds before the restore (a dying daemon's
        # refresh) are no hold; after the restore at 4.5 the add at 5 is.
        down = lab_logs.down_windows([2.0], [4.5])
        self.assertEqual(down, [(2.0, 4.5)])
        ev = self.EV + [(2.5, "add")]
        self.assertEqual(lab_logs.hold_intervals(ev, down=down), [(1.0, 2.0), (5.0, INF)])
        self.assertEqual(lab_logs.hold_intervals(self.EV, down=lab_logs.down_windows([2.0])),
                         [(1.0, 2.0)])

    def test_dead_before_the_start_holds_nothing(self):
        self.assertEqual(lab_logs.hold_intervals(self.EV, start=4.0, end=9.0, holds_at_start=True,
                                                 down=[(3.0, INF)]), [])


class TwoHoldersTest(unittest.TestCase):
    def test_overlap_of_different_hosts_only(self):
        iv = [(0.0, 2.0, "h1"), (1.5, 3.0, "h2"), (2.0, 4.0, "h1"), (3.0, INF, "h3")]
        bad = lab_logs.two_holders(iv)
        self.assertEqual(bad, [((0.0, 2.0, "h1"), (1.5, 3.0, "h2")),
                               ((1.5, 3.0, "h2"), (2.0, 4.0, "h1")),
                               ((2.0, 4.0, "h1"), (3.0, INF, "h3"))])
        self.assertEqual(lab_logs.two_holders([(0.0, 1.0, "h1"), (1.0, 2.0, "h2")]), [])

    def test_an_overlap_within_the_monitor_logs_skew_is_not_two_holders(self):
        iv = [(0.0, 1.00005, "h1"), (1.0, 2.0, "h2"), (1.998, 3.0, "h1")]
        self.assertEqual(lab_logs.two_holders(iv, lab_logs.MONITOR_SKEW),
                         [((1.0, 2.0, "h2"), (1.998, 3.0, "h1"))])
        self.assertEqual(len(lab_logs.two_holders(iv)), 2)

    def test_the_daemons_own_removal_bounds_a_late_monitor_stamp(self):
        # Seen in CI (takeover_pool at load ~4): h1's monitor stamped its removal 5.6 ms after
        # the kernel's acknowledgement that h1's daemon logged, and after h2's add.
        with tempfile.TemporaryDirectory() as d:
            mon = os.path.join(d, "mon-h1.log")
            with open(mon, "w") as f:
                f.write(f"[2026-12-06T19:12:06.589836] 4: eth0    inet {VIP}/24 scope global eth0\n"
                        f"[2026-12-06T19:12:10.919269] Deleted 4: eth0    inet {VIP}/24 scope global eth0\n")
            log = os.path.join(d, "h1.log")
            with open(log, "w") as f:
                f.write(f"2026-12-06T19:12:06.589839 info [node 1] address driver: added {VIP}/24 on eth0\n"
                        f"2026-12-06T19:12:10.913642 info [node 1] address driver: removed {VIP}/24 from eth0\n"
                        "2026-12-06T19:12:10.913700 info [node 1] address driver: removed 10.77.0.101/24 from eth0\n")
            h1 = lab_logs.hold_intervals(lab_logs.address_events(mon, VIP))
            removals = lab_logs.daemon_removals(log, VIP)
        h2_add = t("19:12:10.916778")
        self.assertEqual(removals, [t("19:12:10.913642")])
        late = [(s, e, "h1") for s, e in h1] + [(h2_add, INF, "h2")]
        self.assertEqual(len(lab_logs.two_holders(late, lab_logs.MONITOR_SKEW)), 1)
        bounded = [(s, e, "h1") for s, e in lab_logs.end_by_removals(h1, removals)]
        self.assertEqual(bounded[0][1], t("19:12:10.913642"))
        self.assertEqual(lab_logs.two_holders(bounded + [(h2_add, INF, "h2")],
                                              lab_logs.MONITOR_SKEW), [])
        # A removal outside a hold (before it, or of an earlier hold) does not end it.
        self.assertEqual(lab_logs.end_by_removals([(5.0, 9.0)], [4.0, 9.5]), [(5.0, 9.0)])
        self.assertEqual(lab_logs.daemon_removals("/nonexistent/h9.log", VIP), [])

    def test_overlap_seconds(self):
        self.assertAlmostEqual(lab_logs.overlap_seconds([(0, 2), (5, 6)], [(1, 5.5)]), 1.5)
        self.assertEqual(lab_logs.overlap_seconds([(0, 1)], [(1, 2)]), 0)


class FilesTest(unittest.TestCase):
    def setUp(self):
        self._dir = tempfile.TemporaryDirectory()
        self.addCleanup(self._dir.cleanup)

    def file(self, name, text):
        path = os.path.join(self._dir.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_events_first_or_last_value(self):
        path = self.file("events", "start 100.5\nsplit_brain 0\nsplit_brain 1\nbroken\n")
        self.assertEqual(lab_logs.load_events(path), {"start": "100.5", "split_brain": "0"})
        self.assertEqual(lab_logs.load_events(path, last_wins=True)["split_brain"], "1")
        self.assertEqual(lab_logs.load_events(os.path.join(self._dir.name, "none")), {})

    def test_jsonl_skips_a_line_being_written(self):
        path = self.file("t.jsonl", '{"a": 1}\n{"a": 2}\n{"a": ')
        self.assertEqual(lab_logs.load_jsonl(path), [{"a": 1}, {"a": 2}])

    def test_prober_log(self):
        path = self.file("client.log",
                         "1 100.25 OK h1 0.3\n2 100.5 FAIL - -\nnoise\n3 100.75 LATE h2 9.1\n")
        self.assertEqual(lab_logs.prober_log(path),
                         [(1, 100.25, "OK", "h1"), (2, 100.5, "FAIL", "-"),
                          (3, 100.75, "LATE", "h2")])


class PercentileTest(unittest.TestCase):
    def test_the_definition_of_bench_lib_stats(self):
        v = list(range(100, 0, -1))  # 1..100, unsorted
        self.assertEqual(lab_logs.percentile(v, 0.0), 1)
        self.assertEqual(lab_logs.percentile(v, 0.5), 51)
        self.assertEqual(lab_logs.percentile(v, 0.99), 99)
        self.assertEqual(lab_logs.percentile(v, 1.0), 100)
        self.assertEqual(lab_logs.percentile([4, 1, 3, 2], 0.5), 3)
        self.assertIsNone(lab_logs.percentile([], 0.5))


if __name__ == "__main__":
    unittest.main()
