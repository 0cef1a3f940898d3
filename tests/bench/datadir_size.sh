#!/usr/bin/env bash
# Data dir size: KEYS keys of 1 KiB (default 1,000,000) loaded into a fresh real etcd and a
# fresh cairn (`cairn-fill`, the same load for both), then for each data dir and its files:
# the bytes on disk (allocated blocks, what `df` loses) and the apparent size (`du -b`, which
# counts the never-written tails of preallocated files); then the same after a defragment.
# Not a test. Usage:  KEYS=1000000 tests/bench/datadir_size.sh
# Needs Debian's etcd-server and etcd-client (etcd 3.4) and python3.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
KEYS=${KEYS:-1000000}
. "$HERE/common.sh"

sizes() { # sizes LABEL DIR: one line per file of DIR and one for the whole, MB on disk / apparent
  local label=$1 dir=$2
  sync
  ( cd "$dir" && find . -type f | sort | while read -r f; do
      printf '  %-8s %-34s %9.1f MB on disk %9.1f MB apparent\n' "$label" "$f" \
        "$(du -k "$f" | awk '{print $1 / 1024}')" "$(du -b "$f" | awk '{print $1 / 1048576}')"
    done )
  printf '  %-8s %-34s %9.1f MB on disk %9.1f MB apparent\n' "$label" "(whole data dir)" \
    "$(du -sk "$dir" | awk '{print $1 / 1024}')" "$(du -sb "$dir" | awk '{print $1 / 1048576}')"
}

for who in etcd cairn; do
  ep=$EP; [ "$who" = cairn ] && ep=$CP
  echo "$who: loading $KEYS keys of 1 KiB"
  $BIN/cairn-fill --endpoints "$ep" --keys "$KEYS" --value-size 1024 >/dev/null
done
sleep 2
echo "after the load:"
sizes etcd "$W/etcd"; sizes cairn "$W/cairn"
etcdctl --endpoints "$EP" defrag --command-timeout 600s >/dev/null
etcdctl --endpoints "$CP" defrag --command-timeout 600s >/dev/null
echo "after a defragment:"
sizes etcd "$W/etcd"; sizes cairn "$W/cairn"
