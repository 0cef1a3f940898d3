"""Prints the tables of tests/bench/etcd_vs_cairn.sh from its results directory.

Usage: etcd_vs_cairn_table.py RESULTS_DIR KEYS
"""
import json
import os
import sys

R, KEYS = sys.argv[1], int(sys.argv[2])
NAMES = ["fill", "put-1", "put-100", "put-500", "txn-put-100", "range-s-1", "range-s-100",
         "range-l-100", "mixed-100", "lease-100", "watch", "watch-busy"]


def load(kind, name):
    try:
        with open(os.path.join(R, f"{kind}-{name}.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def ratio(c, e):
    return f"{c / e:.2f}x" if e else "-"


print()
print(f"{'workload':<12} {'etcd /s':>9} {'cairn /s':>9} {'c/e':>7}   "
      f"{'etcd p50':>8} {'p99 ms':>7} {'cairn p50':>9} {'p99 ms':>7} {'p99 c/e':>7}  errors e/c")
for name in NAMES:
    e, c = load("etcd", name), load("cairn", name)
    if e is None and c is None:
        continue
    e, c = e or {}, c or {}
    le, lc = e.get("latency_ms", {}), c.get("latency_ms", {})
    re_, rc = e.get("requests_per_second", 0), c.get("requests_per_second", 0)
    print(f"{name:<12} {re_:>9.0f} {rc:>9.0f} {ratio(rc, re_):>7}   "
          f"{le.get('p50', 0):>8.2f} {le.get('p99', 0):>7.2f} {lc.get('p50', 0):>9.2f} "
          f"{lc.get('p99', 0):>7.2f} {ratio(lc.get('p99', 0), le.get('p99', 0)):>7}  "
          f"{e.get('errors', '?')}/{c.get('errors', '?')}")
print("(watch rows: /s is events per second; latency is put sent -> event received)")


def read(kind, what):
    try:
        with open(os.path.join(R, f"{kind}-{what}")) as f:
            return f.read().split()
    except OSError:
        return None


def secs(v):
    return None if not v or v[0] == "timeout" else float(v[0])


if read("etcd", "mem-rss1") is None:
    sys.exit(0)
print()
print(f"{'memory and restart (' + format(KEYS, ',') + ' x 1 KiB)':<44} {'etcd':>10} {'cairn':>10} {'c/e':>7}")
vals = {}
for kind in ("etcd", "cairn"):
    rss0 = int(read(kind, "mem-rss0")[0])
    rss1, anon1 = map(int, read(kind, "mem-rss1"))
    rss2, anon2 = map(lambda v: int(v or 0), ((read(kind, "mem-rss2") or []) + ["0", "0"])[:2])
    vals[kind] = [
        ("RSS fresh (MB)", rss0 / 1000),
        ("RSS after loading (MB)", rss1 / 1000),
        ("  of which anonymous (MB)", anon1 / 1000),
        ("RSS growth per million keys (MB)", (rss1 - rss0) / 1000 * 1e6 / KEYS),
        ("RSS after a clean restart (MB)", rss2 / 1000),
        ("  of which anonymous (MB)", anon2 / 1000),
        ("restart until Status answers (s)", secs(read(kind, "mem-restart"))),
        ("restart after kill -9 (s)", secs(read(kind, "mem-crash-restart"))),
        ("data dir (MB)", int(read(kind, "mem-disk")[0]) / 1e6),
    ]
for (label, ev), (_, cv) in zip(vals["etcd"], vals["cairn"]):
    if ev is None or cv is None:  # a restart that timed out
        show = lambda v: f"{'timeout':>10}" if v is None else f"{v:>10.2f}"
        print(f"{label:<44} {show(ev)} {show(cv)} {'-':>7}")
    else:
        print(f"{label:<44} {ev:>10.2f} {cv:>10.2f} {ratio(cv, ev):>7}")
for kind in ("etcd", "cairn"):
    fill = read(kind, "mem-fill")
    if fill:
        print(f"{kind} load: {' '.join(fill)}")
