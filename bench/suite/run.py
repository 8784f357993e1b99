#!/usr/bin/env python3
"""baton's benchmark suite (entry point: bench/run; documented in bench/README.md).

Builds the benchmark targets (cmake --preset default + ninja: build/), runs every
benchmark bounded in time with a progress display, and writes a results folder:
  <name>.json   one machine-readable file per benchmark
  <name>.log    what the benchmark printed
  summary.md    tables and ratios (bench/suite/analyze.py)
  *.png         plots (gnuplot)
Each benchmark runs in its own process group; on its time limit the group is
killed by the benchmark's PID. Benchmarks that need root are skipped with a note.
"""
import argparse
import datetime
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import analyze  # noqa: E402


class Bench:
    """One benchmark: how to build and run it, how long it should take."""

    def __init__(self, name, what, targets, full, quick, est_full, est_quick,
                 root=False, available=None, env=None, post=None, soak=None, est_soak=0):
        self.name = name
        self.what = what
        self.targets = targets          # ninja targets it needs
        self.full = full                # ctx -> argv (None: not in this mode)
        self.quick = quick
        self.soak = soak                # --soak: the long runs (minutes to hours), alone
        # Expected seconds (measured on 2 shared cores), for the ETA and the time limit.
        self.est = {"full": est_full, "quick": est_quick, "soak": est_soak}
        self.root = root
        self.available = available      # ctx -> None or the reason it is skipped
        self.env = env or {}
        self.post = post                # ctx -> None: turns raw output into <name>.json


def bin_(ctx, *parts):
    return os.path.join(ctx["build"], *parts)


def sim_post(ctx):
    """Parses the scale run's printout into sim_scale.json."""
    text = open(os.path.join(ctx["out"], "sim_scale.log")).read()
    res = analyze.parse_sim_scale(text)
    with open(os.path.join(ctx["out"], "sim_scale.json"), "w") as f:
        json.dump(res, f, indent=1)


def failover_post(ctx, name="failover"):
    """Collects failover.sh's results.jsonl files (OUT/<name>/) into <name>.json."""
    d = os.path.join(ctx["out"], name)
    res = analyze.collect_failover(d)
    with open(os.path.join(ctx["out"], name + ".json"), "w") as f:
        json.dump(res, f, indent=1)


def kv_failover_post(ctx):
    d = os.path.join(ctx["out"], "kv_failover")
    res = analyze.collect_kv_failover(d)
    with open(os.path.join(ctx["out"], "kv_failover.json"), "w") as f:
        json.dump(res, f, indent=1)


def kv_failover_available(ctx):
    p = os.path.join(REPO, "bench", "kv_failover.sh")
    if not (os.path.isfile(p) and os.access(p, os.X_OK)):
        return "bench/kv_failover.sh does not exist (yet) or is not executable"
    return None


BENCHES = [
    Bench("kv_throughput",
          "kv PUT/GET/INCR over HTTP and gRPC at 1/16/64 clients on RocksDB and etcd, "
          "beside Redis (appendfsync always), raw RocksDB and raw etcd; server CPU and RSS",
          ["baton-kv-throughput"],
          lambda c: [bin_(c, "bench", "baton-kv-throughput"), "--clients", "1,16,64",
                     "--seconds", "2", "--reps", "3", "--json", c["json"]],
          lambda c: [bin_(c, "bench", "baton-kv-throughput"), "--clients", "1,16,64",
                     "--seconds", "1", "--reps", "1", "--json", c["json"]],
          est_full=390, est_quick=70),
    Bench("assignment",
          "take-over core: Assign() time and round-message bytes at 3/16/64 nodes x "
          "6/128/1024 slots",
          ["baton-assignment-bench"],
          lambda c: [bin_(c, "bench", "baton-assignment-bench"), "--reps", "7",
                     "--json", c["json"]],
          lambda c: [bin_(c, "bench", "baton-assignment-bench"), "--reps", "3",
                     "--json", c["json"]],
          est_full=15, est_quick=10),
    Bench("storage",
          "RocksDB StableStore commits vs raw RocksDB synced Puts (1/16/64 writers)",
          ["baton-storage-bench"],
          lambda c: [bin_(c, "bench", "baton-storage-bench"), "--seconds", "2",
                     "--reps", "3", "--json", c["json"]],
          None, est_full=45, est_quick=0),
    Bench("http_put",
          "durable HTTP PUTs (async client) vs raw RocksDB and Redis, with the fsync-off "
          "figure and commits per fsync",
          ["baton-http-bench"],
          lambda c: [bin_(c, "bench", "baton-http-bench"), "--seconds", "2",
                     "--reps", "2", "--json", c["json"]],
          None, est_full=60, est_quick=0),
    Bench("etcd",
          "StableStore-on-etcd commits vs raw etcd Txns through the same stubs",
          ["baton-etcd-bench"],
          lambda c: [bin_(c, "bench", "baton-etcd-bench"), "--seconds", "2",
                     "--reps", "2", "--json", c["json"]],
          None, est_full=40, est_quick=0),
    Bench("client_crash",
          "retrying client across kill -9 + restart of baton-kvserver (outage, attempts, "
          "lost/duplicate writes; request timeline around the first crash)",
          ["baton-client-bench", "baton-kvserver"],
          lambda c: [bin_(c, "bench", "baton-client-bench"), "--mode", "crash",
                     "--crashes", "5", "--interval", "1.5", "--seed", "7",
                     "--json", c["json"], "--timeline",
                     os.path.join(c["out"], "client_crash.timeline.jsonl")],
          lambda c: [bin_(c, "bench", "baton-client-bench"), "--mode", "crash",
                     "--crashes", "2", "--interval", "1", "--seed", "7",
                     "--json", c["json"], "--timeline",
                     os.path.join(c["out"], "client_crash.timeline.jsonl")],
          est_full=15, est_quick=8),
    Bench("sim_scale",
          "deterministic simulation: 64 nodes, 1024 addresses (lease traffic, "
          "re-serve time after the biggest holder crashes)",
          ["takeover_sim_test"],
          lambda c: [bin_(c, "tests", "takeover", "takeover_sim_test"),
                     "--gtest_filter=*ScaleRun*"],
          None, est_full=90, est_quick=0,
          env={"BATON_SIM_SCALE": "1"}, post=sim_post),
    Bench("failover",
          "host crash fail-over: baton vs keepalived at equal heartbeat/advert intervals "
          "(bench/failover.sh, network namespaces)",
          ["baton-takeoverd", "baton-udp-responder", "baton-udp-prober"],
          lambda c: [os.path.join(REPO, "bench", "failover.sh"), "-i", "1,0.1,0.01",
                     "-n", "3", "-s", "crash", "-o", os.path.join(c["out"], "failover"),
                     "-b", c["build"], "-p", "bsf", "-P", "bsk"],
          lambda c: [os.path.join(REPO, "bench", "failover.sh"), "-i", "0.1",
                     "-n", "1", "-s", "crash", "-o", os.path.join(c["out"], "failover"),
                     "-b", c["build"], "-p", "bsf", "-P", "bsk"],
          est_full=170, est_quick=20, root=True, post=failover_post),
    Bench("failover6",
          "the same with an IPv6 service address (bench/failover.sh -6): baton beside "
          "keepalived with an IPv6 VIP (VRRPv3, bench/failover/keepalived6.sh)",
          ["baton-takeoverd", "baton-udp-responder", "baton-udp-prober"],
          lambda c: [os.path.join(REPO, "bench", "failover.sh"), "-6", "-i", "0.1,0.01",
                     "-n", "3", "-s", "crash", "-o", os.path.join(c["out"], "failover6"),
                     "-b", c["build"], "-p", "bs6", "-P", "bk6"],
          lambda c: [os.path.join(REPO, "bench", "failover.sh"), "-6", "-i", "0.1",
                     "-n", "1", "-s", "crash", "-o", os.path.join(c["out"], "failover6"),
                     "-b", c["build"], "-p", "bs6", "-P", "bk6"],
          est_full=120, est_quick=25, root=True,
          post=lambda c: failover_post(c, "failover6")),
    Bench("kv_failover",
          "kv service fail-over between hosts (bench/kv_failover.sh): client timeline "
          "around a crash",
          ["baton-kvserver", "baton-takeoverd", "baton-kv-driver"],
          lambda c: [os.path.join(REPO, "bench", "kv_failover.sh"), "-i", "0.1", "-n", "3",
                     "-s", "process,host", "-o", os.path.join(c["out"], "kv_failover"),
                     "-b", c["build"]],
          lambda c: [os.path.join(REPO, "bench", "kv_failover.sh"), "-i", "0.1", "-n", "1",
                     "-s", "host", "-o", os.path.join(c["out"], "kv_failover"),
                     "-b", c["build"]],
          est_full=100, est_quick=30, root=True, available=kv_failover_available,
          # Own namespace prefixes: the script's defaults are its author's.
          env={"PFX_B": "bsb", "PFX_K": "bsq"}, post=kv_failover_post),
    Bench("kv_soak",
          "no false fail-overs: 3-host kv lab on etcd under steady load, a CPU hog (cgroup "
          "capped at one core) on the holder's host, no fault; every address move counted "
          "(bench/kv_soak.sh, 10 min at 50 ms and at 10 ms heartbeats)",
          ["baton-kvserver", "baton-takeoverd", "baton-kv-driver"],
          None, None, est_full=0, est_quick=0, root=True, env={"PFX": "bss"},
          soak=lambda c: [os.path.join(REPO, "bench", "kv_soak.sh"), "-i", "0.05,0.01",
                          "-t", "600", "-o", os.path.join(c["out"], "kv_soak"),
                          "-b", c["build"]],
          est_soak=1320),
    Bench("etcd_soak",
          "capacity: one kv server on a 3-member etcd under steady writes for 30 min; store "
          "size, completion records and request rate must stay flat (bench/etcd_soak.sh)",
          ["baton-kvserver"],
          None, None, est_full=0, est_quick=0,
          soak=lambda c: [os.path.join(REPO, "bench", "etcd_soak.sh"), "-t", "1800",
                          "-o", os.path.join(c["out"], "etcd_soak"), "-b", c["build"]],
          est_soak=1900),
]


def fmt_s(s):
    s = max(0, int(s))
    return f"{s // 60}:{s % 60:02d}"


class Progress:
    """A status line refreshed every second while a benchmark runs: which one,
    its elapsed time against its estimate, the suite's ETA, the log's last line."""

    def __init__(self, total_est):
        self.total_est = total_est
        self.tty = sys.stdout.isatty()
        self.stop = threading.Event()
        self.thread = None

    def start(self, index, count, bench, est, later_est, log_path):
        self.stop.clear()
        t0 = time.monotonic()

        def loop():
            last_print = 0.0
            while not self.stop.wait(1.0):
                el = time.monotonic() - t0
                eta = max(est - el, 0) + later_est
                tail = last_line(log_path)
                line = (f"[{index}/{count}] {bench.name}  {fmt_s(el)} elapsed "
                        f"(est {fmt_s(est)}), suite ETA {fmt_s(eta)}  | {tail}")
                if self.tty:
                    cols = shutil.get_terminal_size((120, 20)).columns
                    sys.stdout.write("\r\033[K" + line[:cols - 1])
                    sys.stdout.flush()
                elif el - last_print >= 30:
                    print(line[:160], flush=True)
                    last_print = el

        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()

    def end(self):
        self.stop.set()
        if self.thread:
            self.thread.join()
        if self.tty:
            sys.stdout.write("\r\033[K")
            sys.stdout.flush()


def last_line(path):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 400))
            lines = [l for l in f.read().decode(errors="replace").splitlines() if l.strip()]
            return lines[-1].strip() if lines else ""
    except OSError:
        return ""


def run_bounded(argv, log_path, limit_s, env):
    """Runs argv in its own process group, output to log_path; kills the group
    (by the child's PID) after limit_s. Returns (exit code or None on timeout, seconds)."""
    t0 = time.monotonic()
    with open(log_path, "w") as log:
        log.write("# " + " ".join(shlex.quote(a) for a in argv) + "\n")
        log.flush()
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                             env=env, start_new_session=True)
        try:
            rc = p.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            rc = None
        except KeyboardInterrupt:
            kill_group(p)
            raise
        if rc is None:
            kill_group(p)
            log.write(f"\n# killed after its time limit of {limit_s:.0f} s\n")
    return rc, time.monotonic() - t0


def kill_group(p):
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def build(build_dir, targets, log_path):
    """Configures (preset default when build_dir is build/) and builds targets.
    Returns the set of targets that failed to build."""
    with open(log_path, "a") as log:
        if os.path.abspath(build_dir) == os.path.join(REPO, "build"):
            cfg = ["cmake", "--preset", "default"]
        else:
            cfg = ["cmake", "-S", REPO, "-B", build_dir, "-G", "Ninja",
                   "-DCMAKE_BUILD_TYPE=RelWithDebInfo"]
        log.write("# " + " ".join(cfg) + "\n")
        log.flush()
        if subprocess.call(cfg, cwd=REPO, stdout=log, stderr=subprocess.STDOUT) != 0:
            return set(targets)
        cmd = ["ninja", "-C", build_dir, "-j2"] + sorted(targets)
        log.write("# " + " ".join(cmd) + "\n")
        log.flush()
        if subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT) == 0:
            return set()
        # Find out which ones fail, so the others still run.
        failed = set()
        for t in sorted(targets):
            if subprocess.call(["ninja", "-C", build_dir, "-j2", t], stdout=log,
                               stderr=subprocess.STDOUT) != 0:
                failed.add(t)
        return failed


def main():
    ap = argparse.ArgumentParser(
        prog="bench/run", description="baton's benchmark suite (see bench/README.md)")
    ap.add_argument("--quick", action="store_true", help="short runs (< 3 min)")
    ap.add_argument("--soak", action="store_true",
                    help="the soaks instead: no false fail-overs under a CPU hog (2 x 10 min), "
                    "etcd store size and rate flat over 30 min (about 55 min in all)")
    ap.add_argument("--only", help="comma-separated benchmark names (see --list)")
    ap.add_argument("--out", help="results folder (default bench/results/<UTC time>)")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build"),
                    help="build tree (default build/, the default preset)")
    ap.add_argument("--no-build", action="store_true", help="use the build tree as it is")
    args = ap.parse_args()
    if args.quick and args.soak:
        print("--quick and --soak exclude each other", file=sys.stderr)
        return 2
    mode = "quick" if args.quick else ("soak" if args.soak else "full")

    if args.list:
        for b in BENCHES:
            modes = [m for m in ("full", "quick", "soak") if getattr(b, m)]
            extra = " (root)" if b.root else ""
            m0 = modes[0] if modes else "full"
            print(f"{b.name:<14} {'/'.join(modes):<11} ~{fmt_s(b.est[m0])} {m0}"
                  f"{extra}  {b.what}")
        return 0

    names = [b.name for b in BENCHES]
    selected = BENCHES
    if args.only:
        want = [n.strip() for n in args.only.split(",") if n.strip()]
        bad = [n for n in want if n not in names]
        if bad:
            print(f"unknown benchmark(s): {', '.join(bad)}; known: {', '.join(names)}",
                  file=sys.stderr)
            return 2
        selected = [b for b in BENCHES if b.name in want]
    build_dir = os.path.abspath(args.build_dir)
    stamp = datetime.datetime.utcnow().strftime("%Y%m%dT%H%M%SZ")
    out = os.path.abspath(args.out or os.path.join(REPO, "bench", "results", stamp))
    os.makedirs(out, exist_ok=True)
    is_root = os.geteuid() == 0
    suite_t0 = time.monotonic()
    print(f"baton benchmark suite, {mode} mode; results in {out}")

    # Which benchmarks run and why the others do not.
    plan, status = [], {}
    for b in selected:
        argv_fn = getattr(b, mode)
        if argv_fn is None:
            status[b.name] = dict(status="skipped", note=f"not part of --{mode}" if mode != "full"
                                  else "not part of the full suite")
            continue
        if b.root and not is_root:
            status[b.name] = dict(status="skipped",
                                  note="needs root (network namespaces); run the suite as root")
            continue
        why = b.available(None) if b.available else None
        if why:
            status[b.name] = dict(status="skipped", note=why)
            continue
        plan.append(b)

    build_log = os.path.join(out, "build.log")
    if plan and not args.no_build:
        targets = sorted({t for b in plan for t in b.targets})
        print(f"building {len(targets)} targets in {build_dir} (log: {build_log}) ...",
              flush=True)
        t0 = time.monotonic()
        failed = build(build_dir, targets, build_log)
        print(f"build: {fmt_s(time.monotonic() - t0)}"
              + (f", failed: {', '.join(sorted(failed))}" if failed else ""), flush=True)
        kept = []
        for b in plan:
            bad = [t for t in b.targets if t in failed]
            if bad:
                status[b.name] = dict(status="failed", note=f"build of {', '.join(bad)} failed "
                                      f"(see build.log)")
            else:
                kept.append(b)
        plan = kept

    progress = Progress(sum(b.est[mode] for b in plan))
    ctx_base = dict(build=build_dir, out=out, mode=mode)
    for i, b in enumerate(plan):
        ctx = dict(ctx_base, json=os.path.join(out, f"{b.name}.json"))
        argv = getattr(b, mode)(ctx)
        log_path = os.path.join(out, f"{b.name}.log")
        env = dict(os.environ, **b.env)
        env_prefix = " ".join(f"{k}={v}" for k, v in b.env.items())
        rerun = (env_prefix + " " if env_prefix else "") + " ".join(shlex.quote(a) for a in argv)
        est = b.est[mode]
        later = sum(x.est[mode] for x in plan[i + 1:])
        limit = 3 * est + 120
        print(f"[{i + 1}/{len(plan)}] {b.name}: {b.what}\n    rerun alone: {rerun}", flush=True)
        progress.start(i + 1, len(plan), b, est, later, log_path)
        try:
            rc, secs = run_bounded(argv, log_path, limit, env)
        except KeyboardInterrupt:
            progress.end()
            print("\ninterrupted; partial results in", out)
            return 130
        progress.end()
        st = "ok" if rc == 0 else ("timeout" if rc is None else f"failed (exit {rc})")
        note = ""
        if b.post:
            try:
                b.post(ctx)
            except Exception as e:  # noqa: BLE001 - a bad parse must not end the suite
                note = f"analysis failed: {e}"
        status[b.name] = dict(status=st, seconds=round(secs, 1), rerun=rerun, note=note)
        print(f"    {st} in {fmt_s(secs)}" + (f"; {note}" if note else ""), flush=True)

    meta = dict(mode=mode, started_utc=stamp, seconds=round(time.monotonic() - suite_t0, 1),
                build_dir=build_dir, root=is_root, order=names, benchmarks=status,
                commit=git_commit(), nproc=os.cpu_count(),
                loadavg=open("/proc/loadavg").read().split()[:3])
    with open(os.path.join(out, "suite.json"), "w") as f:
        json.dump(meta, f, indent=1)
    summary = analyze.analyze(out)
    print(f"\nsuite done in {fmt_s(time.monotonic() - suite_t0)}: {summary}")
    print(f"summary: {os.path.join(out, 'summary.md')}")
    failed = [n for n, s in status.items() if s["status"] not in ("ok", "skipped")]
    return 1 if failed else 0


def git_commit():
    try:
        return subprocess.check_output(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                                       text=True, stderr=subprocess.DEVNULL).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
