#!/usr/bin/env bash
# Where one put's time goes, stage by stage: builds cairn with the `stage-timing` feature
# (into target/stage-timing, apart from the normal build), starts it fresh, and runs put with
# one client twice: back to back, then paced at --rate (as the watch workload paces its puts).
# The server prints the mean µs per put spent since the stage before, for every 5000 puts
# (cairn_proto::stages); this script prints those lines with the load generator's summary.
# Not a test. Usage (from the repo root): tests/bench/stages.sh
# STAGE_PUTS: puts per phase, a multiple of 5000 (default 10000); STAGE_RATE: the paced
# phase's puts per second (default 100).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
BENCH_START=none . "$HERE/common.sh"
PUTS=${STAGE_PUTS:-10000}
RATE=${STAGE_RATE:-100}
CARGO_TARGET_DIR=target/stage-timing cargo build -q --release -p cairn-server --features stage-timing
U=$BIN/cairnutl
BIN=target/stage-timing/release # start_cairn runs $BIN/cairn

CP=127.0.0.1:$(free_port)
start_cairn c1 "$W/cairn" "${CP#*:}" "$(free_port)"
wait_ready "$CP"
# the first request's stages include the connection's setup: one report's worth first
put() { $U --endpoints "$CP" bench put --key-size 8 --val-size 256 --key-space-size 100000 --clients 1 "$@"; }
put --total 5000 >/dev/null
echo "== put, 1 client, back to back ($PUTS puts)"
put --total "$PUTS"
echo "== put, 1 client, $RATE/s ($PUTS puts)"
put --total "$PUTS" --rate "$RATE"
echo "== stage means per 5000 puts (the first line is the warm-up)"
grep '^stage-timing' "$W/cairn.log"
