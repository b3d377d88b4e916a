# Shared by scripts/test and scripts/provision/*.sh (sourced, never run).

step() { printf '\n==> %s\n' "$*"; }

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Whether something accepts TCP connections on 127.0.0.1:$1.
port_open() {
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  exec 3<&-
}

# Debian packages, waiting for apt's lock rather than failing on it (several
# provisioners may install at once).
apt_install() {
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends "$@" >/dev/null
}

# A venv under the cache with the hash-pinned wheels of requirements file $2
# installed (extra pip options after it), keyed by the file's hash so a change
# of pins makes a fresh one; sets PINNED_VENV to its path. $1 names it and is
# shown while it installs.
pinned_venv() {
  local name=$1 req=$2
  shift 2
  PINNED_VENV="$CACHE/$name-$(sha256sum "$req" | cut -c1-16)"
  if [[ ! -e "$PINNED_VENV/.installed" ]]; then
    step "installing $name from hash-pinned wheels"
    if ! python3 -m venv --help >/dev/null 2>&1; then
      apt_install python3-venv
    fi
    rm -rf "$PINNED_VENV"
    python3 -m venv "$PINNED_VENV"
    "$PINNED_VENV/bin/pip" install -q --disable-pip-version-check --require-hashes "$@" -r "$req"
    touch "$PINNED_VENV/.installed"
  fi
}

# Cleanups run at exit, newest first, each even when another fails: every
# provisioner stops what it started and nothing else.
CLEANUPS=()
on_exit() { CLEANUPS=("$1" "${CLEANUPS[@]}"); }
run_cleanups() {
  local c
  for c in "${CLEANUPS[@]}"; do "$c" || true; done
}
trap run_cleanups EXIT

# Checks run after the build and before the tests: a provisioner that works in
# the background registers a function that waits for it and fails the run when
# it failed.
READY_CHECKS=()
when_ready() { READY_CHECKS+=("$1"); }
all_ready() {
  local c
  for c in "${READY_CHECKS[@]}"; do "$c"; done
}
