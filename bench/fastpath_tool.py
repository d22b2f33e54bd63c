#!/usr/bin/env python3
"""Measurement helper for bench/fastpath.sh (standard library only).

Subcommands:
  mailbox    the sender's mailbox: an SMTP server that accepts everything and appends one JSON
             line per message (arrival time, envelope, the DSN's Original-Envelope-Id and
             Action fields) to a file. The final server sends its success DSNs here.
  idle       one transaction at a time, each with NOTIFY=SUCCESS and its own ENVID: times the
             client's reply, the final server's 250 and the DSN's arrival, waiting until the
             message has gone all the way (and the DSN arrived) before the next one.
  load       N transactions from C parallel senders (a new connection per message), as fast as
             they go: times each from its final "." to the client's reply and to the final
             server's 250.
  rate       smtp-source -s C -m N against an MTA: messages per second until the final server
             has them all, and CPU per message of the daemons.
  compact    the run's records in one file for bench/results (fastpath_report.py)
  report     the markdown tables (medians, p90, p99, targets) from the records
             (fastpath_report.py)

Clocks: times that cross processes use CLOCK_REALTIME (time.time_ns), because the final
server's log has wall-clock timestamps (microseconds); the client's own intervals use
CLOCK_MONOTONIC. Every process runs on one machine, so one clock.

The final server is sipmta site B, run with SIPMTA_LOG=warn,sipmta::smtp=info and JSON logs: it
logs "message accepted" (with the envelope sender, which the harness makes unique per message,
and the listener: "smtp" for a connection to its SMTP port, "fastpath" for a fast-path stream)
right after the message is durable and immediately before it writes its 250.
"""

import argparse
import asyncio
import calendar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

from fastpath_report import cmd_compact, cmd_report, pct

CLK_TCK = os.sysconf("SC_CLK_TCK")
MS = 1e6  # ns per ms


def die(msg):
    print(f"fastpath_tool: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def say(msg):
    print(f"  {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ timestamps
TS = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?")


def rfc3339_ns(text):
    m = TS.match(text)
    if not m:
        raise ValueError(f"not a timestamp: {text!r}")
    y, mo, d, h, mi, s = (int(x) for x in m.groups()[:6])
    frac = (m.group(7) or "0")[:9].ljust(9, "0")
    secs = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    tz = m.group(8)
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        hh, mm = int(tz[1:3]), int(tz[-2:])
        secs -= sign * (hh * 3600 + mm * 60)
    return secs * 1_000_000_000 + int(frac)


# ------------------------------------------------------------------------------ followers
class Follower:
    """Reads the complete lines appended to a file since the last poll."""

    def __init__(self, path, from_end=True):
        self.path = path
        self.f = None
        self.partial = ""
        self.from_end = from_end

    def lines(self):
        if self.f is None:
            try:
                self.f = open(self.path, "r", errors="replace")
            except FileNotFoundError:
                return []
            if self.from_end:
                self.f.seek(0, os.SEEK_END)
        data = self.f.read()
        if not data:
            return []
        data = self.partial + data
        out = data.split("\n")
        self.partial = out.pop()
        return [x for x in out if x]


class FinalServer:
    """The final server's 'message accepted' events: envelope sender -> (realtime ns, listener)."""

    def __init__(self, log):
        self.fol = Follower(log)
        self.seen = {}
        self.count = 0
        self.by_sender_count = {}
        self.last_ns = None

    def poll(self):
        got = False
        for line in self.fol.lines():
            if '"message accepted"' not in line:
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("message") != "message accepted":
                continue
            t = rfc3339_ns(ev["timestamp"])
            sender = ev.get("from", "")
            listener = (ev.get("span") or {}).get("listener", "?")
            if sender in self.seen:
                die(f"the final server accepted a message from {sender} twice (delivered twice?)")
            self.seen[sender] = (t, listener)
            self.by_sender_count[sender] = self.by_sender_count.get(sender, 0) + 1
            self.count += 1
            self.last_ns = t
            got = True
        return got


class NewSessions:
    """New fast-path sessions the sending sipmta opened: it logs "fast-path transaction done"
    for the first message of each new session only (a reused session logs nothing at info)."""

    def __init__(self, log):
        self.fol = Follower(log) if log else None
        self.count = 0
        self.poll()  # opens the log at its end: only lines from now on count
        self.count = 0

    def poll(self):
        if self.fol:
            self.count += sum(1 for line in self.fol.lines() if '"fast-path transaction done"' in line)
        return self.count if self.fol else None


class Mailbox:
    """The sender's mailbox records (see `mailbox`): ENVID -> list of records."""

    def __init__(self, path):
        self.fol = Follower(path)
        self.by_envid = {}

    def poll(self):
        for line in self.fol.lines():
            rec = json.loads(line)
            self.by_envid.setdefault(rec.get("envid") or "", []).append(rec)


def wait_until(cond, timeout, what, poll=0.0005):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            die(f"timed out after {timeout}s waiting for {what}")
        time.sleep(poll)


# ------------------------------------------------------------------------------ machine state
def proc_stat_cpu():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return total - idle, total


class Load:
    """CPU use of the whole machine over an interval, and the part of it that was not the
    benchmark's: /proc/stat's busy time minus the CPU time of the benchmark's cgroup (every
    daemon, client and the harness run below it). On a shared 2-core machine other tenants'
    load moves every number here, so each series records it. Without a cgroup the "other"
    part is unknown (None) and the quiet wait falls back to the machine's total."""

    def __init__(self, bench_cgroup):
        self.cg = bench_cgroup
        self.start()

    def start(self):
        self.b0, self.t0 = proc_stat_cpu()
        self.c0 = cg_usage_ns(self.cg)

    def stop(self):
        b1, t1 = proc_stat_cpu()
        c1 = cg_usage_ns(self.cg)
        ncpu = os.cpu_count()
        wall_s = max(1, t1 - self.t0) / CLK_TCK / ncpu
        busy_s = (b1 - self.b0) / CLK_TCK
        other = None
        if self.c0 is not None and c1 is not None:
            # /proc/stat ticks and cpuacct nanoseconds disagree a little: clamp at 0
            other = max(0.0, busy_s - (c1 - self.c0) / 1e9) / wall_s
        return {"busy_cores": busy_s / wall_s, "other_cores": other}


def wait_quiet(quiet_max, quiet_wait, bench_cgroup):
    """Wait (bounded) until the CPU use outside the benchmark is below quiet_max cores.
    Returns (cores, waited_s)."""
    start = time.monotonic()
    while True:
        load = Load(bench_cgroup)
        time.sleep(0.5)
        r = load.stop()
        b = r["other_cores"] if r["other_cores"] is not None else r["busy_cores"]
        if b <= quiet_max or time.monotonic() - start >= quiet_wait:
            return b, time.monotonic() - start


def proc_ticks(pid):
    """utime+stime of a whole process (all threads), in ticks; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = s[s.rindex(")") + 2:].split()
    return int(rest[11]) + int(rest[12])


def children_of(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        rest = s[s.rindex(")") + 2:].split()
        if int(rest[1]) == pid:
            out.append(int(d))
    return out


def cpu_groups(specs):
    """NAME=cg:PATH (a cgroup), NAME=tree:PID (a process and its children) or NAME=PID[,PID]."""
    groups = {}
    for spec in specs or []:
        name, val = spec.split("=", 1)
        if val.startswith("cg:"):
            groups[name] = val[3:]
            continue
        pids = []
        for p in val.split(","):
            if p.startswith("tree:"):
                root = int(p[5:])
                pids += [root] + children_of(root)
            elif p:
                pids.append(int(p))
        groups[name] = pids
    return groups


def cpu_snapshot(groups):
    """CPU ns used so far by each group."""
    snap = {}
    for name, g in groups.items():
        if isinstance(g, str):
            snap[name] = cg_usage_ns(g)
        else:
            snap[name] = {p: proc_ticks(p) for p in g}
    return snap


def cpu_diff_ms(before, after):
    out = {}
    for name, a in after.items():
        b = before.get(name)
        if isinstance(a, dict):
            total = sum(t - b[p] for p, t in a.items() if t is not None and b.get(p) is not None)
            out[name] = total * 1000 / CLK_TCK
        elif a is not None and b is not None:
            out[name] = (a - b) / 1e6
    return out


def cg_usage_ns(path):
    """CPU ns of a cgroup (v1 cpuacct.usage or v2 cpu.stat), None without one."""
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
        pass
    return None


def new_sessions(rec):
    n = rec.get("new_sessions")
    return "" if n is None else f"  new SIP sessions {n}"


def other_load(rec):
    """'before / during' a series, in cores."""
    during = rec.get("other_cores")
    return f"{rec['background_cores']:.2f} before / {'n/a' if during is None else format(during, '.2f')} during (cores)"


# ------------------------------------------------------------------------------ queues
def postfix_queue_empty(dirs):
    for d in dirs:
        for sub in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _root, _dirs, files in os.walk(os.path.join(d, sub)):
                if files:
                    return False
    return True


def sipmta_queue_len(binary, config):
    out = subprocess.run([binary, "--config", config, "queue", "list"], capture_output=True, text=True)
    m = re.search(r"^-- (\d+) message", out.stdout + out.stderr, re.M)
    return int(m.group(1)) if m else None


def wait_drained(args, timeout=120):
    """Every queue empty: Postfix's queue directories and each sipmta's queue."""
    deadline = time.monotonic() + timeout
    while True:
        pf = postfix_queue_empty(args.postfix_queue or [])
        sq = [sipmta_queue_len(args.sipmta_bin, c) for c in (args.sipmta_config or [])] if pf else [None]
        if pf and all(n == 0 for n in sq):
            return
        if time.monotonic() > deadline:
            die(f"queues not drained after {timeout}s (Postfix empty: {pf}; sipmta queues: {sq})")
        time.sleep(0.02)


# ------------------------------------------------------------------------------ messages
def message_text(size, token, rcpt, sender):
    line = "Y" * 78 + "\r\n"
    body = line * max(1, size // len(line))
    hdr = (
        f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: fast path benchmark\r\n"
        f"Message-Id: <{token}@bench.invalid>\r\n\r\n"
    )
    return (hdr + body).encode()


def check_listener(args, listener, what):
    """A fast-path message must reach B over a fast-path stream, any other over SMTP: a fast
    path that fell back to relay would otherwise pass for a slow fast path."""
    want = "fastpath" if args.path.startswith("fast") else "smtp"
    if listener != want:
        die(f"[{args.label}] {what} reached the final server by {listener!r}, expected {want!r}")


def classify(reply):
    """What the client's DATA reply says: delivered inline (fast path), queued, or an error."""
    if reply.startswith("250") and "via fast path" in reply:
        return "verdict"
    if reply.startswith("250"):
        return "queued"
    return "error"


class Smtp:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=60)
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


# ------------------------------------------------------------------------------ mailbox
def cmd_mailbox(args):
    out = open(args.out, "a", buffering=1)

    async def handle(reader, writer):
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        writer.write(b"220 mailbox.bench.invalid ESMTP timing mailbox\r\n")
        sender, rcpts = None, []
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                cmd = line.decode("latin-1").rstrip("\r\n")
                verb = cmd[:4].upper()
                if verb == "EHLO":
                    writer.write(b"250-mailbox.bench.invalid\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                elif verb == "HELO":
                    writer.write(b"250 mailbox.bench.invalid\r\n")
                elif verb == "MAIL":
                    m = re.search(r"<([^>]*)>", cmd)
                    sender, rcpts = (m.group(1) if m else ""), []
                    writer.write(b"250 2.1.0 Ok\r\n")
                elif verb == "RCPT":
                    m = re.search(r"<([^>]*)>", cmd)
                    rcpts.append(m.group(1) if m else "")
                    writer.write(b"250 2.1.5 Ok\r\n")
                elif verb == "DATA":
                    writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    await writer.drain()
                    chunks = []
                    while True:
                        dl = await reader.readline()
                        if not dl:
                            return
                        if dl == b".\r\n":
                            break
                        chunks.append(dl)
                    t = time.time_ns()
                    text = b"".join(chunks).decode("latin-1")
                    envid = re.search(r"^Original-Envelope-Id:\s*(\S+)", text, re.M | re.I)
                    actions = re.findall(r"^Action:\s*(\S+)", text, re.M | re.I)
                    status = re.findall(r"^Status:\s*(\S+)", text, re.M | re.I)
                    out.write(json.dumps({
                        "t": t, "from": sender, "rcpts": rcpts, "size": len(text),
                        "envid": envid.group(1) if envid else None,
                        "actions": actions, "status": status,
                    }) + "\n")
                    writer.write(b"250 2.0.0 Ok: stored\r\n")
                elif verb in ("RSET", "NOOP"):
                    writer.write(b"250 2.0.0 Ok\r\n")
                elif verb == "QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    await writer.drain()
                    break
                else:
                    writer.write(b"502 5.5.1 Not implemented\r\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", args.port, reuse_address=True)
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
        async with server:
            await stop

    asyncio.run(main())


# ------------------------------------------------------------------------------ idle
def cmd_idle(args):
    """One transaction at a time; each waits for the final server's 250 and the DSN."""
    final = FinalServer(args.final_log)
    mbox = Mailbox(args.mailbox)
    final.poll()
    mbox.poll()
    wait_drained(args)
    background, waited = wait_quiet(args.quiet_max, args.quiet_wait, args.bench_cgroup)
    load = Load(args.bench_cgroup)
    sessions = NewSessions(args.sender_log)
    recs = []
    total = args.warmup + args.count
    for i in range(total):
        token = f"{args.label}.m{i}"
        sender = f"{token}@{args.sender_domain}"
        msg = message_text(args.size, token, args.rcpt, sender)
        c = Smtp(args.port)
        code, greet = c.reply()
        if code != 220:
            die(f"[{args.label}] greeting {greet!r}")
        c.cmd("EHLO client.bench.invalid", 250)
        c.cmd(f"MAIL FROM:<{sender}> RET=HDRS ENVID={token}", 250)
        c.cmd(f"RCPT TO:<{args.rcpt}> NOTIFY=SUCCESS ORCPT=rfc822;{args.rcpt}", 250)
        c.cmd("DATA", 354)
        c.s.sendall(msg)
        t_dot = time.time_ns()
        m_dot = time.monotonic_ns()
        c.s.sendall(b".\r\n")
        code, lines = c.reply()
        m_reply = time.monotonic_ns()
        t_reply = time.time_ns()
        c.close()
        reply = " ".join(lines)
        kind = classify(reply)
        if code != 250:
            die(f"[{args.label}] end of data: {reply}")
        # The next message only once this one has gone all the way: the final server has it
        # and its success DSN arrived in the sender's mailbox (then every queue is empty).
        wait_until(lambda: final.poll() or sender in final.seen, 30, f"the final server to accept {token}")
        wait_until(lambda: (mbox.poll(), token in mbox.by_envid)[1], 60, f"the success DSN for {token}")
        wait_drained(args)
        if i < args.warmup:
            sessions.poll()
            sessions.count = 0  # count the measured messages' new sessions only
            continue
        t_final, listener = final.seen[sender]
        check_listener(args, listener, token)
        dsns = mbox.by_envid[token]
        inline_ms = re.search(r" in (\d+) ms", reply)
        recs.append({
            "reply_ms": (m_reply - m_dot) / MS,
            "final_ms": (t_final - t_dot) / MS,
            "dsn_ms": (dsns[0]["t"] - t_dot) / MS,
            "dsns": len(dsns),
            "dsn_action": ",".join(dsns[0]["actions"]),
            "listener": listener,
            "reply_kind": kind,
            "inline_ms": int(inline_ms.group(1)) if inline_ms else None,
            "reply": reply[:200] if i == args.warmup else None,
        })
    # late duplicates of the DSN would show here
    mbox.poll()
    extra = {t: len(v) for t, v in mbox.by_envid.items() if t.startswith(args.label + ".") and len(v) > 1}
    machine = load.stop()
    rec = {
        "kind": "idle", "path": args.path, "label": args.label, "run": args.run, "size": args.size,
        "count": args.count, "warmup": args.warmup, "background_cores": background, "quiet_waited_s": waited,
        "duplicate_dsns": extra, "new_sessions": sessions.poll(), **machine, "messages": recs,
    }
    json.dump(rec, open(args.json, "w"), indent=0)
    v = [r["reply_ms"] for r in recs]
    f = [r["final_ms"] for r in recs]
    d = [r["dsn_ms"] for r in recs]
    kinds = {}
    for r in recs:
        kinds[r["reply_kind"]] = kinds.get(r["reply_kind"], 0) + 1
    say(f"{args.label:<24} reply p50 {pct(v, 50):7.2f} ms  final 250 p50 {pct(f, 50):7.2f} ms  "
        f"DSN p50 {pct(d, 50):7.2f} ms  replies {kinds}{new_sessions(rec)}  other load {other_load(rec)}")


# ------------------------------------------------------------------------------ load
def cmd_load(args):
    """`count` transactions from `conc` parallel senders, a new connection each."""
    final = FinalServer(args.final_log)
    final.poll()
    wait_drained(args)
    background, waited = wait_quiet(args.quiet_max, args.quiet_wait, args.bench_cgroup)
    groups = cpu_groups(args.cpu)
    cpu0 = cpu_snapshot(groups)
    sessions = NewSessions(args.sender_log)
    load = Load(args.bench_cgroup)
    results = {}
    errors = []
    counter = iter(range(args.count))

    async def reply(reader):
        lines = []
        while True:
            line = await reader.readline()
            if not line:
                raise IOError(f"connection closed after {lines!r}")
            lines.append(line.decode("latin-1").rstrip("\r\n"))
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), " ".join(lines)

    async def cmd(reader, writer, text, want):
        writer.write(text.encode() + b"\r\n")
        code, r = await reply(reader)
        if code != want:
            raise IOError(f"{text!r}: {r}")

    async def sender_task():
        for i in counter:
            token = f"{args.label}.m{i}"
            sender = f"{token}@{args.sender_domain}"
            msg = message_text(args.size, token, args.rcpt, sender)
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
                writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                code, r = await reply(reader)
                if code != 220:
                    raise IOError(f"greeting {r}")
                await cmd(reader, writer, "EHLO client.bench.invalid", 250)
                await cmd(reader, writer, f"MAIL FROM:<{sender}>", 250)
                await cmd(reader, writer, f"RCPT TO:<{args.rcpt}>", 250)
                await cmd(reader, writer, "DATA", 354)
                writer.write(msg)
                await writer.drain()
                t_dot = time.time_ns()
                m_dot = time.monotonic_ns()
                writer.write(b".\r\n")
                code, r = await reply(reader)
                m_reply = time.monotonic_ns()
                if code != 250:
                    raise IOError(f"end of data: {r}")
                results[sender] = (t_dot, (m_reply - m_dot) / MS, classify(r))
                writer.write(b"QUIT\r\n")
                await writer.drain()
                try:
                    await reply(reader)
                except IOError:
                    pass
                writer.close()
            except Exception as e:  # counted; the run fails below
                errors.append(f"{token}: {e}")

    async def main():
        await asyncio.gather(*(sender_task() for _ in range(args.conc)))

    t0 = time.time_ns()
    asyncio.run(main())
    t_clients = time.time_ns()
    if errors:
        die(f"[{args.label}] {len(errors)} transactions failed: {errors[:3]}")
    mine = lambda: sum(1 for s in results if s in final.seen)  # noqa: E731
    last_change = [time.monotonic()]

    def all_arrived():
        if final.poll():
            last_change[0] = time.monotonic()
        if time.monotonic() - last_change[0] > args.stall:
            die(f"[{args.label}] stalled: the final server has {mine()} of {args.count} and nothing came for {args.stall}s")
        return mine() == args.count

    wait_until(all_arrived, 3600, "every message at the final server", poll=0.002)
    cpu1 = cpu_snapshot(groups)
    machine = load.stop()
    t_last = max(final.seen[s][0] for s in results)
    msgs = []
    for s, (t_dot, reply_ms, kind) in results.items():
        t_final, listener = final.seen[s]
        check_listener(args, listener, s)
        msgs.append({"final_ms": (t_final - t_dot) / MS, "reply_ms": reply_ms, "reply_kind": kind, "listener": listener})
    cpu = cpu_diff_ms(cpu0, cpu1)
    wall = (t_last - t0) / 1e9
    rec = {
        "kind": "load", "path": args.path, "label": args.label, "run": args.run, "size": args.size,
        "count": args.count, "conc": args.conc, "background_cores": background, "quiet_waited_s": waited,
        "elapsed_s": wall, "clients_done_s": (t_clients - t0) / 1e9, "new_sessions": sessions.poll(), "delivered_per_s": args.count / wall,
        "cpu_ms_per_msg": {k: v / args.count for k, v in cpu.items()},
        **machine,
        "messages": msgs,
    }
    json.dump(rec, open(args.json, "w"), indent=0)
    wait_drained(args)
    f = [m["final_ms"] for m in msgs]
    r = [m["reply_ms"] for m in msgs]
    kinds = {}
    for m in msgs:
        kinds[m["reply_kind"]] = kinds.get(m["reply_kind"], 0) + 1
    say(f"{args.label:<24} final 250 p50 {pct(f, 50):8.1f} p99 {pct(f, 99):8.1f} ms  reply p50 {pct(r, 50):7.1f} ms  "
        f"{rec['delivered_per_s']:.0f} msg/s  replies {kinds}{new_sessions(rec)}  other load {other_load(rec)}")


# ------------------------------------------------------------------------------ rate
def cmd_rate(args):
    """smtp-source against one MTA; messages per second until the final server has them all."""
    final = FinalServer(args.final_log)
    final.poll()
    wait_drained(args)
    background, waited = wait_quiet(args.quiet_max, args.quiet_wait, args.bench_cgroup)
    sender = f"{args.label}@{args.sender_domain}"
    groups = cpu_groups(args.cpu)
    cpu0 = cpu_snapshot(groups)
    sessions = NewSessions(args.sender_log)
    load = Load(args.bench_cgroup)
    t0 = time.time_ns()
    src = subprocess.Popen(
        ["smtp-source", "-s", str(args.conc), "-m", str(args.count), "-l", str(args.size),
         "-M", "client.bench.invalid", "-f", sender, "-t", args.rcpt, f"127.0.0.1:{args.port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=(lambda: open(os.path.join(args.source_cgroup, "cgroup.procs"), "w").write(str(os.getpid())))
        if args.source_cgroup else None,
    )
    n = [0]
    last_change = [time.monotonic()]
    listeners = {}

    def arrived():
        # smtp-source's messages all have one envelope sender: count its arrivals
        new = [line for line in final.fol.lines() if '"message accepted"' in line]
        for line in new:
            ev = json.loads(line)
            if ev.get("from") == sender:
                n[0] += 1
                final.last_ns = rfc3339_ns(ev["timestamp"])
                lst = (ev.get("span") or {}).get("listener", "?")
                listeners[lst] = listeners.get(lst, 0) + 1
                last_change[0] = time.monotonic()
        if time.monotonic() - last_change[0] > args.stall:
            src.kill()
            die(f"[{args.label}] stalled: the final server has {n[0]} of {args.count} and nothing came for {args.stall}s")
        return n[0] >= args.count

    wait_until(arrived, 3600, "every message at the final server", poll=0.002)
    out, err = src.communicate()
    t_src = time.time_ns()
    if src.returncode != 0:
        die(f"[{args.label}] smtp-source exited {src.returncode}: {err.decode(errors='replace')}")
    cpu1 = cpu_snapshot(groups)
    machine = load.stop()
    for lst in listeners:
        check_listener(args, lst, f"{listeners[lst]} of smtp-source's messages")
    cpu = cpu_diff_ms(cpu0, cpu1)
    wall = (final.last_ns - t0) / 1e9
    rec = {
        "kind": "rate", "path": args.path, "label": args.label, "run": args.run, "size": args.size,
        "count": args.count, "conc": args.conc, "background_cores": background, "quiet_waited_s": waited,
        "elapsed_s": wall, "delivered_per_s": args.count / wall, "source_done_s": (t_src - t0) / 1e9,
        "listeners": listeners, "new_sessions": sessions.poll(),
        "cpu_ms_per_msg": {k: v / args.count for k, v in cpu.items()},
        **machine,
    }
    json.dump(rec, open(args.json, "w"), indent=1)
    wait_drained(args)
    say(f"{args.label:<24} {rec['delivered_per_s']:7.0f} msg/s at the final server ({args.count} in {wall:.2f}s)  "
        f"arrived by {listeners}{new_sessions(rec)}  CPU ms/msg "
        + " ".join(f"{k} {v:.2f}" for k, v in rec["cpu_ms_per_msg"].items())
        + f"  other load {other_load(rec)}")


# ------------------------------------------------------------------------------ main
def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("mailbox")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out", required=True)
    for name in ("idle", "load", "rate"):
        p = sub.add_parser(name)
        p.add_argument("--path", required=True)
        p.add_argument("--label", required=True)
        p.add_argument("--run", type=int, default=0)
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--rcpt", required=True)
        p.add_argument("--sender-domain", default="a.example")
        p.add_argument("--size", type=int, default=1024)
        p.add_argument("--count", type=int, required=True)
        p.add_argument("--final-log", required=True)
        p.add_argument("--json", required=True)
        p.add_argument("--quiet-max", type=float, default=0.25)
        p.add_argument("--quiet-wait", type=float, default=60)
        p.add_argument("--postfix-queue", action="append", help="a Postfix queue_directory that must drain")
        p.add_argument("--sipmta-config", action="append", help="a sipmta config whose queue must drain")
        p.add_argument("--sipmta-bin", default="sipmta")
        p.add_argument("--cpu", action="append", help="NAME=PID[,PID] or NAME=tree:PID")
        p.add_argument("--stall", type=float, default=30)
        p.add_argument("--bench-cgroup", help="the cgroup every process of the benchmark runs below")
        p.add_argument("--sender-log", help="the sending sipmta's log, to count new fast-path sessions")
        if name == "idle":
            p.add_argument("--warmup", type=int, default=3)
            p.add_argument("--mailbox", required=True)
        else:
            p.add_argument("--conc", type=int, default=20)
        if name == "rate":
            p.add_argument("--source-cgroup")
    p = sub.add_parser("compact")
    p.add_argument("--dir", required=True, help="the per-series records")
    p.add_argument("--out", required=True)
    p = sub.add_parser("report")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dir", help="the per-series records of a run")
    src.add_argument("--json", help="a committed results file (bench/results/fastpath-*.json)")
    args = ap.parse_args()
    {"mailbox": cmd_mailbox, "idle": cmd_idle, "load": cmd_load, "rate": cmd_rate, "compact": cmd_compact,
     "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    main()
