"""Shares of `perf script` samples of a cairn server by the task they ran in.

Each sample's call chain is matched against the rules below, first match wins (a WAL append
runs inside the raft core, so the WAL rule comes first). Usage: profile_breakdown.py PERF_TXT
"""
import collections
import re
import sys

RULES = [
    ("WAL append + fsync", r"wal::Wal::append|log_store::wal"),
    ("state-machine apply (index, overlay)", r"cairn_storage::apply|Store>::apply|try_apply"),
    ("raft core", r"openraft::core::raft_core"),
    ("raft state-machine worker", r"openraft::core::sm"),
    ("write batching (proposer)", r"cairn_consensus::proposer"),
    ("watch streams", r"grpc::watch::"),
    ("request handlers (tonic, axum, ours)", r"H2Stream"),
    ("HTTP/2 connections (h2, socket I/O)", r"handle_connection|h2::proto::connection"),
    ("store flusher", r"flusher|Store>::flush"),
    ("store committer (overlay to redb)", r"commit_loop|commit_overlay"),
    ("tokio scheduler", r"tokio::runtime::scheduler"),
]


def main(path):
    counts = collections.Counter()
    total = 0
    for block in open(path).read().split("\n\n"):
        lines = block.strip().split("\n")
        if len(lines) < 2:
            continue
        total += 1
        stack = "\n".join(lines[1:])
        kernel = "kallsyms" in lines[1]
        name = next((n for n, rx in RULES if re.search(rx, stack)), "other")
        counts[(name, kernel)] += 1
    if not total:
        sys.exit("no samples")
    by_task = collections.Counter()
    for (name, _), n in counts.items():
        by_task[name] += n
    print(f"{total} samples; share of the server's CPU by task (user + kernel):")
    for name, n in by_task.most_common():
        print(f"  {100 * n / total:5.1f}%  {name}  "
              f"(kernel {100 * counts[(name, True)] / total:.1f}%)")


if __name__ == "__main__":
    main(sys.argv[1])
