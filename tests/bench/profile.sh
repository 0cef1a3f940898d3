#!/usr/bin/env bash
# Where a cairn server's CPU goes under one `cairnutl bench` workload: starts a fresh cairn,
# runs the workload, records `perf record --call-graph dwarf` of the server for a few seconds
# in the middle, and prints the share of samples by the task they ran in (HTTP/2 connection,
# request handler, raft core, WAL append, state-machine apply, ...), user and kernel apart.
# Not a test. Usage (from the repo root; needs perf, python3):
#   tests/bench/profile.sh                                    # put-100 of etcd_vs_cairn.sh
#   tests/bench/profile.sh put --clients 1 --conns 1          # any `cairnutl bench` arguments
# PROFILE_SECONDS: recording length (default 4); KEEP=1 keeps perf.data and the script output.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
BENCH_START=none . "$HERE/common.sh"
SECS=${PROFILE_SECONDS:-4}
ARGS=("$@")
[ ${#ARGS[@]} -gt 0 ] || ARGS=(put --key-size 8 --val-size 256 --key-space-size 100000 --clients 100 --conns 10)
command -v perf >/dev/null || { echo "perf is not installed (apt-get install linux-perf)" >&2; exit 1; }

CP=127.0.0.1:$(free_port)
start_cairn c1 "$W/cairn" "${CP#*:}" "$(free_port)"
pid=$LAST_PID
wait_ready "$CP"
$BIN/cairnutl --endpoints "$CP" bench put --key-size 8 --val-size 256 --key-space-size 100000 \
  --clients 16 --conns 4 --total 20000 >/dev/null
$BIN/cairnutl --endpoints "$CP" bench "${ARGS[@]}" --duration "$((SECS + 4))s" >"$W/bench.txt" &
bench=$!
sleep 2
perf record -q -F 499 --call-graph dwarf,32768 -p "$pid" -o "$W/perf.data" -- sleep "$SECS" 2>/dev/null
wait "$bench"
cat "$W/bench.txt"
perf script -i "$W/perf.data" 2>/dev/null >"$W/perf.txt"
python3 "$HERE/profile_breakdown.py" "$W/perf.txt"
[ -z "${KEEP:-}" ] || echo "perf data and script output kept in $W"
