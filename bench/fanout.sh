#!/usr/bin/env bash
# Fan-out: N containers started on this node from one single-file image, P at a time, as a
# batch job's tasks would; then the same from the store image. Prints wall times and failures,
# and exits non-zero when any start failed or left files behind.
#
# Usage: bench/fanout.sh [N] [P]     (defaults 1000 and 100; run as root)
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"

n=${1:-1000}
par=${2:-100}
[ "$(id -u)" -eq 0 ] || die "run as root"
build_tools
work=$(mktemp -d "${TMPDIR:-/tmp}/berth-fanout.XXXXXX")
trap 'rm -rf "$work"' EXIT
B="berth --root $work/store"
$B import -q "$(berth-fixtures busybox)" localhost/tiny >/dev/null
$B convert -q localhost/tiny "$work/tiny.sqsh" >/dev/null

say "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
failed=0
for img in "$work/tiny.sqsh" localhost/tiny; do
  start=$(date +%s.%N)
  fails=$(seq "$n" | xargs -P "$par" -I{} sh -c "$B run --rm --network host $img true || echo FAIL" | grep -c FAIL || true)
  end=$(date +%s.%N)
  printf '%-40s %5d containers, %3d at a time: %6.2f s, %d failed\n' \
    "$img" "$n" "$par" "$(awk -v a="$start" -v b="$end" 'BEGIN{print b-a}')" "$fails"
  failed=$((failed + fails))
done
# run --rm returns before a detached process has deleted the container's files: give those 10 s.
for _ in $(seq 100); do
  left=$(ls "$work/store/tmp" | wc -l)
  [ "$left" -eq 0 ] && break
  sleep 0.1
done
say "load average at end: $(cut -d' ' -f1-3 /proc/loadavg); leftovers in the store's tmp: $left"
# A failed start or anything left behind fails the run, so the script can stand as a check.
[ "$failed" -eq 0 ] && [ "$left" -eq 0 ] || die "$failed containers failed, $left leftovers"
