#!/usr/bin/env bash
# MPI ping-pong between 2 ranks on this node (shared memory), OSU-style: latency of small
# messages and bandwidth of large ones, bare metal against the same program in containers.
# Prints the median of each and the overhead in percent.
#
# Usage: bench/mpi.sh [REPS]     (as root; REPS runs of each measurement, default 7)
# Environment:
#   LAT_ITERS=N     round trips per latency run (default 20000)
#   BW_ITERS=N      windows of 64 messages per bandwidth run (default 40)
#   BERTH_BIN=PATH  use this berth binary instead of building one
# Needs mpicc and mpirun (scripts/install-deps --all) and the Debian fixture (debootstrap).
# See bench/README.md for what is measured and the results.
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"

reps=${1:-7}
lat_iters=${LAT_ITERS:-20000}
bw_iters=${BW_ITERS:-40}
[ "$(id -u)" -eq 0 ] || die "run as root"
command -v mpicc >/dev/null || "$BERTH_REPO/scripts/install-deps" --all
build_tools
if [ -n "${BERTH_BIN:-}" ]; then berth=$BERTH_BIN; else berth=$(command -v berth); fi

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-mpi.XXXXXX")
B=("$berth" --root "$work/store")
cleanup() {
  "${B[@]}" rm -f mpibench >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
say "building the image (scripts/mpi/Dockerfile) and the bare program"
"${B[@]}" import -q "$(berth-fixtures debian)" localhost/deb >/dev/null
"${B[@]}" build -q -t localhost/mpi "$BERTH_REPO/scripts/mpi" >/dev/null
mpicc -O2 -o "$work/pingpong" "$BERTH_REPO/scripts/mpi/pingpong.c"
# Ranks that join one container (as the SPANK plugin's tasks do) share its user namespace.
"${B[@]}" run -d --hpc --name mpibench localhost/mpi sleep infinity >/dev/null

mpirun=(mpirun --allow-run-as-root --oversubscribe --bind-to core -n 2)
# berth exec passes on only what -e names: the launcher's variables, as the plugin does (those
# with spaces, the launcher's own command line, are not needed by the rank).
joined='exec "$0" --root "$1" exec $(env | grep -E "^(OMPI|PMIX|OPAL)_[A-Za-z0-9_]*=[^ ]*$" | sed "s/^/-e /") mpibench pingpong "$2" "$3" "$4"'
# mode NAME: the command line of one measurement, the program's arguments appended.
mode() {
  case $1 in
    bare) echo "${mpirun[*]} $work/pingpong" ;;
    bare-nocma) echo "${mpirun[*]} -x OMPI_MCA_btl_vader_single_copy_mechanism=none $work/pingpong" ;;
    berth) echo "${mpirun[*]} ${B[*]} run --rm --hpc localhost/mpi pingpong" ;;
    berth-host) echo "${mpirun[*]} ${B[*]} run --rm --hpc --mpi=host localhost/mpi pingpong" ;;
    joined) echo "${mpirun[*]} sh -c '$joined' $berth $work/store" ;;
  esac
}
modes=(bare berth berth-host joined bare-nocma)
tests=("lat 8 $lat_iters" "bw 1048576 $bw_iters" "bw 4194304 $bw_iters")

say "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
results="$work/results"
for r in $(seq "$reps"); do
  for t in "${tests[@]}"; do
    for m in "${modes[@]}"; do
      # "lat 8 12.345" or "bw 1048576 8123.4": the last field is the value.
      v=$(eval "$(mode "$m") $t" 2>"$work/err" | awk '$1 == "lat" || $1 == "bw" {print $3}') || true
      [ -n "$v" ] || die "$m $t printed no result: $(tail -5 "$work/err")"
      echo "$m ${t% *} $v" >> "$results"
    done
  done
  printf '.' >&2
done
echo >&2

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
printf '%-12s %-14s %12s %12s %10s\n' mode test median bare overhead
for t in "${tests[@]}"; do
  key=${t% *}
  base=$(awk -v k="$key" '$1 == "bare" && $2" "$3 == k {print $4}' "$results" | median)
  for m in "${modes[@]}"; do
    v=$(awk -v m="$m" -v k="$key" '$1 == m && $2" "$3 == k {print $4}' "$results" | median)
    # Overhead: more time per message, or less bandwidth, than bare metal.
    o=$(awk -v v="$v" -v b="$base" -v t="${key%% *}" \
      'BEGIN {printf "%+.1f%%", (t == "lat") ? (v - b) / b * 100 : (b - v) / b * 100}')
    unit=$([ "${key%% *}" = lat ] && echo us || echo MB/s)
    printf '%-12s %-14s %9s %s %9s %s %10s\n' "$m" "$key" "$v" "$unit" "$base" "$unit" "$o"
  done
done
say "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
