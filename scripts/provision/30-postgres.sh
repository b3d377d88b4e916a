# Sourced by scripts/test after scripts/lib.sh.
# PostgreSQL for caas-adapters' `postgres` tests: the server already running on
# 127.0.0.1:5432 when there is one (trust auth, user postgres), else a private
# one (Debian's packages installed when missing) under a temp dir on a free
# port, started in the background while the build runs. Either way a fresh
# database per run, dropped at exit; a private server is stopped at exit, a
# shared one is left running. Exports CAAS_TEST_POSTGRES_URL.
PG_DB="caas_test_$$_$(date +%s)"
PG_PRIVATE=""
PG_PORT=""
PG_READY_FLAG=""
PG_JOB=""
pg_bin() {
  local b
  for b in "$(pg_config --bindir 2>/dev/null)" /usr/lib/postgresql/*/bin; do
    [[ -n "$b" && -x "$b/initdb" ]] && { printf '%s\n' "$b"; return 0; }
  done
  return 1
}
pg_as_owner() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
provision_postgres() {
  on_exit postgres_cleanup
  when_ready postgres_ready
  PG_READY_FLAG=$(mktemp -u /tmp/caas-pg-ready.XXXXXX)
  if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432 \
      && psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1; then
    PG_PORT=5432
    psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qc "CREATE DATABASE $PG_DB" >/dev/null
    touch "$PG_READY_FLAG"
  else
    step "provisioning a private PostgreSQL (in the background)"
    PG_PORT=$(free_port)
    PG_PRIVATE=$(mktemp -d /tmp/caas-pg.XXXXXX)
    (
      set -e
      if ! pg_bin >/dev/null; then
        apt_install postgresql
      fi
      bin=$(pg_bin)
      [[ $(id -u) == 0 ]] && chown postgres:postgres "$PG_PRIVATE"
      pg_as_owner "$bin/initdb" -D "$PG_PRIVATE/data" --auth=trust -U postgres -E UTF8 --no-sync >/dev/null
      pg_as_owner "$bin/pg_ctl" -D "$PG_PRIVATE/data" -l "$PG_PRIVATE/log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$PG_PRIVATE" start >/dev/null
      "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qc "CREATE DATABASE $PG_DB" >/dev/null
      touch "$PG_READY_FLAG"
    ) >"$PG_PRIVATE.provision.log" 2>&1 &
    PG_JOB=$!
  fi
  export CAAS_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/$PG_DB"
}
# Waits for the background provisioning (up to 5 minutes); fails the run if it failed.
postgres_ready() {
  local i
  for ((i = 0; i < 3000; i++)); do
    [[ -e "$PG_READY_FLAG" ]] && return 0
    if [[ -n "$PG_JOB" ]] && ! kill -0 "$PG_JOB" 2>/dev/null; then
      [[ -e "$PG_READY_FLAG" ]] && return 0
      cat "$PG_PRIVATE.provision.log" >&2 || true
      echo "PostgreSQL provisioning failed" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "PostgreSQL provisioning timed out" >&2
  return 1
}
postgres_cleanup() {
  local bin
  [[ -n "$PG_JOB" ]] && { wait "$PG_JOB" 2>/dev/null || true; }
  if [[ -n "$PG_PRIVATE" ]]; then
    if bin=$(pg_bin) && [[ -d "$PG_PRIVATE/data" ]]; then
      pg_as_owner "$bin/pg_ctl" -D "$PG_PRIVATE/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PG_PRIVATE" "$PG_PRIVATE.provision.log"
  elif [[ -n "$PG_PORT" ]]; then
    psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  rm -f "$PG_READY_FLAG"
}

provision_postgres
