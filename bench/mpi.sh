#!/usr/bin/env bash
# MPI ping-pong between 2 ranks on this node (shared memory), OSU-style: latency of small
# messages and bandwidth of large ones, bare metal against the same program in containers.
# Prints the median and the best of each and the overhead against bare metal in percent.
#
# Usage: bench/mpi.sh [REPS]     (as root; REPS runs of each measurement, default 11)
# Environment:
#   LAT_ITERS=N     round trips per latency run (default 100000)
#   BW_ITERS=N      windows of 64 messages per bandwidth run (default 40)
#   BERTH_BIN=PATH  use this berth binary instead of building one
# Needs mpicc and mpirun (scripts/install-deps --all) and the Debian fixture (debootstrap).
# See bench/README.md for what is measured and the results.
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"

reps=${1:-11}
lat_iters=${LAT_ITERS:-100000}
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
# The best run: least time per message, most bandwidth (what a quiet machine would show).
best() { if [ "$1" = lat ]; then sort -g | head -1; else sort -g | tail -1; fi; }
# Overhead: more time per message, or less bandwidth, than bare metal.
overhead() {
  awk -v v="$1" -v b="$2" -v t="$3" 'BEGIN {printf "%+.1f%%", (t == "lat") ? (v - b) / b * 100 : (b - v) / b * 100}'
}
printf '%-11s %-13s %11s %11s %9s %11s %11s %9s\n' \
  mode test median bare overhead best bare-best overhead
for t in "${tests[@]}"; do
  key=${t% *} kind=${t%% *}
  values() { awk -v m="$1" -v k="$key" '$1 == m && $2" "$3 == k {print $4}' "$results"; }
  bmed=$(values bare | median) bbest=$(values bare | best "$kind")
  for m in "${modes[@]}"; do
    med=$(values "$m" | median) top=$(values "$m" | best "$kind")
    printf '%-11s %-13s %11s %11s %9s %11s %11s %9s\n' "$m" "$key" "$med" "$bmed" \
      "$(overhead "$med" "$bmed" "$kind")" "$top" "$bbest" "$(overhead "$top" "$bbest" "$kind")"
  done
done
echo "(lat: one-way microseconds; bw: MB/s; modes in bench/README.md)"
say "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
