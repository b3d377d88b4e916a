# Sourced by scripts/test after scripts/lib.sh.
# schemathesis, which checks the live API against its own /openapi.json,
# installed from hash-pinned wheels into a venv of its own in the cache.
provision_schemathesis() {
  local req=scripts/provision/schemathesis-requirements.txt
  local venv
  venv="$CACHE/venv-schemathesis-$(sha256sum "$req" | cut -c1-16)"
  if [[ ! -x "$venv/bin/st" ]]; then
    step "provisioning schemathesis"
    if ! python3 -m venv --help >/dev/null 2>&1; then
      apt_install python3-venv
    fi
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check --require-hashes -r "$req"
  fi
  export CAAS_SCHEMATHESIS="$venv/bin/st"
}

provision_schemathesis
