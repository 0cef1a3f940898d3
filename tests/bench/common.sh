# Sourced by the benchmark scripts: build the release binaries, make a work directory, and
# start a fresh real etcd ($EP) and a fresh cairn ($CP) on loopback, both stopped on exit.
# KEEP=1 keeps the work directory (its path is printed) for experiments.
# BENCH_START=none starts neither: the script calls start_etcd / start_cairn itself.
export ETCDCTL_API=3
cargo build -q --release -p cairn-server -p cairn-util -p cairn-tests --bin cairn --bin cairnutl --bin cairn-fill --bin cairn-pki
BIN=target/release
W=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-bench.XXXX")
echo "work directory: $W"
pids=()
# cleanup: SIGTERM to every server started, then wait (up to 10 s each) until they are gone
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do for _ in $(seq 1 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done; done
  [ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT

# Throwaway certificates for TLS runs (made here, never kept): $PKI/{ca,server,client}.{crt,key}
PKI=$W/pki
$BIN/cairn-pki "$PKI" >/dev/null
# The server flags of a TLS member: https on the client URL, client certificates required
# (etcd and cairn take the same flags), and cairnutl's flags to reach it.
SERVER_TLS="--cert-file $PKI/server.crt --key-file $PKI/server.key --trusted-ca-file $PKI/ca.crt --client-cert-auth"
CLIENT_TLS="--cacert $PKI/ca.crt --cert $PKI/client.crt --key $PKI/client.key"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { for _ in $(seq 1 200); do etcdctl --endpoints "$1" endpoint health >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "server at $1 did not start" >&2; exit 1; }

# start_etcd NAME DATA_DIR CLIENT_PORT PEER_PORT [tls]: etcd in the background (log:
# DATA_DIR.log), its pid in $LAST_PID. The same arguments restart it on its data dir. With
# `tls`, its client URL is https:// with $SERVER_TLS.
start_etcd() {
  local scheme=http tls=""; [ "${5:-}" = tls ] && scheme=https tls=$SERVER_TLS
  # shellcheck disable=SC2086
  etcd --name "$1" --data-dir "$2" --listen-client-urls "$scheme://127.0.0.1:$3" --advertise-client-urls "$scheme://127.0.0.1:$3" \
       --listen-peer-urls "http://127.0.0.1:$4" --initial-advertise-peer-urls "http://127.0.0.1:$4" \
       --initial-cluster "$1=http://127.0.0.1:$4" --quota-backend-bytes 8589934592 $tls >>"$2.log" 2>&1 &
  LAST_PID=$!; pids+=($!)
}
# start_cairn NAME DATA_DIR CLIENT_PORT PEER_PORT [tls]: the same for cairn. CAIRN_WRAP is an
# optional command prefix that execs cairn (e.g. "env LD_PRELOAD=...") for experiments.
start_cairn() {
  local scheme=http tls=""; [ "${5:-}" = tls ] && scheme=https tls=$SERVER_TLS
  # shellcheck disable=SC2086
  ${CAIRN_WRAP:-} $BIN/cairn --name "$1" --data-dir "$2" --listen-client-urls "$scheme://127.0.0.1:$3" --advertise-client-urls "$scheme://127.0.0.1:$3" \
       --listen-peer-urls "http://127.0.0.1:$4" --initial-advertise-peer-urls "http://127.0.0.1:$4" \
       --initial-cluster "$1=http://127.0.0.1:$4" --quota-backend-bytes 8589934592 $tls >>"$2.log" 2>&1 &
  LAST_PID=$!; pids+=($!)
}

if [ "${BENCH_START:-both}" != none ]; then
  EP=127.0.0.1:$(free_port); EPP=$(free_port)
  start_etcd e1 "$W/etcd" "${EP#*:}" "$EPP"
  CP=127.0.0.1:$(free_port); CPP=$(free_port)
  start_cairn c1 "$W/cairn" "${CP#*:}" "$CPP"
  wait_ready "$EP"; wait_ready "$CP"
fi
