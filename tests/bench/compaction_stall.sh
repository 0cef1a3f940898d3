#!/usr/bin/env bash
# Compaction stall: KEYS keys of 1 KiB written twice, then a physical compaction at the last
# revision (the first fill's KEYS rows are the history deleted) while two clients put and two
# clients read (serializable), each request timed (tests/src/bin/cairn-stall.rs). Prints, for
# real etcd and cairn side by side on the same machine, the compaction's duration and the p99
# and worst put and read latency while it ran (and the p99 before it). Not a test. Usage:
#   KEYS=200000 tests/bench/compaction_stall.sh
# ROUNDS=n (default 3) repeats the whole measurement n times, etcd and cairn in alternation,
# each round on freshly started servers with fresh data dirs. KINDS="cairn" (default "etcd cairn")
# measures only those, for experiments; KEEP=1 keeps the servers' logs in the work directory.
# Needs Debian's etcd-server and etcd-client (etcd 3.4) and python3.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
KEYS=${KEYS:-200000}
ROUNDS=${ROUNDS:-3}
BENCH_START=none
. "$HERE/common.sh"
cargo build -q --release -p cairn-tests --bin cairn-stall

measure() { # measure etcd|cairn ROUND: prints one JSON line
  local who=$1 round=$2 port peer ep
  port=$(free_port); peer=$(free_port); ep=127.0.0.1:$port
  local dir="$W/$who-$round"
  if [ "$who" = etcd ]; then start_etcd e1 "$dir" "$port" "$peer"; else start_cairn c1 "$dir" "$port" "$peer"; fi
  local pid=$LAST_PID
  wait_ready "$ep"
  $BIN/cairn-fill --endpoints "$ep" --keys "$KEYS" --value-size 1024 >/dev/null
  $BIN/cairn-fill --endpoints "$ep" --keys "$KEYS" --value-size 1024 >/dev/null   # overwrite: history
  # compacted at the last revision: the first fill's KEYS rows are history to delete
  local rev; rev=$(etcdctl --endpoints "$ep" get stall -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])')
  sync
  echo "{\"who\":\"$who\",\"round\":$round,\"keys\":$KEYS,\"result\":$($BIN/cairn-stall --endpoints "$ep" --revision "$rev" --keys "$KEYS")}"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}

for round in $(seq 1 "$ROUNDS"); do
  for who in ${KINDS:-etcd cairn}; do measure "$who" "$round"; done
done | tee "$W/results.jsonl"

python3 - "$W/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"\n{rows[0]['keys']} keys x 1 KiB written twice; physical compaction of the first fill's rows under 2 putters + 2 readers")
print(f"{'':8} {'compaction':>11} {'put p99':>9} {'put worst':>10} {'read p99':>9} {'read worst':>11} {'put p99/worst before':>21} {'read p99/worst before':>22}")
med = {}
for who in sorted({r["who"] for r in rows}, reverse=True):
    mine = [r["result"] for r in rows if r["who"] == who]
    for r in mine:
        print(f"{who:8} {r['compaction_s']:10.2f}s {r['put']['p99_ms']:7.1f}ms {r['put']['worst_ms']:8.1f}ms "
              f"{r['read']['p99_ms']:7.1f}ms {r['read']['worst_ms']:9.1f}ms {r['put']['p99_before_ms']:9.1f}/{r['put']['worst_before_ms']:.1f}ms {r['read']['p99_before_ms']:10.1f}/{r['read']['worst_before_ms']:.1f}ms")
    med[who] = {k: statistics.median(v) for k, v in {
        "compaction_s": [r["compaction_s"] for r in mine],
        "put_worst": [r["put"]["worst_ms"] for r in mine],
        "read_worst": [r["read"]["worst_ms"] for r in mine],
        "put_p99": [r["put"]["p99_ms"] for r in mine],
        "read_p99": [r["read"]["p99_ms"] for r in mine],
    }.items()}
if len(med) < 2:
    sys.exit(0)
print("\nmedians, etcd / cairn (above 1: cairn better)")
for k in ("compaction_s", "put_worst", "put_p99", "read_worst", "read_p99"):
    e, c = med["etcd"][k], med["cairn"][k]
    print(f"  {k:13} etcd {e:8.2f}  cairn {c:8.2f}  ratio {e / c if c else float('inf'):.2f}")
PY
