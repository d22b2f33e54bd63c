#!/usr/bin/env python3
"""Measurement helper for bench/relay.sh (standard library only).

Subcommands:
  stamp OUT      read smtp-sink -c output on stdin, append "<CLOCK_MONOTONIC ns> <mesg count>"
                 to OUT for every change of smtp-sink's message counter.
  run ...        one measured run: smtp-source (plus an optional latency probe) against one MTA,
                 wait until the sink has every message, write a JSON record.
  probe ...      the latency probe itself (started by `run`): one SMTP transaction at a time,
                 timing "." -> 250.
  report ...     median table (markdown) from the JSON records of a benchmark.

Every timestamp is CLOCK_MONOTONIC (time.monotonic_ns), which is system-wide on Linux, so
the stamps written by the `stamp` process and those taken here are comparable.
"""

import argparse
import json
import os
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def die(msg):
    print(f"relay_tool: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


# --------------------------------------------------------------------------------- stamp
def cmd_stamp(args):
    """Timestamp smtp-sink's running counter ("sess=N quit=N mesg=N\\r")."""
    out = open(args.out, "a", buffering=1)
    pat = re.compile(rb"mesg=(\d+)")
    buf = b""
    last = -1
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # every line is already flushed
    while True:
        chunk = os.read(0, 65536)
        now = time.monotonic_ns()
        if not chunk:
            break
        buf += chunk
        parts = re.split(rb"[\r\n]", buf)
        buf = parts.pop()
        lines = []
        for p in parts:
            m = pat.search(p)
            if m:
                n = int(m.group(1))
                if n != last:
                    last = n
                    lines.append(f"{now} {n}\n")
        if lines:
            out.write("".join(lines))
            out.flush()


class SinkTail:
    """Incremental reader of the stamp file: count -> first time it was reached."""

    def __init__(self, path):
        self.f = open(path, "r")
        self.partial = ""
        self.count = 0
        self.last_change_ns = time.monotonic_ns()
        self.reached = {}  # count -> ns (only filled once tracking starts)
        self.tracking = False

    def poll(self):
        data = self.f.read()
        if not data:
            return False
        data = self.partial + data
        lines = data.split("\n")
        self.partial = lines.pop()
        changed = False
        for line in lines:
            if not line:
                continue
            ts, n = line.split()
            ts, n = int(ts), int(n)
            if n < self.count:
                die(f"smtp-sink counter went backwards ({self.count} -> {n}): did the sink restart?")
            if self.tracking:
                for k in range(self.count + 1, n + 1):
                    self.reached[k] = ts
            self.count = n
            self.last_change_ns = ts
            changed = True
        return changed


# --------------------------------------------------------------------------------- accounting
def read_cg(path):
    """CPU ns used by a cgroup (v1 cpuacct.usage or v2 cpu.stat usage_usec)."""
    if not path:
        return None
    try:
        with open(os.path.join(path, "cpuacct.usage")) as f:
            return int(f.read())
    except FileNotFoundError:
        pass
    try:
        with open(os.path.join(path, "cpu.stat")) as f:
            for line in f:
                k, v = line.split()
                if k == "usage_usec":
                    return int(v) * 1000
    except FileNotFoundError:
        return None
    return None


def proc_stat_cpu():
    """(busy_ticks, total_ticks) over all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return total - idle, total, fields[4]


def diskstats(dev):
    if not dev:
        return None
    with open("/proc/diskstats") as f:
        for line in f:
            p = line.split()
            if p[2] == dev:
                v = [int(x) for x in p[3:]]
                return {
                    "writes": v[4],
                    "sectors_written": v[6],
                    "flushes": v[15] if len(v) > 15 else None,
                }
    return None


def stat_of(path):
    """(comm, utime+stime ticks, children ticks) of a /proc/<pid>[/task/<tid>]/stat file."""
    try:
        with open(path) as f:
            s = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    comm = s[s.index("(") + 1 : s.rindex(")")]
    rest = s[s.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state); utime = field 14, stime 15, cutime 16, cstime 17
    return comm, int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14])


def cg_pids(cg):
    if not cg:
        return []
    try:
        with open(os.path.join(cg, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def norm_comm(c):
    c = re.sub(r"[-_]?\d+$", "", c)
    return c or "?"


def ctxt_switches(path):
    """voluntary + involuntary context switches from a /proc/.../status file."""
    n = 0
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    n += int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return n


def snapshot_ctxt(cg, thread_pid):
    snap = {}
    if thread_pid:
        tdir = f"/proc/{thread_pid}/task"
        try:
            for tid in os.listdir(tdir):
                snap[int(tid)] = ctxt_switches(f"{tdir}/{tid}/status")
        except FileNotFoundError:
            pass
    else:
        for pid in cg_pids(cg):
            snap[pid] = ctxt_switches(f"/proc/{pid}/status")
    return snap


def snapshot_procs(cg, thread_pid):
    """Per-process (or per-thread) CPU ticks keyed by id, with names."""
    snap = {}
    if thread_pid:
        tdir = f"/proc/{thread_pid}/task"
        try:
            tids = os.listdir(tdir)
        except FileNotFoundError:
            tids = []
        for tid in tids:
            st = stat_of(f"{tdir}/{tid}/stat")
            if st:
                snap[("t", int(tid))] = (norm_comm(st[0]), st[1])
    else:
        for pid in cg_pids(cg):
            st = stat_of(f"/proc/{pid}/stat")
            if st:
                snap[("p", pid)] = (norm_comm(st[0]), st[1])
                # children already reaped by this process (Postfix's master reaps
                # smtpd/cleanup processes that reached max_use during the run)
                snap[("c", pid)] = ("(exited children of " + norm_comm(st[0]) + ")", st[2])
    return snap


def diff_procs(before, after):
    by_name = {}
    for key, (name, ticks) in after.items():
        prev = before.get(key, (name, 0))[1]
        d = ticks - prev
        if d:
            by_name[name] = by_name.get(name, 0) + d
    return {k: round(v * 1000 / CLK_TCK) for k, v in sorted(by_name.items(), key=lambda kv: -kv[1])}


def snapshot(args):
    cgs = {}
    for spec in args.cgroup or []:
        name, path = spec.split("=", 1)
        cgs[name] = read_cg(path)
    busy, total, iowait = proc_stat_cpu()
    return {
        "ns": time.monotonic_ns(),
        "cg": cgs,
        "busy": busy,
        "total": total,
        "iowait": iowait,
        "disk": diskstats(args.disk),
        "procs": snapshot_procs(args.mta_cgroup, args.thread_pid),
        "ctxt": snapshot_ctxt(args.mta_cgroup, args.thread_pid),
    }


# --------------------------------------------------------------------------------- SMTP probe
class Smtp:
    def __init__(self, host, port, timeout):
        self.s = socket.create_connection((host, port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def reply(self):
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.s.recv(65536)
                if not chunk:
                    raise IOError(f"connection closed; got {lines!r}")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode("latin-1"))
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), lines

    def cmd(self, text, want):
        self.s.sendall(text.encode() + b"\r\n")
        code, lines = self.reply()
        if code != want:
            raise IOError(f"{text!r}: expected {want}, got {lines!r}")
        return lines

    def close(self):
        try:
            self.s.sendall(b"QUIT\r\n")
            self.reply()
        except Exception:
            pass
        self.s.close()


def cmd_probe(args):
    """One transaction at a time until stdin closes; JSON result on stdout."""
    line = ("Y" * 78 + "\r\n").encode()
    body = line * max(1, args.size // len(line))
    results = []  # (t_dot_ns, t_250_ns, t_connect_ns)
    errors = []
    interval = 1.0 / args.rate
    seq = 0
    stop = False
    while not stop:
        seq += 1
        t_conn = time.monotonic_ns()
        try:
            c = Smtp(args.host, args.port, 60)
            code, greet = c.reply()
            if code != 220:
                raise IOError(f"greeting {greet!r}")
            c.cmd("EHLO probe.bench.invalid", 250)
            c.cmd(f"MAIL FROM:<probe@{args.sender_domain}>", 250)
            c.cmd(f"RCPT TO:<{args.rcpt}>", 250)
            c.cmd("DATA", 354)
            hdr = (
                f"From: <probe@{args.sender_domain}>\r\nTo: <{args.rcpt}>\r\n"
                f"Subject: latency probe {seq}\r\nMessage-Id: <probe.{os.getpid()}.{seq}@bench.invalid>\r\n\r\n"
            ).encode()
            c.s.sendall(hdr + body)
            t_dot = time.monotonic_ns()
            c.s.sendall(b".\r\n")
            code, lines = c.reply()
            t_ok = time.monotonic_ns()
            if code != 250:
                raise IOError(f"end of data: {lines!r}")
            results.append((t_dot, t_ok, t_conn))
            c.close()
        except Exception as e:  # reported, the run fails
            errors.append(f"probe {seq}: {e}")
            if len(errors) > 3:
                break
        # sleep until the next slot, or stop when stdin closes
        delay = max(0.0, interval - (time.monotonic_ns() - t_conn) / 1e9)
        r, _, _ = select.select([sys.stdin], [], [], delay)
        if r and not os.read(sys.stdin.fileno(), 1):
            stop = True
    json.dump({"accepted": results, "errors": errors}, sys.stdout)


# --------------------------------------------------------------------------------- run
def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    i = min(len(v) - 1, max(0, int(round(p / 100 * (len(v) - 1)))))
    return v[i]


def join_cgroup(path):
    def f():
        if path:
            with open(os.path.join(path, "cgroup.procs"), "w") as fh:
                fh.write(str(os.getpid()))
    return f


def cmd_run(args):
    tail = SinkTail(args.stamps)
    tail.poll()
    if tail.count != args.expect_base:
        die(
            f"[{args.label}] smtp-sink has {tail.count} messages before the run, expected "
            f"{args.expect_base}: an MTA delivered late or twice"
        )
    tail.tracking = True

    # Wait (bounded) for the machine to be quiet: other tenants' CPU use skews a 2-core box.
    background = None
    deadline = time.monotonic() + args.quiet_wait
    while True:
        b0, t0_, _ = proc_stat_cpu()
        time.sleep(0.5)
        b1, t1_, _ = proc_stat_cpu()
        background = (b1 - b0) / max(1, t1_ - t0_) * os.cpu_count()
        if background <= args.quiet_max or time.monotonic() >= deadline:
            break
    tail.poll()
    if tail.count != args.expect_base:
        die(f"[{args.label}] smtp-sink count changed to {tail.count} while idle (expected {args.expect_base})")

    # relay.sh sends SIGTERM when it is interrupted: take smtp-source and the probe along.
    children = []

    def on_term(*_):
        for c in children:
            c.kill()
        os._exit(143)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    before = snapshot(args)
    t0 = time.monotonic_ns()
    src_cmd = [
        args.smtp_source, "-c", "-s", str(args.sessions), "-m", str(args.count),
        "-l", str(args.size), "-M", "client.bench.invalid",
        "-f", f"bench@{args.sender_domain}", "-t", args.rcpt,
    ] + (args.source_opt or []) + [f"127.0.0.1:{args.port}"]
    src = subprocess.Popen(
        src_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=join_cgroup(args.source_cgroup),
    )
    children.append(src)
    probe = None
    if args.probe_rate > 0:
        probe = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "probe", "--port", str(args.port),
             "--size", str(args.size), "--rate", str(args.probe_rate), "--rcpt", args.rcpt,
             "--sender-domain", args.sender_domain],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=join_cgroup(args.harness_cgroup),
        )
        children.append(probe)

    src_times = []  # time at which smtp-source's DATA counter reached k (k = index+1)
    src_err = b""
    buf = b""
    fd = src.stdout.fileno()
    efd = src.stderr.fileno()
    open_fds = {fd, efd}
    while open_fds:
        r, _, _ = select.select(list(open_fds), [], [], 0.01)
        now = time.monotonic_ns()
        for f in r:
            chunk = os.read(f, 65536)
            if not chunk:
                open_fds.discard(f)
                continue
            if f == efd:
                src_err += chunk
                continue
            buf += chunk
            parts = re.split(rb"[\r\n]", buf)
            buf = parts.pop()
            for p in parts:
                if p.strip().isdigit():
                    n = int(p)
                    while len(src_times) < n:
                        src_times.append(now)
        tail.poll()
    src_rc = src.wait()
    t_src_done = time.monotonic_ns()
    if src_rc != 0 or len(src_times) != args.count:
        if probe:
            probe.kill()
        die(
            f"[{args.label}] smtp-source exited {src_rc} after {len(src_times)}/{args.count} "
            f"messages: {src_err.decode(errors='replace').strip()}"
        )

    probe_res = {"accepted": [], "errors": []}
    if probe:
        out, err = probe.communicate(timeout=120)  # closes its stdin: the probe stops
        try:
            probe_res = json.loads(out)
        except ValueError:
            die(f"[{args.label}] latency probe failed: {err.decode(errors='replace')}")
        if probe_res["errors"]:
            die(f"[{args.label}] latency probe errors: {probe_res['errors']}")
    n_probe = len(probe_res["accepted"])
    total = args.count + n_probe
    target = args.expect_base + total

    # Wait for the sink to have every message: poll the stamp file, fail on a stall.
    while tail.count < target:
        if not tail.poll():
            if time.monotonic_ns() - tail.last_change_ns > args.stall * 1e9:
                die(
                    f"[{args.label}] stalled: smtp-sink has {tail.count - args.expect_base} of "
                    f"{total} messages and nothing arrived for {args.stall}s"
                )
            time.sleep(0.005)
    after = snapshot(args)
    t_done = tail.reached[target]

    # Results ------------------------------------------------------------------------------
    elapsed = (t_done - t0) / 1e9
    accept_times = sorted(src_times + [a[1] for a in probe_res["accepted"]])
    sink_times = [tail.reached[k] for k in range(args.expect_base + 1, target + 1)]
    relay_lat = [(s - a) / 1e6 for s, a in zip(sink_times, accept_times)]
    probe_lat = [(a[1] - a[0]) / 1e6 for a in probe_res["accepted"]]
    probe_txn = [(a[1] - a[2]) / 1e6 for a in probe_res["accepted"]]

    cpu = {}
    for name in after["cg"]:
        b, a = before["cg"].get(name), after["cg"].get(name)
        if a is not None and b is not None:
            cpu[name] = (a - b) / 1e6  # ms
    wall_ms = (after["ns"] - before["ns"]) / 1e6
    busy_ms = (after["busy"] - before["busy"]) * 1000 / CLK_TCK
    ours = sum(cpu.values())
    disk = None
    if before["disk"] and after["disk"]:
        disk = {k: (after["disk"][k] - before["disk"][k]) if after["disk"][k] is not None else None
                for k in after["disk"]}

    rec = {
        "label": args.label,
        "mta": args.mta,
        "size": args.size,
        "count": args.count,
        "probe_messages": n_probe,
        "sessions": args.sessions,
        "elapsed_s": elapsed,
        "delivered_per_s": total / elapsed,
        "ingest_s": (src_times[-1] - t0) / 1e9,
        "ingest_per_s": args.count / ((src_times[-1] - t0) / 1e9),
        "relay_latency_ms": {
            "mean": statistics.fmean(relay_lat),
            "p50": pct(relay_lat, 50), "p90": pct(relay_lat, 90),
            "p99": pct(relay_lat, 99), "max": max(relay_lat),
        },
        "probe_accept_ms": {
            "n": len(probe_lat),
            "p50": pct(probe_lat, 50), "p90": pct(probe_lat, 90),
            "p99": pct(probe_lat, 99), "max": max(probe_lat) if probe_lat else None,
        },
        "probe_transaction_ms": {"p50": pct(probe_txn, 50), "p99": pct(probe_txn, 99)},
        "cpu_ms": cpu,
        "cpu_ms_per_msg": {k: v / total for k, v in cpu.items()},
        "system": {
            "wall_ms": wall_ms,
            "busy_cpu_ms": busy_ms,
            "busy_cores": busy_ms / wall_ms,
            "iowait_ms": (after["iowait"] - before["iowait"]) * 1000 / CLK_TCK,
            # /proc/stat and cpuacct tick at different granularities: clamp the noise at 0
            "other_cpu_ms": max(0.0, busy_ms - ours) if cpu else None,
        },
        "disk": disk,
        "disk_per_msg": {k: (v / total if v is not None else None) for k, v in (disk or {}).items()},
        "mta_breakdown_cpu_ms": diff_procs(before["procs"], after["procs"]),
        # context switches of the MTA's live processes/threads (Postfix: processes that
        # exited during the run are missing, so this undercounts it)
        "mta_ctxt_switches_per_msg": sum(
            v - before["ctxt"].get(k, 0) for k, v in after["ctxt"].items()) / total,
        "src_t_done_s": (t_src_done - t0) / 1e9,
        "background_before_cores": background,
    }
    with open(args.json, "w") as f:
        json.dump(rec, f, indent=1)
    lat = rec["relay_latency_ms"]
    pa = rec["probe_accept_ms"]
    mta_cpu = rec["cpu_ms_per_msg"].get("mta")
    print(
        f"  {args.label:<28} {rec['delivered_per_s']:8.0f} msg/s delivered "
        f"({total} in {elapsed:.2f}s; ingest {rec['ingest_per_s']:.0f}/s)  "
        f"relay lat mean {lat['mean']:.0f} ms p99 {lat['p99']:.0f} ms  "
        f"accept p50 {fmt(pa['p50'])} ms  "
        f"MTA CPU {fmt(mta_cpu, 2)} ms/msg  busy {rec['system']['busy_cores']:.2f} cores  "
        f"other {fmt(rec['system']['other_cpu_ms'] and rec['system']['other_cpu_ms'] / wall_ms, 2)} cores",
        flush=True,
    )


def fmt(v, nd=1):
    if v is None:
        return "n/a"
    return f"{v:.{nd}f}"


# --------------------------------------------------------------------------------- report
def cmd_report(args):
    recs = []
    for name in sorted(os.listdir(args.dir)):
        if name.endswith(".json") and name.startswith("run-"):
            with open(os.path.join(args.dir, name)) as f:
                recs.append(json.load(f))
    if not recs:
        die("no run records")
    sizes = sorted({r["size"] for r in recs})
    order = ["postfix", "sipmta", "sipmta-fsync"]
    mtas = [m for m in order if any(r["mta"] == m for r in recs)]
    mtas += sorted({r["mta"] for r in recs} - set(mtas))

    def med(rs, fn):
        vals = [fn(r) for r in rs]
        vals = [v for v in vals if v is not None]
        return statistics.median(vals) if vals else None

    def size_name(s):
        return f"{s // 1024} KiB" if s % 1024 == 0 else f"{s} B"

    out = []
    out.append(
        "| size | MTA | runs | delivered msg/s, median (each run) | ingest msg/s | "
        "relay latency mean / p99 ms | accept latency p50 / p99 ms | MTA CPU ms/msg | "
        "disk writes / flushes per msg | other load (cores) |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    ratios = []
    for s in sizes:
        meds = {}
        for m in mtas:
            rs = [r for r in recs if r["size"] == s and r["mta"] == m]
            if not rs:
                continue
            rate = med(rs, lambda r: r["delivered_per_s"])
            meds[m] = rate
            each = ", ".join(f"{r['delivered_per_s']:.0f}" for r in rs)
            dw = med(rs, lambda r: (r.get("disk_per_msg") or {}).get("writes"))
            df = med(rs, lambda r: (r.get("disk_per_msg") or {}).get("flushes"))
            other = med(rs, lambda r: r["system"]["other_cpu_ms"] / r["system"]["wall_ms"]
                        if r["system"]["other_cpu_ms"] is not None else None)
            out.append(
                f"| {size_name(s)} | {m} | {len(rs)} | **{rate:.0f}** ({each}) | "
                f"{med(rs, lambda r: r['ingest_per_s']):.0f} | "
                f"{fmt(med(rs, lambda r: r['relay_latency_ms']['mean']), 0)} / "
                f"{fmt(med(rs, lambda r: r['relay_latency_ms']['p99']), 0)} | "
                f"{fmt(med(rs, lambda r: r['probe_accept_ms']['p50']))} / "
                f"{fmt(med(rs, lambda r: r['probe_accept_ms']['p99']))} | "
                f"{fmt(med(rs, lambda r: r['cpu_ms_per_msg'].get('mta')), 2)} | "
                f"{fmt(dw, 2)} / {fmt(df, 2)} | {fmt(other, 2)} |"
            )
        for m in mtas:
            if m != "postfix" and "postfix" in meds and m in meds:
                ratios.append((size_name(s), m, meds[m] / meds["postfix"]))
    out.append("")
    out.append("| size | MTA | delivered msg/s vs Postfix (medians) | target | verdict |")
    out.append("|---|---|---|---|---|")
    for name, m, ratio in ratios:
        verdict = "met" if ratio >= 2.0 else "**not met**"
        out.append(f"| {name} | {m} | {ratio:.2f}x | >= 2x | {verdict} |")

    # CPU breakdown (median over runs per process/thread name), for the engineers.
    out.append("")
    out.append("CPU per message by process (Postfix) / thread (sipmta), ms, median over runs; context")
    out.append("switches of the MTA's live processes/threads per message:")
    out.append("")
    for s in sizes:
        for m in mtas:
            rs = [r for r in recs if r["size"] == s and r["mta"] == m]
            if not rs:
                continue
            names = {}
            for r in rs:
                total = r["count"] + r["probe_messages"]
                for k, v in r["mta_breakdown_cpu_ms"].items():
                    names.setdefault(k, []).append(v / total)
            parts = sorted(((statistics.median(v), k) for k, v in names.items()), reverse=True)
            text = ", ".join(f"{k} {v:.2f}" for v, k in parts if v >= 0.005)
            cs = med(rs, lambda r: r.get("mta_ctxt_switches_per_msg"))
            out.append(f"- {size_name(s)} {m} ({fmt(cs, 1)} context switches/msg): {text or 'n/a'}")
    md = "\n".join(out) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(md)
    sys.stdout.write(md)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("stamp")
    p.add_argument("out")
    p = sub.add_parser("probe")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--rcpt", required=True)
    p.add_argument("--sender-domain", required=True)
    p = sub.add_parser("run")
    p.add_argument("--label", required=True)
    p.add_argument("--mta", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--rcpt", default="rcpt@example.com")
    p.add_argument("--sender-domain", default="sender.bench.invalid")
    p.add_argument("--stamps", required=True)
    p.add_argument("--expect-base", type=int, required=True)
    p.add_argument("--json", required=True)
    p.add_argument("--probe-rate", type=float, default=10)
    p.add_argument("--stall", type=float, default=30)
    p.add_argument("--smtp-source", default="smtp-source")
    p.add_argument("--source-opt", action="append")
    p.add_argument("--cgroup", action="append", help="NAME=PATH; NAME 'mta' is the MTA under test")
    p.add_argument("--mta-cgroup", help="per-process CPU breakdown from this cgroup's processes")
    p.add_argument("--thread-pid", type=int, help="per-thread CPU breakdown of this process")
    p.add_argument("--source-cgroup")
    p.add_argument("--harness-cgroup")
    p.add_argument("--disk")
    p.add_argument("--quiet-max", type=float, default=0.25)
    p.add_argument("--quiet-wait", type=float, default=0)
    p = sub.add_parser("report")
    p.add_argument("--dir", required=True)
    p.add_argument("--out")
    args = ap.parse_args()
    {"stamp": cmd_stamp, "probe": cmd_probe, "run": cmd_run, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    main()
