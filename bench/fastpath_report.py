"""Results of bench/fastpath.sh: the markdown report and the committed records file.

Used by fastpath_tool.py (`report`, `compact`); standard library only. The tables pool every
message of every run of a path for medians and percentiles, and list each run's median so the
spread between runs shows.
"""

import json
import os
import statistics
import sys

# Per-message fields kept in the committed file, as one column (list) each per series.
COLUMNS = ("reply_ms", "final_ms", "dsn_ms", "inline_ms", "reply_kind", "listener", "dsns", "dsn_action")


def load_dir(d):
    return [json.load(open(os.path.join(d, n))) for n in sorted(os.listdir(d)) if n.endswith(".json")]


def compact(rec):
    """A series' record with its per-message dicts turned into columns (floats to 0.1 µs), so
    that a run's 23,000 messages take a few hundred KB instead of a few MB. The first reply
    text is kept as an example."""
    rec = dict(rec)
    msgs = rec.pop("messages", None)
    if msgs is None:
        return rec
    cols = {}
    for k in COLUMNS:
        if any(k in m for m in msgs):
            cols[k] = [round(m[k], 4) if isinstance(m.get(k), float) else m.get(k) for m in msgs]
    rec["message_columns"] = cols
    rec["example_reply"] = next((m["reply"] for m in msgs if m.get("reply")), None)
    return rec


def expand(rec):
    """The inverse of `compact`, for `report --json`."""
    cols = rec.get("message_columns")
    if cols is None:
        return rec
    rec = dict(rec)
    n = max(len(v) for v in cols.values()) if cols else 0
    rec["messages"] = [{k: v[i] for k, v in cols.items()} for i in range(n)]
    return rec


def cmd_compact(args):
    recs = [compact(r) for r in load_dir(args.dir)]
    with open(args.out, "w") as f:
        # one series per line: diffable, and small enough to commit
        f.write("[\n" + ",\n".join(json.dumps(r, separators=(",", ":")) for r in recs) + "\n]\n")


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    # nearest rank
    k = max(1, -(-len(v) * p // 100))
    return v[int(k) - 1]


def fmt(v, nd=2):
    return "n/a" if v is None else f"{v:.{nd}f}"


PATH_NAMES = {
    "fast-new": "fast path, new SIP session per message",
    "fast-reuse": "fast path, reused session",
    "postfix": "Postfix, two hops",
    "fast": "fast path (reused sessions, inline)",
    "relay": "sipmta relay (A -> B by SMTP)",
}


def cmd_report(args):
    recs = load_dir(args.dir) if args.dir else [expand(r) for r in json.load(open(args.json))]
    out = []
    w = out.append

    def pooled(kind, path, key):
        vals = []
        for r in recs:
            if r["kind"] == kind and r["path"] == path:
                vals += [m[key] for m in r["messages"] if m.get(key) is not None]
        return vals

    def runs(kind, path):
        return [r for r in recs if r["kind"] == kind and r["path"] == path]

    def per_run_medians(kind, path, key):
        return ", ".join(fmt(statistics.median([m[key] for m in r["messages"]]), 2) for r in runs(kind, path))

    def kinds_of(kind, path):
        k = {}
        for r in runs(kind, path):
            for m in r["messages"]:
                k[m["reply_kind"]] = k.get(m["reply_kind"], 0) + 1
        return k

    def listeners_of(kind, path):
        k = {}
        for r in runs(kind, path):
            for m in r["messages"]:
                k[m["listener"]] = k.get(m["listener"], 0) + 1
        return k

    def counts(d):
        return ", ".join(f"{k} {v}" for k, v in sorted(d.items()))

    def arrived(kind, path, listeners):
        """How the messages reached B, and how many new SIP sessions the sender opened for them
        (a reused session opens none)."""
        new = [r.get("new_sessions") for r in runs(kind, path)]
        text = counts(listeners)
        if any(n is not None for n in new):
            text += f"; new SIP sessions: {sum(n or 0 for n in new)}"
        return text

    def bg(kind, path):
        """Other tenants' CPU use during the series (and in the quiet check before it), as the
        range over the runs."""
        def rng(v):
            return "n/a" if not v else f"{min(v):.2f}" if min(v) == max(v) else f"{min(v):.2f}-{max(v):.2f}"
        rs = runs(kind, path)
        during = [r["other_cores"] for r in rs if r.get("other_cores") is not None]
        return f"{rng(during)} ({rng([r['background_cores'] for r in rs])})"

    verdicts = []

    # (a) and (c): idle
    idle_paths = [p for p in ("fast-new", "fast-reuse", "postfix", "relay") if runs("idle", p)]
    if idle_paths:
        w("### (a) idle, one message at a time, and (c) when the sender knows")
        w("")
        w("Milliseconds from the client's final `.`; medians / p90 / p99 over all messages of all runs.")
        w("")
        w("| path | runs x messages | client's DATA reply | final server's 250 | success DSN in the sender's mailbox | sender knows the outcome | per-run medians of the reply | replies | arrived at B by | other load, cores: during (before) |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        for p in idle_paths:
            rs = runs("idle", p)
            n = sum(len(r["messages"]) for r in rs)
            rep, fin, dsn = pooled("idle", p, "reply_ms"), pooled("idle", p, "final_ms"), pooled("idle", p, "dsn_ms")
            inline = p.startswith("fast")  # only the fast path's reply carries the verdict
            knows = rep if inline else dsn
            tri = lambda v: f"{fmt(pct(v, 50))} / {fmt(pct(v, 90))} / {fmt(pct(v, 99))}"  # noqa: E731
            w(f"| {PATH_NAMES[p]} | {len(rs)} x {n // max(1, len(rs))} | {tri(rep)} | {tri(fin)} | {tri(dsn)} | "
              f"**{fmt(pct(knows, 50))}** ({'the reply' if inline else 'the DSN'}) | "
              f"{per_run_medians('idle', p, 'reply_ms')} | {counts(kinds_of('idle', p))} | {arrived('idle', p, listeners_of('idle', p))} | {bg('idle', p)} |")
        w("")
        if "relay" in idle_paths:
            w("The relay row is a reference, not a target: its DATA reply is sipmta A's own accept (spool")
            w("and fsync), the same work the fast path does before it sends the message on.")
            w("")
        for p, limit in (("fast-new", 10.0), ("fast-reuse", 2.0)):
            if runs("idle", p):
                v = pooled("idle", p, "reply_ms")
                k = kinds_of("idle", p)
                ok = pct(v, 50) < limit and set(k) == {"verdict"}
                verdicts.append((f"(a) {PATH_NAMES[p]}: median final `.` -> reply with the final verdict",
                                 f"< {limit:g} ms", f"{fmt(pct(v, 50))} ms", ok))
        if "postfix" in idle_paths:
            pf = pooled("idle", "postfix", "final_ms")
            verdicts.append(("(a) Postfix, two hops: median final `.` -> final server's 250 (reference)", "-",
                             f"{fmt(pct(pf, 50))} ms (its client hears only \"queued\", after "
                             f"{fmt(pct(pooled('idle', 'postfix', 'reply_ms'), 50))} ms)", None))
        for p in ("fast-new", "fast-reuse"):
            if runs("idle", p) and "postfix" in idle_paths:
                k = kinds_of("idle", p)
                fk = pct(pooled("idle", p, "reply_ms"), 50)
                pk = pct(pooled("idle", "postfix", "dsn_ms"), 50)
                verdicts.append((f"(c) {PATH_NAMES[p]}: sender knows the outcome at the reply",
                                 "at the reply", f"{'every' if set(k) == {'verdict'} else 'NOT every'} reply carried the "
                                 f"verdict: {fmt(fk)} ms against {fmt(pk)} ms for Postfix's DSN ({pk / fk:.1f}x)",
                                 set(k) == {"verdict"}))
        w("")

    # (b): load
    load_paths = [p for p in ("fast-reuse", "postfix") if runs("load", p)]
    if load_paths:
        rs0 = runs("load", load_paths[0])[0]
        w(f"### (b) {rs0['conc']} parallel senders, {rs0['count']} messages per run, a new connection per message")
        w("")
        w("Milliseconds from each message's final `.` to the final server's 250 (and to the client's reply);")
        w("medians / p90 / p99 over all messages of all runs.")
        w("")
        w("| path | runs | final `.` -> final server's 250 | per-run medians | final `.` -> client's reply | delivered msg/s (median) | replies | arrived at B by | other load, cores: during (before) |")
        w("|---|---|---|---|---|---|---|---|---|")
        meds = {}
        for p in load_paths:
            rs = runs("load", p)
            fin, rep = pooled("load", p, "final_ms"), pooled("load", p, "reply_ms")
            meds[p] = pct(fin, 50)
            w(f"| {PATH_NAMES[p]} | {len(rs)} | {fmt(pct(fin, 50), 1)} / {fmt(pct(fin, 90), 1)} / {fmt(pct(fin, 99), 1)} | "
              f"{per_run_medians('load', p, 'final_ms')} | {fmt(pct(rep, 50), 1)} / {fmt(pct(rep, 90), 1)} / {fmt(pct(rep, 99), 1)} | "
              f"{statistics.median(r['delivered_per_s'] for r in rs):.0f} | {counts(kinds_of('load', p))} | "
              f"{arrived('load', p, listeners_of('load', p))} | {bg('load', p)} |")
        w("")
        if len(meds) == 2:
            ratio = meds["postfix"] / meds["fast-reuse"]
            p99r = pct(pooled("load", "postfix", "final_ms"), 99) / pct(pooled("load", "fast-reuse", "final_ms"), 99)
            verdicts.append(("(b) under load: final `.` -> final server's 250, Postfix / fast path (medians)", ">= 20x",
                             f"{ratio:.1f}x ({fmt(meds['postfix'], 1)} / {fmt(meds['fast-reuse'], 1)} ms; p99 {p99r:.1f}x)",
                             ratio >= 20))

    # (d): rate
    rate_paths = [p for p in ("fast", "relay") if runs("rate", p)]
    if rate_paths:
        rs0 = runs("rate", rate_paths[0])[0]
        w("")
        w(f"### (d) messages per second through sipmta A to B: smtp-source -s {rs0['conc']} -m {rs0['count']} -l {rs0['size']}")
        w("")
        w("| path | runs | msg/s at the final server, median (each run) | arrived at B by | CPU ms/msg (medians) | busy cores | other load, cores: during (before) |")
        w("|---|---|---|---|---|---|---|")
        meds = {}
        for p in rate_paths:
            rs = runs("rate", p)
            meds[p] = statistics.median(r["delivered_per_s"] for r in rs)
            # only the components that took part (the others idle at ~0)
            names = sorted({k for r in rs for k, v in r["cpu_ms_per_msg"].items() if v >= 0.005})
            cpu = ", ".join(f"{k} {statistics.median(r['cpu_ms_per_msg'].get(k, 0) for r in rs):.2f}" for k in names)
            lst = {}
            for r in rs:
                for k, v in r["listeners"].items():
                    lst[k] = lst.get(k, 0) + v
            w(f"| {PATH_NAMES[p]} | {len(rs)} | **{meds[p]:.0f}** ({', '.join(format(r['delivered_per_s'], '.0f') for r in rs)}) | "
              f"{arrived('rate', p, lst)} | {cpu} | {statistics.median(r['busy_cores'] for r in rs):.2f} | {bg('rate', p)} |")
        if len(meds) == 2:
            verdicts.append(("(d) fast-path msg/s with session reuse / sipmta relay msg/s (medians)", ">= 1x",
                             f"{meds['fast'] / meds['relay']:.2f}x ({meds['fast']:.0f} / {meds['relay']:.0f})",
                             meds["fast"] >= meds["relay"]))
    w("")
    w("### Targets")
    w("")
    w("| measure | target | result | verdict |")
    w("|---|---|---|---|")
    for what, target, result, ok in verdicts:
        w(f"| {what} | {target} | {result} | {'-' if ok is None else ('met' if ok else '**not met**')} |")
    md = "\n".join(out) + "\n"
    sys.stdout.write(md)


