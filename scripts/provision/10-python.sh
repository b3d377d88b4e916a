# Sourced by scripts/test after scripts/lib.sh.
# An independent JWT implementation (PyJWT) for caas-crypto's interop tests,
# installed from hash-pinned wheels into a cached venv.
provision_python() {
  local req=caas-crypto/tests/interop/requirements.txt
  local venv="$CACHE/venv"
  local stamp
  stamp="$venv/.req-$(sha256sum "$req" | cut -c1-16)"
  if [[ ! -e "$stamp" ]]; then
    step "provisioning PyJWT for the JWT interop tests"
    if ! python3 -m venv --help >/dev/null 2>&1; then
      apt_install python3-venv
    fi
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check --require-hashes -r "$req"
    touch "$stamp"
  fi
  export CAAS_TEST_PYTHON="$venv/bin/python"
}

provision_python
