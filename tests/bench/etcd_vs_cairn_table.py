"""Prints the tables of tests/bench/etcd_vs_cairn.sh from its results directory.

Usage: etcd_vs_cairn_table.py RESULTS_DIR KEYS
"""
import json
import os
import sys

R, KEYS = sys.argv[1], int(sys.argv[2])
NAMES = ["fill", "put-1", "put-100", "put-500", "txn-put-100", "range-s-1", "range-s-100",
         "range-l-100", "mixed-100", "lease-100", "watch", "watch-busy",
         "tls-fill", "tls-put-100", "tls-range-s-100",
         "auth-fill", "auth-put-100", "auth-range-s-100"]


def rounds(kind, name):
    """The JSON of every round of one workload on one server, in round order."""
    out, r = [], 1
    while True:
        try:
            with open(os.path.join(R, f"{kind}-{name}.{r}.json")) as f:
                out.append(json.load(f))
        except OSError:
            return out
        except ValueError:
            out.append({})
        r += 1


def median(values):
    v = sorted(values)
    if not v:
        return 0
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def ratio(c, e):
    return f"{c / e:.2f}x" if e else "-"


def pair_ratios(es, cs, get):
    """Cairn / etcd of each round (the two runs of a round are seconds apart)."""
    return [get(c) / get(e) for e, c in zip(es, cs) if get(e) and get(c)]


def show_ratios(rs):
    if not rs:
        return "-"
    m = f"{median(rs):.2f}x"
    return m if len(rs) == 1 else f"{m} ({min(rs):.2f}-{max(rs):.2f})"


rate = lambda d: d.get("requests_per_second", 0)
p50 = lambda d: d.get("latency_ms", {}).get("p50", 0)
p99 = lambda d: d.get("latency_ms", {}).get("p99", 0)

print()
print(f"{'workload':<15} {'etcd /s':>9} {'cairn /s':>9} {'c/e':>18}   "
      f"{'etcd p50':>8} {'p99 ms':>7} {'cairn p50':>9} {'p99 ms':>7} {'p99 c/e':>18}  errors e/c")
for name in NAMES:
    es, cs = rounds("etcd", name), rounds("cairn", name)
    if not es and not cs:
        continue
    med = lambda ds, get: median([get(d) for d in ds])
    errors = lambda ds: sum(d.get("errors", 0) for d in ds) if ds else "?"
    print(f"{name:<15} {med(es, rate):>9.0f} {med(cs, rate):>9.0f} "
          f"{show_ratios(pair_ratios(es, cs, rate)):>18}   "
          f"{med(es, p50):>8.2f} {med(es, p99):>7.2f} {med(cs, p50):>9.2f} {med(cs, p99):>7.2f} "
          f"{show_ratios(pair_ratios(es, cs, p99)):>18}  {errors(es)}/{errors(cs)}")
print("(watch rows: /s is events per second; latency is put sent -> event received)")
print("(tls-* rows: https with client certificates, both servers with the same certificates)")
print("(auth-* rows: auth on, a non-root user whose role grants readwrite on the keys' prefix)")
if max((len(rounds("cairn", n)) for n in NAMES), default=0) > 1:
    print("(medians of the rounds; c/e is the median of each round's ratio, its range in brackets)")


def authenticate_line():
    """Seconds per etcdctl command that authenticates (bcrypt), measured by the script."""
    vals = {}
    for kind in ("etcd", "cairn"):
        try:
            with open(os.path.join(R, f"{kind}-authenticate")) as f:
                vals[kind] = [float(v) for v in f.read().split()[:2]]
        except (OSError, ValueError):
            return
    (ea, ep), (ca, cp) = vals["etcd"], vals["cairn"]
    print(f"etcdctl get with --user (one Authenticate, bcrypt cost 10) / without: "
          f"etcd {ea * 1000:.0f} / {ep * 1000:.0f} ms, cairn {ca * 1000:.0f} / {cp * 1000:.0f} ms; "
          f"Authenticate's share: etcd {(ea - ep) * 1000:.0f} ms, cairn {(ca - cp) * 1000:.0f} ms")


authenticate_line()


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
