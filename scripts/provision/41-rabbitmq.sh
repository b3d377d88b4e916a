# Sourced by scripts/test after scripts/lib.sh.
# RabbitMQ for caas-adapters' `rabbitmq` tests: the broker on 127.0.0.1:5672
# (guest/guest) when it answers AMQP; else a private node of Debian's
# rabbitmq-server (installed when missing) with its own node name, ports,
# database and logs under a temp dir, started in the background while the
# build runs (it takes ~10 s) and killed when this script ends.
# rabbitmq-server is installed either way: the fault test starts and stops a
# node of its own. Exports CAAS_TEST_RABBITMQ_URL.
RABBITMQ_JOB=""
RABBITMQ_DIR=""
RABBITMQ_PORT=""

# Whether something on 127.0.0.1:$1 answers the AMQP 0-9-1 header with
# connection.start.
amqp_answers() {
  python3 - "$1" <<'PY' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
s.sendall(b"AMQP\x00\x00\x09\x01")
frame = s.recv(11)
# A method frame on channel 0 whose method is connection.start (10, 10).
sys.exit(0 if len(frame) >= 11 and frame[0] == 1 and frame[7:11] == b"\x00\x0a\x00\x0a" else 1)
PY
}

provision_rabbitmq() {
  if [[ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]]; then
    step "installing rabbitmq-server"
    apt_install rabbitmq-server
  fi
  if [[ -n "${CAAS_TEST_RABBITMQ_URL:-}" ]]; then
    return
  fi
  if amqp_answers 5672; then
    export CAAS_TEST_RABBITMQ_URL="amqp://guest:guest@127.0.0.1:5672/%2f"
    return
  fi
  local dir
  RABBITMQ_PORT=$(free_port)
  dir=$(mktemp -d /tmp/caas-rabbitmq.XXXXXX)
  RABBITMQ_DIR=$dir
  step "starting a private RabbitMQ node on 127.0.0.1:$RABBITMQ_PORT (in the background)"
  printf 'listeners.tcp.1 = 127.0.0.1:%s\n' "$RABBITMQ_PORT" >"$dir/rabbitmq.conf"
  : >"$dir/rabbitmq-env.conf"
  echo '[].' >"$dir/enabled_plugins"
  # A session of its own (the script starts the Erlang VM as a child), whose
  # leader writes its pid: the cleanup kills that whole group.
  (
    cd "$dir"
    export HOME="$dir"
    export RABBITMQ_NODENAME="caas-test-$RABBITMQ_PORT@localhost"
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_NODE_PORT="$RABBITMQ_PORT"
    export RABBITMQ_DIST_PORT="$(free_port)"
    export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
    export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
    export RABBITMQ_PLUGINS_EXPAND_DIR="$dir/plugins-expand"
    export RABBITMQ_MNESIA_BASE="$dir/mnesia"
    export RABBITMQ_LOG_BASE="$dir/log"
    export ERL_EPMD_ADDRESS=127.0.0.1
    exec setsid sh -c 'echo $$ >"$1/pid"; exec /usr/lib/rabbitmq/bin/rabbitmq-server' \
      sh "$dir" </dev/null >"$dir/server.log" 2>&1
  ) &
  RABBITMQ_JOB=$!
  on_exit stop_rabbitmq
  when_ready rabbitmq_ready
  export CAAS_TEST_RABBITMQ_URL="amqp://guest:guest@127.0.0.1:$RABBITMQ_PORT/%2f"
}

# Waits for the private node (up to 2 minutes); fails the run if it died.
rabbitmq_ready() {
  local i
  [[ -z "$RABBITMQ_JOB" ]] && return 0
  for ((i = 0; i < 1200; i++)); do
    amqp_answers "$RABBITMQ_PORT" && return 0
    if ! kill -0 "$RABBITMQ_JOB" 2>/dev/null; then
      cat "$RABBITMQ_DIR/server.log" >&2 || true
      echo "RabbitMQ did not start" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "RabbitMQ did not start within 2 minutes" >&2
  return 1
}

stop_rabbitmq() {
  local leader
  if [[ -n "$RABBITMQ_JOB" ]]; then
    leader=$(cat "$RABBITMQ_DIR/pid" 2>/dev/null || true)
    # The session leader is its group's leader: the VM is in that group.
    [[ -n "$leader" ]] && kill -KILL -- "-$leader" 2>/dev/null
    kill -KILL "$RABBITMQ_JOB" 2>/dev/null
    wait "$RABBITMQ_JOB" 2>/dev/null || true
    rm -rf "$RABBITMQ_DIR"
    RABBITMQ_JOB=""
  fi
}

provision_rabbitmq
