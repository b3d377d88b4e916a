# Sourced by scripts/test after scripts/lib.sh.
# Redis 7 for caas-adapters' `redis` tests and benchmark: the one on
# 127.0.0.1:6379 when it answers; else Debian's redis-server (installed when
# missing) on a free port, without persistence, stopped when this script ends.
# The fault tests start and stop servers of their own; this one is never touched.
redis_answers() {
  local reply=""
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  read -r -t 2 reply <&3 || true
  exec 3<&-
  [[ "$reply" == "+PONG"* ]]
}

provision_redis() {
  if [[ -n "${CAAS_TEST_REDIS_URL:-}" ]]; then
    return
  fi
  if redis_answers 6379; then
    export CAAS_TEST_REDIS_URL=redis://127.0.0.1:6379
    return
  fi
  if ! command -v redis-server >/dev/null; then
    step "installing redis-server"
    apt_install redis-server
  fi
  local port dir i
  port=$(free_port)
  dir=$(mktemp -d)
  step "starting redis-server on 127.0.0.1:$port"
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
    --daemonize no --dir "$dir" >"$dir/redis.log" 2>&1 &
  REDIS_PID=$!
  REDIS_DIR=$dir
  on_exit stop_redis
  for i in $(seq 100); do
    redis_answers "$port" && break
    [[ $i == 100 ]] && { cat "$dir/redis.log" >&2; echo "redis-server did not start" >&2; return 1; }
    sleep 0.1
  done
  export CAAS_TEST_REDIS_URL="redis://127.0.0.1:$port"
}

stop_redis() {
  if [[ -n "${REDIS_PID:-}" ]]; then
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    rm -rf "$REDIS_DIR"
    REDIS_PID=""
  fi
}

provision_redis
