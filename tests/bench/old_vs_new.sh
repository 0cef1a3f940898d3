#!/usr/bin/env bash
# Two cairn binaries side by side on http:// (an older build and this one): put and
# serializable range, 100 clients, alternated rounds, the same cairnutl bench against each.
# Not a test. Usage (from the repo root), e.g. against the commit before a change:
#   git worktree add /tmp/old REV && (cd /tmp/old && CARGO_TARGET_DIR=/tmp/old-target \
#     cargo build --release -p cairn-server --bin cairn)
#   OLD=/tmp/old-target/release/cairn ROUNDS=3 tests/bench/old_vs_new.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROUNDS=${ROUNDS:-3}; SECS=${BENCH_SECONDS:-8}
OLD=${OLD:?set OLD to the older cairn binary}
BENCH_START=none . "$HERE/common.sh"
U=$BIN/cairnutl
start_bin() { # BIN NAME CPORT PPORT
  "$1" --name "$2" --data-dir "$W/$2" --listen-client-urls "http://127.0.0.1:$3" --advertise-client-urls "http://127.0.0.1:$3" \
    --listen-peer-urls "http://127.0.0.1:$4" --initial-advertise-peer-urls "http://127.0.0.1:$4" \
    --initial-cluster "$2=http://127.0.0.1:$4" >"$W/$2.log" 2>&1 &
  pids+=($!)
}
OP=$(free_port); NP=$(free_port)
start_bin "$OLD" old "$OP" "$(free_port)"; start_bin "$BIN/cairn" new "$NP" "$(free_port)"
wait_ready "127.0.0.1:$OP"; wait_ready "127.0.0.1:$NP"
K="--key-size 8 --key-space-size 100000"
for p in $OP $NP; do
  # shellcheck disable=SC2086
  $U --endpoints "127.0.0.1:$p" bench txn-put $K --val-size 256 --sequential-keys --txn-ops 100 --total 1000 --clients 16 --conns 4 >/dev/null
done
for r in $(seq 1 "$ROUNDS"); do
  for w in "put $K --val-size 256" "range $K --consistency s"; do
    order="$OP $NP"; [ $((r % 2)) = 0 ] && order="$NP $OP"
    for p in $order; do
      n=old; [ "$p" = "$NP" ] && n=new
      # shellcheck disable=SC2086
      $U --endpoints "127.0.0.1:$p" -w json bench $w --clients 100 --conns 10 --duration "${SECS}s" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(sys.argv[1], round(d["requests_per_second"]), "/s p99", d["latency_ms"]["p99"], "ms")' "round $r ${w%% *} $n"
    done
  done
done
