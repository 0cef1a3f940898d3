#!/usr/bin/env bash
# Server benchmark: the same `cairnutl bench` workloads against a fresh real etcd and a fresh
# cairn, both running, each workload on one and then the other (the load generator shares the
# machine's cores with the server), data dirs under one work directory (same medium); then
# memory and restart time, one server at a time, with
# BENCH_KEYS keys of 1 KiB. Prints a table with both numbers and the ratio cairn/etcd.
# Not a test. Usage (from the repo root):
#   tests/bench/etcd_vs_cairn.sh                                  # the full run (1,000,000 keys)
#   BENCH_KEYS=200000 BENCH_SECONDS=5 tests/bench/etcd_vs_cairn.sh  # a quick run
# BENCH_SECONDS: length of each throughput workload (default 10); BENCH_KEY_SPACE: keys the
# put/range/mixed workloads use (default 100000, written first by a txn-put fill);
# ONLY="put-1 range-s-100": run only these workloads; SKIP_MEMORY=1 skips the memory phase.
# The tls-* workloads run against a second etcd/cairn pair serving https:// with client
# certificates (the same certificates for both; made by cairn-pki under the work directory);
# the auth-* ones against a third pair with auth on, as a non-root user with a prefix grant.
# ROUNDS=5: each workload pair five times (the table shows medians and the spread of ratios).
# KEEP=1 keeps the work directory (the JSON of every run is in it).
# Needs Debian's etcd-server and etcd-client (etcd 3.4), python3. Writes under ${BENCH_DIR:-/tmp}.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
BENCH_KEYS=${BENCH_KEYS:-1000000}
SECS=${BENCH_SECONDS:-10}
KS=${BENCH_KEY_SPACE:-100000}
ROUNDS=${ROUNDS:-1}
BENCH_START=none . "$HERE/common.sh"
U=$BIN/cairnutl
now() { date +%s.%N; }

# name | cairnutl bench arguments (key size 8 and value size 256 as in etcd's benchmark docs)
K="--key-size 8 --key-space-size $KS"; V="--val-size 256"
WORKLOADS=(
  "fill|txn-put $K $V --sequential-keys --txn-ops 100 --total $((KS / 100)) --clients 16 --conns 4"
  "put-1|put $K $V --clients 1 --conns 1 --duration ${SECS}s"
  "put-100|put $K $V --clients 100 --conns 10 --duration ${SECS}s"
  "put-500|put $K $V --clients 500 --conns 50 --duration ${SECS}s"
  "txn-put-100|txn-put $K $V --txn-ops 4 --clients 100 --conns 10 --duration ${SECS}s"
  "range-s-1|range $K --consistency s --clients 1 --conns 1 --duration ${SECS}s"
  "range-s-100|range $K --consistency s --clients 100 --conns 10 --duration ${SECS}s"
  "range-l-100|range $K --consistency l --clients 100 --conns 10 --duration ${SECS}s"
  "mixed-100|mixed $K $V --read-ratio 0.9 --consistency l --clients 100 --conns 10 --duration ${SECS}s"
  "lease-100|lease-keepalive --clients 100 --conns 10 --duration ${SECS}s"
  "watch|watch --watchers 100 --watched-keys 1 --streams 10 --clients 1 --total 1000 --rate 100"
  "watch-busy|watch --watchers 1000 --watched-keys 100 --streams 10 --clients 10 --conns 10 --total 10000 --rate 2000"
  # the same workloads over TLS with client certificates, against a second pair of servers
  # (etcd and cairn with the same certificates: $SERVER_TLS in common.sh)
  "tls-fill|txn-put $K $V --sequential-keys --txn-ops 100 --total $((KS / 100)) --clients 16 --conns 4"
  "tls-put-100|put $K $V --clients 100 --conns 10 --duration ${SECS}s"
  "tls-range-s-100|range $K --consistency s --clients 100 --conns 10 --duration ${SECS}s"
  # with auth on, as a non-root user whose role grants readwrite on the prefix "000" (every
  # key of the key space), against a third pair of servers
  "auth-fill|txn-put $K $V --sequential-keys --txn-ops 100 --total $((KS / 100)) --clients 16 --conns 4"
  "auth-put-100|put $K $V --clients 100 --conns 10 --duration ${SECS}s"
  "auth-range-s-100|range $K --consistency s --clients 100 --conns 10 --duration ${SECS}s"
)

# stop PID: SIGTERM, then wait for the process to be gone.
stop() { kill "$1" 2>/dev/null || true; while kill -0 "$1" 2>/dev/null; do sleep 0.05; done; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
anon_kb() { awk '/^RssAnon/ {print $2}' "/proc/$1/status"; }
# wait_status "ENDPOINT [TLS FLAGS]" [SECONDS]: polls until Status answers (every 20 ms);
# fails after SECONDS (default 120).
wait_status() {
  local end=$(( $(date +%s) + ${2:-120} ))
  while [ "$(date +%s)" -lt "$end" ]; do
    # shellcheck disable=SC2086
    $U --endpoints $1 --command-timeout 1s endpoint status >/dev/null 2>&1 && return 0; sleep 0.02
  done; echo "server at $1 did not answer Status within ${2:-120} s" >&2; return 1
}
# enable_auth ENDPOINT: root (role root), and user bench whose role grants readwrite on the
# prefix "000" (every benchmark key), then auth on; the same etcdctl commands for both servers
enable_auth() {
  local c="etcdctl --endpoints $1"
  $c user add root:rootpw >/dev/null && $c role add root >/dev/null && $c user grant-role root root >/dev/null
  $c user add bench:benchpw >/dev/null && $c role add bench >/dev/null
  $c role grant-permission bench readwrite 000 --prefix >/dev/null && $c user grant-role bench bench >/dev/null
  $c auth enable >/dev/null
}
# authenticate_cost AUTH_ENDPOINT PLAIN_ENDPOINT KIND: seconds per etcdctl get as user bench
# on the auth server (each one authenticates: bcrypt at the default cost 10) and per plain
# get on the server without auth, 20 of each, into $R/KIND-authenticate
authenticate_cost() {
  local s m e n=20
  s=$(now); for _ in $(seq $n); do etcdctl --endpoints "$1" --user bench:benchpw get 00000001 >/dev/null; done; m=$(now)
  for _ in $(seq $n); do etcdctl --endpoints "$2" get 00000001 >/dev/null; done; e=$(now)
  echo "$(echo "($m - $s) / $n" | bc -l) $(echo "($e - $m) / $n" | bc -l)" >"$R/$3-authenticate"
}
RESTART_TIMEOUT=${RESTART_TIMEOUT:-300}
# timed_restart KIND NAME DIR CPORT PPORT FILE: starts the server, writes the seconds until
# Status answers to FILE ("timeout" after RESTART_TIMEOUT, and the server is killed).
timed_restart() {
  local s; s=$(now); start "$1" "$2" "$3" "$4" "$5"; pid=$LAST_PID
  if wait_status "127.0.0.1:$4" "$RESTART_TIMEOUT"; then echo "$(now) - $s" | bc >"$6"
  else echo timeout >"$6"; grep -E "VmRSS|RssAnon" "/proc/$pid/status" >&2 || true; kill -9 "$pid"; fi
}
# start KIND NAME DIR CPORT PPORT
start() { if [ "$1" = etcd ]; then start_etcd "${@:2}"; else start_cairn "${@:2}"; fi; }

R="$W/results"; mkdir -p "$R"
# Both servers run at once, each workload goes to one and then the other (the first one
# alternating), so the two numbers of a pair are seconds apart: the machine's own drift
# (etcd's rates move by 10-30% between runs minutes apart) falls on both alike.
run_workloads() {
  # `servers`, not `pids`: start_* add each pid to the global `pids` the exit trap stops
  # servers 0, 1: etcd and cairn on http://; 2, 3: the same on https:// with client
  # certificates; 4, 5: on http:// with auth enabled
  local kind ports=() servers=() i=0 r name args order tls base endpoint
  for tls in "" tls auth; do
    for kind in etcd cairn; do
      local port pport; port=$(free_port); pport=$(free_port)
      local mode=$tls; [ "$tls" = auth ] && mode=""
      start "$kind" "$kind" "$W/$kind$tls" "$port" "$pport" $mode; servers+=("$LAST_PID"); ports+=("$port")
    done
  done
  for i in 0 1; do wait_status "127.0.0.1:${ports[$i]}" || exit 1; done
  for i in 2 3; do wait_status "https://127.0.0.1:${ports[$i]} $CLIENT_TLS" || exit 1; done
  for i in 4 5; do wait_status "127.0.0.1:${ports[$i]}" || exit 1; enable_auth "127.0.0.1:${ports[$i]}"; done
  authenticate_cost "127.0.0.1:${ports[4]}" "127.0.0.1:${ports[0]}" etcd
  authenticate_cost "127.0.0.1:${ports[5]}" "127.0.0.1:${ports[1]}" cairn
  echo "$(rss_kb "${servers[0]}")" >"$R/etcd-rss-fresh"; echo "$(rss_kb "${servers[1]}")" >"$R/cairn-rss-fresh"
  i=0
  for w in "${WORKLOADS[@]}"; do
    name=${w%%|*} args=${w#*|}
    short=${name#tls-}; short=${short#auth-}
    if [ -n "${ONLY:-}" ] && [ "$short" != fill ] && [[ " $ONLY " != *" $name "* ]]; then continue; fi
    base=0; [ "${name#tls-}" != "$name" ] && base=2; [ "${name#auth-}" != "$name" ] && base=4
    for r in $(seq 1 "$ROUNDS"); do
      [ "$short" = fill ] && [ "$r" -gt 1 ] && break
      order="0 1"; [ $(( (i + r) % 2 )) -eq 1 ] && order="1 0"
      for k in $order; do
        kind=etcd; [ "$k" = 1 ] && kind=cairn
        endpoint="127.0.0.1:${ports[$((base + k))]}"
        [ "$base" = 2 ] && endpoint="https://$endpoint $CLIENT_TLS"
        [ "$base" = 4 ] && endpoint="$endpoint --user bench:benchpw"
        echo "$kind: $name, round $r ($args)"
        # shellcheck disable=SC2086
        $U --endpoints $endpoint --command-timeout 30s -w json bench $args >"$R/$kind-$name.$r.json" || true
      done
    done
    i=$((i + 1))
  done
  echo "$(rss_kb "${servers[0]}")" >"$R/etcd-rss-after-workloads"; echo "$(rss_kb "${servers[1]}")" >"$R/cairn-rss-after-workloads"
  for p in "${servers[@]}"; do stop "$p"; done
  rm -rf "${W:?}/etcd" "${W:?}/cairn" "${W:?}/etcdtls" "${W:?}/cairntls" "${W:?}/etcdauth" "${W:?}/cairnauth"
}

memory_and_restart() { # KIND
  local kind=$1 port pport pid s dir
  dir="$W/$kind-mem"
  port=$(free_port); pport=$(free_port)
  start "$kind" "$kind" "$dir" "$port" "$pport"; pid=$LAST_PID
  wait_status "127.0.0.1:$port" || exit 1
  echo "$(rss_kb "$pid")" >"$R/$kind-mem-rss0"
  echo "$kind: loading $BENCH_KEYS keys of 1 KiB"
  $BIN/cairn-fill --endpoints "127.0.0.1:$port" --keys "$BENCH_KEYS" --value-size 1024 | tee "$R/$kind-mem-fill"
  sleep 2
  echo "$(rss_kb "$pid") $(anon_kb "$pid")" >"$R/$kind-mem-rss1"
  du -sb "$dir" | cut -f1 >"$R/$kind-mem-disk"
  # clean restart: SIGTERM, start, time until Status answers
  stop "$pid"
  timed_restart "$kind" "$kind" "$dir" "$port" "$pport" "$R/$kind-mem-restart"
  sleep 2
  echo "$(rss_kb "$pid" || echo 0) $(anon_kb "$pid" || echo 0)" >"$R/$kind-mem-rss2"
  # crash restart: SIGKILL, start, time until Status answers
  kill -9 "$pid" 2>/dev/null || true; while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  timed_restart "$kind" "$kind" "$dir" "$port" "$pport" "$R/$kind-mem-crash-restart"
  kill -9 "$pid" 2>/dev/null || true; while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  rm -rf "$dir"
}

echo "etcd: $(etcd --version | head -1); cairn: $($BIN/cairn --version 2>&1 | head -1)"
echo "machine: $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
run_workloads
if [ -z "${SKIP_MEMORY:-}" ]; then memory_and_restart etcd; memory_and_restart cairn; fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$HERE/etcd_vs_cairn_table.py" "$R" "$BENCH_KEYS"
