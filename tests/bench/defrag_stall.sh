#!/usr/bin/env bash
# Defragment stall: while one client writes continuously, defragment the member and report
# how long defrag took and the longest single-put latency seen meanwhile, for real etcd and
# cairn side by side on the same data set. Not a test. Usage (from the repo root):
#   KEYS=200000 tests/bench/defrag_stall.sh
# Needs Debian's etcd-server and etcd-client (etcd 3.4) and python3.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
KEYS=${KEYS:-200000}
. "$HERE/common.sh"

# put latencies (ms) in a loop until $W/stop exists; prints the max
writer() {
  python3 - "$1" "$W/stop" <<'PY'
import os, subprocess, sys, time
ep, stop = sys.argv[1], sys.argv[2]
worst = 0.0
n = 0
while not os.path.exists(stop):
    t = time.monotonic()
    subprocess.run(["etcdctl", "--endpoints", ep, "put", "stall/k", str(n)], check=True, capture_output=True)
    worst = max(worst, time.monotonic() - t)
    n += 1
print(f"{worst*1000:.0f} {n}")
PY
}

measure() { # name endpoint defrag-command...
  local name=$1 ep=$2; shift 2
  $BIN/cairn-fill --endpoints "$ep" --keys "$KEYS" --value-size 1024 >/dev/null
  $BIN/cairn-fill --endpoints "$ep" --keys "$KEYS" --value-size 1024 >/dev/null   # overwrite: garbage
  local rev; rev=$(etcdctl --endpoints "$ep" get stall -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])')
  etcdctl --endpoints "$ep" --command-timeout 120s compaction --physical "$rev" >/dev/null
  rm -f "$W/stop"
  writer "$ep" > "$W/$name.writer" &
  local wp=$!
  sleep 1   # a baseline of normal put latencies before the defrag starts
  local s; s=$(date +%s.%N)
  "$@" >/dev/null
  local took; took=$(python3 -c "import time; print(f'{time.time()-$s:.2f}')")
  sleep 1
  touch "$W/stop"; wait $wp
  read -r worst puts < "$W/$name.writer"
  printf '%-6s defrag %6ss   longest put during it %6s ms   (%s puts)\n' "$name" "$took" "$worst" "$puts"
}

echo "$KEYS keys of 1 KiB written twice, compacted, then defragmented under a put loop:"
# a defrag slower than the clients' default 5 s command timeout is a result, not a failure
measure etcd "$EP" etcdctl --endpoints "$EP" --command-timeout 120s defrag
measure cairn "$CP" $BIN/cairnutl --endpoints "$CP" --command-timeout 120s defrag
