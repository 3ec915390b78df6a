# Shell helpers shared by scripts/demo and bench/*.sh (sourced, not executed).
# shellcheck shell=bash

# Repository root, whichever script sourced this file.
BERTH_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/berth-target}"

say() { printf '\033[1m%s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Prints a command the way a user would type it (quoting what the shell would need), then runs it.
run() {
  local a shown=()
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
      shown+=("$a")
    else
      shown+=("'${a//\'/\'\\\'\'}'")
    fi
  done
  printf '\n\033[1;34m$ %s\033[0m\n' "${shown[*]}"
  "$@"
}

# Builds the `berth` binary and the fixture helper, and puts both first on PATH.
# BERTH_PROFILE=debug builds faster for a quick try; the default is release, whose binary is
# left at $CARGO_TARGET_DIR/dist/berth.
#
# The release binary is static and not position-independent: nothing to load or relocate at
# start (about 20,000 relocations otherwise), and one file to copy onto a cluster. It is built
# against musl when the toolchain has that target (BERTH_LIBC=glibc to choose glibc): glibc's
# start-up probes the CPU's caches with CPUID instructions, about 0.9 ms of every start on a
# virtual machine where each one traps, and a static glibc still loads the host's NSS modules for
# host name lookups. Only the final link changes (the flags go to the `berth` crate alone), so
# the SPANK plugin, a shared library, builds as before.
build_tools() {
  local profile=${BERTH_PROFILE:-release} libc=${BERTH_LIBC:-} out
  local musl=x86_64-unknown-linux-musl
  case "$profile" in
    release|debug) ;;
    *) die "BERTH_PROFILE must be release or debug" ;;
  esac
  if [ -z "$libc" ]; then
    libc=glibc
    if [ -d "$(rustc --print sysroot)/lib/rustlib/$musl/lib" ] && command -v musl-gcc >/dev/null
    then
      libc=musl
    fi
  fi
  say "building berth ($profile, $libc)"
  (
    cd "$BERTH_REPO"
    if [ "$profile" = debug ]; then
      cargo build --quiet -p berth --bin berth -p berth-testkit --bin berth-fixtures
      exit
    fi
    local target=()
    [ "$libc" = musl ] && target=(--target "$musl")
    cargo rustc --release --quiet "${target[@]}" -p berth --bin berth -- \
      -C target-feature=+crt-static -C relocation-model=static
    cargo build --release --quiet -p berth-testkit --bin berth-fixtures
  ) || die "build failed"
  if [ "$profile" = debug ]; then
    PATH="$CARGO_TARGET_DIR/debug:$PATH"
  else
    out=$CARGO_TARGET_DIR/release
    [ "$libc" = musl ] && out=$CARGO_TARGET_DIR/$musl/release
    mkdir -p "$CARGO_TARGET_DIR/dist"
    cp "$out/berth" "$CARGO_TARGET_DIR/dist/berth.tmp"
    mv "$CARGO_TARGET_DIR/dist/berth.tmp" "$CARGO_TARGET_DIR/dist/berth"
    PATH="$CARGO_TARGET_DIR/dist:$CARGO_TARGET_DIR/release:$PATH"
  fi
  export PATH
}

# start_registry DIR: starts docker-registry on 127.0.0.1:<free port>, plain HTTP, with its
# config, storage and log under DIR. Sets REGISTRY_PORT and REGISTRY_PID. Stop it with
# stop_registry (by that PID only).
start_registry() {
  local dir=$1 try port
  mkdir -p "$dir/storage"
  for try in 1 2 3 4 5; do
    port=$(berth-fixtures port)
    cat > "$dir/config.yml" <<YAML
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: "$dir/storage"
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: local-registry-not-secret
YAML
    docker-registry serve "$dir/config.yml" > "$dir/registry.log" 2>&1 &
    REGISTRY_PID=$!
    # shellcheck disable=SC2034  # read by the scripts that source this file
    REGISTRY_PORT=$port
    # Ready once it has logged the bind and accepts connections; if it exits (port taken
    # meanwhile by someone else), try another port.
    local _
    for _ in $(seq 100); do
      kill -0 "$REGISTRY_PID" 2>/dev/null || break
      if grep -q "listening on 127.0.0.1:$port" "$dir/registry.log" \
         && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        say "registry on 127.0.0.1:$port (pid $REGISTRY_PID, try $try)"
        return 0
      fi
      sleep 0.1
    done
    stop_registry
  done
  cat "$dir/registry.log" >&2
  die "docker-registry did not start"
}

stop_registry() {
  if [ -n "${REGISTRY_PID:-}" ]; then
    kill "$REGISTRY_PID" 2>/dev/null || true
    wait "$REGISTRY_PID" 2>/dev/null || true
    REGISTRY_PID=
  fi
}
