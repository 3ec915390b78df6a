#!/usr/bin/env bash
# Cold-pull benchmark: Berth vs skopeo+umoci vs podman, on a Debian bookworm minbase image and
# on a ~1 GB multi-layer image, served by a private local registry. Every timed run pulls into
# a directory of its own that did not exist before.
#
# Usage: bench/pull.sh [RUNS] [BIG_RUNS]   (defaults 10 and 3; see bench/README.md)
# Environment:
#   BENCH_SEED=berth|skopeo  who pushes the Debian image first (default berth: import + push)
#   BENCH_OUT=DIR            where results go (default bench/results)
#   PODMAN_DRIVER=NAME       podman storage driver (default overlay)
#   BIG=0                    skip the ~1 GB image
#   DELETE_BETWEEN=1         delete each run's directory before the next (the old method; see
#                            bench/README.md for what that measures on a file system without
#                            a journal)
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"

runs=${1:-10}
big_runs=${2:-3}
seed=${BENCH_SEED:-berth}
out=${BENCH_OUT:-$BERTH_REPO/bench/results}
driver=${PODMAN_DRIVER:-overlay}

command -v hyperfine >/dev/null || "$BERTH_REPO/scripts/install-deps"
build_tools

say "preparing the Debian minbase rootfs (debootstrap, cached after the first time)"
debian_tar=$(berth-fixtures debian) || die "no Debian rootfs (needs root, debootstrap and the Debian mirror)"
big_layers=
if [ "${BIG:-1}" != 0 ]; then
  say "preparing the ~1 GB image's layers (generated, cached after the first time)"
  big_layers=$(berth-fixtures big)
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench.XXXXXX")
cleanup() {
  stop_registry
  # podman can leave its storage's overlay mount behind when a pull fails.
  findmnt -rn -o TARGET | grep "^$work/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

start_registry "$work/registry"
ref="127.0.0.1:$REGISTRY_PORT/bench/debian:bookworm"
big_ref="127.0.0.1:$REGISTRY_PORT/bench/big:latest"

say "pushing $ref (seeded with $seed)"
case "$seed" in
  berth)
    berth --root "$work/seed" import "$debian_tar" "$ref" >/dev/null
    berth --root "$work/seed" push --tls-verify=false "$ref" >/dev/null
    ;;
  skopeo)
    umoci init --layout "$work/seed-oci"
    umoci new --image "$work/seed-oci:bench"
    umoci raw add-layer --image "$work/seed-oci:bench" "$debian_tar"
    umoci config --image "$work/seed-oci:bench" --config.cmd /bin/bash
    skopeo copy -q --dest-tls-verify=false "oci:$work/seed-oci:bench" "docker://$ref"
    ;;
  *) die "BENCH_SEED must be berth or skopeo" ;;
esac
if [ -n "$big_layers" ]; then
  say "building and pushing $big_ref (the Debian image and one layer per generated tar)"
  mkdir -p "$work/big-context"
  {
    echo "FROM $ref"
    for t in "$big_layers"/*.tar; do
      ln "$t" "$work/big-context/" 2>/dev/null || cp "$t" "$work/big-context/"
      echo "ADD $(basename "$t") /"
    done
  } > "$work/big-context/Dockerfile"
  berth --root "$work/seed" build -q --tls-verify=false -t "$big_ref" "$work/big-context" >/dev/null
  berth --root "$work/seed" push -q --tls-verify=false "$big_ref" >/dev/null
fi

rootless=()
[ "$(id -u)" -eq 0 ] || rootless=(--rootless)

# Each run gets a directory that did not exist before, and nothing is deleted until the end.
# On ext4 without a journal (this project's development VM), deleting ~10,000 files makes
# every file created in the next minutes skip the freed inodes one by one (the kernel's
# recently_deleted() check): a run that follows a delete pays for it, and the cost, the same
# for every tool, swamps what the tools themselves do. DELETE_BETWEEN=1 measures that way.
r="$work/run"
mkdir -p "$r" "$out"
if [ "${DELETE_BETWEEN:-0}" = 1 ]; then
  prepare="rm -rf '$r/cur' && mkdir -p '$r/cur' && echo '$r/cur' > '$work/cur'"
else
  prepare="mktemp -d '$r/XXXXXX' > '$work/cur'"
fi
stamp=$(date +%Y%m%d-%H%M%S)
say "start $(date -u +%H:%M:%S) UTC, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# compare NAME REF RUNS: the three tools, then the floor, a present-image pull and peak memory.
compare() {
  local name=$1 img=$2 n=$3
  local json="$out/pull-$name-$stamp.json" d='$(cat '"$work/cur"')'
  hyperfine --runs "$n" --warmup 1 --prepare "$prepare" \
    --export-json "$json" --export-markdown "$out/pull-$name-$stamp.md" \
    -n berth "berth --root \"$d/berth\" pull -q --tls-verify=false '$img'" \
    -n skopeo+umoci "skopeo copy -q --src-tls-verify=false 'docker://$img' \"oci:$d/oci:bench\" && umoci unpack ${rootless[*]} --image \"$d/oci:bench\" \"$d/bundle\"" \
    -n podman "podman --root \"$d/storage\" --runroot \"$d/runroot\" --storage-driver $driver pull -q --tls-verify=false '$img'"
  say "$name: medians (seconds) and berth/peer ratios; raw data: $json"
  jq -r '
    (.results | map({key: .command, value: .median}) | from_entries) as $m
    | .results[]
    | [.command, (.median * 1000 | round / 1000),
       (if .command == "berth" then "-" else ($m.berth / .median * 100 | round / 100) end),
       (if .command == "berth" then "-" else (.median / $m.berth * 100 | round / 100 | tostring) + "x" end)]
    | @tsv' "$json" \
    | { printf 'tool\tmedian_s\tberth/peer\tberth faster by\n'; cat; } | column -t -s $'\t'

  # The decompression floor (gzip -dc of the same compressed layers, to /dev/null), a pull of
  # the image already present, and the peak memory (maximum resident set size) of a cold pull.
  local keep="$work/keep-$name" manifest layers=() json2="$out/pull-$name-floor-$stamp.json"
  berth --root "$keep" pull -q --tls-verify=false "$img" >/dev/null
  manifest=$(berth --root "$keep" image inspect "$img" | jq -r '.[0].RepoDigests[0]' | sed 's/.*@sha256://')
  while read -r l; do layers+=("$keep/blobs/sha256/${l#sha256:}"); done < <(
    jq -r '.layers[].digest' "$keep/blobs/sha256/$manifest")
  hyperfine --runs "$n" --warmup 1 --export-json "$json2" --prepare "$prepare" \
    -n "berth pull (cold)" "berth --root \"$d/berth\" pull -q --tls-verify=false '$img'" \
    -n "gzip -dc floor" "cat ${layers[*]} | gzip -dc > /dev/null" \
    -n "berth pull (present)" "berth --root '$keep' pull -q --tls-verify=false '$img'" >/dev/null
  eval "$prepare"
  /usr/bin/time -f '%M' -o "$work/rss" berth --root "$(cat "$work/cur")/berth" pull -q --tls-verify=false "$img" >/dev/null
  say "$name: cold pull vs the decompression floor, pull of a present image (medians, ms); raw data: $json2"
  jq -r '.results[] | [.command, (.median * 1000 | round)] | @tsv' "$json2" | column -t -s $'\t'
  jq -r '(.results[0].median / .results[1].median * 100 | round / 100)
    | "cold pull / gzip -dc floor: \(.)"' "$json2"
  echo "peak memory of a cold pull (maximum resident set size): $(( $(cat "$work/rss") / 1024 )) MB"
}

compare debian "$ref" "$runs"
[ -z "$big_layers" ] || compare big "$big_ref" "$big_runs"
say "end $(date -u +%H:%M:%S) UTC, load average $(cut -d' ' -f1-3 /proc/loadavg)"
