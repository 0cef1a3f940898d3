# Sourced by the benchmark scripts: build the release binaries, make a work directory, and
# start a fresh real etcd ($EP) and a fresh cairn ($CP) on loopback, both stopped on exit.
# KEEP=1 keeps the work directory (its path is printed) for experiments.
export ETCDCTL_API=3
cargo build -q --release -p cairn-server -p cairn-util -p cairn-tests --bin cairn --bin cairnutl --bin cairn-fill
BIN=target/release
W=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-bench.XXXX")
echo "work directory: $W"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; [ -n "${KEEP:-}" ] || rm -rf "$W"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { for _ in $(seq 1 200); do etcdctl --endpoints "$1" endpoint health >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "server at $1 did not start" >&2; exit 1; }

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
