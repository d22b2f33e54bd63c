#!/usr/bin/env python3
"""Load, sampling and verdict for bench/soak.sh (standard library only).

Subcommands:
  run      drive a steady SMTP load into sipmta site A for --duration seconds while sampling
           both daemons every --sample seconds; then wait for the queues to drain, account for
           every accepted message and write the samples (CSV) and a JSON record.
  report   the markdown results (bounds, verdict, totals, a sample every minute) from the JSON
           record; exits 1 when a bound is not met.

Reused from the other benchmarks: smtp-sink's stamped counter (`relay_tool.py stamp` writes it,
relay_tool.SinkTail reads it), the SMTP client (relay_tool.Smtp) and the queue length through
the admin API (fastpath_tool.sipmta_queue_len).

Message classes (one recipient each; --mix gives their weights):
  relay     rcpt@relay.example      A relays it to smtp-sink ([relay.transport])
  fast      bob@b.example           A's route table sends it to B's number: SIP through A's own
                                    registrar, then SMTP over the stream; B delivers to Maildir
  fallback  carol@c.example         routed to a number nobody registered: the call fails (404)
                                    and A relays it to smtp-sink
  bounce    nobody@reject.example   relayed to a second smtp-sink that answers RCPT with 5xx:
                                    A sends a failed DSN to the sender (A's own Maildir)
  defer     dave@defer.example      relayed to a closed port: retried, a delayed DSN after
                                    relay.delay_warning, a failed DSN when relay.lifetime ends
Every message is from alice@a.example, a local domain of A, so A's DSNs land in A's Maildir.
"""

import argparse
import csv
import json
import os
import random
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fastpath_tool import sipmta_queue_len  # noqa: E402
from relay_tool import SinkTail, Smtp  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
SENDER = "alice@a.example"
CLASSES = {
    "relay": "rcpt@relay.example",
    "fast": "bob@b.example",
    "fallback": "carol@c.example",
    "bounce": "nobody@reject.example",
    "defer": "dave@defer.example",
}


def die(msg):
    print(f"soak_tool: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def say(msg):
    print(f"[soak_tool] {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ load
class Load:
    """CLIENTS threads share one schedule: message i is due at t0 + i / rate. Each client keeps
    a connection for a random 1..per_conn messages, then QUITs and opens a new one."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.next_slot = 0
        self.t0 = None
        self.stop = threading.Event()
        weights = {}
        for part in args.mix.split(","):
            k, v = part.split("=")
            if k not in CLASSES:
                die(f"unknown class {k!r} in --mix (known: {', '.join(CLASSES)})")
            weights[k] = float(v)
        self.classes = [k for k in weights if weights[k] > 0]
        self.weights = [weights[k] for k in self.classes]
        self.sizes = [int(s) for s in args.sizes.split(",")]
        self.size_weights = [float(w) for w in args.size_weights.split(",")]
        self.sent = {k: 0 for k in CLASSES}
        self.accepted = {k: 0 for k in CLASSES}
        self.refused = {k: 0 for k in CLASSES}
        self.verdicts = 0  # fast-path DATA replies carrying the final server's verdict
        self.connections = 0
        self.errors = []
        self.max_lag = 0.0
        self.accept_ms = []

    def totals(self):
        with self.lock:
            return sum(self.sent.values()), sum(self.accepted.values()), sum(self.refused.values())

    def take(self):
        with self.lock:
            i = self.next_slot
            self.next_slot += 1
        return i, self.t0 + i / self.args.rate

    def message(self, i, cls, rng):
        size = rng.choices(self.sizes, self.size_weights)[0]
        line = "Y" * 78 + "\r\n"
        body = line * max(1, size // len(line))
        hdr = (
            f"From: <{SENDER}>\r\nTo: <{CLASSES[cls]}>\r\nSubject: soak {cls} {i}\r\n"
            f"Message-Id: <soak.{i}@bench.invalid>\r\n\r\n"
        )
        return (hdr + body).encode()

    def client(self, n):
        rng = random.Random(self.args.seed * 1000 + n)
        conn, left = None, 0
        while not self.stop.is_set():
            i, due = self.take()
            if due > self.end:
                break
            delay = due - time.monotonic()
            if delay > 0:
                if self.stop.wait(delay):
                    break
            else:
                self.max_lag = max(self.max_lag, -delay)
            cls = rng.choices(self.classes, self.weights)[0]
            data = self.message(i, cls, rng)
            with self.lock:
                self.sent[cls] += 1
            try:
                if conn is None:
                    conn = Smtp("127.0.0.1", self.args.port, 60)
                    code, greet = conn.reply()
                    if code != 220:
                        raise IOError(f"greeting {greet!r}")
                    conn.cmd(f"EHLO soak{n}.bench.invalid", 250)
                    left = rng.randint(1, self.args.per_conn)
                    with self.lock:
                        self.connections += 1
                conn.cmd(f"MAIL FROM:<{SENDER}>", 250)
                conn.cmd(f"RCPT TO:<{CLASSES[cls]}>", 250)
                conn.cmd("DATA", 354)
                conn.s.sendall(data)
                t = time.monotonic()
                conn.s.sendall(b".\r\n")
                code, lines = conn.reply()
                ms = (time.monotonic() - t) * 1000
                if code != 250:
                    raise IOError(f"end of data: {lines!r}")
                with self.lock:
                    self.accepted[cls] += 1
                    self.accept_ms.append(ms)
                    if cls == "fast" and "via fast path" in lines[-1]:
                        self.verdicts += 1
                left -= 1
                if left <= 0:
                    conn.close()
                    conn = None
            except Exception as e:  # counted and reported; the verdict fails on any refusal
                with self.lock:
                    self.refused[cls] += 1
                    if len(self.errors) < 20:
                        self.errors.append(f"message {i} ({cls}): {e}")
                say(f"client {n}: message {i} ({cls}) not accepted: {e}")
                if conn is not None:
                    try:
                        conn.s.close()
                    except Exception:
                        pass
                conn = None
        if conn is not None:
            conn.close()

    def start(self, duration):
        self.t0 = time.monotonic()
        self.end = self.t0 + duration
        self.threads = [threading.Thread(target=self.client, args=(n,), daemon=True) for n in range(self.args.clients)]
        for t in self.threads:
            t.start()

    def join(self):
        for t in self.threads:
            t.join()


# ------------------------------------------------------------------------------ sampling
def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                    out[k] = int(v.split()[0])
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out["cpu_s"] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    except FileNotFoundError:
        die(f"process {pid} is gone")
    return out


def du_parts(path):
    """Disk usage (allocated blocks, KiB) and file count below path, in all and for each entry
    directly below it: {"": (kib, files), "db": (kib, files), ...}."""
    acc = {"": [0, 0]}
    for root, _dirs, names in os.walk(path):
        rel = os.path.relpath(root, path)
        top = "" if rel == "." else rel.split(os.sep)[0]
        part = acc.setdefault(top, [0, 0])
        for n in names:
            try:
                st = os.lstat(os.path.join(root, n))
            except FileNotFoundError:
                continue
            for a in (acc[""], part) if top else (acc[""],):
                a[0] += st.st_blocks * 512
                a[1] += 1
    return {k: (v[0] // 1024, v[1]) for k, v in acc.items()}


def count_dir(path):
    try:
        return len(os.listdir(path))
    except FileNotFoundError:
        return 0


class LogTail:
    """Counts of a daemon's JSON log lines: deliveries by route and result, new fast-path
    sessions, DSNs queued, warnings and errors."""

    def __init__(self, path):
        self.f = open(path, "r", errors="replace")
        self.partial = ""
        self.counts = {}
        self.warnings = []

    def poll(self):
        data = self.f.read()
        if not data:
            return
        data = self.partial + data
        lines = data.split("\n")
        self.partial = lines.pop()
        for line in lines:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            msg = r.get("message", "")
            key = None
            if msg == "delivery":
                key = f"delivery.{r.get('route', '?')}.{r.get('result', '?')}"
            elif msg == "fast-path transaction done":
                key = "fast_sessions_new"
            elif msg == "fast path answered":
                key = "fast_answered"
            elif msg == "fast path failed; falling back to relay":
                key = "fast_fallback"
            elif msg.endswith(" queued") and "dsn_id" in r:
                key = f"dsn.{r.get('report', '?')}"
            if r.get("level") in ("WARN", "ERROR"):
                key2 = f"log.{r['level'].lower()}"
                self.counts[key2] = self.counts.get(key2, 0) + 1
                if len(self.warnings) < 30:
                    self.warnings.append(line[:400])
            if key:
                self.counts[key] = self.counts.get(key, 0) + 1


class Site:
    def __init__(self, name, pid, data, config, log, binary):
        self.name, self.pid, self.data, self.config, self.binary = name, pid, data, config, binary
        self.log = LogTail(log)

    def sample(self):
        s = proc_status(self.pid)
        du = du_parts(self.data)
        data_kib = du[""][0]
        db_kib, db_files = du.get("db", (0, 0))
        spool_kib, spool_files = du.get("spool", (0, 0))
        q = sipmta_queue_len(self.binary, self.config)
        self.log.poll()
        return {
            "rss_kib": s.get("VmRSS"), "hwm_kib": s.get("VmHWM"), "anon_kib": s.get("RssAnon"),
            "file_kib": s.get("RssFile"), "fds": s["fds"], "threads": s.get("Threads"), "cpu_s": s["cpu_s"],
            "data_kib": data_kib, "db_kib": db_kib, "db_files": db_files, "spool_kib": spool_kib, "spool_files": spool_files,
            "queue": -1 if q is None else q,
        }


SITE_COLS = ["rss_kib", "hwm_kib", "anon_kib", "file_kib", "fds", "threads", "cpu_s", "data_kib", "db_kib", "db_files",
             "spool_kib", "spool_files", "queue"]


def maildir_new(data, domain, user):
    return os.path.join(data, "maildir", domain, user, "new")


def dsn_kinds(path):
    """Action and recipient domain of every DSN in a Maildir: {(action, domain): count}."""
    out = {}
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return out
    for n in names:
        with open(os.path.join(path, n), "r", errors="replace") as f:
            text = f.read()
        actions = re.findall(r"^Action:\s*(\S+)", text, re.M | re.I)
        rcpts = re.findall(r"^Final-Recipient:\s*rfc822;\s*(\S+)", text, re.M | re.I)
        if not actions:
            key = ("not-a-dsn", "-")
            out[key] = out.get(key, 0) + 1
            continue
        for a, r in zip(actions, rcpts or ["?"] * len(actions)):
            key = (a.lower(), r.rsplit("@", 1)[-1].lower().rstrip(">"))
            out[key] = out.get(key, 0) + 1
    return out


# ------------------------------------------------------------------------------ run
def cmd_run(args):
    a = Site("a", args.a_pid, args.a_data, args.a_config, args.a_log, args.sipmta_bin)
    b = Site("b", args.b_pid, args.b_data, args.b_config, args.b_log, args.sipmta_bin)
    sink = SinkTail(args.stamps)
    load = Load(args)
    fields = ["t_s", "phase", "sent", "accepted", "refused", "sink", "b_maildir", "a_dsns"]
    fields += [f"{s}_{c}" for s in ("a", "b") for c in SITE_COLS]
    csvf = open(args.csv, "w", newline="")
    w = csv.DictWriter(csvf, fieldnames=fields)
    w.writeheader()
    samples = []
    t_start = time.monotonic()

    def sample(phase):
        sink.poll()
        sent, acc, ref = load.totals()
        row = {"t_s": round(time.monotonic() - t_start, 1), "phase": phase, "sent": sent, "accepted": acc,
               "refused": ref, "sink": sink.count,
               "b_maildir": count_dir(maildir_new(args.b_data, "b.example", "bob")),
               "a_dsns": count_dir(maildir_new(args.a_data, "a.example", "alice"))}
        for site in (a, b):
            for k, v in site.sample().items():
                row[f"{site.name}_{k}"] = v
        w.writerow(row)
        csvf.flush()
        samples.append(row)
        return row

    def progress(row):
        say(f"t={row['t_s']:.0f}s {row['phase']}: accepted {row['accepted']} refused {row['refused']}, "
            f"sink {row['sink']}, B {row['b_maildir']}, DSNs {row['a_dsns']}; "
            f"A rss {row['a_rss_kib'] / 1024:.1f} MiB fds {row['a_fds']} thr {row['a_threads']} q {row['a_queue']} "
            f"db {row['a_db_kib'] / 1024:.1f} MiB; B rss {row['b_rss_kib'] / 1024:.1f} MiB fds {row['b_fds']}")

    # The idle baseline before any load.
    baseline = sample("idle-before")
    progress(baseline)
    load.start(args.duration)
    t_load = time.monotonic()
    nxt = t_load + args.sample
    last_progress = 0
    while True:
        now = time.monotonic()
        alive = any(t.is_alive() for t in load.threads)
        if not alive:
            break
        if now >= nxt:
            phase = "warm-up" if now - t_load < args.warmup else "load"
            row = sample(phase)
            nxt += args.sample
            if now - last_progress >= args.progress:
                progress(row)
                last_progress = now
        time.sleep(min(0.2, max(0.0, nxt - time.monotonic())))
    load.join()
    load_s = time.monotonic() - t_load
    # The last sample under load: right at the end of it.
    progress(sample("load-end"))

    # Drain: every queue empty and every accepted message where it belongs.
    expected_sink = load.accepted["relay"] + load.accepted["fallback"]
    expected_b = load.accepted["fast"]
    expected_failed = load.accepted["bounce"] + load.accepted["defer"]
    deadline = time.monotonic() + args.drain_timeout
    drained = False
    while time.monotonic() < deadline:
        time.sleep(args.sample if args.sample < 5 else 5)
        row = sample("drain")
        dsn = dsn_kinds(maildir_new(args.a_data, "a.example", "alice"))
        failed = sum(v for (act, _d), v in dsn.items() if act == "failed")
        if (row["a_queue"] == 0 and row["b_queue"] == 0 and row["sink"] >= expected_sink
                and row["b_maildir"] >= expected_b and failed >= expected_failed):
            drained = True
            break
        if time.monotonic() - last_progress >= args.progress:
            progress(row)
            last_progress = time.monotonic()
    drain_s = time.monotonic() - t_load - load_s
    progress(row)
    say(f"drained: {drained} after {drain_s:.0f} s; idle {args.idle_after} s for idle connections and sessions to close")
    time.sleep(args.idle_after)
    final = sample("idle-after")
    progress(final)

    # The history each daemon keeps (one line per event; it outlives the spool by
    # spool.history_retention: the store's history tree, which sled holds in memory).
    history = {}
    for site in (a, b):
        out = subprocess.run([site.binary, "--config", site.config, "history"], capture_output=True, text=True)
        history[site.name] = out.stdout.count("\n") if out.returncode == 0 else None

    dsn = dsn_kinds(maildir_new(args.a_data, "a.example", "alice"))
    a.log.poll()
    b.log.poll()
    rec = {
        "duration_s": args.duration, "load_s": load_s, "drain_s": drain_s, "drained": drained,
        "rate": args.rate, "clients": args.clients, "per_conn": args.per_conn, "mix": args.mix,
        "sizes": args.sizes, "size_weights": args.size_weights, "sample_s": args.sample, "warmup_s": args.warmup,
        "idle_after_s": args.idle_after,
        "sent": load.sent, "accepted": load.accepted, "refused": load.refused, "errors": load.errors,
        "fast_verdicts": load.verdicts, "connections": load.connections, "max_lag_s": load.max_lag,
        "accept_ms": sorted(load.accept_ms)[:: max(1, len(load.accept_ms) // 2000)],
        "accept_ms_p50": pctl(load.accept_ms, 50), "accept_ms_p99": pctl(load.accept_ms, 99),
        "accept_ms_max": max(load.accept_ms) if load.accept_ms else None,
        "final": {"sink": final["sink"], "b_maildir": final["b_maildir"],
                  "dsn": {f"{k[0]}@{k[1]}": v for k, v in sorted(dsn.items())}},
        "expected": {"sink": expected_sink, "b_maildir": expected_b, "failed_dsn": expected_failed},
        "history_events": history,
        "log_a": a.log.counts, "log_b": b.log.counts, "warnings_a": a.log.warnings, "warnings_b": b.log.warnings,
        "samples": samples,
    }
    with open(args.json, "w") as f:
        json.dump(rec, f, indent=1)
    say(f"record: {args.json}, samples: {args.csv}")


def pctl(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p / 100))]


# ------------------------------------------------------------------------------ report
def mib(kib):
    return kib / 1024


def window(samples, t0, t1, key):
    return [s[key] for s in samples if t0 <= s["t_s"] < t1 and s["phase"] in ("warm-up", "load", "load-end")]


def median(values):
    v = sorted(values)
    return v[len(v) // 2] if v else None


def cmd_report(args):
    rec = json.load(open(args.json))
    S = rec["samples"]
    loadS = [s for s in S if s["phase"] in ("warm-up", "load", "load-end")]
    t_load0 = loadS[0]["t_s"] - rec["sample_s"] if loadS else 0
    t_end = loadS[-1]["t_s"] if loadS else 0
    before = next(s for s in S if s["phase"] == "idle-before")
    after = next(s for s in S if s["phase"] == "idle-after")
    wu = t_load0 + rec["warmup_s"]
    span = args.window  # seconds of samples averaged at each end
    checks = []  # (what, bound, measured, ok)

    def ref_and_end(key):
        """Median over `span` seconds after warm-up, and over the last `span` seconds of load."""
        ref = median(window(S, wu, wu + span, key))
        end = median(window(S, t_end - span + 0.01, t_end + 1, key))
        return ref, end

    for site in ("a", "b"):
        label = "A" if site == "a" else "B"
        r0, r1 = ref_and_end(f"{site}_rss_kib")
        if r0 is not None and r1 is not None:
            growth = mib(r1 - r0)
            checks.append((f"{label} RSS growth, warm-up end -> end of load (medians over {span} s)",
                           f"< {args.rss_mib} MiB", f"{mib(r0):.1f} -> {mib(r1):.1f} MiB ({growth:+.1f})",
                           growth < args.rss_mib))
        f0, f1 = ref_and_end(f"{site}_fds")
        fmax = max(window(S, wu, t_end + 1, f"{site}_fds") or [0])
        f0max = max(window(S, wu, wu + span, f"{site}_fds") or [0])
        if f0 is not None:
            checks.append((f"{label} open fds under load: end of load vs warm-up end (medians over {span} s)",
                           f"within {args.fd_load}", f"{f0} -> {f1} (max after warm-up {fmax})",
                           f1 - f0 <= args.fd_load))
        checks.append((f"{label} open fds idle: after drain + {rec['idle_after_s']} s vs before the load",
                       f"within {args.fd_idle}", f"{before[f'{site}_fds']} -> {after[f'{site}_fds']}",
                       after[f"{site}_fds"] - before[f"{site}_fds"] <= args.fd_idle))
        checks.append((f"{label} queue empty and spool files gone after the drain", "0 / 0",
                       f"{after[f'{site}_queue']} / {after[f'{site}_spool_files']}",
                       after[f"{site}_queue"] == 0 and after[f"{site}_spool_files"] == 0))

    acc, exp, fin = rec["accepted"], rec["expected"], rec["final"]
    failed_dsn = sum(v for k, v in fin["dsn"].items() if k.startswith("failed@"))
    delayed_dsn = sum(v for k, v in fin["dsn"].items() if k.startswith("delayed@"))
    got = {"sink": fin["sink"], "b_maildir": fin["b_maildir"], "failed_dsn": failed_dsn}
    lost = sum(max(0, exp[k] - got[k]) for k in exp)
    dup = sum(max(0, got[k] - exp[k]) for k in exp)
    refused = sum(rec["refused"].values())
    checks.append(("accepted messages lost (not at the sink, in B's Maildir or bounced to the sender)", "0",
                   str(lost), lost == 0))
    checks.append(("messages delivered twice", "0", str(dup), dup == 0))
    checks.append(("messages the load offered that A did not accept", "0", str(refused), refused == 0))
    checks.append(("queues drained within the drain timeout", "yes", "yes" if rec["drained"] else "no", rec["drained"]))
    ok = all(c[3] for c in checks)

    A_db0, A_db1 = before["a_db_kib"], after["a_db_kib"]
    B_db0, B_db1 = before["b_db_kib"], after["b_db_kib"]
    tot_acc = sum(acc.values())
    out = []
    out.append("| bound | limit | measured | verdict |")
    out.append("|---|---|---|---|")
    for what, bound, measured, good in checks:
        out.append(f"| {what} | {bound} | {measured} | {'PASS' if good else '**FAIL**'} |")
    out.append("")
    out.append(f"**Verdict: {'PASS' if ok else 'FAIL'}**")
    out.append("")
    out.append("| messages | relay | fast | fallback | bounce | defer | total |")
    out.append("|---|---|---|---|---|---|---|")
    for name, d in (("sent", rec["sent"]), ("accepted (250)", acc), ("refused", rec["refused"])):
        out.append(f"| {name} | " + " | ".join(str(d.get(k, 0)) for k in CLASSES) + f" | {sum(d.values())} |")
    out.append("")
    out.append(f"- at their destination: smtp-sink {fin['sink']} (expected relay + fallback = {exp['sink']}), "
               f"B's Maildir {fin['b_maildir']} (expected fast = {exp['b_maildir']}), failed DSNs in the sender's "
               f"Maildir {failed_dsn} (expected bounce + defer = {exp['failed_dsn']}), delayed DSNs {delayed_dsn}; "
               f"**lost {lost}**, duplicated {dup}")
    out.append(f"- DSNs by action@recipient domain: {', '.join(f'{k} {v}' for k, v in fin['dsn'].items()) or 'none'}")
    out.append(f"- fast-path DATA replies with the final server's verdict: {rec['fast_verdicts']} of {acc['fast']}; "
               f"A's log: {fmt_counts(rec['log_a'])}")
    out.append(f"- B's log: {fmt_counts(rec['log_b'])}")
    out.append(f"- load: {rec['load_s']:.0f} s at {rec['rate']} msg/s offered ({tot_acc / max(rec['load_s'], 1):.2f} accepted/s) "
               f"from {rec['clients']} clients, {rec['connections']} SMTP connections (1-{rec['per_conn']} messages each); "
               f"accept latency (\".\" -> reply) p50 {rec['accept_ms_p50']:.1f} ms, p99 {rec['accept_ms_p99']:.1f} ms, "
               f"max {rec['accept_ms_max']:.0f} ms; largest lag behind the schedule {rec['max_lag_s'] * 1000:.0f} ms; "
               f"drain took {rec['drain_s']:.0f} s")
    out.append(f"- data dirs (du): A db {mib(A_db0):.1f} -> {mib(A_db1):.1f} MiB "
               f"({(A_db1 - A_db0) / max(tot_acc, 1):.2f} KiB per accepted message), whole data dir "
               f"{mib(before['a_data_kib']):.1f} -> {mib(after['a_data_kib']):.1f} MiB (with the DSNs in its Maildir); "
               f"B db {mib(B_db0):.1f} -> {mib(B_db1):.1f} MiB, whole data dir {mib(before['b_data_kib']):.1f} -> "
               f"{mib(after['b_data_kib']):.1f} MiB (with {fin['b_maildir']} messages in its Maildir); "
               f"peak RSS (VmHWM) A {mib(after['a_hwm_kib']):.1f} MiB, "
               f"B {mib(after['b_hwm_kib']):.1f} MiB; CPU A {after['a_cpu_s'] - before['a_cpu_s']:.0f} s, "
               f"B {after['b_cpu_s'] - before['b_cpu_s']:.0f} s")
    wu_s = next((x for x in loadS if x["t_s"] >= wu), loadS[-1] if loadS else before)
    end_s = loadS[-1] if loadS else before
    for site, label in (("a", "A"), ("b", "B")):
        out.append(f"- {label}: RSS {mib(before[f'{site}_rss_kib']):.1f} MiB before the load, "
                   f"{mib(wu_s[f'{site}_rss_kib']):.1f} at the end of the warm-up (t={wu_s['t_s']:.0f} s), "
                   f"{mib(end_s[f'{site}_rss_kib']):.1f} at the end of the load, {mib(after[f'{site}_rss_kib']):.1f} "
                   f"after the drain, peak {mib(after[f'{site}_hwm_kib']):.1f} (anonymous part: "
                   f"{mib(before[f'{site}_anon_kib']):.1f} / {mib(wu_s[f'{site}_anon_kib']):.1f} / "
                   f"{mib(end_s[f'{site}_anon_kib']):.1f} / {mib(after[f'{site}_anon_kib']):.1f}); open fds "
                   f"{before[f'{site}_fds']} / {wu_s[f'{site}_fds']} / {end_s[f'{site}_fds']} / {after[f'{site}_fds']}, "
                   f"at most {max(x[f'{site}_fds'] for x in S)}; threads {before[f'{site}_threads']} / "
                   f"{wu_s[f'{site}_threads']} / {end_s[f'{site}_threads']} / {after[f'{site}_threads']}, "
                   f"at most {max(x[f'{site}_threads'] for x in S)}")
    hist = rec.get("history_events")
    if hist:
        out.append(f"- history events kept after the run (`sipmta history | wc -l`): A {hist.get('a')}, B {hist.get('b')} "
                   f"({(hist.get('a') or 0) / max(tot_acc, 1):.1f} per accepted message at A)")
    if rec["errors"]:
        out.append(f"- client errors (first {len(rec['errors'])}): " + "; ".join(rec["errors"][:5]))
    warn = rec["warnings_a"][:3] + rec["warnings_b"][:3]
    if warn:
        out.append("- first warnings logged: " + "; ".join(f"`{w[:200]}`" for w in warn))
    out.append("")
    out.append(f"Samples (every {args.every} s; all {len(S)} in the CSV): RSS, its anonymous part (RssAnon) and peak RSS (VmHWM) in MiB, open fds, "
               "threads, queue length, db = du of data/db in MiB, spool = body files in data/spool.")
    out.append("")
    out.append("| t s | phase | accepted | sink | B mbox | DSNs | A rss | A anon | A hwm | A fds | A thr | A queue | A db "
               "| A spool | B rss | B anon | B hwm | B fds | B thr | B db |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    last_t = -1e9
    for s in S:
        keep = s["phase"] in ("idle-before", "load-end", "idle-after") or s["t_s"] - last_t >= args.every - 0.5
        if s["phase"] == "drain" and s is not S[-2]:
            keep = False
        if not keep:
            continue
        last_t = s["t_s"]
        out.append(
            f"| {s['t_s']:.0f} | {s['phase']} | {s['accepted']} | {s['sink']} | {s['b_maildir']} | {s['a_dsns']} "
            f"| {mib(s['a_rss_kib']):.1f} | {mib(s['a_anon_kib']):.1f} | {mib(s['a_hwm_kib']):.1f} | {s['a_fds']} | {s['a_threads']} | {s['a_queue']} "
            f"| {mib(s['a_db_kib']):.1f} | {s['a_spool_files']} | {mib(s['b_rss_kib']):.1f} | {mib(s['b_anon_kib']):.1f} | {mib(s['b_hwm_kib']):.1f} "
            f"| {s['b_fds']} | {s['b_threads']} | {mib(s['b_db_kib']):.1f} |")
    print("\n".join(out))
    sys.exit(0 if ok else 1)


def fmt_counts(d):
    return ", ".join(f"{k} {v}" for k, v in sorted(d.items())) or "nothing counted"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run")
    p.add_argument("--port", type=int, required=True, help="A's SMTP port")
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--per-conn", type=int, default=10, help="messages per connection: random 1..N")
    p.add_argument("--mix", default="relay=45,fast=40,fallback=5,bounce=5,defer=5")
    p.add_argument("--sizes", default="1024,8192,65536,262144")
    p.add_argument("--size-weights", default="70,20,8,2")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sample", type=float, default=10)
    p.add_argument("--warmup", type=float, default=600)
    p.add_argument("--progress", type=float, default=60, help="seconds between progress lines")
    p.add_argument("--drain-timeout", type=float, default=300)
    p.add_argument("--idle-after", type=float, default=20)
    for s in ("a", "b"):
        p.add_argument(f"--{s}-pid", type=int, required=True)
        p.add_argument(f"--{s}-data", required=True)
        p.add_argument(f"--{s}-config", required=True)
        p.add_argument(f"--{s}-log", required=True)
    p.add_argument("--sipmta-bin", required=True)
    p.add_argument("--stamps", required=True, help="relay_tool.py stamp output of the sink")
    p.add_argument("--csv", required=True)
    p.add_argument("--json", required=True)
    p = sub.add_parser("report")
    p.add_argument("--json", required=True)
    p.add_argument("--rss-mib", type=float, default=16)
    p.add_argument("--fd-load", type=int, default=20)
    p.add_argument("--fd-idle", type=int, default=5)
    p.add_argument("--window", type=float, default=60)
    p.add_argument("--every", type=float, default=60)
    args = ap.parse_args()
    {"run": cmd_run, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    main()
