#!/usr/bin/env bash
# Build benchmark: `berth build` vs `buildah bud` vs `podman build` (and `docker build` when a
# Docker daemon answers), cold and cached, on the reference Dockerfile: a Debian base from a
# local registry, a RUN writing 2,000 small files, a COPY of a 50 MB file, ENV, LABEL,
# ENTRYPOINT and CMD.
#
# Usage: bench/build.sh [RUNS]    (as root; RUNS timed runs per command and mode, default 6)
# Environment:
#   ROUNDS=N        split the RUNS into N rounds (default 3), cold and cached alternating, so that
#                   the noise of a shared machine is spread over all tools; times are pooled
#   BERTH_BIN=PATH  use this berth binary instead of building one (then BERTH_FIXTURES_TAR=PATH
#                   can name the Debian rootfs tar, otherwise berth-fixtures must be on PATH)
#   BENCH_OUT=DIR   where results go (default bench/results)
# "cold": the base image is already in each tool's store, the build cache is not used
# (--no-cache). "cached": the same build again, every step from the cache. See bench/README.md.
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"

runs=${1:-6}
rounds=${ROUNDS:-3}
out=${BENCH_OUT:-$BERTH_REPO/bench/results}
[ "$(id -u)" -eq 0 ] || die "run as root (buildah and podman use their root storage drivers)"
[ "$rounds" -ge 1 ] && [ "$runs" -ge "$rounds" ] || die "need RUNS >= ROUNDS >= 1"
per_round=$(( (runs + rounds - 1) / rounds ))
command -v hyperfine >/dev/null && command -v jq >/dev/null || "$BERTH_REPO/scripts/install-deps"

if [ -n "${BERTH_BIN:-}" ]; then
  berth=$BERTH_BIN
  debian_tar=${BERTH_FIXTURES_TAR:-$(berth-fixtures debian)}
else
  build_tools
  berth=$(command -v berth)
  say "preparing the Debian minbase rootfs (debootstrap, cached after the first time)"
  debian_tar=$(berth-fixtures debian) || die "no Debian rootfs (needs debootstrap and the mirror)"
fi
[ -f "$debian_tar" ] || die "no Debian rootfs tar"
export LC_ALL=C.UTF-8

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-buildbench.XXXXXX")
cleanup() {
  stop_registry
  rm -rf "$work"
}
trap cleanup EXIT

start_registry "$work/registry"
ref="127.0.0.1:$REGISTRY_PORT/bench/debian:bookworm"
say "pushing $ref"
"$berth" --root "$work/seed" import "$debian_tar" "$ref" >/dev/null
"$berth" --root "$work/seed" push --tls-verify=false "$ref" >/dev/null
rm -rf "$work/seed"

ctx="$work/ctx"
mkdir -p "$ctx"
head -c 50M /dev/urandom > "$ctx/big.bin"
cat > "$ctx/Dockerfile" <<EOF
FROM $ref
ENV APP=/opt/app LANG=C.UTF-8
LABEL org.example.bench=build org.example.files=2000
RUN mkdir -p /opt/app/files && cd /opt/app/files && for i in \$(seq 2000); do echo "file \$i" > f\$i; done
COPY big.bin /opt/app/big.bin
WORKDIR /opt/app
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["ls /opt/app"]
EOF

# podman and buildah on this kind of host: no systemd (cgroupfs, file events), runc (crun
# refuses hybrid cgroups), rlimits no higher than the current hard limits.
cat > "$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
EOF
export CONTAINERS_CONF="$work/containers.conf"

# name|pull command|cold build|cached build; a peer whose pull or probe build fails is skipped.
B="$berth --root $work/berth"
BA="buildah --root $work/buildah/root --runroot $work/buildah/run --storage-driver overlay"
P="podman --root $work/podman/root --runroot $work/podman/run --storage-driver overlay"
tools=(
  "berth|$B pull -q --tls-verify=false $ref|$B build -q --no-cache --tls-verify=false -t bench:cold $ctx|$B build -q --tls-verify=false -t bench:cached $ctx"
  "buildah bud|$BA pull -q --tls-verify=false $ref|$BA bud -q --layers --no-cache --tls-verify=false -t bench:cold $ctx|$BA bud -q --layers --tls-verify=false -t bench:cached $ctx"
  "podman build|$P pull -q --tls-verify=false $ref|$P build -q --no-cache --tls-verify=false -t bench:cold $ctx|$P build -q --tls-verify=false -t bench:cached $ctx"
)
if docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; then
  tools+=("docker build|docker pull -q $ref|docker build -q --no-cache -t bench:cold $ctx|docker build -q -t bench:cached $ctx")
else
  say "skipping docker build: no Docker daemon answers"
fi

cold=(); cached=()
for t in "${tools[@]}"; do
  IFS='|' read -r name pull c w <<< "$t"
  tool=${pull%% *}
  if ! command -v "$tool" >/dev/null; then
    say "skipping $name: $tool is not installed"
    continue
  fi
  # shellcheck disable=SC2086  # the commands are word lists without quoting needs
  if ! $pull >/dev/null 2>"$work/probe.err" || ! $w >/dev/null 2>>"$work/probe.err"; then
    say "skipping $name: $(tail -1 "$work/probe.err")"
    continue
  fi
  cold+=(-n "$name" "$c")
  cached+=(-n "$name" "$w")
done
[ "${#cold[@]}" -gt 0 ] || die "nothing to measure"

mkdir -p "$out"
stamp=$(date +%Y%m%d-%H%M%S)
load0=$(cut -d' ' -f1-3 /proc/loadavg); date0=$(date -u +%FT%TZ)
# Rounds alternate the modes and, within each, hyperfine runs the tools one after the other:
# the load swings of a shared machine are spread over every tool. Times are pooled.
# Each run starts after a `sync`: Berth makes its layers durable with syncfs, which would
# otherwise also write back what the previous tool left dirty (buildah and podman do not sync).
for r in $(seq "$rounds"); do
  say "round $r of $rounds: cold builds ($per_round runs each)"
  hyperfine --runs "$per_round" --warmup 1 --prepare sync \
    --export-json "$work/cold-$r.json" "${cold[@]}"
  say "round $r of $rounds: cached builds ($per_round runs each)"
  hyperfine --runs "$per_round" --warmup 1 --prepare sync \
    --export-json "$work/cached-$r.json" "${cached[@]}"
done
load1=$(cut -d' ' -f1-3 /proc/loadavg); date1=$(date -u +%FT%TZ)
pool() { # MODE: every round's times per tool, and their median
  jq -s '{results: (map(.results[]) | group_by(.command)
    | map({command: .[0].command, times: (map(.times) | add | sort)})
    | map(. + {median: (.times | if length % 2 == 1 then .[length / 2 | floor]
                                   else (.[length / 2 - 1] + .[length / 2]) / 2 end)}))}' \
    "$work/$1"-*.json > "$work/$1.json"
  cp "$work/$1.json" "$out/build-$1-$stamp.json"
}
pool cold
pool cached

table() { # MODE JSON
  jq -r --arg mode "$1" '
    (.results | map({key: .command, value: .median}) | from_entries) as $m
    | .results[]
    | [$mode, .command, (.median * 1000 | round / 1000),
       (if .command == "berth" or $m.berth == null then "-"
        else ($m.berth / .median * 1000 | round / 1000) end)]
    | @tsv' "$2"
}
{
  echo "start $date0, load average $load0; end $date1, load average $load1;" \
    "$((per_round * rounds)) runs per tool and mode in $rounds rounds"
  echo
  echo "| mode | tool | median (s) | berth / tool |"
  echo "|---|---|---|---|"
  { table cold "$work/cold.json"; table cached "$work/cached.json"; } \
    | awk -F'\t' '{ printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4 }'
} | tee "$out/build-$stamp.md"
