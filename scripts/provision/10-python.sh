# Sourced by scripts/test after scripts/lib.sh.
# An independent JWT implementation (PyJWT) for caas-crypto's interop tests,
# installed from hash-pinned wheels into a cached venv.
pinned_venv pyjwt caas-crypto/tests/interop/requirements.txt
export CAAS_TEST_PYTHON="$PINNED_VENV/bin/python"
