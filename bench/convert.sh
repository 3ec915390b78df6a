#!/usr/bin/env bash
# Single-file image benchmark, on the Debian bookworm minbase image:
#   1. berth convert (image in the store) vs mksquashfs of the unpacked tree, same compressor;
#   2. registry to squashfs, cold: berth convert (pulls) vs skopeo copy + umoci unpack + mksquashfs;
#   3. starting `true` from the .sqsh vs from the store image.
#
# Usage: bench/convert.sh [RUNS]       (RUNS defaults to 3; see bench/README.md)
# Environment: COMPRESSORS="zstd gzip lz4" (default), BENCH_OUT=DIR (default bench/results)
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"

runs=${1:-3}
out=${BENCH_OUT:-$BERTH_REPO/bench/results}
read -r -a comps <<< "${COMPRESSORS:-zstd gzip lz4}"
[ "$(id -u)" -eq 0 ] || die "run as root (umoci unpack and the loop mount of run FILE.sqsh)"

command -v hyperfine >/dev/null || "$BERTH_REPO/scripts/install-deps"
build_tools
debian_tar=$(berth-fixtures debian) || die "no Debian rootfs (needs debootstrap and the Debian mirror)"

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-convert.XXXXXX")
cleanup() { stop_registry; rm -rf "$work"; }
trap cleanup EXIT

start_registry "$work/registry"
ref="127.0.0.1:$REGISTRY_PORT/bench/debian:bookworm"
berth --root "$work/seed" import "$debian_tar" "$ref" >/dev/null
berth --root "$work/seed" push --tls-verify=false "$ref" >/dev/null
rm -rf "$work/seed"

# The image in a store, and the same tree unpacked by umoci, for the like-for-like comparisons.
berth --root "$work/store" pull -q --tls-verify=false "$ref" >/dev/null
skopeo copy -q --src-tls-verify=false "docker://$ref" "oci:$work/oci:bench"
umoci unpack --image "$work/oci:bench" "$work/bundle" >/dev/null

mkdir -p "$out"
stamp=$(date +%Y%m%d-%H%M%S)
say "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
r="$work/run"
cmds=()
for c in "${comps[@]}"; do
  cmds+=(-n "berth convert ($c)" "berth --root '$work/store' convert -q --compression $c '$ref' '$r/b-$c.sqsh'")
  cmds+=(-n "mksquashfs dir ($c)" "mksquashfs '$work/bundle/rootfs' '$r/m-$c.sqsh' -noappend -quiet -no-progress -comp $c")
done
c=${comps[0]}
cmds+=(-n "registry->sqsh berth ($c)" "berth --root '$r/s' convert -q --tls-verify=false --compression $c '$ref' '$r/e.sqsh'")
cmds+=(-n "registry->sqsh skopeo+umoci+mksquashfs ($c)" "skopeo copy -q --src-tls-verify=false 'docker://$ref' 'oci:$r/oci:bench' && umoci unpack --image '$r/oci:bench' '$r/bundle' >/dev/null && mksquashfs '$r/bundle/rootfs' '$r/e2.sqsh' -noappend -quiet -no-progress -comp $c")
json="$out/convert-$stamp.json"
hyperfine --runs "$runs" --warmup 0 --prepare "rm -rf '$r' && mkdir -p '$r'" \
  --export-json "$json" "${cmds[@]}" >/dev/null

berth --root "$work/store" convert -q --compression "$c" "$ref" "$work/img.sqsh" >/dev/null
berth --root "$work/store" convert -q --compression lz4 "$ref" "$work/img-lz4.sqsh" >/dev/null
json2="$out/convert-start-$stamp.json"
hyperfine -N --runs 30 --warmup 3 --export-json "$json2" \
  -n "run true from .sqsh" "berth --root $work/store run --rm $work/img.sqsh true" \
  -n "run true from .sqsh (lz4)" "berth --root $work/store run --rm $work/img-lz4.sqsh true" \
  -n "run true from the store" "berth --root $work/store run --rm $ref true" >/dev/null
say "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

say "medians (s); raw data: $json $json2"
jq -r '.results[] | [.command, (.median * 1000 | round / 1000)] | @tsv' "$json" "$json2" \
  | column -t -s $'\t'
jq -rs --arg c "$c" '
  (.[0].results | map({key: .command, value: .median}) | from_entries) as $m
  | (.[1].results | map({key: .command, value: .median}) | from_entries) as $s
  | (.[0].results | map(.command | capture("berth convert \\((?<c>.*)\\)") | .c)) as $cs
  | ($cs[] | "berth convert / mksquashfs dir (\(.)): \($m["berth convert (\(.))"] / $m["mksquashfs dir (\(.))"] * 100 | round / 100)"),
    "registry->sqsh, skopeo+umoci+mksquashfs / berth (\($c)): \($m["registry->sqsh skopeo+umoci+mksquashfs (\($c))"] / $m["registry->sqsh berth (\($c))"] * 100 | round / 100)x",
    "start from .sqsh (\($c)) / from the store: \($s["run true from .sqsh"] / $s["run true from the store"] * 100 | round / 100)",
    "start from .sqsh (lz4) / from the store: \($s["run true from .sqsh (lz4)"] / $s["run true from the store"] * 100 | round / 100)"
' "$json" "$json2"
