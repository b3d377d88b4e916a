# Sourced by scripts/test after scripts/lib.sh.
# An S3-compatible server for caas-adapters' `s3` tests and benchmark: s3s-fs
# (filesystem-backed, checks SigV4), built once with `cargo install` into the
# cache (5-9 minutes on two cores, in the background while the workspace
# builds, with a target dir of its own), then started on a free port with
# fresh random keys and a temporary data directory, and stopped at exit.
# Exports CAAS_TEST_S3_URL, CAAS_TEST_S3_ACCESS_KEY, CAAS_TEST_S3_SECRET_KEY,
# and CAAS_TEST_S3S_FS (the binary, for tests that run servers of their own).
# A CAAS_TEST_S3_URL given from outside (with its keys) is used as it is.
S3S_FS_VERSION=0.14.1
S3S_FS_ROOT="$CACHE/s3s-fs-$S3S_FS_VERSION"
S3S_FS_BIN="$S3S_FS_ROOT/bin/s3s-fs"
S3_DIR=""
S3_JOB=""
S3_READY_FLAG=""

random_key() { python3 -c 'import secrets; print(secrets.token_hex(20))'; }

provision_s3() {
  export CAAS_TEST_S3S_FS="$S3S_FS_BIN"
  if [[ -n "${CAAS_TEST_S3_URL:-}" ]]; then
    return
  fi
  on_exit s3_cleanup
  when_ready s3_ready
  local port access secret
  port=$(free_port)
  access=$(random_key)
  secret=$(random_key)
  S3_DIR=$(mktemp -d /tmp/caas-s3.XXXXXX)
  S3_READY_FLAG="$S3_DIR/ready"
  mkdir -p "$S3_DIR/data"
  if [[ ! -x "$S3S_FS_BIN" ]]; then
    step "building s3s-fs $S3S_FS_VERSION into $S3S_FS_ROOT (in the background)"
  fi
  (
    set -e
    if [[ ! -x "$S3S_FS_BIN" ]]; then
      CARGO_TARGET_DIR="$S3S_FS_ROOT/target" cargo install -q "s3s-fs@$S3S_FS_VERSION" \
        --features binary --locked --root "$S3S_FS_ROOT"
      rm -rf "$S3S_FS_ROOT/target"
    fi
    "$S3S_FS_BIN" --host 127.0.0.1 --port "$port" --access-key "$access" \
      --secret-key "$secret" "$S3_DIR/data" >"$S3_DIR/server.log" 2>&1 &
    echo $! >"$S3_DIR/pid"
    for _ in $(seq 200); do
      if port_open "$port"; then
        touch "$S3_READY_FLAG"
        exit 0
      fi
      sleep 0.1
    done
    echo "s3s-fs did not open port $port" >&2
    exit 1
  ) >"$S3_DIR/provision.log" 2>&1 &
  S3_JOB=$!
  export CAAS_TEST_S3_URL="http://127.0.0.1:$port"
  export CAAS_TEST_S3_ACCESS_KEY="$access"
  export CAAS_TEST_S3_SECRET_KEY="$secret"
}

# Waits for the background build and start (up to 20 minutes: a cold build
# shares two cores with the workspace's); fails the run if either failed.
s3_ready() {
  local i
  for ((i = 0; i < 12000; i++)); do
    [[ -e "$S3_READY_FLAG" ]] && return 0
    if ! kill -0 "$S3_JOB" 2>/dev/null; then
      [[ -e "$S3_READY_FLAG" ]] && return 0
      cat "$S3_DIR/provision.log" "$S3_DIR/server.log" >&2 2>/dev/null || true
      echo "s3s-fs provisioning failed" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "s3s-fs provisioning timed out" >&2
  return 1
}

s3_cleanup() {
  [[ -n "$S3_JOB" ]] && { wait "$S3_JOB" 2>/dev/null || true; }
  if [[ -n "$S3_DIR" ]]; then
    if [[ -s "$S3_DIR/pid" ]]; then
      kill "$(cat "$S3_DIR/pid")" 2>/dev/null || true
    fi
    rm -rf "$S3_DIR"
  fi
}

provision_s3
