#!/usr/bin/env bash
# make-mirror benchmark: real `etcdctl make-mirror` (etcd 3.4) and `cairnutl make-mirror`
# side by side on the same machine. Not a test. Usage (from the repo root):
#   KEYS=200000 VALUE=1024 BURST=20000 tests/bench/mirror.sh
# Measures, for each pair (source -> destination):
#   initial sync: time from the mirror's start until the destination holds all KEYS keys;
#   steady state: BURST single-put revisions written by BURST_CLIENTS (64) clients while the mirror watches;
#     events/s = BURST / time from the burst's start until its last write is at the
#     destination; lag = how long after the burst's end that took (the mirror can only be
#     as fast as the source takes writes here);
#   backlog drain: the same burst written while the mirror is paused (SIGSTOP), then the
#     time from SIGCONT until the last write is at the destination: what the mirror applies.
# Needs Debian's etcd-server and etcd-client, bc and python3. Writes under ${BENCH_DIR:-/tmp}.
# KEEP=1 keeps the work directory; MIRROR_FLAGS adds flags to the cairnutl runs.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
KEYS=${KEYS:-200000}
VALUE=${VALUE:-1024}
BURST=${BURST:-20000}
BURST_CLIENTS=${BURST_CLIENTS:-64}
MIRROR_FLAGS=${MIRROR_FLAGS:-}
. "$HERE/common.sh"   # source etcd at $EP, source cairn at $CP
now() { date +%s.%N; }

# Destinations: a second etcd and a second cairn.
ED=127.0.0.1:$(free_port); EDP=$(free_port)
etcd --name e2 --data-dir "$W/etcd2" --listen-client-urls "http://$ED" --advertise-client-urls "http://$ED" \
     --listen-peer-urls "http://127.0.0.1:$EDP" --initial-advertise-peer-urls "http://127.0.0.1:$EDP" \
     --initial-cluster "e2=http://127.0.0.1:$EDP" --quota-backend-bytes 8589934592 >"$W/etcd2.log" 2>&1 &
pids+=($!)
CD=127.0.0.1:$(free_port); CDP=$(free_port)
$BIN/cairn --name c2 --data-dir "$W/cairn2" --listen-client-urls "http://$CD" --advertise-client-urls "http://$CD" \
     --listen-peer-urls "http://127.0.0.1:$CDP" --initial-advertise-peer-urls "http://127.0.0.1:$CDP" \
     --initial-cluster "c2=http://127.0.0.1:$CDP" >"$W/cairn2.log" 2>&1 &
pids+=($!)
wait_ready "$ED"; wait_ready "$CD"

count() { etcdctl --endpoints "$1" get "$2" --prefix --limit 1 -w json | python3 -c 'import json,sys; print(json.load(sys.stdin).get("count",0))'; }
# wait_count ENDPOINT PREFIX N: polls until PREFIX holds N keys
wait_count() { while [ "$(count "$1" "$2")" -lt "$3" ]; do sleep 0.2; done; }
# wait_key ENDPOINT KEY: polls until KEY exists
wait_key() { while [ -z "$(etcdctl --endpoints "$1" get "$2" --print-value-only)" ]; do sleep 0.05; done; }

echo "filling both sources with $KEYS keys of $VALUE bytes under bench/"
$BIN/cairn-fill --endpoints "$EP" --keys "$KEYS" --value-size "$VALUE" --prefix bench/
$BIN/cairn-fill --endpoints "$CP" --keys "$KEYS" --value-size "$VALUE" --prefix bench/

declare -A SYNC RATE LAG DRAIN
# run NAME SRC DST DEST_PREFIX COMMAND...: starts the mirror, times the initial sync and a burst
run() {
  local name=$1 src=$2 dst=$3 dprefix=$4; shift 4
  local s; s=$(now)
  "$@" >"$W/$name.out" 2>&1 &
  local pid=$!
  pids+=($pid)
  wait_count "$dst" "$dprefix" "$KEYS"
  SYNC[$name]=$(echo "$(now) - $s" | bc)
  echo "$name: initial sync ${SYNC[$name]}s"
  local b; b=$(now)
  $BIN/cairn-fill --endpoints "$src" --keys "$BURST" --value-size 256 --batch 1 --clients "$BURST_CLIENTS" --prefix "bench/burst-$name/" >"$W/$name.burst" 2>&1
  local e; e=$(now)
  etcdctl --endpoints "$src" put "bench/sentinel-$name" done >/dev/null
  wait_key "$dst" "${dprefix}sentinel-$name"
  local t; t=$(now)
  RATE[$name]=$(echo "scale=0; $BURST / ($t - $b)" | bc)
  LAG[$name]=$(echo "$t - $e" | bc)
  echo "$name: burst of $BURST puts written in $(echo "$e - $b" | bc)s; mirrored at ${RATE[$name]} events/s; caught up ${LAG[$name]}s after the burst ended"
  # Backlog drain: the mirror is paused (SIGSTOP) while the burst is written, then resumed;
  # this measures what the mirror can apply, not what the source can take.
  kill -STOP "$pid"
  $BIN/cairn-fill --endpoints "$src" --keys "$BURST" --value-size 256 --batch 1 --clients "$BURST_CLIENTS" --prefix "bench/drain-$name/" >"$W/$name.drain" 2>&1
  etcdctl --endpoints "$src" put "bench/drained-$name" done >/dev/null
  b=$(now)
  kill -CONT "$pid"
  wait_key "$dst" "${dprefix}drained-$name"
  t=$(now)
  DRAIN[$name]=$(echo "scale=0; $BURST / ($t - $b)" | bc)
  echo "$name: drained a backlog of $BURST revisions at ${DRAIN[$name]} events/s"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

run etcdctl_etcd_to_etcd "$EP" "$ED" "e/" etcdctl --endpoints "$EP" make-mirror "$ED" --prefix bench/ --dest-prefix e/
run cairnutl_etcd_to_etcd "$EP" "$ED" "c/" $BIN/cairnutl --endpoints "$EP" make-mirror "$ED" --prefix bench/ --dest-prefix c/ -w json $MIRROR_FLAGS
run cairnutl_cairn_to_cairn "$CP" "$CD" "c/" $BIN/cairnutl --endpoints "$CP" make-mirror "$CD" --prefix bench/ --dest-prefix c/ -w json $MIRROR_FLAGS

printf '\n%-26s %14s %16s %18s %16s\n' "mirror ($KEYS x ${VALUE} B)" "initial sync" "burst events/s" "lag after burst" "drain events/s"
for n in etcdctl_etcd_to_etcd cairnutl_etcd_to_etcd cairnutl_cairn_to_cairn; do
  printf '%-26s %13.2fs %16s %17.2fs %16s\n' "$n" "${SYNC[$n]}" "${RATE[$n]}" "${LAG[$n]}" "${DRAIN[$n]}"
done
r() { echo "scale=2; $1 / $2" | bc; }
echo
echo "initial sync speedup vs etcdctl: etcd->etcd $(r "${SYNC[etcdctl_etcd_to_etcd]}" "${SYNC[cairnutl_etcd_to_etcd]}")x, cairn->cairn $(r "${SYNC[etcdctl_etcd_to_etcd]}" "${SYNC[cairnutl_cairn_to_cairn]}")x"
echo "burst events/s vs etcdctl: etcd->etcd $(r "${RATE[cairnutl_etcd_to_etcd]}" "${RATE[etcdctl_etcd_to_etcd]}")x, cairn->cairn $(r "${RATE[cairnutl_cairn_to_cairn]}" "${RATE[etcdctl_etcd_to_etcd]}")x"
echo "drain events/s vs etcdctl: etcd->etcd $(r "${DRAIN[cairnutl_etcd_to_etcd]}" "${DRAIN[etcdctl_etcd_to_etcd]}")x, cairn->cairn $(r "${DRAIN[cairnutl_cairn_to_cairn]}" "${DRAIN[etcdctl_etcd_to_etcd]}")x"
