#!/usr/bin/env bash
# Single-file image benchmark, on the Debian bookworm minbase image:
#   1. berth convert (image in the store) vs mksquashfs of the unpacked tree, same compressor;
#   2. registry to squashfs, cold: berth convert (pulls) vs skopeo copy + umoci unpack + mksquashfs;
#   3. starting `true` from the .sqsh (kernel mount, and FUSE) vs from the store image.
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
cleanup() {
  stop_registry
  findmnt -rn -o TARGET | grep "^$work/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

start_registry "$work/registry"
ref="127.0.0.1:$REGISTRY_PORT/bench/debian:bookworm"
berth --root "$work/seed" import "$debian_tar" "$ref" >/dev/null
berth --root "$work/seed" push --tls-verify=false "$ref" >/dev/null

# The image in a store, and the same tree unpacked by umoci, for the like-for-like comparisons.
berth --root "$work/store" pull -q --tls-verify=false "$ref" >/dev/null
skopeo copy -q --src-tls-verify=false "docker://$ref" "oci:$work/oci:bench"
umoci unpack --image "$work/oci:bench" "$work/bundle" >/dev/null

mkdir -p "$out"
stamp=$(date +%Y%m%d-%H%M%S)
say "start $(date -u +%H:%M:%S) UTC, load average $(cut -d' ' -f1-3 /proc/loadavg)"
# Every run writes into a directory that did not exist before; nothing is deleted until the end
# (see "Why nothing is deleted between runs" in bench/README.md).
r="$work/run"
mkdir -p "$r"
prepare="mktemp -d '$r/XXXXXX' > '$work/cur'"
d='$(cat '"$work/cur"')'
# Berth's default level for each compressor, given to mksquashfs too, so each pair writes the
# same kind of file; zstd is also timed at mksquashfs's own default (15).
level() { case "$1" in zstd) echo "-Xcompression-level 3" ;; gzip) echo "-Xcompression-level 9" ;; *) ;; esac; }
cmds=()
for c in "${comps[@]}"; do
  cmds+=(-n "berth convert ($c)" "berth --root '$work/store' convert -q --compression $c '$ref' \"$d/b.sqsh\"")
  cmds+=(-n "mksquashfs dir ($c)" "mksquashfs '$work/bundle/rootfs' \"$d/m.sqsh\" -noappend -quiet -no-progress -comp $c $(level "$c")")
done
c=${comps[0]}
[ "$c" != zstd ] || cmds+=(-n "mksquashfs dir (zstd, level 15)" "mksquashfs '$work/bundle/rootfs' \"$d/m.sqsh\" -noappend -quiet -no-progress -comp zstd")
peer="skopeo copy -q --src-tls-verify=false 'docker://$ref' \"oci:$d/oci:bench\" && umoci unpack --image \"$d/oci:bench\" \"$d/bundle\" >/dev/null && mksquashfs \"$d/bundle/rootfs\" \"$d/e2.sqsh\" -noappend -quiet -no-progress -comp $c"
cmds+=(-n "registry->sqsh berth ($c)" "berth --root \"$d/s\" convert -q --tls-verify=false --compression $c '$ref' \"$d/e.sqsh\"")
cmds+=(-n "registry->sqsh skopeo+umoci+mksquashfs ($c)" "$peer $(level "$c")")
[ "$c" != zstd ] || cmds+=(-n "registry->sqsh skopeo+umoci+mksquashfs (zstd, level 15)" "$peer")
json="$out/convert-$stamp.json"
hyperfine --runs "$runs" --warmup 0 --prepare "$prepare" \
  --export-json "$json" "${cmds[@]}" >/dev/null

berth --root "$work/store" convert -q --compression "$c" "$ref" "$work/img.sqsh" >/dev/null
berth --root "$work/store" convert -q --compression lz4 "$ref" "$work/img-lz4.sqsh" >/dev/null
printf 'squashfs_mount = "fuse"\n' > "$work/fuse.toml"
json2="$out/convert-start-$stamp.json"
fuse=()
if command -v squashfuse_ll >/dev/null; then
  fuse=(-n "run true from .sqsh (FUSE)" "berth --config $work/fuse.toml --root $work/store run --rm $work/img.sqsh true")
fi
hyperfine -N --runs 30 --warmup 3 --export-json "$json2" \
  -n "run true from .sqsh" "berth --root $work/store run --rm $work/img.sqsh true" \
  -n "run true from .sqsh (lz4)" "berth --root $work/store run --rm $work/img-lz4.sqsh true" \
  "${fuse[@]}" \
  -n "run true from the store" "berth --root $work/store run --rm $ref true" >/dev/null
say "end $(date -u +%H:%M:%S) UTC, load average $(cut -d' ' -f1-3 /proc/loadavg)"

say "medians (s); raw data: $json $json2"
jq -r '.results[] | [.command, (.median * 1000 | round / 1000)] | @tsv' "$json" "$json2" \
  | column -t -s $'\t'
jq -rs --arg c "$c" '
  (.[0].results | map({key: .command, value: .median}) | from_entries) as $m
  | (.[1].results | map({key: .command, value: .median}) | from_entries) as $s
  | (.[0].results | map(.command | capture("berth convert \\((?<c>.*)\\)") | .c)) as $cs
  | ($cs[] | "berth convert / mksquashfs dir (\(.), same level): \($m["berth convert (\(.))"] / $m["mksquashfs dir (\(.))"] * 100 | round / 100)"),
    (if $m["mksquashfs dir (zstd, level 15)"] then "berth convert (zstd, default) / mksquashfs dir (zstd, its default 15): \($m["berth convert (zstd)"] / $m["mksquashfs dir (zstd, level 15)"] * 100 | round / 100)" else empty end),
    "registry->sqsh, skopeo+umoci+mksquashfs / berth (\($c), same level): \($m["registry->sqsh skopeo+umoci+mksquashfs (\($c))"] / $m["registry->sqsh berth (\($c))"] * 100 | round / 100)x",
    (if $m["registry->sqsh skopeo+umoci+mksquashfs (zstd, level 15)"] then "registry->sqsh, skopeo+umoci+mksquashfs (level 15) / berth (default): \($m["registry->sqsh skopeo+umoci+mksquashfs (zstd, level 15)"] / $m["registry->sqsh berth (zstd)"] * 100 | round / 100)x" else empty end),
    "start from .sqsh (\($c)) / from the store: \($s["run true from .sqsh"] / $s["run true from the store"] * 100 | round / 100)",
    "start from .sqsh (lz4) / from the store: \($s["run true from .sqsh (lz4)"] / $s["run true from the store"] * 100 | round / 100)",
    (if $s["run true from .sqsh (FUSE)"] then "start from .sqsh through FUSE (\($c)) / from the store: \($s["run true from .sqsh (FUSE)"] / $s["run true from the store"] * 100 | round / 100)" else empty end)
' "$json" "$json2"
ls -l "$work/img.sqsh" "$work/img-lz4.sqsh" | awk '{print "size of " $NF ": " $5}'
