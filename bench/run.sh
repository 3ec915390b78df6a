#!/usr/bin/env bash
# Container start benchmark: `berth run --rm` vs crun, Charliecloud's ch-run, podman and a bare
# unshare+chroot floor, all starting `/bin/true` in the same busybox root file system.
#
# Usage: bench/run.sh [RUNS]      (as root; RUNS timed runs per command, default 30)
# Environment:
#   ROUNDS=N        split the RUNS into N interleaved rounds (default 3): A B C … A B C …, so that
#                   the noise of a shared machine is spread over all tools; times are pooled
#   PRUNS=N         timed runs of each "100 at once" command (default 5)
#   PAIRS=N         rounds of single starts alternated one by one against ch-run (default 200;
#                   0 skips them): berth and ch-run in the same moments, paired ratios
#   ROOTLESS=0      skip the rootless part (default 1: also as user berthtest, if it exists)
#   BENCH_USER=NAME the unprivileged user for the rootless part (default berthtest)
#   BERTH_BIN=PATH  use this berth binary instead of building one (then BERTH_FIXTURES_TAR=PATH
#                   can name the busybox rootfs tar, otherwise berth-fixtures must be on PATH)
#   BENCH_OUT=DIR   where the summary goes (default bench/results)
# See bench/README.md for what is measured and the results.
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"

runs=${1:-30}
rounds=${ROUNDS:-3}
pruns=${PRUNS:-5}
pairs=${PAIRS:-200}
rootless=${ROOTLESS:-1}
buser=${BENCH_USER:-berthtest}
out=${BENCH_OUT:-$BERTH_REPO/bench/results}
[ "$(id -u)" -eq 0 ] || die "run as root (the rootless part switches to $buser itself)"
[ "$rounds" -ge 1 ] && [ "$runs" -ge "$rounds" ] || die "need RUNS >= ROUNDS >= 1"
per_round=$(( (runs + rounds - 1) / rounds ))

command -v hyperfine >/dev/null && command -v jq >/dev/null || "$BERTH_REPO/scripts/install-deps"

if [ -n "${BERTH_BIN:-}" ]; then
  berth_src=$BERTH_BIN
  tiny_tar=${BERTH_FIXTURES_TAR:-$(berth-fixtures busybox)}
else
  build_tools
  berth_src=$(command -v berth)
  tiny_tar=$(berth-fixtures busybox)
fi
[ -f "$tiny_tar" ] || die "no busybox rootfs tar"

# A plain system PATH (no pyenv/cargo shims in the way) and $USER: ch-run refuses to start
# without $USER ("$USER not set").
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export USER=${USER:-root} LC_ALL=C.UTF-8

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-runbench.XXXXXX")
chmod 755 "$work"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

# ------------------------------------------------------------------ fixtures
say "preparing fixtures in $work"
# everything the rootless user needs is readable by it (its own copy of the binary and tar)
install -m 755 "$berth_src" "$work/berth"
install -m 644 "$BERTH_REPO/bench/pairs.py" "$work/pairs.py"
install -m 644 "$tiny_tar" "$work/tiny.tar"
berth="$work/berth"
mkdir -p "$work/rootfs"
tar -C "$work/rootfs" --numeric-owner -xf "$work/tiny.tar"
rootfs="$work/rootfs"
"$berth" --root "$work/store" import "$work/tiny.tar" localhost/tiny >/dev/null

# crun bundle: config from `crun spec`, no terminal, args `true`, rootfs = the unpacked tar
mk_bundle() { # DIR [--rootless]
  mkdir -p "$1"
  (cd "$1" && crun spec ${2:+"$2"})
  jq --arg r "$rootfs" '.process.terminal=false | .process.args=["true"] | .root.path=$r' \
    "$1/config.json" > "$1/config.json.new"
  mv "$1/config.json.new" "$1/config.json"
  chmod 755 "$1"; chmod 644 "$1/config.json"
}
have_crun=0; command -v crun >/dev/null && { mk_bundle "$work/bundle"; have_crun=1; }

# The equivalent bundle: the very spec `berth run` starts the container with (user namespace and
# maps, Docker's seccomp profile, capabilities, masked paths, /etc files), from a container
# `berth create` records, with the unpacked directory as root. `crun spec`'s default above has no
# seccomp filter and (as root) no user namespace; this is what crun costs doing Berth's work, as
# Docker and podman use it.
mk_eq_bundle() { # DIR STORE [RUNAS...]
  local dir=$1 store=$2 id rec; shift 2
  id=$("$@" "$berth" --root "$store" create localhost/tiny true)
  rec="$store/containers/$id"
  mkdir -p "$dir"
  cp "$rec"/etc_* "$dir/"
  jq --arg r "$rootfs" --arg b "$dir" '.Spec | .root.path=$r | .process.terminal=false
      | .process.args=["true"]
      | .mounts |= map(if (.source // "" | test("/containers/[0-9a-f]+/etc_"))
                       then .source = ($b + "/" + (.source | split("/") | last)) else . end)' \
    "$rec/config.json" > "$dir/config.json"
  "$@" "$berth" --root "$store" rm "$id" >/dev/null
  chmod 755 "$dir"; chmod 644 "$dir"/*
}
[ "$have_crun" = 1 ] && mk_eq_bundle "$work/bundle-eq" "$work/store"

# podman: its own store, the image from `berth save` (docker-archive), and the settings this
# kind of host needs (no systemd: cgroupfs and a file event log; runc, as crun refuses hybrid
# cgroups; no CAP_SYS_RESOURCE: rlimits no higher than the current hard limits)
have_podman=0
if command -v podman >/dev/null; then
  cat > "$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
EOF
  export CONTAINERS_CONF="$work/containers.conf"
  podman=(podman --root "$work/podman/root" --runroot "$work/podman/run" --storage-driver overlay)
  if "$berth" --root "$work/store" save -o "$work/tiny-docker.tar" localhost/tiny \
     && "${podman[@]}" load -q -i "$work/tiny-docker.tar" >/dev/null 2>"$work/podman-load.err"; then
    have_podman=1
  else
    say "skipping podman: loading the image failed: $(tail -1 "$work/podman-load.err")"
  fi
fi

# rootless user: a home of its own under $work, its own store
ucmd=()
if [ "$rootless" = 1 ]; then
  if id "$buser" >/dev/null 2>&1; then
    mkdir -p "$work/uhome" "$work/urun"
    chown "$buser:" "$work/uhome" "$work/urun"; chmod 700 "$work/urun"
    ucmd=(setpriv --reuid="$buser" --regid="$buser" --init-groups
          env -i PATH="$PATH" USER="$buser" LOGNAME="$buser" HOME="$work/uhome"
          LC_ALL=C.UTF-8 XDG_RUNTIME_DIR="$work/urun")
    "${ucmd[@]}" "$berth" --root "$work/uhome/store" import "$work/tiny.tar" localhost/tiny >/dev/null
    [ "$have_crun" = 1 ] && mk_bundle "$work/bundle-rootless" --rootless
    [ "$have_crun" = 1 ] && mk_eq_bundle "$work/bundle-eq-rootless" "$work/uhome/store" "${ucmd[@]}"
  else
    say "skipping the rootless part: no user $buser (useradd -m $buser)"
    rootless=0
  fi
fi

# ------------------------------------------------------------------ measuring
# crun 1.8 refuses this host's hybrid cgroup layout ("cgroups in hybrid mode not supported, drop
# all controllers from cgroupv2") because the cgroup2 mount at /sys/fs/cgroup/unified lists a
# controller. Its commands run in a private mount namespace without that mount, where crun sees
# plain cgroup v1. The namespace is made once around hyperfine (or the probe), so its cost is not
# in crun's figures.
v1ns() { unshare -m --propagation private -- sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"' sh "$@"; }

mkdir -p "$work/json"
labels=(); modes=(); cmds=(); kinds=()
# add KIND LABEL MODE CMD   KIND: seq (one start) | par (100 at once, a bash command line)
#                           MODE: root | user | root-v1 | user-v1
add() { kinds+=("$1"); labels+=("$2"); modes+=("$3"); cmds+=("$4"); }

wrap() { # MODE CMD... : run CMD in that mode
  local m=$1; shift
  case $m in
    root) "$@" ;;
    user) "${ucmd[@]}" "$@" ;;
    root-v1) v1ns "$@" ;;
    user-v1) v1ns "${ucmd[@]}" "$@" ;;
  esac
}

P100="seq 100 | xargs -P 100 -I{}"
id=${work##*.}   # crun container ids unique to this invocation
B="$berth --root $work/store"
UB="$berth --root $work/uhome/store"
add seq "berth run --rm" root "$B run --rm localhost/tiny true"
add seq "berth run --rm --hpc" root "$B run --rm --hpc localhost/tiny true"
[ "$have_crun" = 1 ] && add seq "crun run" root-v1 "crun run --bundle $work/bundle bench-crun-$id"
[ "$have_crun" = 1 ] && add seq "crun run, Berth's spec" root-v1 "crun run --bundle $work/bundle-eq bench-crun-eq-$id"
command -v ch-run >/dev/null && add seq "ch-run" root "ch-run $rootfs -- true"
add seq "unshare+chroot floor" root "unshare -rmpf --mount-proc chroot $rootfs /bin/true"
[ "$have_podman" = 1 ] && add seq "podman run --rm" root \
  "podman --root $work/podman/root --runroot $work/podman/run --storage-driver overlay run --rm localhost/tiny true"
if [ "$rootless" = 1 ]; then
  add seq "berth run --rm" user "$UB run --rm localhost/tiny true"
  add seq "berth run --rm --hpc" user "$UB run --rm --hpc localhost/tiny true"
  [ "$have_crun" = 1 ] && add seq "crun run" user-v1 "crun run --bundle $work/bundle-rootless bench-crun-rl-$id"
  [ "$have_crun" = 1 ] && add seq "crun run, Berth's spec" user-v1 "crun run --bundle $work/bundle-eq-rootless bench-crun-eq-rl-$id"
  command -v ch-run >/dev/null && add seq "ch-run" user "ch-run $rootfs -- true"
  add seq "unshare+chroot floor" user "unshare -rmpf --mount-proc chroot $rootfs /bin/true"
fi
# `run --rm` returns once the container is unpublished and leaves the deletion of its files to a
# detached process: the 100-at-once time for Berth lasts until the store's tmp/ is empty again,
# so that work is counted too.
drained() { echo "; while compgen -G '$1/tmp/container-rm-*' >/dev/null; do sleep 0.002; done"; }
add par "berth run --rm" root "$P100 $B run --rm localhost/tiny true$(drained "$work/store")"
add par "berth run --rm --hpc" root "$P100 $B run --rm --hpc localhost/tiny true$(drained "$work/store")"
[ "$have_crun" = 1 ] && add par "crun run" root-v1 "$P100 crun run --bundle $work/bundle par{}-$id"
[ "$have_crun" = 1 ] && add par "crun run, Berth's spec" root-v1 "$P100 crun run --bundle $work/bundle-eq pareq{}-$id"
command -v ch-run >/dev/null && add par "ch-run" root "$P100 ch-run $rootfs -- true"
add par "unshare+chroot floor" root "$P100 unshare -rmpf --mount-proc chroot $rootfs /bin/true"
if [ "$rootless" = 1 ]; then
  add par "berth run --rm" user "$P100 $UB run --rm localhost/tiny true$(drained "$work/uhome/store")"
  add par "berth run --rm --hpc" user "$P100 $UB run --rm --hpc localhost/tiny true$(drained "$work/uhome/store")"
  [ "$have_crun" = 1 ] && add par "crun run" user-v1 "$P100 crun run --bundle $work/bundle-rootless parrl{}-$id"
  [ "$have_crun" = 1 ] && add par "crun run, Berth's spec" user-v1 "$P100 crun run --bundle $work/bundle-eq-rootless pareqrl{}-$id"
  command -v ch-run >/dev/null && add par "ch-run" user "$P100 ch-run $rootfs -- true"
fi

n=${#cmds[@]}
declare -A skip=()
say "probing each command once"
for ((i = 0; i < n; i++)); do
  if ! wrap "${modes[$i]}" timeout 120 bash -c "${cmds[$i]}" > "$work/probe-$i.log" 2>&1; then
    skip[$i]=1
    say "  skipping ${labels[$i]} (${modes[$i]}, ${kinds[$i]}): $(grep -v '^\s*$' "$work/probe-$i.log" | tail -2 | tr '\n' ' ' | cut -c1-300)"
  fi
done

# hyperfine for every timing: single starts without a shell (-N), 100-at-once through bash
timeit() { # I ROUND
  local i=$1 r=$2 args
  if [ "${kinds[$i]}" = seq ]; then
    args=(hyperfine -N --runs "$per_round" --warmup 3)
  else
    args=(hyperfine --shell bash --runs "$pruns" --warmup 1)
  fi
  args+=(--style none --export-json "$work/json/$i-$r.json" "${cmds[$i]}")
  # the rootless user writes the JSON: give it a file it may write
  : > "$work/json/$i-$r.json"; chmod 666 "$work/json/$i-$r.json"
  wrap "${modes[$i]}" timeout 900 "${args[@]}" > "$work/hf-$i.log" 2>&1 \
    || { say "  ${labels[$i]} (${modes[$i]}) failed: $(tail -2 "$work/hf-$i.log" | tr '\n' ' ')"; skip[$i]=1; }
}

load0=$(cut -d' ' -f1-3 /proc/loadavg); date0=$(date -u +%FT%TZ)
say "single starts: $runs runs each ($rounds rounds of $per_round, 3 warm-ups per round)"
for ((r = 1; r <= rounds; r++)); do
  for ((i = 0; i < n; i++)); do
    [ "${kinds[$i]}" = seq ] && [ -z "${skip[$i]:-}" ] && timeit "$i" "$r"
  done
done
say "100 at once: $pruns runs each (1 warm-up)"
for ((i = 0; i < n; i++)); do
  [ "${kinds[$i]}" = par ] && [ -z "${skip[$i]:-}" ] && timeit "$i" 1
done

# monitor memory: VmRSS of the `berth run` process (the monitor; the container's init is a
# child it forks, here already exec'd into `sleep`) 2 s into a 4 s container (the monitor gives back its start-up pages after 1 s). RssAnon is the
# memory private to this monitor; RssFile is mostly pages of the berth binary and libc, shared
# by all monitors.
rss() { # MODE STORE -> "VmRSS RssAnon RssFile" (kB) on stdout (not to be run in a subshell:
        # it waits for the container to be gone)
  local pid
  if [ "$1" = user ]; then
    "${ucmd[@]}" "$berth" --root "$2" run --rm localhost/tiny sleep 4 &
  else
    "$berth" --root "$2" run --rm localhost/tiny sleep 4 &
  fi
  pid=$!   # for the rootless user: setpriv, which execs env, which execs berth: same pid
  sleep 2
  awk '/^(VmRSS|RssAnon|RssFile):/ {v[$1] = $2} END {print v["VmRSS:"], v["RssAnon:"], v["RssFile:"]}' \
    "/proc/$pid/status" > "$work/rss"
  wait "$pid" || true
  cat "$work/rss"
}
rss root "$work/store" > "$work/rss-root"
read -r rss_root anon_root file_root < "$work/rss-root"
rss_user=-; anon_user=-; file_user=-
if [ "$rootless" = 1 ]; then
  rss user "$work/uhome/store" > "$work/rss-user"
  read -r rss_user anon_user file_user < "$work/rss-user"
fi
# Paired rounds: one start of each, in turn, so that a moment of noise hits all three alike
# (the hyperfine blocks above each see their own moments; ch-run's median moved by a quarter
# between runs). Run as the user itself in rootless mode, so that no setpriv is timed.
pair_rows=()
if [ "$pairs" -gt 0 ] && command -v ch-run >/dev/null; then
  say "paired rounds against ch-run: $pairs"
  for mode in root user; do
    [ "$mode" = user ] && { [ "$rootless" = 1 ] || continue; st="$work/uhome/store"; } || st="$work/store"
    if wrap "$mode" python3 "$work/pairs.py" "$pairs" \
        "berth run --rm=$berth" --root "$st" run --rm localhost/tiny true :: \
        "berth run --rm --hpc=$berth" --root "$st" run --rm --hpc localhost/tiny true :: \
        "ch-run=ch-run" "$rootfs" -- true > "$work/pairs-$mode.tsv" 2> "$work/pairs-$mode.err"; then
      while IFS=$'\t' read -r label med ratio paired; do
        pair_rows+=("| $([ "$mode" = root ] && echo root || echo "rootless ($buser)") | $label | $med | $ratio | $paired |")
      done < "$work/pairs-$mode.tsv"
    else
      say "  paired rounds ($mode) failed: $(tail -1 "$work/pairs-$mode.err")"
    fi
  done
fi

load1=$(cut -d' ' -f1-3 /proc/loadavg); date1=$(date -u +%FT%TZ)

# ------------------------------------------------------------------ report
stats() { # I -> "median min n" in ms (pooled over rounds), "- - 0" if skipped
  local files=("$work/json/$1"-*.json)
  if [ -n "${skip[$1]:-}" ] || [ ! -s "${files[0]}" ]; then echo "- - 0"; return; fi
  jq -rs '[.[].results[0].times[]] | sort | length as $n
          | [(if $n % 2 == 1 then .[($n-1)/2] else (.[$n/2-1] + .[$n/2]) / 2 end), .[0]]
          | map(. * 1000 * 100 | round / 100) + [$n] | @tsv' "${files[@]}"
}
declare -A M=() MIN=() N=()
for ((i = 0; i < n; i++)); do read -r "M[$i]" "MIN[$i]" "N[$i]" < <(stats "$i"); done
berth_of() { # KIND MODE(without -v1) [LABEL] -> index of that row (berth's by default)
  local j; for ((j = 0; j < n; j++)); do
    if [ "${kinds[$j]}" = "$1" ] && [ "${labels[$j]}" = "${3:-berth run --rm}" ] && [ "${modes[$j]}" = "$2" ]; then
      echo "$j"
    fi
  done
}

mkdir -p "$out"
stamp=$(date +%Y%m%d-%H%M%S)
summary="$out/run-$stamp.md"
{
  echo "bench/run.sh $runs (ROUNDS=$rounds, PRUNS=$pruns) on $(hostname), $(nproc) CPUs, $(uname -r)"
  echo "start $date0, load average $load0; end $date1, load average $load1"
  echo
  echo "| test | mode | tool | runs | median (ms) | min (ms) | berth / tool (medians) |"
  echo "|---|---|---|---|---|---|---|"
  for ((i = 0; i < n; i++)); do
    base=${modes[$i]%-v1}
    b=$(berth_of "${kinds[$i]}" "$base")
    ratio=-
    if [ -n "$b" ] && [[ ${labels[$i]} != berth* ]] && [ "${M[$i]}" != - ] && [ "${M[$b]}" != - ]; then
      ratio=$(jq -n "${M[$b]} / ${M[$i]} * 100 | round / 100")
    fi
    [ "${M[$i]}" = - ] && m="skipped" || m=${M[$i]}
    t=$([ "${kinds[$i]}" = seq ] && echo "start /bin/true" || echo "100 at once")
    echo "| $t | $([ "$base" = root ] && echo root || echo "rootless ($buser)") | ${labels[$i]} | ${N[$i]} | $m | ${MIN[$i]} | $ratio |"
  done
  echo
  # ch-run's semantics are the hpc profile's: the caller's ids, the host's network and pids.
  echo "| test | mode | berth run --rm --hpc / ch-run (medians) |"
  echo "|---|---|---|"
  for kind in seq par; do
    for mode in root user; do
      h=$(berth_of "$kind" "$mode" "berth run --rm --hpc"); c=$(berth_of "$kind" "$mode" ch-run)
      [ -n "$h" ] && [ -n "$c" ] && [ "${M[$h]}" != - ] && [ "${M[$c]}" != - ] || continue
      echo "| $([ "$kind" = seq ] && echo "start /bin/true" || echo "100 at once") | $mode | $(jq -n "${M[$h]} / ${M[$c]} * 100 | round / 100") |"
    done
  done
  echo
  if [ "${#pair_rows[@]}" -gt 0 ]; then
    echo "| $pairs paired rounds: mode | tool | median (ms) | / ch-run (medians) | / ch-run (paired) |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${pair_rows[@]}"
    echo
  fi
  echo "| berth monitor, 2 s into \`run --rm … sleep 4\` | VmRSS (kB) | RssAnon (kB) | RssFile (kB) |"
  echo "|---|---|---|---|"
  echo "| root | $rss_root | $anon_root | $file_root |"
  if [ "$rootless" = 1 ]; then echo "| rootless ($buser) | $rss_user | $anon_user | $file_user |"; fi
} | tee "$summary"
say "summary: $summary"
