#!/usr/bin/env bash
# Robustness soak (issue 20): random seeds, one- and three-member Cairn clusters under
# faults (SIGKILL/SIGSTOP, and partitions when root) and concurrent clients, each run checked (linearizability with
# porcupine-rs, watch streams, HashKV), until SECONDS (default: an hour) have passed. Ends with
# one line: `soak: N runs, M operations, V violations`; exit 0 only when V is 0. Each failing
# run's seed, fault schedule and violations are printed (replay: cairn-robustness --seed S),
# with where its members' logs were kept (SOAK_LOGS, default /tmp/cairn-soak-logs/SEED).
#
# Usage: tests/robustness/soak.sh [SECONDS]   (RUN_SECONDS=20 per run)
set -uo pipefail
cd "$(dirname "$0")/../.."
TOTAL=${1:-3600}
RUN_SECONDS=${RUN_SECONDS:-20}
# two builds: a `--bin` filter would apply to every -p and leave cairn and cairnutl unbuilt
cargo build -q -p cairn-tests --bin cairn-robustness
cargo build -q -p cairn-server -p cairn-util
BIN=target/debug/cairn-robustness
# the servers the harness starts (a test executable finds them itself; this binary is told)
export CAIRN_BIN=$PWD/target/debug/cairn CAIRNUTL_BIN=$PWD/target/debug/cairnutl
end=$(( $(date +%s) + TOTAL ))
runs=0; ops=0; violations=0
while [ "$(date +%s)" -lt "$end" ]; do
  seed=$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')
  members=$(( runs % 3 == 0 ? 1 : 3 ))
  # every member's log, kept only for a run that failed (SOAK_LOGS, default under /tmp)
  logs="${SOAK_LOGS:-/tmp/cairn-soak-logs}/$seed"
  out=$(CAIRN_KEEP_LOGS="$logs" "$BIN" --seed "$seed" --members "$members" --seconds "$RUN_SECONDS" 2>&1)
  line=$(printf '%s\n' "$out" | grep -m1 '^run seed=')
  if [ -z "$line" ]; then
    echo "run seed=$seed members=$members: the harness failed"; printf '%s\n' "$out" | grep -m1 -A2 panicked
    violations=$((violations + 1))
    # a harness that cannot run at all would fail every seed: stop at once
    [ "$runs" -eq 0 ] && break
  else
    echo "$line"
    n=$(printf '%s\n' "$line" | sed -E 's/.*: ([0-9]+) operations, ([0-9]+) violations.*/\1/')
    v=$(printf '%s\n' "$line" | sed -E 's/.*: ([0-9]+) operations, ([0-9]+) violations.*/\2/')
    ops=$((ops + n)); violations=$((violations + v))
    if [ "$v" -gt 0 ]; then
      printf '%s\n' "$out" | tail -n +2
      echo "member logs: $logs"
    else
      rm -rf "$logs"
    fi
  fi
  runs=$((runs + 1))
done
echo "soak: $runs runs, $ops operations, $violations violations"
[ "$violations" -eq 0 ]
