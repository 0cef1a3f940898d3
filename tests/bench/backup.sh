#!/usr/bin/env bash
# Continuous backup benchmarks (docs/performance.md, "Continuous backups"). Not a test.
#
# 1. Lag under load: `cairnutl backup run` (--segment-age 1s) follows a source taking RATE puts/s
#    (default 5,000) for SECONDS (default 60), once with real etcd as the source and once with
#    cairn. The backup's /metrics page is sampled every 100 ms: lag in seconds and revisions
#    (median, p99, max); the backup process's CPU (user+sys from /proc over the load's wall time).
# 2. Point-in-time restore: REVS puts (default 1,000,000; one revision each) into cairn with a
#    backup running from the start (one full snapshot near revision 0, then every revision in
#    segments); then, alternated ROUNDS times (default 3): `cairnutl snapshot restore
#    --from-backup DIR --to-revision <last>` against `etcdctl snapshot restore` (etcd 3.4) of an
#    etcd snapshot of the same final state (the same puts into etcd), each into a fresh dir;
#    time and peak RSS of each (/usr/bin/time).
#
# Usage: RATE=5000 SECONDS_LOAD=60 REVS=1000000 ROUNDS=3 tests/bench/backup.sh
# Needs Debian's etcd-server and etcd-client (etcd 3.4), python3 and curl.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
RATE=${RATE:-5000}
SECONDS_LOAD=${SECONDS_LOAD:-60}
REVS=${REVS:-1000000}
ROUNDS=${ROUNDS:-3}
. "$HERE/common.sh"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
revision() { etcdctl --endpoints "$1" get nothing -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])'; }

# sample_lag URL SECONDS OUT: /metrics every 100 ms into OUT (lag_seconds lag_revisions per line)
sample_lag() {
  python3 - "$1" "$2" "$3" <<'EOF'
import sys, time, urllib.request
url, secs, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
end = time.time() + secs
with open(out, "w") as f:
    while time.time() < end:
        try:
            page = urllib.request.urlopen(url, timeout=1).read().decode()
            m = {l.split()[0]: float(l.split()[1]) for l in page.splitlines() if l and not l.startswith("#")}
            f.write(f'{m["cairn_backup_lag_seconds"]} {m["cairn_backup_lag_revisions"]}\n')
        except Exception:
            pass
        time.sleep(0.1)
EOF
}

summary() { # summary FILE: median, p99 and max of both columns
  python3 - "$1" <<'EOF'
import sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
def q(xs, p):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(p * len(xs)))]
s = [r[0] for r in rows]; r = [r[1] for r in rows]
print(f"{len(rows)} samples: lag seconds median {q(s,.5):.2f} p99 {q(s,.99):.2f} max {max(s):.2f}; "
      f"lag revisions median {q(r,.5):.0f} p99 {q(r,.99):.0f} max {max(r):.0f}")
EOF
}

echo "== 1. lag at $RATE puts/s for ${SECONDS_LOAD}s (backup --segment-age 1s)"
for who in etcd cairn; do
  ep=$EP; [ "$who" = cairn ] && ep=$CP
  mport=$(free_port)
  $BIN/cairnutl --endpoints "$ep" backup run "$W/lag-$who" --segment-age 1s \
    --listen-metrics-urls "http://127.0.0.1:$mport" --status-every 1h >"$W/lag-$who.log" 2>&1 &
  bpid=$!; pids+=($bpid)
  for _ in $(seq 1 100); do grep -q "full snapshot at revision" "$W/lag-$who.log" && break; sleep 0.1; done
  t0=$(cpu_ticks $bpid); s0=$(date +%s.%N)
  sample_lag "http://127.0.0.1:$mport/metrics" "$SECONDS_LOAD" "$W/lag-$who.samples" &
  spid=$!
  $BIN/cairnutl bench put --endpoints "$ep" --rate "$RATE" --duration "${SECONDS_LOAD}s" \
    --clients 64 --conns 4 --key-space-size 100000 --val-size 256 >"$W/load-$who.txt" 2>&1
  wait $spid
  t1=$(cpu_ticks $bpid); s1=$(date +%s.%N)
  kill $bpid; wait $bpid 2>/dev/null || true
  hz=$(getconf CLK_TCK)
  echo "source $who: $(grep -m1 -i 'requests/sec\|req/s\|throughput' "$W/load-$who.txt" || tail -1 "$W/load-$who.txt")"
  echo "  $(summary "$W/lag-$who.samples")"
  python3 -c "print(f'  backup CPU: {($t1-$t0)/$hz:.2f} s over {$s1-$s0:.1f} s wall = {($t1-$t0)/$hz/($s1-$s0)*100:.1f}% of one core')"
done

echo "== 2. point-in-time restore of $REVS revisions"
$BIN/cairnutl --endpoints "$CP" backup run "$W/pitr" >"$W/pitr.log" 2>&1 &
bpid=$!; pids+=($bpid)
for _ in $(seq 1 100); do grep -q "full snapshot at revision" "$W/pitr.log" && break; sleep 0.1; done
for who in cairn etcd; do
  ep=$EP; [ "$who" = cairn ] && ep=$CP
  $BIN/cairnutl bench put --endpoints "$ep" --total "$REVS" --clients 100 --conns 4 \
    --key-space-size "$REVS" --sequential-keys --val-size 100 >/dev/null 2>&1
done
last=$(revision "$CP")
echo "cairn at revision $last; waiting for the backup to seal it"
for _ in $(seq 1 600); do
  got=$(python3 - "$W/pitr" <<'EOF'
import os, re, sys
best = 0
for n in os.listdir(sys.argv[1]):
    m = re.match(r"seg-(\d+)-(\d+)\.cseg$", n)
    if m: best = max(best, int(m.group(2)))
print(best)
EOF
)
  [ "$got" -ge "$last" ] && break; sleep 1
done
kill $bpid; wait $bpid 2>/dev/null || true
$BIN/cairnutl backup list "$W/pitr"
etcdctl --endpoints "$EP" snapshot save "$W/etcd.db" >/dev/null
ls -l "$W/etcd.db" | awk '{print "etcd snapshot: " $5 " bytes"}'
du -sb "$W/pitr" | awk '{print "cairn backup (1 full snapshot + segments): " $1 " bytes"}'

# measure CMD...: "SECONDS PEAK_RSS_MB" of one run
measure() {
  local s e; s=$(date +%s.%N); /usr/bin/time -f %M -o "$W/rss" "$@" >/dev/null 2>&1; e=$(date +%s.%N)
  python3 -c "print(f'{$e-$s:.2f} {$(cat "$W/rss")/1024:.0f}')"
}
for r in $(seq 1 "$ROUNDS"); do
  rm -rf "$W/r-cairn" "$W/r-etcd"
  read -r c cm < <(measure $BIN/cairnutl snapshot restore --from-backup "$W/pitr" --to-revision "$last" --data-dir "$W/r-cairn")
  read -r e em < <(measure etcdctl snapshot restore "$W/etcd.db" --data-dir "$W/r-etcd")
  python3 -c "print(f'round $r: cairn PITR {$c} s ({$cm} MB peak), etcd snapshot restore {$e} s ({$em} MB peak), etcd/cairn {$e/$c:.2f}x')"
done
