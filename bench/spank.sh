#!/usr/bin/env bash
# Per-task cost of running a step's tasks in a container through the SPANK plugin, on a
# throw-away one-node Slurm cluster: `srun -n N true` against
# `srun -n N --container-image=IMG true`, and both again with one task, so that what is paid once
# per step (srun itself; the container's creation and removal on the node) falls out:
#
#   per task = ((container, N tasks) - (container, 1 task) - ((bare, N) - (bare, 1))) / (N - 1)
#
# Medians of hyperfine runs, interleaved by hyperfine's order; wall time on a 2-core machine, so
# the N tasks partly overlap.
#
# Then, inside one allocation, a step that makes a new container against one that joins the
# job's named container (`--container-name`), kept from the first step on.
#
# Usage: bench/spank.sh [N] [RUNS]     (defaults 16 and 10; run as root)
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"

n=${1:-16}
runs=${2:-10}
[ "$(id -u)" -eq 0 ] || die "run as root"
[ "$n" -ge 2 ] || die "N must be at least 2"
command -v hyperfine >/dev/null || die "hyperfine not installed (scripts/install-deps)"
command -v jq >/dev/null || die "jq not installed (scripts/install-deps)"
build_tools
(cd "$BERTH_REPO" && cargo build --release --quiet -p berth-spank)

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-spank-bench.XXXXXX")
chmod 755 "$work"
state=$work/slurm
cleanup() {
  "$BERTH_REPO/scripts/slurm/stop-cluster" --state "$state" --purge >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
# The plugin and the binary where slurmstepd can read them.
mkdir -p "$work/spank"
cp "$CARGO_TARGET_DIR/release/libberth_spank.so" "$(command -v berth)" "$work/spank/"
echo "required $work/spank/libberth_spank.so berth=$work/spank/berth" >"$work/plugstack.conf"
eval "$("$BERTH_REPO/scripts/slurm/start-cluster" --state "$state" --no-netns --cpus "$n" \
  --plugstack "$work/plugstack.conf")"
export BERTH_ROOT=$work/store
berth import -q "$(berth-fixtures busybox)" localhost/tiny >/dev/null

mkdir -p "$BERTH_REPO/bench/results"
stamp=$(date -u +%Y%m%d-%H%M%S)
json="$BERTH_REPO/bench/results/spank-$stamp.json"
say "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
img=--container-image=localhost/tiny
hyperfine -N --warmup 2 --runs "$runs" --export-json "$json" \
  "srun -N1 -n1 true" "srun -N1 -n$n true" \
  "srun -N1 -n1 $img true" "srun -N1 -n$n $img true" >&2
# Steps of one allocation: a new container per step, against steps that join the job's named
# container (kept from the first step on, removed by the job's epilog).
json2="$BERTH_REPO/bench/results/spank-named-$stamp.json"
salloc -N1 -Q hyperfine -N --warmup 2 --runs "$runs" --export-json "$json2" \
  "srun -n1 true" "srun -n1 $img true" "srun -n1 $img --container-name=kept true" >&2
say "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

median() { jq -r --arg c "$1" '.results[] | select(.command == $c) | .median * 1000' "$json"; }
b1=$(median "srun -N1 -n1 true")
bn=$(median "srun -N1 -n$n true")
c1=$(median "srun -N1 -n1 $img true")
cn=$(median "srun -N1 -n$n $img true")
printf '\n| tasks | bare srun (ms) | with --container-image (ms) |\n|---|---|---|\n'
printf '| 1 | %.1f | %.1f |\n| %d | %.1f | %.1f |\n' "$b1" "$c1" "$n" "$bn" "$cn"
awk -v b1="$b1" -v bn="$bn" -v c1="$c1" -v cn="$cn" -v n="$n" 'BEGIN {
  printf "\ncontainer per step (creation and removal): %.1f ms\n", c1 - b1
  printf "container per task after the first: %.2f ms (goal: under 10 ms)\n", (cn - c1 - (bn - b1)) / (n - 1)
}'
median2() { jq -r --arg c "$1" '.results[] | select(.command == $c) | .median * 1000' "$json2"; }
s0=$(median2 "srun -n1 true")
s1=$(median2 "srun -n1 $img true")
s2=$(median2 "srun -n1 $img --container-name=kept true")
awk -v s0="$s0" -v s1="$s1" -v s2="$s2" 'BEGIN {
  printf "steps of one allocation: bare %.1f ms, new container %.1f ms (+%.1f), joining the named one %.1f ms (+%.1f)\n", s0, s1, s1 - s0, s2, s2 - s0
}'
echo "hyperfine JSON: $json $json2"
