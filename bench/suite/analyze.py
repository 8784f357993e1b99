#!/usr/bin/env python3
"""Turns a results folder of bench/run into summary.md and PNG plots.

  python3 bench/suite/analyze.py RESULTS_DIR     (re-renders summary.md and the plots)

Reads <name>.json of each benchmark (and suite.json, written by bench/run); writes
summary.md, *.dat and *.png (gnuplot scripts in bench/suite/*.gp). Every ratio is
between figures of the same run.
"""
import glob
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import model  # noqa: E402


def load(out, name):
    p = os.path.join(out, f"{name}.json")
    if not os.path.exists(p):
        return None
    try:
        with open(p) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------ parsers --

def parse_sim_scale(text):
    """The printout of TakeoverPoolSim.ScaleRun64Nodes1024Addresses."""
    res = {}
    m = re.search(r"scale: (\d+) nodes, (\d+) addresses, capacity ([\d-]+), heartbeat (\d+) ms", text)
    if m:
        res.update(nodes=int(m.group(1)), slots=int(m.group(2)), capacity=m.group(3),
                   heartbeat_ms=int(m.group(4)))
    m = re.search(r"all held ([\d.]+) ms after a simultaneous start", text)
    if m:
        res["all_held_after_start_ms"] = float(m.group(1))
    m = re.search(r"steady state: ([\d.]+) messages per round per node, ([\d.]+) bytes per message", text)
    if m:
        res["messages_per_round_per_node"] = float(m.group(1))
        res["bytes_per_message"] = float(m.group(2))
    m = re.search(r"crash of the node carrying (\d+) addresses: all re-served after ([\d.]+) ms", text)
    if m:
        res["crashed_node_addresses"] = int(m.group(1))
        res["reserved_after_crash_ms"] = float(m.group(2))
    res["passed"] = "[  PASSED  ] 1 test" in text
    res["skipped"] = "SKIPPED" in text and "[  PASSED  ] 1 test" not in text
    return res


def collect_failover(d):
    """Every run of bench/failover.sh's OUTDIR/<system>-<interval>/results.jsonl."""
    runs = []
    for path in sorted(glob.glob(os.path.join(d, "*", "results.jsonl"))):
        sysname, interval = os.path.basename(os.path.dirname(path)).split("-", 1)
        for line in open(path):
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except ValueError:
                continue
            r["system"] = sysname
            r["interval_s"] = float(interval)
            runs.append(r)
    summary = []
    sp = os.path.join(d, "summary.jsonl")
    if os.path.exists(sp):
        summary = [json.loads(l) for l in open(sp) if l.strip()]
    return {"benchmark": "failover", "runs": runs, "summary": summary}


def collect_kv_failover(d):
    """bench/kv_failover.sh's OUTDIR/summary.jsonl and timeline files."""
    summary = []
    sp = os.path.join(d, "summary.jsonl")
    if os.path.exists(sp):
        for l in open(sp):
            try:
                summary.append(json.loads(l))
            except ValueError:
                pass
    timelines = sorted(os.path.relpath(p, d)
                       for p in glob.glob(os.path.join(d, "*", "run-*", "timeline.jsonl")))
    return {"benchmark": "kv_failover", "summary": summary, "timelines": timelines}


# ------------------------------------------------------------------ helpers --

def f0(v):
    return "n/a" if v is None else f"{v:,.0f}"


def f1(v):
    return "n/a" if v is None else f"{v:.1f}"


def f2(v):
    return "n/a" if v is None else f"{v:.2f}"


def f3(v):
    return "n/a" if v is None else f"{v:.3f}"


def ratio(a, b):
    return a / b if a is not None and b else None


def table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines)


def gnuplot(script, out, **vars_):
    """Runs bench/suite/<script> with the given variables; returns the error or None."""
    if not shutil.which("gnuplot"):
        return "gnuplot not installed (apt-get install gnuplot-nox)"
    args = ["gnuplot"]
    for k, v in vars_.items():
        args += ["-e", f"{k}='{v}'"]
    args.append(os.path.join(HERE, script))
    p = subprocess.run(args, cwd=out, capture_output=True, text=True, timeout=60)
    return None if p.returncode == 0 else p.stderr.strip()[-300:]


# --------------------------------------------------------------- sections --

def kv_cells(kv):
    return {(c["system"], c["store"], c["proto"], c["op"], c["clients"]): c
            for c in kv.get("cells", [])}


def kv_section(kv, out, plots):
    cells = kv_cells(kv)
    md = [f"## kv throughput and latency matrix (`kv_throughput`)\n",
          f"Medians of {kv.get('reps')} runs of {kv.get('seconds')} s per cell, values of "
          f"{kv.get('value_bytes')} B. Clients are closed-loop callers of the retrying client "
          "(baton) or redis-benchmark connections (Redis); raw RocksDB / raw etcd are threads "
          "calling the engine. CPU = server user+sys seconds per 1000 requests (raw RocksDB: "
          "the engine in the bench process; raw etcd: the etcd process); RSS = the server's "
          "peak.\n"]
    clients = sorted({k[4] for k in cells})
    groups = []
    for c in kv.get("cells", []):
        g = (c["system"], c["store"], c["proto"], c["op"])
        if g not in groups:
            groups.append(g)
    rows = []
    for g in groups:
        cs = [cells.get(g + (n,)) for n in clients]
        last = next((c for c in reversed(cs) if c), None)
        errors = sum(c["errors"] for c in cs if c)
        rows.append([g[0], g[1], g[2], g[3].upper()]
                    + [f0(c["ops_per_s"]) if c else "" for c in cs]
                    + [f"{c['p50_us']:,.0f} / {c['p99_us']:,.0f}" if c else "" for c in cs]
                    + [f3(last["cpu_s_per_1k"]) if last else "",
                       f1(last["peak_rss_mib"]) if last and last["peak_rss_mib"] else "",
                       errors or ""])
    md.append(table(["system", "store", "proto", "op"]
                    + [f"ops/s @{n}" for n in clients]
                    + [f"p50/p99 µs @{n}" for n in clients]
                    + [f"CPU s/1k req @{clients[-1] if clients else ''}", "peak RSS MiB",
                       "errors"], rows))

    # Ratios against the baselines measured in the same run.
    rr = []
    for op, rop in (("put", "put"), ("get", "get"), ("incr", "incr")):
        for proto in ("http", "grpc"):
            for n in clients:
                b = cells.get(("baton", "rocksdb", proto, op, n))
                r = cells.get(("redis", "redis", "resp", rop, n))
                raw = cells.get(("raw_rocksdb", "rocksdb", "engine", "put", n)) if op != "get" else None
                be = cells.get(("baton", "etcd", proto, op, n))
                re_ = cells.get(("raw_etcd", "etcd", "grpc", "put", n)) if op != "get" else None
                if not (b or be):
                    continue
                bo = b["ops_per_s"] if b else None
                eo = be["ops_per_s"] if be else None
                # The paired ratio (each baton rep against the raw rep run
                # right after it) when the benchmark measured it.
                e_ratio = (be.get("paired_ratio_to_raw") if be else None)
                if e_ratio is None:
                    e_ratio = ratio(eo, re_["ops_per_s"] if re_ else None)
                rr.append([op.upper(), proto, n,
                           f2(ratio(bo, r["ops_per_s"] if r else None)),
                           f2(ratio(bo, raw["ops_per_s"] if raw else None)),
                           f2(e_ratio) + (("" if e_ratio is None else
                                           (" ✓" if e_ratio >= 0.8 else " ✗"))
                                          if op != "get" else ""),
                           f2(ratio(b["cpu_s_per_1k"] if b else None,
                                    r["cpu_s_per_1k"] if r else None))])
    md.append("\n### Ratios (same run)\n")
    md.append("baton/Redis: baton on RocksDB vs redis-server appendfsync always (PUT vs SET, "
              "GET vs GET, INCR vs INCR); baton/raw RocksDB: vs synced Puts with as many "
              "threads (writes only); baton-on-etcd/raw etcd: vs the minimal Txn of a durable "
              "PUT (writes only; the median of paired reps, each baton rep against the raw rep run right "
              "after it; goal ≥ 0.8, ✓/✗); CPU baton/Redis: server CPU per request.\n")
    md.append(table(["op", "proto", "clients", "baton/Redis", "baton/raw RocksDB",
                     "baton-on-etcd/raw etcd", "CPU baton/Redis"], rr))

    # Plot data: one block per series (system/store/proto), x = clients.
    for op in ("put", "get", "incr"):
        series = {}
        for (sysn, store, proto, cop, n), c in sorted(cells.items(), key=lambda kv_: kv_[0][4]):
            if cop != op and not (op != "get" and sysn in ("raw_rocksdb", "raw_etcd")):
                continue
            if sysn == "baton":
                label = f"baton {store} {proto}"
            elif sysn == "redis":
                label = "redis (fsync always)"
            else:
                label = sysn.replace("_", " ")
            series.setdefault(label, []).append((n, c["ops_per_s"]))
        with open(os.path.join(out, f"throughput_{op}.dat"), "w") as f:
            for label, pts in series.items():
                f.write(f'"{label}"\n')
                for n, v in sorted(pts):
                    f.write(f"{n} {max(v, 0.1):.1f}\n")
                f.write("\n\n")
    err = gnuplot("throughput.gp", out, outfile="throughput_vs_clients.png")
    plots.append(("throughput_vs_clients.png", "throughput versus clients, per system "
                  "(PUT, GET, INCR)", err))
    md.append("\n![throughput versus clients](throughput_vs_clients.png)\n")
    return "\n".join(md)


def legacy_sections(out):
    md = []
    st = load(out, "storage")
    if st:
        md.append("## StableStore on RocksDB vs raw RocksDB (`storage`)\n")
        md.append(table(["writers", "store commits/s", "raw puts/s", "store/raw",
                         "commits per fsync", "store p99 µs"],
                        [[r["writers"], f0(r["store_ops_per_s"]), f0(r["raw_ops_per_s"]),
                          f2(r["store_over_raw"]), f1(r["commits_per_fsync"]),
                          f0(r["store_p99_us"])] for r in st["rows"]]))
    hp = load(out, "http_put")
    if hp:
        md.append("\n## Durable HTTP PUTs, event-driven client (`http_put`)\n")
        md.append(table(["clients", "baton PUT/s", "fsync off", "raw RocksDB", "Redis",
                         "baton/raw", "baton/Redis", "commits/fsync", "CPU µs/req (srv+cli)"],
                        [[r["clients"], f0(r["baton_ops_per_s"]), f0(r["baton_nosync_ops_per_s"]),
                          f0(r["raw_rocksdb_ops_per_s"]), f0(r["redis_ops_per_s"]),
                          f2(r["baton_over_raw"]), f2(r["baton_over_redis"]),
                          f1(r["commits_per_fsync"]), f0(r["cpu_us_per_request"])]
                         for r in hp["rows"]]))
    et = load(out, "etcd")
    if et:
        md.append("\n## StableStore on etcd vs raw etcd Txns (`etcd`)\n")
        md.append(table(["callers", "store ops/s", "raw ops/s", "store/raw (goal ≥ 0.8)",
                         "store p99 µs", "raw p99 µs"],
                        [[r["callers"], f0(r["store_ops_per_s"]), f0(r["raw_ops_per_s"]),
                          f2(r["store_over_raw"]), f0(r["store_p99_us"]), f0(r["raw_p99_us"])]
                         for r in et["rows"]]))
    cc = load(out, "client_crash")
    if cc:
        md.append("\n## Retrying client across kill -9 of baton-kvserver (`client_crash`)\n")
        md.append(table(["crash", "restart ms", "outage HTTP ms", "outage gRPC ms",
                         "requests caught", "attempts (mean/max)"],
                        [[i + 1, f0(r["restart_ms"]), f0(r["outage_http_ms"]),
                          f0(r["outage_grpc_ms"]), r["caught"],
                          f"{r['attempts_of_caught_mean']:.1f} / {r['attempts_of_caught_max']}"]
                         for i, r in enumerate(cc.get("crashes", []))]))
        md.append(f"\nmedian restart {f0(cc.get('median_restart_ms'))} ms, median client outage "
                  f"{f0(cc.get('median_outage_ms'))} ms; {cc.get('acknowledged')} acknowledged "
                  f"INCRs, lost {cc.get('lost')}, duplicates {cc.get('duplicates')}, gave up "
                  f"{cc.get('gave_up')}.\n")
    return "\n".join(md)


def failover_section(fo, out, plots, fam=""):
    """fam "" for the IPv4 benchmark (`failover`), "6" for the IPv6 one (`failover6`, systems
    baton6 and keepalived6)."""
    name = "failover" + fam
    v6 = " with an IPv6 service address" if fam else ""
    md = [f"## Fail-over outage{v6}, baton vs keepalived (`{name}`)\n"]
    runs = [r for r in fo.get("runs", []) if r.get("mode") == "crash"]
    groups = {}
    for r in runs:
        groups.setdefault((r["interval_s"], r["system"]), []).append(r)
    rows, med = [], {}
    for (iv, sysn), rs in sorted(groups.items(), key=lambda x: (-x[0][0], x[0][1])):
        o = [r["outage_ms"] for r in rs if "error" not in r and r.get("outage_ms") is not None]
        med[(iv, sysn)] = statistics.median(o) if o else None
        rows.append([f"{iv:g} s", sysn, len(rs), len(o), f1(med[(iv, sysn)]),
                     f1(min(o) if o else None), f1(max(o) if o else None),
                     f1(med[(iv, sysn)] / (iv * 1000) if o else None)])
    md.append("Client-observed outage after a host crash (ports down + SIGKILL of everything "
              "on the holder): 1 UDP request / 2 ms, 20 ms timeout. baton: 3 hosts; "
              + ("keepalived: two hosts, VRRPv3 over IPv6 (bench/failover/keepalived6.sh); "
                 "both IPv6 rows with baton's prober.\n" if fam else
                 "keepalived: the reference two-host script.\n"))
    md.append(table(["interval", "system", "runs", "measured", "median ms", "min ms", "max ms",
                     "median / interval"], rows))
    lines = []
    for iv in sorted({k[0] for k in med}, reverse=True):
        b, k = med.get((iv, "baton" + fam)), med.get((iv, "keepalived" + fam))
        if b is not None and k:
            lines.append(f"- interval {iv:g} s: baton{fam}/keepalived{fam} median outage = "
                         f"{b:.1f}/{k:.1f} ms = **{b / k:.2f}** "
                         f"({'baton faster' if b < k else 'baton NOT faster'})")
    md.append("\n" + "\n".join(lines) + "\n")
    # Plot: every run's outage, one column per (interval, system).
    ivs = sorted({k[0] for k in groups}, reverse=True)
    with open(os.path.join(out, f"{name}_outage.dat"), "w") as f:
        for sysn, off in (("baton" + fam, -0.15), ("keepalived" + fam, 0.15)):
            f.write(f'"{sysn}"\n')
            for xi, iv in enumerate(ivs):
                for j, r in enumerate(groups.get((iv, sysn), [])):
                    if r.get("outage_ms") is not None and "error" not in r:
                        jitter = ((j * 37) % 11 - 5) * 0.01
                        f.write(f"{xi + off + jitter:.3f} {max(r['outage_ms'], 0.1):.2f}\n")
            f.write("\n\n")
    with open(os.path.join(out, f"{name}_medians.dat"), "w") as f:
        for sysn, off in (("baton" + fam, -0.15), ("keepalived" + fam, 0.15)):
            for xi, iv in enumerate(ivs):
                m = med.get((iv, sysn))
                if m:
                    f.write(f"{xi + off:.3f} {max(m, 0.1):.2f}\n")
    tics = ", ".join(f'"{iv:g} s" {i}' for i, iv in enumerate(ivs))
    err = gnuplot("failover.gp", out, outfile=f"{name}_outage.png", xtics=f"({tics})",
                  xmax=str(len(ivs) - 0.5), data=f"{name}_outage.dat",
                  medians=f"{name}_medians.dat")
    plots.append((f"{name}_outage.png", f"fail-over outage distribution per system and "
                  f"interval{v6}", err))
    md.append(f"![fail-over outage{v6}]({name}_outage.png)\n")
    return "\n".join(md), med


def fault_offset_ms(run_dir):
    """kv_failover.sh's timelines count from the driver's start; its run's `events` file
    has "start <epoch s>" and "fault <epoch s>". Returns fault - start in ms, or 0."""
    ev = {}
    try:
        for line in open(os.path.join(run_dir, "events")):
            parts = line.split()
            if len(parts) >= 2 and parts[0] in ("start", "fault"):
                ev[parts[0]] = float(parts[1])
    except (OSError, ValueError):
        return 0.0
    if "start" in ev and "fault" in ev:
        return (ev["fault"] - ev["start"]) * 1000
    return 0.0


def kv_failover_section(kvf):
    """bench/kv_failover.sh's per-cell summary, the columns a reader compares."""
    cols = [("interval_s", "interval s", lambda v: f"{v:g}"),
            ("scenario", "scenario", str), ("system", "system", str), ("runs", "runs", str),
            ("failed_runs", "failed", str),
            ("outage_median_ms", "outage median ms", f1), ("outage_p99_ms", "p99 ms", f1),
            ("outage_max_ms", "max ms", f1), ("move_median_ms", "fault → new holder ms", f1),
            ("retried", "retried", str), ("replays", "replays", str), ("lost", "lost", str),
            ("duplicated", "duplicated", str), ("split_brain_runs", "split brain runs", str)]
    rows = []
    med = {}
    for s in kvf["summary"]:
        rows.append([fn(s.get(k)) if s.get(k) is not None else "" for k, _, fn in cols])
        med[(s.get("interval_s"), s.get("scenario"), s.get("system"))] = s.get("outage_median_ms")
    md = ["## kv service fail-over (`kv_failover`)\n",
          "bench/kv_failover.sh: the kv service on a 3-member etcd store, moved by baton's "
          "embedded agent or by keepalived, 4 retrying clients (INCR + PUT), verified end to "
          "end (lost acknowledged writes, duplicate executions).\n",
          table([h for _, h, _ in cols], rows), ""]
    for (iv, scen, sysn), b in sorted(med.items(), key=lambda x: (str(x[0][1]), -(x[0][0] or 0))):
        if sysn != "baton":
            continue
        k = med.get((iv, scen, "keepalived"))
        if b is not None and k:
            md.append(f"- {scen} at {iv:g} s: baton/keepalived median outage = {b:.1f}/{k:.1f} ms "
                      f"= **{b / k:.2f}**")
    return "\n".join(md)


def timeline_plot(src, name, title, out, plots, offset_ms=0.0):
    """A request timeline (JSON lines t_ms/ok/node) as a PNG, t_ms - offset_ms on the
    x axis (0 = the crash); returns the markdown."""
    rows = []
    for line in open(src):
        try:
            r = json.loads(line)
            rows.append((float(r["t_ms"]) - offset_ms, bool(r["ok"]),
                         str(r.get("node", "?"))))
        except (ValueError, KeyError, TypeError):
            continue
    if not rows:
        return ""
    nodes = sorted({n for _, _, n in rows})
    ypos = {n: i + 1 for i, n in enumerate(nodes)}
    # Per ms: how many succeeded and failed (and at which node).
    dat = os.path.join(out, f"{name}.dat")
    with open(dat, "w") as f:
        for n in nodes:
            f.write(f'"{n} ok"\n')
            for t, ok, nn in rows:
                if ok and nn == n:
                    f.write(f"{t:.3f} {ypos[n]}\n")
            f.write("\n\n")
        f.write('"failed"\n')
        for t, ok, nn in rows:
            if not ok:
                f.write(f"{t:.3f} 0\n")
        f.write("0 -10\n\n\n")  # keeps the block non-empty (drawn off-range)
    ytics = ", ".join([f'"failed" 0'] + [f'"{n}" {ypos[n]}' for n in nodes])
    png = f"{name}.png"
    err = gnuplot("timeline.gp", out, datafile=os.path.basename(dat), outfile=png,
                  ytics=f"({ytics})", ymax=str(len(nodes) + 1), title=title,
                  nblocks=str(len(nodes) + 1))
    plots.append((png, title, err))
    ok = sum(1 for _, o, _ in rows if o)
    return (f"![{title}]({png})\n\n{len(rows)} events ({ok} successes, {len(rows) - ok} "
            f"failures) between {min(r[0] for r in rows):.0f} and "
            f"{max(r[0] for r in rows):.0f} ms around the fault (t = 0).\n")


def scaling_section(out, assign, sim, fo_med):
    md = ["## Scaling: model vs measurement\n",
          "The model is in bench/README.md (\"Scaling on paper\"); its inputs here are "
          "measured in this run: the encoded size of one round message and the time of "
          "Assign() (`assignment`), the simulator's 64-node run (`sim_scale`) and the "
          "fail-over outages (`failover`).\n"]
    if assign:
        md.append("### Per round, per node (heartbeat 10 ms unless said)\n")
        rows = []
        for c in assign["cells"]:
            m = model.lease_traffic(c["nodes"], c["slots"], c["message_bytes"], 0.010)
            rows.append([c["nodes"], c["slots"], m["messages"], c["message_bytes"],
                         "yes" if m["fits_8k_payload"] else "**no**",
                         f"{m['datagrams_ip']}",
                         f"{m['kib_per_node_per_round']:.1f}",
                         f"{m['mbit_per_node_per_s']:.1f}",
                         f"{c['steady_us']:.1f}", f"{c['crash_us']:.1f}",
                         f"{100 * c['crash_us'] / 10000:.2f}%"])
        md.append(table(["nodes", "slots", "msgs/node/round", "payload B/msg",
                         "≤ 8 KiB payload (transport default)", "IP fragments/msg",
                         "KiB sent/node/round", "Mbit/s sent/node", "Assign steady µs",
                         "Assign after crash µs", "of a 10 ms round"], rows))
    if sim:
        md.append("\n### Model vs simulation (64 nodes, 1024 addresses)\n")
        rows = []
        a = None
        if assign:
            a = next((c for c in assign["cells"] if c["nodes"] == 64 and c["slots"] == 1024), None)
        hb = sim.get("heartbeat_ms", 10) / 1000.0
        m_msgs = model.messages_per_round(64, 1024)
        m_bytes = a["message_bytes"] if a else None
        rows.append(["messages per round per node", m_msgs,
                     f1(sim.get("messages_per_round_per_node"))])
        rows.append(["bytes per message (payload)", f0(m_bytes), f0(sim.get("bytes_per_message"))])
        fo = model.failover_ms(hb)
        rows.append(["crash → addresses re-served (ms)",
                     f"{fo['min_ms']:.0f}–{fo['max_ms']:.0f} (typ. {fo['typ_ms']:.0f})",
                     f1(sim.get("reserved_after_crash_ms"))])
        rows.append(["all addresses held after a simultaneous start (ms)",
                     f"≥ {model.startup_ms(hb):.0f}",
                     f1(sim.get("all_held_after_start_ms"))])
        md.append(table(["quantity", "model", "simulation"], rows))
    if fo_med:
        md.append("\n### Fail-over time vs heartbeat: model vs lab\n")
        rows = []
        for (iv, sysn), m in sorted(fo_med.items(), key=lambda x: -x[0][0]):
            if sysn != "baton":
                continue
            fo = model.failover_ms(iv)
            rows.append([f"{iv:g} s", f"{fo['min_ms']:.0f}–{fo['max_ms']:.0f} "
                         f"(typ. {fo['typ_ms']:.0f})", f1(m)])
        md.append(table(["heartbeat", "model outage ms (server side)",
                         "lab median client outage ms"], rows))
    return "\n".join(md)


def targets_section(kv, fo_med):
    """fo_med: median crash outage per (interval, system) of `failover` and `failover6`."""
    md = ["## Targets (bench/README.md \"Where baton falls short\")\n"]
    rows = []
    for fam, what in (("", ""), ("6", " (IPv6 address)")):
        for iv in sorted({k[0] for k in fo_med}, reverse=True):
            b, k = fo_med.get((iv, "baton" + fam)), fo_med.get((iv, "keepalived" + fam))
            if b is not None and k:
                rows.append([f"fail-over median outage{what} < keepalived's at {iv:g} s",
                             f"{b:.1f} vs {k:.1f} ms", "met" if b < k else "**not met**"])
    if kv:
        cells = kv_cells(kv)
        for proto in ("http", "grpc"):
            b = cells.get(("baton", "rocksdb", proto, "put", 64))
            r = cells.get(("redis", "redis", "resp", "put", 64))
            if b and r:
                x = ratio(b["ops_per_s"], r["ops_per_s"])
                rows.append([f"durable PUT ({proto}) at 64 clients ≥ Redis appendfsync always",
                             f"{x:.2f}x", "met" if x >= 1 else "**not met**"])
        for n in sorted({k[4] for k in cells}):
            xs = []
            for proto in ("http", "grpc"):
                b = cells.get(("baton", "etcd", proto, "put", n))
                r = cells.get(("raw_etcd", "etcd", "grpc", "put", n))
                if b and r:
                    paired = b.get("paired_ratio_to_raw")
                    xs.append((proto, paired if paired is not None
                               else ratio(b["ops_per_s"], r["ops_per_s"])))
            if xs:
                rows.append([f"baton-on-etcd PUT / raw etcd ≥ 0.8 at {n} clients "
                             f"({'/'.join(p for p, _ in xs)})",
                             " / ".join(f"{x:.2f}" for _, x in xs),
                             "met" if all(x >= 0.8 for _, x in xs) else "**not met**"])
    if not rows:
        return ""
    return "\n".join(md) + "\n" + table(["target", "measured", ""], rows)


def analyze(out):
    meta = load(out, "suite") or {}
    plots = []
    md = [f"# baton benchmark suite — {meta.get('mode', '?')} run {meta.get('started_utc', '')}\n",
          f"commit `{meta.get('commit', '?')}`, {meta.get('nproc', '?')} CPUs, load average at "
          f"the end {' '.join(meta.get('loadavg', []))}, suite time "
          f"{meta.get('seconds', 0) / 60:.1f} min. The machine may be shared: quote medians "
          "and ratios, not absolute rates.\n"]
    st = meta.get("benchmarks", {})
    if st:
        rows = []
        for n in meta.get("order", st.keys()):
            if n not in st:
                continue
            s = st[n]
            rows.append([n, s["status"], f"{s['seconds']:.0f} s" if "seconds" in s else "",
                         f"`{s['rerun']}`" if s.get("rerun") else "", s.get("note", "")])
        md.append(table(["benchmark", "status", "time", "rerun alone", "note"], rows))
    kv = load(out, "kv_throughput")
    fo = load(out, "failover")
    fo_med = {}
    fo_md = ""
    if fo:
        fo_md, fo_med = failover_section(fo, out, plots)
    fo6 = load(out, "failover6")
    fo6_md, fo6_med = failover_section(fo6, out, plots, fam="6") if fo6 else ("", {})
    tgt = targets_section(kv, {**fo_med, **fo6_med})
    if tgt:
        md.append("\n" + tgt + "\n")
    if kv:
        md.append("\n" + kv_section(kv, out, plots) + "\n")
    leg = legacy_sections(out)
    if leg:
        md.append("\n" + leg + "\n")
    if fo_md:
        md.append("\n" + fo_md)
    if fo6_md:
        md.append("\n" + fo6_md)
    # Timelines: the kv fail-over benchmark's (one per scenario: its first run), the
    # client crash benchmark's.
    tl_md = []
    kvf = load(out, "kv_failover")
    if kvf:
        if kvf.get("summary"):
            md.append("\n" + kv_failover_section(kvf) + "\n")
        # The first run of each <system>-<scenario>-<interval>, host crashes first, at most 6.
        seen = []
        rels = sorted(kvf.get("timelines", []), key=lambda r: ("-host-" not in r, r))
        for rel in rels:
            scen = rel.split(os.sep)[0]
            if scen in seen or len(seen) >= 6:
                continue
            seen.append(scen)
            src = os.path.join(out, "kv_failover", rel)
            tl_md.append(timeline_plot(src,
                                       f"timeline_kv_{re.sub(r'[^A-Za-z0-9_]', '_', scen)}",
                                       f"kv client around the fault: {scen} (first run)",
                                       out, plots, fault_offset_ms(os.path.dirname(src))))
    cct = os.path.join(out, "client_crash.timeline.jsonl")
    if os.path.exists(cct):
        tl_md.append(timeline_plot(cct, "timeline_client_crash",
                                   "client requests around kill -9 of baton-kvserver "
                                   "(series = protocol)", out, plots))
    if any(tl_md):
        md.append("\n## Request timelines around a crash\n\n" + "\n".join(x for x in tl_md if x))
    assign = load(out, "assignment")
    sim = load(out, "sim_scale")
    if assign or sim or fo_med:
        md.append("\n" + scaling_section(out, assign, sim, fo_med) + "\n")
    if plots:
        md.append("\n## Plots\n")
        for png, what, err in plots:
            md.append(f"- `{png}`: {what}" + (f" — **not drawn**: {err}" if err else ""))
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    ok = sum(1 for s in st.values() if s["status"] == "ok")
    skipped = sum(1 for s in st.values() if s["status"] == "skipped")
    return (f"{ok} ok, {skipped} skipped, {len(st) - ok - skipped} failed; "
            f"{sum(1 for p in plots if not p[2])} plots")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    print(analyze(os.path.abspath(sys.argv[1])))
