#!/usr/bin/env bash
# Defragment stall: while one client writes continuously, defragment the member and report
# how long defrag took and the longest single-put latency seen meanwhile, for real etcd and
# cairn side by side on the same data set. Not a test. Usage (from the repo root):
#   KEYS=200000 tests/bench/defrag_stall.sh
# Needs Debian's etcd-server and etcd-client (etcd 3.4) and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
KEYS=${KEYS:-200000}
export ETCDCTL_API=3
cargo build -q --release -p cairn-server -p cairn-util -p cairn-tests --bin cairn --bin cairnutl --bin cairn-fill
BIN=target/release
W=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-defrag.XXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { for _ in $(seq 1 200); do etcdctl --endpoints "$1" endpoint health >/dev/null 2>&1 && return 0; sleep 0.1; done; exit 1; }

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
  etcdctl --endpoints "$ep" compaction --physical "$rev" >/dev/null
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

EP=127.0.0.1:$(free_port); EPP=$(free_port)
etcd --name e1 --data-dir "$W/etcd" --listen-client-urls "http://$EP" --advertise-client-urls "http://$EP" \
     --listen-peer-urls "http://127.0.0.1:$EPP" --initial-advertise-peer-urls "http://127.0.0.1:$EPP" \
     --initial-cluster "e1=http://127.0.0.1:$EPP" --quota-backend-bytes 8589934592 >"$W/etcd.log" 2>&1 &
pids+=($!)
CP=127.0.0.1:$(free_port); CPP=$(free_port)
$BIN/cairn --name c1 --data-dir "$W/cairn" --listen-client-urls "http://$CP" --advertise-client-urls "http://$CP" \
     --listen-peer-urls "http://127.0.0.1:$CPP" --initial-advertise-peer-urls "http://127.0.0.1:$CPP" \
     --initial-cluster "c1=http://127.0.0.1:$CPP" >"$W/cairn.log" 2>&1 &
pids+=($!)
wait_ready "$EP"; wait_ready "$CP"
echo "$KEYS keys of 1 KiB written twice, compacted, then defragmented under a put loop:"
measure etcd "$EP" etcdctl --endpoints "$EP" defrag
measure cairn "$CP" $BIN/cairnutl --endpoints "$CP" defrag
