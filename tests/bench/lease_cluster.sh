#!/usr/bin/env bash
# Lease keep-alives on three-member clusters: a real etcd 3.4 cluster and a cairn cluster on
# loopback, both running, the same `cairnutl bench lease-keepalive` against the leader and
# against a follower of each, alternated, ROUNDS times. On three members a Cairn leader
# confirms with a quorum that it still leads before it answers a keep-alive (concurrent ones
# share a round; docs/cluster.md), which this measures. Not a test.
# Usage (from the repo root): ROUNDS=3 SECS=5 tests/bench/lease_cluster.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
BENCH_START=none . "$HERE/common.sh"
U=$BIN/cairnutl

# cluster KIND PREFIX: three members; prints their client endpoints, comma separated
cluster() {
  local kind=$1 p=$2 ports=() initial="" i
  for i in 1 2 3; do ports+=("$(free_port)" "$(free_port)"); done
  for i in 0 1 2; do initial+="${initial:+,}$p$((i + 1))=http://127.0.0.1:${ports[$((2 * i + 1))]}"; done
  for i in 0 1 2; do
    local name=$p$((i + 1)) c=${ports[$((2 * i))]} peer=${ports[$((2 * i + 1))]}
    local bin=etcd; [ "$kind" = cairn ] && bin=$BIN/cairn
    $bin --name "$name" --data-dir "$W/$name" --listen-client-urls "http://127.0.0.1:$c" \
      --advertise-client-urls "http://127.0.0.1:$c" --listen-peer-urls "http://127.0.0.1:$peer" \
      --initial-advertise-peer-urls "http://127.0.0.1:$peer" --initial-cluster "$initial" \
      >>"$W/$name.log" 2>&1 &
    pids+=($!)
  done
  echo "127.0.0.1:${ports[0]},127.0.0.1:${ports[2]},127.0.0.1:${ports[4]}"
}

# leader_and_follower ENDPOINTS: "LEADER FOLLOWER"
leader_and_follower() {
  local eps=$1
  for _ in $(seq 1 200); do
    local out; out=$(etcdctl --endpoints "$eps" endpoint status -w json 2>/dev/null) || { sleep 0.1; continue; }
    python3 - "$out" <<'PY' && return 0
import json, sys
st = json.loads(sys.argv[1])
lead = [s["Endpoint"] for s in st if s["Status"]["leader"] == s["Status"]["header"]["member_id"]]
rest = [s["Endpoint"] for s in st if s["Endpoint"] not in lead]
if len(lead) != 1 or len(rest) != 2:
    sys.exit(1)
print(lead[0], rest[0])
PY
    sleep 0.1
  done
  echo "no leader among $eps" >&2; exit 1
}

E=$(cluster etcd e); C=$(cluster cairn c)
read -r EL EF < <(leader_and_follower "$E")
read -r CL CF < <(leader_and_follower "$C")
rate() { $U --endpoints "$1" --command-timeout 30s -w json bench lease-keepalive --clients 100 --conns 10 --duration "${SECS}s" 2>/dev/null \
  | python3 -c 'import json,sys; print(int(json.load(sys.stdin).get("requests_per_second", 0)))'; }
echo "round | on | etcd/s | cairn/s | cairn/etcd"
for r in $(seq 1 "$ROUNDS"); do
  for on in leader follower; do
    if [ $on = leader ]; then e=$EL c=$CL; else e=$EF c=$CF; fi
    re=$(rate "$e"); rc=$(rate "$c")
    echo "$r | $on | $re | $rc | $(python3 -c "print(f'{$rc/$re:.2f}x')")"
  done
done
