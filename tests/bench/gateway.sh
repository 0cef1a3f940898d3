#!/usr/bin/env bash
# The JSON gateway under load: a real etcd 3.4 and a cairn on loopback, both running, each
# driven through its gateway by ApacheBench (Debian's apache2-utils: `ab`) with CLIENTS
# concurrent keep-alive HTTP clients: N puts of one small key (POST /v3/kv/put), then N
# linearizable ranges of it (POST /v3/kv/range); etcd and cairn alternated, ROUNDS times.
# Prints each round's requests per second and the ratio cairn/etcd, then the medians.
# Not a test. Usage (from the repo root): ROUNDS=3 N=20000 CLIENTS=100 tests/bench/gateway.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
ROUNDS=${ROUNDS:-3}
N=${N:-20000}
CLIENTS=${CLIENTS:-100}
command -v ab >/dev/null || { echo "ab not found: apt-get install apache2-utils" >&2; exit 1; }
. "$HERE/common.sh"

printf '{"key":"%s","value":"%s"}' "$(printf 'bench-key' | base64)" "$(head -c 64 /dev/zero | tr '\0' v | base64 -w0)" >"$W/put.json"
printf '{"key":"%s"}' "$(printf 'bench-key' | base64)" >"$W/range.json"

# rps ENDPOINT ROUTE BODY: requests per second of one ab run (fails on any non-2xx answer)
rps() {
  local out
  out=$(ab -q -k -c "$CLIENTS" -n "$N" -p "$3" -T application/json "http://$1/v3/$2" 2>&1)
  if grep -q '^Non-2xx responses' <<<"$out"; then echo "ab: non-2xx answers from $1/v3/$2" >&2; echo "$out" >&2; exit 1; fi
  awk '/^Requests per second/ {print $4}' <<<"$out"
}

declare -A results
for r in $(seq 1 "$ROUNDS"); do
  for route in kv/put kv/range; do
    body=$W/put.json; [ "$route" = kv/range ] && body=$W/range.json
    # alternate which goes first
    if [ $((r % 2)) -eq 1 ]; then
      e=$(rps "$EP" "$route" "$body"); c=$(rps "$CP" "$route" "$body")
    else
      c=$(rps "$CP" "$route" "$body"); e=$(rps "$EP" "$route" "$body")
    fi
    ratio=$(python3 -c "print(f'{$c/$e:.2f}')")
    printf 'round %d %-9s etcd %9.0f req/s   cairn %9.0f req/s   cairn/etcd %s\n' "$r" "$route" "$e" "$c" "$ratio"
    results[$route]+="$ratio "
  done
done
for route in kv/put kv/range; do
  python3 - "$route" ${results[$route]} <<'PY'
import statistics, sys
print(f"median cairn/etcd {sys.argv[1]}: {statistics.median(float(x) for x in sys.argv[2:]):.2f}")
PY
done
