# Sourced by scripts/test after scripts/lib.sh.
# NATS with JetStream for caas-adapters' `nats` tests: the server on
# 127.0.0.1:4222 when it answers with JetStream enabled; else Debian's
# nats-server (installed when missing) on a free port with JetStream and its
# storage under a temp dir, stopped when this script ends. nats-server is
# installed either way: the fault tests start and stop servers of their own.
# Exports CAAS_TEST_NATS_URL.
NATS_PID=""
NATS_DIR=""

# Whether a NATS server on 127.0.0.1:$1 answers JetStream's API.
nats_jetstream_answers() {
  python3 - "$1" <<'PY' 2>/dev/null
import json, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
f = s.makefile("rwb")
if not f.readline().startswith(b"INFO"):
    sys.exit(1)
f.write(b'CONNECT {"verbose":false,"headers":true}\r\nSUB _INBOX.caas 1\r\nPUB $JS.API.INFO _INBOX.caas 0\r\n\r\nPING\r\n')
f.flush()
while True:
    line = f.readline()
    if not line or line.startswith(b"-ERR"):
        sys.exit(1)
    if line.startswith(b"HMSG"):
        sys.exit(1)  # a status (503: no responders) means no JetStream
    if line.startswith(b"MSG"):
        reply = json.loads(f.readline())
        sys.exit(0 if "error" not in reply else 1)
PY
}

provision_nats() {
  if ! command -v nats-server >/dev/null; then
    step "installing nats-server"
    apt_install nats-server
  fi
  if [[ -n "${CAAS_TEST_NATS_URL:-}" ]]; then
    return
  fi
  if nats_jetstream_answers 4222; then
    export CAAS_TEST_NATS_URL=nats://127.0.0.1:4222
    return
  fi
  local port dir i
  port=$(free_port)
  dir=$(mktemp -d /tmp/caas-nats.XXXXXX)
  step "starting nats-server (JetStream) on 127.0.0.1:$port"
  nats-server -a 127.0.0.1 -p "$port" -js -sd "$dir" >"$dir/nats.log" 2>&1 &
  NATS_PID=$!
  NATS_DIR=$dir
  on_exit stop_nats
  for i in $(seq 100); do
    nats_jetstream_answers "$port" && break
    [[ $i == 100 ]] && { cat "$dir/nats.log" >&2; echo "nats-server did not start" >&2; return 1; }
    sleep 0.1
  done
  export CAAS_TEST_NATS_URL="nats://127.0.0.1:$port"
}

stop_nats() {
  if [[ -n "$NATS_PID" ]]; then
    kill "$NATS_PID" 2>/dev/null || true
    wait "$NATS_PID" 2>/dev/null || true
    rm -rf "$NATS_DIR"
    NATS_PID=""
  fi
}

provision_nats
