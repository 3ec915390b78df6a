#!/usr/bin/env bash
# Cold-pull benchmark: Berth vs skopeo+umoci vs podman, on a Debian bookworm minbase image
# served by a private local registry. Every timed run starts from an empty store.
#
# Usage: bench/pull.sh [RUNS]         (RUNS defaults to 10; see bench/README.md)
# Environment:
#   BENCH_SEED=berth|skopeo  who pushes the image first (default berth: import + push)
#   BENCH_OUT=DIR            where results go (default bench/results)
#   PODMAN_DRIVER=NAME       podman storage driver (default overlay)
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"

runs=${1:-10}
seed=${BENCH_SEED:-berth}
out=${BENCH_OUT:-$BERTH_REPO/bench/results}
driver=${PODMAN_DRIVER:-overlay}

command -v hyperfine >/dev/null || "$BERTH_REPO/scripts/install-deps"
build_tools

say "preparing the Debian minbase rootfs (debootstrap, cached after the first time)"
debian_tar=$(berth-fixtures debian) || die "no Debian rootfs (needs root, debootstrap and the Debian mirror)"

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench.XXXXXX")
cleanup() {
  stop_registry
  rm -rf "$work"
}
trap cleanup EXIT

start_registry "$work/registry"
ref="127.0.0.1:$REGISTRY_PORT/bench/debian:bookworm"

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
rm -rf "$work/seed" "$work/seed-oci"

rootless=()
[ "$(id -u)" -eq 0 ] || rootless=(--rootless)

# Each run gets an empty directory: no layer, blob or metadata cache survives between runs.
r="$work/run"
mkdir -p "$out"
stamp=$(date +%Y%m%d-%H%M%S)
json="$out/pull-$stamp.json"

hyperfine --runs "$runs" --warmup 1 \
  --prepare "rm -rf '$r' && mkdir -p '$r'" \
  --export-json "$json" --export-markdown "$out/pull-$stamp.md" \
  -n berth "berth --root '$r/berth' pull -q --tls-verify=false '$ref'" \
  -n skopeo+umoci "skopeo copy -q --src-tls-verify=false 'docker://$ref' 'oci:$r/oci:bench' && umoci unpack ${rootless[*]} --image '$r/oci:bench' '$r/bundle'" \
  -n podman "podman --root '$r/storage' --runroot '$r/runroot' --storage-driver $driver pull -q --tls-verify=false '$ref'"

say "medians (seconds) and berth/peer ratios; raw data: $json"
jq -r '
  (.results | map({key: .command, value: .median}) | from_entries) as $m
  | .results[]
  | [.command, (.median * 1000 | round / 1000),
     (if .command == "berth" then "-" else ($m.berth / .median * 100 | round / 100) end)]
  | @tsv' "$json" \
  | { printf 'tool\tmedian_s\tberth/peer\n'; cat; } | column -t -s $'\t'

# ------------------------------------------------------------------ the other pull goals
# One more pull into a kept store, then: the decompression floor (gzip -dc of the same
# compressed layers, to /dev/null), a pull of the image already present, and the peak memory
# (maximum resident set size) of a cold pull.
keep="$work/keep"
berth --root "$keep" pull -q --tls-verify=false "$ref" >/dev/null
manifest=$(berth --root "$keep" image inspect "$ref" | jq -r '.[0].RepoDigests[0]' | sed 's/.*@sha256://')
layers=()
while read -r d; do layers+=("$keep/blobs/sha256/${d#sha256:}"); done < <(
  jq -r '.layers[].digest' "$keep/blobs/sha256/$manifest")
json2="$out/pull-floor-$stamp.json"
hyperfine --runs "$runs" --warmup 1 --export-json "$json2" \
  --prepare "rm -rf '$r' && mkdir -p '$r'" \
  -n "berth pull (cold)" "berth --root '$r/berth' pull -q --tls-verify=false '$ref'" \
  -n "gzip -dc floor" "cat ${layers[*]} | gzip -dc > /dev/null" \
  -n "berth pull (present)" "berth --root '$keep' pull -q --tls-verify=false '$ref'" >/dev/null
rm -rf "$r" && mkdir -p "$r"
/usr/bin/time -f '%M' -o "$work/rss" berth --root "$r/berth" pull -q --tls-verify=false "$ref" >/dev/null
say "cold pull vs the decompression floor, pull of a present image (medians, ms); raw data: $json2"
jq -r '.results[] | [.command, (.median * 1000 | round)] | @tsv' "$json2" | column -t -s $'\t'
jq -r '(.results[0].median / .results[1].median * 100 | round / 100)
  | "cold pull / gzip -dc floor: \(.)"' "$json2"
echo "peak memory of a cold pull (maximum resident set size): $(( $(cat "$work/rss") / 1024 )) MB"
