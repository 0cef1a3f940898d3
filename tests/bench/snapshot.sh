#!/usr/bin/env bash
# Snapshot benchmark: cairn and real etcd on the same machine and disk, same data set, one
# run; prints times, sizes and ratios. Not a test. Usage (from the repo root):
#   KEYS=300000 VALUE=1024 tests/bench/snapshot.sh
# KEEP=1 keeps the work directory (its path is printed) for experiments.
# RUNS=n (default 3) saves and restores n times each, etcd and cairn in alternation, and prints medians;
# each timed step starts after a `sync` (untimed), so no step pays for the writeback of another
# (the machine is shared: single runs are noisy). BEFORE=path/to/cairnutl adds another cairnutl
# (e.g. built from the previous commit) to the alternation, to compare before/after in one run.
# Needs Debian's etcd-server and etcd-client (etcd 3.4), bc and python3. Writes under ${BENCH_DIR:-/tmp}.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
KEYS=${KEYS:-300000}
VALUE=${VALUE:-1024}
. "$HERE/common.sh"
now() { date +%s.%N; }
# seconds NAME COMMAND...: runs the command, records its wall time in T_NAME
declare -A T
# The page cache is written back first (not timed): otherwise one step pays for the
# writeback of the files the step before it wrote, and the order decides the ratios.
seconds() { local name=$1; shift; local s; sync; s=$(now); "$@" >"$W/$name.out" 2>&1 || { cat "$W/$name.out" >&2; exit 1; }; T[$name]=$(echo "$(now) - $s" | bc); }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
RUNS=${RUNS:-3}
# rounds STEP FUNCTION WHO...: RUNS rounds of "FUNCTION WHO" for each WHO in alternation;
# T[WHO_STEP] is the median, and the times are printed
declare -A RT
rounds() {
  local step=$1 fn=$2 run who; shift 2
  for who in "$@"; do RT[$who]=""; done
  for run in $(seq 1 "$RUNS"); do
    for who in "$@"; do
      seconds "${who}_${step}_$run" "$fn" "$who"
      RT[$who]+="${T[${who}_${step}_$run]} "
    done
  done
  for who in "$@"; do
    T[${who}_$step]=$(median ${RT[$who]})
    echo "$who $step, $RUNS runs: ${RT[$who]}(median ${T[${who}_$step]} s)"
  done
}

echo "filling both with $KEYS keys of $VALUE bytes"
$BIN/cairn-fill --endpoints "$EP" --keys "$KEYS" --value-size "$VALUE"
$BIN/cairn-fill --endpoints "$CP" --keys "$KEYS" --value-size "$VALUE"

save() { # save WHO
  case $1 in
    etcd) rm -f "$W/etcd.snap"; etcdctl --endpoints "$EP" snapshot save "$W/etcd.snap" ;;
    cairn) rm -f "$W/cairn.snap"; $BIN/cairnutl --endpoints "$CP" snapshot save "$W/cairn.snap" ;;
    # etcdctl against cairn gets etcd's format: serving it, against etcd serving its own
    etcdfmt) rm -f "$W/cairn-as-etcd.db"; etcdctl --endpoints "$CP" snapshot save "$W/cairn-as-etcd.db" ;;
  esac
}
rounds save save etcd cairn etcdfmt
seconds etcd_status etcdctl snapshot status "$W/etcd.snap" -w json
seconds cairn_status $BIN/cairnutl snapshot status "$W/cairn.snap" -w json
seconds cairn_verify $BIN/cairnutl snapshot verify "$W/cairn.snap"
# etcd's own file read by cairnutl (the migration path): the same file etcdctl reads
seconds etcdfile_status $BIN/cairnutl snapshot status "$W/etcd.snap" -w json
seconds etcdfile_verify $BIN/cairnutl snapshot verify "$W/etcd.snap"
restorers=(etcd cairn etcdfile); [ -n "${BEFORE:-}" ] && restorers+=(before)
restore() { # restore WHO: into $W/WHO-restored
  local member=(--name r1 --initial-cluster r1=http://127.0.0.1:1 --initial-advertise-peer-urls http://127.0.0.1:1)
  local dir="$W/$1-restored"; rm -rf "$dir"
  case $1 in
    etcd) etcdctl snapshot restore "$W/etcd.snap" --data-dir "$dir" "${member[@]}" ;;
    cairn) $BIN/cairnutl snapshot restore "$W/cairn.snap" --data-dir "$dir" "${member[@]}" ;;
    etcdfile) $BIN/cairnutl snapshot restore "$W/etcd.snap" --data-dir "$dir" "${member[@]}" ;;
    before) "$BEFORE" snapshot restore "$W/cairn.snap" --data-dir "$dir" "${member[@]}" ;;
  esac
}
rounds restore restore "${restorers[@]}"

size() { stat -c %s "$1"; }
dirsize() { du -sb "$1" | cut -f1; }
mb() { echo "scale=1; $1 / 1000000" | bc; }
ratio() { echo "scale=2; $1 / $2" | bc; }
es=$(size "$W/etcd.snap"); cs=$(size "$W/cairn.snap")
printf '\n%-28s %12s %12s %10s\n' "step ($KEYS x ${VALUE} B)" etcd cairn "etcd/cairn"
for step in save status restore; do
  printf '%-28s %11.2fs %11.2fs %9sx\n' "snapshot $step" "${T[etcd_$step]}" "${T[cairn_$step]}" "$(ratio "${T[etcd_$step]}" "${T[cairn_$step]}")"
done
[ -n "${BEFORE:-}" ] && printf '%-28s %11.2fs %11.2fs %9sx\n' "snapshot restore (BEFORE)" "${T[etcd_restore]}" "${T[before_restore]}" "$(ratio "${T[etcd_restore]}" "${T[before_restore]}")"
printf '%-28s %12s %11.2fs\n' "snapshot verify (full check)" "(none)" "${T[cairn_verify]}"
printf '%-28s %11.2fs %11.2fs %9sx\n' "etcdctl save (etcd format)" "${T[etcd_save]}" "${T[etcdfmt_save]}" "$(ratio "${T[etcd_save]}" "${T[etcdfmt_save]}")"
printf '%-28s %10sMB/s %10sMB/s\n' "  serving rate" "$(echo "scale=1; $(size "$W/etcd.snap") / 1000000 / ${T[etcd_save]}" | bc)" "$(echo "scale=1; $(size "$W/cairn-as-etcd.db") / 1000000 / ${T[etcdfmt_save]}" | bc)"
echo "etcd's file ($(mb "$(size "$W/etcd.snap")") MB) read by etcdctl and by cairnutl:"
for step in status restore; do
  printf '%-28s %11.2fs %11.2fs %9sx\n' "  etcd file: $step" "${T[etcd_$step]}" "${T[etcdfile_$step]}" "$(ratio "${T[etcd_$step]}" "${T[etcdfile_$step]}")"
done
printf '%-28s %12s %11.2fs\n' "  etcd file: verify" "(none)" "${T[etcdfile_verify]}"
printf '%-28s %11sMB %11sMB %9sx\n' "snapshot file size" "$(mb "$es")" "$(mb "$cs")" "$(ratio "$es" "$cs")"
printf '%-28s %11sMB %11sMB\n' "data dir before (live)" "$(mb "$(dirsize "$W/etcd")")" "$(mb "$(dirsize "$W/cairn")")"
printf '%-28s %11sMB %11sMB\n' "restored data dir" "$(mb "$(dirsize "$W/etcd-restored")")" "$(mb "$(dirsize "$W/cairn-restored")")"
echo; echo "etcd status: $(cat "$W/etcd_status.out")"; echo "cairn status: $(cat "$W/cairn_status.out")"
echo "cairnutl status of etcd's file: $(cat "$W/etcdfile_status.out")"
